// Reads /proc/self/stat, /proc/stat and /proc/self/fd into Registry series.
#include "telemetry/process_metrics.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace hearth::telemetry {
namespace {

struct ProcStat {
  double cpu_seconds = 0;
  double threads = 0;
  double start_ticks = 0;  // clock ticks after boot
  double virtual_bytes = 0;
  double resident_bytes = 0;
};

std::optional<std::string> read_file(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) return std::nullopt;
  return text.str();
}

// /proc/self/stat: "pid (comm) state f4 f5 ...". comm may hold spaces and ')',
// so fields are counted from the last ')'; field 3 (state) comes first.
std::optional<ProcStat> read_proc_stat() {
  std::optional<std::string> text = read_file("/proc/self/stat");
  if (!text) return std::nullopt;
  size_t close = text->rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream in(text->substr(close + 1));
  std::vector<std::string> fields;  // fields[0] is field 3
  for (std::string f; in >> f && fields.size() < 22;) fields.push_back(f);
  if (fields.size() < 22) return std::nullopt;
  auto num = [&fields](int field_number) { return std::stod(fields[field_number - 3]); };
  long ticks = sysconf(_SC_CLK_TCK);
  long page = sysconf(_SC_PAGESIZE);
  if (ticks <= 0 || page <= 0) return std::nullopt;
  try {
    ProcStat s;
    s.cpu_seconds = (num(14) + num(15)) / static_cast<double>(ticks);  // utime + stime
    s.threads = num(20);
    s.start_ticks = num(22);
    s.virtual_bytes = num(23);
    s.resident_bytes = num(24) * static_cast<double>(page);
    return s;
  } catch (...) {
    return std::nullopt;  // a field was not a number
  }
}

// Unix time of the boot ("btime" in /proc/stat).
std::optional<double> boot_time_seconds() {
  std::optional<std::string> text = read_file("/proc/stat");
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("btime ", 0) == 0) {
      try {
        return std::stod(line.substr(6));
      } catch (...) {
        return std::nullopt;
      }
    }
  }
  return std::nullopt;
}

std::optional<double> open_fds() {
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/self/fd", ec);
  if (ec) return std::nullopt;
  double n = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) return std::nullopt;
    ++n;
  }
  return n > 0 ? n - 1 : 0;  // the iterator's own descriptor is listed too
}

// Unix start time of this process: boot time + start ticks. Constant, so read once.
std::optional<double> start_time_seconds() {
  std::optional<ProcStat> s = read_proc_stat();
  std::optional<double> boot = boot_time_seconds();
  long ticks = sysconf(_SC_CLK_TCK);
  if (!s || !boot || ticks <= 0) return std::nullopt;
  return *boot + s->start_ticks / static_cast<double>(ticks);
}

void collect(Registry& r, std::optional<double> start_time) {
  if (std::optional<ProcStat> s = read_proc_stat()) {
    r.counter("hearth_process_cpu_seconds_total", "Total user and system CPU time spent in seconds.")
        ->set_total(s->cpu_seconds);
    r.gauge("hearth_process_resident_memory_bytes", "Resident memory size in bytes.")
        ->set(s->resident_bytes);
    r.gauge("hearth_process_virtual_memory_bytes", "Virtual memory size in bytes.")
        ->set(s->virtual_bytes);
    r.gauge("hearth_process_threads", "Number of OS threads in the process.")->set(s->threads);
  }
  if (start_time) {
    r.gauge("hearth_process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.")
        ->set(*start_time);
  }
  if (std::optional<double> fds = open_fds()) {
    r.gauge("hearth_process_open_fds", "Number of open file descriptors.")->set(*fds);
  }
}

}  // namespace

void register_process_metrics(Registry& registry) {
  std::optional<double> start_time;
  try {
    start_time = start_time_seconds();
  } catch (...) {
  }
  registry.add_collector([&registry, start_time] { collect(registry, start_time); });
}

}  // namespace hearth::telemetry
