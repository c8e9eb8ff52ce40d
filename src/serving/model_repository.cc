// ModelRepository: scans <repo>/<model>/<version>/model.onnx and loads each
// model's latest version. See model_repository.h for the layout and contract.
#include "serving/model_repository.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <thread>

namespace hearth::serving {
namespace fs = std::filesystem;

namespace {

// True when `path` (canonical) lies inside `root` (canonical).
bool is_inside(const fs::path& root, const fs::path& path) {
  auto r = root.begin();
  auto p = path.begin();
  for (; r != root.end(); ++r, ++p) {
    if (p == path.end() || *r != *p) return false;
  }
  return true;
}

// The canonical form of `p`, or an error naming it.
Result<fs::path> canonical_path(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::canonical(p, ec);
  if (ec) return not_found("cannot resolve '", p.string(), "': ", ec.message());
  return c;
}

// Positive-integer subfolders of a model folder, highest first. Other entries
// (config.pbtxt, labels, hidden files) are ignored as Triton does.
std::vector<int64_t> list_versions(const fs::path& model_dir) {
  std::vector<int64_t> versions;
  std::error_code ec;
  for (fs::directory_iterator it(model_dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_directory(type_ec)) continue;
    auto v = parse_version(it->path().filename().string());
    if (v.ok()) versions.push_back(*v);
  }
  std::sort(versions.rbegin(), versions.rend());
  return versions;
}

// Loads the latest version of one model folder into `model`, or records why not.
void load_latest(const fs::path& root, const fs::path& model_dir, int threads, ServedModel& model) {
  // Reasons reach clients: name files relative to the repository, not by absolute path.
  auto fail = [&](std::string reason) {
    const std::string prefix = root.string() + "/";
    for (size_t at; (at = reason.find(prefix)) != std::string::npos;) reason.erase(at, prefix.size());
    model.state = ModelState::kUnavailable;
    model.reason = std::move(reason);
  };
  std::vector<int64_t> versions = list_versions(model_dir);
  if (versions.empty()) return fail("no version folder (a positive integer) holding model.onnx");
  model.version = versions.front();
  fs::path file = model_dir / std::to_string(model.version) / "model.onnx";
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return fail(str_cat("version ", model.version, " has no model.onnx"));
  auto real = canonical_path(file);
  if (!real.ok()) return fail(real.status().message());
  // A symlink may not lead a model out of the repository (path traversal).
  if (!is_inside(root, *real)) return fail(str_cat("'", file.string(), "' resolves outside the model repository"));
  SessionOptions options;
  options.intra_op_threads = threads;
  auto session = Session::load_file(real->string(), options);
  if (!session.ok()) return fail(str_cat("version ", model.version, ": ", session.status().message()));
  model.session = std::move(session).value();
  model.state = ModelState::kReady;
  model.reason.clear();
}

}  // namespace

Status validate_path_component(const std::string& value, const char* what) {
  if (value.empty()) return invalid_argument(what, " is empty");
  if (value == ".." || value.find("..") != std::string::npos)
    return invalid_argument(what, " '", value, "' may not contain '..'");
  if (value[0] == '.') return invalid_argument(what, " '", value, "' may not start with '.'");
  for (char c : value) {
    if (c == '/' || c == '\\' || c == '\0')
      return invalid_argument(what, " '", value, "' may not contain '/', '\\' or NUL");
  }
  return ok_status();
}

Result<int64_t> parse_version(const std::string& text) {
  if (text.empty() || text.size() > 18) return invalid_argument("version '", text, "' is not a positive integer");
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return invalid_argument("version '", text, "' is not a positive integer");
    v = v * 10 + (c - '0');
  }
  if (v <= 0) return invalid_argument("version '", text, "' is not a positive integer");
  return v;
}

Result<std::unique_ptr<ModelRepository>> ModelRepository::open(const std::string& root,
                                                                const RepositoryOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return not_found("model repository '", root, "' is not a folder");
  HEARTH_ASSIGN_OR_RETURN(fs::path real_root, canonical_path(root));
  std::unique_ptr<ModelRepository> repo(new ModelRepository());
  repo->root_ = real_root.string();

  std::vector<fs::path> dirs;
  for (fs::directory_iterator it(real_root, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_directory(type_ec)) continue;
    std::string name = it->path().filename().string();
    if (!name.empty() && name[0] == '.') continue;  // hidden folders (.git, editors' state)
    dirs.push_back(it->path());
  }
  if (ec) return not_found("cannot list model repository '", root, "': ", ec.message());
  std::sort(dirs.begin(), dirs.end());

  int cores = options.total_threads > 0 ? options.total_threads
                                        : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int per_model = dirs.empty() ? 1 : std::max(1, cores / static_cast<int>(dirs.size()));
  for (const fs::path& dir : dirs) {
    auto model = std::make_unique<ServedModel>();
    model->name = dir.filename().string();
    Status name_ok = validate_path_component(model->name, "model name");
    if (!name_ok.ok()) {
      model->reason = name_ok.message();
    } else {
      load_latest(real_root, dir, per_model, *model);
    }
    repo->models_.push_back(std::move(model));
  }
  return repo;
}

Result<const ServedModel*> ModelRepository::find(const std::string& name, const std::string& version) const {
  HEARTH_RETURN_IF_ERROR(validate_path_component(name, "model name"));
  int64_t wanted = 0;
  if (!version.empty()) {
    HEARTH_RETURN_IF_ERROR(validate_path_component(version, "model version"));
    HEARTH_ASSIGN_OR_RETURN(wanted, parse_version(version));
  }
  for (const auto& m : models_) {
    if (m->name != name) continue;
    if (wanted != 0 && wanted != m->version)
      return not_found("model '", name, "' version ", wanted, " is not loaded (loaded: ", m->version, ")");
    return static_cast<const ServedModel*>(m.get());
  }
  return not_found("unknown model '", name, "'");
}

}  // namespace hearth::serving
