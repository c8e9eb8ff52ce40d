// Helpers for release tests: a repository of small models (a good one, one that
// fails on some inputs, one with another signature), a server over it, and a
// release manager over a store in the same temporary folder.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "rollout/release_manager.h"
#include "security/audit_log.h"
#include "serving/serving_test_util.h"

namespace hearth::rollout::test {

using namespace hearth::serving;        // InferenceServer, ServerOptions, InferResponse
using namespace hearth::serving::test;  // TempDir, write_file, relu_request, eventually, ...

// y = table[int(x)] for x in -4..3 (table = 1, 2, 3, 4); any other x fails the run
// ("index out of range"): a version that fails on some inputs.
inline void write_lookup_model(const fs::path& dir) {
  onnx::ModelProto m = hearth::testing::relu_model();
  auto* g = m.mutable_graph();
  g->clear_node();
  hearth::testing::add_float_initializer(g, "table", {4, 1}, {1, 2, 3, 4});
  auto* shape = g->add_initializer();
  shape->set_name("shape");
  shape->set_data_type(onnx::TensorProto::INT64);
  shape->add_dims(2);
  const int64_t dims[2] = {-1, 4};
  shape->set_raw_data(dims, sizeof dims);
  auto* cast = hearth::testing::add_node(g, "Cast", {"x"}, {"i"}, "cast");
  auto* to = cast->add_attribute();
  to->set_name("to");
  to->set_type(onnx::AttributeProto::INT);
  to->set_i(onnx::TensorProto::INT64);
  hearth::testing::add_node(g, "Gather", {"table", "i"}, {"g"}, "gather");
  hearth::testing::add_node(g, "Reshape", {"g", "shape"}, {"y"}, "reshape");
  std::string bytes;
  m.SerializeToString(&bytes);
  write_file(dir / "model.onnx", bytes);
}

// Relu with its input named "z": a signature the champion's clients cannot use.
inline void write_renamed_model(const fs::path& dir) {
  onnx::ModelProto m = hearth::testing::relu_model();
  auto* g = m.mutable_graph();
  g->mutable_input(0)->set_name("z");
  g->mutable_node(0)->set_input(0, "z");
  std::string bytes;
  m.SerializeToString(&bytes);
  write_file(dir / "model.onnx", bytes);
}

// A release of `candidate` against version 1 with fast steps: 100 ms judge
// interval, 20 samples, no pauses, a short gate.
inline ReleaseSpec fast_spec(std::vector<int64_t> candidates, std::vector<double> steps = {50}) {
  ReleaseSpec s;
  s.model = "relu";
  s.candidates = std::move(candidates);
  s.champion = 1;
  s.gate.latency_runs = 3;
  s.gate.latency_ratio = 0;  // timing is not what these tests are about
  s.gate.min_free_memory_mb = 0;
  s.canary.steps = std::move(steps);
  s.canary.pause_ms = 0;
  s.judge.interval_ms = 100;
  s.judge.min_samples = 20;
  s.judge.failures_to_rollback = 1;
  s.judge.latency_p50.enabled = s.judge.latency_p99.enabled = false;
  return s;
}

class ReleaseTest : public ServerTest {
 protected:
  std::string store_path() const { return (store_dir_.path() / "releases.db").string(); }

  // A server over the repository with the store's pins, and a manager attached to it.
  void start_all() {
    auto store = ReleaseStore::open(store_path());
    ASSERT_TRUE(store.ok()) << store.status().to_string();
    ReleaseManagerOptions o;
    o.repository = dir_.path().string();
    o.audit = audit_.get();
    o.tick_ms = 3600 * 1000;  // the tests call tick() themselves
    auto m = ReleaseManager::open(std::move(store).value(), o);
    ASSERT_TRUE(m.ok()) << m.status().to_string();
    manager_ = std::move(m).value();
    ServerOptions so;
    so.version_pins = manager_->version_pins();
    server_ = start(so);
    ASSERT_TRUE(server_);
    ASSERT_TRUE(manager_->attach(*server_).ok());
  }
  void stop_all() {
    manager_.reset();
    server_.reset();
  }

  // Sends `n` requests (unnamed version), every `bad_every`-th with a value the
  // lookup model cannot take; returns how many failed, and counts versions.
  int drive(int n, int bad_every = 0, std::map<std::string, int>* versions = nullptr) {
    int failed = 0;
    std::vector<std::future<Result<InferResponse>>> answers;
    for (int i = 0; i < n; ++i) {
      const float v = bad_every > 0 && i % bad_every == 0 ? 7.0f : 1.0f;
      answers.push_back(submit(*server_, relu_request({v, 1, 2, 3})));
    }
    for (auto& f : answers) {
      auto r = f.get();
      if (!r.ok()) ++failed;
      else if (versions) ++(*versions)[r->model_version];
    }
    return failed;
  }

  nlohmann::json status(int64_t id = 0) {
    auto s = manager_->status_json("relu", id);
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    return s.ok() ? nlohmann::json::parse(*s) : nlohmann::json::object();
  }

  // Drives traffic and ticks until the release leaves `phase`/`step` or `ms` pass.
  template <typename Pred>
  bool run_until(Pred done, int ms, int bad_every = 0, int* failed = nullptr) {
    const auto end = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < end) {
      const int f = drive(40, bad_every);
      if (failed) *failed += f;
      manager_->tick();
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return done();
  }

  TempDir store_dir_;
  std::unique_ptr<security::AuditLog> audit_;  // set before start_all() to audit the transitions
  std::unique_ptr<InferenceServer> server_;
  std::unique_ptr<ReleaseManager> manager_;
};

}  // namespace hearth::rollout::test
