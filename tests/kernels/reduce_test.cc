// Tests for the reduce family: Reduce*, ArgMax/ArgMin, TopK, CumSum, Einsum, Det.
// Expected values are hand-computed or come from plain reference loops written here.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "kernels/kernel_test_util.h"

namespace hearth {
namespace {

using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;
using testing::make_node;
using testing::run_node;

std::vector<float> to_vec(const Tensor& t) {
  const float* d = t.data<float>();
  return std::vector<float>(d, d + t.numel());
}

std::vector<float> random_floats(int64_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// Reference sum over `axis` of a row-major [a, b, c] tensor, keepdims dropped.
std::vector<float> ref_sum3(const std::vector<float>& x, int64_t a, int64_t b, int64_t c, int axis) {
  std::vector<float> out(axis == 0 ? b * c : axis == 1 ? a * c : a * b, 0.0f);
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j)
      for (int64_t k = 0; k < c; ++k) {
        int64_t o = axis == 0 ? j * c + k : axis == 1 ? i * c + k : i * b + j;
        out[o] += x[(i * b + j) * c + k];
      }
  return out;
}

TEST(ReduceTest, sum_keepdims_attribute_axes_opset11) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto r = run_node(make_node("ReduceSum", 1, 1, {{"axes", attr_ints({1})}}), {x}, 11);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].shape(), (Shape{2, 1}));
  EXPECT_EQ(to_vec((*r)[0]), (std::vector<float>{6, 15}));
}

TEST(ReduceTest, sum_axes_input_negative_no_keepdims_opset13) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor axes = Tensor::from_vector<int64_t>({-2}, {1});
  auto r = run_node(make_node("ReduceSum", 2, 1, {{"keepdims", attr_int(0)}}), {x, axes}, 13);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].shape(), (Shape{3}));
  EXPECT_EQ(to_vec((*r)[0]), (std::vector<float>{5, 7, 9}));
}

TEST(ReduceTest, sum_empty_axes_reduces_all_or_is_noop) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  Tensor axes = Tensor::from_vector<int64_t>({}, {0});
  auto all = run_node(make_node("ReduceSum", 2, 1), {x, axes}, 13);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ((*all)[0].shape(), (Shape{1, 1}));
  EXPECT_EQ(to_vec((*all)[0]), (std::vector<float>{10}));
  auto noop = run_node(make_node("ReduceSum", 2, 1, {{"noop_with_empty_axes", attr_int(1)}}), {x, axes}, 13);
  ASSERT_TRUE(noop.ok());
  EXPECT_EQ(to_vec((*noop)[0]), (std::vector<float>{1, 2, 3, 4}));
}

TEST(ReduceTest, every_op_matches_hand_values) {
  Tensor x = Tensor::from_vector<float>({1, -2, 3, 4}, {2, 2});
  auto run = [&](const char* op) {
    auto r = run_node(make_node(op, 1, 1, {{"axes", attr_ints({1})}, {"keepdims", attr_int(0)}}), {x}, 13);
    EXPECT_TRUE(r.ok()) << op;
    return to_vec((*r)[0]);
  };
  EXPECT_EQ(run("ReduceMean"), (std::vector<float>{-0.5f, 3.5f}));
  EXPECT_EQ(run("ReduceMax"), (std::vector<float>{1, 4}));
  EXPECT_EQ(run("ReduceMin"), (std::vector<float>{-2, 3}));
  EXPECT_EQ(run("ReduceProd"), (std::vector<float>{-2, 12}));
  EXPECT_EQ(run("ReduceL1"), (std::vector<float>{3, 7}));
  EXPECT_EQ(run("ReduceSumSquare"), (std::vector<float>{5, 25}));
  auto l2 = run("ReduceL2");
  EXPECT_NEAR(l2[0], std::sqrt(5.0f), 1e-6);
  EXPECT_NEAR(l2[1], 5.0f, 1e-6);
  auto ls = run("ReduceLogSum");
  EXPECT_TRUE(std::isnan(ls[0]));  // log(-1)
  EXPECT_NEAR(ls[1], std::log(7.0f), 1e-6);
  auto lse = run("ReduceLogSumExp");
  EXPECT_NEAR(lse[0], std::log(std::exp(1.0f) + std::exp(-2.0f)), 1e-6);
  EXPECT_NEAR(lse[1], std::log(std::exp(3.0f) + std::exp(4.0f)), 1e-6);
}

TEST(ReduceTest, log_sum_exp_is_stable_for_large_values) {
  Tensor x = Tensor::from_vector<float>({1000, 1000}, {2});
  auto r = run_node(make_node("ReduceLogSumExp", 1, 1, {{"keepdims", attr_int(0)}}), {x}, 13);
  ASSERT_TRUE(r.ok());
  EXPECT_NEAR(to_vec((*r)[0])[0], 1000.0f + std::log(2.0f), 1e-3);
}

TEST(ReduceTest, large_float_sum_matches_reference_for_each_axis) {
  const int64_t a = 7, b = 96, c = 130;  // > 64K elements: parallel paths
  auto v = random_floats(a * b * c, 3);
  Tensor x = Tensor::from_vector<float>(v, {a, b, c});
  for (int axis = 0; axis < 3; ++axis) {
    for (int threads : {1, 2}) {
      auto r = run_node(make_node("ReduceSum", 2, 1, {{"keepdims", attr_int(0)}}),
                        {x, Tensor::from_vector<int64_t>({axis}, {1})}, 13, {}, threads);
      ASSERT_TRUE(r.ok());
      auto got = to_vec((*r)[0]);
      auto want = ref_sum3(v, a, b, c, axis);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-3) << "axis " << axis;
    }
  }
}

TEST(ReduceTest, mean_over_outer_and_inner_axes_together) {
  // [2,2,2] reduced over axes 0 and 2: groups R K R.
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  auto r = run_node(make_node("ReduceMean", 1, 1, {{"axes", attr_ints({0, 2})}}), {x}, 13);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].shape(), (Shape{1, 2, 1}));
  EXPECT_EQ(to_vec((*r)[0]), (std::vector<float>{(1 + 2 + 5 + 6) / 4.0f, (3 + 4 + 7 + 8) / 4.0f}));
}

TEST(ReduceTest, integer_and_double_types) {
  Tensor xi = Tensor::from_vector<int32_t>({5, 1, 9, 2}, {2, 2});
  auto r = run_node(make_node("ReduceMax", 1, 1, {{"axes", attr_ints({0})}}), {xi}, 13);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].data<int32_t>()[0], 9);
  EXPECT_EQ((*r)[0].data<int32_t>()[1], 2);
  Tensor xd = Tensor::from_vector<double>({1.5, 2.5}, {2});
  auto s = run_node(make_node("ReduceSum", 1, 1), {xd}, 11);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)[0].data<double>()[0], 4.0);
}

TEST(ReduceTest, zero_size_reduction_gives_identity_values) {
  Tensor x(DataType::kFloat, {2, 0});
  auto s = run_node(make_node("ReduceSum", 2, 1, {{"keepdims", attr_int(0)}}),
                    {x, Tensor::from_vector<int64_t>({1}, {1})}, 13);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(to_vec((*s)[0]), (std::vector<float>{0, 0}));
  auto p = run_node(make_node("ReduceProd", 1, 1, {{"axes", attr_ints({1})}}), {x}, 13);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(to_vec((*p)[0]), (std::vector<float>{1, 1}));
}

TEST(ReduceTest, empty_integer_max_is_type_lowest) {
  Tensor x(DataType::kInt32, {0, 3});
  auto r = run_node(make_node("ReduceMax", 1, 1, {{"axes", attr_ints({0})}, {"keepdims", attr_int(0)}}), {x}, 13);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].shape(), (Shape{3}));
  EXPECT_EQ((*r)[0].data<int32_t>()[0], std::numeric_limits<int32_t>::lowest());
}

TEST(ReduceTest, reduce_all_in_parallel_matches_serial_sum) {
  auto v = random_floats(100003, 5);
  double want = 0;
  for (float f : v) want += f;
  Tensor x = Tensor::from_vector<float>(v, {100003});
  for (int threads : {1, 2}) {
    auto r = run_node(make_node("ReduceMean", 1, 1, {{"keepdims", attr_int(0)}}), {x}, 13, {}, threads);
    ASSERT_TRUE(r.ok());
    EXPECT_NEAR(to_vec((*r)[0])[0], want / 100003.0, 1e-5);
  }
}

TEST(ReduceTest, rejects_out_of_range_and_duplicate_axes) {
  Tensor x = Tensor::from_vector<float>({1, 2}, {2});
  auto r = run_node(make_node("ReduceMean", 1, 1, {{"axes", attr_ints({3})}}), {x}, 13);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  auto d = run_node(make_node("ReduceMean", 1, 1, {{"axes", attr_ints({0, -1})}}), {x}, 13);
  EXPECT_FALSE(d.ok());
}

TEST(ArgReduceTest, argmax_argmin_with_select_last_index) {
  Tensor x = Tensor::from_vector<float>({2, 2, 1, 1, 3, 3}, {2, 3});
  auto first = run_node(make_node("ArgMax", 1, 1, {{"axis", attr_int(1)}}), {x}, 13);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((*first)[0].shape(), (Shape{2, 1}));
  EXPECT_EQ((*first)[0].data<int64_t>()[0], 0);
  EXPECT_EQ((*first)[0].data<int64_t>()[1], 1);
  auto last = run_node(make_node("ArgMin", 1, 1,
                                 {{"axis", attr_int(-1)}, {"keepdims", attr_int(0)}, {"select_last_index", attr_int(1)}}),
                       {x}, 13);
  ASSERT_TRUE(last.ok());
  EXPECT_EQ((*last)[0].shape(), (Shape{2}));
  EXPECT_EQ((*last)[0].data<int64_t>()[0], 2);
  EXPECT_EQ((*last)[0].data<int64_t>()[1], 0);
  auto axis0 = run_node(make_node("ArgMax", 1, 1, {{"keepdims", attr_int(0)}}), {x}, 13);
  ASSERT_TRUE(axis0.ok());
  EXPECT_EQ((*axis0)[0].data<int64_t>()[0], 0);
  EXPECT_EQ((*axis0)[0].data<int64_t>()[2], 1);
  auto bad = run_node(make_node("ArgMax", 1, 1, {{"axis", attr_int(2)}}), {x}, 13);
  EXPECT_FALSE(bad.ok());
}

TEST(TopKTest, largest_smallest_and_tie_order) {
  Tensor x = Tensor::from_vector<float>({1, 3, 3, 2, 5, 0}, {2, 3});
  Tensor k = Tensor::from_vector<int64_t>({2}, {1});
  auto r = run_node(make_node("TopK", 2, 2), {x, k}, 11);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(to_vec((*r)[0]), (std::vector<float>{3, 3, 5, 2}));
  const int64_t* idx = (*r)[1].data<int64_t>();
  EXPECT_EQ((std::vector<int64_t>(idx, idx + 4)), (std::vector<int64_t>{1, 2, 1, 0}));
  auto s = run_node(make_node("TopK", 2, 2, {{"largest", attr_int(0)}, {"axis", attr_int(0)}}),
                    {x, Tensor::from_vector<int64_t>({1}, {1})}, 11);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(to_vec((*s)[0]), (std::vector<float>{1, 3, 0}));
}

TEST(TopKTest, k_attribute_before_opset10_and_k_too_large_rejected) {
  Tensor x = Tensor::from_vector<float>({4, 1, 7}, {3});
  auto r = run_node(make_node("TopK", 1, 2, {{"k", attr_int(1)}}), {x}, 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(to_vec((*r)[0]), (std::vector<float>{7}));
  auto bad = run_node(make_node("TopK", 2, 2), {x, Tensor::from_vector<int64_t>({4}, {1})}, 11);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST(CumSumTest, exclusive_reverse_and_axis) {
  Tensor x = Tensor::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3});
  auto run = [&](int64_t axis, int64_t excl, int64_t rev) {
    auto r = run_node(make_node("CumSum", 2, 1, {{"exclusive", attr_int(excl)}, {"reverse", attr_int(rev)}}),
                      {x, Tensor::scalar<int32_t>(static_cast<int32_t>(axis))}, 14);
    EXPECT_TRUE(r.ok());
    const double* d = (*r)[0].data<double>();
    return std::vector<double>(d, d + 6);
  };
  EXPECT_EQ(run(1, 0, 0), (std::vector<double>{1, 3, 6, 4, 9, 15}));
  EXPECT_EQ(run(0, 0, 0), (std::vector<double>{1, 2, 3, 5, 7, 9}));
  EXPECT_EQ(run(-1, 1, 0), (std::vector<double>{0, 1, 3, 0, 4, 9}));
  EXPECT_EQ(run(1, 1, 1), (std::vector<double>{5, 3, 0, 11, 6, 0}));
  auto bad = run_node(make_node("CumSum", 2, 1), {x, Tensor::from_vector<int64_t>({0, 1}, {2})}, 14);
  EXPECT_FALSE(bad.ok());
}

TEST(EinsumTest, matmul_transpose_trace_and_implicit_output) {
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector<float>({1, 0, 0, 1, 1, 1}, {3, 2});
  auto mm = run_node(make_node("Einsum", 2, 1, {{"equation", attr_string("ij, jk -> ik")}}), {a, b}, 12);
  ASSERT_TRUE(mm.ok()) << mm.status().to_string();
  EXPECT_EQ(to_vec((*mm)[0]), (std::vector<float>{4, 5, 10, 11}));
  auto implicit = run_node(make_node("Einsum", 2, 1, {{"equation", attr_string("ij,jk")}}), {a, b}, 12);
  ASSERT_TRUE(implicit.ok());
  EXPECT_EQ(to_vec((*implicit)[0]), (std::vector<float>{4, 5, 10, 11}));
  auto tr = run_node(make_node("Einsum", 1, 1, {{"equation", attr_string("ji")}}), {a}, 12);
  ASSERT_TRUE(tr.ok());
  EXPECT_EQ((*tr)[0].shape(), (Shape{3, 2}));  // implicit output is alphabetical: "ij"
  EXPECT_EQ(to_vec((*tr)[0]), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  Tensor sq = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  auto trace = run_node(make_node("Einsum", 1, 1, {{"equation", attr_string("ii->")}}), {sq}, 12);
  ASSERT_TRUE(trace.ok());
  EXPECT_EQ(to_vec((*trace)[0]), (std::vector<float>{5}));
}

TEST(EinsumTest, ellipsis_broadcast_and_batch_diagonal) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  auto diag = run_node(make_node("Einsum", 1, 1, {{"equation", attr_string("...ii->...i")}}), {x}, 12);
  ASSERT_TRUE(diag.ok()) << diag.status().to_string();
  EXPECT_EQ(to_vec((*diag)[0]), (std::vector<float>{1, 4, 5, 8}));
  Tensor v = Tensor::from_vector<float>({10, 100}, {2});
  auto bc = run_node(make_node("Einsum", 2, 1, {{"equation", attr_string("...j,j->...")}}), {x, v}, 12);
  ASSERT_TRUE(bc.ok());
  EXPECT_EQ((*bc)[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(to_vec((*bc)[0]), (std::vector<float>{210, 430, 650, 870}));
}

TEST(EinsumTest, matmul_fast_path_matches_reference_loop) {
  // "abc,cbd->dab": b is a batch label, c is contracted, the output is permuted.
  const int64_t A = 3, B = 4, C = 5, D = 6;
  auto x = random_floats(A * B * C, 11), y = random_floats(C * B * D, 12);
  std::vector<float> want(D * A * B, 0.0f);
  for (int64_t a = 0; a < A; ++a)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t d = 0; d < D; ++d) want[(d * A + a) * B + b] += x[(a * B + b) * C + c] * y[(c * B + b) * D + d];
  auto r = run_node(make_node("Einsum", 2, 1, {{"equation", attr_string("abc,cbd->dab")}}),
                    {Tensor::from_vector<float>(x, {A, B, C}), Tensor::from_vector<float>(y, {C, B, D})}, 12);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].shape(), (Shape{D, A, B}));
  auto got = to_vec((*r)[0]);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4);
  // Same contraction in int32 takes the plain loop.
  std::vector<int32_t> xi(x.size()), yi(y.size());
  for (size_t i = 0; i < x.size(); ++i) xi[i] = static_cast<int32_t>(i % 5) - 2;
  for (size_t i = 0; i < y.size(); ++i) yi[i] = static_cast<int32_t>(i % 3) - 1;
  auto ri = run_node(make_node("Einsum", 2, 1, {{"equation", attr_string("abc,cbd->dab")}}),
                     {Tensor::from_vector<int32_t>(xi, {A, B, C}), Tensor::from_vector<int32_t>(yi, {C, B, D})}, 12);
  ASSERT_TRUE(ri.ok());
  for (int64_t d = 0; d < D; ++d)
    for (int64_t a = 0; a < A; ++a)
      for (int64_t b = 0; b < B; ++b) {
        int32_t s = 0;
        for (int64_t c = 0; c < C; ++c) s += xi[(a * B + b) * C + c] * yi[(c * B + b) * D + d];
        ASSERT_EQ((*ri)[0].data<int32_t>()[(d * A + a) * B + b], s);
      }
}

TEST(EinsumTest, rejects_bad_equations_and_mismatched_dims) {
  Tensor a = Tensor::from_vector<float>({1, 2, 3}, {3});
  Tensor b = Tensor::from_vector<float>({1, 2}, {2});
  EXPECT_FALSE(run_node(make_node("Einsum", 2, 1, {{"equation", attr_string("i,i")}}), {a, b}, 12).ok());
  EXPECT_FALSE(run_node(make_node("Einsum", 1, 1, {{"equation", attr_string("i#->i")}}), {a}, 12).ok());
  EXPECT_FALSE(run_node(make_node("Einsum", 1, 1, {{"equation", attr_string("ij->i")}}), {a}, 12).ok());
  EXPECT_FALSE(run_node(make_node("Einsum", 1, 1, {{"equation", attr_string("i->k")}}), {a}, 12).ok());
}

TEST(DetTest, batched_determinants_and_shape_check) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 0, 1, 1, 0}, {2, 2, 2});
  auto r = run_node(make_node("Det", 1, 1), {x}, 11);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].shape(), (Shape{2}));
  auto d = to_vec((*r)[0]);
  EXPECT_NEAR(d[0], -2.0f, 1e-5);
  EXPECT_NEAR(d[1], -1.0f, 1e-5);
  Tensor m3 = Tensor::from_vector<double>({2, 0, 1, 1, 3, 2, 1, 1, 1}, {3, 3});
  auto r3 = run_node(make_node("Det", 1, 1), {m3}, 11);
  ASSERT_TRUE(r3.ok());
  EXPECT_NEAR((*r3)[0].data<double>()[0], 2 * (3 - 2) - 0 + 1 * (1 - 3), 1e-12);
  EXPECT_FALSE(run_node(make_node("Det", 1, 1), {Tensor::from_vector<float>({1, 2}, {1, 2})}, 11).ok());
}

}  // namespace
}  // namespace hearth
