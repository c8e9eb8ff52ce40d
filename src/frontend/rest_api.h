// RestApi: the KServe v2 (Open Inference Protocol) REST endpoints plus
// Triton's extensions, free of any transport. The HttpServer hands it each
// request; tests may call handle_sync().
//
//   GET  /v2                                    server metadata
//   GET  /v2/health/live, /v2/health/ready      200 when live / ready, else 400
//   GET  /v2/models/{m}[/versions/{v}]          model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready    200 when ready, 400 when not, 404 unknown
//   GET  /v2/models/{m}[/versions/{v}]/config   model configuration (Triton's JSON form)
//   GET  /v2/models[/{m}[/versions/{v}]]/stats  statistics extension
//   POST /v2/models/{m}[/versions/{v}]/infer    inference: JSON tensors or the binary
//                                               tensor extension (Inference-Header-Content-Length)
//   POST /v2/repository/index                   repository index ({"ready": true} filters)
//   POST /v2/repository/models/{m}/load|unload  explicit model control
//   /v2/models/{m}/releases|production|routing|feedback   releases (rest_releases.h)
//
// Errors are {"error": "..."}: 400 bad request, 404 unknown, 405 method,
// 401 unauthenticated (WWW-Authenticate: Bearer), 403 denied by the access
// policy, 413 body too large, 429 too many failed authentications (with
// Retry-After), 503 unavailable or queue full (with Retry-After),
// 504 queue timeout, 500 internal. Every reply carries X-Request-Id (the
// client's, or a new one).
// Thread safety: handle() may be called from many threads at once.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "frontend/http_server.h"
#include "frontend/request_guard.h"
#include "rollout/release_manager.h"
#include "serving/server.h"

namespace hearth::frontend {

// HTTP status for a Status code (see the table above).
int http_status_for(const Status& status);
// {"error": "<message>"} with the status mapped by http_status_for (+ Retry-After for 503).
HttpReply error_reply(const Status& status);

struct RestApiOptions {
  // Authentication, RBAC, audit and the access log (request_guard.h); nullptr:
  // everything allowed, nothing recorded.
  RequestGuard* guard = nullptr;
  // The release endpoints (rest_releases.h); nullptr: they answer 503.
  rollout::ReleaseManager* releases = nullptr;
  // The most a compressed request body may inflate to (the server's body limit).
  size_t max_body_bytes = size_t{64} << 20;
};

// What a REST request needs from the access policy (see docs/SECURITY.md for the table).
AccessNeed rest_access_need(const std::vector<std::string>& segments, const std::string& method);

class RestApi {
 public:
  // Borrows `server` and the guard, which must outlive the RestApi.
  explicit RestApi(serving::InferenceServer& server, RestApiOptions options = {});
  ~RestApi();

  // Serves one request; `respond` runs exactly once. Never throws.
  void handle(HttpRequest request, HttpResponder respond);
  // For HttpServerOptions::header_check: with authentication on, answers a
  // request whose credentials fail (401 / 429) before its body is read, and
  // hands the authenticated caller on to handle() in `head.principal`.
  std::optional<HttpReply> check_header(HttpRequest& head);
  // Blocking form for tests.
  HttpReply handle_sync(const std::string& method, const std::string& target, const std::string& body = "",
                        std::vector<std::pair<std::string, std::string>> headers = {});

 private:
  void route(HttpRequest& request, GuardedRequest& guarded, const HttpResponder& respond);
  void dispatch(HttpRequest& request, const std::vector<std::string>& seg, const HttpResponder& respond);
  void model_route(HttpRequest& request, const std::vector<std::string>& seg, const HttpResponder& respond);
  void infer(HttpRequest& request, const std::string& name, const std::string& version, const HttpResponder& respond);
  HttpReply repository(const HttpRequest& request, const std::vector<std::string>& seg);
  HttpReply statistics(const std::string& name, const std::string& version);

  serving::InferenceServer& server_;
  std::unique_ptr<RequestGuard> own_guard_;  // allow-all, when the options give none
  RequestGuard* guard_;
  rollout::ReleaseManager* releases_;
  size_t max_body_bytes_;
};

}  // namespace hearth::frontend
