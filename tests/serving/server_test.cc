// InferenceServer over temporary repositories: inference, metadata, version
// policy, readiness, request validation, instances, reshape, metrics, shutdown.
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

TEST_F(ServerTest, empty_and_huge_shapes_do_not_crash) {
  add_relu("relu", 1);  // derived config: no batching, x[-1,4]
  auto server = start();
  ASSERT_TRUE(server);
  InferRequest empty = relu_request({});
  empty.inputs[0].shape = {0, 4};
  auto e = server->infer(empty);
  if (e.ok()) {
    ASSERT_EQ(e->outputs.size(), 1u);
    EXPECT_EQ(e->outputs[0].data.shape(), (Shape{0, 4}));
  }
  InferRequest huge = relu_request({1, 2, 3, 4});
  huge.inputs[0].shape = {int64_t{1} << 40, 4};
  EXPECT_EQ(server->infer(huge).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(server->infer(relu_request({1, 2, 3, 4})).ok());
}

TEST_F(ServerTest, default_model_filename_and_hidden_folders) {
  write_relu_model(dir_.path() / "tmp_model");
  fs::create_directories(model_dir("named") / "1");
  fs::rename(dir_.path() / "tmp_model" / "model.onnx", model_dir("named") / "1" / "relu.onnx");
  fs::remove_all(dir_.path() / "tmp_model");
  config("named", "default_model_filename: \"relu.onnx\"");
  add_relu(".hidden", 1);
  auto server = start();
  ASSERT_TRUE(server);
  auto r = server->infer(relu_request({-1, 1, -1, 1}, "", "named"));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(values(r->outputs[0].data), (std::vector<float>{0, 1, 0, 1}));
  std::vector<std::string> rows;
  for (const auto& e : server->repository_index(false)) rows.push_back(e.name + ":" + e.version + ":" + e.state);
  EXPECT_EQ(rows, (std::vector<std::string>{"named:1:READY"}));
  EXPECT_TRUE(server->ready());
}

TEST_F(ServerTest, a_model_file_outside_the_repository_is_refused) {
  TempDir outside;
  write_relu_model(outside.path());
  fs::create_directories(model_dir("escape") / "1");
  fs::create_symlink(outside.path() / "model.onnx", model_dir("escape") / "1" / "model.onnx");
  auto server = start();
  ASSERT_TRUE(server);
  EXPECT_EQ(server->infer(relu_request({1, 2, 3, 4}, "", "escape")).status().code(), StatusCode::kUnavailable);
  auto index = server->repository_index(false);
  ASSERT_EQ(index.size(), 1u);
  EXPECT_EQ(index[0].state, "UNAVAILABLE");
  EXPECT_NE(index[0].reason.find("outside the model repository"), std::string::npos) << index[0].reason;
}

TEST(ControlMode, parses_triton_names) {
  EXPECT_EQ(*parse_model_control_mode("none"), ModelControlMode::kNone);
  EXPECT_EQ(*parse_model_control_mode("poll"), ModelControlMode::kPoll);
  EXPECT_EQ(*parse_model_control_mode("explicit"), ModelControlMode::kExplicit);
  EXPECT_EQ(parse_model_control_mode("auto").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hearth::serving::test
