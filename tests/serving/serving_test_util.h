// Helpers for serving tests: temporary model repositories built from the
// small ONNX models of tests/graph/model_builder.h.
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "graph/model_builder.h"

namespace hearth::testing {

// A fresh folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("hearth_serving_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

// Writes y = Relu(x), float x[N,4], as <dir>/model.onnx.
inline void write_relu_model(const std::filesystem::path& dir) {
  std::string bytes;
  relu_model().SerializeToString(&bytes);
  write_file(dir / "model.onnx", bytes);
}

}  // namespace hearth::testing
