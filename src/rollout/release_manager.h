// ReleaseManager: runs releases inside `hearth serve` (docs/RELEASES.md).
//
//   start -> gate -> [shadow] -> canary step 1 .. N -> promoted
//              |         |              |
//         gate_failed    +--- rolled_back (failed checks, deadline) / aborted (by hand)
//
// A worker thread looks at every running release a few times a second: it
// finishes a gate that ran in the background, runs the judge every
// judge.interval on what the router's watches measured, counts failed checks,
// moves to the next step when a check passed and the step's pause is over, and
// promotes or rolls back. Every transition is written to the ReleaseStore (in one
// transaction with its decision, the routing change and the model's production
// version) before the new routing is installed, so a server killed at any point
// comes back, from the store alone, to the routing that was last chosen:
//
//   gate     the gate runs again (the candidate took no traffic)
//   shadow   the shadow step starts again (traffic stays on the champion)
//   canary   the same step, the same weights; its pause and windows start afresh
//   ended    the routing the end chose (production = the promoted version, or the
//            champion after a rollback)
//
// A model that has had a release keeps a production version (and the previous
// one, loaded for a fast return); requests that do not name a version go to it,
// whatever version the repository adds, until the next release promotes another.
// Thread safety: every public method may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <future>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "repository/model_repository.h"
#include "rollout/gate.h"
#include "rollout/judge.h"
#include "rollout/release_router.h"
#include "rollout/release_spec.h"
#include "rollout/release_store.h"
#include "rollout/webhooks.h"
#include "serving/server.h"

namespace hearth::security {
class AuditLog;
}
namespace hearth::telemetry {
class Registry;
}

namespace hearth::rollout {

struct ReleaseManagerOptions {
  std::string repository;                 // the model repository's root (golden sets)
  security::AuditLog* audit = nullptr;    // every transition is recorded when set
  int64_t tick_ms = 100;                  // how often the worker looks at releases
};

// Who acts: a user (with the address they came from), or "judge", "gate", "server".
struct Actor {
  std::string user;
  std::string client;
};

class ReleaseManager {
 public:
  static Result<std::unique_ptr<ReleaseManager>> open(std::unique_ptr<ReleaseStore> store,
                                                      ReleaseManagerOptions options);
  ~ReleaseManager();  // stop()

  // What the store says must stay loaded (production, previous, the versions of
  // running releases) or out (rolled-back versions), for ServerOptions::version_pins
  // before the server's first load.
  std::map<std::string, repository::VersionPins> version_pins() const;
  // Takes over routing on `server` (which must outlive the manager, or stop() be
  // called first): installs the persisted routing, recovers running releases and
  // starts the worker. Call before the front ends take requests.
  Status attach(serving::InferenceServer& server);
  void stop();

  // Starts a release (InvalidArgument for a version that does not exist or a model
  // with a release running; nothing changes then).
  Result<ReleaseRecord> start(const ReleaseSpec& spec, const Actor& who);
  // id 0 = the model's running release.
  Status pause(const std::string& model, int64_t id, const Actor& who);
  Status resume(const std::string& model, int64_t id, const Actor& who);
  // version 0 = the only candidate still in the release.
  Status promote(const std::string& model, int64_t id, int64_t version, const Actor& who);
  Status abort(const std::string& model, int64_t id, const Actor& who);
  // Sets the production version of a model outside any release (what unnamed
  // requests get); the previous one stays loaded.
  Status set_production(const std::string& model, int64_t version, const Actor& who);

  // JSON documents for the API and the CLI (see docs/RELEASES.md).
  Result<std::string> status_json(const std::string& model, int64_t id) const;
  Result<std::string> history_json(const std::string& model, size_t limit) const;
  // Which version served requests with routing key `key` (or, key "", the weights)
  // at `time_us`, and under which release.
  Result<std::string> which_json(const std::string& model, const std::string& key, int64_t time_us) const;
  // A label for an earlier request (by its id) of a model under release.
  Status feedback(const std::string& model, const std::string& request_id, const std::vector<int64_t>& labels);

  // Runs the worker's pass once (tests drive time with it; the worker calls it too).
  void tick();

 private:
  struct Running;
  explicit ReleaseManager(std::unique_ptr<ReleaseStore> store, ReleaseManagerOptions options);

  Running* running_for(const std::string& model, int64_t id) const;  // mu_ held
  Status set_paused(const std::string& model, int64_t id, bool paused, const Actor& who);
  void step_release(Running& r, int64_t now_us);                      // mu_ held
  void finish_gate(Running& r, int64_t now_us);
  void judge_release(Running& r, int64_t now_us);
  void record_check(Running& r, int64_t version, const Judgement& j, const WindowSnapshot& mine,
                    const WindowSnapshot& champion, int64_t now_us);
  void advance(Running& r, int64_t now_us);
  void enter(Running& r, Phase phase, int step, int64_t now_us, const std::string& kind, const std::string& verdict,
             const Actor& who, const std::string& detail);
  // Stores `next` (its step starting now) with a decision, its routing and, given,
  // the model's record, then applies it; false (nothing changed) when the store refused.
  bool transition_to(Running& r, ReleaseRecord next, int64_t now_us, const std::string& kind,
                     const std::string& verdict, const Actor& who, const std::string& detail, const ModelRecord* model);
  using GateFuture = std::future<std::vector<std::pair<int64_t, GateReport>>>;
  std::vector<std::pair<int64_t, GateReport>> run_gates(serving::InferenceServer& server, const ReleaseSpec& spec,
                                                         int64_t champion, const std::vector<int64_t>& candidates);
  void end(Running& r, Phase phase, int64_t promoted, const std::string& kind, const Actor& who, const std::string& reason,
           const std::string& detail);
  void drop_candidate(Running& r, int64_t version, const std::string& reason, int64_t now_us);
  static RouteTable table_for(const ReleaseRecord& record, const ReleaseSpec& spec);
  void install_routes();                                   // mu_ held
  void apply_pins(const std::string& model);               // mu_ held
  repository::VersionPins pins_for(const std::string& model) const;
  void report(const Running& r, const std::string& event, const Actor& who, const std::string& detail);
  void worker();

  std::unique_ptr<ReleaseStore> store_;
  ReleaseManagerOptions options_;
  serving::InferenceServer* server_ = nullptr;
  WebhookNotifier webhooks_;

  mutable std::mutex mu_;
  std::map<int64_t, std::unique_ptr<Running>> running_;  // by release id
  std::vector<GateFuture> orphan_gates_;                 // gates of ended releases, still running
  std::map<std::string, ModelRecord> models_;           // production pins, as stored
  std::map<std::pair<std::string, int64_t>, double> weight_series_;  // the weight gauges set
  std::mutex runtimes_mu_;  // guards runtimes_ (feedback reads it without mu_)
  std::map<std::string, std::shared_ptr<ReleaseRuntime>> runtimes_;  // of running releases, by model
  std::mutex production_mu_;  // serializes set_production
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace hearth::rollout
