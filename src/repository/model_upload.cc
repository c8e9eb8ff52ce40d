// Model upload: validation of Triton's load parameters, staging inside the
// repository and the atomic move into place. See model_upload.h.
#include "repository/model_upload.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>

#include "model_config.pb.h"
#include "security/crypto.h"
#include "security/model_source.h"
#include "core/file_util.h"
#include "repository/model_config.h"
#include "repository/model_repository.h"

namespace hearth::repository {
namespace fs = std::filesystem;

namespace {

constexpr mode_t kFileMode = 0640;
constexpr mode_t kDirMode = 0750;
constexpr size_t kMaxModelNameBytes = 200;  // leaves room for the staging folder's prefix and suffix

std::string parameter_name(const std::string& path) { return str_cat(kUploadFilePrefix, path); }

std::vector<std::string> split(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      parts.push_back(path.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

Status check_model_name(const std::string& model) {
  HEARTH_RETURN_IF_ERROR(check_path_component(model, "model name"));
  if (model.size() > kMaxModelNameBytes)
    return invalid_argument("model name is longer than ", kMaxModelNameBytes, " bytes");
  return ok_status();
}

// Errors of the libc calls below, naming the file relative to the repository.
Status io_error(const std::string& what, const std::string& rel, int err) {
  return internal_error("upload: cannot ", what, " ", rel, ": ", std::strerror(err));
}

Status write_all(int fd, const std::string& bytes, const std::string& rel) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return io_error("write", rel, n < 0 ? errno : EIO);
    done += static_cast<size_t>(n);
  }
  return ok_status();
}

// Creates `path` (which must not exist), mode 0640 whatever the umask, and
// writes and fsyncs `bytes`.
Status write_new_file(const fs::path& path, const std::string& bytes, const std::string& rel) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, kFileMode);
  if (fd < 0) return io_error("create", rel, errno);
  Status s = ::fchmod(fd, kFileMode) == 0 ? write_all(fd, bytes, rel) : io_error("chmod", rel, errno);
  if (s.ok() && ::fsync(fd) != 0) s = io_error("fsync", rel, errno);
  if (::close(fd) != 0 && s.ok()) s = io_error("close", rel, errno);
  return s;
}

Status make_dir(const fs::path& path, const std::string& rel) {
  if (::mkdir(path.c_str(), kDirMode) != 0) return io_error("create folder", rel, errno);
  if (::chmod(path.c_str(), kDirMode) != 0) return io_error("chmod", rel, errno);
  return ok_status();
}

void fsync_dir(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

// rename(2) that refuses to replace `to` (renameat2 RENAME_NOREPLACE; on file
// systems without it, a check then a plain rename).
int rename_noreplace(const fs::path& from, const fs::path& to) {
#ifdef RENAME_NOREPLACE
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
#endif
  struct stat st;
  if (::lstat(to.c_str(), &st) == 0) return EEXIST;
  return ::rename(from.c_str(), to.c_str()) == 0 ? 0 : errno;
}

Result<std::string> read_text(const fs::path& file) {
  auto text = read_file(file.string(), "file");
  if (!text.ok()) return internal_error("upload: cannot read ", file.filename().string());
  return text;
}

// A checked upload: the config text to write and the files per version.
struct Prepared {
  std::optional<std::string> config_text;
  std::map<int64_t, std::vector<const UploadFile*>> versions;
};

Result<Prepared> prepare(const std::string& model, const ModelUpload& upload) {
  HEARTH_RETURN_IF_ERROR(check_model_name(model));
  Prepared p;
  if (upload.empty()) return invalid_argument("the load request uploads nothing");
  if (!upload.files.empty() && !upload.config_json)
    return invalid_argument("uploading files needs the \"config\" parameter too (the model config as JSON)");
  std::string default_file = kDefaultModelFilename;
  if (upload.config_json) {
    HEARTH_ASSIGN_OR_RETURN(std::string text, config_json_to_pbtxt(*upload.config_json, model));
    inference::ModelConfig config;
    (void)google::protobuf::TextFormat::ParseFromString(text, &config);
    if (!config.default_model_filename().empty()) default_file = config.default_model_filename();
    p.config_text = std::move(text);
  }
  std::set<std::string> files, dirs;
  for (const UploadFile& f : upload.files) {
    HEARTH_ASSIGN_OR_RETURN(int64_t version, check_upload_path(f.path));
    if (!files.insert(f.path).second) return invalid_argument("parameter '", parameter_name(f.path), "' is given twice");
    const std::vector<std::string> parts = split(f.path);
    std::string prefix = parts[0];
    for (size_t i = 1; i + 1 < parts.size(); ++i) {
      prefix += "/" + parts[i];
      dirs.insert(prefix);
    }
    p.versions[version].push_back(&f);
  }
  for (const std::string& d : dirs)
    if (files.count(d)) return invalid_argument("parameter '", parameter_name(d), "' is a file and a folder at once");
  for (const auto& [version, list] : p.versions) {
    const std::string v = std::to_string(version);
    if (!files.count(v + "/" + default_file) && !files.count(v + "/" + security::kEncryptedModelFileName))
      return invalid_argument("version ", v, " of '", model, "' has no model file: upload \"file:", v, "/",
                              default_file, "\" (or \"file:", v, "/", security::kEncryptedModelFileName, "\")");
  }
  return p;
}

// Writes every file of `p` under `staging` (which exists and is empty).
Status stage(const fs::path& staging, const std::string& model, const Prepared& p) {
  std::set<std::string> made;
  for (const auto& [version, list] : p.versions) {
    for (const UploadFile* f : list) {
      const std::vector<std::string> parts = split(f->path);
      std::string rel;
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        rel += (i ? "/" : "") + parts[i];
        if (made.insert(rel).second) HEARTH_RETURN_IF_ERROR(make_dir(staging / rel, model + "/" + rel));
      }
      HEARTH_RETURN_IF_ERROR(write_new_file(staging / f->path, f->bytes, model + "/" + f->path));
    }
  }
  if (p.config_text)
    HEARTH_RETURN_IF_ERROR(write_new_file(staging / "config.pbtxt", *p.config_text, model + "/config.pbtxt"));
  for (auto it = made.rbegin(); it != made.rend(); ++it) fsync_dir(staging / *it);
  fsync_dir(staging);
  return ok_status();
}

// Removes the staging folder whatever happens.
class StagingFolder {
 public:
  explicit StagingFolder(fs::path path) : path_(std::move(path)) {}
  ~StagingFolder() {
    std::error_code ec;
    fs::remove_all(path_, ec);  // does not follow links
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The existing model folder: a folder (or a link to one) inside the repository.
Result<bool> model_folder_exists(const fs::path& root, const fs::path& dir, const std::string& model) {
  std::error_code ec;
  fs::file_status st = fs::symlink_status(dir, ec);
  if (ec || !fs::exists(st)) return false;
  fs::path real = fs::canonical(dir, ec);
  if (ec || !fs::is_directory(real, ec)) return failed_precondition("'", model, "' in the repository is not a folder");
  if (!path_is_inside(root, real)) return invalid_argument("model folder '", model, "' resolves outside the repository");
  return true;
}

// Moves the staged versions and config into an existing model folder.
Status move_into(const fs::path& staging, const fs::path& dir, const std::string& model, const Prepared& p,
                 UploadReceipt& receipt) {
  for (const auto& kv : p.versions) {
    const std::string v = std::to_string(kv.first);
    int err = rename_noreplace(staging / v, dir / v);
    if (err == EEXIST || err == ENOTEMPTY)
      return Status(StatusCode::kAlreadyExists, str_cat("version ", v, " of '", model, "' exists; upload a new version number"));
    if (err != 0) return io_error("move into place", model + "/" + v, err);
    receipt.versions.push_back(kv.first);
  }
  if (p.config_text) {
    const fs::path config = dir / "config.pbtxt";
    std::error_code ec;
    if (fs::exists(fs::symlink_status(config, ec))) {
      HEARTH_ASSIGN_OR_RETURN(receipt.old_config, read_text(config));
    }
    if (::rename((staging / "config.pbtxt").c_str(), config.c_str()) != 0)
      return io_error("replace", model + "/config.pbtxt", errno);
    receipt.config_written = true;
  }
  fsync_dir(dir);
  return ok_status();
}

}  // namespace

LoadParameterKind load_parameter_kind(std::string_view name) {
  if (name == kUploadConfigParameter) return LoadParameterKind::kConfig;
  if (name.substr(0, kUploadFilePrefix.size()) == kUploadFilePrefix) return LoadParameterKind::kFile;
  return LoadParameterKind::kUnknown;
}

Status unsupported_load_parameter(std::string_view name) {
  return invalid_argument("load parameter '", name, "' is not supported (only \"config\" and \"file:<version>/<name>\")");
}

Result<int64_t> check_upload_path(const std::string& path) {
  const std::string param = parameter_name(path);
  if (path.empty()) return invalid_argument("parameter '", param, "' names no file");
  if (path[0] == '/') return invalid_argument("parameter '", param, "': an absolute path is not allowed");
  const std::vector<std::string> parts = split(path);
  if (parts.size() > kMaxUploadPathComponents)
    return invalid_argument("parameter '", param, "': more than ", kMaxUploadPathComponents, " path components");
  for (const std::string& c : parts) {
    HEARTH_RETURN_IF_ERROR(check_path_component(c, "path component").with_context(str_cat("parameter '", param, "'")));
  }
  if (parts.size() < 2)
    return invalid_argument("parameter '", param, "': the path must be <version>/<file name>");
  auto version = parse_version(parts[0]);
  if (!version.ok()) return invalid_argument("parameter '", param, "': ", version.status().message());
  return *version;
}

Result<std::string> config_json_to_pbtxt(const std::string& json, const std::string& model) {
  const std::string file = model + "/config.pbtxt (uploaded)";
  inference::ModelConfig config;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto parsed = google::protobuf::util::JsonStringToMessage(json, &config, options);
  if (!parsed.ok()) return invalid_argument("parameter 'config' is not a valid model config: ", parsed.ToString());
  if (config.name().empty()) config.set_name(model);
  HEARTH_RETURN_IF_ERROR(check_model_config(config, model, file));
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(config, &text))
    return internal_error("cannot print the uploaded model config");
  // The text must read back the way the repository reads it.
  HEARTH_RETURN_IF_ERROR(parse_model_config(text, file).status());
  return "# written by a model upload (repository load with parameters)\n" + text;
}

Status validate_upload(const std::string& model, const ModelUpload& upload) { return prepare(model, upload).status(); }

Result<UploadReceipt> write_upload(const std::string& repository, const std::string& model,
                                   const ModelUpload& upload) {
  HEARTH_ASSIGN_OR_RETURN(Prepared p, prepare(model, upload));
  std::error_code ec;
  const fs::path root = fs::canonical(repository, ec);
  if (ec || !fs::is_directory(root, ec)) return not_found("model repository '", repository, "' is not a folder");
  UploadReceipt receipt;
  const fs::path dir = root / model;
  receipt.model_dir = dir.string();
  HEARTH_ASSIGN_OR_RETURN(bool exists, model_folder_exists(root, dir, model));
  if (!exists && p.versions.empty())
    return not_found("model '", model, "' has no folder in the repository: upload its files with the config");
  for (const auto& kv : p.versions)
    if (exists && fs::exists(fs::symlink_status(dir / std::to_string(kv.first), ec)))
      return Status(StatusCode::kAlreadyExists,
                    str_cat("version ", kv.first, " of '", model, "' exists; upload a new version number"));

  HEARTH_ASSIGN_OR_RETURN(std::string nonce, security::random_bytes(8));
  StagingFolder staging(root / str_cat(".upload-", model, "-", security::to_hex(nonce)));
  HEARTH_RETURN_IF_ERROR(make_dir(staging.path(), staging.path().filename().string()));
  HEARTH_RETURN_IF_ERROR(stage(staging.path(), model, p));
  if (!exists) {  // a new model: its whole folder appears at once
    int err = rename_noreplace(staging.path(), dir);
    if (err == EEXIST || err == ENOTEMPTY)
      return Status(StatusCode::kAlreadyExists, str_cat("model '", model, "' appeared during the upload; retry"));
    if (err != 0) return io_error("move into place", model, err);
    fsync_dir(root);
    receipt.created_model = true;
    for (const auto& kv : p.versions) receipt.versions.push_back(kv.first);
    receipt.config_written = p.config_text.has_value();
    return receipt;
  }
  Status moved = move_into(staging.path(), dir, model, p, receipt);
  if (!moved.ok()) {
    (void)undo_upload(receipt);
    return moved;
  }
  return receipt;
}

Status undo_upload(const UploadReceipt& receipt) {
  const fs::path dir = receipt.model_dir;
  std::error_code ec;
  Status first = ok_status();
  auto note = [&](Status s) {
    if (first.ok() && !s.ok()) first = s;
  };
  if (receipt.created_model) {
    fs::remove_all(dir, ec);
    if (ec) note(internal_error("upload rollback: cannot remove ", dir.filename().string(), ": ", ec.message()));
    fsync_dir(dir.parent_path());
    return first;
  }
  for (int64_t v : receipt.versions) {
    fs::remove_all(dir / std::to_string(v), ec);
    if (ec) note(internal_error("upload rollback: cannot remove version ", v, ": ", ec.message()));
  }
  if (receipt.config_written) {
    const fs::path config = dir / "config.pbtxt";
    if (!receipt.old_config) {
      fs::remove(config, ec);
    } else {
      HEARTH_ASSIGN_OR_RETURN(std::string nonce, security::random_bytes(8));
      const fs::path temp = dir / str_cat(".config.pbtxt.", security::to_hex(nonce));
      Status s = write_new_file(temp, *receipt.old_config, "config.pbtxt");
      if (s.ok() && ::rename(temp.c_str(), config.c_str()) != 0) s = io_error("restore", "config.pbtxt", errno);
      if (!s.ok()) fs::remove(temp, ec);
      note(s);
    }
  }
  fsync_dir(dir);
  return first;
}

}  // namespace hearth::repository
