// Tests for the elementwise kernel family (unary math, broadcast binary ops,
// Pow, Mod, variadic Max/Min/Sum/Mean, Where, Cast) against hand-computed values.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/kernel_test_util.h"
#include "core/dtype.h"

namespace hearth {
namespace {

using testing::attr_int;
using testing::attr_string;
using testing::make_node;
using testing::run_node;
using testing::run_op;
using testing::values;


TEST(ElementwiseUnary, math_functions_match_cmath) {
  Tensor x = Tensor::from_vector<float>({-1.5f, -0.5f, 0.5f, 2.5f}, {2, 2});
  EXPECT_EQ(values<float>(run_op("Abs", {x})), (std::vector<float>{1.5f, 0.5f, 0.5f, 2.5f}));
  EXPECT_EQ(values<float>(run_op("Neg", {x})), (std::vector<float>{1.5f, 0.5f, -0.5f, -2.5f}));
  EXPECT_EQ(values<float>(run_op("Floor", {x})), (std::vector<float>{-2, -1, 0, 2}));
  EXPECT_EQ(values<float>(run_op("Ceil", {x})), (std::vector<float>{-1, -0.0f, 1, 3}));
  // Round: half to even.
  EXPECT_EQ(values<float>(run_op("Round", {x})), (std::vector<float>{-2, -0.0f, 0, 2}));
  EXPECT_EQ(values<float>(run_op("Sign", {x})), (std::vector<float>{-1, -1, 1, 1}));
  auto e = values<float>(run_op("Exp", {x}));
  for (size_t i = 0; i < e.size(); ++i) EXPECT_FLOAT_EQ(e[i], std::exp(x.data<float>()[i]));
  EXPECT_EQ(run_op("Exp", {x}).shape(), (Shape{2, 2}));
}

TEST(ElementwiseUnary, integer_abs_neg_and_double_sqrt) {
  Tensor i = Tensor::from_vector<int32_t>({-3, 0, 7}, {3});
  EXPECT_EQ(values<int32_t>(run_op("Abs", {i})), (std::vector<int32_t>{3, 0, 7}));
  EXPECT_EQ(values<int32_t>(run_op("Neg", {i})), (std::vector<int32_t>{3, 0, -7}));
  Tensor d = Tensor::from_vector<double>({4.0, 2.0}, {2});
  EXPECT_EQ(values<double>(run_op("Sqrt", {d})), (std::vector<double>{2.0, std::sqrt(2.0)}));
}

TEST(ElementwiseUnary, float16_is_computed_through_float) {
  Tensor h(DataType::kFloat16, {2});
  h.data<Float16>()[0].bits = float_to_half(-2.0f);
  h.data<Float16>()[1].bits = float_to_half(0.25f);
  Tensor y = run_op("Abs", {h});
  ASSERT_EQ(y.dtype(), DataType::kFloat16);
  EXPECT_EQ(half_to_float(y.data<Float16>()[0].bits), 2.0f);
  EXPECT_EQ(half_to_float(y.data<Float16>()[1].bits), 0.25f);
}

TEST(ElementwiseUnary, isnan_isinf_not_produce_bool) {
  const float inf = std::numeric_limits<float>::infinity();
  Tensor x = Tensor::from_vector<float>({1.0f, NAN, inf, -inf}, {4});
  EXPECT_EQ(values<bool>(run_op("IsNaN", {x})), (std::vector<bool>{false, true, false, false}));
  EXPECT_EQ(values<bool>(run_op("IsInf", {x})), (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(values<bool>(run_op("IsInf", {x}, {{"detect_negative", attr_int(0)}})),
            (std::vector<bool>{false, false, true, false}));
  Tensor b = Tensor::from_vector<bool>({true, false}, {2});
  EXPECT_EQ(values<bool>(run_op("Not", {b})), (std::vector<bool>{false, true}));
}

TEST(ElementwiseUnary, rejects_unsupported_dtype) {
  Tensor i = Tensor::from_vector<int32_t>({1}, {1});
  auto r = run_node(make_node("Exp", 1, 1), {i});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(r.status().message().find("int32"), std::string::npos);
  auto n = run_node(make_node("Not", 1, 1), {Tensor::from_vector<float>({1.0f}, {1})});
  EXPECT_FALSE(n.ok());
}

TEST(ElementwiseBinary, add_broadcasts_row_and_column) {
  Tensor a = Tensor::from_vector<float>({1, 2, 3}, {3, 1});
  Tensor b = Tensor::from_vector<float>({10, 20}, {1, 2});
  Tensor y = run_op("Add", {a, b});
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  EXPECT_EQ(values<float>(y), (std::vector<float>{11, 21, 12, 22, 13, 23}));
  Tensor s = run_op("Mul", {a, Tensor::scalar<float>(2.0f)});
  EXPECT_EQ(values<float>(s), (std::vector<float>{2, 4, 6}));
}

TEST(ElementwiseBinary, integer_div_truncates_and_survives_zero) {
  Tensor a = Tensor::from_vector<int64_t>({7, -7, 5, std::numeric_limits<int64_t>::min()}, {4});
  Tensor b = Tensor::from_vector<int64_t>({2, 2, 0, -1}, {4});
  EXPECT_EQ(values<int64_t>(run_op("Div", {a, b})),
            (std::vector<int64_t>{3, -3, 0, std::numeric_limits<int64_t>::min()}));
}

TEST(ElementwiseBinary, mod_follows_python_or_c_sign) {
  Tensor a = Tensor::from_vector<int32_t>({-4, 7, 5, -3}, {4});
  Tensor b = Tensor::from_vector<int32_t>({3, -3, 0, 2}, {4});
  EXPECT_EQ(values<int32_t>(run_op("Mod", {a, b})), (std::vector<int32_t>{2, -2, 0, 1}));
  EXPECT_EQ(values<int32_t>(run_op("Mod", {a, b}, {{"fmod", attr_int(1)}})), (std::vector<int32_t>{-1, 1, 0, -1}));
  Tensor fa = Tensor::from_vector<float>({-4.5f, 7.5f}, {2});
  Tensor fb = Tensor::from_vector<float>({2.0f, -2.0f}, {2});
  EXPECT_EQ(values<float>(run_op("Mod", {fa, fb}, {{"fmod", attr_int(1)}})), (std::vector<float>{-0.5f, 1.5f}));
}

TEST(ElementwiseBinary, comparisons_and_logic_output_bool) {
  Tensor a = Tensor::from_vector<int32_t>({1, 2, 3}, {3});
  Tensor b = Tensor::scalar<int32_t>(2);
  EXPECT_EQ(values<bool>(run_op("Less", {a, b})), (std::vector<bool>{true, false, false}));
  EXPECT_EQ(values<bool>(run_op("GreaterOrEqual", {a, b})), (std::vector<bool>{false, true, true}));
  EXPECT_EQ(values<bool>(run_op("Equal", {a, b})), (std::vector<bool>{false, true, false}));
  Tensor p = Tensor::from_vector<bool>({true, true, false, false}, {4});
  Tensor q = Tensor::from_vector<bool>({true, false, true, false}, {4});
  EXPECT_EQ(values<bool>(run_op("Xor", {p, q})), (std::vector<bool>{false, true, true, false}));
  EXPECT_EQ(values<bool>(run_op("And", {p, q})), (std::vector<bool>{true, false, false, false}));
}

TEST(ElementwiseBinary, bitshift_direction_and_wide_shift) {
  Tensor a = Tensor::from_vector<uint8_t>({16, 4, 1}, {3});
  Tensor s = Tensor::from_vector<uint8_t>({1, 2, 9}, {3});
  EXPECT_EQ(values<uint8_t>(run_op("BitShift", {a, s}, {{"direction", attr_string("RIGHT")}})),
            (std::vector<uint8_t>{8, 1, 0}));
  EXPECT_EQ(values<uint8_t>(run_op("BitShift", {a, s}, {{"direction", attr_string("LEFT")}})),
            (std::vector<uint8_t>{32, 16, 0}));
  auto bad = run_node(make_node("BitShift", 2, 1, {{"direction", attr_string("UP")}}), {a, s});
  EXPECT_FALSE(bad.ok());
}

TEST(ElementwiseBinary, rejects_mismatched_types_and_shapes) {
  Tensor a = Tensor::from_vector<float>({1, 2, 3}, {3});
  auto r = run_node(make_node("Add", 2, 1), {a, Tensor::from_vector<double>({1, 2, 3}, {3})});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  auto s = run_node(make_node("Sub", 2, 1), {a, Tensor::from_vector<float>({1, 2}, {2})});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("Sub_test"), std::string::npos);
}

TEST(ElementwisePow, mixed_types_and_fast_paths) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3}, {3});
  EXPECT_EQ(values<float>(run_op("Pow", {x, Tensor::from_vector<int64_t>({3, 2, 1}, {3})})),
            (std::vector<float>{1, 4, 3}));
  EXPECT_EQ(values<float>(run_op("Pow", {x, Tensor::scalar<float>(2.0f)})), (std::vector<float>{1, 4, 9}));
  Tensor i = Tensor::from_vector<int32_t>({2, 3, -2}, {3});
  EXPECT_EQ(values<int32_t>(run_op("Pow", {i, Tensor::from_vector<int32_t>({10, 3, 3}, {3})})),
            (std::vector<int32_t>{1024, 27, -8}));
  EXPECT_EQ(values<int32_t>(run_op("Pow", {i, Tensor::from_vector<float>({2.0f, 0.5f, 2.0f}, {3})})),
            (std::vector<int32_t>{4, 1, 4}));
  auto bad = run_node(make_node("Pow", 2, 1), {Tensor::from_vector<bool>({true}, {1}), x});
  EXPECT_FALSE(bad.ok());
}

TEST(ElementwiseVariadic, max_min_sum_mean_broadcast_all_inputs) {
  Tensor a = Tensor::from_vector<float>({1, 5, 3}, {3});
  Tensor b = Tensor::from_vector<float>({4}, {1});
  Tensor c = Tensor::from_vector<float>({0, 6, 2, 2, 2, 9}, {2, 3});
  EXPECT_EQ(values<float>(run_op("Max", {a, b, c})), (std::vector<float>{4, 6, 4, 4, 5, 9}));
  EXPECT_EQ(values<float>(run_op("Min", {a, b, c})), (std::vector<float>{0, 4, 2, 1, 2, 3}));
  EXPECT_EQ(values<float>(run_op("Sum", {a, b, c})), (std::vector<float>{5, 15, 9, 7, 11, 16}));
  Tensor m = run_op("Mean", {a, b});
  EXPECT_EQ(values<float>(m), (std::vector<float>{2.5f, 4.5f, 3.5f}));
  EXPECT_EQ(values<float>(run_op("Max", {a})), (std::vector<float>{1, 5, 3}));
  auto bad = run_node(make_node("Sum", 2, 1), {a, Tensor::from_vector<int32_t>({1}, {1})});
  EXPECT_FALSE(bad.ok());
}

TEST(ElementwiseVariadic, where_broadcasts_three_inputs) {
  Tensor c = Tensor::from_vector<bool>({true, false}, {2, 1});
  Tensor x = Tensor::from_vector<int64_t>({1, 2, 3}, {3});
  Tensor y = Tensor::scalar<int64_t>(-1);
  Tensor out = run_op("Where", {c, x, y});
  EXPECT_EQ(out.shape(), (Shape{2, 3}));
  EXPECT_EQ(values<int64_t>(out), (std::vector<int64_t>{1, 2, 3, -1, -1, -1}));
  auto bad = run_node(make_node("Where", 3, 1), {x, x, y});
  EXPECT_FALSE(bad.ok());
}

TEST(ElementwiseCast, cast_and_castlike_convert_values) {
  Tensor x = Tensor::from_vector<float>({1.7f, -2.5f, 0.0f}, {3});
  EXPECT_EQ(values<int32_t>(run_op("Cast", {x}, {{"to", attr_int(static_cast<int64_t>(DataType::kInt32))}})),
            (std::vector<int32_t>{1, -2, 0}));
  EXPECT_EQ(values<bool>(run_op("CastLike", {x, Tensor::from_vector<bool>({true}, {1})})),
            (std::vector<bool>{true, true, false}));
  auto bad = run_node(make_node("Cast", 1, 1, {{"to", attr_int(static_cast<int64_t>(DataType::kString))}}), {x});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kUnimplemented);
}

TEST(ElementwiseUnary, identity_shares_memory) {
  Tensor x = Tensor::from_vector<int8_t>({1, 2}, {2});
  Tensor y = run_op("Identity", {x});
  EXPECT_EQ(y.raw_data(), x.raw_data());
}

}  // namespace
}  // namespace hearth
