// Tests for the activation kernel family against reference formulas written
// out in plain loops (pointwise activations, Softmax family, PRelu, Clip, Dropout).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "kernels/elementwise_fastmath.h"
#include "kernels/kernel_test_util.h"

namespace hearth {
namespace {

using testing::attr_float;
using testing::attr_int;
using testing::make_node;
using testing::run_node;
using testing::run_op;
using testing::values;


const std::vector<float> kX = {-3.0f, -1.0f, -0.25f, 0.0f, 0.5f, 1.0f, 4.0f};

void expect_pointwise(const std::string& op, double (*ref)(double), std::map<std::string, Attribute> attrs = {}) {
  Tensor y = run_op(op, {Tensor::from_vector<float>(kX, {7})}, std::move(attrs));
  ASSERT_EQ(y.numel(), 7);
  for (size_t i = 0; i < kX.size(); ++i) EXPECT_NEAR(y.data<float>()[i], ref(kX[i]), 1e-6) << op << " x=" << kX[i];
}

TEST(ActivationPointwise, match_reference_formulas) {
  expect_pointwise("Relu", [](double x) { return x > 0 ? x : 0.0; });
  expect_pointwise("LeakyRelu", [](double x) { return x < 0 ? 0.1 * x : x; }, {{"alpha", attr_float(0.1f)}});
  expect_pointwise("Sigmoid", [](double x) { return 1.0 / (1.0 + std::exp(-x)); });
  expect_pointwise("Tanh", [](double x) { return std::tanh(x); });
  expect_pointwise("Elu", [](double x) { return x < 0 ? 2.0 * (std::exp(x) - 1) : x; }, {{"alpha", attr_float(2.0f)}});
  expect_pointwise("Selu", [](double x) {
    return x <= 0 ? 1.0507009873554805 * (1.6732632423543772 * std::exp(x) - 1.6732632423543772)
                  : 1.0507009873554805 * x;
  });
  expect_pointwise("Celu", [](double x) { return std::max(0.0, x) + std::min(0.0, std::exp(x) - 1); });
  expect_pointwise("HardSigmoid", [](double x) { return std::clamp(0.2 * x + 0.5, 0.0, 1.0); });
  expect_pointwise("HardSwish", [](double x) { return x * std::clamp(x / 6 + 0.5, 0.0, 1.0); });
  expect_pointwise("Softplus", [](double x) { return std::log(std::exp(x) + 1); });
  expect_pointwise("Softsign", [](double x) { return x / (1 + std::fabs(x)); });
  expect_pointwise("ThresholdedRelu", [](double x) { return x > 1.0 ? x : 0.0; });
  expect_pointwise("Shrink", [](double x) { return x < -0.5 ? x + 1 : x > 0.5 ? x - 1 : 0.0; },
                   {{"bias", attr_float(1.0f)}});
}

TEST(ActivationPointwise, relu_accepts_integers_and_rejects_bool) {
  EXPECT_EQ(values<int64_t>(run_op("Relu", {Tensor::from_vector<int64_t>({-2, 3}, {2})})),
            (std::vector<int64_t>{0, 3}));
  auto bad = run_node(make_node("Sigmoid", 1, 1), {Tensor::from_vector<bool>({true}, {1})});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kUnimplemented);
}

TEST(ActivationPointwise, large_input_runs_in_parallel_like_serial) {
  std::vector<float> x(200000);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-8, 8);
  for (auto& v : x) v = d(rng);
  Tensor in = Tensor::from_vector<float>(x, {200000});
  auto r = run_node(make_node("Sigmoid", 1, 1), {in}, 17, {}, 2);
  ASSERT_TRUE(r.ok());
  for (size_t i = 0; i < x.size(); i += 997) {
    EXPECT_NEAR((*r)[0].data<float>()[i], 1.0 / (1.0 + std::exp(-double(x[i]))), 1e-6);
  }
}

// Reference softmax along `axis` of a [A, B, C] tensor.
std::vector<float> ref_softmax(const std::vector<float>& x, int A, int B, int C, int axis, bool log) {
  std::vector<float> y(x.size());
  const int dims[3] = {A, B, C};
  const int strides[3] = {B * C, C, 1};
  for (size_t i = 0; i < x.size(); ++i) {
    int pos = (static_cast<int>(i) / strides[axis]) % dims[axis];
    int base = static_cast<int>(i) - pos * strides[axis];
    double m = -1e30, s = 0;
    for (int k = 0; k < dims[axis]; ++k) m = std::max(m, double(x[base + k * strides[axis]]));
    for (int k = 0; k < dims[axis]; ++k) s += std::exp(x[base + k * strides[axis]] - m);
    y[i] = log ? float(x[i] - m - std::log(s)) : float(std::exp(x[i] - m) / s);
  }
  return y;
}

TEST(ActivationSoftmax, every_axis_matches_reference) {
  std::vector<float> x(2 * 3 * 4);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i)) * 3;
  Tensor in = Tensor::from_vector<float>(x, {2, 3, 4});
  for (int axis = 0; axis < 3; ++axis) {
    for (bool log : {false, true}) {
      Tensor y = run_op(log ? "LogSoftmax" : "Softmax", {in}, {{"axis", attr_int(axis)}}, 13);
      auto ref = ref_softmax(x, 2, 3, 4, axis, log);
      for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y.data<float>()[i], ref[i], 1e-5) << axis << " " << i;
    }
  }
}

TEST(ActivationSoftmax, opset11_coerces_to_2d) {
  std::vector<float> x(2 * 3 * 4);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 5);
  Tensor y = run_op("Softmax", {Tensor::from_vector<float>(x, {2, 3, 4})}, {}, 11);
  auto ref = ref_softmax(x, 1, 2, 12, 2, false);  // default axis 1: rows of 12
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y.data<float>()[i], ref[i], 1e-6);
}

TEST(ActivationSoftmax, hardmax_picks_first_maximum) {
  Tensor x = Tensor::from_vector<float>({1, 3, 3, 0, 2, -1}, {2, 3});
  EXPECT_EQ(values<float>(run_op("Hardmax", {x})), (std::vector<float>{0, 1, 0, 0, 1, 0}));
  EXPECT_EQ(values<float>(run_op("Hardmax", {x}, {{"axis", attr_int(0)}})), (std::vector<float>{1, 1, 1, 0, 0, 0}));
  auto bad = run_node(make_node("Softmax", 1, 1, {{"axis", attr_int(5)}}), {x});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST(ActivationPRelu, slope_broadcasts_per_channel) {
  Tensor x = Tensor::from_vector<float>({-1, 2, -3, 4}, {1, 2, 2});
  Tensor slope = Tensor::from_vector<float>({0.5f, 0.25f}, {2, 1});
  EXPECT_EQ(values<float>(run_op("PRelu", {x, slope})), (std::vector<float>{-0.5f, 2, -0.75f, 4}));
  auto bad = run_node(make_node("PRelu", 2, 1), {x, Tensor::from_vector<float>({1, 2, 3}, {3})});
  EXPECT_FALSE(bad.ok());
}

TEST(ActivationClip, bounds_from_inputs_or_attributes) {
  Tensor x = Tensor::from_vector<float>({-5, 0, 5}, {3});
  EXPECT_EQ(values<float>(run_op("Clip", {x, Tensor::scalar<float>(-1), Tensor::scalar<float>(2)})),
            (std::vector<float>{-1, 0, 2}));
  EXPECT_EQ(values<float>(run_op("Clip", {x, Tensor(), Tensor::scalar<float>(2)})), (std::vector<float>{-5, 0, 2}));
  EXPECT_EQ(values<float>(run_op("Clip", {x}, {{"min", attr_float(-2)}, {"max", attr_float(1)}}, 6)),
            (std::vector<float>{-2, 0, 1}));
  Tensor i8 = Tensor::from_vector<int8_t>({-100, 3, 100}, {3});
  EXPECT_EQ(values<int8_t>(run_op("Clip", {i8, Tensor::scalar<int8_t>(-10)})), (std::vector<int8_t>{-10, 3, 100}));
  auto bad = run_node(make_node("Clip", 2, 1), {x, Tensor::from_vector<float>({1, 2}, {2})});
  EXPECT_FALSE(bad.ok());
}

TEST(ActivationDropout, inference_is_identity_with_true_mask) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3}, {3});
  auto r = run_node(make_node("Dropout", 1, 2), {x}, 13);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(values<float>((*r)[0]), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(values<bool>((*r)[1]), (std::vector<bool>{true, true, true}));
  auto train = run_node(make_node("Dropout", 3, 1), {x, Tensor::scalar<float>(0.5f), Tensor::scalar<bool>(true)}, 13);
  ASSERT_FALSE(train.ok());
  EXPECT_EQ(train.status().code(), StatusCode::kUnimplemented);
  auto zero = run_node(make_node("Dropout", 3, 1), {x, Tensor::scalar<float>(0.0f), Tensor::scalar<bool>(true)}, 13);
  EXPECT_TRUE(zero.ok());
}

// The fast float approximations against their <cmath> reference twins.
TEST(ActivationFastMath, exp_and_tanh_match_cmath) {
  double worst_exp = 0, worst_tanh = 0;
  for (float x = -87.0f; x <= 88.5f; x += 0.0137f) {
    const double ref = std::exp(double(x));
    worst_exp = std::max(worst_exp, std::fabs(fast_expf(x) - ref) / ref);
  }
  for (float x = -12.0f; x <= 12.0f; x += 0.00071f) {
    const double ref = std::tanh(double(x));
    worst_tanh = std::max(worst_tanh, std::fabs(fast_tanhf(x) - ref) / std::max(std::fabs(ref), 1e-3));
  }
  double worst_erf = 0;
  for (float x = -6.0f; x <= 6.0f; x += 0.00037f) {
    const double ref = std::erf(double(x));
    worst_erf = std::max(worst_erf, std::fabs(fast_erff(x) - ref) / std::max(std::fabs(ref), 1e-30));
  }
  EXPECT_LT(worst_erf, 1e-6);
  EXPECT_LT(worst_exp, 3e-7);
  EXPECT_LT(worst_tanh, 2e-6);
  EXPECT_EQ(fast_expf(-200.0f), 0.0f);
  EXPECT_TRUE(std::isinf(fast_expf(100.0f)));
  EXPECT_TRUE(std::isnan(fast_expf(NAN)));
  EXPECT_TRUE(std::isnan(fast_tanhf(NAN)));
  EXPECT_NEAR(fast_tanhf(1e-5f), 1e-5f, 1e-11);
  EXPECT_EQ(fast_expf(0.0f), 1.0f);
  EXPECT_EQ(fast_tanhf(30.0f), 1.0f);
}

}  // namespace
}  // namespace hearth
