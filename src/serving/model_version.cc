// ModelVersion loading, warm-up, request validation and statistics. The
// queue and workers are in scheduler.cc.
#include <algorithm>
#include <latch>
#include <set>

#include "serving/model_config.h"
#include "serving/scheduler_internal.h"
#include "telemetry/log.h"

namespace hearth::serving {

namespace {

std::shared_ptr<telemetry::Counter> failure_counter(telemetry::Registry& r, const telemetry::Labels& labels,
                                                    const char* reason) {
  telemetry::Labels l = labels;
  l.emplace_back("reason", reason);
  return r.counter("hearth_inference_request_failure_total",
                   "Failed inference requests by reason (REJECTED, CANCELED, TIMEOUT, BACKEND, OTHER)", l);
}

}  // namespace

Result<std::shared_ptr<ModelVersion>> ModelVersion::load(VersionSpec spec) {
  std::shared_ptr<ModelVersion> v(new ModelVersion());
  v->name_ = spec.name;
  v->version_ = spec.version;
  v->stats_ = std::make_unique<Stats>();
  HEARTH_RETURN_IF_ERROR(v->start_instances(spec));
  return v;
}

SessionOptions version_session_options(const VersionSpec& spec) {
  const auto& params = spec.config.parameters();
  SessionOptions options;
  options.intra_op_threads = threads_per_instance(instance_count(spec.config), spec.cores);
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

Status ModelVersion::start_instances(VersionSpec& spec) {
  const int instances = instance_count(spec.config);
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
  HEARTH_RETURN_IF_ERROR(complete_model_config(config_, *sessions_[0], spec.config_file));
  config_.set_name(name_);

  // Flatten the config for the hot path.
  for (const auto& in : config_.input()) {
    TensorSpec t;
    t.name = in.name();
    HEARTH_ASSIGN_OR_RETURN(t.dtype, dtype_from_config(in.data_type()));
    t.datatype = kserve_datatype(t.dtype);
    t.dims.assign(in.dims().begin(), in.dims().end());
    if (in.has_reshape()) t.reshape.assign(in.reshape().shape().begin(), in.reshape().shape().end());
    t.optional = in.optional();
    inputs_.push_back(std::move(t));
  }
  for (const auto& out : config_.output()) {
    TensorSpec t;
    t.name = out.name();
    HEARTH_ASSIGN_OR_RETURN(t.dtype, dtype_from_config(out.data_type()));
    t.datatype = kserve_datatype(t.dtype);
    t.dims.assign(out.dims().begin(), out.dims().end());
    if (out.has_reshape()) t.reshape.assign(out.reshape().shape().begin(), out.reshape().shape().end());
    outputs_.push_back(std::move(t));
  }
  max_batch_size_ = config_.max_batch_size();
  dynamic_batching_ = config_.has_dynamic_batching();
  if (dynamic_batching_) {
    const auto& db = config_.dynamic_batching();
    preferred_.assign(db.preferred_batch_size().begin(), db.preferred_batch_size().end());
    std::sort(preferred_.begin(), preferred_.end());
    max_delay_ = std::chrono::microseconds(db.max_queue_delay_microseconds());
    const auto& policy = db.default_queue_policy();
    max_queue_size_ = policy.max_queue_size() > 0 ? policy.max_queue_size() : spec.default_max_queue_size;
    default_timeout_us_ = policy.default_timeout_microseconds();
    allow_timeout_override_ = policy.allow_timeout_override();
  } else {
    max_queue_size_ = spec.default_max_queue_size;
  }

  if (spec.registry != nullptr) {
    telemetry::Registry& r = *spec.registry;
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

  // Each worker warms its instance up on its own thread (OpenMP teams are
  // per thread), and the version is ready only once all of them have.
  std::latch warmed(static_cast<std::ptrdiff_t>(sessions_.size()));
  std::vector<int64_t> warm_us(sessions_.size(), 0);
  in_use_.assign(sessions_.size(), 0);
  for (size_t i = 0; i < sessions_.size(); ++i) {
    workers_.emplace_back([this, i, &warmed, &warm_us] {
      warm_us[i] = warm_up(*sessions_[i]);
      warmed.count_down();
      worker(i);
    });
  }
  warmed.wait();
  const int64_t slowest = *std::max_element(warm_us.begin(), warm_us.end());
  run_inline_ = slowest > 0 && slowest < kInlineMaxMicros && max_delay_.count() == 0;
  telemetry::log_info("model_version_loaded",
                      {telemetry::field("model", name_), telemetry::field("version", version_),
                       telemetry::field("instances", static_cast<int64_t>(sessions_.size())),
                       telemetry::field("intra_op_threads", static_cast<int64_t>(options.intra_op_threads)),
                       telemetry::field("max_batch_size", static_cast<int64_t>(max_batch_size_)),
                       telemetry::field("dynamic_batching", dynamic_batching_),
                       telemetry::field("run_inline", run_inline_)});
  return ok_status();
}

// Runs an instance on zeros (variable dims as 1) at batch 1 and, for a
// batching model, at each preferred size and the maximum, so first requests
// of those sizes do not pay for first-run allocation and kernel setup. A
// model whose variable dims cannot be 1 fails here; that is logged, not fatal.
int64_t ModelVersion::warm_up(Session& session) {
  std::vector<int64_t> batches{1};
  if (max_batch_size_ > 1) {
    batches.insert(batches.end(), preferred_.begin(), preferred_.end());
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
