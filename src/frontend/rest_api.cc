// KServe v2 REST routing onto the InferenceServer. Documents are written by
// rest_documents.cc, inference bodies by json_codec.cc.
#include "frontend/rest_api.h"

#include <algorithm>
#include <exception>
#include <future>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "security/crypto.h"
#include "frontend/http_compression.h"
#include "frontend/json_codec.h"
#include "repository/model_upload.h"
#include "frontend/rest_documents.h"
#include "frontend/rest_releases.h"
#include "telemetry/log.h"

namespace hearth::frontend {

using namespace serving;  // the core these front ends serve
using namespace repository;

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Splits the path of `target` (query dropped) into percent-decoded segments.
Result<std::vector<std::string>> split_path(const std::string& target) {
  std::string path = target.substr(0, target.find('?'));
  if (path.empty() || path[0] != '/') return not_found("path '", path, "' does not start with '/'");
  std::vector<std::string> segments;
  std::string cur;
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      segments.push_back(cur);
      cur.clear();
    } else if (path[i] == '%') {
      int hi = i + 2 < path.size() ? hex_value(path[i + 1]) : -1;
      int lo = i + 2 < path.size() ? hex_value(path[i + 2]) : -1;
      if (hi < 0 || lo < 0) return invalid_argument("bad percent-encoding in path '", path, "'");
      cur.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      cur.push_back(path[i]);
    }
  }
  if (!segments.empty() && segments.back().empty()) segments.pop_back();  // trailing '/'
  return segments;
}

HttpReply ok_reply(std::string body = "") { return HttpReply{200, std::move(body)}; }

HttpReply method_not_allowed(const std::string& method, const std::string& path) {
  return HttpReply{405, encode_error(str_cat("method ", method, " is not allowed on ", path))};
}

HttpReply not_found_reply(const std::string& target) { return error_reply(not_found("no such path '", target, "'")); }

// The protocol extensions Hearth does not serve, by their path segment after /v2.
const char* unserved_extension(const std::string& segment) {
  if (segment == "systemsharedmemory") return "system shared memory";
  if (segment == "cudasharedmemory") return "CUDA shared memory";
  if (segment == "trace") return "trace";
  if (segment == "logging") return "logging";
  return nullptr;
}

// A readiness answer: 200, or 400 with the reason (KServe: 4xx means false).
HttpReply readiness(bool ready, const std::string& what) {
  if (ready) return ok_reply();
  return HttpReply{400, encode_error(str_cat(what, " is not ready"))};
}

// Parses a small control-plane body (repository index / load / unload);
// discarded (is_discarded()) unless it is a JSON object. nlohmann::json, not
// RapidJSON: RapidJSON 1.1's number parsing crashes on crafted numbers
// (CVE-2024-38517), and the data-plane codec avoids it in its own way.
nlohmann::json parse_control_body(const std::string& body) {
  auto doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return nlohmann::json::value_t::discarded;
  return doc;
}

bool is_load(const std::string& method, const std::vector<std::string>& seg) {
  return method == "POST" && seg.size() == 5 && seg[0] == "v2" && seg[1] == "repository" && seg[2] == "models" &&
         seg[4] == "load";
}

// A load's body: {} when empty, discarded when not a JSON object.
nlohmann::json load_body(const std::string& body) {
  return body.empty() ? nlohmann::json::object() : parse_control_body(body);
}

// A load that uploads ("file:..." or "config" parameters) needs more than
// models:deploy: models:create with files, models:update for a config alone
// (models:deploy is checked as well, see route()). Looks at names only, so
// that nothing is decoded before the caller is authenticated.
void add_upload_need(AccessNeed& need, const nlohmann::json& doc) {
  if (!doc.is_object()) return;
  auto params = doc.find("parameters");
  if (params == doc.end() || !params->is_object()) return;
  bool files = false, config = false;
  for (const auto& item : params->items()) {
    LoadParameterKind kind = load_parameter_kind(item.key());
    files = files || kind == LoadParameterKind::kFile;
    config = config || kind == LoadParameterKind::kConfig;
  }
  if (!files && !config) return;
  need.action = files ? security::Action::kCreate : security::Action::kUpdate;
  need.event = "model.upload";
}

// The upload a load body carries: "config" (a JSON string, or the object
// itself) and "file:<path>" (base64 strings). Unknown parameters are refused.
Result<ModelUpload> upload_from_body(const nlohmann::json& doc) {
  ModelUpload upload;
  auto params = doc.find("parameters");
  if (params == doc.end()) return upload;
  if (!params->is_object()) return invalid_argument("\"parameters\" of a load must be a JSON object");
  for (const auto& item : params->items()) {
    const std::string& name = item.key();
    const nlohmann::json& value = item.value();
    switch (load_parameter_kind(name)) {
      case LoadParameterKind::kConfig:
        if (value.is_object()) {
          upload.config_json = value.dump();
        } else if (value.is_string()) {
          upload.config_json = value.get<std::string>();
        } else {
          return invalid_argument("parameter 'config' must be the model config as a JSON string");
        }
        break;
      case LoadParameterKind::kFile: {
        if (!value.is_string()) return invalid_argument("parameter '", name, "' must be a base64 string");
        auto bytes = security::base64_decode(value.get_ref<const std::string&>());
        if (!bytes.ok()) return invalid_argument("parameter '", name, "' is not valid base64: ", bytes.status().message());
        upload.files.push_back({name.substr(kUploadFilePrefix.size()), std::move(bytes).value()});
        break;
      }
      case LoadParameterKind::kUnknown: return unsupported_load_parameter(name);
    }
  }
  return upload;
}

HttpReply load_reply(InferenceServer& server, const std::string& model, const nlohmann::json& doc) {
  if (doc.is_discarded()) return error_reply(invalid_argument("repository load body is not a JSON object"));
  auto upload = upload_from_body(doc);
  if (!upload.ok()) return error_reply(upload.status());
  Status s = server.load_model(model, *upload);
  return s.ok() ? HttpReply{200, ""} : error_reply(s);
}

Result<std::optional<size_t>> header_length(const HttpRequest& request) {
  std::string v = request.header("Inference-Header-Content-Length");
  if (v.empty()) return std::optional<size_t>();
  if (v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
    return invalid_argument("Inference-Header-Content-Length '", v, "' is not a byte count");
  return std::optional<size_t>(std::stoull(v));
}

}  // namespace

int http_status_for(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kUnimplemented:
    case StatusCode::kOutOfRange:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kAlreadyExists: return 400;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kResourceExhausted: return 413;
    case StatusCode::kCancelled: return 499;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

HttpReply error_reply(const Status& status) {
  HttpReply reply{http_status_for(status), encode_error(status.message())};
  if (reply.status == 503) reply.headers.emplace_back("Retry-After", "1");
  return reply;
}

namespace {

// The client's X-Request-Id when it is short, printable ASCII; else a new one.
std::string request_id_of(const HttpRequest& request) {
  std::string id = request.header("X-Request-Id");
  bool usable = !id.empty() && id.size() <= 128;
  for (char c : id) usable = usable && c > 0x20 && c < 0x7f;
  return usable ? id : telemetry::new_request_id();
}

Caller caller_of(const HttpRequest& request) {
  return Caller{request.header("Authorization"), request.remote_address, request.client_cert_subject,
                request_id_of(request)};
}

// 401 with WWW-Authenticate, 403, or 429 with Retry-After.
HttpReply access_error_reply(const Status& status, int retry_after) {
  HttpReply reply = error_reply(status);
  if (status.code() == StatusCode::kUnauthenticated) {
    reply.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"hearth\"");
  } else if (status.code() == StatusCode::kResourceExhausted) {
    reply.status = 429;
    reply.headers.emplace_back("Retry-After", std::to_string(std::max(1, retry_after)));
  }
  return reply;
}

}  // namespace

RestApi::RestApi(InferenceServer& server, RestApiOptions options)
    : server_(server), guard_(options.guard), releases_(options.releases), max_body_bytes_(options.max_body_bytes) {
  if (guard_ == nullptr) {
    own_guard_ = std::make_unique<RequestGuard>(nullptr, nullptr, GuardOptions{}, nullptr);
    guard_ = own_guard_.get();
  }
}

RestApi::~RestApi() = default;

std::optional<HttpReply> RestApi::check_header(HttpRequest& head) {
  if (!guard_->auth_enabled()) return std::nullopt;
  // With access control on, nothing is read for a stranger: a path that does not
  // parse, and a health request that is not a bodiless GET (the open paths), are
  // answered from the header alone.
  auto parsed = split_path(head.target);
  if (!parsed.ok()) return error_reply(parsed.status());
  AccessNeed need = rest_access_need(*parsed, head.method);
  if (need.open) {
    const std::string length = head.header("Content-Length");
    const bool bodied = (!length.empty() && length != "0") || !head.header("Transfer-Encoding").empty();
    if (head.method != "GET") return method_not_allowed(head.method, head.target);
    if (bodied) return error_reply(invalid_argument("health requests take no body"));
    return std::nullopt;
  }
  GuardedRequest guarded{caller_of(head)};
  int retry_after = 0;
  Status who = guard_->authenticate(guarded, need, &retry_after);
  if (who.ok()) {
    head.principal = std::move(guarded.principal);
    return std::nullopt;
  }
  HttpReply reply = access_error_reply(who, retry_after);
  reply.headers.emplace_back("X-Request-Id", guarded.caller.request_id);
  return reply;
}

void RestApi::handle(HttpRequest request, HttpResponder respond) {
  auto guarded = std::make_shared<GuardedRequest>();
  guarded->caller = caller_of(request);
  guarded->principal = std::move(request.principal);
  // Every reply carries the request id; with the access log a line is written per request.
  HttpResponder reply = [this, respond = std::move(respond), guarded, method = request.method,
                         target = request.target, bytes_in = request.body.size()](HttpReply r) {
    r.headers.emplace_back("X-Request-Id", guarded->caller.request_id);
    guard_->log_http(*guarded, method, target, r.status, bytes_in, r.body.size());
    respond(std::move(r));
  };
  try {
    route(request, *guarded, reply);
  } catch (const std::exception& e) {  // e.g. std::bad_alloc on a huge shape
    reply(error_reply(internal_error("internal error: ", e.what())));
  } catch (...) {
    reply(error_reply(internal_error("internal error")));
  }
}

HttpReply RestApi::handle_sync(const std::string& method, const std::string& target, const std::string& body,
                               std::vector<std::pair<std::string, std::string>> headers) {
  HttpRequest request{method, target, body, std::move(headers), nullptr, "127.0.0.1", "", nullptr};
  auto promise = std::make_shared<std::promise<HttpReply>>();
  auto future = promise->get_future();
  handle(std::move(request), [promise](HttpReply r) { promise->set_value(std::move(r)); });
  return future.get();
}

AccessNeed rest_access_need(const std::vector<std::string>& seg, const std::string& method) {
  if (is_release_path(seg)) return release_access_need(seg, method);
  using security::Action;
  using security::Resource;
  AccessNeed need;
  need.any_authenticated = true;  // unknown paths: authenticated callers get their 404
  if (seg.empty() || seg[0] != "v2") return need;
  need.any_authenticated = false;
  if (seg.size() == 1) return need;  // server metadata: system_config read
  if (seg[1] == "health") {
    need.open = true;
    return need;
  }
  if (seg[1] == "repository") {
    if (seg.size() == 3 && seg[2] == "index") {
      need.resource = Resource::kRepository;
      return need;
    }
    if (seg.size() == 5 && seg[2] == "models" && (seg[4] == "load" || seg[4] == "unload")) {
      need.resource = Resource::kModels;
      need.action = Action::kDeploy;
      need.model = seg[3];
      need.event = "model." + seg[4];
      return need;
    }
    need.any_authenticated = true;
    return need;
  }
  if (seg[1] != "models" || seg.size() < 3) {
    need.any_authenticated = true;
    return need;
  }
  need.resource = Resource::kModels;
  if (seg.size() == 3 && seg[2] == "stats") return need;  // every model's statistics
  need.model = seg[2];
  size_t next = 3;
  if (seg.size() >= 5 && seg[3] == "versions") {
    need.version = seg[4];
    next = 5;
  }
  const std::string what = next < seg.size() ? seg[next] : "";
  if (what == "infer") {
    need.resource = Resource::kInference;
    need.action = Action::kInfer;
  } else if (what != "stats") {  // metadata, ready, config
    need.alternative = std::make_pair(Resource::kInference, Action::kInfer);
  }
  return need;
}

void RestApi::route(HttpRequest& request, GuardedRequest& guarded, const HttpResponder& respond) {
  auto parsed = split_path(request.target);
  if (!parsed.ok()) return respond(error_reply(parsed.status()));
  AccessNeed need = rest_access_need(*parsed, request.method);
  // Without authentication only control-plane requests (audited) need the guard.
  const bool control_plane = (parsed->size() >= 2 && (*parsed)[1] == "repository") || !need.event.empty();
  if (!guard_->pass_through() || control_plane) {
    // Control-plane requests are checked again in full: a token revoked while a
    // large upload was arriving must not deploy it.
    if (control_plane) guarded.principal.reset();
    int retry_after = 0;
    if (Status s = guard_->admit(guarded, need, &retry_after); !s.ok()) return respond(access_error_reply(s, retry_after));
  }
  // A compressed body inflates only now that the caller is admitted, and only
  // up to the body limit (415 for an unknown encoding, 413 past the limit).
  if (std::string encoding = request.header("Content-Encoding"); !encoding.empty()) {
    auto body = inflate_body(request.body, encoding, max_body_bytes_);
    if (!body.ok()) {
      HttpReply r = error_reply(body.status());
      if (body.status().code() == StatusCode::kUnimplemented) r.status = 415;
      return respond(std::move(r));
    }
    request.body = std::move(body).value();
  }
  // A load's body is parsed only now that the caller is known to hold
  // models:deploy (a large upload is not parsed for strangers), and once.
  const bool loading = is_load(request.method, *parsed);
  nlohmann::json load;
  if (loading) {
    load = load_body(request.body);
    add_upload_need(need, load);  // an upload also needs create (files) or update (config)
    if (need.event == "model.upload") {
      if (Status s = guard_->authorize(guarded, need); !s.ok()) return respond(error_reply(s));
    }
  }
  HttpResponder reply = respond;
  // Replies compressed as the client's Accept-Encoding asks (Triton's HTTP API).
  if (auto encoding = pick_encoding(request.header("Accept-Encoding"))) {
    reply = [respond, encoding = *encoding](HttpReply r) {
      if (!r.body.empty()) {
        if (auto packed = deflate_body(r.body, encoding)) {
          r.body = std::move(*packed);
          r.headers.emplace_back("Content-Encoding", encoding);
        }
      }
      respond(std::move(r));
    };
  }
  if (guard_->records(need)) {
    HttpResponder inner = reply;  // control-plane actions (and inference, when asked) with their outcome
    reply = [this, inner, guarded, need](HttpReply r) {
      Status outcome = r.status == 200 ? ok_status()
                                       : Status(StatusCode::kInternal, str_cat("HTTP ", r.status, " ", r.body));
      guard_->record(guarded, need, outcome);
      inner(std::move(r));
    };
  }
  if (loading) return reply(load_reply(server_, (*parsed)[3], load));
  if (is_release_path(*parsed)) {
    const rollout::Actor who{guarded.principal ? guarded.principal->user : "anonymous", guarded.caller.client};
    return reply(release_reply(releases_, request, *parsed, who));
  }
  dispatch(request, *parsed, reply);
}

void RestApi::dispatch(HttpRequest& request, const std::vector<std::string>& seg, const HttpResponder& respond) {
  const std::string& method = request.method;
  const std::string& target = request.target;
  const bool get = method == "GET";
  if (seg.empty() || seg[0] != "v2") return respond(not_found_reply(target));
  if (seg.size() == 1)
    return respond(get ? ok_reply(server_metadata_json(server_.server_metadata())) : method_not_allowed(method, target));
  if (seg[1] == "health" && seg.size() == 3 && (seg[2] == "live" || seg[2] == "ready")) {
    if (!get) return respond(method_not_allowed(method, target));
    return respond(seg[2] == "live" ? readiness(server_.live(), "the server")
                                    : readiness(server_.ready(), "the server"));
  }
  if (seg[1] == "repository") {
    if (method != "POST") return respond(method_not_allowed(method, target));
    return respond(repository(request, seg));
  }
  if (const char* ext = unserved_extension(seg[1]))
    return respond(error_reply(not_found("the ", ext, " extension is not supported by Hearth (", target, ")")));
  if (seg[1] != "models") return respond(not_found_reply(target));
  if (seg.size() == 3 && seg[2] == "stats") {
    if (!get) return respond(method_not_allowed(method, target));
    return respond(statistics("", ""));
  }
  if (seg.size() < 3) return respond(not_found_reply(target));
  model_route(request, seg, respond);
}

// /v2/models/{name}[/versions/{v}][/ready|/infer|/config|/stats]
void RestApi::model_route(HttpRequest& request, const std::vector<std::string>& seg, const HttpResponder& respond) {
  const std::string& name = seg[2];
  std::string version;
  size_t next = 3;
  if (seg.size() >= 5 && seg[3] == "versions") {
    version = seg[4];
    next = 5;
  }
  const std::string action = next < seg.size() ? seg[next] : "";
  if (next + 1 < seg.size() ||
      (next < seg.size() && action != "ready" && action != "infer" && action != "config" && action != "stats"))
    return respond(not_found_reply(request.target));
  if (action == "infer") {
    if (request.method != "POST") return respond(method_not_allowed(request.method, request.target));
    return infer(request, name, version, respond);
  }
  if (request.method != "GET") return respond(method_not_allowed(request.method, request.target));
  if (action == "ready") {
    auto ready = server_.model_ready(name, version);
    if (!ready.ok()) return respond(error_reply(ready.status()));
    return respond(readiness(*ready, str_cat("model '", name, "'", version.empty() ? "" : " version " + version)));
  }
  if (action == "stats") return respond(statistics(name, version));
  if (action == "config") {
    auto config = server_.model_config(name, version);
    if (!config.ok()) return respond(error_reply(config.status()));
    auto json = model_config_json(*config);
    return respond(json.ok() ? ok_reply(std::move(json).value()) : error_reply(json.status()));
  }
  auto metadata = server_.model_metadata(name, version);
  respond(metadata.ok() ? ok_reply(model_metadata_json(*metadata)) : error_reply(metadata.status()));
}

void RestApi::infer(HttpRequest& request, const std::string& name, const std::string& version,
                    const HttpResponder& respond) {
  // Look the model up first so an unknown model is 404 whatever the body holds.
  auto ready = server_.model_ready(name, version);
  if (!ready.ok()) return respond(error_reply(ready.status()));
  auto length = header_length(request);
  if (!length.ok()) return respond(error_reply(length.status()));
  auto decoded = decode_infer_request(request.body, *length, name, version);
  if (!decoded.ok()) return respond(error_reply(decoded.status()));
  InferRequest infer_request = std::move(decoded->request);
  infer_request.cancelled = request.cancelled;
  if (infer_request.routing_key.empty()) {
    std::string key = request.header("Hearth-Routing-Key");
    if (key.size() > kMaxRoutingKeyBytes)
      return respond(error_reply(invalid_argument("the Hearth-Routing-Key header is longer than ", kMaxRoutingKeyBytes,
                                                  " bytes")));
    infer_request.routing_key = std::move(key);
  }
  // Keep the output encoding choices; the request itself moves to the server.
  auto how = std::make_shared<DecodedInferRequest>(std::move(decoded).value());
  server_.infer_async(std::move(infer_request), [respond, how](Result<InferResponse> result) {
    if (!result.ok()) return respond(error_reply(result.status()));
    EncodedInferResponse encoded = encode_infer_response(*result, *how);
    HttpReply reply{200, std::move(encoded.body)};
    if (encoded.header_length) {
      reply.content_type = "application/octet-stream";
      reply.headers.emplace_back("Inference-Header-Content-Length", std::to_string(*encoded.header_length));
    }
    respond(std::move(reply));
  });
}

// POST /v2/repository/index, /v2/repository/models/{m}/load|unload
HttpReply RestApi::repository(const HttpRequest& request, const std::vector<std::string>& seg) {
  if (seg.size() == 3 && seg[2] == "index") {
    bool ready_only = false;
    if (!request.body.empty()) {
      nlohmann::json doc = parse_control_body(request.body);
      if (doc.is_discarded()) return error_reply(invalid_argument("repository index body is not a JSON object"));
      auto it = doc.find("ready");
      if (it != doc.end()) {
        if (!it->is_boolean()) return error_reply(invalid_argument("\"ready\" must be true or false"));
        ready_only = it->get<bool>();
      }
    }
    return ok_reply(repository_index_json(server_.repository_index(ready_only)));
  }
  if (seg.size() == 5 && seg[2] == "models" && seg[4] == "load") return load_reply(server_, seg[3], load_body(request.body));
  if (seg.size() == 5 && seg[2] == "models" && seg[4] == "unload") {
    if (!request.body.empty() && parse_control_body(request.body).is_discarded())
      return error_reply(invalid_argument("repository unload body is not a JSON object"));
    Status s = server_.unload_model(seg[3]);
    return s.ok() ? ok_reply() : error_reply(s);
  }
  return not_found_reply(request.target);
}

HttpReply RestApi::statistics(const std::string& name, const std::string& version) {
  auto stats = server_.model_statistics(name, version);
  if (!stats.ok()) return error_reply(stats.status());
  return ok_reply(model_statistics_json(*stats));
}

}  // namespace hearth::frontend
