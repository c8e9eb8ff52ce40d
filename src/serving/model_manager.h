// ModelManager: the live model repository. Knows every model folder of
// `<repo>/<model>/[config.pbtxt]` + `<repo>/<model>/<version>/model.onnx`,
// loads the versions each model's version_policy selects, and swaps them in
// and out while serving:
//   - a new or changed version loads and warms up before it takes traffic;
//   - a version that leaves (unload, policy, file deleted) is retired: new
//     requests no longer find it, queued ones still run (drain), and a reaper
//     thread destroys it once nobody holds it;
//   - a model whose new config or version fails to load keeps serving what it
//     served, and the failure shows in the index with its reason.
// Thread safety: all methods may be called from any thread; loads are
// serialized with each other.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/status.h"
#include "security/model_source.h"
#include "serving/scheduler.h"
#include "serving/server.h"

namespace hearth::serving {

// Checks one path component taken from a request or a folder name (model or
// version): not empty, no '/', '\\' or NUL, no "..", not starting with '.'.
Status validate_path_component(const std::string& value, const char* what);
// Parses a version folder or request version: a positive decimal integer.
Result<int64_t> parse_version(const std::string& text);

class ModelManager {
 public:
  // Scans `options.model_repository` and loads what the control mode says;
  // starts the reaper (and, in poll mode, the poller).
  static Result<std::unique_ptr<ModelManager>> open(const ServerOptions& options, telemetry::Registry* registry);
  ~ModelManager();  // stops the threads, drains and unloads everything

  // The ready version `version` ("" = highest ready) of `name`. NotFound for an
  // unknown model or version, Unavailable when the model has none ready.
  Result<std::shared_ptr<ModelVersion>> find(const std::string& name, const std::string& version) const;
  // Every ready version of `name`, ascending; NotFound when the model is unknown.
  Result<std::vector<std::shared_ptr<ModelVersion>>> versions(const std::string& name) const;
  // Every ready version of every model.
  std::vector<std::shared_ptr<ModelVersion>> all_versions() const;
  // True when the repository knows the model (folder seen or loaded).
  bool known(const std::string& name) const;

  std::vector<ModelIndexEntry> index(bool ready_only) const;
  // Ready when the startup loads finished and (strict) every wanted model has a ready version.
  bool ready() const;

  // Where a load comes from: an upload's versions are untrusted input (see
  // ServerOptions::trial_loads for which loads first run in a confined child).
  enum class Source { kRepository, kUpload };
  // (Re)loads one model from disk / unloads it; see the class comment.
  Status load(const std::string& name, Source source = Source::kRepository);
  Status unload(const std::string& name);
  // Poll mode's rescan: loads new and changed models, unloads removed ones.
  void poll();
  // Stops accepting work: every version stops and drains (used at shutdown).
  void shutdown();

 private:
  struct Entry;
  ModelManager() = default;
  Status load_locked(const std::string& name, Source source = Source::kRepository);
  void unload_locked(Entry& entry, const std::string& reason);
  std::vector<std::string> list_model_folders() const;
  void remove_stale_uploads() const;
  void background();
  void reap();
  // A model loaded from memory: the file read once (a package is decrypted
  // in place in the same buffer) and views of the model and its external
  // data. The buffer is wiped once the sessions hold their own copies.
  struct Decrypted {
    std::shared_ptr<security::FileBuffer> buffer;
    std::string_view model;
    std::map<std::string, std::string_view> external;
  };
  // The model file read once, checked against its signature (with trusted
  // signers), and, for a package, decrypted in place.
  Result<Decrypted> open_model(const std::string& path, bool encrypted) const;
  std::string relative_to_repository(std::string message) const;

  ServerOptions options_;
  std::string root_;
  telemetry::Registry* registry_ = nullptr;
  mutable std::shared_mutex mu_;       // guards entries_ (readers: request path)
  std::map<std::string, std::unique_ptr<Entry>> entries_;
  std::mutex load_mu_;                 // serializes load / unload / poll
  std::mutex retired_mu_;
  std::vector<std::shared_ptr<ModelVersion>> retired_;
  std::atomic<bool> startup_done_{false};
  std::mutex bg_mu_;
  std::condition_variable bg_cv_;
  bool bg_stop_ = false;
  std::thread bg_thread_;
};

}  // namespace hearth::serving
