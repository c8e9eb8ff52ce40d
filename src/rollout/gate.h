// The gate: what a candidate must show before it takes any traffic, on this
// machine, against the champion:
//   ready       it loaded and warmed up (ModelVersion::load does both)
//   signature   every input and output the champion has, same type, compatible
//               dims, at least the champion's max_batch_size
//   memory      MemAvailable after it loaded >= gate.min_free_memory_mb
//   latency     median of gate.latency_runs runs, alternating with the champion on
//               the same input, within gate.latency_ratio x the champion's
//   accuracy    on the golden set shipped in the version folder
//               (<version>/<gate.golden>/inputs/<input>.npy, one row per sample,
//               and labels.npy or expected/<output>.npy): top-1 accuracy at least
//               gate.min_accuracy and within gate.max_accuracy_drop of the champion's
// Thread safety: run_gate may run on any thread (it submits ordinary requests).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "rollout/release_spec.h"
#include "serving/server.h"

namespace hearth::rollout {

struct GateCheck {
  std::string name;  // "ready", "signature", "memory", "latency", "accuracy"
  bool passed = true;
  bool skipped = false;
  std::string detail;  // in words, with the measured values
};

struct GateReport {
  bool passed = true;
  std::vector<GateCheck> checks;
  std::string reason;  // the failed checks' details
  std::string to_json() const;
};

// The signature check alone: empty when `candidate` accepts what `champion` does.
std::string signature_mismatch(const inference::ModelConfig& champion, const inference::ModelConfig& candidate);

// Runs every check on `candidate` (already loaded or failed to). `repository` is
// the model repository's root, where the golden set is looked for.
GateReport run_gate(const serving::InferenceServer& server, const std::string& repository, const ReleaseSpec& spec,
                    int64_t champion, int64_t candidate);

}  // namespace hearth::rollout
