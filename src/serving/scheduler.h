// Scheduler: decides when each request of one model version runs, and on which of
// its instances. The version (model_version.h) validates a request and hands it to
// its scheduler; the scheduler calls back into the version (a BatchRunner) to run a
// batch on an instance or to answer a request that will not run. Triton keeps the
// same split: a scheduler in front of a model and its instances.
//
// DynamicBatchScheduler (dynamic_batch_scheduler.h) is the one scheduler today:
// a bounded queue, dynamic batching, one worker per instance.
// Thread safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/status.h"
#include "serving/inference.h"

namespace hearth::serving {

using Clock = std::chrono::steady_clock;

// A validated request on its way through a scheduler.
struct ScheduledRequest {
  InferRequest request;
  InferCallback done;   // runs exactly once
  int64_t batch = 1;    // the leading dim when the model batches, else 1
  Clock::time_point received;
  Clock::time_point deadline = Clock::time_point::max();
  bool may_run_inline = true;  // false: always through the queue (never on the caller's thread)
};

// Why a request was answered without running (Triton's failure reasons, as metrics label them).
enum class FailReason { kRejected, kCanceled, kTimeout, kBackend, kOther };

// What a scheduler runs requests on: a model version and its instances.
class BatchRunner {
 public:
  virtual ~BatchRunner() = default;
  virtual size_t instance_count() const = 0;
  // Runs `batch` (requests whose non-batch dims agree) on instance `instance` and
  // answers every one of them. Never called twice at once for one instance.
  virtual void run_batch(size_t instance, std::vector<ScheduledRequest>& batch) = 0;
  // Answers a request that will not run, counting it under `reason`.
  virtual void fail(ScheduledRequest& request, const Status& status, FailReason reason) = 0;
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // Queues (or runs) `request`; its `done` runs exactly once, possibly before this returns.
  virtual void enqueue(ScheduledRequest request) = 0;
  // Requests waiting to run.
  virtual size_t pending() const = 0;
  // Refuses new requests, runs every queued one, and stops the workers. Idempotent.
  virtual void stop() = 0;
};

}  // namespace hearth::serving
