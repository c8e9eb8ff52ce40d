// Helpers shared by the upload tests of the repository, serving and frontend layers:
// a relu model and its upload, and a listing of a repository folder.
#pragma once

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "graph/model_builder.h"
#include "repository/model_upload.h"

namespace hearth::repository::test {

namespace fs = std::filesystem;

inline constexpr const char* kReluConfig =
    R"({"max_batch_size": 8, "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [4]}],
        "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": ["4"]}], "dynamic_batching": {}})";

inline std::string relu_bytes() {
  std::string bytes;
  hearth::testing::relu_model().SerializeToString(&bytes);
  return bytes;
}

inline ModelUpload relu_upload(int version, const std::string& config = kReluConfig) {
  ModelUpload u;
  u.config_json = config;
  u.files.push_back({std::to_string(version) + "/model.onnx", relu_bytes()});
  return u;
}

// Every entry under `dir` (recursively) with its size, and the entries of its
// parent that an escaping upload could have made (the parent is the shared
// temp folder, where other programs come and go).
inline std::set<std::string> listing(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code size_ec;
    auto size = it->is_regular_file(size_ec) ? fs::file_size(it->path(), size_ec) : 0;
    out.insert(fs::relative(it->path(), dir).string() + ":" + std::to_string(size));
  }
  for (fs::directory_iterator it(dir.parent_path(), ec), end; !ec && it != end; it.increment(ec))
  {
    const std::string name = it->path().filename().string();
    if (name[0] == '.' || name == "x" || name == "abs" || name == "etc" || name == "up" || name == "relu")
      out.insert("../" + name);
  }
  return out;
}

inline std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace hearth::repository::test
