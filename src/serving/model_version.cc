// ModelVersion: loading, warm-up, request validation, running a batch on an
// instance, statistics and metrics (see model_version.h). When requests run is
// the scheduler's business (dynamic_batch_scheduler.cc).
#include "serving/model_version.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <set>

#include "repository/model_config.h"
#include "serving/dynamic_batch_scheduler.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"

namespace hearth::serving {

using repository::complete_model_config;
using repository::dtype_from_config;
using repository::threads_per_instance;

struct ModelVersion::TensorSpec {
  std::string name;
  std::string datatype;          // KServe name
  DataType dtype = DataType::kUndefined;
  std::vector<int64_t> dims;     // config dims, batch dim excluded; -1 = any
  std::vector<int64_t> reshape;  // empty = none; else the model's dims (batch excluded)
  bool optional = false;
};

namespace {

struct AtomicDuration {
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> ns{0};
  void add(uint64_t n, uint64_t c = 1) {
    count.fetch_add(c, std::memory_order_relaxed);
    ns.fetch_add(n, std::memory_order_relaxed);
  }
  StatDuration get() const { return {count.load(std::memory_order_relaxed), ns.load(std::memory_order_relaxed)}; }
};

uint64_t elapsed_ns(Clock::time_point from, Clock::time_point to) {
  auto d = std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count();
  return d > 0 ? static_cast<uint64_t>(d) : 0;
}

uint64_t now_ms_since_epoch() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

template <typename T>
void inc(const std::shared_ptr<T>& metric, double v = 1.0) {
  if (metric) metric->add(v);
}

std::shared_ptr<telemetry::Counter> failure_counter(telemetry::Registry& r, const telemetry::Labels& labels,
                                                    const char* reason) {
  telemetry::Labels l = labels;
  l.emplace_back("reason", reason);
  return r.counter("hearth_inference_request_failure_total",
                   "Failed inference requests by reason (REJECTED, CANCELED, TIMEOUT, BACKEND, OTHER)", l);
}

}  // namespace

// Triton's statistics extension, cumulative since the version loaded.
struct ModelVersion::Stats {
  std::atomic<uint64_t> last_inference_ms{0};
  std::atomic<uint64_t> inference_count{0};
  std::atomic<uint64_t> execution_count{0};
  AtomicDuration success, fail, queue, compute_input, compute_infer, compute_output;
  std::mutex batch_mu;
  std::map<uint64_t, BatchStatistics> batches;
};

// Prometheus series of one version (labels model, version). Null pointers when
// the version has no registry.
struct ModelVersion::Metrics {
  std::shared_ptr<telemetry::Counter> success, inference_count, exec_count;
  std::shared_ptr<telemetry::Counter> fail_rejected, fail_canceled, fail_timeout, fail_backend, fail_other;
  std::shared_ptr<telemetry::Counter> request_us, queue_us, compute_input_us, compute_infer_us, compute_output_us;
  std::shared_ptr<telemetry::Gauge> pending;
  std::shared_ptr<telemetry::Histogram> request_hist, queue_hist, compute_hist, batch_hist;
};

SessionOptions version_session_options(const VersionSpec& spec) {
  const auto& params = spec.config.parameters();
  SessionOptions options;
  options.intra_op_threads = threads_per_instance(repository::instance_count(spec.config), spec.cores);
  // Parameters were checked to be integers in range (check_model_config).
  if (auto p = params.find("intra_op_thread_count"); p != params.end())
    options.intra_op_threads = std::max(1, std::stoi(p->second.string_value()));
  // Limits against hostile models and inputs: the server's defaults unless the config sets them.
  options.max_tensor_bytes = spec.max_tensor_bytes;
  options.max_memory_bytes = spec.max_memory_bytes;
  if (auto p = params.find("max_tensor_bytes"); p != params.end()) options.max_tensor_bytes = std::stoull(p->second.string_value());
  if (auto p = params.find("max_memory_bytes"); p != params.end()) options.max_memory_bytes = std::stoull(p->second.string_value());
  return options;
}

ModelVersion::ModelVersion() : stats_(std::make_unique<Stats>()) {}

ModelVersion::~ModelVersion() { stop(); }

Result<std::shared_ptr<ModelVersion>> ModelVersion::load(VersionSpec spec) {
  std::shared_ptr<ModelVersion> v(new ModelVersion());
  v->name_ = spec.name;
  v->version_ = spec.version;
  HEARTH_RETURN_IF_ERROR(v->load_instances(spec));
  HEARTH_RETURN_IF_ERROR(v->describe_tensors());
  if (spec.registry != nullptr) v->attach_metrics(*spec.registry);
  HEARTH_RETURN_IF_ERROR(v->start_scheduler(spec));
  return v;
}

Status ModelVersion::load_instances(const VersionSpec& spec) {
  const int instances = repository::instance_count(spec.config);
  const SessionOptions options = version_session_options(spec);
  for (int i = 0; i < instances; ++i) {
    // An encrypted package's model and external data come from memory; it
    // may not refer to files on disk.
    auto session = spec.model_bytes.data() != nullptr
                       ? Session::load_bytes(spec.model_bytes.data(), spec.model_bytes.size(),
                                             ExternalData{spec.external_base_dir, spec.external_files}, options)
                       : Session::load_file(spec.model_file, options);
    if (!session.ok()) return session.status();
    sessions_.push_back(std::move(session).value());
  }
  config_ = spec.config;
  if (spec.derived_config) repository::autocomplete_batching(config_, *sessions_[0], spec.default_max_batch_size);
  HEARTH_RETURN_IF_ERROR(complete_model_config(config_, *sessions_[0], spec.config_file));
  config_.set_name(name_);
  max_batch_size_ = config_.max_batch_size();
  return ok_status();
}

// Flattens the completed config's tensors for the hot path.
Status ModelVersion::describe_tensors() {
  auto spec_of = [](const auto& t) -> Result<TensorSpec> {
    TensorSpec s;
    s.name = t.name();
    HEARTH_ASSIGN_OR_RETURN(s.dtype, dtype_from_config(t.data_type()));
    s.datatype = kserve_datatype(s.dtype);
    s.dims.assign(t.dims().begin(), t.dims().end());
    if (t.has_reshape()) s.reshape.assign(t.reshape().shape().begin(), t.reshape().shape().end());
    return s;
  };
  for (const auto& in : config_.input()) {
    HEARTH_ASSIGN_OR_RETURN(TensorSpec s, spec_of(in));
    s.optional = in.optional();
    inputs_.push_back(std::move(s));
  }
  for (const auto& out : config_.output()) {
    HEARTH_ASSIGN_OR_RETURN(TensorSpec s, spec_of(out));
    outputs_.push_back(std::move(s));
  }
  return ok_status();
}

void ModelVersion::attach_metrics(telemetry::Registry& r) {
  telemetry::Labels l{{"model", name_}, {"version", std::to_string(version_)}};
  metrics_ = std::make_unique<Metrics>();
  Metrics& m = *metrics_;
  m.success = r.counter("hearth_inference_request_success_total", "Successful inference requests", l);
  m.fail_rejected = failure_counter(r, l, "REJECTED");
  m.fail_canceled = failure_counter(r, l, "CANCELED");
  m.fail_timeout = failure_counter(r, l, "TIMEOUT");
  m.fail_backend = failure_counter(r, l, "BACKEND");
  m.fail_other = failure_counter(r, l, "OTHER");
  m.inference_count = r.counter("hearth_inference_count_total", "Inferences performed (batch items)", l);
  m.exec_count = r.counter("hearth_inference_exec_count_total", "Model executions (a batch counts once)", l);
  m.request_us = r.counter("hearth_inference_request_duration_us_total",
                           "Cumulative end-to-end request time in the server, microseconds", l);
  m.queue_us = r.counter("hearth_inference_queue_duration_us_total", "Cumulative time requests waited in the queue, microseconds", l);
  m.compute_input_us = r.counter("hearth_inference_compute_input_duration_us_total",
                                 "Cumulative time preparing inputs (batch assembly), microseconds", l);
  m.compute_infer_us = r.counter("hearth_inference_compute_infer_duration_us_total",
                                 "Cumulative time running the model, microseconds", l);
  m.compute_output_us = r.counter("hearth_inference_compute_output_duration_us_total",
                                  "Cumulative time splitting outputs, microseconds", l);
  m.pending = r.gauge("hearth_inference_pending_request_count", "Requests waiting in the queue", l);
  m.request_hist = r.histogram("hearth_inference_request_duration_us", "Request duration in the server, microseconds",
                               telemetry::latency_buckets_us(), l);
  m.queue_hist = r.histogram("hearth_inference_queue_duration_us", "Queue wait per request, microseconds",
                             telemetry::latency_buckets_us(), l);
  m.compute_hist = r.histogram("hearth_inference_compute_duration_us", "Execution time per batch, microseconds",
                               telemetry::latency_buckets_us(), l);
  m.batch_hist = r.histogram("hearth_inference_batch_size", "Batch size per execution",
                             telemetry::batch_size_buckets(), l);
}

Status ModelVersion::start_scheduler(const VersionSpec& spec) {
  BatchingOptions b;
  b.what = str_cat("model '", name_, "' version ", version_);
  b.max_batch_size = max_batch_size_;
  b.dynamic_batching = config_.has_dynamic_batching();
  b.max_queue_size = spec.default_max_queue_size;
  if (b.dynamic_batching) {
    const auto& db = config_.dynamic_batching();
    b.preferred.assign(db.preferred_batch_size().begin(), db.preferred_batch_size().end());
    std::sort(b.preferred.begin(), b.preferred.end());
    b.max_delay = std::chrono::microseconds(db.max_queue_delay_microseconds());
    const auto& policy = db.default_queue_policy();
    if (policy.max_queue_size() > 0) b.max_queue_size = policy.max_queue_size();
    default_timeout_us_ = policy.default_timeout_microseconds();
    allow_timeout_override_ = policy.allow_timeout_override();
  }
  // Each instance warms up on its own worker thread (OpenMP teams are per thread),
  // and the version is ready only once all of them have.
  std::vector<int64_t> warm_us(sessions_.size(), 0);
  BatchRunner& runner = *this;
  scheduler_ = std::make_unique<DynamicBatchScheduler>(runner, b, metrics_ ? metrics_->pending : nullptr);
  scheduler_->start([&](size_t i) { warm_us[i] = warm_up(*sessions_[i]); });
  const int64_t slowest = *std::max_element(warm_us.begin(), warm_us.end());
  const bool run_inline = slowest > 0 && slowest < kInlineMaxMicros && b.max_delay.count() == 0;
  scheduler_->allow_inline(run_inline);
  telemetry::log_info("model_version_loaded",
                      {telemetry::field("model", name_), telemetry::field("version", version_),
                       telemetry::field("instances", static_cast<int64_t>(sessions_.size())),
                       telemetry::field("intra_op_threads", static_cast<int64_t>(sessions_[0]->num_threads())),
                       telemetry::field("max_batch_size", static_cast<int64_t>(max_batch_size_)),
                       telemetry::field("dynamic_batching", b.dynamic_batching),
                       telemetry::field("run_inline", run_inline)});
  return ok_status();
}

// Runs an instance on zeros (variable dims as 1) at batch 1 and, for a
// batching model, at each preferred size and the maximum, so first requests
// of those sizes do not pay for first-run allocation and kernel setup. A
// model whose variable dims cannot be 1 fails here; that is logged, not fatal.
int64_t ModelVersion::warm_up(Session& session) {
  std::vector<int64_t> batches{1};
  if (max_batch_size_ > 1) {
    if (config_.has_dynamic_batching()) {
      const auto& preferred = config_.dynamic_batching().preferred_batch_size();
      batches.insert(batches.end(), preferred.begin(), preferred.end());
    }
    batches.push_back(max_batch_size_);
  }
  std::sort(batches.begin(), batches.end());
  batches.erase(std::unique(batches.begin(), batches.end()), batches.end());
  int64_t batch1_us = 0;
  for (int64_t batch : batches) {
    std::vector<std::pair<std::string, Tensor>> feeds;
    for (const TensorSpec& spec : inputs_) {
      if (spec.optional) continue;
      Shape shape;
      if (max_batch_size_ > 0) shape.push_back(batch);
      for (int64_t d : spec.reshape.empty() ? spec.dims : spec.reshape) shape.push_back(d < 0 ? 1 : d);
      feeds.emplace_back(spec.name, Tensor::zeros(spec.dtype, shape));
    }
    // Batch 1 runs twice: the second, warm run says how long a request takes.
    for (int round = 0; round < (batch == 1 ? 2 : 1); ++round) {
      const auto start = Clock::now();
      auto result = session.run(feeds);
      if (!result.ok()) {
        telemetry::log_warn("model_warmup_failed",
                            {telemetry::field("model", name_), telemetry::field("version", version_),
                             telemetry::field("batch", batch), telemetry::field("error", result.status().message())});
        return 0;
      }
      if (batch == 1) batch1_us = static_cast<int64_t>(elapsed_ns(start, Clock::now()) / 1000);
    }
  }
  return batch1_us;
}

Status ModelVersion::validate(const InferRequest& request) const {
  std::set<std::string_view> seen;
  for (const InferInput& in : request.inputs) {
    const TensorSpec* spec = nullptr;
    for (const TensorSpec& s : inputs_)
      if (s.name == in.name) spec = &s;
    if (spec == nullptr) return invalid_argument("unknown input '", in.name, "' for model '", name_, "'");
    if (!seen.insert(in.name).second) return invalid_argument("input '", in.name, "' is given twice");
    const std::string ctx = str_cat("input '", in.name, "'");
    if (in.datatype != spec->datatype)
      return invalid_argument(ctx, ": datatype ", in.datatype, " but the model expects ", spec->datatype);
    const size_t batch_dims = max_batch_size_ > 0 ? 1 : 0;
    if (in.shape.size() != spec->dims.size() + batch_dims) {
      std::vector<int64_t> want;
      if (batch_dims) want.push_back(-1);
      want.insert(want.end(), spec->dims.begin(), spec->dims.end());
      return invalid_argument(ctx, ": shape ", shape_str(in.shape), " has rank ", in.shape.size(),
                              " but the model expects ", shape_str(want));
    }
    for (int64_t d : in.shape)
      if (d < 0) return invalid_argument(ctx, ": shape ", shape_str(in.shape), " has a negative dim");
    if (batch_dims && (in.shape[0] < 1 || in.shape[0] > max_batch_size_))
      return invalid_argument(ctx, ": batch size ", in.shape[0], " is outside 1..", max_batch_size_,
                              " (max_batch_size of model '", name_, "')");
    for (size_t i = 0; i < spec->dims.size(); ++i) {
      if (spec->dims[i] >= 0 && spec->dims[i] != in.shape[i + batch_dims])
        return invalid_argument(ctx, ": shape ", shape_str(in.shape), " has ", in.shape[i + batch_dims], " at dim ",
                                i + batch_dims, " but the model expects ", spec->dims[i]);
    }
    int64_t want = 1, have = in.data.defined() ? in.data.numel() : 0;
    for (int64_t d : in.shape) {
      if (d != 0 && want > have / d + 1) {
        want = -1;
        break;
      }
      want *= d;
    }
    if (want != have)
      return invalid_argument(ctx, ": shape ", shape_str(in.shape), " needs ",
                              want < 0 ? std::string("more") : std::to_string(want), " elements but the data has ", have);
    if (!in.data.defined() || in.data.dtype() != spec->dtype)
      return internal_error(ctx, ": data was not decoded as ", spec->datatype);
  }
  for (const TensorSpec& s : inputs_)
    if (!s.optional && !seen.count(s.name)) return invalid_argument("missing input '", s.name, "'");
  if (max_batch_size_ > 0 && request.inputs.size() > 1) {
    for (const InferInput& in : request.inputs)
      if (in.shape[0] != request.inputs[0].shape[0])
        return invalid_argument("inputs disagree on the batch size: '", request.inputs[0].name, "' has ",
                                request.inputs[0].shape[0], ", '", in.name, "' has ", in.shape[0]);
  }
  for (const std::string& out : request.requested_outputs) {
    bool known = false;
    for (const TensorSpec& s : outputs_) known = known || s.name == out;
    if (!known) return invalid_argument("unknown output '", out, "' for model '", name_, "'");
  }
  return ok_status();
}

void ModelVersion::submit(InferRequest request, InferCallback done, bool allow_inline) {
  ScheduledRequest job;
  job.may_run_inline = allow_inline;
  job.received = Clock::now();
  job.done = std::move(done);
  Status valid = validate(request);
  if (!valid.ok()) {
    job.request = std::move(request);
    return fail(job, valid, FailReason::kOther);
  }
  job.batch = max_batch_size_ > 0 && !request.inputs.empty() ? request.inputs[0].shape[0] : 1;
  uint64_t timeout = default_timeout_us_;
  // A request may set its own timeout when the model has no default, or
  // shorten the default when the queue policy allows overrides (Triton's rule).
  if (request.timeout_us > 0 && (timeout == 0 || (allow_timeout_override_ && request.timeout_us < timeout)))
    timeout = request.timeout_us;
  if (timeout > 0) job.deadline = job.received + std::chrono::microseconds(timeout);
  job.request = std::move(request);
  scheduler_->enqueue(std::move(job));
}

void ModelVersion::fail(ScheduledRequest& request, const Status& status, FailReason reason) {
  stats_->fail.add(elapsed_ns(request.received, Clock::now()));
  if (metrics_) {
    switch (reason) {
      case FailReason::kRejected: inc(metrics_->fail_rejected); break;
      case FailReason::kCanceled: inc(metrics_->fail_canceled); break;
      case FailReason::kTimeout: inc(metrics_->fail_timeout); break;
      case FailReason::kBackend: inc(metrics_->fail_backend); break;
      case FailReason::kOther: inc(metrics_->fail_other); break;
    }
  }
  InferCallback done = std::move(request.done);
  done(status);
}

Result<std::vector<std::pair<std::string, Tensor>>> ModelVersion::gather_inputs(const std::vector<ScheduledRequest>& batch,
                                                                                 int64_t total) const {
  std::vector<std::pair<std::string, Tensor>> feeds;
  for (const TensorSpec& spec : inputs_) {
    std::vector<const InferInput*> parts;
    for (const ScheduledRequest& job : batch)
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

Result<std::vector<InferResponse>> ModelVersion::scatter_outputs(const std::vector<ScheduledRequest>& batch,
                                                                 std::vector<Tensor> results) const {
  std::vector<InferResponse> responses(batch.size());
  const auto& infos = sessions_[0]->outputs();
  for (size_t b = 0; b < batch.size(); ++b) {
    responses[b].model_name = name_;
    responses[b].model_version = std::to_string(version_);
    responses[b].id = batch[b].request.id;
  }
  int64_t total = 0;
  for (const ScheduledRequest& j : batch) total += j.batch;
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
      const ScheduledRequest& job = batch[b];
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

void ModelVersion::run_batch(size_t instance, std::vector<ScheduledRequest>& batch) {
  Session& session = *sessions_[instance];
  const auto start = Clock::now();
  int64_t total = 0;
  for (ScheduledRequest& r : batch) {
    total += r.batch;
    stats_->queue.add(elapsed_ns(r.received, start));
    if (metrics_) {
      double us = static_cast<double>(elapsed_ns(r.received, start)) / 1000.0;
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
  record_run(batch, total, responses.ok(), start, inputs_done, infer_done, Clock::now());
  for (size_t b = 0; b < batch.size(); ++b) {
    ScheduledRequest& r = batch[b];
    if (!responses.ok()) {
      fail(r, responses.status(), FailReason::kBackend);
      continue;
    }
    const uint64_t request_ns = elapsed_ns(r.received, Clock::now());
    stats_->success.add(request_ns);
    if (metrics_) {
      inc(metrics_->success);
      inc(metrics_->request_us, request_ns / 1000.0);
      if (metrics_->request_hist) metrics_->request_hist->observe(request_ns / 1000.0);
    }
    InferCallback done = std::move(r.done);
    done(std::move((*responses)[b]));
  }
}

// Statistics and metrics of one execution of `batch` (`total` items).
void ModelVersion::record_run(const std::vector<ScheduledRequest>& batch, int64_t total, bool ok,
                              Clock::time_point start, Clock::time_point inputs_done, Clock::time_point infer_done,
                              Clock::time_point end) {
  const uint64_t in_ns = elapsed_ns(start, inputs_done), inf_ns = elapsed_ns(inputs_done, infer_done),
                 out_ns = elapsed_ns(infer_done, end);
  stats_->execution_count.fetch_add(1, std::memory_order_relaxed);
  stats_->last_inference_ms.store(now_ms_since_epoch(), std::memory_order_relaxed);
  if (ok) {
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
  if (!metrics_) return;
  inc(metrics_->exec_count);
  if (metrics_->batch_hist) metrics_->batch_hist->observe(static_cast<double>(total));
  if (!ok) return;
  inc(metrics_->inference_count, static_cast<double>(total));
  inc(metrics_->compute_input_us, in_ns / 1000.0 * batch.size());
  inc(metrics_->compute_infer_us, inf_ns / 1000.0 * batch.size());
  inc(metrics_->compute_output_us, out_ns / 1000.0 * batch.size());
  if (metrics_->compute_hist) metrics_->compute_hist->observe(elapsed_ns(start, end) / 1000.0);
}

size_t ModelVersion::pending() const { return scheduler_ ? scheduler_->pending() : 0; }

void ModelVersion::stop() {
  if (scheduler_) scheduler_->stop();
}

ModelStatistics ModelVersion::statistics() const {
  ModelStatistics s;
  s.name = name_;
  s.version = std::to_string(version_);
  s.last_inference_ms = stats_->last_inference_ms.load(std::memory_order_relaxed);
  s.inference_count = stats_->inference_count.load(std::memory_order_relaxed);
  s.execution_count = stats_->execution_count.load(std::memory_order_relaxed);
  s.success = stats_->success.get();
  s.fail = stats_->fail.get();
  s.queue = stats_->queue.get();
  s.compute_input = stats_->compute_input.get();
  s.compute_infer = stats_->compute_infer.get();
  s.compute_output = stats_->compute_output.get();
  std::lock_guard<std::mutex> lock(stats_->batch_mu);
  for (const auto& kv : stats_->batches) s.batch_stats.push_back(kv.second);
  return s;
}

}  // namespace hearth::serving
