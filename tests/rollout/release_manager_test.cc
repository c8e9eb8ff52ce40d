// Releases run against a real InferenceServer with the worker driven by hand:
// promotion through the steps, rollback of a failing candidate with no failed
// client request, holding without traffic, recovery after a restart, A/B/n, the
// gate, pause/abort, and refusals that change nothing.
#include <gtest/gtest.h>

#include "core/npy.h"
#include "security/audit_log.h"
#include "rollout/release_manager.h"
#include "rollout_test_util.h"

namespace hearth::rollout::test {
namespace {

std::string unnamed_version(InferenceServer& server) {
  auto r = server.infer(relu_request({1, 2, 3, 4}));
  return r.ok() ? r->model_version : "error: " + r.status().message();
}

TEST_F(ReleaseTest, a_good_candidate_is_promoted_through_every_step) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  start_all();
  EXPECT_EQ(unnamed_version(*server_), "2");  // before any release: Triton's rule, the highest
  auto started = manager_->start(fast_spec({2}, {10, 50}), {"alice", "127.0.0.1"});
  ASSERT_TRUE(started.ok()) << started.status().to_string();
  EXPECT_EQ(unnamed_version(*server_), "1") << "once a release starts, unnamed requests stay on the champion";
  int failed = 0;
  ASSERT_TRUE(run_until([&] { return status()["phase"] == "promoted"; }, 10000, 0, &failed)) << status().dump(1);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(unnamed_version(*server_), "2");
  auto history = nlohmann::json::parse(*manager_->history_json("relu", 5));
  EXPECT_EQ(history["production"], 2);
  EXPECT_EQ(history["previous"], 1);
  std::vector<std::string> kinds;
  for (const auto& d : history["releases"][0]["decisions"]) kinds.push_back(d["kind"]);
  EXPECT_EQ(kinds.front(), "started");
  EXPECT_EQ(kinds.back(), "promoted");
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "step"), kinds.end());
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "gate"), kinds.end());
  // The previous version stays loaded for a fast return.
  EXPECT_TRUE(server_->find_version("relu", "1").ok());
}

TEST_F(ReleaseTest, every_transition_is_audited_with_its_actor) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  const std::string audit_path = (store_dir_.path() / "audit.db").string();
  auto audit = security::AuditLog::open(audit_path);
  ASSERT_TRUE(audit.ok()) << audit.status().to_string();
  audit_ = std::move(audit).value();
  start_all();
  ASSERT_TRUE(manager_->start(fast_spec({2}, {50}), {"alice", "10.0.0.7"}).ok());
  ASSERT_TRUE(run_until([&] { return status()["phase"] == "promoted"; }, 10000));
  auto records = audit_->list({});
  ASSERT_TRUE(records.ok());
  std::vector<std::string> seen;
  for (const auto& r : *records) seen.push_back(r.event.action + "/" + r.event.user);
  for (const char* want : {"release.started/alice", "release.gate/gate", "release.check/judge", "release.promoted/judge"})
    EXPECT_NE(std::find(seen.begin(), seen.end(), want), seen.end()) << want;
  EXPECT_EQ(records->front().event.client, "10.0.0.7");
  EXPECT_EQ(records->front().event.model, "relu");
}

TEST_F(ReleaseTest, a_candidate_that_fails_some_inputs_is_rolled_back_and_no_client_sees_it) {
  add_relu("relu", 1);
  write_lookup_model(model_dir("relu") / "2");
  start_all();
  ASSERT_TRUE(manager_->start(fast_spec({2}, {50}), {"alice", ""}).ok());
  int failed = 0;
  ASSERT_TRUE(run_until([&] { return status()["phase"] == "rolled_back"; }, 10000, 10, &failed)) << status().dump(1);
  EXPECT_EQ(failed, 0) << "the champion answered every request the candidate failed";
  EXPECT_EQ(unnamed_version(*server_), "1");
  auto s = status();
  EXPECT_NE(s["reason"].get<std::string>().find("error_rate"), std::string::npos) << s.dump(1);
  // The rolled-back version is kept out of loading.
  EXPECT_TRUE(eventually([&] { return !server_->find_version("relu", "2").ok(); }, 3000));
  auto history = nlohmann::json::parse(*manager_->history_json("relu", 1));
  EXPECT_EQ(history["excluded"], nlohmann::json::array({2}));
}

TEST_F(ReleaseTest, a_canary_without_traffic_holds_and_says_so) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  start_all();
  ASSERT_TRUE(manager_->start(fast_spec({2}, {50}), {"alice", ""}).ok());
  ASSERT_TRUE(eventually([&] {
    manager_->tick();
    return status()["phase"] == "canary";
  }, 5000));
  for (int i = 0; i < 8; ++i) {
    manager_->tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(110));
  }
  auto s = status();
  EXPECT_EQ(s["phase"], "canary");
  bool inconclusive = false;
  for (const auto& d : s["decisions"])
    if (d["kind"] == "check") {
      EXPECT_EQ(d["verdict"], "inconclusive");
      inconclusive = inconclusive ||
                     d["detail"]["summary"].get<std::string>().find("0 candidate and 0 champion answers") != std::string::npos;
    }
  EXPECT_TRUE(inconclusive) << s.dump(1);
}

TEST_F(ReleaseTest, a_restart_resumes_the_same_step_with_the_same_routing) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  start_all();
  auto spec = fast_spec({2}, {10, 50, 100});
  spec.canary.pause_ms = 0;
  ASSERT_TRUE(manager_->start(spec, {"alice", ""}).ok());
  ASSERT_TRUE(run_until([&] { return status()["phase"] == "canary" && status()["step"] == 1; }, 10000));
  stop_all();  // as after kill -9: only the store is left

  start_all();
  EXPECT_TRUE(server_->find_version("relu", "1").ok()) << "the champion is held loaded from the first load";
  EXPECT_TRUE(server_->find_version("relu", "2").ok());
  auto s = status();
  EXPECT_EQ(s["phase"], "canary");
  EXPECT_EQ(s["step"], 1);
  EXPECT_EQ(s["weights"]["2"], 50.0);
  EXPECT_EQ(s["decisions"].back()["kind"], "recovered");
  std::map<std::string, int> versions;
  for (int i = 0; i < 10; ++i) drive(40, 0, &versions);
  EXPECT_GT(versions["1"], 100);
  EXPECT_GT(versions["2"], 100);
}

TEST_F(ReleaseTest, a_b_n_drops_the_failing_candidate_and_waits_for_a_promote) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  write_lookup_model(model_dir("relu") / "3");
  start_all();
  ASSERT_TRUE(manager_->start(fast_spec({2, 3}, {10, 30}), {"alice", ""}).ok());
  int failed = 0;
  ASSERT_TRUE(run_until([&] { return status()["candidates"] == nlohmann::json::array({2}); }, 10000, 10, &failed))
      << status().dump(1);
  EXPECT_EQ(status()["dropped"], nlohmann::json::array({3}));
  ASSERT_TRUE(run_until([&] { return !status()["reason"].get<std::string>().empty(); }, 10000, 0, &failed));
  EXPECT_EQ(status()["phase"], "canary");
  EXPECT_NE(status()["reason"].get<std::string>().find("promote one of them by hand"), std::string::npos);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(manager_->promote("relu", 0, 3, {"alice", ""}).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(manager_->promote("relu", 0, 0, {"alice", ""}).ok());
  EXPECT_EQ(unnamed_version(*server_), "2");
}

TEST_F(ReleaseTest, a_candidate_with_another_signature_fails_the_gate_and_takes_no_traffic) {
  add_relu("relu", 1);
  write_renamed_model(model_dir("relu") / "2");
  start_all();
  ASSERT_TRUE(manager_->start(fast_spec({2}), {"alice", ""}).ok());
  std::map<std::string, int> versions;
  ASSERT_TRUE(eventually([&] {
    drive(10, 0, &versions);
    manager_->tick();
    return status()["phase"] == "gate_failed";
  }, 10000));
  EXPECT_NE(status()["reason"].get<std::string>().find("the candidate has no input 'x'"), std::string::npos)
      << status().dump(1);
  EXPECT_EQ(versions.count("2"), 0u);
  EXPECT_EQ(unnamed_version(*server_), "1");
}

// A golden set in the candidate's folder: inputs/x.npy and labels.npy (the argmax of relu(x)).
void write_golden(const fs::path& version_dir, int rows) {
  Tensor x(DataType::kFloat, {rows, 4});
  Tensor labels(DataType::kInt64, {rows});
  for (int r = 0; r < rows; ++r) {
    int best = 0;
    for (int c = 0; c < 4; ++c) {
      x.data<float>()[r * 4 + c] = static_cast<float>(((r * 7 + c * 3) % 5) - 1);  // -1..3: both models take it
      if (x.data<float>()[r * 4 + c] > x.data<float>()[r * 4 + best]) best = c;
    }
    labels.data<int64_t>()[r] = best;
  }
  fs::create_directories(version_dir / "golden" / "inputs");
  ASSERT_TRUE(write_npy((version_dir / "golden" / "inputs" / "x.npy").string(), x).ok());
  ASSERT_TRUE(write_npy((version_dir / "golden" / "labels.npy").string(), labels).ok());
}

TEST_F(ReleaseTest, the_gate_scores_the_golden_set_against_the_champion) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  write_lookup_model(model_dir("relu") / "3");  // answers table[int(x)]: other classes
  write_golden(model_dir("relu") / "2", 40);
  write_golden(model_dir("relu") / "3", 40);
  start_all();
  auto spec = fast_spec({3});
  spec.gate.latency_ratio = 100;  // measured, generous
  ASSERT_TRUE(manager_->start(spec, {"alice", ""}).ok());
  ASSERT_TRUE(eventually([&] {
    manager_->tick();
    return status()["phase"] == "gate_failed";
  }, 10000)) << status().dump(1);
  const std::string reason = status()["reason"];
  EXPECT_NE(reason.find("accuracy: top-1 accuracy"), std::string::npos) << reason;
  EXPECT_NE(reason.find("against the champion's 1"), std::string::npos) << reason;

  spec.candidates = {2};
  spec.gate.require_golden = true;
  ASSERT_TRUE(manager_->start(spec, {"alice", ""}).ok());
  ASSERT_TRUE(eventually([&] {
    manager_->tick();
    return status()["phase"] == "canary";
  }, 10000)) << status().dump(1);
  bool scored = false, timed = false;
  const nlohmann::json after_gate = status();
  for (const auto& d : after_gate["decisions"])
    if (d["kind"] == "gate")
      for (const auto& c : d["detail"]["2"]["checks"]) {
        scored = scored || (c["name"] == "accuracy" && c["passed"] == true && !c["skipped"].get<bool>());
        timed = timed || (c["name"] == "latency" && c["passed"] == true && !c["skipped"].get<bool>());
      }
  EXPECT_TRUE(scored && timed) << status().dump(1);
  ASSERT_TRUE(manager_->abort("relu", 0, {"alice", ""}).ok());
  // Required but missing: the gate fails and says why.
  fs::remove_all(model_dir("relu") / "2" / "golden");
  ASSERT_TRUE(manager_->start(spec, {"alice", ""}).ok());
  ASSERT_TRUE(eventually([&] {
    manager_->tick();
    return status()["phase"] == "gate_failed";
  }, 10000));
  EXPECT_NE(status()["reason"].get<std::string>().find("no golden set, and the release requires one"), std::string::npos);
}

TEST_F(ReleaseTest, pause_holds_abort_returns_to_the_champion) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  start_all();
  ASSERT_TRUE(manager_->start(fast_spec({2}, {10, 50}), {"alice", ""}).ok());
  ASSERT_TRUE(run_until([&] { return status()["phase"] == "canary"; }, 10000));
  ASSERT_TRUE(manager_->pause("relu", 0, {"alice", ""}).ok());
  const int step = status()["step"];
  run_until([] { return false; }, 600);
  EXPECT_EQ(status()["step"], step) << "paused: no step is taken";
  EXPECT_TRUE(status()["paused"].get<bool>());
  ASSERT_TRUE(manager_->abort("relu", 0, {"bob", ""}).ok());
  auto s = status();
  EXPECT_EQ(s["phase"], "aborted");
  EXPECT_EQ(s["reason"], "aborted by bob");
  EXPECT_EQ(unnamed_version(*server_), "1");
}

TEST_F(ReleaseTest, a_release_paused_at_the_gate_takes_no_traffic_until_resumed) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  start_all();
  ASSERT_TRUE(manager_->start(fast_spec({2}, {50}), {"alice", ""}).ok());
  ASSERT_TRUE(manager_->pause("relu", 0, {"alice", ""}).ok());
  for (int i = 0; i < 20; ++i) {  // the gate finishes meanwhile
    manager_->tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_EQ(status()["phase"], "gate");
  std::map<std::string, int> versions;
  drive(40, 0, &versions);
  EXPECT_EQ(versions.count("2"), 0u);
  ASSERT_TRUE(manager_->resume("relu", 0, {"alice", ""}).ok());
  ASSERT_TRUE(eventually([&] {
    manager_->tick();
    return status()["phase"] == "canary";
  }, 5000));
}

TEST_F(ReleaseTest, refusals_change_nothing) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  start_all();
  EXPECT_EQ(manager_->start(fast_spec({9}), {"alice", ""}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(unnamed_version(*server_), "2") << "a refused release leaves the routing alone";
  auto nope = fast_spec({2});
  nope.model = "nothing";
  EXPECT_FALSE(manager_->start(nope, {"alice", ""}).ok());
  ASSERT_TRUE(manager_->start(fast_spec({2}), {"alice", ""}).ok());
  auto again = manager_->start(fast_spec({2}), {"alice", ""});
  EXPECT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(again.status().message().find("has release 1 running"), std::string::npos);
  EXPECT_EQ(manager_->set_production("relu", 2, {"alice", ""}).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(manager_->pause("relu", 7, {"alice", ""}).code(), StatusCode::kNotFound);
  EXPECT_EQ(manager_->promote("relu", 0, 0, {"alice", ""}).code(), StatusCode::kFailedPrecondition)
      << "no promotion before the gate passed";
}

TEST_F(ReleaseTest, production_by_hand_and_routing_history) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  start_all();
  const int64_t before = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
  ASSERT_TRUE(manager_->set_production("relu", 1, {"alice", ""}).ok());
  EXPECT_EQ(unnamed_version(*server_), "1");
  EXPECT_EQ(manager_->set_production("relu", 5, {"alice", ""}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(unnamed_version(*server_), "1");
  auto then = nlohmann::json::parse(*manager_->which_json("relu", "tenant-a", before - 1));
  EXPECT_TRUE(then["version"].is_null());
  auto now = nlohmann::json::parse(*manager_->which_json("relu", "tenant-a", before + 60000000));
  EXPECT_EQ(now["version"], 1);
}

}  // namespace
}  // namespace hearth::rollout::test
