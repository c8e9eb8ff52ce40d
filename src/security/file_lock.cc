// StoreLock: flock on "<store>.lock" (see file_lock.h).
#include "security/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "security/private_file.h"

namespace hearth::security {

Result<StoreLock> StoreLock::acquire(const std::string& store_path, int wait_ms) {
  const std::string path = store_path + ".lock";
  HEARTH_RETURN_IF_ERROR(ensure_private_parent_dir(path));  // owner-only, as the stores create theirs
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return internal_error("cannot open the lock file ", path, ": ", std::strerror(errno));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      int err = errno;
      ::close(fd);
      return internal_error("cannot lock ", path, ": ", std::strerror(err));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      ::close(fd);
      return Status(StatusCode::kUnavailable,
                    str_cat(path, " is held by another command for more than ", wait_ms / 1000, " s; try again"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return StoreLock(fd);
}

StoreLock& StoreLock::operator=(StoreLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

StoreLock::~StoreLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace hearth::security
