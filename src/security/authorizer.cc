// Per-request authentication, lockout of failing clients, store reloads and
// the role check (see authorizer.h).
#include "security/authorizer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "security/crypto.h"
#include "telemetry/log.h"

namespace hearth::security {

namespace {

constexpr int64_t kReloadCheckIntervalMs = 1000;

Status unauthenticated(const std::string& msg) { return Status(StatusCode::kUnauthenticated, msg); }

// "Bearer <token>" (scheme case-insensitive, RFC 7235); "" when the header is not of that shape.
std::string_view bearer_token(std::string_view header) {
  constexpr std::string_view kScheme = "bearer";
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  while (!header.empty() && header.back() == ' ') header.remove_suffix(1);
  if (header.size() <= kScheme.size() + 1) return {};
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return {};
  }
  std::string_view rest = header.substr(kScheme.size());
  if (rest.front() != ' ') return {};
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (rest.empty() || rest.find(' ') != std::string_view::npos) return {};
  return rest;
}

std::string join_roles(const std::vector<std::string>& roles) {
  if (roles.empty()) return "none";
  std::string out;
  for (const std::string& r : roles) out += (out.empty() ? "" : ", ") + r;
  return out;
}

int seconds_left(int64_t until_ms, int64_t now_ms) {
  if (until_ms <= now_ms) return 0;
  return static_cast<int>((until_ms - now_ms + 999) / 1000);
}

}  // namespace

Result<std::unique_ptr<Authorizer>> Authorizer::create(AuthorizerOptions options) {
  if (options.store_path.empty()) return invalid_argument("access control needs an auth store file");
  if (options.max_failures < 1 || options.failure_window_seconds < 1 || options.max_lockout_seconds < 1) {
    return invalid_argument("authentication throttling limits must be at least 1");
  }
  std::unique_ptr<Authorizer> a(new Authorizer());
  a->options_ = std::move(options);
  if (a->options_.policy_path.empty()) {
    a->policy_ = Policy::builtin();
  } else {
    HEARTH_ASSIGN_OR_RETURN(a->policy_, Policy::load_file(a->options_.policy_path));
  }
  struct stat st {};
  if (::stat(a->options_.store_path.c_str(), &st) == 0) {
    a->file_ = {static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                static_cast<int64_t>(st.st_size), static_cast<uint64_t>(st.st_ino)};
  }
  Result<AuthStore> store = AuthStore::open(a->options_.store_path);
  if (!store.ok() && store.status().code() == StatusCode::kNotFound) {
    return not_found(store.status().message(), " (add a user with: hearth users add NAME --role admin --auth-store ",
                     a->options_.store_path, ")");
  }
  HEARTH_RETURN_IF_ERROR(store.status());
  HEARTH_RETURN_IF_ERROR(a->check_roles(*store));
  a->store_ = std::make_shared<const AuthStore>(std::move(store).value());
  a->next_reload_check_ms_ = a->now_ms() + kReloadCheckIntervalMs;
  return a;
}

std::unique_ptr<Authorizer> Authorizer::allow_all() {
  std::unique_ptr<Authorizer> a(new Authorizer());
  a->enabled_ = false;
  a->policy_ = Policy::builtin();
  return a;
}

int64_t Authorizer::now_ms() const {
  if (options_.clock_ms) return options_.clock_ms();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t Authorizer::now_unix() const {
  if (options_.unix_now) return options_.unix_now();
  return static_cast<int64_t>(std::time(nullptr));
}

Status Authorizer::check_roles(const AuthStore& store) const {
  std::string defined_by = options_.policy_path.empty() ? "is not a built-in role (admin, operator, viewer)"
                                                       : "is not defined in policy " + options_.policy_path;
  for (const User& u : store.users()) {
    for (const std::string& role : u.roles) {
      if (!policy_.find_role(role)) {
        return invalid_argument("user '", u.name, "' in auth store ", options_.store_path, " has role '", role,
                                "', which ", defined_by);
      }
    }
  }
  return ok_status();
}

std::shared_ptr<const AuthStore> Authorizer::current_store() {
  std::lock_guard<std::mutex> lock(store_mu_);
  return store_;
}

void Authorizer::maybe_reload() {
  int64_t now = now_ms();
  int64_t due = next_reload_check_ms_.load(std::memory_order_relaxed);
  if (now < due) return;
  // One thread checks; the others keep using the current store.
  if (!next_reload_check_ms_.compare_exchange_strong(due, now + kReloadCheckIntervalMs)) return;
  StoreFile seen;
  struct stat st {};
  if (::stat(options_.store_path.c_str(), &st) == 0) {
    seen = {static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
            static_cast<int64_t>(st.st_size), static_cast<uint64_t>(st.st_ino)};
  }
  {
    std::lock_guard<std::mutex> lock(store_mu_);
    if (seen == file_) return;
    file_ = seen;  // a bad file is reported once, not every second
  }
  Result<AuthStore> store = AuthStore::open(options_.store_path);
  Status s = store.status();
  // A role this server's policy lacks grants nothing; refusing the whole file
  // for it would also ignore every later revocation, so it is only a warning.
  if (s.ok()) {
    if (Status roles = check_roles(*store); !roles.ok())
      telemetry::log_warn("auth_store_unknown_role", {telemetry::field("path", options_.store_path),
                                                      telemetry::field("error", roles.message()),
                                                      telemetry::field("effect", "that role grants nothing")});
  }
  if (!s.ok()) {
    telemetry::log_warn("auth_store_reload_failed",
                        {telemetry::field("path", options_.store_path), telemetry::field("error", s.message()),
                         telemetry::field("action", "keeping the last good users and tokens")});
    return;
  }
  auto fresh = std::make_shared<const AuthStore>(std::move(store).value());
  telemetry::log_info("auth_store_reloaded", {telemetry::field("path", options_.store_path),
                                              telemetry::field("users", fresh->users().size()),
                                              telemetry::field("tokens", fresh->tokens().size())});
  std::lock_guard<std::mutex> lock(store_mu_);
  // A slower reload of an older version must not replace a newer one that
  // another thread installed meanwhile.
  if (file_ == seen) store_ = std::move(fresh);
}

Result<Principal> Authorizer::check_credentials(const AuthStore& store, const Credentials& credentials) const {
  if (!credentials.authorization.empty()) {
    std::string_view token = bearer_token(credentials.authorization);
    if (token.empty()) return unauthenticated("malformed Authorization header: expected 'Bearer <token>'");
    HEARTH_ASSIGN_OR_RETURN(const User* user, store.verify_token(token, now_unix()));
    return Principal{user->name, user->roles, "token"};
  }
  if (!credentials.cert_subject.empty()) {
    const User* user = store.find_user_by_subject(credentials.cert_subject);
    if (!user) {
      return unauthenticated(
          str_cat("client certificate subject '", credentials.cert_subject, "' is not mapped to a user"));
    }
    return Principal{user->name, user->roles, "certificate"};
  }
  return unauthenticated("missing credentials: send 'Authorization: Bearer <token>'");
}

static std::string failure_key_for_address(std::string_view client) {
  // IPv6 clients rotating addresses within their /64 count as one.
  in6_addr a6{};
  const std::string text(client);
  if (text.find(':') != std::string::npos && inet_pton(AF_INET6, text.c_str(), &a6) == 1) {
    char buf[INET6_ADDRSTRLEN] = {};
    for (int i = 8; i < 16; ++i) a6.s6_addr[i] = 0;
    inet_ntop(AF_INET6, &a6, buf, sizeof(buf));
    return std::string("address ") + buf + "/64";
  }
  return "address " + text;
}

// What a failed attempt counts against: a token that exists (someone guessing
// its secret, or its owner with a revoked or expired copy), else the client's
// address (malformed headers, other schemes, unknown token ids).
std::string Authorizer::failure_key(const AuthStore& store, const Credentials& credentials) const {
  const std::string_view token = bearer_token(credentials.authorization);
  if (!token.empty()) {
    Result<TokenParts> parts = parse_token(token);
    if (parts.ok()) {
      std::string id = parts->id;
      cleanse(parts->secret);
      if (store.has_token_id(id)) return "token " + id;
    }
  }
  return failure_key_for_address(credentials.client);
}

// Credentials are checked first, whatever the failures: a valid credential is
// never refused because of someone else's failed attempts (behind a NAT, a
// proxy or a Service, one misconfigured client must not lock everyone out).
// A failed attempt counts against its key; once the key is locked out, further
// failures with it answer 429 (the attempt was invalid either way).
Result<Principal> Authorizer::authenticate(const Credentials& credentials, int* retry_after) {
  if (!enabled_) return Principal{"anonymous", {"admin"}, "none"};
  maybe_reload();
  std::shared_ptr<const AuthStore> store = current_store();
  Result<Principal> principal = check_credentials(*store, credentials);
  if (principal.ok()) {
    if (principal->method == "token") record_success(failure_key(*store, credentials));
    return principal;
  }
  // Only a presented token or header that fails counts: a missing header cannot guess,
  // and a certificate subject was already verified by TLS.
  if (credentials.authorization.empty()) return principal.status();
  const std::string key = failure_key(*store, credentials);
  if (int wait = retry_after_seconds(key); wait > 0) {
    if (retry_after) *retry_after = wait;
    return resource_exhausted("too many failed authentication attempts with this ", key.rfind("token", 0) == 0 ? "token" : "address",
                              " (", key, "); retry in ", wait, " s");
  }
  return record_failure(key, principal.status());
}

Status Authorizer::record_failure(std::string_view client_key, const Status& reason) {
  int64_t now = now_ms();
  std::lock_guard<std::mutex> lock(failures_mu_);
  std::string key(client_key);
  auto it = failures_.find(key);
  if (it == failures_.end()) {
    if (failures_.size() >= std::max<size_t>(1, options_.max_tracked_clients)) {
      failures_.erase(lru_.front());
      lru_.pop_front();
    }
    it = failures_.emplace(key, Failures{}).first;
    tracked_clients_.store(failures_.size(), std::memory_order_relaxed);
    it->second.order = lru_.insert(lru_.end(), key);
  } else {
    lru_.splice(lru_.end(), lru_, it->second.order);
  }
  Failures& f = it->second;
  // The window runs from the last failure or the end of the last lockout, whichever is later,
  // so a long lockout does not wipe the count that doubles it.
  int64_t quiet_since = std::max(f.last_failure_ms, f.locked_until_ms);
  if (f.count > 0 && now - quiet_since > int64_t{options_.failure_window_seconds} * 1000) {
    f.count = 0;
    f.locked_until_ms = 0;
  }
  ++f.count;
  f.last_failure_ms = now;
  if (f.count >= options_.max_failures) {
    int doublings = std::min(f.count - options_.max_failures, 30);
    int64_t lock_s = std::min<int64_t>(int64_t{1} << doublings, options_.max_lockout_seconds);
    f.locked_until_ms = now + lock_s * 1000;
    telemetry::log_warn("auth_client_locked_out", {telemetry::field("key", std::string(client_key)),
                                                   telemetry::field("failures", f.count),
                                                   telemetry::field("seconds", lock_s)});
  }
  return reason;
}

void Authorizer::record_success(std::string_view key) {
  if (tracked_clients_.load(std::memory_order_relaxed) == 0) return;
  std::lock_guard<std::mutex> lock(failures_mu_);
  auto it = failures_.find(std::string(key));
  if (it == failures_.end()) return;
  lru_.erase(it->second.order);
  failures_.erase(it);
  tracked_clients_.store(failures_.size(), std::memory_order_relaxed);
}

int Authorizer::retry_after_seconds(std::string_view key) const {
  if (!enabled_ || tracked_clients_.load(std::memory_order_relaxed) == 0) return 0;
  int64_t now = now_ms();
  std::lock_guard<std::mutex> lock(failures_mu_);
  auto it = failures_.find(std::string(key));
  if (it == failures_.end()) return 0;
  return seconds_left(it->second.locked_until_ms, now);
}

Status Authorizer::authorize(const Principal& principal, Resource resource, Action action,
                             std::string_view model) const {
  if (!enabled_) return ok_status();
  if (policy_.allows(principal.roles, resource, action, model)) return ok_status();
  std::string msg = str_cat("user '", principal.user, "' (roles: ", join_roles(principal.roles), ") may not ",
                            action_name(action), " on ", resource_name(resource));
  if (!model.empty()) msg += str_cat(" for model '", model, "'");
  return Status(StatusCode::kPermissionDenied, msg);
}

}  // namespace hearth::security
