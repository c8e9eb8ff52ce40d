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

// Writes y = Relu(x) with a FIXED leading dim: float x[rows,4] (for configs
// that must reject batching).
inline void write_fixed_relu_model(const std::filesystem::path& dir, int64_t rows) {
  onnx::ModelProto m = relu_model();
  auto* g = m.mutable_graph();
  g->clear_input();
  g->clear_output();
  set_tensor_type(g->add_input(), "x", onnx::TensorProto::FLOAT, {rows, 4});
  set_tensor_type(g->add_output(), "y", onnx::TensorProto::FLOAT, {rows, 4});
  std::string bytes;
  m.SerializeToString(&bytes);
  write_file(dir / "model.onnx", bytes);
}

// Writes a two-input, two-output model as <dir>/model.onnx:
//   sum = Add(a, b), pos = Relu(a); a, b, sum, pos float [N,4].
inline void write_two_io_model(const std::filesystem::path& dir) {
  onnx::ModelProto m = relu_model();
  auto* g = m.mutable_graph();
  g->clear_input();
  g->clear_output();
  g->clear_node();
  set_tensor_type(g->add_input(), "a", onnx::TensorProto::FLOAT, {-1, 4});
  set_tensor_type(g->add_input(), "b", onnx::TensorProto::FLOAT, {-1, 4});
  set_tensor_type(g->add_output(), "sum", onnx::TensorProto::FLOAT, {-1, 4});
  set_tensor_type(g->add_output(), "pos", onnx::TensorProto::FLOAT, {-1, 4});
  add_node(g, "Add", {"a", "b"}, {"sum"}, "add");
  add_node(g, "Relu", {"a"}, {"pos"}, "relu");
  std::string bytes;
  m.SerializeToString(&bytes);
  write_file(dir / "model.onnx", bytes);
}

}  // namespace hearth::testing
