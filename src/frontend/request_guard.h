// RequestGuard: the one flow every request of a front end takes, the same for REST
// and gRPC, so both protocols enforce the same rules:
//
//   1. authenticate, as soon as the credentials are in: over HTTP when the header
//      has arrived, before the body is read (HttpServer's header check); over gRPC
//      at the start of the call (the synchronous API hands a call over with its
//      message);
//   2. authorize the request's need (a resource, an action and, where it applies,
//      a model): a need that depends on the body (an upload's kind, each request of
//      a gRPC stream) is authorized once the body is read;
//   3. record the outcome: control-plane actions (model load / unload / upload) and,
//      with audit_inference, each inference go to the audit log; every refusal too;
//   4. with --access-log, one JSON line per request (http_request / grpc_request).
//
// Each front end maps its request to an AccessNeed and keeps a GuardedRequest for
// it. Health endpoints are open (need.open): no credentials, nothing recorded.
// Thread safety: every method may be called from many threads at once.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/status.h"
#include "security/audit_log.h"
#include "security/authorizer.h"
#include "security/policy.h"
#include "telemetry/metrics.h"

namespace hearth::frontend {

struct AccessNeed {
  security::Resource resource = security::Resource::kSystemConfig;
  security::Action action = security::Action::kRead;
  std::string model;    // "" when the request is not about one model
  std::string version;  // "" when none was named
  // The audit action for control-plane requests ("model.load"); empty for
  // reads and inference (which are audited only with audit_inference).
  std::string event;
  // A second (resource, action) that also grants the request: model metadata
  // is readable with models:read or with inference:infer (a client must learn
  // the shapes of what it may run).
  std::optional<std::pair<security::Resource, security::Action>> alternative;
  // Any authenticated caller may go on (unknown paths: they get their 404
  // only after authentication, so probing reveals nothing).
  bool any_authenticated = false;
  // Health endpoints: no credentials needed.
  bool open = false;
};

// Who sent a request, as the transport saw it.
struct Caller {
  std::string authorization;  // "Bearer <token>" or ""
  std::string client;         // peer IP address
  std::string cert_subject;   // verified client certificate subject (mutual TLS) or ""
  std::string request_id;     // the client's (short, printable) or a new one
};

// One request on its way through the guard.
struct GuardedRequest {
  GuardedRequest() = default;
  explicit GuardedRequest(Caller c) : caller(std::move(c)) {}

  Caller caller;
  // Set once authenticated (shared: an HTTP header check hands it to the handler).
  std::shared_ptr<const security::Principal> principal;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
};

struct GuardOptions {
  bool audit_inference = false;  // one audit record per inference request (volume!)
  bool access_log = false;       // one JSON log line per request
};

class RequestGuard {
 public:
  // `authorizer` null: everything allowed. `audit` may be null (no audit log),
  // `metrics` too (see attach_metrics).
  RequestGuard(std::unique_ptr<security::Authorizer> authorizer, std::unique_ptr<security::AuditLog> audit,
               GuardOptions options, telemetry::Registry* metrics);
  ~RequestGuard();

  // No authentication and nothing to audit per request: front ends may skip
  // steps 1 to 3 for the data plane.
  bool pass_through() const { return pass_through_; }
  bool auth_enabled() const;
  bool access_log() const { return options_.access_log; }
  // Registers the hearth_auth_* / hearth_access_* counters.
  void attach_metrics(telemetry::Registry& metrics);

  // Step 1: authenticates `request` (once; later calls return at once). Errors:
  // kUnauthenticated (HTTP 401), kResourceExhausted while the client is locked
  // out after repeated failures (HTTP 429; *retry_after_seconds is set). `need`
  // is what the caller asked for, for the audit record of a failure.
  Status authenticate(GuardedRequest& request, const AccessNeed& need, int* retry_after_seconds = nullptr);
  // Step 2 for an authenticated request: kPermissionDenied (403) naming user,
  // roles, action and model, recorded in the audit log.
  Status authorize(const GuardedRequest& request, const AccessNeed& need);
  // Steps 1 and 2.
  Status admit(GuardedRequest& request, const AccessNeed& need, int* retry_after_seconds = nullptr);
  // Step 3: records the outcome of an admitted request when the need asks for it.
  void record(const GuardedRequest& request, const AccessNeed& need, const Status& outcome);
  // Whether record() would write anything for this need.
  bool records(const AccessNeed& need) const;
  // Step 4: the access-log lines.
  void log_http(const GuardedRequest& request, std::string_view method, std::string_view target, int status,
                size_t bytes_in, size_t bytes_out) const;
  void log_grpc(const GuardedRequest& request, std::string_view rpc, std::string_view code) const;

  security::AuditLog* audit_log() const { return audit_.get(); }

 private:
  void audit(const security::Principal* principal, const Caller& caller, const AccessNeed& need,
             std::string_view event, std::string_view outcome, std::string_view detail);

  std::unique_ptr<security::Authorizer> authorizer_;
  std::unique_ptr<security::AuditLog> audit_;
  GuardOptions options_;
  bool pass_through_ = false;
  std::shared_ptr<telemetry::Counter> failures_;   // failed authentication (any reason)
  std::shared_ptr<telemetry::Counter> throttled_;  // refused while locked out
  std::shared_ptr<telemetry::Counter> denied_;     // authenticated but not allowed
};

}  // namespace hearth::frontend
