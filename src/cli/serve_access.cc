// `hearth serve` access-control flags: deny by default. Authentication is on
// unless --insecure-no-auth is given and every listener is on loopback.
#include "cli/serve_access.h"

#include <arpa/inet.h>

#include <cstdlib>
#include <filesystem>

#include "security/audit_log.h"
#include "security/auth_store.h"
#include "security/authorizer.h"
#include "telemetry/log.h"

namespace hearth::cli {

bool is_loopback_address(const std::string& address) {
  if (address == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, address.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, address.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

void add_access_flags(CLI::App* cmd, AccessFlags& f) {
  cmd->add_option("--auth-store", f.auth_store,
                  "users and API tokens (see `hearth users`, `hearth tokens`); default $HEARTH_AUTH_STORE or "
                  "~/.config/hearth/auth.json");
  cmd->add_option("--policy", f.policy, "YAML file of custom roles (built-in: admin, operator, viewer)");
  cmd->add_flag("--insecure-no-auth", f.insecure_no_auth,
                "serve without authentication (only when every listener is on a loopback address)");
  cmd->add_option("--audit-log", f.audit_log,
                  "audit log (SQLite); default with auth on: $HEARTH_AUDIT_LOG or ~/.config/hearth/audit.db");
  cmd->add_flag("--audit-inference", f.audit_inference, "also audit every inference request (volume!)");
}

Result<std::unique_ptr<frontend::RequestGuard>> make_request_guard(const AccessFlags& f,
                                                                  const std::vector<std::string>& listen_addresses) {
  std::unique_ptr<security::Authorizer> authorizer;
  if (f.insecure_no_auth) {
    for (const std::string& a : listen_addresses)
      if (!is_loopback_address(a))
        return invalid_argument("--insecure-no-auth is only allowed when every listener is on a loopback address; '",
                                a, "' is not (use tokens: `hearth users add`, `hearth tokens issue`)");
    if (!f.auth_store.empty() || !f.policy.empty())
      return invalid_argument("--insecure-no-auth cannot be combined with --auth-store or --policy");
    authorizer = security::Authorizer::allow_all();
    telemetry::log_warn("auth_disabled", {telemetry::field("reason", "--insecure-no-auth: every request is allowed")});
  } else {
    security::AuthorizerOptions options;
    options.store_path = f.auth_store.empty() ? security::AuthStore::default_path() : f.auth_store;
    options.policy_path = f.policy;
    auto created = security::Authorizer::create(options);
    if (!created.ok())
      return Status(created.status().code(),
                    str_cat(created.status().message(),
                            " (authentication is on by default: create users with `hearth users add` and tokens with "
                            "`hearth tokens issue`, or start with --insecure-no-auth on a loopback address)"));
    authorizer = std::move(created).value();
  }
  std::unique_ptr<security::AuditLog> audit;
  std::string audit_path = f.audit_log;
  if (audit_path.empty() && !f.insecure_no_auth) audit_path = security::AuditLog::default_path();
  if (!audit_path.empty()) {
    // The default folder may not exist yet on a fresh machine.
    std::error_code ec;
    std::filesystem::path parent = std::filesystem::path(audit_path).parent_path();
    if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
      std::filesystem::create_directories(parent, ec);
      if (!ec) std::filesystem::permissions(parent, std::filesystem::perms::owner_all, ec);
    }
    HEARTH_ASSIGN_OR_RETURN(audit, security::AuditLog::open(audit_path));
    telemetry::log_info("audit_log", {telemetry::field("path", audit_path)});
  } else if (f.audit_inference) {
    return invalid_argument("--audit-inference needs --audit-log");
  }
  frontend::GuardOptions options;
  options.audit_inference = f.audit_inference;
  options.access_log = f.access_log;
  return std::make_unique<frontend::RequestGuard>(std::move(authorizer), std::move(audit), options, nullptr);
}

}  // namespace hearth::cli
