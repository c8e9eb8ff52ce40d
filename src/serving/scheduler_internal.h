// Private parts of ModelVersion shared by scheduler.cc (queue, batching,
// execution) and model_version.cc (loading, validation, statistics).
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>

#include "serving/scheduler.h"
#include "telemetry/metrics.h"

namespace hearth::serving {

using Clock = std::chrono::steady_clock;

struct ModelVersion::TensorSpec {
  std::string name;
  std::string datatype;         // KServe name
  DataType dtype = DataType::kUndefined;
  std::vector<int64_t> dims;    // config dims, batch dim excluded; -1 = any
  std::vector<int64_t> reshape; // empty = none; else the model's dims (batch excluded)
  bool optional = false;
};

struct ModelVersion::Job {
  InferRequest request;
  InferCallback done;
  int64_t batch = 1;  // leading dim when batching, else 1
  Clock::time_point received;
  Clock::time_point deadline = Clock::time_point::max();
};

struct AtomicDuration {
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> ns{0};
  void add(uint64_t n, uint64_t c = 1) {
    count.fetch_add(c, std::memory_order_relaxed);
    ns.fetch_add(n, std::memory_order_relaxed);
  }
  StatDuration get() const { return {count.load(std::memory_order_relaxed), ns.load(std::memory_order_relaxed)}; }
};

struct ModelVersion::Stats {
  std::atomic<uint64_t> last_inference_ms{0};
  std::atomic<uint64_t> inference_count{0};
  std::atomic<uint64_t> execution_count{0};
  AtomicDuration success, fail, queue, compute_input, compute_infer, compute_output;
  std::mutex batch_mu;
  std::map<uint64_t, BatchStatistics> batches;
};

// Prometheus series of one version (labels model, version). Null pointers
// when the version has no registry.
struct ModelVersion::Metrics {
  std::shared_ptr<telemetry::Counter> success, inference_count, exec_count;
  std::shared_ptr<telemetry::Counter> fail_rejected, fail_canceled, fail_timeout, fail_backend, fail_other;
  std::shared_ptr<telemetry::Counter> request_us, queue_us, compute_input_us, compute_infer_us, compute_output_us;
  std::shared_ptr<telemetry::Gauge> pending;
  std::shared_ptr<telemetry::Histogram> request_hist, queue_hist, compute_hist, batch_hist;
};

inline uint64_t elapsed_ns(Clock::time_point from, Clock::time_point to) {
  auto d = std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count();
  return d > 0 ? static_cast<uint64_t>(d) : 0;
}

}  // namespace hearth::serving
