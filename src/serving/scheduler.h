// ModelVersion: one loaded version of a model, ready to take traffic. It owns
// the version's instances (one Session each), its bounded request queue, the
// dynamic batcher and one worker thread per instance.
//
//   submit() validates a request against the completed config and queues it
//   (or answers at once: bad request, full queue, stopping). A worker takes
//   the oldest request and, with dynamic batching, every queued request whose
//   non-batch dims match, up to max_batch_size: at once when a preferred
//   batch size (or the maximum) is reached, else when the oldest request has
//   waited max_queue_delay_microseconds. Inputs are concatenated along dim 0,
//   the model runs once, and each request gets its slice of the outputs.
//   Requests whose timeout passed or whose client went away are answered
//   DeadlineExceeded / Cancelled without running.
//   Fast path: when a warm-up run of the model took under kInlineMaxMicros,
//   the queue is empty, an instance is idle and no batching delay is
//   configured, submit() runs the request at once on the caller's thread
//   (what the worker would do, minus two thread wake-ups).
//   stop() rejects new requests, runs every queued one, and joins the workers:
//   a retired version drains before it unloads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "model_config.pb.h"
#include "runtime/session.h"
#include "serving/inference.h"
#include "serving/server.h"

namespace hearth::telemetry {
class Registry;
class Counter;
class Gauge;
class Histogram;
}  // namespace hearth::telemetry

namespace hearth::serving {

// Everything needed to load one version.
struct VersionSpec {
  std::string name;
  int64_t version = 0;
  std::string model_file;            // absolute path of the .onnx file (or of the package)
  // Decrypted model bytes when the version is an encrypted package; the
  // plaintext lives only here, in memory, and is wiped after the load.
  std::string_view model_bytes;  // data() == nullptr: load model_file from disk
  // The package's external-data files, by relative name (same lifetime rules).
  const std::map<std::string, std::string_view>* external_files = nullptr;
  // With model_bytes of a plain (verified) model: its external data folder.
  std::string external_base_dir;
  inference::ModelConfig config;     // checked (check_model_config), not yet completed
  std::string config_file;           // for messages ("mlp/config.pbtxt" or "mlp (derived config)")
  int cores = 0;                     // cores for this version's instances; 0 = every core
  size_t default_max_queue_size = 1024;  // when the config sets none (0)
  telemetry::Registry* registry = nullptr;  // may be null (no metrics)
  size_t max_tensor_bytes = 0;  // server defaults; config parameters of the same names win
  size_t max_memory_bytes = 0;
};

// The engine options a version's instances use: intra-op threads and the limits
// against hostile models (server defaults, config.pbtxt parameters win).
SessionOptions version_session_options(const VersionSpec& spec);

class ModelVersion {
 public:
  static constexpr int64_t kInlineMaxMicros = 1000;

  // Loads every instance, completes the config from the model, warms each
  // instance up with one zero-filled request, and starts the workers.
  static Result<std::shared_ptr<ModelVersion>> load(VersionSpec spec);
  ~ModelVersion();  // stop()
  ModelVersion(const ModelVersion&) = delete;
  ModelVersion& operator=(const ModelVersion&) = delete;

  const std::string& name() const { return name_; }
  int64_t version() const { return version_; }
  const inference::ModelConfig& config() const { return config_; }

  // Checks `request` against the config: inputs known, each once, every
  // required one fed, datatypes equal, shapes of the config's rank (+ batch
  // dim in 1..max_batch_size), fixed dims equal, data length = shape product,
  // requested outputs known. InvalidArgument naming the input otherwise.
  Status validate(const InferRequest& request) const;

  // Validates and queues; `done` runs exactly once (see server.h).
  void submit(InferRequest request, InferCallback done);

  ModelStatistics statistics() const;
  size_t pending() const;

  // Rejects new requests, drains the queue, joins the workers. Idempotent.
  void stop();

 private:
  struct Job;
  struct TensorSpec;
  struct Stats;
  struct Metrics;

  ModelVersion() = default;
  Status start_instances(VersionSpec& spec);
  // Returns the slowest warm-up run in microseconds (0 when it failed).
  int64_t warm_up(Session& session);
  void worker(size_t instance);
  bool next_batch(size_t instance, std::vector<Job>& batch);
  bool try_run_inline(Job& job);
  void execute(Session& session, std::vector<Job>& batch);
  Result<std::vector<std::pair<std::string, Tensor>>> gather_inputs(const std::vector<Job>& batch, int64_t total) const;
  Result<std::vector<InferResponse>> scatter_outputs(const std::vector<Job>& batch, std::vector<Tensor> results) const;
  void fail(Job& job, const Status& status, const char* reason);
  bool batchable(const Job& a, const Job& b) const;

  std::string name_;
  int64_t version_ = 0;
  inference::ModelConfig config_;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
  int max_batch_size_ = 0;
  bool dynamic_batching_ = false;
  std::vector<int64_t> preferred_;  // ascending
  std::chrono::microseconds max_delay_{0};
  size_t max_queue_size_ = 1024;
  uint64_t default_timeout_us_ = 0;
  bool allow_timeout_override_ = false;

  std::vector<std::unique_ptr<Session>> sessions_;
  std::vector<std::thread> workers_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  // Per instance: executing (by its worker or inline). Wake-ups rely on who may
  // set and clear it: only the instance's own worker, which looks at the queue
  // again before it waits, or an inline run, which notifies on release when
  // something queued or the version is stopping. submit() notifies only while
  // some instance is free. Anything else that claims an instance must notify
  // when it lets go, or a queued request can wait for nobody.
  std::vector<char> in_use_;
  bool stopping_ = false;
  // Small models run a request on the caller's thread when the queue is empty
  // and an instance is idle, saving two thread hand-offs (set at warm-up).
  bool run_inline_ = false;
  std::unique_ptr<Stats> stats_;
  std::unique_ptr<Metrics> metrics_;
};

}  // namespace hearth::serving
