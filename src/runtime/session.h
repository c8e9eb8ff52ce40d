// Session: the public entry point of the engine. Loads a model, folds
// constants, binds a kernel to every node, plans value lifetimes, and runs.
//
//   auto s = Session::load_file("model.onnx");
//   auto outs = (*s)->run({{"input", tensor}});
//
// Thread safety: run() serializes callers on one Session (kernels keep
// scratch state). Serve parallel traffic with several Sessions (instances).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "graph/external_data.h"
#include "graph/graph.h"
#include "kernels/path_tuner.h"

namespace hearth {

class Kernel;
class PoolAllocator;

// The intra-op threads a session gets by default: one per physical core this
// process may run on (SMT siblings share a core's vector units, which these
// kernels keep busy; a second thread on them only adds contention).
int default_intra_op_threads();

struct SessionOptions {
  int intra_op_threads = 0;    // 0: default_intra_op_threads()
  bool fold_constants = true;  // evaluate nodes whose inputs are all constant at load
  bool optimize = true;        // graph rewrites of graph/optimizer.h (Conv+BN folding, Conv fusion)
  bool blocked_layout = true;  // with optimize: keep conv chains in the 8-channel blocked layout (graph/nchwc.h)
  bool profile = false;        // record per-node time (see node_profile())
  // Limits against hostile models and inputs; a kernel whose output would break one
  // fails with an error naming the node, the shape and the limit.
  size_t max_tensor_bytes = 0;  // one tensor a kernel makes; 0: half the machine's physical memory
  size_t max_memory_bytes = 0;  // all of a run's tensors alive at once; 0: no limit
  int64_t max_loop_iterations = 0;  // Loop/Scan iterations of one run, nested ones included; 0: 2^24
  // Per-layer path choice (kernels/path_tuner.h): kCached takes the choices
  // `hearth tune` measured on this machine, and heuristics for the rest;
  // kMeasure times the candidates of layers the cache lacks, on their first
  // run, for at most tune_budget_ms in all, and records them in the cache.
  TuningMode tuning = TuningMode::kCached;
  double tune_budget_ms = 30000;
  std::shared_ptr<TuningCache> tuning_cache;  // null: TuningCache::shared()
};

struct NodeProfile {
  std::string name;
  std::string op_type;
  double total_us = 0;  // summed over runs
  int64_t runs = 0;
};

class Session {
 public:
  static Result<std::unique_ptr<Session>> load_file(const std::string& path, const SessionOptions& options = {});
  // Model bytes in memory (e.g. decrypted); external data is read from base_dir ("" forbids it).
  static Result<std::unique_ptr<Session>> load_bytes(const void* data, size_t size, const std::string& base_dir,
                                                     const SessionOptions& options = {});
  // External data from disk or from memory (see graph/external_data.h).
  static Result<std::unique_ptr<Session>> load_bytes(const void* data, size_t size, const ExternalData& external,
                                                     const SessionOptions& options = {});
  static Result<std::unique_ptr<Session>> create(Model model, const SessionOptions& options = {});
  ~Session();

  // Inputs the caller must feed (initializer-backed inputs excluded) and outputs, in model order.
  const std::vector<ValueInfo>& inputs() const { return model_.graph.inputs; }
  const std::vector<ValueInfo>& outputs() const { return model_.graph.outputs; }
  const Model& model() const { return model_; }
  int num_threads() const { return threads_; }
  // The per-tensor limit in force (options' value, or the default it resolved to).
  size_t max_tensor_bytes() const { return max_tensor_bytes_; }

  // Runs the model on named inputs; returns outputs in the order of outputs().
  // Checks each input's dtype, rank and fixed dims against the model.
  Result<std::vector<Tensor>> run(const std::vector<std::pair<std::string, Tensor>>& feeds);

  std::vector<NodeProfile> node_profile() const;
  // The path each layer with several took and why (kernels/path_tuner.h), in
  // the order the layers first ran; empty before the first run.
  std::vector<PathChoice> plan_report() const;
  // Bytes currently held by the session's memory pool (free and in use).
  size_t pool_bytes() const;

 private:
  struct Step {
    const Node* node;
    std::unique_ptr<Kernel> kernel;
    std::vector<std::string> implicit_inputs;  // outer-scope values read by subgraphs (If/Loop/Scan)
    std::vector<int> inputs;       // slot per input (declared, then implicit), -1 when omitted
    std::vector<int> outputs;      // slot per output, -1 when omitted
    std::vector<int> release;      // slots whose last reader is this step
    uint64_t donatable = 0;        // bit k: input k may become an output's memory (KernelContext)
    NodeProfile profile;
  };

  Session() = default;
  Status prepare();
  Status fold_constants();
  Status fold_before_optimizer();
  Status validate_feed(const ValueInfo& info, const Tensor& t) const;
  Status check_tensor_limit(const char* what, const std::string& name, const Tensor& t) const;

  Model model_;
  SessionOptions options_;
  std::unique_ptr<PathTuner> tuner_;
  int threads_ = 1;
  size_t max_tensor_bytes_ = 0;
  std::shared_ptr<PoolAllocator> pool_;
  std::vector<Step> steps_;
  std::vector<Tensor> constants_;          // slot-indexed constant values (undefined for others)
  std::vector<int> input_slots_;           // per model input
  std::vector<int> override_slots_;        // per overridable initializer
  std::vector<int> output_slots_;          // per model output
  size_t num_slots_ = 0;
  std::mutex run_mutex_;
};

}  // namespace hearth
