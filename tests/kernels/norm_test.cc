// Tests for the normalization kernels against plain loops written here from
// the ONNX formulas (independent of norm.cc / norm_layer.cc).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/kernel_test_util.h"

namespace hearth {
namespace {

using testing::attr_float;
using testing::attr_int;
using testing::attr_ints;
using testing::make_node;
using testing::random_tensor;
using testing::run_node;


void expect_close(const Tensor& got, const std::vector<double>& want, double tol = 1e-5) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got.data<float>()[i], want[i], tol * std::max(1.0, std::abs(want[i]))) << "element " << i;
  }
}

const float* f(const Tensor& t) { return t.data<float>(); }

TEST(NormKernel, batchnorm_inference_matches_formula) {
  std::mt19937 rng(1);
  const int64_t N = 2, C = 3, S = 20;
  Tensor x = random_tensor({N, C, 4, 5}, rng, -2.0f, 2.0f), s = random_tensor({C}, rng, -2.0f, 2.0f), b = random_tensor({C}, rng, -2.0f, 2.0f);
  Tensor m = random_tensor({C}, rng, -2.0f, 2.0f), v = random_tensor({C}, rng, 0.1f, 1.0f);
  auto out = run_node(make_node("BatchNormalization", 5, 1, {{"epsilon", attr_float(1e-3f)}}), {x, s, b, m, v}, 15);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  std::vector<double> want(x.numel());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < S; ++i) {
        const int64_t k = (n * C + c) * S + i;
        want[k] = f(s)[c] * (f(x)[k] - f(m)[c]) / std::sqrt(f(v)[c] + 1e-3) + f(b)[c];
      }
  expect_close((*out)[0], want);
}

TEST(NormKernel, batchnorm_training_mode_updates_running_stats) {
  std::mt19937 rng(2);
  const int64_t N = 3, C = 2, S = 4;
  Tensor x = random_tensor({N, C, S}, rng, -2.0f, 2.0f), s = random_tensor({C}, rng, -2.0f, 2.0f), b = random_tensor({C}, rng, -2.0f, 2.0f);
  Tensor m = random_tensor({C}, rng, -2.0f, 2.0f), v = random_tensor({C}, rng, 0.1f, 1.0f);
  auto node = make_node("BatchNormalization", 5, 3, {{"training_mode", attr_int(1)}, {"momentum", attr_float(0.8f)}});
  auto out = run_node(node, {x, s, b, m, v}, 15);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  std::vector<double> y(x.numel()), rm(C), rv(C);
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0, sq = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < S; ++i) sum += f(x)[(n * C + c) * S + i];
    const double mean = sum / (N * S);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < S; ++i) sq += std::pow(f(x)[(n * C + c) * S + i] - mean, 2);
    const double var = sq / (N * S);
    rm[c] = f(m)[c] * 0.8 + mean * 0.2;
    rv[c] = f(v)[c] * 0.8 + var * 0.2;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < S; ++i) {
        const int64_t k = (n * C + c) * S + i;
        y[k] = f(s)[c] * (f(x)[k] - mean) / std::sqrt(var + 1e-5) + f(b)[c];
      }
  }
  expect_close((*out)[0], y);
  expect_close((*out)[1], rm);
  expect_close((*out)[2], rv);
}

TEST(NormKernel, batchnorm_opset7_non_spatial_uses_per_element_parameters) {
  std::mt19937 rng(8);
  const int64_t N = 2, C = 2, S = 3;
  Tensor x = random_tensor({N, C, S}, rng, -2.0f, 2.0f), s = random_tensor({C, S}, rng, -2.0f, 2.0f), b = random_tensor({C, S}, rng, -2.0f, 2.0f);
  Tensor m = random_tensor({C, S}, rng, -2.0f, 2.0f), v = random_tensor({C, S}, rng, 0.1f, 1.0f);
  auto out = run_node(make_node("BatchNormalization", 5, 1, {{"spatial", attr_int(0)}}), {x, s, b, m, v}, 7);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  std::vector<double> want(x.numel());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < C * S; ++k)
      want[n * C * S + k] = f(s)[k] * (f(x)[n * C * S + k] - f(m)[k]) / std::sqrt(f(v)[k] + 1e-5) + f(b)[k];
  expect_close((*out)[0], want);
}

TEST(NormKernel, batchnorm_rejects_wrong_parameter_size) {
  std::mt19937 rng(3);
  Tensor x = random_tensor({1, 3, 2}, rng, -2.0f, 2.0f), p = random_tensor({3}, rng, -2.0f, 2.0f), bad = random_tensor({4}, rng, -2.0f, 2.0f);
  auto out = run_node(make_node("BatchNormalization", 5, 1), {x, p, p, bad, p}, 15);
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
  auto rank1 = run_node(make_node("BatchNormalization", 5, 1), {p, p, p, p, p}, 15);
  EXPECT_EQ(rank1.status().code(), StatusCode::kInvalidArgument);
}

TEST(NormKernel, layernorm_matches_formula_with_stat_outputs) {
  std::mt19937 rng(4);
  const int64_t R = 2 * 3, D = 4 * 5;
  Tensor x = random_tensor({2, 3, 4, 5}, rng, -2.0f, 2.0f), s = random_tensor({4, 5}, rng, -2.0f, 2.0f), b = random_tensor({4, 5}, rng, -2.0f, 2.0f);
  auto out = run_node(make_node("LayerNormalization", 3, 3, {{"axis", attr_int(-2)}, {"epsilon", attr_float(1e-3f)}}),
                      {x, s, b}, 17);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  std::vector<double> y(x.numel()), mean(R), inv(R);
  for (int64_t r = 0; r < R; ++r) {
    double sum = 0, sq = 0;
    for (int64_t j = 0; j < D; ++j) sum += f(x)[r * D + j];
    mean[r] = sum / D;
    for (int64_t j = 0; j < D; ++j) sq += std::pow(f(x)[r * D + j] - mean[r], 2);
    inv[r] = 1.0 / std::sqrt(sq / D + 1e-3);
    for (int64_t j = 0; j < D; ++j) y[r * D + j] = (f(x)[r * D + j] - mean[r]) * inv[r] * f(s)[j] + f(b)[j];
  }
  expect_close((*out)[0], y);
  EXPECT_EQ((*out)[1].shape(), (Shape{2, 3, 1, 1}));
  expect_close((*out)[1], mean);
  expect_close((*out)[2], inv);
}

TEST(NormKernel, layernorm_float16_and_bad_axis) {
  Tensor x(DataType::kFloat16, {1, 2});
  x.data<Float16>()[0].bits = float_to_half(1.0f);
  x.data<Float16>()[1].bits = float_to_half(3.0f);
  Tensor s(DataType::kFloat16, {2});
  s.data<Float16>()[0].bits = s.data<Float16>()[1].bits = float_to_half(1.0f);
  auto out = run_node(make_node("LayerNormalization", 2, 1, {{"epsilon", attr_float(0.0f)}}), {x, s}, 17);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kFloat16);
  EXPECT_FLOAT_EQ(half_to_float((*out)[0].data<Float16>()[0].bits), -1.0f);
  EXPECT_FLOAT_EQ(half_to_float((*out)[0].data<Float16>()[1].bits), 1.0f);
  auto bad = run_node(make_node("LayerNormalization", 2, 1, {{"axis", attr_int(2)}}), {x, s}, 17);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST(NormKernel, instancenorm_matches_formula) {
  std::mt19937 rng(5);
  const int64_t N = 2, C = 3, S = 7;
  Tensor x = random_tensor({N, C, S}, rng, -2.0f, 2.0f), s = random_tensor({C}, rng, -2.0f, 2.0f), b = random_tensor({C}, rng, -2.0f, 2.0f);
  auto out = run_node(make_node("InstanceNormalization", 3, 1), {x, s, b}, 6);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  std::vector<double> y(x.numel());
  for (int64_t nc = 0; nc < N * C; ++nc) {
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < S; ++i) sum += f(x)[nc * S + i];
    const double mean = sum / S;
    for (int64_t i = 0; i < S; ++i) sq += std::pow(f(x)[nc * S + i] - mean, 2);
    for (int64_t i = 0; i < S; ++i)
      y[nc * S + i] = f(s)[nc % C] * (f(x)[nc * S + i] - mean) / std::sqrt(sq / S + 1e-5) + f(b)[nc % C];
  }
  expect_close((*out)[0], y);
  auto bad = run_node(make_node("InstanceNormalization", 3, 1), {x, random_tensor({2}, rng, -2.0f, 2.0f), b}, 6);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST(NormKernel, lrn_matches_formula) {
  std::mt19937 rng(6);
  const int64_t N = 2, C = 6, S = 3, size = 4;
  const double alpha = 0.02, beta = 0.6, bias = 1.5;
  Tensor x = random_tensor({N, C, S}, rng, -2.0f, 2.0f);
  auto out = run_node(make_node("LRN", 1, 1,
                                {{"size", attr_int(size)}, {"alpha", attr_float(0.02f)}, {"beta", attr_float(0.6f)},
                                 {"bias", attr_float(1.5f)}}),
                      {x}, 13);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  std::vector<double> y(x.numel());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < S; ++i) {
        double sq = 0;
        for (int64_t k = std::max<int64_t>(0, c - 1); k <= std::min<int64_t>(C - 1, c + 2); ++k)
          sq += std::pow(f(x)[(n * C + k) * S + i], 2);
        const int64_t idx = (n * C + c) * S + i;
        y[idx] = f(x)[idx] / std::pow(bias + alpha / size * sq, beta);
      }
  expect_close((*out)[0], y);
  auto bad = run_node(make_node("LRN", 1, 1), {x}, 13);  // size is required
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST(NormKernel, mvn_matches_formula) {
  std::mt19937 rng(7);
  const int64_t A = 3, B = 4, C = 5;
  Tensor x = random_tensor({A, B, C}, rng, -2.0f, 2.0f);
  auto out = run_node(make_node("MeanVarianceNormalization", 1, 1, {{"axes", attr_ints({0, 2})}}), {x}, 13);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  std::vector<double> y(x.numel());
  for (int64_t b = 0; b < B; ++b) {
    double sum = 0, sq = 0;
    for (int64_t a = 0; a < A; ++a)
      for (int64_t c = 0; c < C; ++c) sum += f(x)[(a * B + b) * C + c];
    const double mean = sum / (A * C);
    for (int64_t a = 0; a < A; ++a)
      for (int64_t c = 0; c < C; ++c) sq += std::pow(f(x)[(a * B + b) * C + c] - mean, 2);
    const double sd = std::sqrt(sq / (A * C));
    for (int64_t a = 0; a < A; ++a)
      for (int64_t c = 0; c < C; ++c) y[(a * B + b) * C + c] = (f(x)[(a * B + b) * C + c] - mean) / (sd + 1e-9);
  }
  expect_close((*out)[0], y, 1e-4);
  auto bad = run_node(make_node("MeanVarianceNormalization", 1, 1), {x}, 13);  // default axes need rank 4
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace hearth
