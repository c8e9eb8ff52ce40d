// KServe v2 REST routing and metadata documents. Inference bodies are decoded
// by json_codec.cc and executed by inference.cc.
#include "serving/rest_api.h"

#include <exception>
#include <vector>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "serving/inference.h"
#include "serving/json_codec.h"

namespace hearth::serving {

namespace {

namespace rj = rapidjson;
constexpr const char* kServerName = "hearth";
constexpr const char* kServerVersion = "0.1.0";
constexpr const char* kPlatform = "onnxruntime_onnx";

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

void write_string(rj::Writer<rj::StringBuffer>& w, const std::string& s) {
  w.String(s.c_str(), static_cast<rj::SizeType>(s.size()));
}

void write_tensor_infos(rj::Writer<rj::StringBuffer>& w, const std::vector<ValueInfo>& infos) {
  w.StartArray();
  for (const ValueInfo& v : infos) {
    w.StartObject();
    w.Key("name");
    write_string(w, v.name);
    w.Key("datatype");
    std::string dt = kserve_datatype(v.dtype);
    write_string(w, dt.empty() ? dtype_name(v.dtype) : dt);
    w.Key("shape");
    w.StartArray();
    for (int64_t d : v.dims) w.Int64(d < 0 ? -1 : d);
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
}

HttpReply server_metadata() {
  rj::StringBuffer buffer;
  rj::Writer<rj::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("name");
  w.String(kServerName);
  w.Key("version");
  w.String(kServerVersion);
  w.Key("extensions");
  w.StartArray();
  w.EndArray();
  w.EndObject();
  return ok_reply(buffer.GetString());
}

Status not_ready(const ServedModel& model) {
  return Status(StatusCode::kUnavailable, str_cat("model '", model.name, "' is not ready: ", model.reason));
}

}  // namespace

int http_status_for(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument:
    case StatusCode::kUnimplemented:
    case StatusCode::kOutOfRange: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kResourceExhausted: return 413;
    case StatusCode::kUnavailable:
    case StatusCode::kFailedPrecondition: return 503;
    default: return 500;
  }
}

HttpReply error_reply(const Status& status) { return HttpReply{http_status_for(status), encode_error(status.message())}; }

HttpReply RestApi::handle(const std::string& method, const std::string& target, const std::string& body) const {
  try {
    return route(method, target, body);
  } catch (const std::exception& e) {  // e.g. std::bad_alloc on a huge shape
    return error_reply(internal_error("internal error: ", e.what()));
  } catch (...) {
    return error_reply(internal_error("internal error"));
  }
}

HttpReply RestApi::route(const std::string& method, const std::string& target, const std::string& body) const {
  auto parsed = split_path(target);
  if (!parsed.ok()) return error_reply(parsed.status());
  const std::vector<std::string>& seg = *parsed;
  const bool get = method == "GET";
  if (seg.empty() || seg[0] != "v2") return error_reply(not_found("no such path '", target, "'"));
  if (seg.size() == 1) return get ? server_metadata() : method_not_allowed(method, target);
  if (seg[1] == "health" && seg.size() == 3 && (seg[2] == "live" || seg[2] == "ready")) {
    // Ready once the repository was scanned and every load attempted; models
    // that failed report themselves on their own ready endpoint.
    return get ? ok_reply() : method_not_allowed(method, target);
  }
  if (seg[1] != "models" || seg.size() < 3) return error_reply(not_found("no such path '", target, "'"));

  // /v2/models/{name}[/versions/{v}][/ready|/infer]
  const std::string& name = seg[2];
  std::string version;
  size_t next = 3;
  if (seg.size() >= 5 && seg[3] == "versions") {
    version = seg[4];
    next = 5;
  }
  std::string action = next < seg.size() ? seg[next] : "";
  if (next + 1 < seg.size() || (next < seg.size() && action != "ready" && action != "infer"))
    return error_reply(not_found("no such path '", target, "'"));

  if (action == "infer") {
    if (method != "POST") return method_not_allowed(method, target);
    return model_infer(name, version, body);
  }
  if (!get) return method_not_allowed(method, target);
  auto model = repository_.find(name, version);
  if (!model.ok()) return error_reply(model.status());
  if (!(*model)->ready()) return error_reply(not_ready(**model));
  return action == "ready" ? ok_reply() : model_metadata(**model);
}

HttpReply RestApi::model_metadata(const ServedModel& model) const {
  rj::StringBuffer buffer;
  rj::Writer<rj::StringBuffer> w(buffer);
  w.StartObject();
  w.Key("name");
  write_string(w, model.name);
  w.Key("versions");
  w.StartArray();
  write_string(w, std::to_string(model.version));
  w.EndArray();
  w.Key("platform");
  w.String(kPlatform);
  w.Key("inputs");
  write_tensor_infos(w, model.session->inputs());
  w.Key("outputs");
  write_tensor_infos(w, model.session->outputs());
  w.EndObject();
  return ok_reply(buffer.GetString());
}

HttpReply RestApi::model_infer(const std::string& name, const std::string& version, const std::string& body) const {
  // Look the model up first so an unknown model is 404 whatever the body holds.
  auto model = repository_.find(name, version);
  if (!model.ok()) return error_reply(model.status());
  if (!(*model)->ready()) return error_reply(not_ready(**model));
  auto request = decode_infer_request(body, name, version);
  if (!request.ok()) return error_reply(request.status());
  auto response = infer(repository_, *request);
  if (!response.ok()) return error_reply(response.status());
  return ok_reply(encode_infer_response(*response));
}

}  // namespace hearth::serving
