// Model upload through Triton's repository load parameters: a client sends
// the model's configuration ("config", Triton's model config as JSON) and its
// files ("file:<version>/<name>", bytes) with the load request, and Hearth
// writes them INTO the model repository before the normal (hot) load runs.
//
//   REST  POST /v2/repository/models/{m}/load
//         {"parameters": {"config": "<JSON>", "file:1/model.onnx": "<base64>"}}
//   gRPC  RepositoryModelLoad{parameters{"config": string_param,
//                                        "file:1/model.onnx": bytes_param}}
//
// Rules (each refusal is InvalidArgument naming the parameter and the problem):
//   - parameter names: "config" and "file:<path>" only; files need "config";
//   - <path> is "<version>/<name>" or "<version>/<sub>/.../<name>" (at most 8
//     components): version a positive integer without leading zeros; each
//     component non-empty, at most 255 bytes, not "." / "..", not starting
//     with '.', without '/', '\\' or NUL; no absolute path; no duplicates;
//   - each uploaded version holds model.onnx or model.onnx.sm4 (or the
//     config's default_model_filename);
//   - a version folder that already exists is AlreadyExists (versions are
//     immutable: upload a new number).
// Writing is atomic: everything goes to a staging folder inside the
// repository (".upload-<model>-<random>", same file system), files mode 0640
// and fsync'ed, then each version folder is renamed into <repo>/<model>/ (a
// new model's whole folder at once) and config.pbtxt replaced by rename. Any
// error removes the staging folder and whatever was already moved: never
// half a version.
// Thread safety: the functions are reentrant; callers serialize writes to
// one repository (InferenceServer does).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace hearth::repository {

inline constexpr std::string_view kUploadConfigParameter = "config";
inline constexpr std::string_view kUploadFilePrefix = "file:";
inline constexpr size_t kMaxUploadPathComponents = 8;

// One uploaded file: its path relative to the model folder and its bytes.
struct UploadFile {
  std::string path;  // "1/model.onnx", "2/weights/w.bin"
  std::string bytes;
};

// The upload parameters of one load request.
struct ModelUpload {
  std::optional<std::string> config_json;  // "config": Triton's model config as JSON
  std::vector<UploadFile> files;           // "file:<path>"

  bool empty() const { return !config_json && files.empty(); }
};

enum class LoadParameterKind { kConfig, kFile, kUnknown };

// What a load parameter name is: "config", "file:<path>", or anything else.
LoadParameterKind load_parameter_kind(std::string_view name);

// The error for a parameter that is neither "config" nor "file:<path>".
Status unsupported_load_parameter(std::string_view name);

// Checks a "file:" parameter's path (the part after "file:") and returns its
// version; errors name the parameter.
Result<int64_t> check_upload_path(const std::string& path);

// Triton's JSON model config -> config.pbtxt text for `model` (name filled in
// when absent), checked with check_model_config. Errors name the field.
Result<std::string> config_json_to_pbtxt(const std::string& json, const std::string& model);

// Everything that needs no file system: the model name, every path, the
// config, a model file in every version. Nothing is written.
Status validate_upload(const std::string& model, const ModelUpload& upload);

// What write_upload changed, so that undo_upload can put things back.
struct UploadReceipt {
  std::string model_dir;                    // <repo>/<model> (canonical repository)
  bool created_model = false;               // the model folder is new
  std::vector<int64_t> versions;            // version folders added
  bool config_written = false;
  std::optional<std::string> old_config;    // config.pbtxt before (nullopt: there was none)
};

// Validates, then writes the upload into <repository>/<model>/ atomically
// (see the file comment). A config alone needs an existing model folder
// (NotFound otherwise).
Result<UploadReceipt> write_upload(const std::string& repository, const std::string& model,
                                   const ModelUpload& upload);

// Removes what `receipt` added and restores the old config.pbtxt (used when
// the load that follows an upload fails). Best effort; returns the first error.
Status undo_upload(const UploadReceipt& receipt);

}  // namespace hearth::repository
