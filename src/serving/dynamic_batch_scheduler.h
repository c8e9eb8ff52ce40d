// DynamicBatchScheduler: a bounded queue in front of one model version, a dynamic
// batcher, and one worker thread per instance (see scheduler.h for the split).
//
//   enqueue() queues a request (or answers at once: full queue, stopping). A worker
//   takes the oldest request and, with dynamic batching, every queued request whose
//   non-batch dims match, up to max_batch_size: at once when a preferred batch size
//   (or the maximum) is reached, else when the oldest request has waited
//   max_delay. Requests whose deadline passed or whose client went away are
//   answered DeadlineExceeded / Cancelled without running.
//   Fast path (allow_inline): when the queue is empty, an instance is idle and no
//   batching delay is configured, enqueue() runs the request at once on the
//   caller's thread (what the worker would do, minus two thread wake-ups).
//   stop() rejects new requests, runs every queued one, and joins the workers:
//   a retired version drains before it unloads.
// Thread safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "serving/scheduler.h"
#include "telemetry/metrics.h"

namespace hearth::serving {

struct BatchingOptions {
  std::string what;                  // "model 'mlp' version 3", for messages
  int max_batch_size = 0;            // 0: requests run one by one
  bool dynamic_batching = false;
  std::vector<int64_t> preferred;    // preferred batch sizes, ascending
  std::chrono::microseconds max_delay{0};
  size_t max_queue_size = 1024;
};

class DynamicBatchScheduler final : public Scheduler {
 public:
  // Borrows `runner`, which must outlive the scheduler. `pending` (may be null)
  // follows the queue's length.
  DynamicBatchScheduler(BatchRunner& runner, BatchingOptions options, std::shared_ptr<telemetry::Gauge> pending);
  ~DynamicBatchScheduler() override;  // stop()

  // Starts one worker per instance. Each first calls warm_up(instance) on its own
  // thread (an instance's OpenMP team belongs to that thread), then takes requests;
  // start() returns once every warm-up has finished.
  void start(const std::function<void(size_t)>& warm_up);
  // Whether a request may run on the caller's thread (see above); set after start().
  void allow_inline(bool allow) { run_inline_ = allow && options_.max_delay.count() == 0; }

  void enqueue(ScheduledRequest request) override;
  size_t pending() const override;
  void stop() override;

 private:
  bool try_run_inline(ScheduledRequest& request);
  bool batchable(const ScheduledRequest& a, const ScheduledRequest& b) const;
  // Answers expired and abandoned requests (with `lock` released meanwhile); true if any.
  bool drop_dead(std::unique_lock<std::mutex>& lock, Clock::time_point now);
  // The queue indices of the next batch, or none while the batch should wait.
  std::vector<size_t> pick_batch(Clock::time_point now, bool* wait);
  bool next_batch(size_t instance, std::vector<ScheduledRequest>& batch);
  void worker(size_t instance);

  BatchRunner& runner_;
  BatchingOptions options_;
  std::shared_ptr<telemetry::Gauge> pending_gauge_;
  std::vector<std::thread> workers_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ScheduledRequest> queue_;
  // Per instance: executing (by its worker or inline). Wake-ups rely on who may
  // set and clear it: only the instance's own worker, which looks at the queue
  // again before it waits, or an inline run, which notifies on release when
  // something queued or the scheduler is stopping. enqueue() notifies only while
  // some instance is free. Anything else that claims an instance must notify
  // when it lets go, or a queued request can wait for nobody.
  std::vector<char> in_use_;
  bool stopping_ = false;
  bool run_inline_ = false;
};

}  // namespace hearth::serving
