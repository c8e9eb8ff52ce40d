// The release.yaml reader and writer (see release_spec.h).
#include "rollout/release_spec.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <set>

#include <nlohmann/json.hpp>

namespace hearth::rollout {

namespace {

constexpr size_t kMaxSpecBytes = 1 << 20;
constexpr int64_t kMaxDurationMs = int64_t{30} * 24 * 3600 * 1000;  // 30 days
constexpr size_t kMaxSteps = 64;
constexpr size_t kMaxCandidates = 8;
constexpr size_t kMaxWebhooks = 16;

using Setter = std::function<Status(const YAML::Node&, const std::string& path)>;
struct Field {
  const char* name;
  Setter set;
};

// Reads YAML nodes into values; every error names the source, the line and the
// field's path.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  template <typename... Args>
  Status error(const YAML::Node& n, const std::string& path, const Args&... args) const {
    const YAML::Mark m = n.Mark();
    const std::string where = m.is_null() ? source_ : str_cat(source_, ":", m.line + 1);
    return invalid_argument(where, ": ", path.empty() ? "the release" : path, ": ", args...);
  }

  // A map whose keys must be among `fields`, each at most once.
  Status map(const YAML::Node& n, const std::string& path, const std::vector<Field>& fields) const {
    if (!n.IsMap()) return error(n, path, "must be a map of fields");
    std::set<std::string> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar()) return error(it->first, path, "a field name must be a plain word");
      const std::string key = it->first.Scalar();
      const std::string sub = path.empty() ? key : path + "." + key;
      const Field* f = nullptr;
      for (const Field& candidate : fields)
        if (key == candidate.name) f = &candidate;
      if (f == nullptr) {
        std::string known;
        for (const Field& candidate : fields) known += str_cat(known.empty() ? "" : ", ", candidate.name);
        return error(it->first, sub, "unknown field (", path.empty() ? "a release" : path, " has ", known, ")");
      }
      if (!seen.insert(key).second) return error(it->first, sub, "given twice");
      HEARTH_RETURN_IF_ERROR(f->set(it->second, sub));
    }
    return ok_status();
  }

  Result<double> number(const YAML::Node& n, const std::string& path, double lo, double hi) const {
    if (!n.IsScalar()) return error(n, path, "must be a number");
    const std::string& s = n.Scalar();
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) return error(n, path, "'", s, "' is not a number");
    if (v < lo) return error(n, path, s, " is under ", lo);
    if (v > hi) return error(n, path, s, " is over ", hi);
    return v;
  }

  Result<int64_t> integer(const YAML::Node& n, const std::string& path, int64_t lo, int64_t hi) const {
    if (!n.IsScalar()) return error(n, path, "must be a whole number");
    const std::string& s = n.Scalar();
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || end != s.c_str() + s.size() || errno != 0) return error(n, path, "'", s, "' is not a whole number");
    if (v < lo) return error(n, path, s, " is under ", lo);
    if (v > hi) return error(n, path, s, " is over ", hi);
    return static_cast<int64_t>(v);
  }

  Result<bool> boolean(const YAML::Node& n, const std::string& path) const {
    if (n.IsScalar()) {
      const std::string& s = n.Scalar();
      if (s == "true" || s == "yes" || s == "on") return true;
      if (s == "false" || s == "no" || s == "off") return false;
    }
    return error(n, path, "must be true or false");
  }

  Result<std::string> text(const YAML::Node& n, const std::string& path, size_t max_size = 1024) const {
    if (!n.IsScalar()) return error(n, path, "must be a string");
    if (n.Scalar().size() > max_size) return error(n, path, "is longer than ", max_size, " characters");
    return n.Scalar();
  }

  // "250ms", "30s", "5m", "2h", or a number of seconds; at least min_ms, or 0 where
  // 0 means "none" (allow_zero).
  Result<int64_t> duration_ms(const YAML::Node& n, const std::string& path, int64_t min_ms, bool allow_zero) const {
    if (!n.IsScalar()) return error(n, path, "must be a duration (250ms, 30s, 5m, 2h)");
    std::string s = n.Scalar();
    double scale = 1000;
    auto strip = [&](const char* suffix, double ms) {
      const size_t k = std::char_traits<char>::length(suffix);
      if (s.size() > k && s.compare(s.size() - k, k, suffix) == 0) {
        s.resize(s.size() - k);
        scale = ms;
        return true;
      }
      return false;
    };
    (void)(strip("ms", 1) || strip("s", 1000) || strip("m", 60000) || strip("h", 3600000));
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v) || v < 0)
      return error(n, path, "'", n.Scalar(), "' is not a duration (250ms, 30s, 5m, 2h)");
    const double ms = v * scale;
    if (ms > static_cast<double>(kMaxDurationMs)) return error(n, path, n.Scalar(), " is over 30 days");
    if (ms < static_cast<double>(min_ms) && !(allow_zero && ms == 0))
      return error(n, path, n.Scalar(), " is under ", min_ms, "ms");
    return static_cast<int64_t>(std::llround(ms));
  }

  template <typename T, typename F>
  Status list(const YAML::Node& n, const std::string& path, size_t max, std::vector<T>& out, F&& item) const {
    if (!n.IsSequence()) return error(n, path, "must be a list");
    if (n.size() > max) return error(n, path, "has ", n.size(), " entries; at most ", max);
    out.clear();
    for (size_t i = 0; i < n.size(); ++i) {
      HEARTH_ASSIGN_OR_RETURN(T v, item(n[i], str_cat(path, "[", i, "]")));
      out.push_back(std::move(v));
    }
    return ok_status();
  }

 private:
  std::string source_;
};

// Field setters for the common shapes.
Setter set_number(const Reader& r, double& out, double lo, double hi) {
  return [&r, &out, lo, hi](const YAML::Node& n, const std::string& p) -> Status {
    HEARTH_ASSIGN_OR_RETURN(out, r.number(n, p, lo, hi));
    return ok_status();
  };
}
template <typename Int>
Setter set_integer(const Reader& r, Int& out, int64_t lo, int64_t hi) {
  return [&r, &out, lo, hi](const YAML::Node& n, const std::string& p) -> Status {
    HEARTH_ASSIGN_OR_RETURN(int64_t v, r.integer(n, p, lo, hi));
    out = static_cast<Int>(v);
    return ok_status();
  };
}
Setter set_bool(const Reader& r, bool& out) {
  return [&r, &out](const YAML::Node& n, const std::string& p) -> Status {
    HEARTH_ASSIGN_OR_RETURN(out, r.boolean(n, p));
    return ok_status();
  };
}
Setter set_duration(const Reader& r, int64_t& out, int64_t min_ms, bool allow_zero = false) {
  return [&r, &out, min_ms, allow_zero](const YAML::Node& n, const std::string& p) -> Status {
    HEARTH_ASSIGN_OR_RETURN(out, r.duration_ms(n, p, min_ms, allow_zero));
    return ok_status();
  };
}
Setter set_text(const Reader& r, std::string& out) {
  return [&r, &out](const YAML::Node& n, const std::string& p) -> Status {
    HEARTH_ASSIGN_OR_RETURN(out, r.text(n, p));
    return ok_status();
  };
}

Setter rate_check(const Reader& r, RateCheck& c) {
  return [&r, &c](const YAML::Node& n, const std::string& p) {
    return r.map(n, p, {{"enabled", set_bool(r, c.enabled)},
                        {"max", set_number(r, c.max, 0, 1)},
                        {"max_increase", set_number(r, c.max_increase, 0, 1)},
                        {"dry_run", set_bool(r, c.dry_run)}});
  };
}
Setter latency_check(const Reader& r, LatencyCheck& c) {
  return [&r, &c](const YAML::Node& n, const std::string& p) {
    return r.map(n, p, {{"enabled", set_bool(r, c.enabled)},
                        {"max_ms", set_number(r, c.max_ms, 0, 3.6e6)},
                        {"max_ratio", set_number(r, c.max_ratio, 0, 1000)},
                        {"slack_ms", set_number(r, c.slack_ms, 0, 3.6e6)},
                        {"dry_run", set_bool(r, c.dry_run)}});
  };
}

Status read_judge(const Reader& r, const YAML::Node& n, const std::string& p, JudgeSpec& j) {
  JudgeSpec* jp = &j;
  Setter checks = [&r, jp](const YAML::Node& c, const std::string& cp) {
    AgreementCheck& a = jp->agreement;
    AccuracyCheck& acc = jp->accuracy;
    return r.map(c, cp,
                 {{"error_rate", rate_check(r, jp->error_rate)},
                  {"latency_p50", latency_check(r, jp->latency_p50)},
                  {"latency_p99", latency_check(r, jp->latency_p99)},
                  {"agreement",
                   [&r, &a](const YAML::Node& x, const std::string& xp) {
                     return r.map(x, xp, {{"enabled", set_bool(r, a.enabled)},
                                          {"min", set_number(r, a.min, 0, 1)},
                                          {"max_abs_diff", set_number(r, a.max_abs_diff, 0, 1e30)},
                                          {"dry_run", set_bool(r, a.dry_run)}});
                   }},
                  {"accuracy", [&r, &acc](const YAML::Node& x, const std::string& xp) {
                     return r.map(x, xp, {{"enabled", set_bool(r, acc.enabled)},
                                          {"max_drop", set_number(r, acc.max_drop, 0, 1)},
                                          {"min", set_number(r, acc.min, 0, 1)},
                                          {"min_labels", set_integer(r, acc.min_labels, 1, int64_t{1} << 40)},
                                          {"dry_run", set_bool(r, acc.dry_run)}});
                   }}});
  };
  return r.map(n, p,
               {{"interval", set_duration(r, j.interval_ms, 100)},
                {"min_samples", set_integer(r, j.min_samples, 1, int64_t{1} << 40)},
                {"failures_to_rollback", set_integer(r, j.failures_to_rollback, 1, 1000)},
                {"deadline", set_duration(r, j.deadline_ms, 1000, /*allow_zero=*/true)},
                {"alpha", set_number(r, j.alpha, 1e-9, 0.5)},
                {"checks", checks}});
}

Status read_webhook(const Reader& r, const YAML::Node& n, const std::string& p, WebhookSpec& w) {
  Setter events = [&r, &w](const YAML::Node& e, const std::string& ep) {
    return r.list(e, ep, 32, w.events, [&r](const YAML::Node& x, const std::string& xp) -> Result<std::string> {
      HEARTH_ASSIGN_OR_RETURN(std::string name, r.text(x, xp, 64));
      const auto& known = release_event_names();
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        std::string list;
        for (const auto& k : known) list += str_cat(list.empty() ? "" : ", ", k);
        return r.error(x, xp, "unknown event '", name, "' (events: ", list, ")");
      }
      return name;
    });
  };
  HEARTH_RETURN_IF_ERROR(r.map(n, p,
                               {{"url", set_text(r, w.url)},
                                {"events", events},
                                {"retries", set_integer(r, w.retries, 0, 20)},
                                {"timeout", set_duration(r, w.timeout_ms, 10)}}));
  if (w.url.rfind("http://", 0) != 0)
    return r.error(n, p + ".url", "'", w.url, "' must be an http:// URL (https webhooks are not supported yet)");
  return ok_status();
}

Status read_release(const Reader& r, const YAML::Node& root, ReleaseSpec& s) {
  GateSpec& g = s.gate;
  ShadowSpec& sh = s.shadow;
  CanarySpec& c = s.canary;
  auto version = [&r](const YAML::Node& n, const std::string& p) { return r.integer(n, p, 1, int64_t{1} << 53); };
  Setter candidate = [&](const YAML::Node& n, const std::string& p) -> Status {
    if (!s.candidates.empty()) return r.error(n, p, "give either candidate or candidates");
    HEARTH_ASSIGN_OR_RETURN(int64_t v, version(n, p));
    s.candidates = {v};
    return ok_status();
  };
  Setter candidates = [&](const YAML::Node& n, const std::string& p) -> Status {
    if (!s.candidates.empty()) return r.error(n, p, "give either candidate or candidates");
    return r.list(n, p, kMaxCandidates, s.candidates, version);
  };
  Setter gate = [&](const YAML::Node& n, const std::string& p) {
    return r.map(n, p, {{"enabled", set_bool(r, g.enabled)},
                        {"latency_ratio", set_number(r, g.latency_ratio, 0, 1000)},
                        {"latency_slack_ms", set_number(r, g.latency_slack_ms, 0, 3.6e6)},
                        {"latency_runs", set_integer(r, g.latency_runs, 1, 10000)},
                        {"min_free_memory_mb", set_integer(r, g.min_free_memory_mb, 0, int64_t{1} << 30)},
                        {"golden", set_text(r, g.golden)},
                        {"require_golden", set_bool(r, g.require_golden)},
                        {"min_accuracy", set_number(r, g.min_accuracy, 0, 1)},
                        {"max_accuracy_drop", set_number(r, g.max_accuracy_drop, 0, 1)},
                        {"output", set_text(r, g.output)}});
  };
  Setter shadow = [&](const YAML::Node& n, const std::string& p) {
    return r.map(n, p, {{"share", set_number(r, sh.share, 0, 1)},
                        {"duration", set_duration(r, sh.duration_ms, 100, /*allow_zero=*/true)},
                        {"max_in_flight", set_integer(r, sh.max_in_flight, 1, 1 << 20)}});
  };
  Setter canary = [&](const YAML::Node& n, const std::string& p) {
    Setter steps = [&](const YAML::Node& x, const std::string& xp) -> Status {
      return r.list(x, xp, kMaxSteps, c.steps, [&r](const YAML::Node& v, const std::string& vp) {
        return r.number(v, vp, 0, 100);
      });
    };
    return r.map(n, p, {{"steps", steps},
                        {"pause", set_duration(r, c.pause_ms, 0, /*allow_zero=*/true)},
                        {"max_in_flight", set_integer(r, c.max_in_flight, 1, 1 << 20)},
                        {"retry_on_champion", set_bool(r, c.retry_on_champion)}});
  };
  Setter judge = [&](const YAML::Node& n, const std::string& p) { return read_judge(r, n, p, s.judge); };
  Setter webhooks = [&](const YAML::Node& n, const std::string& p) -> Status {
    if (!n.IsSequence()) return r.error(n, p, "must be a list");
    if (n.size() > kMaxWebhooks) return r.error(n, p, "has ", n.size(), " entries; at most ", kMaxWebhooks);
    s.webhooks.assign(n.size(), WebhookSpec{});
    for (size_t i = 0; i < n.size(); ++i) HEARTH_RETURN_IF_ERROR(read_webhook(r, n[i], str_cat(p, "[", i, "]"), s.webhooks[i]));
    return ok_status();
  };
  return r.map(root, "",
               {{"model", set_text(r, s.model)},
                {"candidate", candidate},
                {"candidates", candidates},
                {"champion", set_integer(r, s.champion, 1, int64_t{1} << 53)},
                {"gate", gate},
                {"shadow", shadow},
                {"canary", canary},
                {"judge", judge},
                {"webhooks", webhooks}});
}

// What no single field can check.
Status check_release(const Reader& r, const YAML::Node& root, const ReleaseSpec& s) {
  if (s.model.empty()) return r.error(root, "model", "is required");
  if (s.candidates.empty()) return r.error(root, "candidate", "is required (or candidates: [N, M] for A/B/n)");
  std::set<int64_t> unique(s.candidates.begin(), s.candidates.end());
  if (unique.size() != s.candidates.size()) return r.error(root, "candidates", "lists a version twice");
  if (unique.count(s.champion)) return r.error(root, "champion", s.champion, " is also a candidate");
  if (s.canary.steps.empty()) return r.error(root, "canary.steps", "needs at least one weight");
  double last = 0;
  for (size_t i = 0; i < s.canary.steps.size(); ++i) {
    const double w = s.canary.steps[i];
    if (w <= 0) return r.error(root, str_cat("canary.steps[", i, "]"), "a weight must be over 0");
    if (w < last) return r.error(root, str_cat("canary.steps[", i, "]"), w, " is less than the step before (", last, ")");
    if (w * static_cast<double>(s.candidates.size()) > 100 + 1e-9)
      return r.error(root, str_cat("canary.steps[", i, "]"), w, "% for each of ", s.candidates.size(),
                     " candidates is over 100%");
    last = w;
  }
  if (s.gate.golden.find('/') != std::string::npos || s.gate.golden == ".." || s.gate.golden.empty())
    return r.error(root, "gate.golden", "must be a folder name inside the version folder");
  return ok_status();
}

nlohmann::json check_json(const RateCheck& c) {
  return {{"enabled", c.enabled}, {"max", c.max}, {"max_increase", c.max_increase}, {"dry_run", c.dry_run}};
}
nlohmann::json check_json(const LatencyCheck& c) {
  return {{"enabled", c.enabled}, {"max_ms", c.max_ms}, {"max_ratio", c.max_ratio}, {"slack_ms", c.slack_ms},
          {"dry_run", c.dry_run}};
}
std::string ms_text(int64_t ms) { return str_cat(ms, "ms"); }

}  // namespace

const std::vector<std::string>& release_event_names() {
  static const std::vector<std::string> kNames = {"started", "gate",     "step",        "check",   "paused",
                                                  "resumed", "promoted", "rolled_back", "aborted", "recovered"};
  return kNames;
}

Result<ReleaseSpec> parse_release_spec(const std::string& text, const std::string& source, const std::string& model) {
  if (text.size() > kMaxSpecBytes) return invalid_argument(source, ": a release is at most 1 MiB");
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return invalid_argument(source, ":", e.mark.line + 1, ": not valid YAML or JSON: ", e.msg);
  }
  Reader r(source);
  ReleaseSpec s;
  if (!model.empty() && root.IsMap() && !root["model"]) s.model = model;
  try {
    HEARTH_RETURN_IF_ERROR(read_release(r, root, s));
  } catch (const YAML::Exception& e) {
    return invalid_argument(source, ":", e.mark.line + 1, ": ", e.msg);
  }
  if (!model.empty() && s.model != model)
    return r.error(root, "model", "'", s.model, "' is not the model of the URL ('", model, "')");
  HEARTH_RETURN_IF_ERROR(check_release(r, root, s));
  return s;
}

std::string release_spec_json(const ReleaseSpec& s) {
  const JudgeSpec& j = s.judge;
  nlohmann::json hooks = nlohmann::json::array();
  for (const WebhookSpec& w : s.webhooks)
    hooks.push_back({{"url", w.url}, {"events", w.events}, {"retries", w.retries}, {"timeout", ms_text(w.timeout_ms)}});
  nlohmann::json doc = {
      {"model", s.model},
      {"candidates", s.candidates},
      {"gate",
       {{"enabled", s.gate.enabled}, {"latency_ratio", s.gate.latency_ratio},
        {"latency_slack_ms", s.gate.latency_slack_ms}, {"latency_runs", s.gate.latency_runs},
        {"min_free_memory_mb", s.gate.min_free_memory_mb}, {"golden", s.gate.golden},
        {"require_golden", s.gate.require_golden}, {"min_accuracy", s.gate.min_accuracy},
        {"max_accuracy_drop", s.gate.max_accuracy_drop}, {"output", s.gate.output}}},
      {"shadow",
       {{"share", s.shadow.share}, {"duration", ms_text(s.shadow.duration_ms)}, {"max_in_flight", s.shadow.max_in_flight}}},
      {"canary",
       {{"steps", s.canary.steps}, {"pause", ms_text(s.canary.pause_ms)}, {"max_in_flight", s.canary.max_in_flight},
        {"retry_on_champion", s.canary.retry_on_champion}}},
      {"judge",
       {{"interval", ms_text(j.interval_ms)},
        {"min_samples", j.min_samples},
        {"failures_to_rollback", j.failures_to_rollback},
        {"deadline", ms_text(j.deadline_ms)},
        {"alpha", j.alpha},
        {"checks",
         {{"error_rate", check_json(j.error_rate)},
          {"latency_p50", check_json(j.latency_p50)},
          {"latency_p99", check_json(j.latency_p99)},
          {"agreement",
           {{"enabled", j.agreement.enabled}, {"min", j.agreement.min}, {"max_abs_diff", j.agreement.max_abs_diff},
            {"dry_run", j.agreement.dry_run}}},
          {"accuracy",
           {{"enabled", j.accuracy.enabled}, {"max_drop", j.accuracy.max_drop}, {"min", j.accuracy.min},
            {"min_labels", j.accuracy.min_labels}, {"dry_run", j.accuracy.dry_run}}}}}}},
      {"webhooks", hooks}};
  if (s.champion > 0) doc["champion"] = s.champion;
  return doc.dump();
}

}  // namespace hearth::rollout
