// ReleaseRouter: binds each request of a model under release to a version, at the
// one seam the serving core offers (serving/version_router.h).
//
// A model's RouteTable gives each candidate a share of the traffic (percent) and
// the champion the rest. A request with a routing key (a tenant, a user: the
// request parameter routing_key or the Hearth-Routing-Key header) lands in a
// fixed bucket of 10,000 by a stable hash of the key and the release's salt; each
// candidate owns a stripe of buckets that starts at a fixed offset (its place in
// the release) and grows with its weight: a key stays on its version while the
// weights stand, and as a weight grows (or another candidate leaves) only champion
// keys move to a candidate, never back or across. Requests without a key are spread at random. A request that names a
// version gets that version, as in Triton.
//
// While a release runs, a RequestWatch sees every request through: it measures
// answers per version (ReleaseRuntime's windows), answers a candidate's failure
// from the champion (retry_on_champion), spills a candidate's overflow to the
// champion (max_in_flight), sends shadow copies to the candidates after the
// champion has answered (never delaying the client), and records top-1 answers by
// request id for feedback.
//
// The router is immutable; a change of weights builds a new one and swaps it in
// (InferenceServer::set_version_router): requests already bound keep their version.
// Thread safety: route() from any thread; ReleaseRuntime methods too.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "rollout/observations.h"
#include "rollout/release_spec.h"
#include "serving/server.h"
#include "serving/version_router.h"

namespace hearth::rollout {

inline constexpr int64_t kBuckets = 10000;

// A candidate's share: buckets [offset, offset + percent% of kBuckets).
struct RouteShare {
  int64_t version = 0;
  double percent = 0;
  int64_t offset = 0;
};

struct RouteTable {
  int64_t champion = 0;              // 0: the highest ready version
  std::vector<RouteShare> candidates;
  std::vector<int64_t> shadow_versions;                // get copies of the champion's requests
  double shadow_share = 0;
  std::string salt;                                    // hashing salt (the release id)

  // The version bucket `bucket` (0..kBuckets-1) goes to.
  int64_t version_for_bucket(int64_t bucket) const;
  // Percent of unnamed requests per version: the candidates' weights, the champion the rest.
  std::map<int64_t, double> weights() const;
  // JSON for the routing history; parse_route_table reads it back.
  std::string to_json() const;
};
Result<RouteTable> parse_route_table(const std::string& json);

// The bucket of a routing key under `salt`: FNV-1a 64, stable across builds and
// restarts (the routing history relies on it).
int64_t bucket_of(const std::string& salt, const std::string& key);

// What one running release measures and holds while requests flow.
class ReleaseRuntime {
 public:
  ReleaseRuntime(int64_t release_id, ReleaseSpec spec, int64_t champion, std::vector<int64_t> candidates);

  int64_t release_id() const { return release_id_; }
  const ReleaseSpec& spec() const { return spec_; }
  int64_t champion() const { return champion_; }
  bool is_candidate(int64_t version) const;

  // Windows exist for the champion and each candidate from the start.
  VersionWindow& window(int64_t version);
  FeedbackLedger& ledger() { return ledger_; }

  // A candidate's live requests in flight (for max_in_flight).
  std::atomic<int>& in_flight(int64_t version);
  std::atomic<int>& shadow_in_flight() { return shadow_in_flight_; }

  // Scores a label against what each version answered to request `id`.
  Status feedback(const std::string& id, const std::vector<int64_t>& labels);

 private:
  int64_t release_id_;
  ReleaseSpec spec_;
  int64_t champion_;
  std::vector<int64_t> candidates_;
  std::map<int64_t, std::unique_ptr<VersionWindow>> windows_;
  std::map<int64_t, std::unique_ptr<std::atomic<int>>> in_flight_;
  std::atomic<int> shadow_in_flight_{0};
  FeedbackLedger ledger_;
};

struct ModelRoute {
  RouteTable table;
  std::shared_ptr<ReleaseRuntime> runtime;  // null: no release running (a production pin only)
};

class ReleaseRouter final : public serving::VersionRouter {
 public:
  // `server` must outlive the router; models not in `routes` route as by default.
  ReleaseRouter(const serving::InferenceServer& server, std::map<std::string, ModelRoute> routes);
  Result<serving::Binding> route(const serving::InferRequest& request) const override;

 private:
  const serving::InferenceServer& server_;
  std::map<std::string, ModelRoute> routes_;
};

}  // namespace hearth::rollout
