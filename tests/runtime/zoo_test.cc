// Reference models (scripts/zoo.py, run by `make zoo`) against PyTorch outputs:
// relative L2 error <= 1e-4 at batch 1 and 4, and the output must react to its input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "core/npy.h"
#include "runtime/session.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;

std::string zoo_dir() {
  const char* b = std::getenv("HEARTH_BUILD_DIR");
  return (fs::path(b ? b : HEARTH_BUILD_DIR_DEFAULT) / "zoo").string();
}

double relative_l2(const Tensor& a, const Tensor& b) {
  auto x = tensor_to_doubles(a).value();
  auto y = tensor_to_doubles(b).value();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - y[i]) * (x[i] - y[i]);
    den += y[i] * y[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// A different input of the same shape: shift floats, rotate token ids.
Tensor perturbed(const Tensor& t) {
  Tensor p = t.clone();
  if (p.dtype() == DataType::kFloat) {
    for (int64_t i = 0; i < p.numel(); ++i) p.data<float>()[i] = p.data<float>()[i] * -0.5f + 0.25f;
  } else if (p.dtype() == DataType::kInt64) {
    for (int64_t i = 0; i < p.numel(); ++i) p.data<int64_t>()[i] = (p.data<int64_t>()[i] * 31 + 7) % 1000;
  }
  return p;
}

class Zoo : public ::testing::TestWithParam<std::string> {};

TEST_P(Zoo, matches_pytorch_at_batch_1_and_4) {
  const std::string name = GetParam();
  const fs::path dir = zoo_dir();
  ASSERT_TRUE(fs::exists(dir / (name + ".onnx"))) << "missing " << (dir / (name + ".onnx")) << ": run `make zoo`";
  auto session = Session::load_file((dir / (name + ".onnx")).string());
  ASSERT_TRUE(session.ok()) << session.status().to_string();
  const std::string input_name = (*session)->inputs().at(0).name;
  for (const std::string suffix : {"", ".b4"}) {
    auto in = read_npy((dir / (name + suffix + ".in.npy")).string());
    auto expected = read_npy((dir / (name + suffix + ".out.npy")).string());
    ASSERT_TRUE(in.ok() && expected.ok());
    auto out = (*session)->run({{input_name, *in}});
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    ASSERT_EQ((*out)[0].shape(), expected->shape()) << name << suffix;
    double err = relative_l2((*out)[0], *expected);
    EXPECT_LE(err, 1e-4) << name << suffix << " relative L2 error";
    // A degenerate model (constant output) would pass the comparison: check it reacts.
    auto other = (*session)->run({{input_name, perturbed(*in)}});
    ASSERT_TRUE(other.ok()) << other.status().to_string();
    EXPECT_GT(relative_l2((*other)[0], (*out)[0]), 1e-3) << name << suffix << " output ignores its input";
  }
}

// Fixed shapes: after the first runs every tensor, and every oneDNN blocked-layout
// buffer, comes from the session's pool; further runs take no new memory.
TEST_P(Zoo, steady_state_takes_no_new_memory) {
  const std::string name = GetParam();
  const fs::path dir = zoo_dir();
  auto session = Session::load_file((dir / (name + ".onnx")).string());
  ASSERT_TRUE(session.ok()) << session.status().to_string();
  auto in = read_npy((dir / (name + ".b4.in.npy")).string());
  ASSERT_TRUE(in.ok());
  const std::string input_name = (*session)->inputs().at(0).name;
  for (int i = 0; i < 2; ++i) ASSERT_TRUE((*session)->run({{input_name, *in}}).ok());
  const size_t held = (*session)->pool_bytes();
  EXPECT_GT(held, 0u);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE((*session)->run({{input_name, *in}}).ok());
  EXPECT_EQ((*session)->pool_bytes(), held) << name;
}

INSTANTIATE_TEST_SUITE_P(Reference, Zoo,
                         ::testing::Values("mlp", "resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
                                           "squeezenet1_1", "efficientnet_b0", "bert_encoder"));

}  // namespace
}  // namespace hearth
