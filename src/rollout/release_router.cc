// Weighted, sticky routing and the per-request watch of a release (see release_router.h).
#include "rollout/release_router.h"

#include <algorithm>
#include <chrono>
#include <random>

#include <nlohmann/json.hpp>

#include "serving/model_version.h"

namespace hearth::rollout {

using serving::Binding;
using serving::InferCallback;
using serving::InferRequest;
using serving::InferResponse;
using Clock = std::chrono::steady_clock;

namespace {

uint64_t thread_random() {
  thread_local uint64_t state = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ 0x9e3779b97f4a7c15ull;
  }();
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return state * 0x2545f4914f6cdd1dull;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Sees one request of a model under release through (see the header).
class ReleaseWatch final : public serving::RequestWatch, public std::enable_shared_from_this<ReleaseWatch> {
 public:
  // `shadows`: the versions this (champion) request is copied to once answered.
  ReleaseWatch(const serving::InferenceServer& server, std::shared_ptr<ReleaseRuntime> runtime, std::string model,
               int64_t version, bool candidate, std::vector<int64_t> shadows)
      : server_(server), rt_(std::move(runtime)), model_(std::move(model)), version_(version),
        candidate_(candidate), shadows_(std::move(shadows)) {}

  InferCallback watch(const InferRequest& request, InferCallback done) override {
    const bool keep = (candidate_ && rt_->spec().canary.retry_on_champion) || !shadows_.empty();
    auto copy = keep ? std::make_shared<InferRequest>(request) : nullptr;  // tensors are shared, not copied
    return [self = shared_from_this(), copy, start = Clock::now(), done = std::move(done)](
               Result<InferResponse> answer) mutable { self->answered(std::move(answer), copy, start, std::move(done)); };
  }

 private:
  void answered(Result<InferResponse> answer, const std::shared_ptr<InferRequest>& copy, Clock::time_point start,
                InferCallback done) {
    if (candidate_) rt_->in_flight(version_)--;
    if (!answer.ok() && candidate_ && copy && answer.status().code() != StatusCode::kCancelled)
      return retry_on_champion(answer.status(), copy, std::move(done));
    rt_->window(version_).record_answer(answer.status(), ms_since(start));
    if (!answer.ok()) return done(std::move(answer));
    remember_top1(*answer, version_);
    if (shadows_.empty() || !copy) return done(std::move(answer));
    auto champion_answer = std::make_shared<const InferResponse>(*answer);
    done(std::move(answer));  // the client first: the shadow never delays it
    for (int64_t v : shadows_) shadow_to(v, *copy, champion_answer);
  }

  // The candidate failed: the champion answers instead. When it succeeds the failure
  // was the candidate's; when it fails too, the request's.
  void retry_on_champion(const Status& failure, const std::shared_ptr<InferRequest>& copy, InferCallback done) {
    auto champion = server_.find_version(model_, std::to_string(rt_->champion()));
    if (!champion.ok()) {
      rt_->window(version_).record_answer(failure, 0);
      return done(failure);
    }
    auto self = shared_from_this();
    (*champion)->submit(
        *copy,
        [self, start = Clock::now(), done = std::move(done)](Result<InferResponse> again) {
          VersionWindow& champion_window = self->rt_->window(self->rt_->champion());
          if (again.ok()) {
            self->rt_->window(self->version_).record_retry();
            champion_window.record_answer(ok_status(), ms_since(start));
            self->remember_top1(*again, self->rt_->champion());
          } else {
            // Both failed: the request's fault, counted against neither version.
            const Status clients(StatusCode::kInvalidArgument, "");
            self->rt_->window(self->version_).record_answer(clients, 0);
            champion_window.record_answer(clients, 0);
          }
          done(std::move(again));
        },
        /*allow_inline=*/false);
  }

  void shadow_to(int64_t v, const InferRequest& request, const std::shared_ptr<const InferResponse>& champion_answer) {
    VersionWindow& w = rt_->window(v);
    if (rt_->shadow_in_flight()++ >= rt_->spec().shadow.max_in_flight) {
      rt_->shadow_in_flight()--;
      return w.record_shadow_dropped();
    }
    auto target = server_.find_version(model_, std::to_string(v));
    if (!target.ok()) {
      rt_->shadow_in_flight()--;
      return w.record_shadow_dropped();
    }
    InferRequest copy = request;
    copy.cancelled = nullptr;  // the client is gone by now; the shadow still runs
    auto self = shared_from_this();
    (*target)->submit(std::move(copy), [self, v, champion_answer, start = Clock::now()](Result<InferResponse> shadow) {
      self->rt_->shadow_in_flight()--;
      VersionWindow& win = self->rt_->window(v);
      if (!shadow.ok()) {
        // The champion answered this request: a shadow failure is the candidate's.
        win.record_answer(shadow.status().code() == StatusCode::kCancelled ? shadow.status()
                                                                            : Status(StatusCode::kInternal, ""),
                          0);
        return;
      }
      win.record_answer(ok_status(), ms_since(start));
      win.record_shadow(compare_answers(*champion_answer, *shadow, self->rt_->spec().gate.output));
      self->remember_top1(*shadow, v);
    }, /*allow_inline=*/false);
  }

  void remember_top1(const InferResponse& answer, int64_t version) {
    if (answer.id.empty()) return;
    auto top = top1(answer, rt_->spec().gate.output);
    if (top.ok()) rt_->ledger().record(answer.id, version, std::move(top).value());
  }

  const serving::InferenceServer& server_;
  std::shared_ptr<ReleaseRuntime> rt_;
  std::string model_;
  int64_t version_;
  bool candidate_;
  std::vector<int64_t> shadows_;
};

}  // namespace

int64_t RouteTable::version_for_bucket(int64_t bucket) const {
  for (const RouteShare& c : candidates) {
    const double end = static_cast<double>(c.offset) + c.percent * static_cast<double>(kBuckets) / 100.0;
    if (bucket >= c.offset && static_cast<double>(bucket) < end) return c.version;
  }
  return champion;
}

std::map<int64_t, double> RouteTable::weights() const {
  std::map<int64_t, double> out;
  double rest = 100;
  for (const RouteShare& c : candidates) {
    out[c.version] = c.percent;
    rest -= c.percent;
  }
  out[champion] = rest;
  return out;
}

std::string RouteTable::to_json() const {
  nlohmann::json c = nlohmann::json::array();
  for (const RouteShare& s : candidates) c.push_back({{"version", s.version}, {"percent", s.percent}, {"offset", s.offset}});
  return nlohmann::json{{"champion", champion},   {"candidates", c},  {"shadow_versions", shadow_versions},
                        {"shadow_share", shadow_share}, {"salt", salt}}
      .dump();
}

Result<RouteTable> parse_route_table(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return invalid_argument("a routing table is not a JSON object");
  RouteTable t;
  try {
    t.champion = j.value("champion", int64_t{0});
    for (const auto& c : j.value("candidates", nlohmann::json::array()))
      t.candidates.push_back({c.at("version").get<int64_t>(), c.at("percent").get<double>(), c.value("offset", int64_t{0})});
    t.shadow_versions = j.value("shadow_versions", std::vector<int64_t>{});
    t.shadow_share = j.value("shadow_share", 0.0);
    t.salt = j.value("salt", std::string());
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument("a routing table is malformed: ", e.what());
  }
  return t;
}

int64_t bucket_of(const std::string& salt, const std::string& key) {
  uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 0x100000001b3ull;
  };
  for (char c : salt) mix(static_cast<unsigned char>(c));
  mix(0);
  for (char c : key) mix(static_cast<unsigned char>(c));
  return static_cast<int64_t>(h % static_cast<uint64_t>(kBuckets));
}

ReleaseRuntime::ReleaseRuntime(int64_t release_id, ReleaseSpec spec, int64_t champion, std::vector<int64_t> candidates)
    : release_id_(release_id), spec_(std::move(spec)), champion_(champion), candidates_(std::move(candidates)) {
  windows_[champion_] = std::make_unique<VersionWindow>();
  for (int64_t v : spec_.candidates) {
    windows_[v] = std::make_unique<VersionWindow>();
    in_flight_[v] = std::make_unique<std::atomic<int>>(0);
  }
}

bool ReleaseRuntime::is_candidate(int64_t version) const {
  return std::find(candidates_.begin(), candidates_.end(), version) != candidates_.end();
}

VersionWindow& ReleaseRuntime::window(int64_t version) {
  auto it = windows_.find(version);
  return it != windows_.end() ? *it->second : *windows_.at(champion_);
}

std::atomic<int>& ReleaseRuntime::in_flight(int64_t version) {
  auto it = in_flight_.find(version);
  return it != in_flight_.end() ? *it->second : shadow_in_flight_;
}

Status ReleaseRuntime::feedback(const std::string& id, const std::vector<int64_t>& labels) {
  HEARTH_ASSIGN_OR_RETURN(auto answers, ledger_.take(id));
  const std::vector<int64_t>* champion = nullptr;
  if (auto it = answers.find(champion_); it != answers.end()) champion = &it->second;
  for (const auto& [version, rows] : answers) {
    if (rows.size() != labels.size())
      return invalid_argument("request '", id, "' had ", rows.size(), " answer rows but the feedback has ",
                              labels.size(), " labels");
  }
  for (const auto& [version, rows] : answers) {
    VersionWindow& w = window(version);
    for (size_t i = 0; i < rows.size(); ++i) {
      const bool right = rows[i] == labels[i];
      w.record_label(right);
      if (version != champion_ && champion != nullptr) w.record_pair((*champion)[i] == labels[i], right);
    }
  }
  return ok_status();
}

ReleaseRouter::ReleaseRouter(const serving::InferenceServer& server, std::map<std::string, ModelRoute> routes)
    : server_(server), routes_(std::move(routes)) {}

Result<Binding> ReleaseRouter::route(const InferRequest& request) const {
  auto it = routes_.find(request.model_name);
  if (it == routes_.end() || !request.model_version.empty()) {
    HEARTH_ASSIGN_OR_RETURN(auto v, server_.find_version(request.model_name, request.model_version));
    return Binding{std::move(v), nullptr};
  }
  const ModelRoute& route = it->second;
  const RouteTable& table = route.table;
  const int64_t bucket = request.routing_key.empty() ? static_cast<int64_t>(thread_random() % kBuckets)
                                                     : bucket_of(table.salt, request.routing_key);
  int64_t version = table.version_for_bucket(bucket);
  const std::shared_ptr<ReleaseRuntime>& rt = route.runtime;
  bool candidate = rt && version != table.champion && rt->is_candidate(version);
  Result<std::shared_ptr<serving::ModelVersion>> found = Status(StatusCode::kUnavailable, "");
  if (candidate) {
    // A candidate that is full, or not ready, passes its request to the champion.
    if (rt->in_flight(version)++ < rt->spec().canary.max_in_flight) found = server_.find_version(request.model_name, std::to_string(version));
    if (!found.ok()) {
      rt->in_flight(version)--;
      rt->window(version).record_spill();
      version = table.champion;
      candidate = false;
    }
  }
  if (!candidate) found = server_.find_version(request.model_name, version > 0 ? std::to_string(version) : "");
  if (!found.ok()) return found.status();
  if (!rt) return Binding{std::move(found).value(), nullptr};
  const bool shadow = !candidate && table.shadow_share > 0 && !table.shadow_versions.empty() &&
                      static_cast<double>(thread_random() % 1000000) < table.shadow_share * 1e6;
  return Binding{std::move(found).value(),
                 std::make_shared<ReleaseWatch>(server_, rt, request.model_name, version, candidate,
                                                shadow ? table.shadow_versions : std::vector<int64_t>{})};
}

}  // namespace hearth::rollout
