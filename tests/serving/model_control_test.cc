// Model control: explicit load / unload, poll mode, reloads under load, and
// keeping the old version serving when a new config or version is broken.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "serving/server.h"
#include "serving_test_util.h"
#include "telemetry/metrics.h"

namespace hearth::serving::test {
namespace {

using hearth::testing::write_two_io_model;

TEST_F(ServerTest, load_and_unload_need_explicit_mode) {
  add_relu("relu", 1);
  auto server = start();
  ASSERT_TRUE(server);
  EXPECT_EQ(server->load_model("relu").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(server->unload_model("relu").code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(server->infer(relu_request({1, 2, 3, 4})).ok());
}

TEST_F(ServerTest, explicit_mode_loads_and_unloads) {
  add_relu("relu", 1);
  add_relu("other", 1);
  auto server = start(explicit_mode({"other"}));
  ASSERT_TRUE(server);
  EXPECT_TRUE(server->ready());
  EXPECT_EQ(server->model_ready("relu", "").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(server->infer(relu_request({1, 2, 3, 4})).status().code(), StatusCode::kNotFound);
  std::vector<std::string> rows;
  for (const auto& e : server->repository_index(false)) rows.push_back(e.name + ":" + e.version + ":" + e.state);
  EXPECT_EQ(rows, (std::vector<std::string>{"other:1:READY", "relu::UNAVAILABLE"}));

  ASSERT_TRUE(server->load_model("relu").ok());
  auto r = server->infer(relu_request({-1, 2, -3, 4}));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(values(r->outputs[0].data), (std::vector<float>{0, 2, 0, 4}));
  ASSERT_TRUE(server->unload_model("relu").ok());
  auto after = server->infer(relu_request({1, 2, 3, 4}));
  ASSERT_FALSE(after.ok());
  EXPECT_TRUE(after.status().code() == StatusCode::kUnavailable || after.status().code() == StatusCode::kNotFound)
      << after.status().to_string();
  auto ready = server->model_ready("relu", "");
  EXPECT_TRUE(!ready.ok() || !*ready);
  EXPECT_TRUE(server->ready()) << "an unloaded model is not wanted";
  ASSERT_TRUE(server->load_model("relu").ok());
  EXPECT_TRUE(server->infer(relu_request({1, 2, 3, 4})).ok());
  EXPECT_EQ(server->load_model("../etc").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(server->unload_model("nope").code(), StatusCode::kNotFound);
}

TEST_F(ServerTest, explicit_star_loads_every_model) {
  add_relu("a", 1);
  add_relu("b", 1);
  auto server = start(explicit_mode({"*"}));
  ASSERT_TRUE(server);
  EXPECT_TRUE(server->infer(relu_request({1, 2, 3, 4}, "", "a")).ok());
  EXPECT_TRUE(server->infer(relu_request({1, 2, 3, 4}, "", "b")).ok());
}

// Loading a model that has no folder must not leave a phantom entry behind:
// the model should stay unknown (NotFound), as before the failed load.
TEST_F(ServerTest, failed_load_of_a_missing_model_leaves_it_unknown) {
  add_relu("relu", 1);
  auto server = start(explicit_mode({"relu"}));
  ASSERT_TRUE(server);
  EXPECT_EQ(server->load_model("nope").code(), StatusCode::kNotFound);
  EXPECT_EQ(server->model_ready("nope", "").status().code(), StatusCode::kNotFound);
  for (const auto& e : server->repository_index(false)) EXPECT_NE(e.name, "nope");
}

// An unloaded model whose folder is then deleted leaves the index (it listed the
// model as UNAVAILABLE until a restart); a model still serving stays listed.
TEST_F(ServerTest, index_forgets_a_deleted_folder_once_nothing_serves_from_it) {
  add_relu("relu", 1);
  add_relu("other", 1);
  auto server = start(explicit_mode({"relu", "other"}));
  ASSERT_TRUE(server);
  ASSERT_TRUE(server->unload_model("relu").ok());
  std::filesystem::remove_all(model_dir("relu"));
  std::filesystem::remove_all(model_dir("other"));
  std::vector<std::string> rows;
  for (const auto& e : server->repository_index(false)) rows.push_back(e.name + ":" + e.version + ":" + e.state);
  EXPECT_EQ(rows, (std::vector<std::string>{"other:1:READY"})) << "relu's folder is gone and it serves nothing";
  EXPECT_TRUE(server->infer(relu_request({1, 2, 3, 4}, "", "other")).ok());
}

// Triton's auto-complete of batching: a model without config.pbtxt whose input
// and output have a variable leading dim gets max_batch_size 4 (the default) and
// a dynamic batcher; a fixed leading dim, a config file, or the option at 0
// leave max_batch_size 0.
TEST_F(ServerTest, derived_configs_get_triton_default_batching) {
  add_relu("dynamic", 1);
  testing::write_fixed_relu_model(model_dir("fixed") / "1", 2);
  add_relu("configured", 1);
  config("configured", "max_batch_size: 0\n");
  for (int64_t fallback : {int64_t{4}, int64_t{0}}) {
    ServerOptions o = explicit_mode({"*"});
    o.default_max_batch_size = fallback;
    auto server = start(o);
    ASSERT_TRUE(server);
    auto dynamic = server->model_config("dynamic", "");
    ASSERT_TRUE(dynamic.ok()) << dynamic.status().message();
    EXPECT_EQ(dynamic->max_batch_size(), fallback);
    EXPECT_EQ(dynamic->has_dynamic_batching(), fallback > 0);
    if (fallback > 0) {
      ASSERT_EQ(dynamic->input_size(), 1);
      EXPECT_EQ(dynamic->input(0).dims_size(), 1) << "the batch dim leaves the config's dims";
    }
    EXPECT_EQ(server->model_config("fixed", "")->max_batch_size(), 0);
    EXPECT_EQ(server->model_config("configured", "")->max_batch_size(), 0);
    // Batched or not, the model answers the same.
    auto r = server->infer(relu_request({-1, 2, -3, 4}, "", "dynamic"));
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(values(r->outputs[0].data), (std::vector<float>{0, 2, 0, 4}));
  }
}

// Sends requests from a thread until stopped; counts failures.
class Traffic {
 public:
  explicit Traffic(InferenceServer& server) : server_(server) {
    thread_ = std::thread([this] {
      float i = 0;
      while (!stop_) {
        i += 1;
        auto r = server_.infer(relu_request({i, -i, i, -i}));
        sent_++;
        if (!r.ok() || values(r->outputs[0].data) != std::vector<float>{i, 0, i, 0}) {
          failed_++;
          std::lock_guard<std::mutex> lock(mu_);
          if (first_error_.empty()) first_error_ = r.ok() ? "wrong values" : r.status().to_string();
        } else {
          std::lock_guard<std::mutex> lock(mu_);
          versions_.insert(r->model_version);
        }
      }
    });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  ~Traffic() { stop(); }
  int sent() const { return sent_; }
  int failed() const { return failed_; }
  std::string first_error() {
    std::lock_guard<std::mutex> lock(mu_);
    return first_error_;
  }
  std::set<std::string> versions() {
    std::lock_guard<std::mutex> lock(mu_);
    return versions_;
  }

 private:
  InferenceServer& server_;
  std::atomic<bool> stop_{false};
  std::atomic<int> sent_{0}, failed_{0};
  std::mutex mu_;
  std::string first_error_;
  std::set<std::string> versions_;
  std::thread thread_;
};

TEST_F(ServerTest, reload_under_load_fails_no_request) {
  add_relu("relu", 1);
  // A short batch delay keeps requests queued on the old version while it retires.
  config("relu", "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 2000 }");
  auto server = start(explicit_mode({"relu"}));
  ASSERT_TRUE(server);
  std::vector<std::unique_ptr<Traffic>> traffic;
  for (int i = 0; i < 3; ++i) traffic.push_back(std::make_unique<Traffic>(*server));
  auto saw = [&](const std::string& v) {
    for (auto& t : traffic)
      if (t->versions().count(v)) return true;
    return false;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  for (int v : {2, 3}) {
    add_relu("relu", v);
    ASSERT_TRUE(server->load_model("relu").ok());
    EXPECT_TRUE(eventually([&] { return saw(std::to_string(v)); }, 2000)) << v;
    ASSERT_TRUE(server->load_model("relu").ok());  // a reload with nothing changed
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  int sent = 0;
  for (auto& t : traffic) {
    t->stop();
    EXPECT_EQ(t->failed(), 0) << t->first_error();
    sent += t->sent();
  }
  EXPECT_GT(sent, 30);
  EXPECT_TRUE(saw("1"));
  auto md = server->model_metadata("relu", "");
  ASSERT_TRUE(md.ok());
  EXPECT_EQ(md->versions, (std::vector<std::string>{"3"}));
}

TEST_F(ServerTest, reload_with_a_changed_config_under_load_fails_no_request) {
  add_relu("relu", 1);
  config("relu", "max_batch_size: 4");
  auto server = start(explicit_mode({"relu"}));
  ASSERT_TRUE(server);
  Traffic traffic(*server);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  config("relu", "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 1000 }");
  ASSERT_TRUE(server->load_model("relu").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  traffic.stop();
  EXPECT_EQ(traffic.failed(), 0) << traffic.first_error();
  auto c = server->model_config("relu", "");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->max_batch_size(), 8);
}

// The contract (model_manager.h): "a model whose new config or version fails
// to load keeps serving what it served".
TEST_F(ServerTest, broken_new_version_keeps_the_old_one_serving) {
  add_relu("relu", 1);
  auto server = start(explicit_mode({"relu"}));
  ASSERT_TRUE(server);
  write_file(model_dir("relu") / "2" / "model.onnx", "garbage");
  EXPECT_FALSE(server->load_model("relu").ok());
  auto r = server->infer(relu_request({1, 2, 3, 4}));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->model_version, "1");
}

TEST_F(ServerTest, broken_new_config_keeps_the_old_version_serving) {
  add_relu("relu", 1);
  auto server = start(explicit_mode({"relu"}));
  ASSERT_TRUE(server);
  config("relu", "max_batch_size: 4\nnot_a_field: 2\n");
  Status s = server->load_model("relu");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("relu/config.pbtxt:2:"), std::string::npos) << s.message();
  EXPECT_TRUE(server->infer(relu_request({1, 2, 3, 4})).ok());
  bool reason_shown = false;
  for (const auto& e : server->repository_index(false))
    reason_shown = reason_shown || e.reason.find("not_a_field") != std::string::npos;
  EXPECT_TRUE(reason_shown);
}

// A config that parses but does not fit the model (dims [5] for x[N,4]) fails
// the reload; the old version keeps serving, and the failure must stay
// visible: a second load_model must not report success while the new config
// was never applied, and the index must show the reason.
TEST_F(ServerTest, config_that_does_not_fit_the_model_stays_an_error) {
  add_relu("relu", 1);
  config("relu", "max_batch_size: 4");
  auto server = start(explicit_mode({"relu"}));
  ASSERT_TRUE(server);
  config("relu", "max_batch_size: 4 input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 5 ] } ]");
  Status first = server->load_model("relu");
  EXPECT_FALSE(first.ok());
  EXPECT_NE(first.message().find("input 'x'"), std::string::npos) << first.message();
  EXPECT_TRUE(server->infer(relu_request({1, 2, 3, 4})).ok()) << "the old version should keep serving";
  auto reason_shown = [&] {
    for (const auto& e : server->repository_index(false))
      if (e.reason.find("input 'x'") != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(reason_shown()) << "the failed reload's reason is not in the repository index";
  Status second = server->load_model("relu");
  EXPECT_FALSE(second.ok()) << "load_model reports success, yet the model still runs the old config";
  EXPECT_TRUE(reason_shown());
}

TEST_F(ServerTest, poll_mode_picks_up_new_versions_and_survives_a_bad_config) {
  add_relu("relu", 1);
  ServerOptions o;
  o.control_mode = ModelControlMode::kPoll;
  o.repository_poll_seconds = 1;
  auto server = start(o);
  ASSERT_TRUE(server);
  EXPECT_EQ(server->load_model("relu").code(), StatusCode::kFailedPrecondition);
  add_relu("relu", 2);
  EXPECT_TRUE(eventually(
      [&] {
        auto r = server->infer(relu_request({1, 2, 3, 4}));
        return r.ok() && r->model_version == "2";
      },
      4000));
  config("relu", "max_batch_size: 4\nwhat_is_this: 1\n");
  EXPECT_TRUE(eventually(
      [&] {
        for (const auto& e : server->repository_index(false))
          if (e.reason.find("what_is_this") != std::string::npos) return true;
        return false;
      },
      4000));
  auto r = server->infer(relu_request({1, 2, 3, 4}));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->model_version, "2");
  // A new model folder appears too.
  add_relu("fresh", 1);
  EXPECT_TRUE(eventually([&] { return server->infer(relu_request({1, 2, 3, 4}, "", "fresh")).ok(); }, 4000));
}

TEST_F(ServerTest, unload_drains_queued_requests) {
  add_relu("relu", 1);
  config("relu", "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 300000 }");
  auto server = start(explicit_mode({"relu"}));
  ASSERT_TRUE(server);
  std::vector<std::future<Result<InferResponse>>> futures;
  for (int i = 0; i < 3; ++i) {
    auto p = std::make_shared<std::promise<Result<InferResponse>>>();
    futures.push_back(p->get_future());
    server->infer_async(relu_request({float(-i), float(i), 1, -1}),
                        [p](Result<InferResponse> r) { p->set_value(std::move(r)); });
  }
  ASSERT_TRUE(server->unload_model("relu").ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(futures[i].wait_for(std::chrono::seconds(3)), std::future_status::ready);
    auto r = futures[i].get();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(values(r->outputs[0].data), (std::vector<float>{0, float(i), 1, 0}));
  }
  EXPECT_FALSE(server->infer(relu_request({1, 2, 3, 4})).ok());
}

// A reload of the same version (new config) keeps one Prometheus series per
// (model, version): counters continue, no duplicate lines.
TEST_F(ServerTest, metrics_survive_a_reload_of_the_same_version) {
  add_relu("relu", 1);
  auto server = start(explicit_mode({"relu"}));
  ASSERT_TRUE(server);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(server->infer(relu_request({1, 2, 3, 4})).ok());
  config("relu", "max_batch_size: 4");
  ASSERT_TRUE(server->load_model("relu").ok());
  auto c = server->model_config("relu", "1");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->max_batch_size(), 4);
  ASSERT_TRUE(server->infer(relu_request({1, 2, 3, 4})).ok());
  const std::string text = server->metrics().render();
  const std::string series = R"(hearth_inference_request_success_total{model="relu",version="1"} )";
  size_t first = text.find(series);
  ASSERT_NE(first, std::string::npos) << text;
  EXPECT_EQ(text.find(series, first + 1), std::string::npos) << "duplicate series:\n" << text;
  EXPECT_EQ(text.substr(first + series.size(), 2), "3\n") << text.substr(first, 80);
}

// An unloaded version's series leave /metrics once it has drained.
TEST_F(ServerTest, unload_removes_the_version_metrics) {
  add_relu("relu", 1);
  auto server = start(explicit_mode({"relu"}));
  ASSERT_TRUE(server);
  ASSERT_TRUE(server->infer(relu_request({1, 2, 3, 4})).ok());
  const std::string series = R"(hearth_inference_request_success_total{model="relu",version="1"} )";
  ASSERT_NE(server->metrics().render().find(series), std::string::npos);
  ASSERT_TRUE(server->unload_model("relu").ok());
  EXPECT_TRUE(eventually([&] { return server->metrics().render().find(series) == std::string::npos; }, 3000))
      << server->metrics().render();
}

TEST_F(ServerTest, poll_mode_reload_under_load_fails_no_request) {
  add_relu("relu", 1);
  ServerOptions o;
  o.control_mode = ModelControlMode::kPoll;
  o.repository_poll_seconds = 1;
  auto server = start(o);
  ASSERT_TRUE(server);
  Traffic a(*server), b(*server);
  add_relu("relu", 2);
  EXPECT_TRUE(eventually([&] { return a.versions().count("2") && b.versions().count("2"); }, 4000));
  a.stop();
  b.stop();
  EXPECT_EQ(a.failed(), 0) << a.first_error();
  EXPECT_EQ(b.failed(), 0) << b.first_error();
  EXPECT_TRUE(a.versions().count("1"));
}

TEST_F(ServerTest, poll_mode_unloads_removed_versions_and_models) {
  add_relu("relu", 1);
  add_relu("relu", 2);
  add_relu("gone", 1);
  ServerOptions o;
  o.control_mode = ModelControlMode::kPoll;
  o.repository_poll_seconds = 1;
  auto server = start(o);
  ASSERT_TRUE(server);
  auto r = server->infer(relu_request({1, 2, 3, 4}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->model_version, "2");
  ASSERT_TRUE(server->infer(relu_request({1, 2, 3, 4}, "", "gone")).ok());
  fs::remove_all(model_dir("relu") / "2");
  fs::remove_all(model_dir("gone"));
  EXPECT_TRUE(eventually(
      [&] {
        auto x = server->infer(relu_request({1, 2, 3, 4}));
        return x.ok() && x->model_version == "1";
      },
      4000));
  EXPECT_TRUE(eventually([&] { return !server->infer(relu_request({1, 2, 3, 4}, "", "gone")).ok(); }, 4000));
  EXPECT_TRUE(server->ready());
}

}  // namespace
}  // namespace hearth::serving::test
