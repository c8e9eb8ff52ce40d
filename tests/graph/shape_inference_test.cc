// Import-time inference (graph/shape_inference.h): on real models it finds what
// libonnx's whole-model InferShapes finds (the reference), and on the inputs that
// crash libonnx 1.12's inference functions it skips the node instead of calling them.
#include "graph/shape_inference.h"

#include <gtest/gtest.h>
#include <onnx/shape_inference/implementation.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/checked_math.h"
#include "graph/model_builder.h"
#include "graph/onnx_import.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;
using testing::ModelSketch;
using testing::set_int;
using testing::set_ints;

constexpr int kF = onnx::TensorProto::FLOAT;

fs::path build_dir() {
  const char* b = std::getenv("HEARTH_BUILD_DIR");
  return fs::path(b ? b : HEARTH_BUILD_DIR_DEFAULT);
}

TEST(ShapeInference, finds_what_libonnx_finds_on_the_reference_models) {
  int models = 0;
  for (const char* name : {"resnet18", "mobilenet_v2", "efficientnet_b0", "bert_encoder", "squeezenet1_1", "mlp"}) {
    const fs::path path = build_dir() / "zoo" / (std::string(name) + ".onnx");
    if (!fs::exists(path)) continue;
    ++models;
    onnx::ModelProto mp;
    std::ifstream in(path, std::ios::binary);
    ASSERT_TRUE(mp.ParseFromIstream(&in)) << path;
    onnx::shape_inference::InferShapes(mp);
    auto model = load_model_file(path.string());
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    int compared = 0;
    for (const auto& vi : mp.graph().value_info()) {
      const auto& tt = vi.type().tensor_type();
      if (model->graph.initializers.count(vi.name())) continue;  // Constant nodes become initializers
      auto it = model->graph.value_info.find(vi.name());
      ASSERT_NE(it, model->graph.value_info.end()) << name << ": no type for " << vi.name();
      EXPECT_EQ(static_cast<int>(it->second.dtype), tt.elem_type()) << name << " " << vi.name();
      ASSERT_EQ(it->second.has_shape, tt.has_shape()) << name << " " << vi.name();
      ASSERT_EQ(it->second.dims.size(), static_cast<size_t>(tt.shape().dim_size())) << name << " " << vi.name();
      for (int d = 0; d < tt.shape().dim_size(); ++d) {
        const auto& dim = tt.shape().dim(d);
        EXPECT_EQ(it->second.dims[d], dim.has_dim_value() ? dim.dim_value() : -1) << name << " " << vi.name();
      }
      ++compared;
    }
    EXPECT_GT(compared, 0) << name;
  }
  if (models == 0) GTEST_SKIP() << "no zoo models under " << build_dir() << " (make zoo)";
}

// Each of these reached a SIGFPE or SIGSEGV inside libonnx 1.12's inference (found by
// feeding every schema hostile attributes and input ranks). Importing must not crash;
// the node is then either refused by its schema or left without inferred types.
TEST(ShapeInference, skips_inputs_that_crash_libonnx) {
  std::vector<std::pair<std::string, ModelSketch>> cases;
  {
    ModelSketch m;
    m.input("x", kF, {1, 1, 4, 4}).floats("w", {1, 1, 2, 2});
    set_ints(m.node("Conv", {"x", "w"}, {"y"}), "strides", {0, 0});
    cases.emplace_back("Conv strides 0", m);
  }
  {
    ModelSketch m;
    m.input("x", kF, {4, 4}).floats("w", {1, 1, 2, 2});
    m.node("Conv", {"x", "w"}, {"y"});
    cases.emplace_back("Conv of a rank-2 input", m);
  }
  {
    ModelSketch m;
    m.input("x", kF, {1, 1, 4, 4}).floats("w", {3});
    m.node("ConvTranspose", {"x", "w"}, {"y"});
    cases.emplace_back("ConvTranspose of rank-1 weights", m);
  }
  {
    ModelSketch m;
    m.input("x", kF, {1, 8, 2, 2});
    set_int(m.node("DepthToSpace", {"x"}, {"y"}), "blocksize", int64_t{1} << 62);
    cases.emplace_back("DepthToSpace blocksize 2^62", m);
  }
  {
    ModelSketch m;
    m.input("x", kF, {}).floats("s", {1});
    m.node("LayerNormalization", {"x", "s"}, {"y"});
    cases.emplace_back("LayerNormalization of a scalar", m);
  }
  {
    ModelSketch m;
    m.input("x", kF, {2, 3, 4, 5}).floats("s", {1});
    set_int(m.node("LayerNormalization", {"x", "s"}, {"y"}), "axis", std::numeric_limits<int64_t>::max());
    cases.emplace_back("LayerNormalization axis out of range", m);
  }
  {
    ModelSketch m;
    m.input("x", kF, {16}).ints("step", {4}, {});
    m.node("STFT", {"x", "step"}, {"y"});
    cases.emplace_back("STFT of a rank-1 signal", m);
  }
  {
    ModelSketch m;
    m.input("x", kF, {2, 3}).ints("split", {0}, {});
    m.node("SplitToSequence", {"x", "split"}, {"y"});
    cases.emplace_back("SplitToSequence split 0", m);
  }
  {
    ModelSketch m;
    m.input("x", kF, {2, 3});
    set_int(m.node("Scan", {"x"}, {"y"}), "num_scan_inputs", 1);
    cases.emplace_back("Scan without a body", m);
  }
  {
    ModelSketch m;
    m.ints("a", {0}, {}).ints("b", {10}, {}).ints("d", {0}, {});
    m.node("Range", {"a", "b", "d"}, {"y"});
    cases.emplace_back("Range with a zero delta", m);
  }
  for (auto& [what, m] : cases) {
    m.output("y");
    const std::string bytes = m.bytes();
    auto model = load_model_bytes(bytes.data(), bytes.size(), "");
    if (model.ok()) {
      EXPECT_EQ(model->graph.value_info.count("y"), 0u) << what << ": inferred a type for y";
    } else {
      EXPECT_NE(model.status().message().find("schema"), std::string::npos) << what << ": " << model.status().to_string();
    }
  }
}

TEST(ShapeInference, huge_declared_dims_reach_libonnx_as_unknown) {
  ModelSketch m;
  m.input("x", kF, {int64_t{1} << 40, int64_t{1} << 40}).ints("r", {int64_t{1} << 30, 4});
  m.node("Tile", {"x", "r"}, {"y"});
  m.output("y");
  const std::string bytes = m.bytes();
  auto model = load_model_bytes(bytes.data(), bytes.size(), "");
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  auto it = model->graph.value_info.find("y");
  ASSERT_NE(it, model->graph.value_info.end());
  EXPECT_EQ(it->second.dims, (std::vector<int64_t>{-1, -1}));  // the rank, not the wrapped product
}

TEST(CheckedMath, refuses_negative_dims_and_overflow_in_any_order) {
  EXPECT_EQ(checked_numel({2, 3, 4}).value(), 24);
  EXPECT_EQ(checked_numel({}).value(), 1);
  EXPECT_EQ(checked_numel({0, int64_t{1} << 40}).value(), 0);
  EXPECT_FALSE(checked_numel({2, -1}).ok());
  EXPECT_FALSE(checked_numel({(int64_t{1} << 62) + 1, 4}).ok());
  // A zero dim does not excuse an overflow of the others, before or after it.
  EXPECT_FALSE(checked_numel({int64_t{1} << 40, int64_t{1} << 40, 0}).ok());
  EXPECT_FALSE(checked_numel({0, int64_t{1} << 40, int64_t{1} << 40}).ok());
  EXPECT_EQ(checked_nbytes(DataType::kFloat, {3, 5}).value(), 60u);
  EXPECT_FALSE(checked_nbytes(DataType::kDouble, {int64_t{1} << 61}).ok());  // bytes overflow, count does not
  EXPECT_EQ(checked_extent_bytes(DataType::kFloat, {1024, 0, 8}).value(), 1024u * 8 * 4);
  EXPECT_FALSE(checked_mul(int64_t{1} << 32, int64_t{1} << 32, "x").ok());
  EXPECT_EQ(checked_add(1, 2, "x").value(), 3);
  EXPECT_FALSE(checked_add(std::numeric_limits<int64_t>::max(), 1, "x").ok());
}

}  // namespace
}  // namespace hearth
