// InferenceServer's scheduler: dynamic batching (delay, preferred sizes,
// per-request outputs), bounded queues, queue timeouts and cancellation.
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

// A tiny model runs requests inline on the caller's thread when an instance
// is idle, and queues them for the workers when not. Under concurrency from
// many threads, with two instances and with dynamic batching, every request
// still gets its own correct answer exactly once.
TEST_F(ServerTest, inline_and_queued_execution_mix_correctly) {
  for (const char* cfg : {"", "instance_group [ { count: 2 kind: KIND_CPU } ]",
                          "max_batch_size: 8 dynamic_batching { }"}) {
    SCOPED_TRACE(cfg);
    add_relu("relu", 1);
    config("relu", cfg);
    auto server = start();
    ASSERT_TRUE(server);
    std::atomic<int> good{0}, bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 6; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 60; ++i) {
          const float v = float(t * 1000 + i);
          auto r = server->infer(relu_request({v, -v, 1, -1}));
          bool ok = r.ok() && values(r->outputs[0].data) == std::vector<float>{v, 0, 1, 0};
          (ok ? good : bad)++;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(good.load(), 360);
    EXPECT_EQ(bad.load(), 0);
    auto stats = server->model_statistics("relu", "1");
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ((*stats)[0].inference_count, 360u);
    server.reset();
  }
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

TEST_F(ServerTest, batched_requests_get_the_outputs_each_asked_for) {
  write_two_io_model(model_dir("two") / "1");
  config("two", "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 100000 }");
  auto server = start();
  ASSERT_TRUE(server);
  auto request = [](float base, std::vector<std::string> outputs) {
    InferRequest r;
    r.model_name = "two";
    r.inputs.push_back(fp32("a", {1, 4}, {base, -base, base, -base}));
    r.inputs.push_back(fp32("b", {1, 4}, {1, 1, 1, 1}));
    r.requested_outputs = std::move(outputs);
    return r;
  };
  std::vector<std::future<Result<InferResponse>>> futures;
  const std::vector<std::vector<std::string>> asks = {{"pos"}, {}, {"sum"}};
  for (size_t i = 0; i < asks.size(); ++i) {
    auto p = std::make_shared<std::promise<Result<InferResponse>>>();
    futures.push_back(p->get_future());
    server->infer_async(request(float(i + 1), asks[i]), [p](Result<InferResponse> r) { p->set_value(std::move(r)); });
  }
  std::vector<Result<InferResponse>> got;
  for (auto& f : futures) got.push_back(f.get());
  for (auto& r : got) ASSERT_TRUE(r.ok()) << r.status().to_string();
  ASSERT_EQ(got[0]->outputs.size(), 1u);
  EXPECT_EQ(got[0]->outputs[0].name, "pos");
  EXPECT_EQ(values(got[0]->outputs[0].data), (std::vector<float>{1, 0, 1, 0}));
  ASSERT_EQ(got[1]->outputs.size(), 2u);
  EXPECT_EQ(values(got[1]->outputs[0].data), (std::vector<float>{3, -1, 3, -1}));  // sum: 2 + 1, -2 + 1
  EXPECT_EQ(values(got[1]->outputs[1].data), (std::vector<float>{2, 0, 2, 0}));
  ASSERT_EQ(got[2]->outputs.size(), 1u);
  EXPECT_EQ(got[2]->outputs[0].name, "sum");
  EXPECT_EQ(values(got[2]->outputs[0].data), (std::vector<float>{4, -2, 4, -2}));
  auto stats = server->model_statistics("two", "1");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)[0].execution_count, 1u);
}

}  // namespace
}  // namespace hearth::serving::test
