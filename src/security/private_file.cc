// Owner-only files (see private_file.h).
#include "security/private_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace hearth::security {

namespace {

Status permission_denied(const std::string& msg) { return Status(StatusCode::kPermissionDenied, msg); }

std::string mode_string(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof(text), "0%o", static_cast<unsigned>(mode & 07777));
  return text;
}

// A regular file the current user owns and nobody else may use.
Status check_private_stat(const struct stat& st, const std::string& path, const std::string& what) {
  if (!S_ISREG(st.st_mode)) return invalid_argument(what, " ", path, " is not a regular file");
  if (st.st_uid != ::geteuid())
    return permission_denied(str_cat(what, " ", path, " is owned by uid ", st.st_uid, ", not by the current user (uid ",
                                     ::geteuid(), "); refusing to use it"));
  if ((st.st_mode & 077) != 0)
    return permission_denied(str_cat(what, " ", path, " has mode ", mode_string(st.st_mode),
                                     ", wider than 0600; refusing to use it (run: chmod 600 ", path, ")"));
  return ok_status();
}

}  // namespace

Status check_private_file(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return not_found(what, " ", path, " does not exist");
    return permission_denied(str_cat("cannot stat ", what, " ", path, ": ", std::strerror(errno)));
  }
  return check_private_stat(st, path, what);
}

Result<std::string> read_private_file(const std::string& path, const std::string& what, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return not_found(what, " ", path, " does not exist");
    return permission_denied(str_cat("cannot open ", what, " ", path, ": ", std::strerror(errno)));
  }
  struct stat st {};
  Status bad;
  if (::fstat(fd, &st) != 0) {
    bad = internal_error("cannot stat ", what, " ", path, ": ", std::strerror(errno));
  } else if (Status s = check_private_stat(st, path, what); !s.ok()) {
    bad = s;
  } else if (static_cast<size_t>(st.st_size) > max_bytes) {
    bad = invalid_argument(what, " ", path, " is ", st.st_size, " bytes, more than ", max_bytes);
  }
  if (!bad.ok()) {
    ::close(fd);
    return bad;
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  text.resize(got);
  return text;
}

Status write_new_private_file(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return internal_error("cannot create ", path, ": ", std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  bool ok = done == text.size() && ::fsync(fd) == 0;
  int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return internal_error("cannot write ", path, ": ", std::strerror(err));
  }
  return ok_status();
}

Status ensure_private_parent_dir(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) return ok_status();
  std::error_code ec;
  if (std::filesystem::exists(parent, ec)) return ok_status();
  std::filesystem::create_directories(parent, ec);
  if (ec) return internal_error("cannot create folder ", parent.string(), ": ", ec.message());
  std::filesystem::permissions(parent, std::filesystem::perms::owner_all, ec);
  return ok_status();
}

Status save_private_file(const std::string& path, const std::string& text, const std::string& what) {
  HEARTH_RETURN_IF_ERROR(ensure_private_parent_dir(path));
  std::string tmp = str_cat(path, ".tmp.", ::getpid());
  ::unlink(tmp.c_str());
  HEARTH_RETURN_IF_ERROR(write_new_private_file(tmp, text));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return internal_error("cannot replace ", what, " ", path, ": ", std::strerror(err));
  }
  return ok_status();
}

}  // namespace hearth::security
