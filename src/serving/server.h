// InferenceServer: the protocol-neutral core of `hearth serve`. The REST and
// gRPC front ends decode their wire format into the structs of inference.h,
// call these methods, and encode what comes back, so both behave the same.
//
//   front end -> InferenceServer::infer_async -> the VersionRouter binds the
//   request to a version (version_router.h) -> that version's scheduler (bounded
//   queue, dynamic batcher, N instances) -> done(response) on a worker thread.
//
// Errors are Status codes the front ends map to their protocol:
//   InvalidArgument / Unimplemented  bad request (HTTP 400, gRPC INVALID_ARGUMENT)
//   NotFound                          unknown model or version (404, NOT_FOUND)
//   Unavailable                       model not ready, queue full, shutting down
//                                     (503 + Retry-After, UNAVAILABLE)
//   DeadlineExceeded                  request timed out in the queue (504 / 503, DEADLINE_EXCEEDED)
//   Cancelled                         the client went away
//   FailedPrecondition                load/unload outside explicit mode (400, FAILED_PRECONDITION)
// Thread safety: every method may be called from any thread at any time.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "model_config.pb.h"
#include "repository/model_repository.h"
#include "serving/inference.h"

namespace hearth::telemetry {
class Registry;
}
namespace hearth::security {
class KeyResolver;
class TrustedSigners;
}
namespace hearth::repository {
struct ModelUpload;
}

namespace hearth::serving {

enum class ModelControlMode { kNone, kPoll, kExplicit };

// Parses "none" | "poll" | "explicit" (Triton's --model-control-mode values).
Result<ModelControlMode> parse_model_control_mode(const std::string& text);

// Which loads run first in a confined child process (serving/trial_load.h): none,
// uploaded versions only, or every version (repository changes too).
enum class TrialLoadScope { kNone, kUploads, kAll };

struct TrialLoadOptions {
  TrialLoadScope scope = TrialLoadScope::kUploads;
  std::string executable;                 // the hearth binary (/proc/self/exe); "" turns trials off
  size_t memory_bytes = size_t{4} << 30;  // the child's address space, on top of twice the model's size
  int cpu_seconds = 120;                  // the child's CPU time
  int timeout_seconds = 300;              // wall clock, then SIGKILL
};

struct ServerOptions {
  std::string model_repository;
  ModelControlMode control_mode = ModelControlMode::kNone;
  // Explicit mode: models to load at start ("*" = every model). Ignored otherwise.
  std::vector<std::string> startup_models;
  int repository_poll_seconds = 15;  // poll mode: rescan period
  int total_threads = 0;             // cores for all instances' intra-op threads; 0 = every core
  // Per model, unless its config.pbtxt sets parameters max_tensor_bytes / max_memory_bytes:
  // the most bytes one tensor may take (0: half the machine's memory) and a run's tensors
  // together (0: no limit). See SessionOptions.
  size_t max_tensor_bytes = 0;
  size_t max_memory_bytes = 0;
  // A model without config.pbtxt whose inputs and outputs all have a variable
  // leading dim gets this max_batch_size and dynamic batching, as Triton's
  // auto-complete does (its default-max-batch-size is 4); 0: max_batch_size 0.
  int64_t default_max_batch_size = 4;
  TrialLoadOptions trial_loads;
  bool strict_readiness = true;      // ready only while every model that should load is READY
  bool exit_on_error = false;        // create() fails when a model fails to load at start
  // Versions kept loaded (or out) whatever the version policy says, from the
  // first load on: what a release persisted (rollout/) before the server starts.
  std::map<std::string, repository::VersionPins> version_pins;
  // Keys for encrypted models (<version>/model.onnx.sm4); null: such models
  // fail to load with a reason saying no key source is configured.
  std::shared_ptr<const security::KeyResolver> model_keys;
  // When set, every model file (model.onnx or model.onnx.sm4) must carry a
  // valid SM2 signature "<file>.sig" by one of these signers; the file is read
  // once, verified, and loaded from those same bytes.
  std::shared_ptr<const security::TrustedSigners> trusted_signers;
};

struct ServerMetadata {
  std::string name;     // "hearth"
  std::string version;  // "0.1.0"
  std::vector<std::string> extensions;
};

struct TensorMetadata {
  std::string name;
  std::string datatype;        // KServe name ("FP32")
  std::vector<int64_t> shape;  // -1 for variable dims, batch dim included when batching
};

struct ModelMetadata {
  std::string name;
  std::vector<std::string> versions;  // every READY version, ascending
  std::string platform;               // "onnxruntime_onnx"
  std::vector<TensorMetadata> inputs;
  std::vector<TensorMetadata> outputs;
};

// One row of the repository index (Triton's RepositoryIndex).
struct ModelIndexEntry {
  std::string name;
  std::string version;  // "" when no version is known (failed before any loaded)
  std::string state;    // "READY" | "LOADING" | "UNLOADING" | "UNAVAILABLE"
  std::string reason;   // why UNAVAILABLE; empty otherwise
};

// Cumulative statistics of one model version, as Triton's statistics extension
// reports them (counts and nanoseconds since the version loaded).
struct StatDuration {
  uint64_t count = 0;
  uint64_t ns = 0;
};
struct BatchStatistics {
  uint64_t batch_size = 0;
  StatDuration compute_input, compute_infer, compute_output;
};
struct ModelStatistics {
  std::string name;
  std::string version;
  uint64_t last_inference_ms = 0;  // ms since the epoch of the last request, 0 = never
  uint64_t inference_count = 0;    // requests' batch items that ran
  uint64_t execution_count = 0;    // model executions (a batch counts once)
  StatDuration success, fail, queue, compute_input, compute_infer, compute_output;
  std::vector<BatchStatistics> batch_stats;  // ascending batch size
};

class ModelVersion;
class VersionRouter;

class InferenceServer {
 public:
  // Scans the repository and loads models per the control mode; in poll mode
  // also starts the polling thread. Fails when the repository is not a
  // folder (or, with exit_on_error, when a model fails to load).
  static Result<std::unique_ptr<InferenceServer>> create(const ServerOptions& options);
  // Stops polling, rejects new requests, drains queued ones, unloads.
  ~InferenceServer();
  InferenceServer(const InferenceServer&) = delete;
  InferenceServer& operator=(const InferenceServer&) = delete;

  bool live() const;
  bool ready() const;
  ServerMetadata server_metadata() const;

  // version "" = every ready version (metadata) / the latest ready one (others).
  Result<ModelMetadata> model_metadata(const std::string& name, const std::string& version) const;
  // NotFound for a model the repository does not know; false when known but not READY.
  Result<bool> model_ready(const std::string& name, const std::string& version) const;
  Result<inference::ModelConfig> model_config(const std::string& name, const std::string& version) const;
  // name "" = every loaded model; version "" = every loaded version of the model.
  Result<std::vector<ModelStatistics>> model_statistics(const std::string& name, const std::string& version) const;

  std::vector<ModelIndexEntry> repository_index(bool ready_only) const;
  // Explicit mode only (FailedPrecondition otherwise). load_model (re)loads the
  // model's versions from disk: new versions warm up before they take
  // traffic; versions no longer wanted drain in-flight requests, then unload.
  Status load_model(const std::string& name);
  // Triton's load with parameters (model_upload.h): writes the uploaded config
  // and version folders into the repository atomically, then loads as above.
  // When that load fails for an uploaded version, the upload is taken back
  // out of the repository (so the same version number may be sent again) and
  // the reason returned as InvalidArgument. An empty upload is a plain
  // load_model(name). Uploads are serialized with each other.
  Status load_model(const std::string& name, const repository::ModelUpload& upload);
  Status unload_model(const std::string& name);

  // Queues `request`; `done` runs exactly once, on a scheduler thread or (for
  // errors found at once, e.g. a full queue) on the calling thread before
  // infer_async returns. Never blocks on inference.
  void infer_async(InferRequest request, InferCallback done);
  // Blocking convenience wrapper over infer_async.
  Result<InferResponse> infer(InferRequest request);
  // Installs the router that binds requests to versions (null: the default, the
  // named version else the highest ready one). The swap is atomic: a request is
  // bound once, by the router in place when it arrives.
  void set_version_router(std::shared_ptr<const VersionRouter> router);

  // Releases (rollout/): the ready version `version` of `name` ("" = highest), as
  // requests would find it by name; and the versions of `name` pinned in or out
  // whatever its policy says (see ModelLifecycle::pin), in any control mode.
  Result<std::shared_ptr<ModelVersion>> find_version(const std::string& name, const std::string& version) const;
  Status pin_versions(const std::string& name, repository::VersionPins pins);

  // The metrics every model reports (served on --metrics-port).
  telemetry::Registry& metrics();

 private:
  InferenceServer();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hearth::serving
