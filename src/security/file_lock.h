// StoreLock: an exclusive advisory lock (flock) on "<store>.lock", held by a
// command from reading a store file (users and tokens, keys) to saving it, so
// two commands run at the same moment cannot lose each other's changes (a
// revoked token coming back, say). Readers (the server) do not take it: saves
// are atomic renames.
#pragma once

#include <string>

#include "core/status.h"

namespace hearth::security {

class StoreLock {
 public:
  // Creates "<store_path>.lock" (mode 0600) if needed and locks it, waiting up
  // to `wait_ms` for another holder; UNAVAILABLE naming the file after that.
  static Result<StoreLock> acquire(const std::string& store_path, int wait_ms = 10000);

  StoreLock(StoreLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  StoreLock& operator=(StoreLock&& other) noexcept;
  StoreLock(const StoreLock&) = delete;
  StoreLock& operator=(const StoreLock&) = delete;
  ~StoreLock();

 private:
  explicit StoreLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace hearth::security
