// `hearth doctor`: named checks of what `hearth serve` needs from this machine,
// from seconds (level 1) to minutes (level 3), each ok / warn / fail / skip with
// what it saw. Exit code 1 when a check fails.
//   level 1: CPU and the paths it selects, memory and huge pages, the mode of the
//            key store, auth store and audit log, ports, the repository and every
//            model's configuration, TLS certificates, the clock, disk space, the
//            tuning cache;
//   level 2: + the audit chain verified, a key for every encrypted model;
//   level 3: + every plaintext model loaded and run once on zeros in a confined
//            child process (`hearth probe-model`).
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <spawn.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/file_util.h"
#include "core/machine.h"
#include "kernels/cpu_paths.h"
#include "kernels/path_tuner.h"
#include "repository/model_repository.h"
#include "security/audit_log.h"
#include "security/auth_store.h"
#include "security/certs.h"
#include "security/keystore.h"
#include "security/package.h"
#include "security/private_file.h"

namespace hearth::cli {

namespace {

namespace fs = std::filesystem;

struct DoctorOptions {
  int level = 1;
  bool json = false;
  std::vector<std::string> skip;
  std::string model_repository, key_store, auth_store, audit_log, tls_cert, tls_client_ca, address = "0.0.0.0";
  std::vector<int> ports = {8000, 8001, 8002};
  int probe_seconds = 60;
};

struct Check {
  std::string name, status, detail;  // status: ok, warn, fail, skip
};

class Doctor {
 public:
  explicit Doctor(const DoctorOptions& o) : o_(o), skip_(o.skip.begin(), o.skip.end()) {}

  // Runs `fn` as check `name` at `level` unless skipped or above the level asked for.
  template <typename F>
  void run(const std::string& name, int level, F&& fn) {
    if (skip_.count(name)) return checks_.push_back({name, "skip", "skipped (--skip)"});
    if (level > o_.level) return checks_.push_back({name, "skip", "level " + std::to_string(level)});
    Check c{name, "ok", ""};
    fn(c);
    checks_.push_back(std::move(c));
  }
  const std::vector<Check>& checks() const { return checks_; }

 private:
  const DoctorOptions& o_;
  std::set<std::string> skip_;
  std::vector<Check> checks_;
};

void set(Check& c, const char* status, std::string detail) {
  c.status = status;
  c.detail = std::move(detail);
}

void check_cpu(Check& c) {
  const CpuInfo& cpu = cpu_info();
  std::string d = cpu.summary() + "; kernels " + isa_name(isa_level()) + ", oneDNN " + onednn_isa_name();
  if (isa_level() == IsaLevel::kScalar)
    return set(c, "warn", d + ": no AVX2/FMA here (or HEARTH_MAX_ISA=scalar): the engine runs its baseline paths");
  set(c, "ok", d);
}

void check_memory(Check& c) {
  const size_t gib = physical_memory_bytes() >> 30;
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string mode;
  std::getline(thp, mode);
  std::string d = std::to_string(gib) + " GiB physical memory; transparent huge pages: " + (mode.empty() ? "?" : mode);
  set(c, gib < 2 ? "warn" : "ok", gib < 2 ? d + " (under 2 GiB: large models will not fit)" : d);
}

// A private file (security/private_file.h's rule): owner-only mode, or a failure naming it.
void check_private(Check& c, const std::string& what, const std::string& path) {
  if (path.empty()) return set(c, "skip", what + ": no path (no HOME and no environment variable)");
  Status s = security::check_private_file(path, what);
  if (s.code() == StatusCode::kNotFound) return set(c, "skip", what + " " + path + " does not exist yet");
  if (!s.ok()) return set(c, "fail", std::string(s.message()));
  set(c, "ok", what + " " + path + ": owner-only");
}

void check_ports(Check& c, const DoctorOptions& o) {
  std::vector<std::string> busy, free;
  for (int port : o.ports) {
    if (port <= 0) continue;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, o.address.c_str(), &a.sin_addr) != 1) a.sin_addr.s_addr = htonl(INADDR_ANY);
    const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    if (fd >= 0) ::close(fd);
    (ok ? free : busy).push_back(std::to_string(port));
  }
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  if (!busy.empty())
    return set(c, "fail", "in use on " + o.address + ": " + join(busy) + " (serve would not start; pick other ports)");
  set(c, "ok", "free on " + o.address + ": " + join(free));
}

void check_repository(Check& c, const DoctorOptions& o, std::vector<repository::ModelPlan>* plans) {
  if (o.model_repository.empty()) return set(c, "skip", "no --model-repository");
  auto repo = repository::ModelRepository::open(o.model_repository);
  if (!repo.ok()) return set(c, "fail", std::string(repo.status().message()));
  std::vector<std::string> problems;
  int versions = 0;
  for (const auto& name : repo->model_names()) {
    auto plan = repo->plan(name);
    if (!plan.ok()) {
      problems.push_back(repo->relative(std::string(plan.status().message())));
      continue;
    }
    for (const auto& v : plan->versions) {
      if (!v.problem.ok()) problems.push_back(name + " version " + std::to_string(v.version) + ": " +
                                              repo->relative(std::string(v.problem.message())));
      else ++versions;
    }
    plans->push_back(std::move(plan).value());
  }
  std::string d = std::to_string(repo->model_names().size()) + " models, " + std::to_string(versions) +
                  " versions to load in " + o.model_repository;
  if (problems.empty()) return set(c, "ok", d);
  std::string all;
  for (const auto& p : problems) all += "; " + p;
  set(c, "fail", d + all);
}

void check_certificates(Check& c, const DoctorOptions& o) {
  if (o.tls_cert.empty() && o.tls_client_ca.empty()) return set(c, "skip", "no --tls-cert");
  std::string d;
  const char* status = "ok";
  for (const auto& file : {o.tls_cert, o.tls_client_ca}) {
    if (file.empty()) continue;
    auto left = security::certificate_seconds_left(file);
    if (!left.ok()) return set(c, "fail", std::string(left.status().message()));
    const int64_t days = *left / 86400;
    d += (d.empty() ? "" : "; ") + file + ": ";
    if (*left <= 0) {
      status = "fail";
      d += "expired " + std::to_string(-days) + " days ago";
    } else {
      if (days < 30 && std::string(status) == "ok") status = "warn";
      d += "expires in " + std::to_string(days) + " days";
    }
  }
  set(c, status, d);
}

void check_clock(Check& c) {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  // Hearth was written in 2026: a clock before that is wrong, and expiring
  // tokens, certificates and the audit log's times go wrong with it.
  if (now < 1767225600) return set(c, "fail", std::string("the clock says ") + text + ", before 2026");
  set(c, "ok", std::string("UTC ") + text);
}

void check_disk(Check& c, const DoctorOptions& o) {
  std::vector<std::pair<std::string, std::string>> places;
  const std::string audit = o.audit_log.empty() ? security::AuditLog::default_path() : o.audit_log;
  if (!audit.empty()) places.emplace_back("audit log", fs::path(audit).parent_path().string());
  if (!o.model_repository.empty()) places.emplace_back("repository", o.model_repository);
  std::string d;
  const char* status = "ok";
  for (const auto& [what, dir] : places) {
    struct statvfs vfs{};
    if (dir.empty() || ::statvfs(dir.c_str(), &vfs) != 0) continue;
    const uint64_t free_mib = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize >> 20;
    d += (d.empty() ? "" : "; ") + what + " (" + dir + "): " + std::to_string(free_mib) + " MiB free";
    if (free_mib < 1024) status = "warn";
  }
  if (d.empty()) return set(c, "skip", "no folder to look at");
  set(c, status, std::string(status) == "warn" ? d + " (under 1 GiB somewhere)" : d);
}

void check_tuning(Check& c) {
  const std::string path = TuningCache::default_path();
  if (path.empty()) return set(c, "skip", "HEARTH_TUNING_CACHE=off");
  std::string warning;
  auto cache = TuningCache::open(path, &warning);
  if (!warning.empty()) return set(c, "warn", warning + " (run `hearth tune MODEL` to rewrite it)");
  if (cache->size() == 0)
    return set(c, "ok", "no measured layers in " + path + ": heuristics choose the paths (`hearth tune MODEL`)");
  set(c, "ok", std::to_string(cache->size()) + " measured layers in " + path);
}

void check_audit(Check& c, const DoctorOptions& o) {
  const std::string path = o.audit_log.empty() ? security::AuditLog::default_path() : o.audit_log;
  if (path.empty() || !fs::exists(path)) return set(c, "skip", "no audit log at " + path);
  auto log = security::AuditLog::open_read_only(path);
  if (!log.ok()) return set(c, "fail", std::string(log.status().message()));
  auto report = (*log)->verify();
  if (!report.ok()) return set(c, "fail", std::string(report.status().message()));
  if (!report->ok)
    return set(c, "fail", path + ": record " + std::to_string(report->first_bad_seq) + ": " + report->problem);
  set(c, "ok", path + ": " + std::to_string(report->records) + " records, chain intact");
}

void check_keys(Check& c, const DoctorOptions& o, const std::vector<repository::ModelPlan>& plans) {
  std::vector<const repository::VersionFile*> packages;
  for (const auto& p : plans)
    for (const auto& v : p.versions)
      if (v.encrypted && v.problem.ok()) packages.push_back(&v);
  if (packages.empty()) return set(c, "skip", "no encrypted model in the repository");
  auto store = security::KeyStore::open(o.key_store.empty() ? security::KeyStore::default_path() : o.key_store);
  if (!store.ok()) return set(c, "fail", std::string(store.status().message()));
  std::vector<std::string> missing;
  for (const auto* v : packages) {
    // The header check wants the whole package (its sizes are verified against it).
    auto bytes = read_file(v->path, "model package");
    if (!bytes.ok()) {
      missing.push_back(std::string(bytes.status().message()));
      continue;
    }
    auto id = security::package_key_id(*bytes);
    if (!id.ok()) {
      missing.push_back(v->path + ": " + std::string(id.status().message()));
    } else if (!store->find(*id).ok()) {
      missing.push_back(v->path + " needs key '" + *id + "'");
    }
  }
  if (!missing.empty()) {
    std::string all;
    for (const auto& m : missing) all += (all.empty() ? "" : "; ") + m;
    return set(c, "fail", all);
  }
  set(c, "ok", std::to_string(packages.size()) + " encrypted versions, every key present in " + store->describe());
}

// Each plaintext version loaded and run once on zeros by `hearth probe-model`
// in a confined child, as serve's trial loads do.
void check_models(Check& c, const DoctorOptions& o, const std::vector<repository::ModelPlan>& plans) {
  std::vector<std::string> failed;
  int tried = 0;
  std::error_code ec;
  const std::string self = fs::read_symlink("/proc/self/exe", ec).string();  // the shell's would be sh
  if (ec) return set(c, "fail", "cannot find this program's path in /proc/self/exe: " + ec.message());
  for (const auto& p : plans)
    for (const auto& v : p.versions) {
      if (!v.problem.ok() || v.encrypted) continue;
      ++tried;
      // argv, never a shell: a model's path comes from the repository's folder names.
      const std::string seconds = std::to_string(o.probe_seconds);
      std::vector<std::string> args = {"timeout", seconds, self, "probe-model", "--model", v.path};
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      posix_spawn_file_actions_t files;
      posix_spawn_file_actions_init(&files);
      posix_spawn_file_actions_addopen(&files, 1, "/dev/null", O_WRONLY, 0);
      posix_spawn_file_actions_addopen(&files, 2, "/dev/null", O_WRONLY, 0);
      pid_t pid = -1;
      int rc = posix_spawnp(&pid, "timeout", &files, nullptr, argv.data(), environ);
      posix_spawn_file_actions_destroy(&files);
      if (rc != 0) return set(c, "fail", std::string("cannot start `timeout`: ") + std::strerror(rc));
      while (::waitpid(pid, &rc, 0) < 0 && errno == EINTR) {
      }
      if (rc != 0)
        failed.push_back(p.name + " version " + std::to_string(v.version) + " (probe-model exit " +
                         std::to_string(WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc)) +
                         "; `hearth probe-model --model " + v.path + "` says why)");
    }
  if (tried == 0) return set(c, "skip", "no plaintext model version to load");
  if (!failed.empty()) {
    std::string all;
    for (const auto& f : failed) all += (all.empty() ? "" : "; ") + f;
    return set(c, "fail", all);
  }
  set(c, "ok", std::to_string(tried) + " versions load and run once");
}

Status doctor(const DoctorOptions& o) {
  if (o.level < 1 || o.level > 3) return invalid_argument("--level must be 1, 2 or 3");
  Doctor d(o);
  std::vector<repository::ModelPlan> plans;
  d.run("cpu", 1, check_cpu);
  d.run("memory", 1, check_memory);
  d.run("clock", 1, check_clock);
  d.run("key-store", 1, [&](Check& c) {
    check_private(c, "key store", o.key_store.empty() ? security::KeyStore::default_path() : o.key_store);
  });
  d.run("auth-store", 1, [&](Check& c) {
    check_private(c, "auth store", o.auth_store.empty() ? security::AuthStore::default_path() : o.auth_store);
  });
  d.run("audit-log-file", 1, [&](Check& c) {
    check_private(c, "audit log", o.audit_log.empty() ? security::AuditLog::default_path() : o.audit_log);
  });
  d.run("ports", 1, [&](Check& c) { check_ports(c, o); });
  d.run("repository", 1, [&](Check& c) { check_repository(c, o, &plans); });
  d.run("certificates", 1, [&](Check& c) { check_certificates(c, o); });
  d.run("disk", 1, [&](Check& c) { check_disk(c, o); });
  d.run("tuning-cache", 1, check_tuning);
  d.run("audit-chain", 2, [&](Check& c) { check_audit(c, o); });
  d.run("model-keys", 2, [&](Check& c) { check_keys(c, o, plans); });
  d.run("models-load", 3, [&](Check& c) { check_models(c, o, plans); });

  int failed = 0, warned = 0;
  for (const auto& c : d.checks()) failed += c.status == "fail", warned += c.status == "warn";
  if (o.json) {
    nlohmann::json j = {{"level", o.level}, {"failed", failed}, {"warned", warned}, {"checks", nlohmann::json::array()}};
    for (const auto& c : d.checks()) j["checks"].push_back({{"name", c.name}, {"status", c.status}, {"detail", c.detail}});
    std::cout << j.dump(2) << "\n";
  } else {
    for (const auto& c : d.checks())
      std::cout << (c.status == "ok" ? "ok  " : c.status == "warn" ? "WARN" : c.status == "fail" ? "FAIL" : "skip")
                << "  " << c.name << ": " << c.detail << "\n";
    std::cout << "doctor: " << failed << " failed, " << warned << " warnings (level " << o.level << ")\n";
  }
  if (failed > 0) set_exit_code(kExitRuntime);
  return ok_status();
}

}  // namespace

void add_doctor_command(CLI::App& app) {
  auto o = std::make_shared<DoctorOptions>();
  CLI::App* cmd = app.add_subcommand("doctor", "Check this machine and configuration for hearth serve");
  cmd->add_option("--level", o->level, "1: seconds; 2: + audit chain and model keys; 3: + every model loaded")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "print JSON");
  cmd->add_option("--skip", o->skip, "checks to skip, by name");
  cmd->add_option("--model-repository", o->model_repository, "the repository serve would use");
  cmd->add_option("--model-key-store", o->key_store, "key store (default $HEARTH_KEY_STORE or ~/.config/hearth/keys)");
  cmd->add_option("--auth-store", o->auth_store, "users and tokens file (default as serve)");
  cmd->add_option("--audit-log", o->audit_log, "audit log (default as serve)");
  cmd->add_option("--tls-cert", o->tls_cert, "server certificate (PEM)");
  cmd->add_option("--tls-client-ca", o->tls_client_ca, "client CA (PEM)");
  cmd->add_option("--address", o->address, "address the ports are checked on")->capture_default_str();
  cmd->add_option("--ports", o->ports, "ports serve would listen on (HTTP, gRPC, metrics)")->capture_default_str();
  cmd->add_option("--probe-seconds", o->probe_seconds, "level 3: time limit per model load")->capture_default_str();
  cmd->callback([o] { run_reporting(o, doctor); });
}

}  // namespace hearth::cli
