// `hearth users add|remove|grant|revoke|list` and `hearth tokens issue|revoke|list`:
// the users and API tokens the server checks (see docs/security/access_control.md).
// Roles are checked against the built-in roles or a policy file (--policy). A
// token is printed once, by `tokens issue`; lists never show secrets or hashes.
#include <charconv>
#include <ctime>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "security/auth_store.h"
#include "security/crypto.h"
#include "security/file_lock.h"
#include "security/policy.h"

namespace hearth::cli {

namespace {

using security::AuthStore;

struct AuthOptions {
  std::string auth_store;
  std::string policy;
  std::string name;  // user
  std::string role;
  std::vector<std::string> roles;
  std::vector<std::string> cert_subjects;
  std::string token_id;
  std::string expires = "90d";
  std::string description;
  std::string audit_log;
  bool json = false;
};

std::string store_path(const AuthOptions& o) { return o.auth_store.empty() ? AuthStore::default_path() : o.auth_store; }

std::string iso_time(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int64_t now_unix() { return static_cast<int64_t>(std::time(nullptr)); }

// Records a change to users or tokens in the audit log (see audit_cli_change).
void audit_change(const AuthOptions& o, const std::string& action, const std::string& user,
                  const std::string& detail) {
  audit_cli_change(o.audit_log, action, "users", str_cat("user '", user, "'", detail.empty() ? "" : ": ", detail));
}

Result<security::Policy> load_policy(const AuthOptions& o) {
  if (o.policy.empty()) return security::Policy::builtin();
  return security::Policy::load_file(o.policy);
}

// The role must be one the policy defines.
Status check_role(const security::Policy& policy, const AuthOptions& o, const std::string& role) {
  if (policy.find_role(role)) return ok_status();
  std::string known;
  for (const auto& r : policy.roles()) known += (known.empty() ? "" : ", ") + r.name;
  return invalid_argument("unknown role '", role, "' (", o.policy.empty() ? "built-in roles" : "roles in " + o.policy,
                          ": ", known, ")");
}

Result<AuthStore> open_store(const AuthOptions& o) {
  Result<AuthStore> store = AuthStore::open(store_path(o));
  if (!store.ok() && store.status().code() == StatusCode::kNotFound) {
    return not_found(store.status().message(), " (add a user first: hearth users add NAME --role ROLE)");
  }
  return store;
}

// "90d", "12h", "30m", "45s" -> seconds; "never" -> 0.
Result<int64_t> parse_duration(const std::string& text) {
  if (text == "never") return int64_t{0};
  int64_t n = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, n);
  int64_t unit = 0;
  if (ec == std::errc() && ptr + 1 == end) {
    unit = *ptr == 'd' ? 86400 : *ptr == 'h' ? 3600 : *ptr == 'm' ? 60 : *ptr == 's' ? 1 : 0;
  }
  constexpr int64_t kMaxSeconds = int64_t{100} * 366 * 86400;
  if (unit == 0 || n <= 0 || n > kMaxSeconds / unit) {
    return invalid_argument("invalid --expires '", text, "' (expected e.g. 90d, 12h, 30m or never)");
  }
  return n * unit;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return out.empty() ? "-" : out;
}

Status users_add(const AuthOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(security::StoreLock lock, security::StoreLock::acquire(store_path(o)));
  HEARTH_ASSIGN_OR_RETURN(security::Policy policy, load_policy(o));
  for (const std::string& role : o.roles) HEARTH_RETURN_IF_ERROR(check_role(policy, o, role));
  HEARTH_ASSIGN_OR_RETURN(AuthStore store, AuthStore::open_or_empty(store_path(o)));
  HEARTH_RETURN_IF_ERROR(store.add_user(o.name, o.roles));
  for (const std::string& subject : o.cert_subjects) HEARTH_RETURN_IF_ERROR(store.add_subject(o.name, subject));
  HEARTH_RETURN_IF_ERROR(store.save());
  audit_change(o, "user.add", o.name, "roles " + join(o.roles));
  std::cout << "added user " << o.name << " with roles " << join(o.roles) << " to " << store.path() << "\n";
  return ok_status();
}

Status users_remove(const AuthOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(security::StoreLock lock, security::StoreLock::acquire(store_path(o)));
  HEARTH_ASSIGN_OR_RETURN(AuthStore store, open_store(o));
  size_t tokens = 0;
  for (const auto& t : store.tokens()) tokens += t.user == o.name;
  HEARTH_RETURN_IF_ERROR(store.remove_user(o.name));
  HEARTH_RETURN_IF_ERROR(store.save());
  audit_change(o, "user.remove", o.name, str_cat(tokens, " token(s) removed"));
  std::cout << "removed user " << o.name << " and " << tokens << " token(s) from " << store.path() << "\n";
  return ok_status();
}

Status users_grant(const AuthOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(security::StoreLock lock, security::StoreLock::acquire(store_path(o)));
  HEARTH_ASSIGN_OR_RETURN(security::Policy policy, load_policy(o));
  HEARTH_RETURN_IF_ERROR(check_role(policy, o, o.role));
  HEARTH_ASSIGN_OR_RETURN(AuthStore store, open_store(o));
  HEARTH_RETURN_IF_ERROR(store.grant(o.name, o.role));
  HEARTH_RETURN_IF_ERROR(store.save());
  audit_change(o, "user.grant", o.name, "role " + o.role);
  std::cout << "granted role " << o.role << " to user " << o.name << "\n";
  return ok_status();
}

Status users_revoke(const AuthOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(security::StoreLock lock, security::StoreLock::acquire(store_path(o)));
  HEARTH_ASSIGN_OR_RETURN(AuthStore store, open_store(o));
  HEARTH_RETURN_IF_ERROR(store.revoke(o.name, o.role));
  HEARTH_RETURN_IF_ERROR(store.save());
  audit_change(o, "user.revoke", o.name, "role " + o.role);
  std::cout << "revoked role " << o.role << " from user " << o.name << "\n";
  return ok_status();
}

Status users_list(const AuthOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(AuthStore store, open_store(o));
  if (o.json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& u : store.users()) {
      j.push_back({{"name", u.name}, {"roles", u.roles}, {"cert_subjects", u.cert_subjects},
                   {"created", iso_time(u.created_unix)}});
    }
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return ok_status();
  }
  if (store.users().empty()) std::cout << "no users in " << store.path() << "\n";
  for (const auto& u : store.users()) {
    std::cout << u.name << "\troles=" << join(u.roles) << "\tcreated=" << iso_time(u.created_unix);
    for (const auto& s : u.cert_subjects) std::cout << "\tcert=" << s;
    std::cout << "\n";
  }
  return ok_status();
}

Status tokens_issue(const AuthOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(security::StoreLock lock, security::StoreLock::acquire(store_path(o)));
  HEARTH_ASSIGN_OR_RETURN(int64_t ttl, parse_duration(o.expires));
  HEARTH_ASSIGN_OR_RETURN(AuthStore store, open_store(o));
  HEARTH_ASSIGN_OR_RETURN(security::IssuedToken issued, store.issue_token(o.name, ttl, o.description, now_unix()));
  HEARTH_RETURN_IF_ERROR(store.save());
  const auto& r = issued.record;
  std::string expires = r.expires_unix ? iso_time(r.expires_unix) : "never";
  audit_change(o, "token.issue", r.user, str_cat("token ", r.id, ", expires ", expires));
  if (o.json) {
    nlohmann::json j = {{"token", issued.token}, {"id", r.id}, {"user", r.user}, {"created", iso_time(r.created_unix)},
                        {"expires", r.expires_unix ? nlohmann::json(expires) : nlohmann::json(nullptr)},
                        {"note", "this token is not shown again"}};
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "issued token " << r.id << " for user " << r.user << " (expires " << expires << ")\n"
              << issued.token << "\n"
              << "Store it now: this token is not shown again (Hearth keeps only a salted hash).\n";
  }
  security::cleanse(issued.token);
  return ok_status();
}

Status tokens_revoke(const AuthOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(security::StoreLock lock, security::StoreLock::acquire(store_path(o)));
  HEARTH_ASSIGN_OR_RETURN(AuthStore store, open_store(o));
  std::string owner = "-";
  for (const auto& t : store.tokens())
    if (t.id == o.token_id) owner = t.user;
  HEARTH_RETURN_IF_ERROR(store.revoke_token(o.token_id));
  HEARTH_RETURN_IF_ERROR(store.save());
  audit_change(o, "token.revoke", owner, "token " + o.token_id);
  std::cout << "revoked token " << o.token_id << " (a running server stops accepting it within a second)\n";
  return ok_status();
}

Status tokens_list(const AuthOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(AuthStore store, open_store(o));
  if (!o.name.empty() && !store.find_user(o.name)) return not_found("no user '", o.name, "' in ", store.path());
  int64_t now = now_unix();
  nlohmann::json j = nlohmann::json::array();
  size_t shown = 0;
  for (const auto& t : store.tokens()) {
    if (!o.name.empty() && t.user != o.name) continue;
    ++shown;
    bool expired = t.expires_unix != 0 && now >= t.expires_unix;
    std::string expires = t.expires_unix ? iso_time(t.expires_unix) : "never";
    if (o.json) {
      j.push_back({{"id", t.id}, {"user", t.user}, {"created", iso_time(t.created_unix)},
                   {"expires", t.expires_unix ? nlohmann::json(expires) : nlohmann::json(nullptr)},
                   {"expired", expired}, {"description", t.description}});
    } else {
      std::cout << t.id << "\tuser=" << t.user << "\tcreated=" << iso_time(t.created_unix) << "\texpires=" << expires
                << (expired ? " (expired)" : "") << "\t" << t.description << "\n";
    }
  }
  if (o.json) {
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else if (shown == 0) {
    std::cout << "no tokens in " << store.path() << "\n";
  }
  return ok_status();
}

void add_common_options(CLI::App* cmd, AuthOptions& o) {
  cmd->add_option("--auth-store", o.auth_store,
                  "users and tokens file (default $HEARTH_AUTH_STORE or ~/.config/hearth/auth.json)");
  cmd->add_option("--policy", o.policy, "policy file defining custom roles (default: built-in roles only)");
  add_audit_log_option(cmd, o.audit_log);
}

void add_users_command(CLI::App& app) {
  auto o = std::make_shared<AuthOptions>();
  CLI::App* users = app.add_subcommand("users", "Manage the users allowed to call the server and their roles");
  users->require_subcommand(1);

  CLI::App* add = users->add_subcommand("add", "Add a user with one or more roles");
  add->add_option("name", o->name, "user name")->required();
  add->add_option("--role", o->roles, "role (repeat for several)")->required();
  add->add_option("--cert-subject", o->cert_subjects,
                  "map a client certificate subject (RFC 2253, e.g. \"CN=alice,O=Bank\") to this user");
  add_common_options(add, *o);
  add->callback([o] { run_reporting(o, users_add); });

  CLI::App* remove = users->add_subcommand("remove", "Remove a user and all of its tokens");
  remove->add_option("name", o->name, "user name")->required();
  add_common_options(remove, *o);
  remove->callback([o] { run_reporting(o, users_remove); });

  CLI::App* grant = users->add_subcommand("grant", "Give a user a role");
  grant->add_option("name", o->name, "user name")->required();
  grant->add_option("role", o->role, "role")->required();
  add_common_options(grant, *o);
  grant->callback([o] { run_reporting(o, users_grant); });

  CLI::App* revoke = users->add_subcommand("revoke", "Take a role from a user");
  revoke->add_option("name", o->name, "user name")->required();
  revoke->add_option("role", o->role, "role")->required();
  add_common_options(revoke, *o);
  revoke->callback([o] { run_reporting(o, users_revoke); });

  CLI::App* list = users->add_subcommand("list", "List users, their roles and certificate subjects");
  list->add_flag("--json", o->json, "print JSON");
  add_common_options(list, *o);
  list->callback([o] { run_reporting(o, users_list); });
}

void add_tokens_command(CLI::App& app) {
  auto o = std::make_shared<AuthOptions>();
  CLI::App* tokens = app.add_subcommand("tokens", "Manage API tokens (Authorization: Bearer)");
  tokens->require_subcommand(1);

  CLI::App* issue = tokens->add_subcommand("issue", "Issue a token for a user; it is printed once");
  issue->add_option("user", o->name, "user the token authenticates as")->required();
  issue->add_option("--expires", o->expires, "lifetime: 90d, 12h, 30m or never (default 90d)");
  issue->add_option("--description", o->description, "what the token is for");
  issue->add_flag("--json", o->json, "print JSON");
  add_common_options(issue, *o);
  issue->callback([o] { run_reporting(o, tokens_issue); });

  CLI::App* revoke = tokens->add_subcommand("revoke", "Revoke a token by id");
  revoke->add_option("id", o->token_id, "token id (the 12 hex characters after hth_)")->required();
  add_common_options(revoke, *o);
  revoke->callback([o] { run_reporting(o, tokens_revoke); });

  CLI::App* list = tokens->add_subcommand("list", "List token ids, users and expiry (never secrets)");
  list->add_option("--user", o->name, "only this user's tokens");
  list->add_flag("--json", o->json, "print JSON");
  add_common_options(list, *o);
  list->callback([o] { run_reporting(o, tokens_list); });
}

}  // namespace

void add_auth_commands(CLI::App& app) {
  add_users_command(app);
  add_tokens_command(app);
}

}  // namespace hearth::cli
