// What the server needs to load models it must not trust blindly: read a model
// file once into memory, check it against its signature, open an encrypted
// package in place, and build a KeyResolver from server flags.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"
#include "security/keystore.h"
#include "security/package.h"
#include "security/signing.h"

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

// A model file as the server loads it: read once into memory, checked against its
// signature "<path>.sig" when `signers` is given (what is verified is exactly what
// loads), and for a package decrypted in place (the plaintext never touches disk).
// `model` and `external` view `buffer`; wipe() overwrites it once the sessions hold
// their own copies of the weights.
struct OpenedModel {
  std::shared_ptr<FileBuffer> buffer;
  std::string_view model;
  std::map<std::string, std::string_view> external;  // a package's external data files
  void wipe();
};
// `keys` is needed for a package (FailedPrecondition naming the flags otherwise);
// an unsigned model under `signers` is PermissionDenied.
Result<OpenedModel> open_model_file(const std::string& path, bool encrypted, const KeyResolver* keys,
                                    const TrustedSigners* signers);

// A resolver from server flags: --model-key-store FILE (re-read at each load,
// so rotated keys are seen), --model-key-file FILE and the environment
// variable HEARTH_MODEL_KEY, tried in that order. nullptr when none is given.
// A key file or variable that is present but invalid is an error now.
Result<std::unique_ptr<KeyResolver>> make_server_key_resolver(const std::string& key_store,
                                                              const std::string& key_file);

}  // namespace hearth::security
