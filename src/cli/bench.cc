// `hearth bench`: load time, warm-up, then latency percentiles, throughput
// and peak memory of repeated runs. Random inputs unless --input is given.
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <string>

#include "cli/commands.h"
#include "cli/inputs.h"
#include "runtime/session.h"

namespace hearth::cli {

namespace {

struct BenchOptions {
  std::string model;
  std::vector<std::string> inputs;
  std::vector<std::string> shapes;
  int64_t batch = 1;
  int threads = 0;
  int warmup = 5;
  int iterations = 50;
  double min_seconds = 1.0;
  bool json = false;
  bool profile = false;
  bool paced = false;
  bool plain_layout = false;
  std::string tuning = "cached";
  double tune_budget_ms = 30000;
  LimitFlags limits;
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

long peak_rss_kib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

Status bench_model(const BenchOptions& o) {
  using clock = std::chrono::steady_clock;
  if (o.batch < 1) return invalid_argument("--batch must be >= 1");
  SessionOptions so;
  so.intra_op_threads = o.threads;
  so.profile = o.profile;
  so.blocked_layout = !o.plain_layout;
  HEARTH_ASSIGN_OR_RETURN(so.tuning, parse_tuning_mode(o.tuning));
  so.tune_budget_ms = o.tune_budget_ms;
  so.max_tensor_bytes = o.limits.max_tensor_bytes;
  so.max_memory_bytes = o.limits.max_memory_bytes;
  auto t0 = clock::now();
  HEARTH_ASSIGN_OR_RETURN(auto session, Session::load_file(o.model, so));
  double load_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
  HEARTH_ASSIGN_OR_RETURN(Feeds given, load_input_args(o.inputs, session->inputs()));
  HEARTH_ASSIGN_OR_RETURN(auto shapes, parse_shape_args(o.shapes));
  HEARTH_ASSIGN_OR_RETURN(Feeds feeds, random_inputs(session->inputs(), given, o.batch, shapes, 42));
  auto t1 = clock::now();
  HEARTH_RETURN_IF_ERROR(session->run(feeds).status());
  double first_ms = std::chrono::duration<double, std::milli>(clock::now() - t1).count();
  for (int i = 1; i < o.warmup; ++i) HEARTH_RETURN_IF_ERROR(session->run(feeds).status());
  std::vector<double> ms;
  auto timed_run = [&]() -> Status {
    auto a = clock::now();
    HEARTH_RETURN_IF_ERROR(session->run(feeds).status());
    ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - a).count());
    return ok_status();
  };
  if (o.paced) {
    // Driven by another process (bench/compare.py), which alternates blocks of
    // runs between engines so that both see the same moments of a noisy host.
    std::cout << "{\"ready\": true}" << std::endl;
    std::string line;
    while (std::getline(std::cin, line)) {
      int64_t n = 0;
      size_t end = 0;
      try {
        n = std::stoll(line, &end);
      } catch (const std::exception&) {
        end = 0;
      }
      if (end == 0 || line.find_first_not_of(" \t\r", end) != std::string::npos) {
        return invalid_argument("--paced: expected a number of runs per input line, got '" + line + "'");
      }
      if (n < 1 || n > 100000) return invalid_argument("--paced: runs per line must be 1..100000, got " + line);
      nlohmann::json block = nlohmann::json::array();
      for (int64_t i = 0; i < n; ++i) {
        HEARTH_RETURN_IF_ERROR(timed_run());
        block.push_back(ms.back());
      }
      std::cout << nlohmann::json{{"times_ms", block}}.dump() << std::endl;
    }
    if (ms.empty()) return invalid_argument("--paced: input ended before any timed run");
  } else {
    auto start = clock::now();
    while (static_cast<int>(ms.size()) < o.iterations ||
           std::chrono::duration<double>(clock::now() - start).count() < o.min_seconds) {
      HEARTH_RETURN_IF_ERROR(timed_run());
      if (ms.size() >= 100000) break;
    }
    if (ms.empty()) return invalid_argument("no timed runs: give --iterations or --min-seconds above 0");
  }
  double total_s = 0;
  for (double x : ms) total_s += x / 1000.0;
  const double median = percentile(ms, 50), p90 = percentile(ms, 90), p99 = percentile(ms, 99);
  const double throughput = static_cast<double>(ms.size()) * static_cast<double>(o.batch) / total_s;
  if (o.json) {
    nlohmann::json j = {{"model", o.model},         {"batch", o.batch},          {"threads", session->num_threads()},
                        {"iterations", ms.size()},  {"load_ms", load_ms},        {"first_run_ms", first_ms},
                        {"median_ms", median},      {"p90_ms", p90},             {"p99_ms", p99},
                        {"mean_ms", total_s * 1000.0 / static_cast<double>(ms.size())},
                        {"throughput_per_s", throughput}, {"peak_rss_mib", peak_rss_kib() / 1024.0},
                        {"pool_mib", static_cast<double>(session->pool_bytes()) / (1024.0 * 1024.0)}};
    std::cout << j.dump() << "\n";
  } else {
    std::cout << std::fixed << std::setprecision(3);
    std::cout << "model " << o.model << ", batch " << o.batch << ", threads " << session->num_threads() << ", "
              << ms.size() << " runs\n";
    std::cout << "load " << load_ms << " ms, first run " << first_ms << " ms\n";
    std::cout << "latency ms: median " << median << "  p90 " << p90 << "  p99 " << p99 << "\n";
    std::cout << "throughput " << throughput << " inferences/s, peak RSS " << peak_rss_kib() / 1024.0 << " MiB, memory pool "
              << static_cast<double>(session->pool_bytes()) / (1024.0 * 1024.0) << " MiB\n";
  }
  if (o.profile) {
    auto prof = session->node_profile();
    std::sort(prof.begin(), prof.end(), [](const auto& a, const auto& b) { return a.total_us > b.total_us; });
    double sum = 0;
    for (const auto& p : prof) sum += p.total_us;
    std::cerr << "per-node time (mean us per run, share):\n";
    for (const auto& p : prof) {
      if (p.runs == 0) continue;
      std::cerr << "  " << std::setw(10) << p.total_us / static_cast<double>(p.runs) << "  " << std::setw(5)
                << 100.0 * p.total_us / sum << "%  " << p.op_type << " " << p.name << "\n";
    }
  }
  return ok_status();
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "Measure load time, latency percentiles, throughput and peak memory");
  cmd->add_option("model", o->model, "ONNX model file")->required();
  cmd->add_option("-i,--input", o->inputs, "NAME=FILE.npy (random data for inputs not given)");
  cmd->add_option("--shape", o->shapes, "NAME=1x3x224x224 for inputs with dynamic dims");
  cmd->add_option("-b,--batch", o->batch, "size of dynamic first dims of random inputs")->capture_default_str();
  cmd->add_option("-t,--threads", o->threads, "intra-op threads (0 = all cores)");
  add_limit_flags(cmd, o->limits);
  cmd->add_option("--warmup", o->warmup, "warm-up runs")->capture_default_str();
  cmd->add_option("-n,--iterations", o->iterations, "minimum timed runs")->capture_default_str();
  cmd->add_option("--min-seconds", o->min_seconds, "minimum timed seconds")->capture_default_str();
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_flag("--profile", o->profile, "print per-node time to stderr");
  cmd->add_option("--tuning", o->tuning,
                  "per-layer paths: heuristic, cached (choices `hearth tune` measured; the default) or measure "
                  "(time the candidates of uncached layers at the first run; not saved)")
      ->capture_default_str();
  cmd->add_option("--tune-budget-ms", o->tune_budget_ms, "with --tuning measure: stop measuring after this many ms")
      ->capture_default_str();
  cmd->add_flag("--plain-layout", o->plain_layout,
                "keep convolutions in the plain NCHW layout (no 8-channel blocked regions), to compare");
  cmd->add_flag("--paced", o->paced,
                "after warm-up print a line, then for each line N on stdin run N times and print their "
                "times; the summary follows the end of input (used by bench/compare.py)");
  cmd->callback([o] {
    Status s = bench_model(*o);
    if (!s.ok()) report_error(s);
  });
}

}  // namespace hearth::cli
