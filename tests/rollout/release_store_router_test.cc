// The release store's persistence and the router's buckets: stable hashing,
// sticky keys that only ever move from the champion to a candidate, weights that
// hold, a named version that wins, and a watch that measures what it routes.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "rollout/release_router.h"
#include "rollout/release_store.h"
#include "rollout_test_util.h"

namespace hearth::rollout::test {
namespace {

TEST(ReleaseStore, persists_releases_decisions_routes_and_models) {
  TempDir dir;
  const std::string path = (dir.path() / "sub" / "releases.db").string();
  {
    auto store = ReleaseStore::open(path);
    ASSERT_TRUE(store.ok()) << store.status().to_string();
    ReleaseRecord r;
    r.model = "m";
    r.champion = 1;
    r.candidates = {2, 3};
    r.spec_json = "{}";
    r.started_us = 100;
    ASSERT_TRUE((*store)->create(r, {0, 0, 100, "started", "", "alice", 0, "{}"}).ok());
    EXPECT_EQ(r.id, 1);
    r.phase = Phase::kCanary;
    r.step = 2;
    r.failed_checks[3] = 1;
    const RouteRecord route{200, r.id, RouteTable{1, {{2, 10, 0}}, {}, 0, "release-1"}.to_json()};
    ModelRecord model{1, 0, {4}};
    DecisionRecord d{0, r.id, 200, "step", "pass", "judge", 2, R"({"weight": 10})"};
    ASSERT_TRUE((*store)->transition(r, &d, &route, &model).ok());
  }
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto store = ReleaseStore::open(path);
  ASSERT_TRUE(store.ok());
  auto active = (*store)->active();
  ASSERT_TRUE(active.ok());
  ASSERT_EQ(active->size(), 1u);
  const ReleaseRecord& r = active->front();
  EXPECT_EQ(r.phase, Phase::kCanary);
  EXPECT_EQ(r.step, 2);
  EXPECT_EQ(r.candidates, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(r.failed_checks.at(3), 1);
  auto decisions = (*store)->decisions(r.id);
  ASSERT_TRUE(decisions.ok());
  ASSERT_EQ(decisions->size(), 2u);
  EXPECT_EQ((*decisions)[1].kind, "step");
  EXPECT_FALSE((*store)->route_at("m", 150)->has_value());
  auto at = (*store)->route_at("m", 250);
  ASSERT_TRUE(at.ok() && at->has_value());
  EXPECT_EQ(parse_route_table((*at)->table)->candidates.front().version, 2);
  EXPECT_EQ((*store)->model("m")->excluded, std::set<int64_t>{4});
}

TEST(ReleaseStore, refuses_files_it_should_not_use) {
  TempDir dir;
  const std::string other = (dir.path() / "other.db").string();
  std::ofstream(other) << "not a database at all, but long enough to look like a header of something";
  chmod(other.c_str(), 0600);
  EXPECT_FALSE(ReleaseStore::open(other).ok());
  const std::string open_mode = (dir.path() / "wide.db").string();
  std::ofstream(open_mode).close();
  chmod(open_mode.c_str(), 0644);
  auto wide = ReleaseStore::open(open_mode);
  EXPECT_EQ(wide.status().code(), StatusCode::kPermissionDenied);
}

TEST(ReleaseRouter, buckets_are_stable_and_sticky) {
  // Fixed values: the routing history relies on the hash never changing.
  EXPECT_EQ(bucket_of("release-1", "tenant-a"), bucket_of("release-1", "tenant-a"));
  EXPECT_NE(bucket_of("release-1", "tenant-a"), bucket_of("release-2", "tenant-a"));
  EXPECT_EQ(bucket_of("", ""), static_cast<int64_t>(0xaf63bd4c8601b7dfull % 10000));
  // Keys on a candidate stay there as its weight grows.
  for (int k = 0; k < 2000; ++k) {
    const int64_t b = bucket_of("release-9", "key-" + std::to_string(k));
    bool on_candidate = false;
    for (double w : {1.0, 5.0, 25.0, 50.0, 100.0}) {
      RouteTable t{1, {{2, w, 0}}, {}, 0, "release-9"};
      const bool now = t.version_for_bucket(b) == 2;
      EXPECT_TRUE(now || !on_candidate) << "key " << k << " went back to the champion at " << w << "%";
      on_candidate = now;
    }
    EXPECT_TRUE(on_candidate);
  }
  // A/B/n: each candidate grows in its own stripe; a key never moves between candidates.
  for (int k = 0; k < 2000; ++k) {
    const int64_t b = bucket_of("release-9", "key-" + std::to_string(k));
    int64_t was = 1;
    for (double w : {5.0, 25.0, 50.0}) {
      RouteTable t{1, {{2, w, 0}, {3, w, 5000}}, {}, 0, "release-9"};
      const int64_t now = t.version_for_bucket(b);
      EXPECT_TRUE(now == was || was == 1) << "key " << k << " moved from " << was << " to " << now;
      was = now;
    }
    RouteTable without_2{1, {{3, 50, 5000}}, {}, 0, "release-9"};
    if (was == 3) {
      EXPECT_EQ(without_2.version_for_bucket(b), 3) << "dropping 2 moved a key of 3";
    }
  }
  // The weights hold over many keys.
  RouteTable t{1, {{2, 10, 0}, {3, 30, 5000}}, {}, 0, "s"};
  std::map<int64_t, int> n;
  for (int k = 0; k < 20000; ++k) ++n[t.version_for_bucket(bucket_of("s", std::to_string(k)))];
  EXPECT_NEAR(n[2] / 20000.0, 0.10, 0.02);
  EXPECT_NEAR(n[3] / 20000.0, 0.30, 0.02);
  EXPECT_NEAR(n[1] / 20000.0, 0.60, 0.02);
  auto back = parse_route_table(t.to_json());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->to_json(), t.to_json());
}

TEST_F(ServerTest, the_router_honours_named_versions_keys_and_measures) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  ServerOptions so;
  so.version_pins["relu"] = {{1, 2}, {}};
  auto server = start(so);
  ASSERT_TRUE(server);
  ReleaseSpec spec = fast_spec({2});
  auto rt = std::make_shared<ReleaseRuntime>(1, spec, 1, std::vector<int64_t>{2});
  std::map<std::string, ModelRoute> routes;
  routes["relu"] = ModelRoute{RouteTable{1, {{2, 50, 0}}, {}, 0, "release-1"}, rt};
  server->set_version_router(std::make_shared<ReleaseRouter>(*server, routes));
  // A key always lands on the same version.
  std::map<std::string, std::set<std::string>> by_key;
  for (int round = 0; round < 3; ++round)
    for (int k = 0; k < 20; ++k) {
      auto r = relu_request({1, 2, 3, 4});
      r.routing_key = "tenant-" + std::to_string(k);
      auto a = server->infer(r);
      ASSERT_TRUE(a.ok());
      by_key[r.routing_key].insert(a->model_version);
    }
  std::set<std::string> seen;
  for (const auto& [key, versions] : by_key) {
    EXPECT_EQ(versions.size(), 1u) << key;
    seen.insert(*versions.begin());
  }
  EXPECT_EQ(seen, (std::set<std::string>{"1", "2"}));
  // A named version wins over the weights and is not measured.
  const int64_t before = rt->window(2).peek().requests + rt->window(1).peek().requests;
  auto named = server->infer(relu_request({1, 2, 3, 4}, "1"));
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->model_version, "1");
  EXPECT_EQ(rt->window(2).peek().requests + rt->window(1).peek().requests, before);
  EXPECT_EQ(before, 60);
  EXPECT_FALSE(rt->window(1).peek().latency_ms.empty());
}

TEST_F(ServerTest, shadow_copies_are_compared_and_remembered_for_feedback) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  ServerOptions so;
  so.version_pins["relu"] = {{1, 2}, {}};
  auto server = start(so);
  ASSERT_TRUE(server);
  ReleaseSpec spec = fast_spec({2});
  spec.shadow.share = 1;
  auto rt = std::make_shared<ReleaseRuntime>(1, spec, 1, std::vector<int64_t>{2});
  std::map<std::string, ModelRoute> routes;
  routes["relu"] = ModelRoute{RouteTable{1, {}, {2}, 1.0, "release-1"}, rt};
  server->set_version_router(std::make_shared<ReleaseRouter>(*server, routes));
  for (int i = 0; i < 10; ++i) {
    auto r = relu_request({1, 5, 3, 4});
    r.id = "req-" + std::to_string(i);
    auto a = server->infer(r);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->model_version, "1") << "a shadow never answers the client";
  }
  ASSERT_TRUE(eventually([&] { return rt->window(2).peek().shadow_compared == 10; }, 3000));
  EXPECT_EQ(rt->window(2).peek().shadow_agreed, 10);
  EXPECT_EQ(rt->window(2).peek().shadow_max_abs_diff, 0);
  // Feedback scores both answers (argmax of relu(1,5,3,4) is 1).
  ASSERT_TRUE(rt->feedback("req-3", {1}).ok());
  ASSERT_TRUE(rt->feedback("req-4", {0}).ok());
  EXPECT_EQ(rt->window(1).peek().labelled, 2);
  EXPECT_EQ(rt->window(1).peek().correct, 1);
  EXPECT_EQ(rt->window(2).peek().pairs, 2);
  EXPECT_EQ(rt->feedback("req-3", {1}).code(), StatusCode::kNotFound) << "an id is scored once";
  EXPECT_EQ(rt->feedback("req-5", {1, 2}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(rt->feedback("unknown", {1}).code(), StatusCode::kNotFound);
  // Two requests with one id: nobody can tell which answer a label is for.
  for (int i = 0; i < 2; ++i) {
    auto r = relu_request({1, 5, 3, 4});
    r.id = "reused";
    ASSERT_TRUE(server->infer(r).ok());
  }
  EXPECT_EQ(rt->feedback("reused", {1}).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hearth::rollout::test
