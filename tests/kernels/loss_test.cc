// Tests for the loss family: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.
// Expected values are hand-computed or come from a plain reference loop written here.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/kernel_test_util.h"

namespace hearth {
namespace {

using testing::attr_int;
using testing::attr_string;
using testing::make_node;
using testing::run_node;

std::vector<float> to_vec(const Tensor& t) {
  const float* d = t.data<float>();
  return std::vector<float>(d, d + t.numel());
}

Tensor logp_2x3() { return Tensor::from_vector<float>({-1, -2, -3, -0.5f, -1.5f, -2.5f}, {2, 3}); }
Tensor target_2() { return Tensor::from_vector<int64_t>({2, 0}, {2}); }

float nll(const char* reduction, std::vector<Tensor> inputs, std::map<std::string, Attribute> extra = {}) {
  extra["reduction"] = attr_string(reduction);
  auto r = run_node(make_node("NegativeLogLikelihoodLoss", inputs.size(), 1, extra), inputs, 13);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].shape(), Shape{});
  return (*r)[0].data<float>()[0];
}

TEST(LossTest, nll_reductions_without_weights) {
  auto r = run_node(make_node("NegativeLogLikelihoodLoss", 2, 1, {{"reduction", attr_string("none")}}),
                    {logp_2x3(), target_2()}, 13);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].shape(), (Shape{2}));
  EXPECT_EQ(to_vec((*r)[0]), (std::vector<float>{3, 0.5f}));
  EXPECT_FLOAT_EQ(nll("sum", {logp_2x3(), target_2()}), 3.5f);
  EXPECT_FLOAT_EQ(nll("mean", {logp_2x3(), target_2()}), 1.75f);
}

TEST(LossTest, nll_weights_and_ignore_index) {
  Tensor w = Tensor::from_vector<float>({1, 2, 4}, {3});
  EXPECT_FLOAT_EQ(nll("mean", {logp_2x3(), target_2(), w}), 12.5f / 5.0f);
  EXPECT_FLOAT_EQ(nll("sum", {logp_2x3(), target_2(), w}), 12.5f);
  EXPECT_FLOAT_EQ(nll("mean", {logp_2x3(), target_2()}, {{"ignore_index", attr_int(2)}}), 0.5f);
  // An ignored target may lie outside [0, C).
  Tensor t = Tensor::from_vector<int32_t>({-1, 1}, {2});
  EXPECT_FLOAT_EQ(nll("mean", {logp_2x3(), t, w}, {{"ignore_index", attr_int(-1)}}), 1.5f);
}

TEST(LossTest, nll_spatial_dims_match_reference_loop) {
  const int64_t n = 2, c = 3, d = 4;
  std::vector<float> x(n * c * d);
  for (size_t i = 0; i < x.size(); ++i) x[i] = -0.1f * static_cast<float>(i % 7) - 0.05f * static_cast<float>(i);
  std::vector<int64_t> t = {0, 1, 2, 1, 2, 2, 0, 1};
  std::vector<float> want(n * d);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k) want[i * d + k] = -x[(i * c + t[i * d + k]) * d + k];
  auto r = run_node(make_node("NegativeLogLikelihoodLoss", 2, 1, {{"reduction", attr_string("none")}}),
                    {Tensor::from_vector<float>(x, {n, c, d}), Tensor::from_vector<int64_t>(t, {n, d})}, 13);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].shape(), (Shape{n, d}));
  auto got = to_vec((*r)[0]);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_FLOAT_EQ(got[i], want[i]);
}

TEST(LossTest, nll_rejects_bad_targets_and_shapes) {
  Tensor bad_t = Tensor::from_vector<int64_t>({3, 0}, {2});
  auto r = run_node(make_node("NegativeLogLikelihoodLoss", 2, 1), {logp_2x3(), bad_t}, 13);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  Tensor wrong_shape = Tensor::from_vector<int64_t>({0, 0, 0}, {3});
  EXPECT_FALSE(run_node(make_node("NegativeLogLikelihoodLoss", 2, 1), {logp_2x3(), wrong_shape}, 13).ok());
  Tensor bad_w = Tensor::from_vector<float>({1, 2}, {2});
  EXPECT_FALSE(run_node(make_node("NegativeLogLikelihoodLoss", 3, 1), {logp_2x3(), target_2(), bad_w}, 13).ok());
  EXPECT_FALSE(
      run_node(make_node("NegativeLogLikelihoodLoss", 2, 1, {{"reduction", attr_string("avg")}}),
               {logp_2x3(), target_2()}, 13)
          .ok());
}

TEST(LossTest, softmax_cross_entropy_loss_and_log_prob) {
  Tensor x = Tensor::from_vector<float>({0.0f, std::log(3.0f)}, {1, 2});
  Tensor t = Tensor::from_vector<int64_t>({0}, {1});
  auto r = run_node(make_node("SoftmaxCrossEntropyLoss", 2, 2), {x, t}, 13);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_NEAR((*r)[0].data<float>()[0], std::log(4.0f), 1e-6);
  auto lp = to_vec((*r)[1]);
  EXPECT_EQ((*r)[1].shape(), (Shape{1, 2}));
  EXPECT_NEAR(lp[0], std::log(0.25f), 1e-6);
  EXPECT_NEAR(lp[1], std::log(0.75f), 1e-6);
}

TEST(LossTest, softmax_cross_entropy_weighted_mean_with_ignore_index) {
  // Large logits check the max-shift; sample 1 is ignored.
  Tensor x = Tensor::from_vector<double>({1000, 1000, 5, 7}, {2, 2});
  Tensor t = Tensor::from_vector<int64_t>({1, 0}, {2});
  Tensor w = Tensor::from_vector<double>({3, 2}, {2});
  auto r = run_node(make_node("SoftmaxCrossEntropyLoss", 3, 1, {{"ignore_index", attr_int(0)}}), {x, t, w}, 13);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_NEAR((*r)[0].data<double>()[0], std::log(2.0), 1e-12);
  Tensor bad = Tensor::from_vector<int64_t>({1, 5}, {2});
  EXPECT_FALSE(run_node(make_node("SoftmaxCrossEntropyLoss", 2, 1), {x, bad}, 13).ok());
}

}  // namespace
}  // namespace hearth
