// ModelVersion's queue, dynamic batcher and workers. See scheduler.h.
#include <algorithm>
#include <cstring>

#include "serving/scheduler_internal.h"

namespace hearth::serving {

namespace {

uint64_t now_ms_since_epoch() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

bool is_cancelled(const InferRequest& r) { return r.cancelled && r.cancelled->load(std::memory_order_relaxed); }

template <typename T>
void inc(const std::shared_ptr<T>& metric, double v = 1.0) {
  if (metric) metric->add(v);
}

}  // namespace

void ModelVersion::fail(Job& job, const Status& status, const char* reason) {
  const auto now = Clock::now();
  stats_->fail.add(elapsed_ns(job.received, now));
  if (metrics_) {
    std::string_view r(reason);
    inc(r == "REJECTED"   ? metrics_->fail_rejected
        : r == "CANCELED" ? metrics_->fail_canceled
        : r == "TIMEOUT"  ? metrics_->fail_timeout
        : r == "BACKEND"  ? metrics_->fail_backend
                          : metrics_->fail_other);
  }
  InferCallback done = std::move(job.done);
  done(status);
}

void ModelVersion::submit(InferRequest request, InferCallback done) {
  Job job;
  job.received = Clock::now();
  job.done = std::move(done);
  Status valid = validate(request);
  if (!valid.ok()) {
    job.request = std::move(request);
    return fail(job, valid, "OTHER");
  }
  job.batch = max_batch_size_ > 0 && !request.inputs.empty() ? request.inputs[0].shape[0] : 1;
  uint64_t timeout = default_timeout_us_;
  // A request may set its own timeout when the model has no default, or
  // shorten the default when the queue policy allows overrides (Triton's rule).
  if (request.timeout_us > 0 && (timeout == 0 || (allow_timeout_override_ && request.timeout_us < timeout)))
    timeout = request.timeout_us;
  if (timeout > 0) job.deadline = job.received + std::chrono::microseconds(timeout);
  job.request = std::move(request);
  if (run_inline_ && try_run_inline(job)) return;
  bool stopping = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping = stopping_;
    if (!stopping && queue_.size() < max_queue_size_) {
      queue_.push_back(std::move(job));
      if (metrics_ && metrics_->pending) metrics_->pending->add(1);
      // Workers wait for work *and* their own instance to be free. While every
      // instance runs, waking them would only put them back to sleep: whoever
      // frees an instance takes the queue next (its worker loops, the inline
      // path wakes the workers when something queued).
      if (std::find(in_use_.begin(), in_use_.end(), 0) != in_use_.end()) cv_.notify_all();
      return;
    }
  }
  if (stopping)
    return fail(job, Status(StatusCode::kUnavailable, str_cat("model '", name_, "' version ", version_, " is unloading")),
                "REJECTED");
  fail(job, Status(StatusCode::kUnavailable, str_cat("model '", name_, "' version ", version_, ": queue is full (",
                                                     max_queue_size_, " requests); retry later")),
       "REJECTED");
}

// Runs `job` on the calling thread when nothing is queued and an instance is
// idle; false (job untouched) otherwise.
bool ModelVersion::try_run_inline(Job& job) {
  size_t instance = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || !queue_.empty()) return false;
    while (instance < in_use_.size() && in_use_[instance]) ++instance;
    if (instance == in_use_.size()) return false;
    in_use_[instance] = 1;
  }
  std::vector<Job> batch;
  batch.push_back(std::move(job));
  execute(*sessions_[instance], batch);
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

bool ModelVersion::batchable(const Job& a, const Job& b) const {
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

// Takes the next batch off the queue (see scheduler.h for the policy).
// Returns false once stopping and the queue is empty.
bool ModelVersion::next_batch(size_t instance, std::vector<Job>& batch) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return (stopping_ && !in_use_[instance]) || (!queue_.empty() && !in_use_[instance]); });
    if (queue_.empty()) return false;
    // Answer expired and abandoned requests without running them.
    const auto now = Clock::now();
    std::vector<Job> dead;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->deadline <= now || is_cancelled(it->request)) {
        dead.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    if (!dead.empty()) {
      if (metrics_ && metrics_->pending) metrics_->pending->add(-static_cast<double>(dead.size()));
      lock.unlock();
      for (Job& j : dead) {
        if (is_cancelled(j.request))
          fail(j, Status(StatusCode::kCancelled, "the client cancelled the request"), "CANCELED");
        else
          fail(j, Status(StatusCode::kDeadlineExceeded, str_cat("request timed out in the queue of model '", name_, "'")),
               "TIMEOUT");
      }
      lock.lock();
      continue;
    }
    std::vector<size_t> picks{0};
    int64_t total = queue_.front().batch;
    if (dynamic_batching_) {
      for (size_t i = 1; i < queue_.size() && total < max_batch_size_; ++i) {
        if (total + queue_[i].batch > max_batch_size_ || !batchable(queue_.front(), queue_[i])) continue;
        picks.push_back(i);
        total += queue_[i].batch;
      }
      const auto deadline = queue_.front().received + max_delay_;
      bool ready = total >= max_batch_size_ || stopping_ || max_delay_.count() == 0 || now >= deadline;
      if (!ready && !preferred_.empty()) {
        // Run now with the largest preferred size the queue can fill exactly.
        for (auto p = preferred_.rbegin(); p != preferred_.rend() && !ready; ++p) {
          int64_t sum = 0;
          std::vector<size_t> sub;
          for (size_t i : picks)
            if (sum + queue_[i].batch <= *p) {
              sum += queue_[i].batch;
              sub.push_back(i);
            }
          if (sum == *p) {
            picks = sub;
            ready = true;
          }
        }
      }
      if (!ready) {
        // Wake for the batch delay, or earlier when a queued request times out.
        auto wake = deadline;
        for (const Job& j : queue_) wake = std::min(wake, j.deadline);
        cv_.wait_until(lock, wake);
        continue;
      }
    }
    // Move the picked jobs out, back to front so indices stay valid.
    batch.clear();
    for (size_t i : picks) batch.push_back(std::move(queue_[i]));
    std::sort(picks.rbegin(), picks.rend());
    for (size_t i : picks) queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(i));
    if (metrics_ && metrics_->pending) metrics_->pending->add(-static_cast<double>(batch.size()));
    in_use_[instance] = 1;
    if (!queue_.empty()) cv_.notify_all();  // another instance may take the rest
    return true;
  }
}

void ModelVersion::worker(size_t instance) {
  Session& session = *sessions_[instance];
  std::vector<Job> batch;
  while (next_batch(instance, batch)) {
    execute(session, batch);
    batch.clear();
    std::lock_guard<std::mutex> lock(mu_);
    in_use_[instance] = 0;
  }
}

Result<std::vector<std::pair<std::string, Tensor>>> ModelVersion::gather_inputs(const std::vector<Job>& batch,
                                                                                 int64_t total) const {
  std::vector<std::pair<std::string, Tensor>> feeds;
  for (const TensorSpec& spec : inputs_) {
    std::vector<const InferInput*> parts;
    for (const Job& job : batch)
      for (const InferInput& in : job.request.inputs)
        if (in.name == spec.name) parts.push_back(&in);
    if (parts.empty()) continue;  // an optional input nobody fed
    Shape shape = parts[0]->shape;
    Tensor joined;
    if (parts.size() == 1) {
      HEARTH_ASSIGN_OR_RETURN(joined, parts[0]->data.reshaped(shape));
    } else {
      shape[0] = total;
      joined = Tensor(spec.dtype, shape);
      char* dst = static_cast<char*>(joined.raw_data());
      for (const InferInput* p : parts) {
        std::memcpy(dst, p->data.raw_data(), p->data.nbytes());
        dst += p->data.nbytes();
      }
    }
    if (!spec.reshape.empty()) {
      Shape target;
      if (max_batch_size_ > 0) target.push_back(shape[0]);
      target.insert(target.end(), spec.reshape.begin(), spec.reshape.end());
      HEARTH_ASSIGN_OR_RETURN(joined, joined.reshaped(target));
    }
    feeds.emplace_back(spec.name, std::move(joined));
  }
  return feeds;
}

Result<std::vector<InferResponse>> ModelVersion::scatter_outputs(const std::vector<Job>& batch,
                                                                 std::vector<Tensor> results) const {
  std::vector<InferResponse> responses(batch.size());
  const auto& infos = sessions_[0]->outputs();
  for (size_t b = 0; b < batch.size(); ++b) {
    responses[b].model_name = name_;
    responses[b].model_version = std::to_string(version_);
    responses[b].id = batch[b].request.id;
  }
  int64_t total = 0;
  for (const Job& j : batch) total += j.batch;
  for (size_t o = 0; o < infos.size() && o < results.size(); ++o) {
    const std::string& out_name = infos[o].name;
    const TensorSpec* spec = nullptr;
    for (const TensorSpec& s : outputs_)
      if (s.name == out_name) spec = &s;
    if (spec == nullptr) continue;  // not exposed by the config
    std::string datatype = kserve_datatype(results[o].dtype());
    if (datatype.empty())
      return unimplemented("output '", out_name, "' has type ", dtype_name(results[o].dtype()), " which KServe lacks");
    auto holder = std::make_shared<Tensor>(std::move(results[o]));
    const Tensor& full = *holder;
    if (batch.size() > 1 && (full.rank() == 0 || full.dim(0) != total))
      return internal_error("output '", out_name, "' has shape ", shape_str(full.shape()),
                            " whose leading dim is not the batch size ", total);
    const size_t row_bytes = full.rank() > 0 && full.dim(0) > 0 ? full.nbytes() / static_cast<size_t>(full.dim(0)) : 0;
    int64_t row = 0;
    for (size_t b = 0; b < batch.size(); ++b) {
      const Job& job = batch[b];
      bool wanted = job.request.requested_outputs.empty();
      for (const std::string& r : job.request.requested_outputs) wanted = wanted || r == out_name;
      Shape shape = full.shape();
      if (batch.size() > 1) shape[0] = job.batch;
      if (!spec->reshape.empty()) {  // the model's dims back to the config's dims
        Shape target;
        if (max_batch_size_ > 0) target.push_back(shape.empty() ? 1 : shape[0]);
        target.insert(target.end(), spec->dims.begin(), spec->dims.end());
        if (std::find(spec->dims.begin(), spec->dims.end(), -1) == spec->dims.end()) shape = target;
      }
      if (wanted) {
        Tensor slice = batch.size() == 1
                           ? Tensor::view(full.dtype(), shape, holder, const_cast<void*>(full.raw_data()))
                           : Tensor::view(full.dtype(), shape, holder,
                                          static_cast<char*>(const_cast<void*>(full.raw_data())) + row * row_bytes);
        responses[b].outputs.push_back({out_name, datatype, std::move(slice)});
      }
      row += job.batch;
    }
  }
  return responses;
}

void ModelVersion::execute(Session& session, std::vector<Job>& batch) {
  const auto start = Clock::now();
  int64_t total = 0;
  for (Job& j : batch) {
    total += j.batch;
    stats_->queue.add(elapsed_ns(j.received, start));
    if (metrics_) {
      double us = static_cast<double>(elapsed_ns(j.received, start)) / 1000.0;
      inc(metrics_->queue_us, us);
      if (metrics_->queue_hist) metrics_->queue_hist->observe(us);
    }
  }
  auto feeds = gather_inputs(batch, total);
  const auto inputs_done = Clock::now();
  Result<std::vector<Tensor>> results = feeds.ok() ? session.run(*feeds) : Result<std::vector<Tensor>>(feeds.status());
  const auto infer_done = Clock::now();
  Result<std::vector<InferResponse>> responses =
      results.ok() ? scatter_outputs(batch, std::move(results).value()) : Result<std::vector<InferResponse>>(results.status());
  const auto end = Clock::now();

  const uint64_t in_ns = elapsed_ns(start, inputs_done), inf_ns = elapsed_ns(inputs_done, infer_done),
                 out_ns = elapsed_ns(infer_done, end);
  stats_->execution_count.fetch_add(1, std::memory_order_relaxed);
  stats_->last_inference_ms.store(now_ms_since_epoch(), std::memory_order_relaxed);
  if (responses.ok()) {
    const auto n = static_cast<uint64_t>(batch.size());
    stats_->inference_count.fetch_add(static_cast<uint64_t>(total), std::memory_order_relaxed);
    stats_->compute_input.add(in_ns, n);
    stats_->compute_infer.add(inf_ns, n);
    stats_->compute_output.add(out_ns, n);
    std::lock_guard<std::mutex> lock(stats_->batch_mu);
    BatchStatistics& bs = stats_->batches[static_cast<uint64_t>(total)];
    bs.batch_size = static_cast<uint64_t>(total);
    bs.compute_input.count++, bs.compute_input.ns += in_ns;
    bs.compute_infer.count++, bs.compute_infer.ns += inf_ns;
    bs.compute_output.count++, bs.compute_output.ns += out_ns;
  }
  if (metrics_) {
    inc(metrics_->exec_count);
    if (metrics_->batch_hist) metrics_->batch_hist->observe(static_cast<double>(total));
    if (responses.ok()) {
      inc(metrics_->inference_count, static_cast<double>(total));
      inc(metrics_->compute_input_us, in_ns / 1000.0 * batch.size());
      inc(metrics_->compute_infer_us, inf_ns / 1000.0 * batch.size());
      inc(metrics_->compute_output_us, out_ns / 1000.0 * batch.size());
      if (metrics_->compute_hist) metrics_->compute_hist->observe(elapsed_ns(start, end) / 1000.0);
    }
  }
  for (size_t b = 0; b < batch.size(); ++b) {
    Job& job = batch[b];
    if (!responses.ok()) {
      fail(job, responses.status(), "BACKEND");
      continue;
    }
    const uint64_t request_ns = elapsed_ns(job.received, Clock::now());
    stats_->success.add(request_ns);
    if (metrics_) {
      inc(metrics_->success);
      inc(metrics_->request_us, request_ns / 1000.0);
      if (metrics_->request_hist) metrics_->request_hist->observe(request_ns / 1000.0);
    }
    InferCallback done = std::move(job.done);
    done(std::move((*responses)[b]));
  }
}

size_t ModelVersion::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

void ModelVersion::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : workers_)
    if (t.joinable()) t.join();
  workers_.clear();
}

ModelVersion::~ModelVersion() { stop(); }

}  // namespace hearth::serving
