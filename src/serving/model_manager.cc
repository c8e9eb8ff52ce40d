// ModelManager: repository scanning, version selection, hot load / unload
// with drain, polling. See model_manager.h.
#include "serving/model_manager.h"

#include "serving/trial_load.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include <openssl/crypto.h>

#include "security/model_source.h"
#include "security/signing.h"
#include "serving/model_config.h"
#include "serving/trial_load.h"
#include "telemetry/log.h"
#include "telemetry/metrics.h"

namespace hearth::serving {
namespace fs = std::filesystem;

struct ModelManager::Entry {
  std::string name;
  bool wanted = false;  // should be serving (counts for strict readiness)
  bool loading = false;
  std::map<int64_t, std::shared_ptr<ModelVersion>> ready;
  std::map<int64_t, std::string> failed;       // version -> why its last load failed
  std::string reason;                          // model-level problem of the last attempt
  std::string config_text;                     // config.pbtxt as loaded ("" = derived)
  std::map<int64_t, std::string> fingerprints;  // version -> model file size/mtime as loaded
  std::map<int64_t, std::string> configs;       // version -> config text it was loaded with
  std::map<int64_t, std::string> failed_prints;  // version -> file size/mtime of the failed attempt
};

namespace {

constexpr size_t kMaxConfigBytes = 1 << 20;

bool is_inside(const fs::path& root, const fs::path& path) {
  auto r = root.begin();
  auto p = path.begin();
  for (; r != root.end(); ++r, ++p)
    if (p == path.end() || *r != *p) return false;
  return true;
}

std::vector<int64_t> list_versions(const fs::path& model_dir) {
  std::vector<int64_t> versions;
  std::error_code ec;
  for (fs::directory_iterator it(model_dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_directory(type_ec)) continue;
    auto v = parse_version(it->path().filename().string());
    if (v.ok()) versions.push_back(*v);
  }
  return versions;
}

std::string fingerprint(const fs::path& file) {
  std::error_code ec;
  auto size = fs::file_size(file, ec);
  if (ec) return "";
  auto mtime = fs::last_write_time(file, ec);
  if (ec) return "";
  return str_cat(size, "@", mtime.time_since_epoch().count());
}

// Reads <dir>/config.pbtxt; "" with *present = false when there is none.
Result<std::string> read_config_text(const fs::path& dir, bool* present) {
  fs::path file = dir / "config.pbtxt";
  std::error_code ec;
  *present = fs::exists(file, ec);
  if (!*present) return std::string();
  if (!fs::is_regular_file(file, ec)) return invalid_argument("config.pbtxt is not a regular file");
  if (fs::file_size(file, ec) > kMaxConfigBytes) return invalid_argument("config.pbtxt is larger than 1 MiB");
  std::ifstream in(file, std::ios::binary);
  if (!in) return invalid_argument("cannot read config.pbtxt");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

// Messages reach clients: files are named relative to the repository.
std::string ModelManager::relative_to_repository(std::string message) const {
  const std::string prefix = root_ + "/";
  for (size_t at; (at = message.find(prefix)) != std::string::npos;) message.erase(at, prefix.size());
  return message;
}

// Opens an encrypted package in memory (decrypted in place in the buffer it
// was read into); the plaintext never touches disk. With trusted signers the
// bytes read are first checked against the signature, so what is verified is
// exactly what loads.
Result<ModelManager::Decrypted> ModelManager::open_model(const std::string& path, bool encrypted) const {
  if (encrypted && !options_.model_keys)
    return failed_precondition("an encrypted model needs a key: start the server with --model-key-store, "
                               "--model-key-file or HEARTH_MODEL_KEY");
  Decrypted out;
  HEARTH_ASSIGN_OR_RETURN(security::FileBuffer bytes, security::read_file_buffer(path));
  out.buffer = std::make_shared<security::FileBuffer>(std::move(bytes));
  if (options_.trusted_signers) {
    const std::string sig_path = path + security::kSignatureSuffix;
    auto signature = security::read_file_bytes(sig_path);
    if (!signature.ok() && signature.status().code() == StatusCode::kNotFound)
      return Status(StatusCode::kPermissionDenied, str_cat("model ", path, " is not signed (no ", sig_path,
                                                           ") and this server loads signed models only"));
    if (!signature.ok()) return signature.status();
    HEARTH_RETURN_IF_ERROR(options_.trusted_signers->verify(out.buffer->view(), *signature, path));
  }
  if (!encrypted) {
    out.model = out.buffer->view();
    return out;
  }
  security::OpenOptions open;
  open.check_plaintext_digest = false;  // the HMAC authenticates every byte (see package.h)
  auto package = security::open_package_in_place(out.buffer->data.get(), out.buffer->size, *options_.model_keys, open);
  if (!package.ok()) return Status(package.status().code(), str_cat(path, ": ", package.status().message()));
  out.model = package->files[0].second;
  for (size_t i = 1; i < package->files.size(); ++i) out.external[package->files[i].first] = package->files[i].second;
  return out;
}

Status validate_path_component(const std::string& value, const char* what) {
  if (value.empty()) return invalid_argument(what, " is empty");
  if (value.find("..") != std::string::npos) return invalid_argument(what, " '", value, "' may not contain '..'");
  if (value[0] == '.') return invalid_argument(what, " '", value, "' may not start with '.'");
  for (char c : value)
    if (c == '/' || c == '\\' || c == '\0')
      return invalid_argument(what, " '", value, "' may not contain '/', '\\' or NUL");
  return ok_status();
}

Result<int64_t> parse_version(const std::string& text) {
  if (text.empty() || text.size() > 18 || text[0] == '0')
    return invalid_argument("version '", text, "' is not a positive integer (without leading zeros)");
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return invalid_argument("version '", text, "' is not a positive integer");
    v = v * 10 + (c - '0');
  }
  if (v <= 0) return invalid_argument("version '", text, "' is not a positive integer");
  return v;
}

Result<std::unique_ptr<ModelManager>> ModelManager::open(const ServerOptions& options,
                                                         telemetry::Registry* registry) {
  std::error_code ec;
  if (!fs::is_directory(options.model_repository, ec))
    return not_found("model repository '", options.model_repository, "' is not a folder");
  fs::path root = fs::canonical(options.model_repository, ec);
  if (ec) return not_found("cannot resolve model repository '", options.model_repository, "': ", ec.message());
  std::unique_ptr<ModelManager> m(new ModelManager());
  m->options_ = options;
  m->root_ = root.string();
  m->registry_ = registry;
  m->remove_stale_uploads();

  std::vector<std::string> names;
  if (options.control_mode != ModelControlMode::kExplicit) {
    names = m->list_model_folders();
  } else {
    for (const std::string& n : options.startup_models) {
      if (n == "*") {
        names = m->list_model_folders();
        break;
      }
      names.push_back(n);
    }
  }
  Status first_error = ok_status();
  {
    std::lock_guard<std::mutex> lock(m->load_mu_);
    for (const std::string& name : names) {
      Status s = m->load_locked(name);
      if (!s.ok() && first_error.ok()) first_error = s;
    }
  }
  if (options.exit_on_error && !first_error.ok()) return first_error;
  m->startup_done_ = true;
  m->bg_thread_ = std::thread([p = m.get()] { p->background(); });
  return m;
}

ModelManager::~ModelManager() { shutdown(); }

// An upload stages its files in <repo>/.upload-<model>-<random> and renames
// them into place; a server that died mid-upload leaves the staging folder
// behind. Folders older than an hour go at start (younger ones may belong to
// another server sharing the repository, still uploading).
void ModelManager::remove_stale_uploads() const {
  std::error_code ec;
  const auto cutoff = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code e;
    const std::string name = it->path().filename().string();
    if (name.rfind(".upload-", 0) != 0 || !it->is_directory(e) || it->is_symlink(e)) continue;
    if (fs::last_write_time(it->path(), e) > cutoff || e) continue;
    fs::remove_all(it->path(), e);
    telemetry::log_info("stale_upload_removed", {telemetry::field("folder", name),
                                                 telemetry::field("ok", e ? "no" : "yes")});
  }
}

std::vector<std::string> ModelManager::list_model_folders() const {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_directory(type_ec)) continue;
    std::string name = it->path().filename().string();
    if (!name.empty() && name[0] != '.') names.push_back(name);  // hidden: .git, editors' state
  }
  std::sort(names.begin(), names.end());
  return names;
}

Status ModelManager::load_locked(const std::string& name, Source source) {
  const TrialLoadOptions& trial = options_.trial_loads;
  const bool trial_first = !trial.executable.empty() &&
                           (trial.scope == TrialLoadScope::kAll ||
                            (trial.scope == TrialLoadScope::kUploads && source == Source::kUpload));
  HEARTH_RETURN_IF_ERROR(validate_path_component(name, "model name"));
  const fs::path dir = fs::path(root_) / name;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    Entry* gone = nullptr;
    {
      std::shared_lock<std::shared_mutex> read(mu_);
      auto it = entries_.find(name);
      if (it != entries_.end()) gone = it->second.get();
    }
    if (gone != nullptr) unload_locked(*gone, "the model folder is gone");
    return not_found("model '", name, "' has no folder in the repository");
  }
  Entry* entry;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    auto& slot = entries_[name];
    if (!slot) {
      slot = std::make_unique<Entry>();
      slot->name = name;
    }
    entry = slot.get();
    entry->wanted = true;
    entry->loading = true;
  }
  auto record = [&](Status s) {
    const std::string msg = relative_to_repository(s.message());
    std::unique_lock<std::shared_mutex> lock(mu_);
    entry->reason = msg;
    entry->loading = false;
    telemetry::log_warn("model_load_failed", {telemetry::field("model", name), telemetry::field("error", msg)});
    return Status(s.code(), msg);
  };
  bool has_config = false;
  auto text = read_config_text(dir, &has_config);
  const std::string config_file = has_config ? name + "/config.pbtxt" : name + " (derived config)";
  if (!text.ok()) return record(invalid_argument(name, "/", text.status().message()));
  inference::ModelConfig config;
  if (has_config) {
    auto parsed = parse_model_config(*text, config_file);
    if (!parsed.ok()) return record(parsed.status());
    config = std::move(parsed).value();
  }
  if (Status s = check_model_config(config, name, config_file); !s.ok()) return record(s);
  auto selected = select_versions(config, list_versions(dir));
  if (!selected.ok()) return record(Status(selected.status().code(), str_cat(config_file, ": ", selected.status().message())));
  if (selected->empty()) return record(not_found(name, ": no version folder (a positive integer) holding a model"));

  const std::string filename = config.default_model_filename().empty() ? kDefaultModelFilename : config.default_model_filename();
  std::map<int64_t, std::shared_ptr<ModelVersion>> next;
  std::map<int64_t, std::string> failed, prints, failed_prints, configs;
  for (int64_t v : *selected) {
    fs::path file = dir / std::to_string(v) / filename;
    // An encrypted package stands in for the plain file when that is absent.
    const fs::path package = dir / std::to_string(v) / security::kEncryptedModelFileName;
    const bool encrypted = !fs::exists(file, ec) && fs::exists(package, ec);
    if (encrypted) file = package;
    std::string print = fingerprint(file);
    auto old = entry->ready.find(v);
    const bool same = old != entry->ready.end() && entry->configs[v] == *text && entry->fingerprints[v] == print;
    if (same) {
      next[v] = old->second;
      prints[v] = print;
      configs[v] = *text;
      continue;
    }
    // An unchanged file that failed before fails again: do not retry it on every poll.
    auto before = entry->failed.find(v);
    if (before != entry->failed.end() && entry->config_text == *text && entry->failed_prints[v] == print) {
      failed[v] = before->second;
      failed_prints[v] = print;
      if (old != entry->ready.end()) {
        next[v] = old->second;
        prints[v] = entry->fingerprints[v];
        configs[v] = entry->configs[v];
      }
      continue;
    }
    failed_prints[v] = print;
    Status problem = ok_status();
    fs::path real = fs::canonical(file, ec);
    if (ec || !fs::is_regular_file(real, ec)) {
      problem = not_found("version ", v, " has no ", filename, " (nor ", security::kEncryptedModelFileName, ")");
    } else if (!is_inside(fs::path(root_), real)) {
      problem = invalid_argument(name, "/", v, "/", file.filename().string(), " resolves outside the model repository");
    } else {
      VersionSpec spec{name, v, real.string(), {}, nullptr, "", config, config_file, options_.total_threads, 1024, registry_,
                       options_.max_tensor_bytes, options_.max_memory_bytes};
      // Encrypted packages, and every model when signatures are required, load
      // from the bytes read (and checked) once.
      Decrypted plain;
      if (encrypted || options_.trusted_signers) {
        auto opened = open_model(real.string(), encrypted);
        if (!opened.ok()) problem = opened.status();
        else plain = std::move(opened).value();
        spec.model_bytes = plain.model;
        if (encrypted) spec.external_files = &plain.external;  // a package carries its external data
        else spec.external_base_dir = real.parent_path().string();
      }
      // Untrusted versions load first in a confined child: a crash there leaves the server standing.
      if (problem.ok() && trial_first) problem = trial_load(spec, trial);
      auto loaded = problem.ok() ? ModelVersion::load(std::move(spec)) : Result<std::shared_ptr<ModelVersion>>(problem);
      // The sessions hold their own copy of the weights; wipe the plaintext.
      if (plain.buffer) OPENSSL_cleanse(plain.buffer->data.get(), plain.buffer->size);
      if (loaded.ok()) {
        next[v] = std::move(loaded).value();
        prints[v] = print;
        configs[v] = *text;
        continue;
      }
      problem = loaded.status();
    }
    const std::string msg = relative_to_repository(problem.message());
    failed[v] = str_cat("version ", v, ": ", msg);
    telemetry::log_warn("model_version_load_failed", {telemetry::field("model", name), telemetry::field("version", v),
                                                     telemetry::field("error", msg)});
    if (old != entry->ready.end()) {  // keep serving what served before
      next[v] = old->second;
      prints[v] = entry->fingerprints[v];
      configs[v] = entry->configs[v];
    }
  }
  if (!failed.empty()) {
    // A failed load leaves what served in place, even versions the policy
    // would now drop (latest{1} with a broken new version keeps the old one).
    for (auto& kv : entry->ready)
      if (!next.count(kv.first)) {
        next[kv.first] = kv.second;
        prints[kv.first] = entry->fingerprints[kv.first];
        configs[kv.first] = entry->configs[kv.first];
      }
  }
  std::vector<std::shared_ptr<ModelVersion>> leaving;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    for (auto& kv : entry->ready)
      if (!next.count(kv.first) || next[kv.first] != kv.second) leaving.push_back(kv.second);
    entry->ready = std::move(next);
    entry->failed = failed;
    entry->failed_prints = std::move(failed_prints);
    entry->fingerprints = std::move(prints);
    entry->configs = std::move(configs);
    entry->config_text = *text;
    entry->reason = failed.empty() ? "" : failed.begin()->second;
    entry->loading = false;
  }
  {
    std::lock_guard<std::mutex> lock(retired_mu_);
    retired_.insert(retired_.end(), leaving.begin(), leaving.end());
  }
  if (!failed.empty()) return Status(StatusCode::kUnavailable, str_cat("model '", name, "': ", failed.begin()->second));
  return ok_status();
}

void ModelManager::unload_locked(Entry& entry, const std::string& reason) {
  std::vector<std::shared_ptr<ModelVersion>> leaving;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    for (auto& kv : entry.ready) leaving.push_back(kv.second);
    entry.ready.clear();
    entry.failed.clear();
    entry.fingerprints.clear();
    entry.configs.clear();
    entry.reason = reason;
    entry.wanted = false;
    entry.loading = false;
  }
  std::lock_guard<std::mutex> lock(retired_mu_);
  retired_.insert(retired_.end(), leaving.begin(), leaving.end());
}

Status ModelManager::load(const std::string& name, Source source) {
  std::lock_guard<std::mutex> lock(load_mu_);
  return load_locked(name, source);
}

Status ModelManager::unload(const std::string& name) {
  HEARTH_RETURN_IF_ERROR(validate_path_component(name, "model name"));
  std::lock_guard<std::mutex> lock(load_mu_);
  Entry* entry = nullptr;
  {
    std::shared_lock<std::shared_mutex> read(mu_);
    auto it = entries_.find(name);
    if (it != entries_.end()) entry = it->second.get();
  }
  if (entry == nullptr) return not_found("unknown model '", name, "'");
  unload_locked(*entry, "unloaded");
  telemetry::log_info("model_unloaded", {telemetry::field("model", name)});
  return ok_status();
}

void ModelManager::poll() {
  std::lock_guard<std::mutex> lock(load_mu_);
  std::vector<std::string> folders = list_model_folders();
  std::vector<std::string> gone;
  {
    std::shared_lock<std::shared_mutex> read(mu_);
    for (const auto& kv : entries_)
      if (kv.second->wanted && !std::binary_search(folders.begin(), folders.end(), kv.first)) gone.push_back(kv.first);
  }
  for (const std::string& name : gone) {
    std::shared_lock<std::shared_mutex> read(mu_);
    Entry* e = entries_[name].get();
    read.unlock();
    unload_locked(*e, "the model folder is gone");
  }
  for (const std::string& name : folders) (void)load_locked(name);  // unchanged versions are kept as they are
}

void ModelManager::background() {
  auto last_poll = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(bg_mu_);
  while (!bg_stop_) {
    bg_cv_.wait_for(lock, std::chrono::milliseconds(50));
    if (bg_stop_) break;
    lock.unlock();
    reap();
    const auto now = std::chrono::steady_clock::now();
    if (options_.control_mode == ModelControlMode::kPoll &&
        now - last_poll >= std::chrono::seconds(std::max(1, options_.repository_poll_seconds))) {
      poll();
      last_poll = std::chrono::steady_clock::now();
    }
    lock.lock();
  }
}

// Destroys retired versions nobody holds any more; destruction drains their
// queue and joins their workers.
void ModelManager::reap() {
  std::vector<std::shared_ptr<ModelVersion>> done;
  {
    std::lock_guard<std::mutex> lock(retired_mu_);
    for (auto it = retired_.begin(); it != retired_.end();) {
      if (it->use_count() == 1) {
        done.push_back(std::move(*it));
        it = retired_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& v : done) {
    std::string name = v->name();
    int64_t version = v->version();
    v.reset();
    telemetry::log_info("model_version_unloaded", {telemetry::field("model", name), telemetry::field("version", version)});
    // Its metrics go too, unless a reload put the same version back (which
    // then carries on with the same series).
    std::lock_guard<std::mutex> lock(load_mu_);
    if (registry_ != nullptr && !find(name, std::to_string(version)).ok())
      registry_->remove_series({{"model", name}, {"version", std::to_string(version)}});
  }
}

void ModelManager::shutdown() {
  {
    std::lock_guard<std::mutex> lock(bg_mu_);
    bg_stop_ = true;
  }
  bg_cv_.notify_all();
  if (bg_thread_.joinable()) bg_thread_.join();
  std::vector<std::shared_ptr<ModelVersion>> all;
  {
    std::unique_lock<std::shared_mutex> lock(mu_);
    for (auto& kv : entries_)
      for (auto& v : kv.second->ready) all.push_back(v.second);
    entries_.clear();
  }
  {
    std::lock_guard<std::mutex> lock(retired_mu_);
    all.insert(all.end(), retired_.begin(), retired_.end());
    retired_.clear();
  }
  for (auto& v : all) v->stop();
}

Result<std::shared_ptr<ModelVersion>> ModelManager::find(const std::string& name, const std::string& version) const {
  HEARTH_RETURN_IF_ERROR(validate_path_component(name, "model name"));
  int64_t wanted = 0;
  if (!version.empty()) {
    HEARTH_RETURN_IF_ERROR(validate_path_component(version, "model version"));
    HEARTH_ASSIGN_OR_RETURN(wanted, parse_version(version));
  }
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return not_found("unknown model '", name, "'");
  const Entry& e = *it->second;
  if (wanted == 0) {
    if (e.ready.empty())
      return Status(StatusCode::kUnavailable,
                    str_cat("model '", name, "' is not ready", e.reason.empty() ? "" : ": " + e.reason));
    return e.ready.rbegin()->second;
  }
  auto v = e.ready.find(wanted);
  if (v != e.ready.end()) return v->second;
  auto f = e.failed.find(wanted);
  if (f != e.failed.end())
    return Status(StatusCode::kUnavailable, str_cat("model '", name, "' version ", wanted, " is not ready: ", f->second));
  std::string have;
  for (const auto& kv : e.ready) have += (have.empty() ? "" : ", ") + std::to_string(kv.first);
  return not_found("model '", name, "' has no version ", wanted, " loaded (ready: ", have.empty() ? "none" : have, ")");
}

Result<std::vector<std::shared_ptr<ModelVersion>>> ModelManager::versions(const std::string& name) const {
  HEARTH_RETURN_IF_ERROR(validate_path_component(name, "model name"));
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return not_found("unknown model '", name, "'");
  std::vector<std::shared_ptr<ModelVersion>> out;
  for (const auto& kv : it->second->ready) out.push_back(kv.second);
  return out;
}

std::vector<std::shared_ptr<ModelVersion>> ModelManager::all_versions() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  std::vector<std::shared_ptr<ModelVersion>> out;
  for (const auto& kv : entries_)
    for (const auto& v : kv.second->ready) out.push_back(v.second);
  return out;
}

bool ModelManager::known(const std::string& name) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  return entries_.count(name) > 0;
}

std::vector<ModelIndexEntry> ModelManager::index(bool ready_only) const {
  std::vector<std::string> folders = list_model_folders();
  std::vector<ModelIndexEntry> out;
  std::shared_lock<std::shared_mutex> lock(mu_);
  for (const std::string& f : folders)
    if (!entries_.count(f) && !ready_only) out.push_back({f, "", "UNAVAILABLE", "not loaded"});
  for (const auto& kv : entries_) {
    const Entry& e = *kv.second;
    for (const auto& v : e.ready) out.push_back({e.name, std::to_string(v.first), "READY", ""});
    if (ready_only) continue;
    bool reason_shown = false;
    for (const auto& v : e.failed)
      if (!e.ready.count(v.first)) {
        out.push_back({e.name, std::to_string(v.first), "UNAVAILABLE", v.second});
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

bool ModelManager::ready() const {
  if (!startup_done_) return false;
  if (!options_.strict_readiness) return true;
  std::shared_lock<std::shared_mutex> lock(mu_);
  for (const auto& kv : entries_)
    if (kv.second->wanted && kv.second->ready.empty()) return false;
  return true;
}

}  // namespace hearth::serving
