// Running releases: the worker, the transitions, recovery and the API (see release_manager.h).
#include "rollout/release_manager.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <future>

#include <nlohmann/json.hpp>

#include "rollout/gate.h"
#include "rollout/judge.h"
#include "rollout/statistics.h"
#include "security/audit_log.h"
#include "serving/model_version.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"

namespace hearth::rollout {

using nlohmann::json;

namespace {

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const Actor kJudge{"judge", "server"};
const Actor kGate{"gate", "server"};
const Actor kServer{"server", "server"};
// While a candidate's checks stay inconclusive, one decision a minute is stored.
constexpr int64_t kInconclusiveEveryUs = 60 * 1000000;
// The deciding decisions history shows per release (the newest).
constexpr size_t kHistoryDecisions = 200;

std::string join(const std::vector<int64_t>& v) {
  std::string out;
  for (int64_t x : v) out += str_cat(out.empty() ? "" : ",", x);
  return out;
}

json window_json(const WindowSnapshot& w) {
  json j = {{"requests", w.requests},       {"errors", w.errors},     {"client_errors", w.client_errors},
            {"retried", w.retried},         {"spilled", w.spilled},   {"shadow_rows", w.shadow_compared},
            {"shadow_agreed", w.shadow_agreed}, {"shadow_dropped", w.shadow_dropped},
            {"labelled", w.labelled},       {"correct", w.correct},   {"pairs", w.pairs}};
  if (!w.latency_ms.empty()) {
    j["p50_ms"] = quantile(w.latency_ms, 0.5);
    j["p99_ms"] = quantile(w.latency_ms, 0.99);
  }
  return j;
}

json judgement_json(const Judgement& j) {
  json checks = json::array();
  for (const CheckResult& c : j.checks) {
    checks.push_back({{"check", c.name},
                      {"verdict", verdict_name(c.verdict)},
                      {"dry_run", c.dry_run},
                      {"candidate", c.candidate},
                      {"champion", c.champion},
                      {"threshold", c.threshold},
                      {"candidate_samples", c.candidate_samples},
                      {"champion_samples", c.champion_samples},
                      {"p_value", c.p_value},
                      {"reason", c.reason}});
  }
  return {{"verdict", verdict_name(j.verdict)}, {"summary", j.summary}, {"checks", checks}};
}

json release_json(const ReleaseRecord& r) {
  json failures = json::object();
  for (const auto& [v, n] : r.failed_checks) failures[std::to_string(v)] = n;
  return {{"id", r.id},
          {"model", r.model},
          {"champion", r.champion},
          {"candidates", r.candidates},
          {"dropped", r.dropped},
          {"phase", phase_name(r.phase)},
          {"step", r.step},
          {"paused", r.paused},
          {"failed_checks", failures},
          {"promoted_version", r.promoted_version},
          {"started_us", r.started_us},
          {"updated_us", r.updated_us},
          {"step_started_us", r.step_started_us},
          {"ended_us", r.ended_us},
          {"actor", r.actor},
          {"reason", r.reason}};
}

json weights_json(const RouteTable& t) {
  json out = json::object();
  for (const auto& [v, w] : t.weights()) out[std::to_string(v)] = w;
  return out;
}

// A transition the store refused is not taken (a restart would not know it).
void log_store_failure(int64_t release, const Status& s) {
  telemetry::log_error("release_store_failed",
                       {telemetry::field("release", release), telemetry::field("error", s.message())});
}

json decision_json(const DecisionRecord& d) {
  json detail = json::parse(d.detail, nullptr, false);
  return {{"time_us", d.time_us}, {"kind", d.kind},   {"verdict", d.verdict},
          {"actor", d.actor},     {"step", d.step},   {"detail", detail.is_discarded() ? json(d.detail) : detail}};
}

}  // namespace

struct ReleaseManager::Running {
  ReleaseRecord record;
  ReleaseSpec spec;
  std::shared_ptr<ReleaseRuntime> runtime;
  std::future<std::vector<std::pair<int64_t, GateReport>>> gate;
  bool gate_started = false;
  bool ended = false;
  bool awaiting_promote_noted = false;
  int64_t next_judge_us = 0;
  std::map<int64_t, bool> step_passed;  // per candidate, at the current step
  WindowSnapshot champion_pending, champion_baseline;
  std::map<int64_t, WindowSnapshot> pending;
  std::map<int64_t, json> last_check;   // per candidate, for status
  std::map<int64_t, int64_t> inconclusive_stored_us;  // per candidate: when the last inconclusive was stored
};

ReleaseManager::ReleaseManager(std::unique_ptr<ReleaseStore> store, ReleaseManagerOptions options)
    : store_(std::move(store)), options_(std::move(options)) {}

ReleaseManager::~ReleaseManager() { stop(); }

Result<std::unique_ptr<ReleaseManager>> ReleaseManager::open(std::unique_ptr<ReleaseStore> store,
                                                             ReleaseManagerOptions options) {
  std::unique_ptr<ReleaseManager> m(new ReleaseManager(std::move(store), std::move(options)));
  HEARTH_ASSIGN_OR_RETURN(m->models_, m->store_->models());
  HEARTH_ASSIGN_OR_RETURN(auto active, m->store_->active());
  for (ReleaseRecord& rec : active) {
    auto spec = parse_release_spec(rec.spec_json, str_cat("stored release ", rec.id));
    auto r = std::make_unique<Running>();
    r->record = std::move(rec);
    if (!spec.ok()) {
      // Not a state anyone chose to resume: it ends, with the reason.
      r->record.phase = Phase::kAborted;
      r->record.reason = str_cat("its stored spec no longer reads: ", spec.status().message());
      r->record.ended_us = now_us();
      HEARTH_RETURN_IF_ERROR(m->store_->transition(r->record, nullptr));
      continue;
    }
    r->spec = std::move(spec).value();
    m->running_[r->record.id] = std::move(r);
  }
  return m;
}

repository::VersionPins ReleaseManager::pins_for(const std::string& model) const {
  repository::VersionPins pins;
  if (auto it = models_.find(model); it != models_.end()) {
    if (it->second.production > 0) pins.hold.insert(it->second.production);
    if (it->second.previous > 0) pins.hold.insert(it->second.previous);
    pins.exclude = it->second.excluded;
  }
  for (const auto& [id, r] : running_) {
    if (r->record.model != model || r->ended) continue;
    pins.hold.insert(r->record.champion);
    for (int64_t v : r->record.candidates) pins.hold.insert(v);
  }
  for (int64_t v : pins.hold) pins.exclude.erase(v);
  return pins;
}

std::map<std::string, repository::VersionPins> ReleaseManager::version_pins() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, repository::VersionPins> out;
  for (const auto& [model, rec] : models_) out[model] = pins_for(model);
  for (const auto& [id, r] : running_) out[r->record.model] = pins_for(r->record.model);
  for (auto it = out.begin(); it != out.end();) it = it->second.empty() ? out.erase(it) : std::next(it);
  return out;
}

Status ReleaseManager::attach(serving::InferenceServer& server) {
  std::lock_guard<std::mutex> lock(mu_);
  if (server_ != nullptr) return Status(StatusCode::kFailedPrecondition, "the release manager is attached already");
  server_ = &server;
  const int64_t now = now_us();
  for (auto& [id, r] : running_) {
    r->runtime = std::make_shared<ReleaseRuntime>(id, r->spec, r->record.champion, r->record.candidates);
    r->record.step_started_us = now;
    r->record.updated_us = now;
    DecisionRecord d{0, id, now, "recovered", "", kServer.user, r->record.step,
                     json{{"phase", phase_name(r->record.phase)}, {"step", r->record.step},
                          {"note", r->record.phase == Phase::kGate ? "the gate runs again"
                                                                   : "the step starts again with the same routing"}}
                         .dump()};
    if (Status s = store_->transition(r->record, &d); !s.ok()) return s;
    report(*r, "recovered", kServer, d.detail);
  }
  install_routes();
  thread_ = std::thread([this] { worker(); });
  return ok_status();
}

void ReleaseManager::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::map<int64_t, std::unique_ptr<Running>> running;
  std::vector<GateFuture> gates;
  {
    std::lock_guard<std::mutex> lock(mu_);
    running.swap(running_);
    gates.swap(orphan_gates_);
  }
  running.clear();  // waits (outside the lock: a gate takes it) for gates still running
  gates.clear();
  std::lock_guard<std::mutex> lock(mu_);
  server_ = nullptr;
}

void ReleaseManager::worker() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::milliseconds(options_.tick_ms), [&] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    tick();
    lock.lock();
  }
}

void ReleaseManager::tick() {
  std::lock_guard<std::mutex> lock(mu_);
  if (server_ == nullptr) return;
  const int64_t now = now_us();
  for (auto& [id, r] : running_)
    if (!r->ended) step_release(*r, now);
  for (auto it = running_.begin(); it != running_.end();) {
    if (!it->second->ended) {
      ++it;
      continue;
    }
    // A gate still running for an ended release finishes on its own; nobody waits for it here.
    if (it->second->gate.valid()) orphan_gates_.push_back(std::move(it->second->gate));
    it = running_.erase(it);
  }
  std::erase_if(orphan_gates_,
                [](const GateFuture& g) { return g.wait_for(std::chrono::seconds(0)) == std::future_status::ready; });
}

void ReleaseManager::step_release(Running& r, int64_t now) {
  if (r.record.phase == Phase::kGate) {
    if (!r.gate_started) {
      // The candidates load (held beside the policy) and the gate runs off the worker.
      r.gate_started = true;
      r.gate = std::async(std::launch::async, [this, server = server_, spec = r.spec, champion = r.record.champion,
                                               candidates = r.record.candidates] {
        return run_gates(*server, spec, champion, candidates);
      });
    } else if (!r.record.paused && r.gate.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      finish_gate(r, now);  // paused: the result waits for resume
    }
    return;
  }
  if (r.record.phase == Phase::kShadow || r.record.phase == Phase::kCanary) judge_release(r, now);
}

std::vector<std::pair<int64_t, GateReport>> ReleaseManager::run_gates(serving::InferenceServer& server,
                                                                      const ReleaseSpec& spec, int64_t champion,
                                                                      const std::vector<int64_t>& candidates) {
  std::vector<std::pair<int64_t, GateReport>> reports;
  try {
    // The candidates load, held beside the policy: the pins as they are now (an
    // abort meanwhile has taken the candidates out of them). A failed load shows
    // in the gate's "ready".
    repository::VersionPins pins;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pins = pins_for(spec.model);
    }
    (void)server.pin_versions(spec.model, pins);
    for (int64_t v : candidates) {
      if (spec.gate.enabled) {
        reports.emplace_back(v, run_gate(server, options_.repository, spec, champion, v));
        continue;
      }
      GateReport ready;  // the gate is off: the candidate only has to load
      auto found = server.find_version(spec.model, std::to_string(v));
      ready.passed = found.ok();
      ready.reason = found.ok() ? "" : found.status().message();
      ready.checks.push_back({"ready", found.ok(), false, found.ok() ? "loaded (the gate is off)" : ready.reason});
      reports.emplace_back(v, std::move(ready));
    }
  } catch (const std::exception& e) {  // e.g. a golden set too large for memory: the gate fails, the server stays
    reports.clear();
    for (int64_t v : candidates) {
      GateReport failed;
      failed.passed = false;
      failed.reason = str_cat("the gate could not run: ", e.what());
      failed.checks.push_back({"gate", false, false, failed.reason});
      reports.emplace_back(v, std::move(failed));
    }
  }
  return reports;
}

void ReleaseManager::finish_gate(Running& r, int64_t now) {
  auto reports = r.gate.get();
  json detail = json::object();
  std::vector<int64_t> failed;
  std::string reasons;
  for (const auto& [v, report] : reports) {
    detail[std::to_string(v)] = json::parse(report.to_json());
    if (!report.passed) {
      failed.push_back(v);
      reasons += str_cat(reasons.empty() ? "" : "; ", "version ", v, ": ", report.reason);
    }
  }
  if (failed.size() == r.record.candidates.size()) return end(r, Phase::kGateFailed, 0, "gate", kGate, reasons, detail.dump());
  // The candidates that failed leave, the others take traffic: one transition.
  ReleaseRecord next = r.record;
  ModelRecord model = models_[r.record.model];
  for (int64_t v : failed) {
    next.candidates.erase(std::remove(next.candidates.begin(), next.candidates.end(), v), next.candidates.end());
    next.dropped.push_back(v);
    model.excluded.insert(v);
  }
  if (!failed.empty()) detail["dropped"] = failed;
  next.phase = r.spec.shadow.share > 0 ? Phase::kShadow : Phase::kCanary;
  if (!transition_to(r, std::move(next), now, "gate", "pass", kGate, detail.dump(), failed.empty() ? nullptr : &model)) {
    r.gate_started = false;  // not stored: the gate runs again
    return;
  }
  if (!failed.empty()) apply_pins(r.record.model);
}

void ReleaseManager::judge_release(Running& r, int64_t now) {
  const JudgeSpec& js = r.spec.judge;
  if (js.deadline_ms > 0 && !r.record.paused && now - r.record.started_us >= js.deadline_ms * 1000)
    return end(r, Phase::kRolledBack, 0, "rolled_back", kJudge,
               str_cat("the deadline of ", js.deadline_ms, " ms passed before the release completed"), "{}");
  if (now < r.next_judge_us) return;
  r.next_judge_us = now + js.interval_ms * 1000;
  WindowSnapshot champion_now = r.runtime->window(r.record.champion).take();
  r.champion_pending.merge(champion_now);
  r.champion_baseline.merge(champion_now);
  const WindowSnapshot& champion =
      r.champion_pending.requests >= js.min_samples ? r.champion_pending : r.champion_baseline;
  bool conclusive = false;
  const std::vector<int64_t> candidates = r.record.candidates;
  for (int64_t v : candidates) {
    WindowSnapshot& mine = r.pending[v];
    mine.merge(r.runtime->window(v).take());
    const Judgement j = judge(js, champion, mine, r.spec.shadow.share > 0);
    record_check(r, v, j, mine, champion, now);
    if (j.verdict != Verdict::kInconclusive) {
      mine = WindowSnapshot{};
      conclusive = true;
    }
    if (r.record.paused) continue;
    if (j.verdict == Verdict::kPass) r.step_passed[v] = true;
    if (j.verdict == Verdict::kFail && ++r.record.failed_checks[v] >= js.failures_to_rollback) {
      drop_candidate(r, v, str_cat(r.record.failed_checks[v], " failed checks: ", j.summary), now);
      if (r.ended) return;
    } else if (j.verdict == Verdict::kFail) {
      if (Status s = store_->transition(r.record, nullptr); !s.ok()) log_store_failure(r.record.id, s);  // the count survives a restart
    }
  }
  if (conclusive) r.champion_pending = WindowSnapshot{};
  if (!r.record.paused) advance(r, now);
}

// The next step (or the promotion) once every candidate passed at this one and its pause is over.
void ReleaseManager::advance(Running& r, int64_t now) {
  const bool all_passed = std::all_of(r.record.candidates.begin(), r.record.candidates.end(),
                                      [&](int64_t v) { return r.step_passed[v]; });
  const int64_t held_ms = (now - r.record.step_started_us) / 1000;
  if (r.record.phase == Phase::kShadow) {
    if (all_passed && held_ms >= r.spec.shadow.duration_ms)
      enter(r, Phase::kCanary, 0, now, "step", "pass", kJudge, json{{"from", "shadow"}}.dump());
    return;
  }
  if (!all_passed || held_ms < r.spec.canary.pause_ms) return;
  const size_t next = static_cast<size_t>(r.record.step) + 1;
  if (next < r.spec.canary.steps.size())
    return enter(r, Phase::kCanary, static_cast<int>(next), now, "step", "pass", kJudge,
                 json{{"weight", r.spec.canary.steps[next]}}.dump());
  // One candidate is promoted by the judge; an A/B/n release (started with more)
  // waits at its last step for a person to pick, even when one is left.
  if (r.spec.candidates.size() == 1)
    return end(r, Phase::kPromoted, r.record.candidates.front(), "promoted", kJudge,
               "every step passed its checks", json{{"steps", r.spec.canary.steps}}.dump());
  if (!r.awaiting_promote_noted) {
    r.awaiting_promote_noted = true;
    r.record.reason = str_cat("every step passed for candidates ", join(r.record.candidates),
                              ": promote one of them by hand");
    (void)store_->transition(r.record, nullptr);
  }
}


// One judge check of candidate `v`: its decision (an inconclusive one at most once a
// minute while it stays inconclusive: a canary without traffic holds for days), the
// metrics, the event.
void ReleaseManager::record_check(Running& r, int64_t v, const Judgement& j, const WindowSnapshot& mine,
                                  const WindowSnapshot& champion, int64_t now) {
  json detail = judgement_json(j);
  detail["version"] = v;
  detail["weight"] = r.record.phase == Phase::kCanary ? r.spec.canary.steps[static_cast<size_t>(r.record.step)] : 0;
  detail["candidate_window"] = window_json(mine);
  detail["champion_window"] = window_json(champion);
  if (r.record.paused) detail["note"] = "paused: recorded, not acted on";
  r.last_check[v] = detail;
  telemetry::Registry& metrics = server_->metrics();
  metrics
      .counter("hearth_release_checks_total", "Judge checks of running releases, by verdict",
               {{"model", r.record.model}, {"version", std::to_string(v)}, {"verdict", verdict_name(j.verdict)}})
      ->add();
  if (mine.shadow_compared > 0)
    metrics
        .gauge("hearth_release_shadow_agreement", "Top-1 agreement of a candidate's shadow answers with the champion's",
               {{"model", r.record.model}, {"version", std::to_string(v)}})
        ->set(static_cast<double>(mine.shadow_agreed) / static_cast<double>(mine.shadow_compared));
  const bool inconclusive = j.verdict == Verdict::kInconclusive;
  int64_t& quiet = r.inconclusive_stored_us[v];
  if (inconclusive && quiet > 0 && now - quiet < kInconclusiveEveryUs) return;
  quiet = inconclusive ? now : 0;
  DecisionRecord d{0, r.record.id, now, "check", verdict_name(j.verdict), kJudge.user, r.record.step, detail.dump()};
  if (Status s = store_->add_decision(d); !s.ok()) log_store_failure(r.record.id, s);
  if (!inconclusive) report(r, "check", kJudge, d.detail);
}

RouteTable ReleaseManager::table_for(const ReleaseRecord& rec, const ReleaseSpec& spec) {
  RouteTable t;
  t.champion = rec.champion;
  t.salt = str_cat("release-", rec.id);
  if (rec.phase == Phase::kShadow || rec.phase == Phase::kCanary) {
    if (spec.shadow.share > 0) {
      t.shadow_share = spec.shadow.share;
      t.shadow_versions = rec.candidates;
    }
    if (rec.phase == Phase::kCanary) {
      // Each candidate keeps the stripe of buckets its place in the spec gives it,
      // so a key stays on its candidate as weights grow or another candidate leaves.
      const double w = spec.canary.steps[static_cast<size_t>(rec.step)];
      const int64_t stripe = kBuckets / static_cast<int64_t>(spec.candidates.size());
      for (size_t i = 0; i < spec.candidates.size(); ++i)
        if (std::find(rec.candidates.begin(), rec.candidates.end(), spec.candidates[i]) != rec.candidates.end())
          t.candidates.push_back({spec.candidates[i], w, static_cast<int64_t>(i) * stripe});
    }
  }
  return t;
}

void ReleaseManager::install_routes() {
  if (server_ == nullptr) return;
  std::map<std::string, ModelRoute> routes;
  for (const auto& [model, rec] : models_) {
    if (rec.production <= 0) continue;
    RouteTable t;
    t.champion = rec.production;
    routes[model] = ModelRoute{t, nullptr};
  }
  std::map<std::string, std::shared_ptr<ReleaseRuntime>> runtimes;
  for (const auto& [id, r] : running_) {
    if (r->ended) continue;
    routes[r->record.model] = ModelRoute{table_for(r->record, r->spec), r->runtime};
    runtimes[r->record.model] = r->runtime;
  }
  {
    std::lock_guard<std::mutex> lock(runtimes_mu_);
    runtimes_.swap(runtimes);
  }
  // Every version that had a weight gets its new one (0 when it left the routing).
  std::map<std::pair<std::string, int64_t>, double> weights;
  for (const auto& [key, w] : weight_series_) weights[key] = 0;
  for (const auto& [model, route] : routes)
    for (const auto& [v, w] : route.table.weights()) weights[{model, v}] = w;
  for (const auto& [key, w] : weights)
    server_->metrics()
        .gauge("hearth_release_weight", "Percent of a model's unnamed requests each version gets",
               {{"model", key.first}, {"version", std::to_string(key.second)}})
        ->set(w);
  weight_series_ = std::move(weights);
  server_->set_version_router(std::make_shared<ReleaseRouter>(*server_, std::move(routes)));
}

void ReleaseManager::apply_pins(const std::string& model) {
  if (server_ == nullptr) return;
  Status s = server_->pin_versions(model, pins_for(model));
  if (!s.ok())
    telemetry::log_warn("release_pins", {telemetry::field("model", model), telemetry::field("error", s.message())});
}

void ReleaseManager::enter(Running& r, Phase phase, int step, int64_t now, const std::string& kind,
                           const std::string& verdict, const Actor& who, const std::string& detail) {
  ReleaseRecord next = r.record;
  next.phase = phase;
  next.step = step;
  (void)transition_to(r, std::move(next), now, kind, verdict, who, detail, nullptr);
}

bool ReleaseManager::transition_to(Running& r, ReleaseRecord next, int64_t now, const std::string& kind,
                                   const std::string& verdict, const Actor& who, const std::string& detail,
                                   const ModelRecord* model) {
  next.step_started_us = now;
  next.updated_us = now;
  const RouteRecord route{now, r.record.id, table_for(next, r.spec).to_json()};
  DecisionRecord d{0, r.record.id, now, kind, verdict, who.user, next.step, detail};
  if (Status s = store_->transition(next, &d, &route, model); !s.ok()) {
    log_store_failure(r.record.id, s);
    return false;
  }
  r.record = std::move(next);
  if (model) models_[r.record.model] = *model;
  r.step_passed.clear();
  r.pending.clear();
  r.next_judge_us = now + r.spec.judge.interval_ms * 1000;
  install_routes();
  report(r, kind, who, detail);
  return true;
}

void ReleaseManager::end(Running& r, Phase phase, int64_t promoted, const std::string& kind, const Actor& who,
                         const std::string& reason, const std::string& detail) {
  const int64_t now = now_us();
  ReleaseRecord next = r.record;
  next.phase = phase;
  next.updated_us = now;
  next.ended_us = now;
  next.promoted_version = promoted;
  next.reason = reason;
  ModelRecord model = models_[r.record.model];
  if (promoted > 0) {
    model.previous = r.record.champion;
    model.production = promoted;
  } else {
    model.production = r.record.champion;
  }
  for (int64_t v : r.record.candidates)
    if (v != promoted) model.excluded.insert(v);
  model.excluded.erase(model.production);
  model.excluded.erase(model.previous);
  RouteTable table;
  table.champion = model.production;
  const RouteRecord route{now, r.record.id, table.to_json()};
  json d_detail = json::parse(detail, nullptr, false);
  if (d_detail.is_discarded() || !d_detail.is_object()) d_detail = json::object();
  d_detail["reason"] = reason;
  d_detail["production"] = model.production;
  DecisionRecord d{0, r.record.id, now, kind, phase == Phase::kPromoted ? "promote" : "rollback", who.user, r.record.step,
                   d_detail.dump()};
  if (Status s = store_->transition(next, &d, &route, &model); !s.ok()) return log_store_failure(r.record.id, s);
  r.record = std::move(next);
  r.ended = true;
  models_[r.record.model] = model;
  install_routes();
  apply_pins(r.record.model);
  report(r, kind, who, d.detail);
}

void ReleaseManager::drop_candidate(Running& r, int64_t version, const std::string& reason, int64_t now) {
  if (r.record.candidates.size() <= 1) return end(r, Phase::kRolledBack, 0, "rolled_back", kJudge, reason, "{}");
  // The others go on at this step (its pause and windows start again).
  ReleaseRecord next = r.record;
  next.candidates.erase(std::remove(next.candidates.begin(), next.candidates.end(), version), next.candidates.end());
  next.dropped.push_back(version);
  ModelRecord model = models_[r.record.model];
  model.excluded.insert(version);
  const std::string detail = json{{"version", version}, {"reason", reason}}.dump();
  if (transition_to(r, std::move(next), now, "rolled_back", "rollback", kJudge, detail, &model)) apply_pins(r.record.model);
}

void ReleaseManager::report(const Running& r, const std::string& event, const Actor& who, const std::string& detail) {
  json body = release_json(r.record);
  body["event"] = event;
  body["actor"] = who.user;
  json parsed = json::parse(detail, nullptr, false);
  body["detail"] = parsed.is_discarded() ? json(detail) : parsed;
  telemetry::log_info("release_event", {telemetry::field("event", event), telemetry::field("release", r.record.id),
                                        telemetry::field("model", r.record.model),
                                        telemetry::field("phase", phase_name(r.record.phase)),
                                        telemetry::field("step", static_cast<int64_t>(r.record.step)),
                                        telemetry::field("actor", who.user)});
  if (options_.audit != nullptr) {
    security::AuditEvent e{who.user, "release." + event, "models", r.record.model, join(r.record.candidates),
                           who.client, "ok", str_cat("release ", r.record.id, ": ", detail)};
    if (Status s = options_.audit->append(e); !s.ok())
      telemetry::log_error("audit_failed", {telemetry::field("error", s.message())});
  }
  webhooks_.notify(r.spec.webhooks, event, body.dump());
}

ReleaseManager::Running* ReleaseManager::running_for(const std::string& model, int64_t id) const {
  for (const auto& [rid, r] : running_)
    if (!r->ended && r->record.model == model && (id == 0 || rid == id)) return r.get();
  return nullptr;
}

Result<ReleaseRecord> ReleaseManager::start(const ReleaseSpec& spec_in, const Actor& who) {
  std::lock_guard<std::mutex> lock(mu_);
  if (server_ == nullptr) return Status(StatusCode::kUnavailable, "releases are not running on this server");
  if (Running* r = running_for(spec_in.model, 0))
    return Status(StatusCode::kFailedPrecondition,
                  str_cat("model '", spec_in.model, "' has release ", r->record.id, " running (", phase_name(r->record.phase),
                          "): pause, promote or abort it first"));
  ReleaseSpec spec = spec_in;
  namespace fs = std::filesystem;
  std::error_code ec;
  for (int64_t v : spec.candidates)
    if (!fs::is_directory(fs::path(options_.repository) / spec.model / std::to_string(v), ec))
      return invalid_argument("candidate: model '", spec.model, "' has no version ", v, " in the repository");
  int64_t champion = spec.champion;
  if (champion == 0) champion = models_.count(spec.model) ? models_[spec.model].production : 0;
  if (champion == 0) {
    auto meta = server_->model_metadata(spec.model, "");
    if (!meta.ok()) return meta.status();
    for (const std::string& v : meta->versions) {
      const int64_t n = std::stoll(v);
      if (std::find(spec.candidates.begin(), spec.candidates.end(), n) == spec.candidates.end())
        champion = std::max(champion, n);
    }
    if (champion == 0)
      return invalid_argument("champion: model '", spec.model,
                              "' has no ready version besides the candidate; name one with champion: N");
  }
  if (std::find(spec.candidates.begin(), spec.candidates.end(), champion) != spec.candidates.end())
    return invalid_argument("candidate: version ", champion, " is the champion (the production version) already");
  auto champ = server_->find_version(spec.model, std::to_string(champion));
  if (!champ.ok()) {
    // A champion the version policy does not load (latest{1} with the candidate
    // newest): held from now on, loaded now.
    repository::VersionPins pins = pins_for(spec.model);
    pins.hold.insert(champion);
    pins.exclude.erase(champion);
    (void)server_->pin_versions(spec.model, pins);
    champ = server_->find_version(spec.model, std::to_string(champion));
    if (!champ.ok()) {
      apply_pins(spec.model);
      return invalid_argument("champion: ", champ.status().message());
    }
  }
  spec.champion = champion;

  const int64_t now = now_us();
  auto r = std::make_unique<Running>();
  r->spec = spec;
  r->record.model = spec.model;
  r->record.champion = champion;
  r->record.candidates = spec.candidates;
  r->record.spec_json = release_spec_json(spec);
  r->record.phase = Phase::kGate;
  r->record.started_us = r->record.updated_us = r->record.step_started_us = now;
  r->record.actor = who.user;
  DecisionRecord first{0, 0, now, "started", "", who.user, 0,
                       json{{"champion", champion}, {"candidates", spec.candidates}, {"client", who.client}}.dump()};
  // Unnamed requests stay on the champion from now on, whatever the repository adds:
  // the release, its routing and the model's production version in one transaction.
  ModelRecord model = models_.count(spec.model) ? models_[spec.model] : ModelRecord{};
  if (model.production == 0) model.production = champion;
  for (int64_t v : spec.candidates) model.excluded.erase(v);
  RouteTable table;
  table.champion = champion;
  const RouteRecord route{now, 0, table.to_json()};
  HEARTH_RETURN_IF_ERROR(store_->create(r->record, first, &route, &model));
  models_[spec.model] = model;
  r->runtime = std::make_shared<ReleaseRuntime>(r->record.id, spec, champion, spec.candidates);
  Running& ref = *r;
  running_[r->record.id] = std::move(r);
  install_routes();
  report(ref, "started", who, first.detail);
  cv_.notify_all();
  return ref.record;
}

Status ReleaseManager::set_paused(const std::string& model, int64_t id, bool paused, const Actor& who) {
  std::lock_guard<std::mutex> lock(mu_);
  Running* r = running_for(model, id);
  if (r == nullptr) return not_found("model '", model, "' has no running release", id ? str_cat(" ", id) : "");
  if (r->record.paused == paused) return ok_status();
  ReleaseRecord next = r->record;  // stored first, then taken
  next.paused = paused;
  next.updated_us = now_us();
  if (!paused) next.step_started_us = next.updated_us;  // the step's pause counts from the resume
  const char* event = paused ? "paused" : "resumed";
  DecisionRecord d{0, next.id, next.updated_us, event, "", who.user, next.step, "{}"};
  HEARTH_RETURN_IF_ERROR(store_->transition(next, &d));
  r->record = std::move(next);
  report(*r, event, who, "{}");
  return ok_status();
}

Status ReleaseManager::pause(const std::string& model, int64_t id, const Actor& who) {
  return set_paused(model, id, true, who);
}

Status ReleaseManager::resume(const std::string& model, int64_t id, const Actor& who) {
  return set_paused(model, id, false, who);
}

Status ReleaseManager::promote(const std::string& model, int64_t id, int64_t version, const Actor& who) {
  std::lock_guard<std::mutex> lock(mu_);
  Running* r = running_for(model, id);
  if (r == nullptr) return not_found("model '", model, "' has no running release", id ? str_cat(" ", id) : "");
  if (r->record.phase == Phase::kGate)
    return Status(StatusCode::kFailedPrecondition, "the gate has not passed yet: nothing is known of the candidate");
  if (version == 0) {
    if (r->record.candidates.size() != 1)
      return invalid_argument("name the version to promote (candidates: ", join(r->record.candidates), ")");
    version = r->record.candidates.front();
  }
  if (std::find(r->record.candidates.begin(), r->record.candidates.end(), version) == r->record.candidates.end())
    return invalid_argument("version ", version, " is not a candidate of release ", r->record.id, " (candidates: ",
                            join(r->record.candidates), ")");
  end(*r, Phase::kPromoted, version, "promoted", who, str_cat("promoted by ", who.user), "{}");
  return r->ended ? ok_status() : Status(StatusCode::kInternal, "the promotion could not be stored");
}

Status ReleaseManager::abort(const std::string& model, int64_t id, const Actor& who) {
  std::lock_guard<std::mutex> lock(mu_);
  Running* r = running_for(model, id);
  if (r == nullptr) return not_found("model '", model, "' has no running release", id ? str_cat(" ", id) : "");
  end(*r, Phase::kAborted, 0, "aborted", who, str_cat("aborted by ", who.user), "{}");
  return r->ended ? ok_status() : Status(StatusCode::kInternal, "the abort could not be stored");
}

Status ReleaseManager::set_production(const std::string& model, int64_t version, const Actor& who) {
  std::lock_guard<std::mutex> serial(production_mu_);  // one at a time; mu_ is not held while it loads
  serving::InferenceServer* server = nullptr;
  repository::VersionPins pins;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (server_ == nullptr) return Status(StatusCode::kUnavailable, "releases are not running on this server");
    if (Running* r = running_for(model, 0))
      return Status(StatusCode::kFailedPrecondition,
                    str_cat("model '", model, "' has release ", r->record.id, " running: promote or abort it"));
    server = server_;
    pins = pins_for(model);
  }
  pins.hold.insert(version);
  pins.exclude.erase(version);
  (void)server->pin_versions(model, pins);  // loads it when it is not loaded
  auto found = server->find_version(model, std::to_string(version));
  std::lock_guard<std::mutex> lock(mu_);
  ModelRecord next = models_.count(model) ? models_[model] : ModelRecord{};
  if (next.production != version) next.previous = next.production;
  next.production = version;
  next.excluded.erase(version);
  RouteTable table;
  table.champion = version;
  const RouteRecord route{now_us(), 0, table.to_json()};
  Status stored = !found.ok() ? invalid_argument("version: ", found.status().message())
                  : running_for(model, 0) != nullptr
                      ? Status(StatusCode::kFailedPrecondition, str_cat("model '", model, "' has a release running now"))
                      : store_->set_model(model, next, &route);
  if (!stored.ok()) {
    apply_pins(model);  // back to what the store holds
    return stored;
  }
  models_[model] = next;
  apply_pins(model);
  install_routes();
  telemetry::log_info("production_set", {telemetry::field("model", model), telemetry::field("version", version),
                                         telemetry::field("actor", who.user)});
  if (options_.audit != nullptr)
    (void)options_.audit->append({who.user, "release.production", "models", model, std::to_string(version), who.client,
                                  "ok", ""});
  return ok_status();
}

Result<std::string> ReleaseManager::status_json(const std::string& model, int64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  ReleaseRecord record;
  const Running* r = running_for(model, id);
  if (r != nullptr) {
    record = r->record;
  } else if (id > 0) {
    HEARTH_ASSIGN_OR_RETURN(record, store_->release(id));
    if (record.model != model) return not_found("model '", model, "' has no release ", id);
  } else {
    HEARTH_ASSIGN_OR_RETURN(auto list, store_->releases(model, 1));
    if (list.empty()) return not_found("model '", model, "' has had no release");
    record = list.front();
  }
  json doc = release_json(record);
  doc["spec"] = json::parse(record.spec_json, nullptr, false);
  if (r != nullptr) {
    RouteTable t = table_for(r->record, r->spec);
    doc["weights"] = weights_json(t);
    doc["shadow_share"] = t.shadow_share;
    json live = json::object();
    live[std::to_string(r->record.champion)] = window_json(r->runtime->window(r->record.champion).peek());
    for (int64_t v : r->record.candidates) {
      WindowSnapshot w = r->pending.count(v) ? r->pending.at(v) : WindowSnapshot{};
      w.merge(r->runtime->window(v).peek());
      live[std::to_string(v)] = window_json(w);
    }
    doc["live"] = live;
    json checks = json::object();
    for (const auto& [v, c] : r->last_check) checks[std::to_string(v)] = c;
    doc["last_checks"] = checks;
  }
  HEARTH_ASSIGN_OR_RETURN(auto decisions, store_->decisions(record.id, 50));
  json list = json::array();
  for (const auto& d : decisions) list.push_back(decision_json(d));
  doc["decisions"] = list;
  return doc.dump();
}

Result<std::string> ReleaseManager::history_json(const std::string& model, size_t limit) const {
  HEARTH_ASSIGN_OR_RETURN(auto releases, store_->releases(model, limit));
  json out = json::array();
  for (const auto& rec : releases) {
    json doc = release_json(rec);
    HEARTH_ASSIGN_OR_RETURN(auto decisions, store_->decisions(rec.id, kHistoryDecisions, /*deciding_only=*/true));
    json list = json::array();
    for (const auto& d : decisions) list.push_back(decision_json(d));
    doc["decisions"] = list;
    out.push_back(doc);
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(model);
  json m = {{"model", model}, {"releases", out}};
  if (it != models_.end()) {
    m["production"] = it->second.production;
    m["previous"] = it->second.previous;
    m["excluded"] = std::vector<int64_t>(it->second.excluded.begin(), it->second.excluded.end());
  }
  return m.dump();
}

Result<std::string> ReleaseManager::which_json(const std::string& model, const std::string& key, int64_t time_us) const {
  HEARTH_ASSIGN_OR_RETURN(auto route, store_->route_at(model, time_us));
  json doc = {{"model", model}, {"time_us", time_us}};
  if (!route) {
    doc["version"] = nullptr;
    doc["routing"] = "default: no release had set the routing then (the highest ready version served)";
    return doc.dump();
  }
  HEARTH_ASSIGN_OR_RETURN(RouteTable t, parse_route_table(route->table));
  doc["release"] = route->release_id;
  doc["since_us"] = route->time_us;
  doc["routing"] = json::parse(route->table);
  if (!key.empty()) {
    doc["routing_key"] = key;
    doc["version"] = t.version_for_bucket(bucket_of(t.salt, key));
  } else {
    doc["weights"] = weights_json(t);
  }
  return doc.dump();
}

Status ReleaseManager::feedback(const std::string& model, const std::string& request_id,
                                const std::vector<int64_t>& labels) {
  std::shared_ptr<ReleaseRuntime> runtime;
  {
    std::lock_guard<std::mutex> lock(runtimes_mu_);  // not mu_: feedback never waits for a transition
    auto it = runtimes_.find(model);
    if (it != runtimes_.end()) runtime = it->second;
  }
  if (!runtime)
    return Status(StatusCode::kFailedPrecondition,
                  str_cat("model '", model, "' has no release running: feedback is scored only during a release"));
  return runtime->feedback(request_id, labels);
}

}  // namespace hearth::rollout
