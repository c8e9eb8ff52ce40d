// AccessControl: who may do what on `hearth serve`, shared by the REST and
// gRPC front ends so both protocols enforce the same rules.
//
// Each front end maps a request to an AccessNeed (a resource, an action and,
// where it applies, a model) and calls check() before doing anything. check()
// authenticates the caller (bearer token or mTLS certificate subject, see
// security/authorizer.h), authorizes the need against the caller's roles, and
// records every refusal in the audit log. Control-plane actions that pass
// (model load / unload) are recorded with their outcome by record().
// Health endpoints never call check(): they stay open.
// Thread safety: every method may be called from many threads at once.
#pragma once

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
  std::string_view authorization;  // "Bearer <token>" or ""
  std::string_view client;         // peer IP address
  std::string_view cert_subject;   // verified client certificate subject (mTLS) or ""
  std::string_view request_id;
};

struct AccessOptions {
  bool audit_inference = false;  // one audit record per inference request (volume!)
};

class AccessControl {
 public:
  // `audit` may be null (no audit log). `metrics` may be null.
  AccessControl(std::unique_ptr<security::Authorizer> authorizer, std::unique_ptr<security::AuditLog> audit,
                AccessOptions options, telemetry::Registry* metrics);
  ~AccessControl();

  // No authentication (--insecure-no-auth) and nothing to audit per request:
  // front ends may skip check() entirely.
  bool pass_through() const { return pass_through_; }
  bool auth_enabled() const;
  // Registers the hearth_auth_* / hearth_access_* counters (when the registry
  // did not exist yet at construction).
  void attach_metrics(telemetry::Registry& metrics);

  // Authenticates and authorizes. Errors: kUnauthenticated (HTTP 401),
  // kPermissionDenied (403), kResourceExhausted while the client is locked out
  // after repeated failures (HTTP 429; *retry_after_seconds is set).
  Result<security::Principal> check(const Caller& caller, const AccessNeed& need, int* retry_after_seconds = nullptr);
  // The two halves of check(), for calls that authenticate once and then
  // authorize many requests (a gRPC inference stream). `need` is what the
  // caller asked for, for the audit record of a failure.
  Result<security::Principal> authenticate(const Caller& caller, const AccessNeed& need,
                                           int* retry_after_seconds = nullptr);
  Status authorize(const security::Principal& principal, const Caller& caller, const AccessNeed& need);

  // Records the outcome of a request that passed check(), when it is a
  // control-plane action (need.event set) or inference with audit_inference.
  void record(const security::Principal& principal, const Caller& caller, const AccessNeed& need,
              const Status& outcome);
  // Whether record() would write anything for this need (front ends skip the
  // bookkeeping of an outcome otherwise).
  bool records(const AccessNeed& need) const;

  security::AuditLog* audit_log() const { return audit_.get(); }

 private:
  void audit(const security::Principal* principal, const Caller& caller, const AccessNeed& need,
             std::string_view event, std::string_view outcome, std::string_view detail);

  std::unique_ptr<security::Authorizer> authorizer_;
  std::unique_ptr<security::AuditLog> audit_;
  AccessOptions options_;
  bool pass_through_ = false;
  std::shared_ptr<telemetry::Counter> failures_;   // failed authentication (any reason)
  std::shared_ptr<telemetry::Counter> throttled_;  // refused while locked out
  std::shared_ptr<telemetry::Counter> denied_;     // authenticated but not allowed
};

}  // namespace hearth::frontend
