// `hearth encrypt` and `hearth decrypt`: seal a model (a file, or a folder
// with model.onnx and its external-data files) into an SM4 package, and open
// one again. The plaintext only ever exists in memory and in the files the
// owner asks `decrypt -o` to write. `decrypt --check` opens and loads the
// model in memory and writes nothing (also a load-time benchmark).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "runtime/session.h"
#include "security/crypto.h"
#include "security/keystore.h"
#include "security/model_source.h"
#include "security/package.h"

namespace hearth::cli {

namespace {

namespace fs = std::filesystem;
using security::Package;
using security::PackageFile;

struct CryptOptions {
  std::string input;
  std::string output;
  std::string key_id;
  std::string key_store;
  std::string key_file;
  bool check = false;
  bool force = false;
  bool json = false;
  int threads = 0;
};

// --key-file, else --key-store, else HEARTH_MODEL_KEY, else the default store.
Result<std::unique_ptr<security::KeyResolver>> cli_key_resolver(const CryptOptions& o) {
  if (!o.key_file.empty()) return security::key_from_file(o.key_file);
  if (o.key_store.empty()) {
    Result<std::unique_ptr<security::KeyResolver>> env = security::key_from_env();
    if (env.ok() || env.status().code() != StatusCode::kNotFound) return env;
  }
  std::string path = o.key_store.empty() ? security::KeyStore::default_path() : o.key_store;
  HEARTH_ASSIGN_OR_RETURN(security::KeyStore store, security::KeyStore::open(path));
  return std::unique_ptr<security::KeyResolver>(std::make_unique<security::KeyStore>(std::move(store)));
}

Result<std::string> read_file(const fs::path& path) { return security::read_file_bytes(path.string()); }

bool inside(const fs::path& root, const fs::path& p) {
  auto r = root.begin(), q = p.begin();
  for (; r != root.end(); ++r, ++q) {
    if (q == p.end() || *r != *q) return false;
  }
  return true;
}

// Relative names of the files a model folder packs: model.onnx first, then every
// other regular file (sorted) except config.pbtxt, *.sm4 and the output.
Result<std::vector<std::string>> folder_files(const fs::path& dir, const fs::path& output) {
  std::error_code ec;
  fs::path root = fs::canonical(dir, ec);
  if (ec) return not_found("cannot resolve ", dir.string(), ": ", ec.message());
  if (!fs::is_regular_file(dir / "model.onnx")) return not_found("folder ", dir.string(), " has no model.onnx");
  fs::path out = fs::weakly_canonical(output, ec);
  std::vector<std::string> rest;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const fs::path& p = it->path();
    std::string rel = p.lexically_relative(dir).generic_string();
    fs::path real = fs::canonical(p, ec);
    if (ec) return invalid_argument("cannot resolve ", p.string(), ": ", ec.message());
    if (!inside(root, real)) return invalid_argument(p.string(), " is a symlink leading out of ", dir.string());
    if (it->is_symlink() && fs::is_directory(real)) {
      return invalid_argument(p.string(), " is a symlinked folder; copy the files instead");
    }
    if (!fs::is_regular_file(real) || rel == "model.onnx" || rel == "config.pbtxt" || real == out ||
        p.extension() == ".sm4") {
      continue;
    }
    HEARTH_RETURN_IF_ERROR(security::validate_package_file_name(rel).with_context(p.string()));
    rest.push_back(rel);
  }
  if (ec) return internal_error("cannot list ", dir.string(), ": ", ec.message());
  std::sort(rest.begin(), rest.end());
  rest.insert(rest.begin(), "model.onnx");
  return rest;
}

Result<Package> read_model(const CryptOptions& o) {
  Package p;
  p.key_id = o.key_id;
  fs::path in(o.input);
  if (fs::is_directory(in)) {
    HEARTH_ASSIGN_OR_RETURN(std::vector<std::string> names, folder_files(in, o.output));
    for (const auto& name : names) {
      HEARTH_ASSIGN_OR_RETURN(std::string data, read_file(in / name));
      p.files.emplace_back(name, std::move(data));
    }
    return p;
  }
  HEARTH_ASSIGN_OR_RETURN(std::string data, read_file(in));
  p.files.emplace_back(in.filename().string(), std::move(data));
  return p;
}

// Writes bytes to a file; O_NOFOLLOW so a planted symlink is never written through.
Status write_file(const fs::path& path, std::string_view bytes, bool exclusive, mode_t mode) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (exclusive ? O_EXCL : O_TRUNC);
  int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) {
    if (errno == EEXIST) return Status(StatusCode::kAlreadyExists, str_cat(path.string(), " exists (use --force)"));
    return internal_error("cannot create ", path.string(), ": ", std::strerror(errno));
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  int err = errno;
  ::close(fd);
  if (done != bytes.size()) return internal_error("cannot write ", path.string(), ": ", std::strerror(err));
  return ok_status();
}

Status encrypt(const CryptOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(auto keys, cli_key_resolver(o));
  HEARTH_ASSIGN_OR_RETURN(security::Key key, keys->find(o.key_id));
  HEARTH_ASSIGN_OR_RETURN(Package plain, read_model(o));
  security::SealOptions so;
  so.threads = o.threads;
  HEARTH_ASSIGN_OR_RETURN(std::string bytes, security::seal_package(plain, key, so));
  HEARTH_RETURN_IF_ERROR(write_file(o.output, bytes, false, 0644));
  std::cout << "encrypted " << plain.files.size() << " file(s) from " << o.input << " with key " << key.id
            << " into " << o.output << " (" << bytes.size() << " bytes)\n";
  return ok_status();
}

// Writes each file under out_dir, refusing anything that would land outside it.
Status write_package(const Package& p, const std::string& out_dir, bool force) {
  std::error_code ec;
  if (!fs::exists(out_dir)) {
    fs::create_directories(out_dir, ec);
    if (ec) return internal_error("cannot create ", out_dir, ": ", ec.message());
    fs::permissions(out_dir, fs::perms::owner_all, ec);
  }
  fs::path root = fs::canonical(out_dir, ec);
  if (ec) return internal_error("cannot resolve ", out_dir, ": ", ec.message());
  for (const PackageFile& f : p.files) {
    HEARTH_RETURN_IF_ERROR(security::validate_package_file_name(f.name));
    fs::path target = root / f.name;
    fs::create_directories(target.parent_path(), ec);
    fs::path parent = fs::canonical(target.parent_path(), ec);
    if (ec || !inside(root, parent)) return invalid_argument(f.name, " would be written outside ", out_dir);
    HEARTH_RETURN_IF_ERROR(write_file(target, f.data, !force, 0600));
  }
  return ok_status();
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Opens the package in memory exactly as the server does (in place, no
// plaintext digest: the HMAC covers every byte) and loads the model with the
// engine; writes nothing.
Status check(security::FileBuffer& bytes, const security::KeyResolver& keys, double read_ms, const CryptOptions& o) {
  security::OpenOptions oo;
  oo.threads = o.threads;
  oo.check_plaintext_digest = false;
  auto t0 = std::chrono::steady_clock::now();
  Result<security::PackageView> p = security::open_package_in_place(bytes.data.get(), bytes.size, keys, oo);
  if (!p.ok()) return p.status().with_context(o.input);
  const double open_ms = ms_since(t0);
  nlohmann::json j{{"package", o.input}, {"key", p->key_id}, {"files", p->files.size()}, {"read_ms", read_ms},
                   {"open_ms", open_ms}};
  // External-data files stay in memory too (ExternalData::files).
  std::map<std::string, std::string_view> external;
  for (size_t i = 1; i < p->files.size(); ++i) external[p->files[i].first] = p->files[i].second;
  SessionOptions so;
  so.intra_op_threads = o.threads;
  t0 = std::chrono::steady_clock::now();
  auto session = Session::load_bytes(p->files[0].second.data(), p->files[0].second.size(), ExternalData{"", &external}, so);
  security::cleanse(bytes.data.get(), bytes.size);
  if (!session.ok()) return session.status().with_context(o.input);
  j["load_ms"] = ms_since(t0);
  j["total_ms"] = read_ms + open_ms + j["load_ms"].get<double>();
  j["inputs"] = (*session)->inputs().size();
  j["outputs"] = (*session)->outputs().size();
  if (o.json) {
    std::cout << j.dump() << "\n";
  } else {
    std::cout << "package " << o.input << " is authentic (key " << p->key_id << ", " << p->files.size()
              << " file(s)); read " << read_ms << " ms, open " << open_ms << " ms, model loaded in "
              << j["load_ms"].get<double>() << " ms\n";
  }
  return ok_status();
}

Status decrypt(const CryptOptions& o) {
  if (o.output.empty() == !o.check) return invalid_argument("decrypt needs exactly one of -o OUT_DIR and --check");
  HEARTH_ASSIGN_OR_RETURN(auto keys, cli_key_resolver(o));
  auto t0 = std::chrono::steady_clock::now();
  HEARTH_ASSIGN_OR_RETURN(security::FileBuffer bytes, security::read_file_buffer(o.input));
  const double read_ms = ms_since(t0);
  if (o.check) return check(bytes, *keys, read_ms, o);
  security::OpenOptions oo;
  oo.threads = o.threads;  // and the plaintext digest is checked before anything is written
  Result<Package> p = security::open_package(bytes.view(), *keys, oo);
  if (!p.ok()) return p.status().with_context(o.input);
  HEARTH_RETURN_IF_ERROR(write_package(*p, o.output, o.force));
  std::cout << "decrypted " << p->files.size() << " file(s) into " << o.output << "\n";
  return ok_status();
}

void add_key_source_options(CLI::App* cmd, CryptOptions& o) {
  auto* store = cmd->add_option("--key-store", o.key_store,
                                "key store file (default: $HEARTH_MODEL_KEY, else $HEARTH_KEY_STORE or "
                                "~/.config/hearth/keys)");
  auto* file = cmd->add_option("--key-file", o.key_file, "a standalone key file");
  store->excludes(file);
  cmd->add_option("--threads", o.threads, "threads for SM4/SM3 (0 = one per core, at most 16)");
}

}  // namespace

void add_keys_command(CLI::App& app);  // keys.cc

// Registers `keys`, `encrypt` and `decrypt`.
void add_security_commands(CLI::App& app) {
  add_keys_command(app);
  auto e = std::make_shared<CryptOptions>();
  CLI::App* enc = app.add_subcommand("encrypt", "Encrypt a model (file or folder) into an SM4 package");
  enc->add_option("model", e->input, "model.onnx, or a folder with model.onnx and its external-data files")
      ->required();
  enc->add_option("--key", e->key_id, "id of the key to encrypt with")->required();
  enc->add_option("-o,--output", e->output, "package to write (for a repository: <version>/model.onnx.sm4)")
      ->required();
  add_key_source_options(enc, *e);
  enc->callback([e] {
    Status s = encrypt(*e);
    if (!s.ok()) report_error(s);
  });

  auto d = std::make_shared<CryptOptions>();
  CLI::App* dec = app.add_subcommand("decrypt", "Decrypt a model package (owners; needs the key)");
  dec->add_option("package", d->input, "package file")->required();
  dec->add_option("-o,--output", d->output, "folder to write the files to");
  dec->add_flag("--check", d->check, "authenticate, decrypt and load the model in memory; write nothing");
  dec->add_flag("--force", d->force, "overwrite existing files in the output folder");
  dec->add_flag("--json", d->json, "--check: print one JSON object with timings");
  add_key_source_options(dec, *d);
  dec->callback([d] {
    Status s = decrypt(*d);
    if (!s.ok()) report_error(s);
  });
}

}  // namespace hearth::cli
