// ModelVersion: one loaded version of a model, ready to take traffic: its instances
// (one Session each), its completed config, its statistics and metrics, and the
// scheduler that decides when its requests run (scheduler.h; today a
// DynamicBatchScheduler). The version validates a request against its config and
// hands it to the scheduler; the scheduler calls back run_batch() to run requests
// on an instance: inputs are concatenated along dim 0, the model runs once, and
// each request gets its slice of the outputs.
// Thread safety: every public method may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model_config.pb.h"
#include "runtime/session.h"
#include "serving/inference.h"
#include "serving/scheduler.h"
#include "serving/server.h"

namespace hearth::telemetry {
class Registry;
}

namespace hearth::serving {

class DynamicBatchScheduler;

// Everything needed to load one version.
struct VersionSpec {
  std::string name;
  int64_t version = 0;
  std::string model_file;  // canonical path of the .onnx file (or of the package)
  // Decrypted model bytes when the version is an encrypted package (or a
  // signature-checked file); the plaintext lives only there, in memory.
  std::string_view model_bytes;  // data() == nullptr: load model_file from disk
  // The package's external-data files, by relative name (same lifetime rules).
  const std::map<std::string, std::string_view>* external_files = nullptr;
  // With model_bytes of a plain (verified) model: its external data folder.
  std::string external_base_dir;
  inference::ModelConfig config;  // checked (check_model_config), not yet completed
  std::string config_file;        // for messages ("mlp/config.pbtxt" or "mlp (derived config)")
  int cores = 0;                  // cores for this version's instances; 0 = every core
  size_t default_max_queue_size = 1024;     // when the config sets none (0)
  telemetry::Registry* registry = nullptr;  // may be null (no metrics)
  size_t max_tensor_bytes = 0;  // server defaults; config parameters of the same names win
  size_t max_memory_bytes = 0;
  // No config.pbtxt: Triton's auto-complete of batching with this max_batch_size
  // (repository::autocomplete_batching); 0 leaves max_batch_size 0.
  bool derived_config = false;
  int64_t default_max_batch_size = 0;
};

// The engine options a version's instances use: intra-op threads and the limits
// against hostile models (server defaults, config.pbtxt parameters win).
SessionOptions version_session_options(const VersionSpec& spec);

class ModelVersion final : private BatchRunner {
 public:
  // A warm-up run faster than this lets requests run on the caller's thread.
  static constexpr int64_t kInlineMaxMicros = 1000;

  // Loads every instance, completes the config from the model, warms each
  // instance up (zeros, batch 1 and each preferred size) and starts the scheduler.
  static Result<std::shared_ptr<ModelVersion>> load(VersionSpec spec);
  ~ModelVersion() override;  // stop()
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

  // Validates, sets the queue deadline, and hands the request to the scheduler;
  // `done` runs exactly once (see server.h). `allow_inline` false keeps a fast model
  // from running the request on the caller's thread (a release's shadow copies and
  // retries, submitted from another version's answer callback).
  void submit(InferRequest request, InferCallback done, bool allow_inline = true);

  ModelStatistics statistics() const;
  size_t pending() const;

  // Rejects new requests, drains the queue, stops the workers. Idempotent.
  void stop();

 private:
  struct TensorSpec;
  struct Stats;
  struct Metrics;

  ModelVersion();
  Status load_instances(const VersionSpec& spec);
  Status describe_tensors();
  void attach_metrics(telemetry::Registry& registry);
  Status start_scheduler(const VersionSpec& spec);
  // The slowest instance's warm-up run in microseconds (0 when it failed).
  int64_t warm_up(Session& session);

  // BatchRunner
  size_t instance_count() const override { return sessions_.size(); }
  void run_batch(size_t instance, std::vector<ScheduledRequest>& batch) override;
  void fail(ScheduledRequest& request, const Status& status, FailReason reason) override;

  Result<std::vector<std::pair<std::string, Tensor>>> gather_inputs(const std::vector<ScheduledRequest>& batch,
                                                                    int64_t total) const;
  Result<std::vector<InferResponse>> scatter_outputs(const std::vector<ScheduledRequest>& batch,
                                                     std::vector<Tensor> results) const;
  void record_run(const std::vector<ScheduledRequest>& batch, int64_t total, bool ok, Clock::time_point start,
                  Clock::time_point inputs_done, Clock::time_point infer_done, Clock::time_point end);

  std::string name_;
  int64_t version_ = 0;
  inference::ModelConfig config_;
  std::vector<TensorSpec> inputs_;
  std::vector<TensorSpec> outputs_;
  int max_batch_size_ = 0;
  uint64_t default_timeout_us_ = 0;
  bool allow_timeout_override_ = false;
  std::vector<std::unique_ptr<Session>> sessions_;
  std::unique_ptr<Stats> stats_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<DynamicBatchScheduler> scheduler_;
};

}  // namespace hearth::serving
