// RestApi: the KServe v2 (Open Inference Protocol) REST endpoints, free of any
// transport. The HTTP server hands it method, target and body and sends back
// the HttpReply; tests call it directly.
//
//   GET  /v2                                   server metadata
//   GET  /v2/health/live, /v2/health/ready     200 when live / ready
//   GET  /v2/models/{m}[/versions/{v}]         model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready   200 when the model is ready
//   POST /v2/models/{m}[/versions/{v}]/infer   inference (JSON tensors)
//
// Errors are {"error": "..."} with 400, 404, 405, 413, 500 or 503.
// Thread safety: handle() may be called from many threads at once.
#pragma once

#include <string>

#include "core/status.h"
#include "serving/model_repository.h"

namespace hearth::serving {

struct HttpReply {
  int status = 200;
  std::string body;  // JSON, possibly empty
};

// HTTP status for a Status code: InvalidArgument/Unimplemented 400, NotFound 404,
// ResourceExhausted 413, Unavailable/FailedPrecondition 503, others 500.
int http_status_for(const Status& status);
// {"error": "<message>"} with the status mapped by http_status_for.
HttpReply error_reply(const Status& status);

class RestApi {
 public:
  // Borrows `repository`, which must outlive the RestApi.
  explicit RestApi(const ModelRepository& repository) : repository_(repository) {}

  // Serves one request. `target` is the raw request target (path and optional
  // query, percent-encoded). Never throws.
  HttpReply handle(const std::string& method, const std::string& target, const std::string& body) const;

 private:
  HttpReply route(const std::string& method, const std::string& target, const std::string& body) const;
  HttpReply model_metadata(const ServedModel& model) const;
  HttpReply model_infer(const std::string& name, const std::string& version, const std::string& body) const;

  const ModelRepository& repository_;
};

}  // namespace hearth::serving
