// The bounded queue, dynamic batcher and workers of one model version (see
// dynamic_batch_scheduler.h).
#include "serving/dynamic_batch_scheduler.h"

#include <algorithm>
#include <latch>

namespace hearth::serving {

namespace {

bool is_cancelled(const InferRequest& r) { return r.cancelled && r.cancelled->load(std::memory_order_relaxed); }

}  // namespace

DynamicBatchScheduler::DynamicBatchScheduler(BatchRunner& runner, BatchingOptions options,
                                             std::shared_ptr<telemetry::Gauge> pending)
    : runner_(runner), options_(std::move(options)), pending_gauge_(std::move(pending)) {}

DynamicBatchScheduler::~DynamicBatchScheduler() { stop(); }

void DynamicBatchScheduler::start(const std::function<void(size_t)>& warm_up) {
  const size_t n = runner_.instance_count();
  in_use_.assign(n, 0);
  std::latch warmed(static_cast<std::ptrdiff_t>(n));
  for (size_t i = 0; i < n; ++i) {
    workers_.emplace_back([this, i, &warmed, &warm_up] {
      warm_up(i);
      warmed.count_down();
      worker(i);
    });
  }
  warmed.wait();
}

void DynamicBatchScheduler::enqueue(ScheduledRequest request) {
  if (run_inline_ && request.may_run_inline && try_run_inline(request)) return;
  bool stopping = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping = stopping_;
    if (!stopping && queue_.size() < options_.max_queue_size) {
      queue_.push_back(std::move(request));
      if (pending_gauge_) pending_gauge_->add(1);
      // Workers wait for work *and* their own instance to be free. While every
      // instance runs, waking them would only put them back to sleep: whoever
      // frees an instance takes the queue next (its worker loops, the inline
      // path wakes the workers when something queued).
      if (std::find(in_use_.begin(), in_use_.end(), 0) != in_use_.end()) cv_.notify_all();
      return;
    }
  }
  if (stopping)
    return runner_.fail(request, Status(StatusCode::kUnavailable, str_cat(options_.what, " is unloading")),
                        FailReason::kRejected);
  runner_.fail(request,
               Status(StatusCode::kUnavailable, str_cat(options_.what, ": queue is full (", options_.max_queue_size,
                                                        " requests); retry later")),
               FailReason::kRejected);
}

// Runs `request` on the calling thread when nothing is queued and an instance is
// idle; false (request untouched) otherwise.
bool DynamicBatchScheduler::try_run_inline(ScheduledRequest& request) {
  size_t instance = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || !queue_.empty()) return false;
    while (instance < in_use_.size() && in_use_[instance]) ++instance;
    if (instance == in_use_.size()) return false;
    in_use_[instance] = 1;
  }
  std::vector<ScheduledRequest> batch;
  batch.push_back(std::move(request));
  runner_.run_batch(instance, batch);
  bool queued = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_use_[instance] = 0;
    queued = !queue_.empty() || stopping_;
  }
  // Requests that queued meanwhile wait for this instance's worker, and so does
  // stop(): the worker exits only once its instance is free. Waking it in any
  // other case would cost a futex call and a task switch (on another core, an
  // inter-processor wake-up) per request for nothing: a request that queues
  // after the unlock above wakes the workers itself.
  if (queued) cv_.notify_all();
  return true;
}

bool DynamicBatchScheduler::batchable(const ScheduledRequest& a, const ScheduledRequest& b) const {
  if (a.request.inputs.size() != b.request.inputs.size()) return false;
  for (const InferInput& x : a.request.inputs) {
    const InferInput* y = nullptr;
    for (const InferInput& c : b.request.inputs)
      if (c.name == x.name) y = &c;
    if (y == nullptr || y->shape.size() != x.shape.size()) return false;
    if (!std::equal(x.shape.begin() + 1, x.shape.end(), y->shape.begin() + 1)) return false;
  }
  return true;
}

bool DynamicBatchScheduler::drop_dead(std::unique_lock<std::mutex>& lock, Clock::time_point now) {
  std::vector<ScheduledRequest> dead;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->deadline <= now || is_cancelled(it->request)) {
      dead.push_back(std::move(*it));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
  if (dead.empty()) return false;
  if (pending_gauge_) pending_gauge_->add(-static_cast<double>(dead.size()));
  lock.unlock();
  for (ScheduledRequest& r : dead) {
    if (is_cancelled(r.request))
      runner_.fail(r, Status(StatusCode::kCancelled, "the client cancelled the request"), FailReason::kCanceled);
    else
      runner_.fail(r, Status(StatusCode::kDeadlineExceeded, str_cat("request timed out in the queue of ", options_.what)),
                   FailReason::kTimeout);
  }
  lock.lock();
  return true;
}

std::vector<size_t> DynamicBatchScheduler::pick_batch(Clock::time_point now, bool* wait) {
  *wait = false;
  std::vector<size_t> picks{0};
  if (!options_.dynamic_batching) return picks;
  const int64_t max = options_.max_batch_size;
  int64_t total = queue_.front().batch;
  for (size_t i = 1; i < queue_.size() && total < max; ++i) {
    if (total + queue_[i].batch > max || !batchable(queue_.front(), queue_[i])) continue;
    picks.push_back(i);
    total += queue_[i].batch;
  }
  const auto deadline = queue_.front().received + options_.max_delay;
  if (total >= max || stopping_ || options_.max_delay.count() == 0 || now >= deadline) return picks;
  // Run now with the largest preferred size the queue can fill exactly.
  for (auto p = options_.preferred.rbegin(); p != options_.preferred.rend(); ++p) {
    int64_t sum = 0;
    std::vector<size_t> sub;
    for (size_t i : picks)
      if (sum + queue_[i].batch <= *p) {
        sum += queue_[i].batch;
        sub.push_back(i);
      }
    if (sum == *p) return sub;
  }
  *wait = true;
  return {};
}

// Takes the next batch off the queue for `instance`. Returns false once stopping
// and the queue is empty.
bool DynamicBatchScheduler::next_batch(size_t instance, std::vector<ScheduledRequest>& batch) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return !in_use_[instance] && (stopping_ || !queue_.empty()); });
    if (queue_.empty()) return false;
    const auto now = Clock::now();
    if (drop_dead(lock, now)) continue;
    bool wait = false;
    std::vector<size_t> picks = pick_batch(now, &wait);
    if (wait) {
      // Wake for the batch delay, or earlier when a queued request times out.
      auto wake = queue_.front().received + options_.max_delay;
      for (const ScheduledRequest& r : queue_) wake = std::min(wake, r.deadline);
      cv_.wait_until(lock, wake);
      continue;
    }
    // Move the picked requests out, back to front so indices stay valid.
    batch.clear();
    for (size_t i : picks) batch.push_back(std::move(queue_[i]));
    std::sort(picks.rbegin(), picks.rend());
    for (size_t i : picks) queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(i));
    if (pending_gauge_) pending_gauge_->add(-static_cast<double>(batch.size()));
    in_use_[instance] = 1;
    if (!queue_.empty()) cv_.notify_all();  // another instance may take the rest
    return true;
  }
}

void DynamicBatchScheduler::worker(size_t instance) {
  std::vector<ScheduledRequest> batch;
  while (next_batch(instance, batch)) {
    runner_.run_batch(instance, batch);
    batch.clear();
    std::lock_guard<std::mutex> lock(mu_);
    in_use_[instance] = 0;
  }
}

size_t DynamicBatchScheduler::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void DynamicBatchScheduler::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : workers_)
    if (t.joinable()) t.join();
  workers_.clear();
}

}  // namespace hearth::serving
