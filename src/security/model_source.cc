// Loading encrypted models for the server (see model_source.h).
#include "security/model_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>

namespace hearth::security {

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
  FileBuffer buf;
  buf.data.reset(new (std::nothrow) char[st.st_size > 0 ? static_cast<size_t>(st.st_size) : 1]);
  if (!buf.data) {
    ::close(fd);
    return resource_exhausted(path, " (", st.st_size, " bytes) does not fit in memory");
  }
  size_t want = static_cast<size_t>(st.st_size);
  while (buf.size < want) {
    ssize_t n = ::read(fd, buf.data.get() + buf.size, want - buf.size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.size += static_cast<size_t>(n);
  }
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
