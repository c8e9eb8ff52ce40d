#include "core/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace hearth {

Status write_file_atomically(const std::string& path, const std::string& text, unsigned mode) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return internal_error("cannot write '", tmp, "': ", std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = n < 0 ? errno : EIO;
      ::close(fd);
      ::unlink(tmp.c_str());
      return internal_error("cannot write '", tmp, "': ", std::strerror(e));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return internal_error("cannot write '", tmp, "': ", std::strerror(e));
  }
  if (::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return internal_error("cannot replace '", path, "': ", std::strerror(e));
  }
  return ok_status();
}

Result<std::string> read_file(const std::string& path, const char* what, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot read ", what, " '", path, "': ", std::strerror(errno));
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISREG(st.st_mode)) return invalid_argument(what, " '", path, "' is not a regular file");
    if (static_cast<uint64_t>(st.st_size) > max_bytes)
      return invalid_argument(what, " '", path, "' is larger than ", max_bytes, " bytes");
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return internal_error("cannot read ", what, " '", path, "': ", std::strerror(errno));
  std::string out = std::move(text).str();
  if (out.size() > max_bytes) return invalid_argument(what, " '", path, "' is larger than ", max_bytes, " bytes");
  return out;
}

bool path_is_inside(const std::filesystem::path& root, const std::filesystem::path& path) {
  auto r = root.begin();
  auto p = path.begin();
  for (; r != root.end(); ++r, ++p) {
    if (r->empty() && std::next(r) == root.end()) break;  // a trailing '/' of root
    if (p == path.end() || *r != *p) return false;
  }
  return true;
}

Status check_path_component(std::string_view value, const char* what) {
  if (value.empty()) return invalid_argument("empty ", what, " (\"//\" or a trailing '/')");
  if (value == "." || value == "..") return invalid_argument(what, " '", value, "' is not allowed in a path");
  if (value[0] == '.') return invalid_argument(what, " '", value, "' may not start with '.'");
  if (value.size() > kMaxPathComponentBytes)
    return invalid_argument(what, " is longer than ", kMaxPathComponentBytes, " bytes");
  for (char c : value)
    if (c == '/' || c == '\\' || c == '\0') return invalid_argument(what, " may not contain '/', '\\' or NUL");
  return ok_status();
}

}  // namespace hearth
