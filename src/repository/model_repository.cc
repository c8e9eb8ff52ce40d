// Repository scanning and the plan of one model (see model_repository.h).
#include "repository/model_repository.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <system_error>

#include "core/file_util.h"
#include "repository/model_config.h"
#include "security/model_source.h"
#include "telemetry/log.h"

namespace hearth::repository {
namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxConfigBytes = 1 << 20;

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
  const fs::path file = dir / "config.pbtxt";
  std::error_code ec;
  *present = fs::exists(file, ec);
  if (!*present) return std::string();
  auto text = read_file(file.string(), "config.pbtxt", kMaxConfigBytes);
  if (!text.ok()) return invalid_argument(text.status().message());
  return text;
}

}  // namespace

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

Result<ModelRepository> ModelRepository::open(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return not_found("model repository '", root, "' is not a folder");
  fs::path canonical = fs::canonical(root, ec);
  if (ec) return not_found("cannot resolve model repository '", root, "': ", ec.message());
  return ModelRepository(canonical.string());
}

std::vector<std::string> ModelRepository::model_names() const {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_directory(type_ec)) continue;
    std::string name = it->path().filename().string();
    if (!name.empty() && name[0] != '.') names.push_back(name);  // hidden: .git, editors' state, staging
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool ModelRepository::has_model(const std::string& name) const {
  std::error_code ec;
  return check_path_component(name, "model name").ok() && fs::is_directory(fs::path(root_) / name, ec);
}

Result<ModelPlan> ModelRepository::plan(const std::string& name, const VersionPins& pins) const {
  HEARTH_RETURN_IF_ERROR(check_path_component(name, "model name"));
  const fs::path dir = fs::path(root_) / name;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return not_found("model '", name, "' has no folder in the repository");
  ModelPlan plan;
  plan.name = name;
  bool has_config = false;
  auto text = read_config_text(dir, &has_config);
  plan.config_file = has_config ? name + "/config.pbtxt" : name + " (derived config)";
  if (!text.ok()) return invalid_argument(name, "/", relative(text.status().message()));
  plan.config_text = *text;
  if (has_config) {
    HEARTH_ASSIGN_OR_RETURN(plan.config, parse_model_config(plan.config_text, plan.config_file));
  }
  HEARTH_RETURN_IF_ERROR(check_model_config(plan.config, name, plan.config_file));
  const std::vector<int64_t> available = list_versions(dir);
  auto selected = select_versions(plan.config, available);
  if (!selected.ok())
    return Status(selected.status().code(), str_cat(plan.config_file, ": ", selected.status().message()));
  if (!pins.empty()) {
    std::set<int64_t> chosen(selected->begin(), selected->end());
    for (int64_t v : pins.hold)
      if (std::find(available.begin(), available.end(), v) != available.end()) chosen.insert(v);
    for (int64_t v : pins.exclude) chosen.erase(v);
    selected->assign(chosen.rbegin(), chosen.rend());  // newest first
    if (selected->empty()) return not_found(name, ": every version folder is excluded (rolled back by a release)");
  }
  if (selected->empty()) return not_found(name, ": no version folder (a positive integer) holding a model");

  const std::string filename =
      plan.config.default_model_filename().empty() ? kDefaultModelFilename : plan.config.default_model_filename();
  for (int64_t v : *selected) {
    VersionFile f;
    f.version = v;
    fs::path file = dir / std::to_string(v) / filename;
    // An encrypted package stands in for the plain file when that is absent.
    const fs::path package = dir / std::to_string(v) / security::kEncryptedModelFileName;
    f.encrypted = !fs::exists(file, ec) && fs::exists(package, ec);
    if (f.encrypted) file = package;
    f.fingerprint = fingerprint(file);
    fs::path real = fs::canonical(file, ec);
    if (ec || !fs::is_regular_file(real, ec)) {
      f.problem = not_found("version ", v, " has no ", filename, " (nor ", security::kEncryptedModelFileName, ")");
    } else if (!path_is_inside(fs::path(root_), real)) {
      f.problem = invalid_argument(name, "/", v, "/", file.filename().string(), " resolves outside the model repository");
    } else {
      f.path = real.string();
    }
    plan.versions.push_back(std::move(f));
  }
  return plan;
}

void ModelRepository::remove_stale_uploads() const {
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

std::string ModelRepository::relative(std::string message) const {
  const std::string prefix = root_ + "/";
  for (size_t at; (at = message.find(prefix)) != std::string::npos;) message.erase(at, prefix.size());
  return message;
}

}  // namespace hearth::repository
