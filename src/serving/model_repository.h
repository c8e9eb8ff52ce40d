// ModelRepository: a Triton-style model folder, scanned once at start.
//
//   <repo>/<model>/[config.pbtxt]
//   <repo>/<model>/<version>/model.onnx      (version: a positive integer)
//
// Every model's latest version is loaded (Triton's default version policy,
// latest{num_versions: 1}). A model that fails to load stays listed as
// UNAVAILABLE with its reason; the others serve. config.pbtxt is not read yet.
// Thread safety: after open() returns, the repository is read-only, and every
// method may be called from any thread (Session::run serializes itself).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/session.h"

namespace hearth::serving {

enum class ModelState { kReady, kUnavailable };

// One model of the repository: its latest version and, when it loaded, the Session.
struct ServedModel {
  std::string name;
  int64_t version = 0;          // the loaded (latest) version; 0 when none was found
  ModelState state = ModelState::kUnavailable;
  std::string reason;           // why the model is UNAVAILABLE; empty when ready
  std::unique_ptr<Session> session;

  bool ready() const { return state == ModelState::kReady && session != nullptr; }
};

struct RepositoryOptions {
  int total_threads = 0;  // cores shared by all models; 0: every core of the machine
};

// Checks one path component taken from a request or a folder name (model or
// version): not empty, no '/', '\\' or NUL, not "..", not starting with '.'.
// `what` names it in the error ("model name").
Status validate_path_component(const std::string& value, const char* what);

// Parses a version folder or request version: a positive decimal integer.
Result<int64_t> parse_version(const std::string& text);

class ModelRepository {
 public:
  // Scans `root` and loads the latest version of every model. Fails only when
  // `root` is not a readable folder; per-model failures are recorded instead.
  static Result<std::unique_ptr<ModelRepository>> open(const std::string& root,
                                                       const RepositoryOptions& options = {});

  const std::string& root() const { return root_; }
  // Every model found, sorted by name (ready or not).
  const std::vector<std::unique_ptr<ServedModel>>& models() const { return models_; }

  // Looks a model up by request name and optional version ("" = latest).
  // InvalidArgument for a malformed name or version, NotFound for an unknown
  // model or a version that is not loaded. The model may still be UNAVAILABLE.
  Result<const ServedModel*> find(const std::string& name, const std::string& version = "") const;

 private:
  ModelRepository() = default;
  std::string root_;
  std::vector<std::unique_ptr<ServedModel>> models_;
};

}  // namespace hearth::serving
