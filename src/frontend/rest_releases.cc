// The release endpoints (see rest_releases.h).
#include "frontend/rest_releases.h"

#include <chrono>
#include <cstdlib>
#include <ctime>

#include <nlohmann/json.hpp>

#include "frontend/json_codec.h"
#include "frontend/rest_api.h"

namespace hearth::frontend {

namespace {

using security::Action;
using security::Resource;

constexpr size_t kMaxHistory = 1000;

// The value of `name` in the query of `target` ("" when absent), percent-decoded.
std::string query_value(const std::string& target, const std::string& name) {
  const size_t q = target.find('?');
  if (q == std::string::npos) return "";
  std::string query = target.substr(q + 1);
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    const std::string pair = query.substr(start, end - start);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      std::string raw = eq == std::string::npos ? "" : pair.substr(eq + 1), out;
      for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '+') {
          out.push_back(' ');
        } else if (raw[i] == '%' && i + 2 < raw.size() && std::isxdigit(static_cast<unsigned char>(raw[i + 1])) &&
                   std::isxdigit(static_cast<unsigned char>(raw[i + 2]))) {
          out.push_back(static_cast<char>(std::strtol(raw.substr(i + 1, 2).c_str(), nullptr, 16)));
          i += 2;
        } else {
          out.push_back(raw[i]);
        }
      }
      return out;
    }
    start = end + 1;
  }
  return "";
}

// Microseconds since the epoch from "now", a number of microseconds, or RFC 3339 UTC
// ("2026-12-07T21:30:00Z", fractional seconds allowed).
Result<int64_t> parse_time(const std::string& text) {
  if (text.empty() || text == "now")
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  char* end = nullptr;
  const long long us = std::strtoll(text.c_str(), &end, 10);
  if (end == text.c_str() + text.size() && us >= 0) return static_cast<int64_t>(us);
  std::tm tm{};
  const char* rest = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) return invalid_argument("'at' must be RFC 3339 UTC (2026-12-07T21:30:00Z) or microseconds");
  double fraction = 0;
  if (*rest == '.') fraction = std::strtod(rest, const_cast<char**>(&rest));
  if (std::string(rest) != "Z" || !(fraction >= 0 && fraction < 1)) return invalid_argument("'at' must end in Z (UTC)");
  return static_cast<int64_t>(timegm(&tm)) * 1000000 + static_cast<int64_t>(fraction * 1e6);
}

Result<int64_t> release_id(const std::string& text) {
  if (text == "current") return 0;
  char* end = nullptr;
  const long long id = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || end != text.c_str() + text.size() || id <= 0)
    return not_found("no release '", text, "' (a release number, or 'current')");
  return static_cast<int64_t>(id);
}

// {"version": N} (or an empty body: 0) from a control body.
Result<int64_t> version_field(const std::string& body, bool required) {
  if (body.empty() && !required) return 0;
  auto doc = nlohmann::json::parse(body, nullptr, false);
  if (!doc.is_object()) return invalid_argument("the body must be a JSON object");
  auto it = doc.find("version");
  if (it == doc.end()) return required ? Result<int64_t>(invalid_argument("the body needs \"version\": N")) : 0;
  if (it->is_number_integer() && it->get<int64_t>() > 0) return it->get<int64_t>();
  if (it->is_string()) {
    char* end = nullptr;
    const long long v = std::strtoll(it->get<std::string>().c_str(), &end, 10);
    if (*end == '\0' && v > 0) return static_cast<int64_t>(v);
  }
  return invalid_argument("\"version\" must be a positive version number");
}

Result<std::vector<int64_t>> labels_field(const nlohmann::json& doc) {
  std::vector<int64_t> labels;
  if (auto it = doc.find("label"); it != doc.end()) {
    if (!it->is_number_integer()) return invalid_argument("\"label\" must be a class index (an integer)");
    labels.push_back(it->get<int64_t>());
  } else if (auto all = doc.find("labels"); all != doc.end()) {
    if (!all->is_array() || all->empty() || all->size() > 65536)
      return invalid_argument("\"labels\" must be a list of 1 to 65536 class indices");
    for (const auto& l : *all) {
      if (!l.is_number_integer()) return invalid_argument("\"labels\" must hold integers");
      labels.push_back(l.get<int64_t>());
    }
  } else {
    return invalid_argument("feedback needs \"label\": N (or \"labels\": [...] for a batch)");
  }
  return labels;
}

HttpReply json_reply(const Result<std::string>& doc) {
  return doc.ok() ? HttpReply{200, *doc} : error_reply(doc.status());
}

HttpReply done_reply(const Status& s) { return s.ok() ? HttpReply{200, "{}"} : error_reply(s); }

HttpReply release_action(rollout::ReleaseManager& m, const HttpRequest& request, const std::string& model,
                         int64_t id, const std::string& action, const rollout::Actor& who) {
  if (action == "pause") return done_reply(m.pause(model, id, who));
  if (action == "resume") return done_reply(m.resume(model, id, who));
  if (action == "abort") return done_reply(m.abort(model, id, who));
  if (action == "promote") {
    auto version = version_field(request.body, false);
    if (!version.ok()) return error_reply(version.status());
    return done_reply(m.promote(model, id, *version, who));
  }
  return error_reply(not_found("no release action '", action, "' (pause, resume, promote, abort)"));
}

}  // namespace

bool is_release_path(const std::vector<std::string>& seg) {
  if (seg.size() < 4 || seg[0] != "v2" || seg[1] != "models") return false;
  const std::string& what = seg[3];
  return what == "releases" || what == "production" || what == "routing" || what == "feedback";
}

AccessNeed release_access_need(const std::vector<std::string>& seg, const std::string& method) {
  AccessNeed need;
  need.resource = Resource::kModels;
  need.model = seg[2];
  const std::string& what = seg[3];
  if (what == "feedback") {
    need.resource = Resource::kInference;
    need.action = Action::kInfer;
  } else if (method != "GET" && (what == "releases" || what == "production")) {
    need.action = Action::kDeploy;
    need.event = what == "production" ? "release.production"
                                      : seg.size() >= 6 ? "release." + seg[5] : std::string("release.start");
  }
  return need;
}

HttpReply release_reply(rollout::ReleaseManager* releases, const HttpRequest& request,
                        const std::vector<std::string>& seg, const rollout::Actor& who) {
  if (releases == nullptr)
    return error_reply(Status(StatusCode::kUnavailable,
                              "releases are off on this server (it runs without a release store; see --release-store)"));
  rollout::ReleaseManager& m = *releases;
  const std::string& model = seg[2];
  const std::string& what = seg[3];
  const bool get = request.method == "GET", post = request.method == "POST";
  if (what == "feedback" && seg.size() == 4 && post) {
    auto doc = nlohmann::json::parse(request.body, nullptr, false);
    if (!doc.is_object() || !doc.contains("id") || !doc["id"].is_string())
      return error_reply(invalid_argument("feedback is {\"id\": \"<request id>\", \"label\": N}"));
    auto labels = labels_field(doc);
    if (!labels.ok()) return error_reply(labels.status());
    return done_reply(m.feedback(model, doc["id"].get<std::string>(), *labels));
  }
  if (what == "routing" && seg.size() == 4 && get) {
    auto at = parse_time(query_value(request.target, "at"));
    if (!at.ok()) return error_reply(at.status());
    return json_reply(m.which_json(model, query_value(request.target, "key"), *at));
  }
  if (what == "production" && seg.size() == 4 && post) {
    auto version = version_field(request.body, true);
    if (!version.ok()) return error_reply(version.status());
    return done_reply(m.set_production(model, *version, who));
  }
  if (what == "releases" && seg.size() == 4 && post) {
    auto spec = rollout::parse_release_spec(request.body, "the request body", model);
    if (!spec.ok()) return error_reply(spec.status());
    auto started = m.start(*spec, who);
    if (!started.ok()) return error_reply(started.status());
    return json_reply(m.status_json(model, started->id));
  }
  if (what == "releases" && seg.size() == 4 && get) {
    const std::string limit = query_value(request.target, "limit");
    char* end = nullptr;
    const unsigned long long asked = std::strtoull(limit.c_str(), &end, 10);
    if (!limit.empty() && (end != limit.c_str() + limit.size() || asked == 0))
      return error_reply(invalid_argument("'limit' must be a number of releases from 1 to ", kMaxHistory));
    const size_t n = limit.empty() ? 20 : std::min<size_t>(asked, kMaxHistory);
    return json_reply(m.history_json(model, n));
  }
  if (what == "releases" && (seg.size() == 5 || seg.size() == 6)) {
    auto id = release_id(seg[4]);
    if (!id.ok()) return error_reply(id.status());
    if (seg.size() == 5 && get) return json_reply(m.status_json(model, *id));
    if (seg.size() == 6 && post) return release_action(m, request, model, *id, seg[5], who);
  }
  const bool known = seg.size() == 4 || (what == "releases" && seg.size() <= 6);
  if (!known) return error_reply(not_found("no such path '", request.target, "'"));
  return HttpReply{405, encode_error(str_cat("method ", request.method, " is not allowed on ", request.target))};
}

}  // namespace hearth::frontend
