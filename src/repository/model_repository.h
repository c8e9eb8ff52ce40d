// ModelRepository: a Triton-style model repository on disk, read but never run.
//
//   <root>/<model>/config.pbtxt          optional; derived from the model when absent
//   <root>/<model>/<version>/model.onnx  (or model.onnx.sm4, an encrypted package)
//
// It lists the model folders and, for one model, returns the plan of what should be
// loaded: its config (parsed and checked), and the model file of each version its
// version_policy selects, with a fingerprint to tell a changed file from an unchanged
// one. It knows nothing of running models; serving/model_lifecycle.h acts on plans.
// Every path it hands out is canonical and inside the repository.
// Thread safety: const methods may be called from any thread.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"
#include "model_config.pb.h"

namespace hearth::repository {

// Parses a version folder or request version: a positive decimal integer without
// leading zeros.
Result<int64_t> parse_version(const std::string& text);

// One selected version of a model as found on disk.
struct VersionFile {
  int64_t version = 0;
  std::string path;         // canonical path of the model file; "" when `problem` is set
  bool encrypted = false;   // model.onnx.sm4 standing in for an absent model.onnx
  std::string fingerprint;  // size and modification time: changes when the file does
  Status problem;           // no model file, or it resolves outside the repository
};

// Versions a caller wants loaded or kept out whatever the version policy says (a
// release's champion and candidate; a version it rolled back).
struct VersionPins {
  std::set<int64_t> hold;     // loaded when their folder exists, selected or not
  std::set<int64_t> exclude;  // never loaded (wins over hold)
  bool empty() const { return hold.empty() && exclude.empty(); }
};

// What one model's folder says should be loaded.
struct ModelPlan {
  std::string name;
  std::string config_text;  // config.pbtxt as read; "" when derived
  std::string config_file;  // "mlp/config.pbtxt" or "mlp (derived config)", for messages
  inference::ModelConfig config;    // parsed and checked (check_model_config), not completed
  std::vector<VersionFile> versions;  // selected by the version policy, newest first
};

class ModelRepository {
 public:
  // `root` must be a folder; it is resolved once (symlinks included).
  static Result<ModelRepository> open(const std::string& root);

  const std::string& root() const { return root_; }
  // The model folders, sorted; hidden ones (.git, upload staging) are left out.
  std::vector<std::string> model_names() const;
  bool has_model(const std::string& name) const;
  // The plan for `name`: the versions its policy selects, plus `pins.hold` (those
  // with a folder), less `pins.exclude`. NotFound when it has no folder;
  // InvalidArgument (naming the file, line and column) for a bad name or config,
  // NotFound when no version folder is left to load.
  Result<ModelPlan> plan(const std::string& name, const VersionPins& pins = {}) const;

  // Upload staging folders (.upload-*) older than an hour, left by a server that
  // died mid-upload, are removed (younger ones may belong to another server
  // sharing the repository).
  void remove_stale_uploads() const;
  // `message` with the repository's path removed: clients see files named
  // relative to the repository.
  std::string relative(std::string message) const;

 private:
  explicit ModelRepository(std::string root) : root_(std::move(root)) {}
  std::string root_;
};

}  // namespace hearth::repository
