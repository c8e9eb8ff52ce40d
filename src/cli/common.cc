#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "cli/commands.h"
#include "security/audit_log.h"

namespace hearth::cli {

namespace {
int g_exit_code = kExitOk;
}

int exit_code() { return g_exit_code; }
void set_exit_code(int code) { g_exit_code = code; }

void report_error(const Status& s) {
  std::cerr << "error: " << s.message() << "\n";
  g_exit_code = kExitRuntime;  // usage errors are CLI11's, mapped to kExitUsage in main()
}

void audit_cli_change(const std::string& audit_log, const std::string& action, const std::string& resource,
                      const std::string& detail) {
  const std::string path = audit_log.empty() ? security::AuditLog::default_path() : audit_log;
  if (path.empty()) return;
  auto log = security::AuditLog::open(path);
  Status s = log.status();
  if (log.ok()) {
    const char* who = std::getenv("USER");
    security::AuditEvent e;
    e.user = str_cat(who && *who ? who : "uid-" + std::to_string(::getuid()), "@cli");
    e.action = action;
    e.resource = resource;
    e.client = "cli";
    e.outcome = "ok";
    e.detail = detail;
    s = (*log)->append(e);
  }
  if (!s.ok()) std::cerr << "warning: the change is made but not recorded in the audit log: " << s.message() << "\n";
}

void add_audit_log_option(CLI::App* cmd, std::string& audit_log) {
  cmd->add_option("--audit-log", audit_log,
                  "where changes are recorded (default $HEARTH_AUDIT_LOG, else ~/.config/hearth/audit.db)");
}

void add_limit_flags(CLI::App* cmd, LimitFlags& flags) {
  cmd->add_option("--max-tensor-bytes", flags.max_tensor_bytes,
                  "largest tensor a model may make or be fed, in bytes (0 = half the machine's memory)");
  cmd->add_option("--max-memory-bytes", flags.max_memory_bytes,
                  "most bytes a run's tensors may hold at once (0 = no limit)");
}

}  // namespace hearth::cli
