// InferenceServer over temporary repositories: inference, version policy,
// readiness, request validation, dynamic batching, backpressure, timeouts,
// explicit / poll model control with reloads under load, and metrics.
#include "serving/server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "serving_test_util.h"
#include "telemetry/metrics.h"

namespace hearth::serving {
namespace {

namespace fs = std::filesystem;
using hearth::testing::TempDir;
using hearth::testing::write_file;
using hearth::testing::write_relu_model;
using hearth::testing::write_two_io_model;
using Clock = std::chrono::steady_clock;

InferInput fp32(const std::string& name, Shape shape, const std::vector<float>& data) {
  InferInput in;
  in.name = name;
  in.datatype = "FP32";
  in.shape = std::move(shape);
  in.data = Tensor::from_vector<float>(data, {static_cast<int64_t>(data.size())});
  return in;
}

InferRequest relu_request(const std::vector<float>& data, const std::string& version = "",
                          const std::string& model = "relu") {
  InferRequest r;
  r.model_name = model;
  r.model_version = version;
  r.inputs.push_back(fp32("x", {static_cast<int64_t>(data.size() / 4), 4}, data));
  return r;
}

std::vector<float> values(const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); }

std::vector<float> relu(std::vector<float> v) {
  for (float& x : v) x = x < 0 ? 0 : x;
  return v;
}

int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// Waits up to `ms` for `pred`.
template <typename Pred>
bool eventually(Pred pred, int ms) {
  const auto end = Clock::now() + std::chrono::milliseconds(ms);
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

class ServerTest : public ::testing::Test {
 protected:
  fs::path model_dir(const std::string& model) { return dir_.path() / model; }
  void add_relu(const std::string& model, int version) {
    write_relu_model(model_dir(model) / std::to_string(version));
  }
  void config(const std::string& model, const std::string& text) { write_file(model_dir(model) / "config.pbtxt", text); }

  std::unique_ptr<InferenceServer> start(ServerOptions options = {}) {
    options.model_repository = dir_.path().string();
    if (options.total_threads == 0) options.total_threads = 1;
    auto s = InferenceServer::create(options);
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static ServerOptions explicit_mode(std::vector<std::string> startup = {}) {
    ServerOptions o;
    o.control_mode = ModelControlMode::kExplicit;
    o.startup_models = std::move(startup);
    return o;
  }

  TempDir dir_;
};

TEST_F(ServerTest, infers_relu_and_echoes_the_id) {
  add_relu("relu", 1);
  auto server = start();
  ASSERT_TRUE(server);
  EXPECT_TRUE(server->live());
  EXPECT_TRUE(server->ready());
  InferRequest r = relu_request({-1, 2, -3, 4, 5, -6, 7, -8});
  r.id = "req-7";
  auto out = server->infer(r);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out->model_name, "relu");
  EXPECT_EQ(out->model_version, "1");
  EXPECT_EQ(out->id, "req-7");
  ASSERT_EQ(out->outputs.size(), 1u);
  EXPECT_EQ(out->outputs[0].name, "y");
  EXPECT_EQ(out->outputs[0].datatype, "FP32");
  EXPECT_EQ(out->outputs[0].data.shape(), (Shape{2, 4}));
  EXPECT_EQ(values(out->outputs[0].data), (std::vector<float>{0, 2, 0, 4, 5, 0, 7, 0}));

  ServerMetadata meta = server->server_metadata();
  EXPECT_EQ(meta.name, "hearth");
  EXPECT_FALSE(meta.extensions.empty());
  auto md = server->model_metadata("relu", "");
  ASSERT_TRUE(md.ok());
  EXPECT_EQ(md->versions, (std::vector<std::string>{"1"}));
  EXPECT_EQ(md->platform, "onnxruntime_onnx");
  ASSERT_EQ(md->inputs.size(), 1u);
  EXPECT_EQ(md->inputs[0].datatype, "FP32");
  EXPECT_EQ(md->inputs[0].shape, (std::vector<int64_t>{-1, 4}));
}

TEST_F(ServerTest, create_fails_on_a_missing_repository) {
  ServerOptions o;
  o.model_repository = (dir_.path() / "nope").string();
  auto s = InferenceServer::create(o);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kNotFound);
}

TEST_F(ServerTest, exit_on_error_fails_create_on_a_broken_model) {
  add_relu("relu", 1);
  write_file(model_dir("broken") / "1" / "model.onnx", "garbage");
  ServerOptions o;
  o.model_repository = dir_.path().string();
  o.exit_on_error = true;
  auto s = InferenceServer::create(o);
  EXPECT_FALSE(s.ok());
}

TEST_F(ServerTest, version_policy_latest_two_serves_the_two_highest) {
  for (int v : {1, 2, 3}) add_relu("relu", v);
  config("relu", "version_policy { latest { num_versions: 2 } }");
  auto server = start();
  ASSERT_TRUE(server);
  auto md = server->model_metadata("relu", "");
  ASSERT_TRUE(md.ok()) << md.status().to_string();
  EXPECT_EQ(md->versions, (std::vector<std::string>{"2", "3"}));
  auto latest = server->infer(relu_request({1, 1, 1, 1}));
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->model_version, "3");
  auto two = server->infer(relu_request({1, 1, 1, 1}, "2"));
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->model_version, "2");
  EXPECT_EQ(server->infer(relu_request({1, 1, 1, 1}, "1")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(server->infer(relu_request({1, 1, 1, 1}, "x1")).status().code(), StatusCode::kInvalidArgument);
  auto ready3 = server->model_ready("relu", "3");
  ASSERT_TRUE(ready3.ok());
  EXPECT_TRUE(*ready3);
  std::vector<std::string> rows;
  for (const ModelIndexEntry& e : server->repository_index(false)) rows.push_back(e.name + ":" + e.version + ":" + e.state);
  EXPECT_EQ(rows, (std::vector<std::string>{"relu:2:READY", "relu:3:READY"}));
  auto stats = server->model_statistics("relu", "");
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->size(), 2u);
  EXPECT_EQ((*stats)[0].version, "2");
  EXPECT_EQ((*stats)[0].inference_count, 1u);
  EXPECT_EQ((*stats)[1].inference_count, 1u);
}

TEST_F(ServerTest, unknown_and_broken_models) {
  add_relu("relu", 1);
  write_file(model_dir("broken") / "1" / "model.onnx", "garbage");
  auto server = start();
  ASSERT_TRUE(server);
  EXPECT_EQ(server->infer(relu_request({1, 2, 3, 4}, "", "nope")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(server->model_ready("nope", "").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(server->model_metadata("nope", "").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(server->infer(relu_request({1, 2, 3, 4}, "", "../relu")).status().code(), StatusCode::kInvalidArgument);

  auto broken = server->infer(relu_request({1, 2, 3, 4}, "", "broken"));
  EXPECT_EQ(broken.status().code(), StatusCode::kUnavailable) << broken.status().to_string();
  auto ready = server->model_ready("broken", "");
  ASSERT_TRUE(ready.ok());
  EXPECT_FALSE(*ready);
  bool found = false;
  for (const ModelIndexEntry& e : server->repository_index(false)) {
    if (e.name != "broken") continue;
    found = true;
    EXPECT_EQ(e.state, "UNAVAILABLE");
    EXPECT_EQ(e.version, "1");
    EXPECT_NE(e.reason.find("version 1"), std::string::npos) << e.reason;
    EXPECT_EQ(e.reason.find(dir_.path().string()), std::string::npos) << "leaks the repository path: " << e.reason;
  }
  EXPECT_TRUE(found);
  for (const ModelIndexEntry& e : server->repository_index(true)) EXPECT_EQ(e.name, "relu");
  EXPECT_FALSE(server->ready());  // strict: a wanted model is broken
  EXPECT_TRUE(server->infer(relu_request({1, 2, 3, 4})).ok());
}

TEST_F(ServerTest, non_strict_readiness_ignores_a_broken_model) {
  add_relu("relu", 1);
  write_file(model_dir("broken") / "1" / "model.onnx", "garbage");
  ServerOptions o;
  o.strict_readiness = false;
  auto server = start(o);
  ASSERT_TRUE(server);
  EXPECT_TRUE(server->ready());
}

TEST_F(ServerTest, bad_config_makes_the_model_unavailable_with_its_reason) {
  add_relu("relu", 1);
  config("relu", "name: \"relu\"\nmax_batch_size: 4\nbogus_field: 1\n");
  auto server = start();
  ASSERT_TRUE(server);
  EXPECT_EQ(server->infer(relu_request({1, 2, 3, 4})).status().code(), StatusCode::kUnavailable);
  auto index = server->repository_index(false);
  ASSERT_EQ(index.size(), 1u);
  EXPECT_EQ(index[0].state, "UNAVAILABLE");
  EXPECT_NE(index[0].reason.find("relu/config.pbtxt:3:"), std::string::npos) << index[0].reason;
  EXPECT_NE(index[0].reason.find("bogus_field"), std::string::npos) << index[0].reason;
}

TEST_F(ServerTest, validation_errors_name_what_is_wrong) {
  add_relu("relu", 1);
  config("relu", "max_batch_size: 4");
  write_two_io_model(model_dir("two") / "1");
  config("two", "max_batch_size: 4");
  auto server = start();
  ASSERT_TRUE(server);
  struct Case {
    InferRequest request;
    const char* needle;
  };
  std::vector<Case> cases;
  auto add = [&](InferRequest r, const char* needle) { cases.push_back({std::move(r), needle}); };
  {
    InferRequest r = relu_request({1, 2, 3, 4});
    r.inputs[0].shape = {4};
    add(r, "rank");
  }
  {
    InferRequest r = relu_request({1, 2, 3, 4, 5, 6});
    r.inputs[0].shape = {1, 6};
    add(r, "at dim 1");
  }
  add(relu_request(std::vector<float>(20, 1.f)), "batch size 5");
  {
    InferRequest r = relu_request({1, 2, 3, 4});
    r.inputs[0].datatype = "INT32";
    r.inputs[0].data = Tensor::from_vector<int32_t>({1, 2, 3, 4}, {4});
    add(r, "datatype INT32");
  }
  {
    InferRequest r = relu_request({1, 2, 3});
    r.inputs[0].shape = {1, 4};
    add(r, "needs 4 elements");
  }
  {
    InferRequest r = relu_request({1, 2, 3, 4});
    r.requested_outputs = {"z"};
    add(r, "unknown output 'z'");
  }
  {
    InferRequest r = relu_request({1, 2, 3, 4});
    r.inputs[0].name = "q";
    add(r, "unknown input 'q'");
  }
  {
    InferRequest r = relu_request({1, 2, 3, 4});
    r.inputs.push_back(r.inputs[0]);
    add(r, "twice");
  }
  {
    InferRequest r = relu_request({1, 2, 3, 4}, "", "two");
    r.inputs[0].name = "a";
    add(r, "missing input 'b'");
  }
  {
    InferRequest r = relu_request({1, 2, 3, 4}, "", "two");
    r.inputs[0].name = "a";
    r.inputs.push_back(fp32("b", {2, 4}, std::vector<float>(8, 1.f)));
    add(r, "batch size");
  }
  {
    InferRequest r = relu_request({1, 2, 3, 4});
    r.inputs[0].shape = {1, -4};
    add(r, "negative");
  }
  {
    InferRequest r = relu_request({1, 2, 3, 4});
    r.inputs.clear();
    add(r, "missing input 'x'");
  }
  for (Case& c : cases) {
    auto out = server->infer(c.request);
    ASSERT_FALSE(out.ok()) << c.needle;
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument) << out.status().to_string();
    EXPECT_NE(out.status().message().find(c.needle), std::string::npos)
        << "want '" << c.needle << "' in: " << out.status().message();
  }
  // Good requests still work, including two inputs and a chosen output.
  InferRequest good = relu_request({-1, 2, -3, 4}, "", "two");
  good.inputs[0].name = "a";
  good.inputs.push_back(fp32("b", {1, 4}, {10, 20, 30, 40}));
  good.requested_outputs = {"sum"};
  auto out = server->infer(good);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  ASSERT_EQ(out->outputs.size(), 1u);
  EXPECT_EQ(out->outputs[0].name, "sum");
  EXPECT_EQ(values(out->outputs[0].data), (std::vector<float>{9, 22, 27, 44}));
  auto stats = server->model_statistics("relu", "1");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)[0].inference_count, 0u);
  EXPECT_EQ((*stats)[0].fail.count, 10u);
}

TEST_F(ServerTest, dynamic_batching_batches_concurrent_requests) {
  add_relu("relu", 1);
  config("relu", "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 200000 }");
  auto server = start();
  ASSERT_TRUE(server);
  constexpr int kRequests = 8;
  std::vector<std::thread> threads;
  std::vector<Result<InferResponse>> results(kRequests, Result<InferResponse>(internal_error("not run")));
  std::vector<std::vector<float>> inputs(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    const float f = static_cast<float>(i + 1);
    inputs[i] = {f, -f, f * 10, -f * 10};
  }
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::vector<std::future<Result<InferResponse>>> futures;
      for (int i = t; i < kRequests; i += 4) {
        auto p = std::make_shared<std::promise<Result<InferResponse>>>();
        futures.push_back(p->get_future());
        InferRequest r = relu_request(inputs[i]);
        r.id = std::to_string(i);
        server->infer_async(std::move(r), [p](Result<InferResponse> res) { p->set_value(std::move(res)); });
      }
      int k = 0;
      for (int i = t; i < kRequests; i += 4) results[i] = futures[k++].get();
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status().to_string();
    EXPECT_EQ(results[i]->id, std::to_string(i));
    ASSERT_EQ(results[i]->outputs.size(), 1u);
    EXPECT_EQ(results[i]->outputs[0].data.shape(), (Shape{1, 4}));
    EXPECT_EQ(values(results[i]->outputs[0].data), relu(inputs[i])) << "request " << i;
  }
  auto stats = server->model_statistics("relu", "1");
  ASSERT_TRUE(stats.ok());
  const ModelStatistics& s = (*stats)[0];
  EXPECT_EQ(s.inference_count, 8u);
  EXPECT_EQ(s.success.count, 8u);
  EXPECT_LT(s.execution_count, s.inference_count);
  ASSERT_FALSE(s.batch_stats.empty());
  EXPECT_GT(s.batch_stats.back().batch_size, 1u);
}

TEST_F(ServerTest, dynamic_batching_concatenates_requests_of_several_rows) {
  add_relu("relu", 1);
  config("relu", "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 100000 }");
  auto server = start();
  ASSERT_TRUE(server);
  std::vector<std::future<Result<InferResponse>>> futures;
  std::vector<std::vector<float>> inputs;
  for (int rows : {1, 3, 2}) {
    std::vector<float> data;
    for (int i = 0; i < rows * 4; ++i) data.push_back(static_cast<float>((i % 2 ? -1 : 1) * (rows * 100 + i)));
    inputs.push_back(data);
    auto p = std::make_shared<std::promise<Result<InferResponse>>>();
    futures.push_back(p->get_future());
    server->infer_async(relu_request(data), [p](Result<InferResponse> r) { p->set_value(std::move(r)); });
  }
  for (size_t i = 0; i < futures.size(); ++i) {
    auto r = futures[i].get();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->outputs[0].data.shape(), (Shape{static_cast<int64_t>(inputs[i].size() / 4), 4}));
    EXPECT_EQ(values(r->outputs[0].data), relu(inputs[i]));
  }
  auto stats = server->model_statistics("relu", "1");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)[0].inference_count, 6u);
  EXPECT_EQ((*stats)[0].execution_count, 1u);
}

TEST_F(ServerTest, preferred_batch_size_runs_before_the_delay) {
  add_relu("relu", 1);
  config("relu", "max_batch_size: 8 dynamic_batching { preferred_batch_size: [ 4 ] max_queue_delay_microseconds: 3000000 }");
  auto server = start();
  ASSERT_TRUE(server);
  const auto t0 = Clock::now();
  std::vector<std::future<Result<InferResponse>>> futures;
  for (int i = 0; i < 4; ++i) {
    auto p = std::make_shared<std::promise<Result<InferResponse>>>();
    futures.push_back(p->get_future());
    server->infer_async(relu_request({float(i), 1, 2, 3}), [p](Result<InferResponse> r) { p->set_value(std::move(r)); });
  }
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(futures[i].wait_for(std::chrono::milliseconds(1500)), std::future_status::ready) << i;
    auto r = futures[i].get();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(values(r->outputs[0].data), (std::vector<float>{float(i), 1, 2, 3}));
  }
  EXPECT_LT(ms_since(t0), 1500);
  auto stats = server->model_statistics("relu", "1");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)[0].execution_count, 1u);
  ASSERT_EQ((*stats)[0].batch_stats.size(), 1u);
  EXPECT_EQ((*stats)[0].batch_stats[0].batch_size, 4u);
}

TEST_F(ServerTest, full_queue_rejects_at_once) {
  add_relu("relu", 1);
  config("relu",
         "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 300000 "
         "default_queue_policy { max_queue_size: 2 } }");
  auto server = start();
  ASSERT_TRUE(server);
  std::vector<std::future<Result<InferResponse>>> futures;
  std::vector<bool> answered_at_once;
  const auto t0 = Clock::now();
  for (int i = 0; i < 4; ++i) {
    auto p = std::make_shared<std::promise<Result<InferResponse>>>();
    futures.push_back(p->get_future());
    server->infer_async(relu_request({1, 2, 3, 4}), [p](Result<InferResponse> r) { p->set_value(std::move(r)); });
    answered_at_once.push_back(futures.back().wait_for(std::chrono::seconds(0)) == std::future_status::ready);
  }
  EXPECT_LT(ms_since(t0), 200);
  EXPECT_FALSE(answered_at_once[0]);
  EXPECT_FALSE(answered_at_once[1]);
  EXPECT_TRUE(answered_at_once[2]);
  EXPECT_TRUE(answered_at_once[3]);
  for (int i = 2; i < 4; ++i) {
    auto r = futures[i].get();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(r.status().message().find("queue is full"), std::string::npos) << r.status().message();
  }
  for (int i = 0; i < 2; ++i) EXPECT_TRUE(futures[i].get().ok());
  const std::string text = server->metrics().render();
  EXPECT_NE(text.find(R"(hearth_inference_request_failure_total{model="relu",version="1",reason="REJECTED"} 2)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(hearth_inference_request_success_total{model="relu",version="1"} 2)"), std::string::npos);
}

TEST_F(ServerTest, queue_timeout_gives_deadline_exceeded) {
  add_relu("relu", 1);
  config("relu",
         "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 300000 "
         "default_queue_policy { default_timeout_microseconds: 20000 } }");
  auto server = start();
  ASSERT_TRUE(server);
  auto r = server->infer(relu_request({1, 2, 3, 4}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().to_string();
  const std::string text = server->metrics().render();
  EXPECT_NE(text.find(R"(hearth_inference_request_failure_total{model="relu",version="1",reason="TIMEOUT"} 1)"),
            std::string::npos);
}

// A request that times out after 20 ms should be answered close to 20 ms, not
// when the batcher's (much longer) queue delay ends.
TEST_F(ServerTest, queue_timeout_is_answered_near_the_deadline) {
  add_relu("relu", 1);
  config("relu",
         "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 1500000 "
         "default_queue_policy { default_timeout_microseconds: 20000 } }");
  auto server = start();
  ASSERT_TRUE(server);
  const auto t0 = Clock::now();
  auto r = server->infer(relu_request({1, 2, 3, 4}));
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_LT(ms_since(t0), 700) << "the timeout was only noticed when the batch delay ended";
}

TEST_F(ServerTest, cancelled_request_is_dropped_from_the_queue) {
  add_relu("relu", 1);
  config("relu", "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 200000 }");
  auto server = start();
  ASSERT_TRUE(server);
  auto p = std::make_shared<std::promise<Result<InferResponse>>>();
  auto f = p->get_future();
  InferRequest r = relu_request({1, 2, 3, 4});
  r.cancelled = std::make_shared<std::atomic<bool>>(false);
  auto flag = r.cancelled;
  server->infer_async(std::move(r), [p](Result<InferResponse> res) { p->set_value(std::move(res)); });
  flag->store(true);
  auto res = f.get();
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), StatusCode::kCancelled);
  auto stats = server->model_statistics("relu", "1");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)[0].execution_count, 0u);
  EXPECT_NE(server->metrics().render().find(
                R"(hearth_inference_request_failure_total{model="relu",version="1",reason="CANCELED"} 1)"),
            std::string::npos);
}

TEST_F(ServerTest, metrics_count_successes_and_bad_requests) {
  add_relu("relu", 1);
  auto server = start();
  ASSERT_TRUE(server);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(server->infer(relu_request({1, 2, 3, 4})).ok());
  InferRequest bad = relu_request({1, 2, 3, 4});
  bad.inputs[0].name = "q";
  EXPECT_FALSE(server->infer(bad).ok());
  const std::string text = server->metrics().render();
  EXPECT_NE(text.find(R"(hearth_inference_request_success_total{model="relu",version="1"} 3)"), std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(hearth_inference_request_failure_total{model="relu",version="1",reason="OTHER"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(hearth_inference_count_total{model="relu",version="1"} 3)"), std::string::npos);
  EXPECT_NE(text.find(R"(hearth_inference_exec_count_total{model="relu",version="1"} 3)"), std::string::npos);
}

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

TEST_F(ServerTest, shutdown_answers_queued_requests) {
  add_relu("relu", 1);
  config("relu", "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 2000000 }");
  auto server = start();
  ASSERT_TRUE(server);
  auto p = std::make_shared<std::promise<Result<InferResponse>>>();
  auto f = p->get_future();
  server->infer_async(relu_request({1, -2, 3, -4}), [p](Result<InferResponse> r) { p->set_value(std::move(r)); });
  const auto t0 = Clock::now();
  server.reset();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  auto r = f.get();
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(values(r->outputs[0].data), (std::vector<float>{1, 0, 3, 0}));
  EXPECT_LT(ms_since(t0), 1000);
}

// Triton's ModelQueuePolicy: "When [allow_timeout_override is] true,
// individual requests can set a timeout that is less than the default timeout
// value but may not increase the timeout."
TEST_F(ServerTest, request_timeout_may_not_exceed_the_default) {
  add_relu("relu", 1);
  config("relu",
         "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 200000 "
         "default_queue_policy { default_timeout_microseconds: 20000 allow_timeout_override: true } }");
  auto server = start();
  ASSERT_TRUE(server);
  InferRequest longer = relu_request({1, 2, 3, 4});
  longer.timeout_us = 10'000'000;
  EXPECT_EQ(server->infer(longer).status().code(), StatusCode::kDeadlineExceeded)
      << "a request raised its timeout above default_timeout_microseconds";
}

TEST_F(ServerTest, request_timeout_can_shorten_the_default) {
  add_relu("relu", 1);
  config("relu",
         "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 100000 "
         "default_queue_policy { default_timeout_microseconds: 5000000 allow_timeout_override: true } }");
  auto server = start();
  ASSERT_TRUE(server);
  InferRequest shorter = relu_request({1, 2, 3, 4});
  shorter.timeout_us = 1000;
  EXPECT_EQ(server->infer(shorter).status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(server->infer(relu_request({1, 2, 3, 4})).ok());  // default 5 s > 100 ms delay
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

TEST_F(ServerTest, several_instances_serve_concurrently) {
  add_relu("relu", 1);
  config("relu", "max_batch_size: 4 instance_group [ { kind: KIND_CPU count: 3 } ]");
  auto server = start();
  ASSERT_TRUE(server);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const float f = float(t * 100 + i);
        auto r = server->infer(relu_request({f, -f, f, -f}));
        if (!r.ok() || values(r->outputs[0].data) != std::vector<float>{f, 0, f, 0}) bad++;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  auto stats = server->model_statistics("relu", "1");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)[0].inference_count, 100u);
  EXPECT_EQ((*stats)[0].execution_count, 100u);  // no dynamic batching: one run per request
}

TEST_F(ServerTest, reshape_maps_request_dims_to_the_model_and_back) {
  add_relu("relu", 1);
  config("relu",
         "max_batch_size: 4 dynamic_batching { max_queue_delay_microseconds: 50000 }\n"
         "input [ { name: \"x\" data_type: TYPE_FP32 dims: [ 2, 2 ] reshape { shape: [ 4 ] } } ]\n"
         "output [ { name: \"y\" data_type: TYPE_FP32 dims: [ 2, 2 ] reshape { shape: [ 4 ] } } ]\n");
  auto server = start();
  ASSERT_TRUE(server);
  auto md = server->model_metadata("relu", "");
  ASSERT_TRUE(md.ok()) << md.status().to_string();
  EXPECT_EQ(md->inputs[0].shape, (std::vector<int64_t>{-1, 2, 2}));
  std::vector<std::future<Result<InferResponse>>> futures;
  for (int i = 0; i < 2; ++i) {
    InferRequest r;
    r.model_name = "relu";
    r.inputs.push_back(fp32("x", {1, 2, 2}, {float(i), -1, 2, -3}));
    auto p = std::make_shared<std::promise<Result<InferResponse>>>();
    futures.push_back(p->get_future());
    server->infer_async(std::move(r), [p](Result<InferResponse> res) { p->set_value(std::move(res)); });
  }
  for (int i = 0; i < 2; ++i) {
    auto r = futures[i].get();
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_EQ(r->outputs[0].data.shape(), (Shape{1, 2, 2}));
    EXPECT_EQ(values(r->outputs[0].data), (std::vector<float>{float(i), 0, 2, 0}));
  }
  InferRequest flat = relu_request({1, 2, 3, 4});  // [1,4] is not the config's [2,2]
  EXPECT_EQ(server->infer(flat).status().code(), StatusCode::kInvalidArgument);
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

TEST(ControlMode, parses_triton_names) {
  EXPECT_EQ(*parse_model_control_mode("none"), ModelControlMode::kNone);
  EXPECT_EQ(*parse_model_control_mode("poll"), ModelControlMode::kPoll);
  EXPECT_EQ(*parse_model_control_mode("explicit"), ModelControlMode::kExplicit);
  EXPECT_EQ(parse_model_control_mode("auto").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hearth::serving
