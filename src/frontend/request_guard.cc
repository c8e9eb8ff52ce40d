// RequestGuard: authentication, authorization, the audit trail of refusals and
// control-plane actions, and the access log, for both front ends.
#include "frontend/request_guard.h"

#include <algorithm>

#include "telemetry/log.h"

namespace hearth::frontend {

namespace {

std::string need_text(const AccessNeed& need) {
  std::string text = str_cat(security::action_name(need.action), " on ", security::resource_name(need.resource));
  if (!need.model.empty()) text += str_cat(" for model '", need.model, "'");
  return text;
}

std::string_view or_dash(std::string_view s) { return s.empty() ? std::string_view("-") : s; }

int64_t micros_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

RequestGuard::RequestGuard(std::unique_ptr<security::Authorizer> authorizer, std::unique_ptr<security::AuditLog> audit,
                           GuardOptions options, telemetry::Registry* metrics)
    : authorizer_(std::move(authorizer)), audit_(std::move(audit)), options_(options) {
  if (!authorizer_) authorizer_ = security::Authorizer::allow_all();
  pass_through_ = !authorizer_->enabled() && !(options_.audit_inference && audit_);
  if (metrics) attach_metrics(*metrics);
}

void RequestGuard::attach_metrics(telemetry::Registry& metrics) {
  failures_ = metrics.counter("hearth_auth_failures_total", "Requests refused because authentication failed");
  throttled_ = metrics.counter("hearth_auth_throttled_total",
                               "Requests refused because their client failed authentication too often");
  denied_ = metrics.counter("hearth_access_denied_total", "Authenticated requests refused by the access policy");
}

RequestGuard::~RequestGuard() = default;

bool RequestGuard::auth_enabled() const { return authorizer_->enabled(); }

Status RequestGuard::admit(GuardedRequest& request, const AccessNeed& need, int* retry_after_seconds) {
  if (need.open) return ok_status();
  HEARTH_RETURN_IF_ERROR(authenticate(request, need, retry_after_seconds));
  if (need.any_authenticated) return ok_status();
  return authorize(request, need);
}

Status RequestGuard::authenticate(GuardedRequest& request, const AccessNeed& need, int* retry_after_seconds) {
  if (request.principal) return ok_status();
  const Caller& caller = request.caller;
  security::Credentials credentials{caller.authorization, caller.client, caller.cert_subject};
  int wait = 0;
  auto principal = authorizer_->authenticate(credentials, &wait);
  if (principal.ok()) {
    request.principal = std::make_shared<const security::Principal>(std::move(principal).value());
    return ok_status();
  }
  const bool locked_out = principal.status().code() == StatusCode::kResourceExhausted;
  if (locked_out) {
    if (retry_after_seconds) *retry_after_seconds = std::max(1, wait);
    if (throttled_) throttled_->add();
  } else if (failures_) {
    failures_->add();
  }
  // Only attempts that presented credentials are written one by one (they
  // count towards the lockout, so their number is bounded); throttled ones
  // and requests without any credentials are counted in metrics only, or an
  // anonymous client could fill the audit log.
  const bool presented = !caller.authorization.empty() || !caller.cert_subject.empty();
  if (!locked_out && presented) audit(nullptr, caller, need, "auth.failed", "denied", principal.status().message());
  telemetry::Logger::global().log(presented ? telemetry::LogLevel::kWarn : telemetry::LogLevel::kDebug, "auth_failed",
                                  {telemetry::field("client", caller.client),
                                   telemetry::field("request_id", caller.request_id),
                                   telemetry::field("reason", principal.status().message())});
  return principal.status();
}

Status RequestGuard::authorize(const GuardedRequest& request, const AccessNeed& need) {
  if (!request.principal) return internal_error("authorize before authenticate");
  const security::Principal& principal = *request.principal;
  Status allowed = authorizer_->authorize(principal, need.resource, need.action, need.model);
  if (!allowed.ok() && need.alternative) {
    Status alt = authorizer_->authorize(principal, need.alternative->first, need.alternative->second, need.model);
    if (alt.ok()) allowed = alt;
  }
  if (allowed.ok()) return allowed;
  if (denied_) denied_->add();
  audit(&principal, request.caller, need, need.event.empty() ? "access.denied" : need.event, "denied",
        allowed.message());
  telemetry::log_warn("access_denied", {telemetry::field("user", principal.user),
                                        telemetry::field("client", request.caller.client),
                                        telemetry::field("request_id", request.caller.request_id),
                                        telemetry::field("need", need_text(need))});
  return allowed;
}

bool RequestGuard::records(const AccessNeed& need) const {
  if (!audit_) return false;
  return !need.event.empty() || (need.action == security::Action::kInfer && options_.audit_inference);
}

void RequestGuard::record(const GuardedRequest& request, const AccessNeed& need, const Status& outcome) {
  if (!records(need) || !request.principal) return;
  std::string_view event = need.event.empty() ? std::string_view("infer") : std::string_view(need.event);
  audit(request.principal.get(), request.caller, need, event, outcome.ok() ? "ok" : "failed",
        outcome.ok() ? "" : outcome.message());
}

void RequestGuard::log_http(const GuardedRequest& request, std::string_view method, std::string_view target,
                            int status, size_t bytes_in, size_t bytes_out) const {
  if (!options_.access_log) return;
  telemetry::log_info("http_request",
                      {telemetry::field("request_id", request.caller.request_id), telemetry::field("method", method),
                       telemetry::field("target", target), telemetry::field("status", status),
                       telemetry::field("bytes_in", bytes_in), telemetry::field("bytes_out", bytes_out),
                       telemetry::field("duration_us", micros_since(request.start))});
}

void RequestGuard::log_grpc(const GuardedRequest& request, std::string_view rpc, std::string_view code) const {
  if (!options_.access_log) return;
  telemetry::log_info("grpc_request", {telemetry::field("method", rpc), telemetry::field("peer", request.caller.client),
                                       telemetry::field("request_id", request.caller.request_id),
                                       telemetry::field("code", code),
                                       telemetry::field("duration_us", micros_since(request.start))});
}

void RequestGuard::audit(const security::Principal* principal, const Caller& caller, const AccessNeed& need,
                         std::string_view event, std::string_view outcome, std::string_view detail) {
  if (!audit_) return;
  security::AuditEvent e;
  e.user = principal ? principal->user : "-";
  e.action = std::string(event);
  e.resource = std::string(security::resource_name(need.resource));
  e.model = need.model;
  e.version = need.version;
  e.client = std::string(or_dash(caller.client));
  e.outcome = std::string(outcome);
  e.detail = str_cat(detail, detail.empty() ? "" : "; ", "request ", or_dash(caller.request_id));
  Status s = audit_->append(e);
  if (!s.ok()) telemetry::log_error("audit_write_failed", {telemetry::field("error", s.message())});
}

}  // namespace hearth::frontend
