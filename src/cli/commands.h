// Subcommand registration for the hearth CLI. Exit codes: 0 ok, 1 runtime error, 2 usage error.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "core/status.h"

namespace hearth::cli {

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

// The exit code set by the subcommand that ran.
int exit_code();
void set_exit_code(int code);
// Prints "error: <message>" to stderr and records exit code 1.
void report_error(const Status& s);
// Records a local control-plane change (users, tokens, keys) in the audit log
// (`audit_log`, else $HEARTH_AUDIT_LOG or ~/.config/hearth/audit.db, created
// if needed) as <login>@cli. The change is already made: a log that cannot be
// written is a warning on stderr.
void audit_cli_change(const std::string& audit_log, const std::string& action, const std::string& resource,
                      const std::string& detail);
// The --audit-log option of commands that change users, tokens or keys.
void add_audit_log_option(CLI::App* cmd, std::string& audit_log);

// Limits against hostile models and inputs (--max-tensor-bytes, --max-memory-bytes);
// 0 keeps the engine's defaults (SessionOptions).
struct LimitFlags {
  size_t max_tensor_bytes = 0;
  size_t max_memory_bytes = 0;
};
void add_limit_flags(CLI::App* cmd, LimitFlags& flags);

// Runs a subcommand on its options and reports a failure (exit code 1).
template <typename Options, typename Fn>
void run_reporting(const std::shared_ptr<Options>& options, Fn fn) {
  Status s = fn(*options);
  if (!s.ok()) report_error(s);
}

void add_conformance_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_ops_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_security_commands(CLI::App& app);  // keys, encrypt, decrypt
void add_auth_commands(CLI::App& app);      // users, tokens
void add_audit_command(CLI::App& app);      // audit verify|list
void add_certs_command(CLI::App& app);      // certs self-signed
void add_sign_command(CLI::App& app);       // sign (SM2)
void add_probe_command(CLI::App& app);      // probe-model (trial loads of untrusted models)
void add_cpu_command(CLI::App& app);        // cpu (the CPU probe and the paths in use)
void add_optimize_command(CLI::App& app);   // optimize quantize (optimize/quantize.h)
void add_doctor_command(CLI::App& app);     // doctor (checks of this machine and configuration)
void add_tune_command(CLI::App& app);       // tune (per-layer path measurement, kernels/path_tuner.h)
struct PlanRun;
// MODEL, --batch, --shape, --threads of a command that runs a model once for its plan.
void add_plan_run_options(CLI::App* cmd, PlanRun& r);
void add_release_command(CLI::App& app);    // release start|status|pause|resume|promote|abort|history|which|...

}  // namespace hearth::cli
