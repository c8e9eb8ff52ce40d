// Loading, swapping and retiring model versions as the repository says (see
// model_lifecycle.h).
#include "serving/model_lifecycle.h"

#include <algorithm>
#include <set>
#include <chrono>
#include <filesystem>

#include "core/file_util.h"
#include "security/model_source.h"
#include "serving/repository_poller.h"
#include "serving/trial_load.h"
#include "serving/version_reaper.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"

namespace hearth::serving {

using repository::ModelPlan;
using repository::VersionFile;

// A version that serves, with what it was loaded from: an unchanged file under an
// unchanged config is not loaded again.
struct ModelLifecycle::Served {
  std::shared_ptr<ModelVersion> version;
  std::string fingerprint;
  std::string config_text;
};

// A version whose last load failed, and the file that failed: the same file under
// the same config is not retried on every poll.
struct ModelLifecycle::Failure {
  std::string reason;
  std::string fingerprint;
};

struct ModelLifecycle::Entry {
  std::string name;
  bool wanted = false;   // should be serving (counts for strict readiness)
  bool loading = false;
  std::map<int64_t, Served> ready;
  std::map<int64_t, Failure> failed;
  std::string reason;       // model-level problem of the last attempt
  std::string config_text;  // config.pbtxt as last loaded ("" = derived)
};

// What a load leaves: the versions that serve and those that failed.
struct ModelLifecycle::Outcome {
  std::map<int64_t, Served> ready;
  std::map<int64_t, Failure> failed;
};

Result<std::unique_ptr<ModelLifecycle>> ModelLifecycle::open(const ServerOptions& options,
                                                             telemetry::Registry* registry) {
  HEARTH_ASSIGN_OR_RETURN(repository::ModelRepository repo, repository::ModelRepository::open(options.model_repository));
  std::unique_ptr<ModelLifecycle> m(new ModelLifecycle(std::move(repo)));
  m->options_ = options;
  m->registry_ = registry;
  m->pins_ = options.version_pins;
  m->reaper_ = std::make_unique<VersionReaper>(
      [p = m.get()](const std::string& name, int64_t version) { p->version_unloaded(name, version); });
  m->repo_.remove_stale_uploads();

  std::vector<std::string> names;
  if (options.control_mode != ModelControlMode::kExplicit) {
    names = m->repo_.model_names();
  } else {
    for (const std::string& n : options.startup_models) {
      if (n == "*") {
        names = m->repo_.model_names();
        break;
      }
      names.push_back(n);
    }
  }
  Status first_error = ok_status();
  {
    std::lock_guard<std::mutex> lock(m->load_mu_);
    for (const std::string& name : names) {
      Status s = m->load_locked(name, Source::kRepository);
      if (!s.ok() && first_error.ok()) first_error = s;
    }
  }
  if (options.exit_on_error && !first_error.ok()) return first_error;
  m->startup_done_ = true;
  if (options.control_mode == ModelControlMode::kPoll) {
    m->poller_ = std::make_unique<RepositoryPoller>(std::chrono::seconds(std::max(1, options.repository_poll_seconds)),
                                                    [p = m.get()] { p->poll(); });
  }
  return m;
}

ModelLifecycle::ModelLifecycle(repository::ModelRepository repo) : repo_(std::move(repo)) {}

ModelLifecycle::~ModelLifecycle() { shutdown(); }

ModelLifecycle::Entry* ModelLifecycle::entry(const std::string& name) const {
  std::shared_lock<std::shared_mutex> read(mu_);
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : it->second.get();
}

Status ModelLifecycle::load(const std::string& name, Source source) {
  std::lock_guard<std::mutex> lock(load_mu_);
  return load_locked(name, source);
}

Status ModelLifecycle::load_locked(const std::string& name, Source source) {
  HEARTH_RETURN_IF_ERROR(check_path_component(name, "model name"));
  if (!repo_.has_model(name)) {
    if (Entry* gone = entry(name)) unload_locked(*gone, "the model folder is gone");
    return not_found("model '", name, "' has no folder in the repository");
  }
  Entry& e = begin_load(name);
  auto pins = pins_.find(name);
  auto plan = repo_.plan(name, pins == pins_.end() ? repository::VersionPins{} : pins->second);
  if (!plan.ok()) return record_failure(e, plan.status());
  Outcome next = load_versions(e, *plan, source);
  const std::string first_failure = next.failed.empty() ? "" : next.failed.begin()->second.reason;
  commit(e, *plan, std::move(next));
  if (!first_failure.empty()) return Status(StatusCode::kUnavailable, str_cat("model '", name, "': ", first_failure));
  return ok_status();
}

ModelLifecycle::Entry& ModelLifecycle::begin_load(const std::string& name) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  auto& slot = entries_[name];
  if (!slot) {
    slot = std::make_unique<Entry>();
    slot->name = name;
  }
  slot->wanted = true;
  slot->loading = true;
  return *slot;
}

// A model-level failure (its config, its version policy): what served stays.
Status ModelLifecycle::record_failure(Entry& e, const Status& status) {
  const std::string msg = repo_.relative(status.message());
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    e.reason = msg;
    e.loading = false;
  }
  telemetry::log_warn("model_load_failed", {telemetry::field("model", e.name), telemetry::field("error", msg)});
  return Status(status.code(), msg);
}

ModelLifecycle::Outcome ModelLifecycle::load_versions(const Entry& e, const ModelPlan& plan, Source source) {
  Outcome next;
  for (const VersionFile& f : plan.versions) {
    const int64_t v = f.version;
    auto old = e.ready.find(v);
    if (old != e.ready.end() && old->second.config_text == plan.config_text &&
        old->second.fingerprint == f.fingerprint) {
      next.ready[v] = old->second;  // unchanged
      continue;
    }
    auto before = e.failed.find(v);
    if (before != e.failed.end() && e.config_text == plan.config_text && before->second.fingerprint == f.fingerprint) {
      next.failed[v] = before->second;  // an unchanged file that failed fails again: no retry
      if (old != e.ready.end()) next.ready[v] = old->second;
      continue;
    }
    auto loaded = load_version(plan, f, source);
    if (loaded.ok()) {
      next.ready[v] = Served{std::move(loaded).value(), f.fingerprint, plan.config_text};
      continue;
    }
    const std::string msg = repo_.relative(loaded.status().message());
    next.failed[v] = Failure{str_cat("version ", v, ": ", msg), f.fingerprint};
    telemetry::log_warn("model_version_load_failed", {telemetry::field("model", plan.name),
                                                     telemetry::field("version", v), telemetry::field("error", msg)});
    if (old != e.ready.end()) next.ready[v] = old->second;  // keep serving what served before
  }
  // A failed load leaves what served in place, even versions the policy would now
  // drop (latest{1} with a broken new version keeps the old one).
  if (!next.failed.empty())
    for (const auto& [v, served] : e.ready) next.ready.emplace(v, served);
  return next;
}

Result<std::shared_ptr<ModelVersion>> ModelLifecycle::load_version(const ModelPlan& plan, const VersionFile& f,
                                                                   Source source) {
  if (!f.problem.ok()) return f.problem;
  VersionSpec spec{plan.name, f.version, f.path, {}, nullptr, "", plan.config, plan.config_file,
                   options_.total_threads, 1024, registry_, options_.max_tensor_bytes, options_.max_memory_bytes,
                   plan.config_text.empty(), options_.default_max_batch_size};
  // Encrypted packages, and every model when signatures are required, load from
  // the bytes read (and checked) once.
  security::OpenedModel opened;
  if (f.encrypted || options_.trusted_signers) {
    HEARTH_ASSIGN_OR_RETURN(opened, security::open_model_file(f.path, f.encrypted, options_.model_keys.get(),
                                                              options_.trusted_signers.get()));
    spec.model_bytes = opened.model;
    if (f.encrypted) spec.external_files = &opened.external;  // a package carries its external data
    else spec.external_base_dir = std::filesystem::path(f.path).parent_path().string();
  }
  // Untrusted versions load first in a confined child: a crash there leaves the server standing.
  const TrialLoadOptions& trial = options_.trial_loads;
  const bool trial_first = !trial.executable.empty() && (trial.scope == TrialLoadScope::kAll ||
                                                         (trial.scope == TrialLoadScope::kUploads && source == Source::kUpload));
  Status tried = trial_first ? trial_load(spec, trial) : ok_status();
  auto loaded = tried.ok() ? ModelVersion::load(std::move(spec)) : Result<std::shared_ptr<ModelVersion>>(tried);
  opened.wipe();  // the sessions hold their own copy of the weights
  return loaded;
}

void ModelLifecycle::commit(Entry& e, const ModelPlan& plan, Outcome next) {
  std::vector<std::shared_ptr<ModelVersion>> leaving;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    for (const auto& [v, served] : e.ready) {
      auto it = next.ready.find(v);
      if (it == next.ready.end() || it->second.version != served.version) leaving.push_back(served.version);
    }
    e.reason = next.failed.empty() ? "" : next.failed.begin()->second.reason;
    e.ready = std::move(next.ready);
    e.failed = std::move(next.failed);
    e.config_text = plan.config_text;
    e.loading = false;
  }
  reaper_->retire(std::move(leaving));
}

void ModelLifecycle::unload_locked(Entry& e, const std::string& reason) {
  std::vector<std::shared_ptr<ModelVersion>> leaving;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    for (auto& [v, served] : e.ready) leaving.push_back(served.version);
    e.ready.clear();
    e.failed.clear();
    e.reason = reason;
    e.wanted = false;
    e.loading = false;
  }
  reaper_->retire(std::move(leaving));
}

Status ModelLifecycle::pin(const std::string& name, repository::VersionPins pins) {
  HEARTH_RETURN_IF_ERROR(check_path_component(name, "model name"));
  std::lock_guard<std::mutex> lock(load_mu_);
  if (pins.empty()) pins_.erase(name);
  else pins_[name] = std::move(pins);
  return load_locked(name, Source::kRepository);
}

Status ModelLifecycle::unload(const std::string& name) {
  HEARTH_RETURN_IF_ERROR(check_path_component(name, "model name"));
  std::lock_guard<std::mutex> lock(load_mu_);
  Entry* e = entry(name);
  if (e == nullptr) return not_found("unknown model '", name, "'");
  unload_locked(*e, "unloaded");
  telemetry::log_info("model_unloaded", {telemetry::field("model", name)});
  return ok_status();
}

void ModelLifecycle::poll() {
  std::lock_guard<std::mutex> lock(load_mu_);
  const std::vector<std::string> folders = repo_.model_names();
  std::vector<Entry*> gone;
  {
    std::shared_lock<std::shared_mutex> read(mu_);
    for (const auto& [name, e] : entries_)
      if (e->wanted && !std::binary_search(folders.begin(), folders.end(), name)) gone.push_back(e.get());
  }
  for (Entry* e : gone) unload_locked(*e, "the model folder is gone");
  for (const std::string& name : folders) (void)load_locked(name, Source::kRepository);  // unchanged versions stay
}

// Its metrics go too, unless a reload put the same version back (which then
// carries on with the same series).
void ModelLifecycle::version_unloaded(const std::string& name, int64_t version) {
  std::lock_guard<std::mutex> lock(load_mu_);
  if (registry_ != nullptr && !find(name, std::to_string(version)).ok())
    registry_->remove_series({{"model", name}, {"version", std::to_string(version)}});
}

void ModelLifecycle::shutdown() {
  if (poller_) poller_->stop();
  std::vector<std::shared_ptr<ModelVersion>> all;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    for (auto& [name, e] : entries_)
      for (auto& [v, served] : e->ready) all.push_back(served.version);
    entries_.clear();
  }
  if (reaper_) reaper_->stop();
  for (auto& v : all) v->stop();
}

Result<std::shared_ptr<ModelVersion>> ModelLifecycle::find(const std::string& name, const std::string& version) const {
  HEARTH_RETURN_IF_ERROR(check_path_component(name, "model name"));
  int64_t wanted = 0;
  if (!version.empty()) {
    HEARTH_RETURN_IF_ERROR(check_path_component(version, "model version"));
    HEARTH_ASSIGN_OR_RETURN(wanted, repository::parse_version(version));
  }
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return not_found("unknown model '", name, "'");
  const Entry& e = *it->second;
  if (wanted == 0) {
    if (e.ready.empty())
      return Status(StatusCode::kUnavailable,
                    str_cat("model '", name, "' is not ready", e.reason.empty() ? "" : ": " + e.reason));
    return e.ready.rbegin()->second.version;
  }
  auto v = e.ready.find(wanted);
  if (v != e.ready.end()) return v->second.version;
  auto f = e.failed.find(wanted);
  if (f != e.failed.end())
    return Status(StatusCode::kUnavailable,
                  str_cat("model '", name, "' version ", wanted, " is not ready: ", f->second.reason));
  std::string have;
  for (const auto& kv : e.ready) have += (have.empty() ? "" : ", ") + std::to_string(kv.first);
  return not_found("model '", name, "' has no version ", wanted, " loaded (ready: ", have.empty() ? "none" : have, ")");
}

Result<std::vector<std::shared_ptr<ModelVersion>>> ModelLifecycle::versions(const std::string& name) const {
  HEARTH_RETURN_IF_ERROR(check_path_component(name, "model name"));
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return not_found("unknown model '", name, "'");
  std::vector<std::shared_ptr<ModelVersion>> out;
  for (const auto& kv : it->second->ready) out.push_back(kv.second.version);
  return out;
}

std::vector<std::shared_ptr<ModelVersion>> ModelLifecycle::all_versions() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<std::shared_ptr<ModelVersion>> out;
  for (const auto& [name, e] : entries_)
    for (const auto& kv : e->ready) out.push_back(kv.second.version);
  return out;
}

std::vector<ModelIndexEntry> ModelLifecycle::index(bool ready_only) const {
  const std::vector<std::string> folders = repo_.model_names();
  const std::set<std::string> on_disk(folders.begin(), folders.end());
  std::vector<ModelIndexEntry> out;
  std::shared_lock<std::shared_mutex> lock(mu_);
  for (const std::string& f : folders)
    if (!entries_.count(f) && !ready_only) out.push_back({f, "", "UNAVAILABLE", "not loaded"});
  for (const auto& [name, entry] : entries_) {
    const Entry& e = *entry;
    // A model whose folder is gone and that serves nothing is no longer listed
    // (one that still serves stays, READY, until it is unloaded).
    if (e.ready.empty() && !e.loading && !on_disk.count(name)) continue;
    for (const auto& v : e.ready) out.push_back({e.name, std::to_string(v.first), "READY", ""});
    if (ready_only) continue;
    bool reason_shown = false;
    for (const auto& [v, failure] : e.failed)
      if (!e.ready.count(v)) {
        out.push_back({e.name, std::to_string(v), "UNAVAILABLE", failure.reason});
        reason_shown = true;
      }
    if (e.loading)
      out.push_back({e.name, "", "LOADING", ""});
    else if (e.ready.empty() && !reason_shown)
      out.push_back({e.name, "", "UNAVAILABLE", e.reason.empty() ? "not loaded" : e.reason});
    else if (!e.reason.empty() && !reason_shown)
      out.push_back({e.name, "", "UNAVAILABLE", e.reason});  // a failed reload; what served still serves
  }
  std::sort(out.begin(), out.end(), [](const ModelIndexEntry& a, const ModelIndexEntry& b) {
    if (a.name != b.name) return a.name < b.name;
    if (a.version.size() != b.version.size()) return a.version.size() < b.version.size();  // numeric order
    return a.version < b.version;
  });
  return out;
}

bool ModelLifecycle::ready() const {
  if (!startup_done_) return false;
  if (!options_.strict_readiness) return true;
  std::shared_lock<std::shared_mutex> lock(mu_);
  for (const auto& [name, e] : entries_)
    if (e->wanted && e->ready.empty()) return false;
  return true;
}

}  // namespace hearth::serving
