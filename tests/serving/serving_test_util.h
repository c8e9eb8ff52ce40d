// Helpers for serving tests: temporary model repositories built from the
// small ONNX models of tests/graph/model_builder.h.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "graph/model_builder.h"
#include "serving/server.h"

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

// ---- InferenceServer test helpers (server_test.cc, server_scheduling_test.cc,
// model_control_test.cc) ----
namespace hearth::serving::test {

namespace fs = std::filesystem;
using hearth::testing::TempDir;
using hearth::testing::write_file;
using hearth::testing::write_relu_model;
using Clock = std::chrono::steady_clock;

inline InferInput fp32(const std::string& name, Shape shape, const std::vector<float>& data) {
  InferInput in;
  in.name = name;
  in.datatype = "FP32";
  in.shape = std::move(shape);
  in.data = Tensor::from_vector<float>(data, {static_cast<int64_t>(data.size())});
  return in;
}

// A request for y = Relu(x) with rows of 4 floats.
inline InferRequest relu_request(const std::vector<float>& data, const std::string& version = "",
                                 const std::string& model = "relu") {
  InferRequest r;
  r.model_name = model;
  r.model_version = version;
  r.inputs.push_back(fp32("x", {static_cast<int64_t>(data.size() / 4), 4}, data));
  return r;
}

inline std::vector<float> values(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

inline std::vector<float> relu(std::vector<float> v) {
  for (float& x : v) x = x < 0 ? 0 : x;
  return v;
}

inline int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// Waits up to `ms` for `pred`.
template <typename Pred>
bool eventually(Pred pred, int ms) {
  const auto end = Clock::now() + std::chrono::milliseconds(ms);
  while (Clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// Submits `request` and returns a future for its answer.
inline std::future<Result<InferResponse>> submit(InferenceServer& server, InferRequest request) {
  auto p = std::make_shared<std::promise<Result<InferResponse>>>();
  auto f = p->get_future();
  server.infer_async(std::move(request), [p](Result<InferResponse> r) { p->set_value(std::move(r)); });
  return f;
}

// A fixture owning a temporary repository and the servers started over it.
class ServerTest : public ::testing::Test {
 protected:
  fs::path model_dir(const std::string& model) { return dir_.path() / model; }
  void add_relu(const std::string& model, int version) { write_relu_model(model_dir(model) / std::to_string(version)); }
  void config(const std::string& model, const std::string& text) { write_file(model_dir(model) / "config.pbtxt", text); }

  std::unique_ptr<InferenceServer> start(ServerOptions options = {}) {
    options.model_repository = dir_.path().string();
    if (options.total_threads == 0) options.total_threads = 1;
    auto s = InferenceServer::create(options);
    EXPECT_TRUE(s.ok()) << s.status().to_string();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  static ServerOptions explicit_mode(std::vector<std::string> startup = {}) {
    ServerOptions o;
    o.control_mode = ModelControlMode::kExplicit;
    o.startup_models = std::move(startup);
    return o;
  }

  TempDir dir_;
};

}  // namespace hearth::serving::test
