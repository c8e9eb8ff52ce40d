// ModelLifecycle: the models the server runs, kept in step with the repository.
// It asks repository::ModelRepository for a model's plan (config and selected
// version files) and acts on it while serving:
//   - a new or changed version loads and warms up before it takes traffic
//     (load before unload); an untrusted one is first loaded in a confined child
//     process (trial_load.h);
//   - a version that leaves (unload, policy, file deleted) is retired to the
//     VersionReaper: new requests no longer find it, queued ones still run;
//   - a model whose new config or version fails to load keeps serving what it
//     served, and the failure shows in the index with its reason.
// In poll mode a RepositoryPoller rescans the repository.
// Thread safety: all methods may be called from any thread; loads are
// serialized with each other.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "core/status.h"
#include "repository/model_repository.h"
#include "serving/model_version.h"
#include "serving/server.h"

namespace hearth::serving {

class RepositoryPoller;
class VersionReaper;

class ModelLifecycle {
 public:
  // Where a load comes from: an upload's versions are untrusted input (see
  // ServerOptions::trial_loads for which loads first run in a confined child).
  enum class Source { kRepository, kUpload };

  // Opens `options.model_repository` and loads what the control mode says;
  // starts the reaper (and, in poll mode, the poller).
  static Result<std::unique_ptr<ModelLifecycle>> open(const ServerOptions& options, telemetry::Registry* registry);
  ~ModelLifecycle();  // shutdown()

  // The ready version `version` ("" = highest ready) of `name`. NotFound for an
  // unknown model or version, Unavailable when the model has none ready.
  Result<std::shared_ptr<ModelVersion>> find(const std::string& name, const std::string& version) const;
  // Every ready version of `name`, ascending; NotFound when the model is unknown.
  Result<std::vector<std::shared_ptr<ModelVersion>>> versions(const std::string& name) const;
  // Every ready version of every model.
  std::vector<std::shared_ptr<ModelVersion>> all_versions() const;

  std::vector<ModelIndexEntry> index(bool ready_only) const;
  // Ready when the startup loads finished and (strict) every wanted model has a ready version.
  bool ready() const;

  // (Re)loads one model from the repository / unloads it; see the class comment.
  Status load(const std::string& name, Source source = Source::kRepository);
  // Sets the versions of `name` kept loaded or kept out whatever its policy says
  // (repository::VersionPins; empty pins drop them) and reloads the model so they
  // take effect: held versions load, excluded ones retire.
  Status pin(const std::string& name, repository::VersionPins pins);
  Status unload(const std::string& name);
  // Poll mode's rescan: loads new and changed models, unloads removed ones.
  void poll();
  // Stops accepting work: every version stops and drains (used at shutdown).
  void shutdown();

 private:
  struct Entry;
  struct Served;
  struct Failure;
  struct Outcome;

  explicit ModelLifecycle(repository::ModelRepository repo);
  Status load_locked(const std::string& name, Source source);
  Entry& begin_load(const std::string& name);
  Status record_failure(Entry& entry, const Status& status);
  Outcome load_versions(const Entry& entry, const repository::ModelPlan& plan, Source source);
  Result<std::shared_ptr<ModelVersion>> load_version(const repository::ModelPlan& plan,
                                                     const repository::VersionFile& file, Source source);
  void commit(Entry& entry, const repository::ModelPlan& plan, Outcome next);
  void unload_locked(Entry& entry, const std::string& reason);
  Entry* entry(const std::string& name) const;
  void version_unloaded(const std::string& name, int64_t version);

  repository::ModelRepository repo_;
  ServerOptions options_;
  telemetry::Registry* registry_ = nullptr;
  mutable std::shared_mutex mu_;  // guards entries_ (readers: the request path)
  std::map<std::string, std::unique_ptr<Entry>> entries_;
  std::mutex load_mu_;            // serializes load / unload / poll / pin
  std::map<std::string, repository::VersionPins> pins_;  // guarded by load_mu_
  std::atomic<bool> startup_done_{false};
  std::unique_ptr<VersionReaper> reaper_;
  std::unique_ptr<RepositoryPoller> poller_;
};

}  // namespace hearth::serving
