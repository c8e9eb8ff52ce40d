// Loading encrypted models for the server (see model_source.h).
#include "security/model_source.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <algorithm>
#include <thread>
#include <vector>

#include <openssl/crypto.h>

namespace hearth::security {

namespace {

// Reads [0, size) of fd into dst with pread from a few threads, so the page
// faults of a fresh 100 MB buffer and the copy are shared among cores.
// Returns the bytes read from the start without a gap (short when the file
// shrank meanwhile).
size_t read_parallel(int fd, char* dst, size_t size) {
  constexpr size_t kPerThread = 16u << 20;
  size_t parts = std::clamp<size_t>(size / kPerThread, 1, std::min(4u, std::max(1u, std::thread::hardware_concurrency())));
  std::vector<size_t> got(parts, 0);
  auto read_part = [&](size_t i) {
    size_t begin = size * i / parts, end = size * (i + 1) / parts;
    while (begin + got[i] < end) {
      ssize_t n = ::pread(fd, dst + begin + got[i], end - begin - got[i], static_cast<off_t>(begin + got[i]));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got[i] += static_cast<size_t>(n);
    }
  };
  std::vector<std::thread> pool;
  try {
    for (size_t i = 1; i < parts; ++i) pool.emplace_back(read_part, i);
  } catch (const std::exception&) {
    for (size_t i = pool.size() + 1; i < parts; ++i) read_part(i);  // no threads left: read here
  }
  read_part(0);
  for (auto& t : pool) t.join();
  size_t total = 0;
  for (size_t i = 0; i < parts; ++i) {
    total += got[i];
    if (got[i] < size * (i + 1) / parts - size * i / parts) break;
  }
  return total;
}

}  // namespace

void FileBufferRelease::operator()(char* p) const {
  if (p) ::munmap(p, length);
}

Result<FileBuffer> read_file_buffer(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return not_found(path, " does not exist");
    return internal_error("cannot open ", path, ": ", std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return invalid_argument(path, " is not a regular file");
  }
  // Anonymous memory that may use huge pages: a 100 MB model otherwise costs
  // ~25,000 page faults while it is read.
  FileBuffer buf;
  const size_t length = st.st_size > 0 ? static_cast<size_t>(st.st_size) : 1;
  void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p != MAP_FAILED) {
    ::madvise(p, length, MADV_HUGEPAGE);
    buf.data = std::unique_ptr<char[], FileBufferRelease>(static_cast<char*>(p), FileBufferRelease{length});
  }
  if (!buf.data) {
    ::close(fd);
    return resource_exhausted(path, " (", st.st_size, " bytes) does not fit in memory");
  }
  buf.size = read_parallel(fd, buf.data.get(), static_cast<size_t>(st.st_size));
  ::close(fd);  // a file that shrank meanwhile reads short: the package parser reports it truncated
  return buf;
}

Result<std::string> read_file_bytes(const std::string& path) {
  HEARTH_ASSIGN_OR_RETURN(FileBuffer buf, read_file_buffer(path));
  return std::string(buf.view());
}

Result<Package> load_encrypted_model(const std::string& package_path, const KeyResolver& keys,
                                     const OpenOptions& options) {
  Result<FileBuffer> bytes = read_file_buffer(package_path);
  if (!bytes.ok()) return bytes.status().with_context("encrypted model");
  Result<Package> pkg = open_package(bytes->view(), keys, options);
  if (!pkg.ok()) return pkg.status().with_context(package_path);
  return pkg;
}

void OpenedModel::wipe() {
  if (buffer) OPENSSL_cleanse(buffer->data.get(), buffer->size);
}

Result<OpenedModel> open_model_file(const std::string& path, bool encrypted, const KeyResolver* keys,
                                    const TrustedSigners* signers) {
  if (encrypted && !keys)
    return failed_precondition("an encrypted model needs a key: start the server with --model-key-store, "
                               "--model-key-file or HEARTH_MODEL_KEY");
  OpenedModel out;
  HEARTH_ASSIGN_OR_RETURN(FileBuffer bytes, read_file_buffer(path));
  out.buffer = std::make_shared<FileBuffer>(std::move(bytes));
  if (signers) {
    const std::string sig_path = path + kSignatureSuffix;
    auto signature = read_file_bytes(sig_path);
    if (!signature.ok() && signature.status().code() == StatusCode::kNotFound)
      return Status(StatusCode::kPermissionDenied, str_cat("model ", path, " is not signed (no ", sig_path,
                                                           ") and this server loads signed models only"));
    if (!signature.ok()) return signature.status();
    HEARTH_RETURN_IF_ERROR(signers->verify(out.buffer->view(), *signature, path));
  }
  if (!encrypted) {
    out.model = out.buffer->view();
    return out;
  }
  OpenOptions open;
  open.check_plaintext_digest = false;  // the HMAC authenticates every byte (see package.h)
  auto package = open_package_in_place(out.buffer->data.get(), out.buffer->size, *keys, open);
  if (!package.ok()) return Status(package.status().code(), str_cat(path, ": ", package.status().message()));
  out.model = package->files[0].second;
  for (size_t i = 1; i < package->files.size(); ++i) out.external[package->files[i].first] = package->files[i].second;
  return out;
}

Result<std::unique_ptr<KeyResolver>> make_server_key_resolver(const std::string& key_store,
                                                              const std::string& key_file) {
  std::vector<std::unique_ptr<KeyResolver>> parts;
  if (!key_store.empty()) {
    // Validate now (permissions, syntax) so a bad store fails at start, not at the first load.
    HEARTH_RETURN_IF_ERROR(KeyStore::open(key_store).status());
    parts.push_back(std::make_unique<KeyStoreFileResolver>(key_store));
  }
  if (!key_file.empty()) {
    HEARTH_ASSIGN_OR_RETURN(std::unique_ptr<KeyResolver> k, key_from_file(key_file));
    parts.push_back(std::move(k));
  }
  Result<std::unique_ptr<KeyResolver>> env = key_from_env(kModelKeyEnv);
  if (env.ok()) {
    parts.push_back(std::move(env).value());
  } else if (env.status().code() != StatusCode::kNotFound) {
    return env.status();
  }
  if (parts.empty()) return std::unique_ptr<KeyResolver>();
  if (parts.size() == 1) return std::move(parts[0]);
  return std::unique_ptr<KeyResolver>(std::make_unique<ChainKeyResolver>(std::move(parts)));
}

}  // namespace hearth::security
