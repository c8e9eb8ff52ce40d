// Files and paths, one helper per job for every layer: reading a whole file, checking
// that a path stays inside a folder, and the one rule for a name that becomes a path
// component (a model name, a version folder, an uploaded file's path parts).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/status.h"

namespace hearth {

// The whole of `path`; `what` names it in errors ("policy file", "certificate").
// NotFound when it cannot be opened, InvalidArgument when it is larger than
// `max_bytes` or not a regular file, Internal on a read error.
Result<std::string> read_file(const std::string& path, const char* what = "file", size_t max_bytes = SIZE_MAX);

// Replaces `path` with `text` atomically: a temporary file beside it (mode
// `mode`), written and fsync'ed, then renamed over it; an interrupted write
// leaves the old file (or none) and no temporary.
Status write_file_atomically(const std::string& path, const std::string& text, unsigned mode = 0644);

// True when `path` is `root` or lies under it, comparing whole components (both
// should be canonical: symlinks resolved, no "..").
bool path_is_inside(const std::filesystem::path& root, const std::filesystem::path& path);

// The longest path component accepted (as ext4 and most file systems).
constexpr size_t kMaxPathComponentBytes = 255;

// `value` as one path component: not empty, not starting with '.' (so neither "."
// nor ".." nor a hidden file), no '/', '\' or NUL, at most kMaxPathComponentBytes.
// InvalidArgument naming `what` and the problem otherwise.
Status check_path_component(std::string_view value, const char* what);

}  // namespace hearth
