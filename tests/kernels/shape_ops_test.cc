// Shape-family kernel tests: hand-computed small cases, the strided-copy
// kernels (Transpose, Slice) against plain reference loops on random shapes,
// view semantics of Reshape-like ops, opset-dependent attribute forms, and
// bad input rejected with invalid_argument.
#include <gtest/gtest.h>

#include <random>

#include "kernels/kernel_test_util.h"

namespace hearth {
namespace {

using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;
using testing::make_node;
using testing::run_node;

template <typename T>
std::vector<T> vals(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}
Tensor i64(std::vector<int64_t> v) {
  const int64_t n = static_cast<int64_t>(v.size());
  return Tensor::from_vector<int64_t>(v, {n});
}
Tensor iota_f(const Shape& s) {
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return Tensor::from_vector(v, s);
}
// Runs a node with one output and returns it, failing the test on error.
Tensor run1(Node n, const std::vector<Tensor>& in, int64_t opset = 17) {
  auto r = run_node(std::move(n), in, opset);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? (*r)[0] : Tensor();
}
void expect_invalid(Result<std::vector<Tensor>> r) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
}

// ---- views -----------------------------------------------------------------

TEST(ShapeReshape, copies_zero_dims_infers_minus_one_and_returns_a_view) {
  Tensor x = iota_f({2, 3, 4});
  Tensor y = run1(make_node("Reshape", 2, 1), {x, i64({0, -1})});
  EXPECT_EQ(y.shape(), (Shape{2, 12}));
  EXPECT_EQ(y.raw_data(), x.raw_data());
}

TEST(ShapeReshape, allowzero_keeps_zero_and_bad_counts_are_rejected) {
  Tensor x = iota_f({0, 3});
  Tensor y = run1(make_node("Reshape", 2, 1, {{"allowzero", attr_int(1)}}), {x, i64({3, 0})}, 14);
  EXPECT_EQ(y.shape(), (Shape{3, 0}));
  expect_invalid(run_node(make_node("Reshape", 2, 1), {iota_f({2, 3}), i64({4, -1})}));
  expect_invalid(run_node(make_node("Reshape", 2, 1), {iota_f({2, 3}), i64({-1, -1})}));
}

TEST(ShapeFlatten, splits_at_negative_and_zero_axis) {
  Tensor x = iota_f({2, 3, 4});
  EXPECT_EQ(run1(make_node("Flatten", 1, 1, {{"axis", attr_int(-1)}}), {x}).shape(), (Shape{6, 4}));
  EXPECT_EQ(run1(make_node("Flatten", 1, 1, {{"axis", attr_int(0)}}), {x}).shape(), (Shape{1, 24}));
  expect_invalid(run_node(make_node("Flatten", 1, 1, {{"axis", attr_int(4)}}), {x}));
}

TEST(ShapeSqueeze, reads_axes_from_attribute_before_13_and_input_after) {
  Tensor x = iota_f({1, 3, 1, 2});
  EXPECT_EQ(run1(make_node("Squeeze", 1, 1, {{"axes", attr_ints({-2})}}), {x}, 11).shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(run1(make_node("Squeeze", 2, 1), {x, i64({0})}, 13).shape(), (Shape{3, 1, 2}));
  EXPECT_EQ(run1(make_node("Squeeze", 1, 1), {x}, 13).shape(), (Shape{3, 2}));
  expect_invalid(run_node(make_node("Squeeze", 2, 1), {x, i64({1})}, 13));
}

TEST(ShapeUnsqueeze, inserts_unsorted_axes_and_rejects_duplicates) {
  Tensor x = iota_f({3, 2});
  EXPECT_EQ(run1(make_node("Unsqueeze", 2, 1), {x, i64({3, 0})}, 13).shape(), (Shape{1, 3, 2, 1}));
  EXPECT_EQ(run1(make_node("Unsqueeze", 1, 1, {{"axes", attr_ints({-1})}}), {x}, 11).shape(), (Shape{3, 2, 1}));
  expect_invalid(run_node(make_node("Unsqueeze", 2, 1), {x, i64({1, 1})}, 13));
}

// ---- Transpose / Slice against reference loops -----------------------------

Tensor transpose_ref(const Tensor& x, const std::vector<int64_t>& perm) {
  Shape out;
  for (int64_t p : perm) out.push_back(x.dim(static_cast<size_t>(p)));
  Tensor y(x.dtype(), out);
  const auto xs = shape_strides(x.shape());
  std::vector<int64_t> idx(out.size(), 0);
  for (int64_t i = 0; i < y.numel(); ++i) {
    int64_t rem = i, off = 0;
    for (size_t d = out.size(); d-- > 0;) {
      off += (rem % out[d]) * xs[static_cast<size_t>(perm[d])];
      rem /= out[d];
    }
    y.data<float>()[i] = x.data<float>()[off];
  }
  return y;
}

TEST(ShapeTranspose, matches_reference_loop_on_random_shapes) {
  std::mt19937 rng(7);
  const std::vector<std::pair<Shape, std::vector<int64_t>>> cases = {
      {{2, 3, 40, 33}, {0, 2, 3, 1}}, {{2, 40, 33, 3}, {0, 3, 1, 2}}, {{70, 45}, {1, 0}},
      {{3, 4, 5}, {2, 0, 1}},         {{1, 9, 1, 16}, {3, 1, 0, 2}},  {{5, 0, 3}, {2, 1, 0}},
      {{2, 64, 40, 33}, {0, 2, 3, 1}}, {{2, 40, 33, 64}, {0, 3, 1, 2}}, {{300, 260}, {1, 0}}};
  for (const auto& [shape, perm] : cases) {
    Tensor x = iota_f(shape);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(rng() % 1000);
    for (int threads : {1, 2}) {
      auto r = run_node(make_node("Transpose", 1, 1, {{"perm", attr_ints(perm)}}), {x}, 13, {}, threads);
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      Tensor want = transpose_ref(x, perm);
      EXPECT_EQ((*r)[0].shape(), want.shape());
      EXPECT_EQ(vals<float>((*r)[0]), vals<float>(want)) << shape_str(shape);
    }
  }
}

TEST(ShapeTranspose, default_reverses_axes_for_any_dtype_and_bad_perm_is_rejected) {
  Tensor x = Tensor::from_vector<int8_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor y = run1(make_node("Transpose", 1, 1), {x});
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  EXPECT_EQ(vals<int8_t>(y), (std::vector<int8_t>{1, 4, 2, 5, 3, 6}));
  expect_invalid(run_node(make_node("Transpose", 1, 1, {{"perm", attr_ints({0, 0})}}), {x}));
}

TEST(ShapeSlice, handles_negative_steps_clamping_and_axes) {
  Tensor x = iota_f({3, 5});
  // rows 2..0 step -2 (rows 2, 0), cols from -1 clamped past the start, step -2: cols 4, 2, 0
  Tensor y = run1(make_node("Slice", 5, 1), {x, i64({-1, 100}), i64({-100, -100}), i64({0, 1}), i64({-2, -2})});
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(vals<float>(y), (std::vector<float>{14, 12, 10, 4, 2, 0}));
  Tensor z = run1(make_node("Slice", 4, 1), {x, i64({1}), i64({1000}), i64({-1})});
  EXPECT_EQ(z.shape(), (Shape{3, 4}));
  EXPECT_EQ(vals<float>(z)[0], 1);
  Tensor e = run1(make_node("Slice", 3, 1), {x, i64({3}), i64({1})});
  EXPECT_EQ(e.shape(), (Shape{0, 5}));
}

TEST(ShapeSlice, uses_attributes_before_opset_10_and_rejects_zero_step) {
  Tensor x = iota_f({4});
  Node n = make_node("Slice", 1, 1, {{"starts", attr_ints({1})}, {"ends", attr_ints({3})}});
  EXPECT_EQ(vals<float>(run1(n, {x}, 9)), (std::vector<float>{1, 2}));
  expect_invalid(run_node(make_node("Slice", 5, 1), {x, i64({0}), i64({3}), i64({0}), i64({0})}));
}

// ---- Concat / Split --------------------------------------------------------

TEST(ShapeConcat, joins_along_axis_including_empty_inputs) {
  Tensor a = iota_f({2, 1}), b = iota_f({2, 0}), c = iota_f({2, 2});
  Tensor y = run1(make_node("Concat", 3, 1, {{"axis", attr_int(-1)}}), {a, b, c});
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(vals<float>(y), (std::vector<float>{0, 0, 1, 1, 2, 3}));
  expect_invalid(run_node(make_node("Concat", 2, 1, {{"axis", attr_int(0)}}), {a, c}));
}

TEST(ShapeSplit, splits_equally_by_attribute_and_by_input) {
  Tensor x = iota_f({2, 4});
  auto r = run_node(make_node("Split", 1, 2, {{"axis", attr_int(1)}}), {x});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(vals<float>((*r)[0]), (std::vector<float>{0, 1, 4, 5}));
  EXPECT_EQ(vals<float>((*r)[1]), (std::vector<float>{2, 3, 6, 7}));
  r = run_node(make_node("Split", 1, 3, {{"axis", attr_int(1)}, {"split", attr_ints({1, 0, 3})}}), {x}, 11);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[1].shape(), (Shape{2, 0}));
  EXPECT_EQ(vals<float>((*r)[2]), (std::vector<float>{1, 2, 3, 5, 6, 7}));
  r = run_node(make_node("Split", 2, 2), {x, i64({1, 1})}, 13);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(vals<float>((*r)[1]), (std::vector<float>{4, 5, 6, 7}));
  expect_invalid(run_node(make_node("Split", 2, 2), {x, i64({1, 2})}, 13));
  expect_invalid(run_node(make_node("Split", 1, 3, {{"axis", attr_int(1)}}), {x}, 13));
}

TEST(ShapeConcat, parallel_copy_of_large_inputs_matches_serial_layout) {
  Tensor a = iota_f({4, 40000}), b = iota_f({4, 30000});
  auto r = run_node(make_node("Concat", 2, 1, {{"axis", attr_int(1)}}), {a, b}, 13, {}, 2);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const Tensor& y = (*r)[0];
  ASSERT_EQ(y.shape(), (Shape{4, 70000}));
  for (int64_t row = 0; row < 4; ++row) {
    EXPECT_EQ(y.data<float>()[row * 70000 + 39999], static_cast<float>(row * 40000 + 39999));
    EXPECT_EQ(y.data<float>()[row * 70000 + 40000], static_cast<float>(row * 30000));
  }
}

// One block per part (outer == 1, a channel concat at batch 1) and several, with
// parts whose sizes are not multiples of the copy pieces, on 2 and 3 threads;
// Split of the result gives the parts back.
TEST(ShapeConcat, pieces_of_large_copies_land_in_place_and_split_back) {
  for (int64_t outer : {1, 3}) {
    for (int threads : {2, 3}) {
      std::vector<Tensor> parts = {iota_f({outer, 40001}), iota_f({outer, 12345}), iota_f({outer, 70000})};
      for (size_t k = 0; k < parts.size(); ++k)  // distinct values per part
        for (int64_t i = 0; i < parts[k].numel(); ++i) parts[k].data<float>()[i] += 1e6f * static_cast<float>(k);
      auto r = run_node(make_node("Concat", 3, 1, {{"axis", attr_int(1)}}), parts, 13, {}, threads);
      ASSERT_TRUE(r.ok()) << r.status().to_string();
      const Tensor& y = (*r)[0];
      ASSERT_EQ(y.shape(), (Shape{outer, 122346}));
      for (int64_t o = 0; o < outer; ++o) {
        int64_t at = o * 122346;
        for (const Tensor& part : parts) {
          const int64_t n = part.dim(1);
          for (int64_t i = 0; i < n; ++i)
            ASSERT_EQ(y.data<float>()[at + i], part.data<float>()[o * n + i])
                << "outer " << outer << " threads " << threads << " row " << o << " element " << i;
          at += n;
        }
      }
      auto back = run_node(make_node("Split", 2, 3, {{"axis", attr_int(1)}}), {y, i64({40001, 12345, 70000})}, 13, {},
                           threads);
      ASSERT_TRUE(back.ok()) << back.status().to_string();
      for (size_t k = 0; k < parts.size(); ++k)
        ASSERT_EQ(vals<float>((*back)[k]), vals<float>(parts[k])) << "part " << k << " outer " << outer;
    }
  }
}

// Many small blocks (a last-axis concat, outer = 65536) stay a split over the
// blocks; an empty middle part on the piece path is skipped.
TEST(ShapeConcat, many_small_blocks_and_empty_parts_on_two_threads) {
  Tensor a = iota_f({65536, 3}), b = iota_f({65536, 2});
  auto r = run_node(make_node("Concat", 2, 1, {{"axis", attr_int(1)}}), {a, b}, 13, {}, 2);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  for (int64_t o = 0; o < 65536; ++o) {
    ASSERT_EQ((*r)[0].data<float>()[o * 5 + 2], static_cast<float>(o * 3 + 2)) << o;
    ASSERT_EQ((*r)[0].data<float>()[o * 5 + 3], static_cast<float>(o * 2)) << o;
  }
  Tensor big1 = iota_f({1, 100000}), empty = iota_f({1, 0}), big2 = iota_f({1, 90000});
  r = run_node(make_node("Concat", 3, 1, {{"axis", attr_int(1)}}), {big1, empty, big2}, 13, {}, 2);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ((*r)[0].data<float>()[99999], 99999.0f);
  EXPECT_EQ((*r)[0].data<float>()[100000], 0.0f);
  EXPECT_EQ((*r)[0].data<float>()[189999], 89999.0f);
}

// ---- Expand / Tile ---------------------------------------------------------

TEST(ShapeExpand, broadcasts_both_ways_and_rejects_conflicts) {
  Tensor x = Tensor::from_vector<int32_t>({1, 2, 3}, {3, 1});
  Tensor y = run1(make_node("Expand", 2, 1), {x, i64({2, 1, 2})});
  EXPECT_EQ(y.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(vals<int32_t>(y), (std::vector<int32_t>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}));
  expect_invalid(run_node(make_node("Expand", 2, 1), {x, i64({2, 2})}));
}

TEST(ShapeTile, repeats_each_axis_for_bool) {
  Tensor x = Tensor::from_vector<bool>({true, false}, {1, 2});
  Tensor y = run1(make_node("Tile", 2, 1), {x, i64({2, 2})});
  EXPECT_EQ(y.shape(), (Shape{2, 4}));
  EXPECT_EQ(vals<bool>(y), (std::vector<bool>{true, false, true, false, true, false, true, false}));
  expect_invalid(run_node(make_node("Tile", 2, 1), {x, i64({2})}));
}

// ---- DepthToSpace / SpaceToDepth -------------------------------------------

TEST(ShapeDepthToSpace, dcr_and_crd_orders_match_hand_values) {
  Tensor x = iota_f({1, 4, 1, 1});
  Tensor dcr = run1(make_node("DepthToSpace", 1, 1, {{"blocksize", attr_int(2)}}), {x});
  EXPECT_EQ(dcr.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(vals<float>(dcr), (std::vector<float>{0, 1, 2, 3}));
  Tensor x8 = iota_f({1, 8, 1, 1});
  Tensor d8 = run1(make_node("DepthToSpace", 1, 1, {{"blocksize", attr_int(2)}}), {x8});
  EXPECT_EQ(vals<float>(d8), (std::vector<float>{0, 2, 4, 6, 1, 3, 5, 7}));
  Tensor c8 = run1(make_node("DepthToSpace", 1, 1, {{"blocksize", attr_int(2)}, {"mode", attr_string("CRD")}}), {x8});
  EXPECT_EQ(vals<float>(c8), (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}));
  expect_invalid(run_node(make_node("DepthToSpace", 1, 1, {{"blocksize", attr_int(3)}}), {x8}));
}

TEST(ShapeSpaceToDepth, inverts_depth_to_space_dcr) {
  Tensor x = iota_f({2, 3, 4, 6});
  Tensor s = run1(make_node("SpaceToDepth", 1, 1, {{"blocksize", attr_int(2)}}), {x});
  EXPECT_EQ(s.shape(), (Shape{2, 12, 2, 3}));
  Tensor back = run1(make_node("DepthToSpace", 1, 1, {{"blocksize", attr_int(2)}}), {s});
  EXPECT_EQ(vals<float>(back), vals<float>(x));
  expect_invalid(run_node(make_node("SpaceToDepth", 1, 1, {{"blocksize", attr_int(5)}}), {x}));
}

// ---- Shape / Size / generators ---------------------------------------------

TEST(ShapeShape, honours_clamped_start_and_end_from_opset_15) {
  Tensor x = iota_f({2, 3, 4});
  EXPECT_EQ(vals<int64_t>(run1(make_node("Shape", 1, 1), {x})), (std::vector<int64_t>{2, 3, 4}));
  Node n = make_node("Shape", 1, 1, {{"start", attr_int(-10)}, {"end", attr_int(-1)}});
  EXPECT_EQ(vals<int64_t>(run1(n, {x}, 15)), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(vals<int64_t>(run1(make_node("Size", 1, 1), {x})), (std::vector<int64_t>{24}));
}

TEST(ShapeConstantOfShape, fills_with_value_dtype_and_rejects_negative_dims) {
  Attribute v;
  v.type = Attribute::Type::kTensor;
  v.t = Tensor::from_vector<int32_t>({7}, {1});
  Tensor y = run1(make_node("ConstantOfShape", 1, 1, {{"value", v}}), {i64({2, 2})});
  EXPECT_EQ(y.dtype(), DataType::kInt32);
  EXPECT_EQ(vals<int32_t>(y), (std::vector<int32_t>{7, 7, 7, 7}));
  Tensor z = run1(make_node("ConstantOfShape", 1, 1), {i64({0})});
  EXPECT_EQ(z.dtype(), DataType::kFloat);
  EXPECT_EQ(z.numel(), 0);
  expect_invalid(run_node(make_node("ConstantOfShape", 1, 1), {i64({-1})}));
}

TEST(ShapeRange, counts_like_the_spec_for_float_and_negative_int_delta) {
  Tensor y = run1(make_node("Range", 3, 1), {Tensor::scalar<float>(1), Tensor::scalar<float>(2), Tensor::scalar<float>(0.3f)});
  EXPECT_EQ(y.numel(), 4);
  EXPECT_FLOAT_EQ(vals<float>(y)[3], 1.9f);
  Tensor z = run1(make_node("Range", 3, 1), {Tensor::scalar<int32_t>(10), Tensor::scalar<int32_t>(4), Tensor::scalar<int32_t>(-3)});
  EXPECT_EQ(vals<int32_t>(z), (std::vector<int32_t>{10, 7}));
  expect_invalid(run_node(make_node("Range", 3, 1), {Tensor::scalar<int32_t>(0), Tensor::scalar<int32_t>(4), Tensor::scalar<int32_t>(0)}));
}

TEST(ShapeEyeLike, puts_ones_on_kth_diagonal_in_requested_dtype) {
  Tensor x = iota_f({3, 4});
  Tensor y = run1(make_node("EyeLike", 1, 1, {{"k", attr_int(1)}, {"dtype", attr_int(6)}}), {x});
  EXPECT_EQ(y.dtype(), DataType::kInt32);
  EXPECT_EQ(vals<int32_t>(y), (std::vector<int32_t>{0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}));
  expect_invalid(run_node(make_node("EyeLike", 1, 1), {iota_f({3})}));
}

TEST(ShapeTrilu, keeps_upper_or_lower_part_relative_to_k) {
  Tensor x = iota_f({2, 3, 3});
  Tensor up = run1(make_node("Trilu", 2, 1), {x, Tensor::scalar<int64_t>(1)});
  EXPECT_EQ(vals<float>(up), (std::vector<float>{0, 1, 2, 0, 0, 5, 0, 0, 0, 0, 10, 11, 0, 0, 14, 0, 0, 0}));
  Tensor lo = run1(make_node("Trilu", 2, 1, {{"upper", attr_int(0)}}), {x, Tensor::scalar<int64_t>(-1)});
  EXPECT_EQ(vals<float>(lo), (std::vector<float>{0, 0, 0, 3, 0, 0, 6, 7, 0, 0, 0, 0, 12, 0, 0, 15, 16, 0}));
  Tensor plain = run1(make_node("Trilu", 1, 1), {x});
  EXPECT_EQ(vals<float>(plain)[3], 0);
  expect_invalid(run_node(make_node("Trilu", 1, 1), {iota_f({3})}));
}

}  // namespace
}  // namespace hearth
