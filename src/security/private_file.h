// Files that hold secrets or grant access (the key store, the users and
// tokens file): read only when the current user owns them and nobody else
// may read or write them; written through a new 0600 file and an atomic
// rename, in a folder created owner-only.
#pragma once

#include <cstddef>
#include <string>

#include "core/status.h"

namespace hearth::security {

// The file's bytes. NOT_FOUND when missing; PERMISSION_DENIED when another
// user owns it or its mode is wider than 0600 (the message says `chmod 600`);
// INVALID_ARGUMENT when it is not a regular file or larger than max_bytes.
// Messages start with `what` and the path ("key store /home/u/.config/hearth/keys").
Result<std::string> read_private_file(const std::string& path, const std::string& what, size_t max_bytes);

// The same checks without reading: NOT_FOUND when missing, PERMISSION_DENIED
// for another owner or a mode wider than 0600, INVALID_ARGUMENT when not a
// regular file (the audit log, a database, is checked this way; `hearth doctor` too).
Status check_private_file(const std::string& path, const std::string& what);

// Writes `text` to a new file created with mode 0600 (O_EXCL | O_NOFOLLOW:
// never follows or reuses a file), fsynced; removed again on failure.
Status write_new_private_file(const std::string& path, const std::string& text);

// Creates the folder `path` goes in when it is missing, owner-only (0700).
Status ensure_private_parent_dir(const std::string& path);

// ensure_private_parent_dir, then `text` to "<path>.tmp.<pid>" with
// write_new_private_file, then rename over `path`.
Status save_private_file(const std::string& path, const std::string& text, const std::string& what);

}  // namespace hearth::security
