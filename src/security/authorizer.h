// What the server calls for each request: who is calling (authenticate) and
// may they do this (authorize). Thread-safe.
//
// Authentication takes a bearer token first, else a verified mTLS client
// certificate subject mapped to a user. Failed attempts are counted per
// client address; past a limit the client is locked out for 1, 2, 4 ... s
// (capped), and its attempts are refused without checking the token. The
// users-and-tokens file is re-read when it changes, so `hearth tokens revoke`
// and `hearth users grant` take effect without a restart.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "security/auth_store.h"
#include "security/policy.h"

namespace hearth::security {

struct Principal {
  std::string user;
  std::vector<std::string> roles;
  std::string method;  // "token" | "certificate" | "none"
};

struct Credentials {
  std::string_view authorization;  // HTTP Authorization header / gRPC "authorization" metadata: "Bearer <token>"; "" when absent
  std::string_view client;         // client address (IP) for throttling
  std::string_view cert_subject;   // verified mTLS client certificate subject (RFC 2253), "" when none
};

struct AuthorizerOptions {
  std::string store_path;   // AuthStore file (required)
  std::string policy_path;  // "" = built-in roles only
  int max_failures = 5;     // failed attempts per key (token, or address) within the window before it is locked out
  int failure_window_seconds = 60;
  int max_lockout_seconds = 300;  // lockout doubles per further failure: 1, 2, 4 ... s, capped here
  size_t max_tracked_clients = 10000;  // failure table size; the least recently failing key is evicted
  // Monotonic clock in milliseconds for lockouts and reload checks (tests); default steady_clock.
  std::function<int64_t()> clock_ms;
  // Wall clock in unix seconds for token expiry (tests); default time().
  std::function<int64_t()> unix_now;
};

class Authorizer {
 public:
  // Loads store + policy; a user holding a role the policy does not define is
  // an error naming both. NOT_FOUND when the store file does not exist.
  static Result<std::unique_ptr<Authorizer>> create(AuthorizerOptions options);
  // --insecure-no-auth: authenticate() always gives {"anonymous", {"admin"}, "none"}; authorize() always OK.
  static std::unique_ptr<Authorizer> allow_all();

  Authorizer(const Authorizer&) = delete;
  Authorizer& operator=(const Authorizer&) = delete;

  bool enabled() const { return enabled_; }
  // UNAUTHENTICATED with the reason ("missing credentials: ...", "invalid token",
  // "token expired", "malformed Authorization header", "certificate subject ...
  // is not mapped to a user"). Credentials are checked first: a valid one is
  // never refused because of others' failures. A failed attempt counts against
  // the token it names when that token exists, else against the client's
  // address (an IPv6 /64 as one); once that key has failed max_failures times
  // in the window, its further failures answer RESOURCE_EXHAUSTED and
  // *retry_after (when given) is set to the seconds left. Missing credentials
  // do not count; a token's success resets its count.
  Result<Principal> authenticate(const Credentials& credentials, int* retry_after = nullptr);
  // PERMISSION_DENIED naming user, roles, action, resource and model:
  // "user 'bob' (roles: viewer) may not infer on inference for model 'mlp'".
  Status authorize(const Principal& principal, Resource resource, Action action, std::string_view model = {}) const;
  // Seconds until failures counted against `key` may be tried again; 0 when not
  // locked out. Keys: "token <id>", "address <ip>", "address <ipv6 prefix>/64".
  int retry_after_seconds(std::string_view key) const;

  const Policy& policy() const { return policy_; }

 private:
  struct StoreFile {
    int64_t mtime_ns = -1;
    int64_t size = -1;
    uint64_t inode = 0;
    bool operator==(const StoreFile&) const = default;
  };
  struct Failures {
    int count = 0;
    int64_t last_failure_ms = 0;
    int64_t locked_until_ms = 0;
    std::list<std::string>::iterator order;  // position in lru_
  };

  Authorizer() = default;
  int64_t now_ms() const;
  int64_t now_unix() const;
  std::shared_ptr<const AuthStore> current_store();
  void maybe_reload();
  Status check_roles(const AuthStore& store) const;
  Result<Principal> check_credentials(const AuthStore& store, const Credentials& credentials) const;
  std::string failure_key(const AuthStore& store, const Credentials& credentials) const;
  Status record_failure(std::string_view key, const Status& reason);
  void record_success(std::string_view key);

  bool enabled_ = true;
  AuthorizerOptions options_;
  Policy policy_;

  mutable std::mutex store_mu_;  // guards store_ and file_
  std::shared_ptr<const AuthStore> store_;
  StoreFile file_;
  std::atomic<int64_t> next_reload_check_ms_{0};

  mutable std::mutex failures_mu_;  // guards failures_ and lru_
  std::unordered_map<std::string, Failures> failures_;
  std::list<std::string> lru_;  // least recently failing client first
  // failures_.size(), readable without the lock: while no client has failed
  // (the normal case) a request takes no lock for the lockout table.
  std::atomic<size_t> tracked_clients_{0};
};

}  // namespace hearth::security
