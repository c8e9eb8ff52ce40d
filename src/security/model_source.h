// What the server needs to load encrypted models: read a package file from the
// repository and open it in memory, and build a KeyResolver from server flags.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "security/keystore.h"
#include "security/package.h"

namespace hearth::security {

// The file name of an encrypted model in a version folder: <version>/model.onnx.sm4.
inline constexpr const char* kEncryptedModelFileName = "model.onnx.sm4";

// Reads the package at `package_path` and opens it in memory (files[0] is the
// model, the rest its external data). Errors name the path.
Result<Package> load_encrypted_model(const std::string& package_path, const KeyResolver& keys,
                                     const OpenOptions& options = {});

// A whole file in a heap buffer that is not zero-filled first (packages are large).
// Releases a FileBuffer's memory (anonymous pages that may be huge pages).
struct FileBufferRelease {
  size_t length = 0;
  void operator()(char* p) const;
};
struct FileBuffer {
  std::unique_ptr<char[], FileBufferRelease> data;
  size_t size = 0;
  std::string_view view() const { return std::string_view(data.get(), size); }
};
Result<FileBuffer> read_file_buffer(const std::string& path);
// The same into a std::string.
Result<std::string> read_file_bytes(const std::string& path);

// A resolver from server flags: --model-key-store FILE (re-read at each load,
// so rotated keys are seen), --model-key-file FILE and the environment
// variable HEARTH_MODEL_KEY, tried in that order. nullptr when none is given.
// A key file or variable that is present but invalid is an error now.
Result<std::unique_ptr<KeyResolver>> make_server_key_resolver(const std::string& key_store,
                                                              const std::string& key_file);

}  // namespace hearth::security
