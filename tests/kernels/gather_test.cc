// Gather-family kernel tests: hand-computed cases for Gather, GatherElements,
// GatherND, the scatters, NonZero, Compress, OneHot, ReverseSequence and
// Unique; int32 and int64 indices, negative indices, empty tensors, and
// out-of-range indices rejected with an invalid_argument naming the index.
#include <gtest/gtest.h>

#include "kernels/kernel_test_util.h"

namespace hearth {
namespace {

using testing::attr_int;
using testing::attr_string;
using testing::make_node;
using testing::run_node;

template <typename T>
std::vector<T> vals(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}
Tensor iota_f(const Shape& s) {
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return Tensor::from_vector(v, s);
}
std::vector<Tensor> run_ok(Node n, const std::vector<Tensor>& in, int64_t opset = 17) {
  const size_t outputs = n.outputs.size();
  auto r = run_node(std::move(n), in, opset);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return r.ok() ? *r : std::vector<Tensor>(outputs);
}
// Expects invalid_argument whose message mentions `needle`.
void expect_invalid(Result<std::vector<Tensor>> r, const std::string& needle) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().to_string();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().to_string();
}

// ---- Gather family ----------------------------------------------------------

TEST(GatherGather, takes_rows_along_axis_with_int32_negative_indices) {
  Tensor x = iota_f({2, 3});
  Tensor idx = Tensor::from_vector<int32_t>({-1, 0, 2, 2}, {2, 2});
  Tensor y = run_ok(make_node("Gather", 2, 1, {{"axis", attr_int(1)}}), {x, idx})[0];
  EXPECT_EQ(y.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(vals<float>(y), (std::vector<float>{2, 0, 2, 2, 5, 3, 5, 5}));
  Tensor rows = run_ok(make_node("Gather", 2, 1), {x, Tensor::scalar<int64_t>(1)})[0];
  EXPECT_EQ(rows.shape(), (Shape{3}));
  EXPECT_EQ(vals<float>(rows), (std::vector<float>{3, 4, 5}));
}

TEST(GatherGather, handles_empty_indices_and_rejects_out_of_range) {
  Tensor x = iota_f({5, 2});
  Tensor empty = Tensor::from_vector<int64_t>({}, {0});
  EXPECT_EQ(run_ok(make_node("Gather", 2, 1), {x, empty})[0].shape(), (Shape{0, 2}));
  expect_invalid(run_node(make_node("Gather", 2, 1), {x, Tensor::from_vector<int64_t>({7}, {1})}),
                 "index 7 is out of range for axis 0 of size 5");
}

TEST(GatherElements, picks_per_element_along_axis) {
  Tensor x = iota_f({3, 3});
  Tensor idx = Tensor::from_vector<int64_t>({1, 2, 0, 2, 0, -3}, {2, 3});
  Tensor y = run_ok(make_node("GatherElements", 2, 1), {x, idx})[0];
  EXPECT_EQ(vals<float>(y), (std::vector<float>{3, 7, 2, 6, 1, 2}));
  Tensor z = run_ok(make_node("GatherElements", 2, 1, {{"axis", attr_int(1)}}),
                    {x, Tensor::from_vector<int32_t>({2, 0}, {1, 2})})[0];
  EXPECT_EQ(vals<float>(z), (std::vector<float>{2, 0}));
  expect_invalid(run_node(make_node("GatherElements", 2, 1), {x, Tensor::from_vector<int64_t>({3}, {1, 1})}),
                 "index 3");
}

TEST(GatherND, gathers_slices_with_batch_dims) {
  Tensor x = iota_f({2, 2, 2});
  Tensor y = run_ok(make_node("GatherND", 2, 1), {x, Tensor::from_vector<int64_t>({1, 0, 0, 1}, {2, 2})})[0];
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_EQ(vals<float>(y), (std::vector<float>{4, 5, 2, 3}));
  Tensor b = run_ok(make_node("GatherND", 2, 1, {{"batch_dims", attr_int(1)}}),
                    {x, Tensor::from_vector<int32_t>({1, 0, 0, -1}, {2, 2})})[0];
  EXPECT_EQ(b.shape(), (Shape{2}));
  EXPECT_EQ(vals<float>(b), (std::vector<float>{2, 5}));
  expect_invalid(run_node(make_node("GatherND", 2, 1), {x, Tensor::from_vector<int64_t>({0, 2}, {1, 2})}),
                 "index 2");
}

// ---- Scatter family ---------------------------------------------------------

TEST(GatherScatterND, writes_and_reduces_slices) {
  Tensor x = iota_f({2, 2});
  Tensor idx = Tensor::from_vector<int64_t>({1, 1}, {2, 1});
  Tensor upd = Tensor::from_vector<float>({10, 20, 1, 2}, {2, 2});
  Tensor y = run_ok(make_node("ScatterND", 3, 1), {x, idx, upd}, 13)[0];
  EXPECT_EQ(vals<float>(y), (std::vector<float>{0, 1, 1, 2}));
  Tensor a = run_ok(make_node("ScatterND", 3, 1, {{"reduction", attr_string("add")}}), {x, idx, upd}, 16)[0];
  EXPECT_EQ(vals<float>(a), (std::vector<float>{0, 1, 13, 25}));
  Tensor m = run_ok(make_node("ScatterND", 3, 1, {{"reduction", attr_string("mul")}}), {x, idx, upd}, 16)[0];
  EXPECT_EQ(vals<float>(m), (std::vector<float>{0, 1, 20, 120}));
  expect_invalid(run_node(make_node("ScatterND", 3, 1), {x, Tensor::from_vector<int64_t>({2, 0}, {2, 1}), upd}),
                 "index 2");
}

TEST(GatherScatterElements, reduces_duplicates_and_supports_deprecated_scatter) {
  Tensor x = Tensor::from_vector<int32_t>({1, 2, 3, 4, 5}, {1, 5});
  Tensor idx = Tensor::from_vector<int64_t>({1, -4}, {1, 2});
  Tensor upd = Tensor::from_vector<int32_t>({3, 5}, {1, 2});
  Node mul = make_node("ScatterElements", 3, 1, {{"axis", attr_int(1)}, {"reduction", attr_string("mul")}});
  EXPECT_EQ(vals<int32_t>(run_ok(mul, {x, idx, upd}, 16)[0]), (std::vector<int32_t>{1, 30, 3, 4, 5}));
  Node old = make_node("Scatter", 3, 1, {{"axis", attr_int(1)}});
  EXPECT_EQ(vals<int32_t>(run_ok(old, {x, idx, upd}, 10)[0]), (std::vector<int32_t>{1, 5, 3, 4, 5}));
  expect_invalid(run_node(make_node("ScatterElements", 3, 1, {{"axis", attr_int(1)}}),
                          {x, Tensor::from_vector<int64_t>({5}, {1, 1}), Tensor::from_vector<int32_t>({0}, {1, 1})}),
                 "index 5");
}

// ---- Selection ---------------------------------------------------------------

TEST(GatherNonZero, lists_coordinates_per_dim) {
  Tensor x = Tensor::from_vector<int8_t>({0, 3, 4, 0}, {2, 2});
  Tensor y = run_ok(make_node("NonZero", 1, 1), {x})[0];
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_EQ(vals<int64_t>(y), (std::vector<int64_t>{0, 1, 1, 0}));
  EXPECT_EQ(run_ok(make_node("NonZero", 1, 1), {iota_f({0, 3})})[0].shape(), (Shape{2, 0}));
}

TEST(GatherCompress, selects_along_axis_or_flattened) {
  Tensor x = iota_f({3, 2});
  Tensor c = Tensor::from_vector<bool>({false, true}, {2});
  Tensor y = run_ok(make_node("Compress", 2, 1, {{"axis", attr_int(0)}}), {x, c})[0];
  EXPECT_EQ(y.shape(), (Shape{1, 2}));
  EXPECT_EQ(vals<float>(y), (std::vector<float>{2, 3}));
  Tensor f = run_ok(make_node("Compress", 2, 1), {x, Tensor::from_vector<bool>({true, false, true}, {3})})[0];
  EXPECT_EQ(vals<float>(f), (std::vector<float>{0, 2}));
  expect_invalid(run_node(make_node("Compress", 2, 1, {{"axis", attr_int(1)}}),
                          {x, Tensor::from_vector<bool>({false, false, true}, {3})}),
                 "beyond");
}

TEST(GatherOneHot, accepts_float_depth_negative_indices_and_axis) {
  Tensor idx = Tensor::from_vector<int64_t>({0, -1, 5}, {3});
  Tensor depth = Tensor::scalar<float>(3.0f);
  Tensor values = Tensor::from_vector<int32_t>({0, 7}, {2});
  Tensor y = run_ok(make_node("OneHot", 3, 1), {idx, depth, values}, 11)[0];
  EXPECT_EQ(y.shape(), (Shape{3, 3}));
  EXPECT_EQ(vals<int32_t>(y), (std::vector<int32_t>{7, 0, 0, 0, 0, 7, 0, 0, 0}));
  Tensor t = run_ok(make_node("OneHot", 3, 1, {{"axis", attr_int(0)}}), {idx, depth, values}, 11)[0];
  EXPECT_EQ(vals<int32_t>(t), (std::vector<int32_t>{7, 0, 0, 0, 0, 0, 0, 7, 0}));
  expect_invalid(run_node(make_node("OneHot", 3, 1), {idx, Tensor::scalar<float>(0.0f), values}, 11), "depth");
}

// ---- Reordering ----------------------------------------------------------------

TEST(GatherReverseSequence, reverses_each_batch_prefix) {
  Tensor x = iota_f({2, 4});  // batch_axis 0, time_axis 1
  Node n = make_node("ReverseSequence", 2, 1, {{"batch_axis", attr_int(0)}, {"time_axis", attr_int(1)}});
  Tensor y = run_ok(n, {x, Tensor::from_vector<int64_t>({3, 1}, {2})})[0];
  EXPECT_EQ(vals<float>(y), (std::vector<float>{2, 1, 0, 3, 4, 5, 6, 7}));
  expect_invalid(run_node(n, {x, Tensor::from_vector<int64_t>({5, 1}, {2})}), "sequence length 5");
}

TEST(GatherUnique, returns_first_occurrence_order_and_all_outputs) {
  Tensor x = Tensor::from_vector<int32_t>({2, 1, 1, 3, 4, 3}, {6});
  auto s = run_ok(make_node("Unique", 1, 4), {x});
  EXPECT_EQ(vals<int32_t>(s[0]), (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(vals<int64_t>(s[1]), (std::vector<int64_t>{1, 0, 3, 4}));
  EXPECT_EQ(vals<int64_t>(s[2]), (std::vector<int64_t>{1, 0, 0, 2, 3, 2}));
  EXPECT_EQ(vals<int64_t>(s[3]), (std::vector<int64_t>{2, 1, 2, 1}));
  auto u = run_ok(make_node("Unique", 1, 4, {{"sorted", attr_int(0)}}), {x});
  EXPECT_EQ(vals<int32_t>(u[0]), (std::vector<int32_t>{2, 1, 3, 4}));
  EXPECT_EQ(vals<int64_t>(u[2]), (std::vector<int64_t>{0, 1, 1, 2, 3, 2}));
}

TEST(GatherUnique, compares_whole_slices_along_axis) {
  Tensor x = Tensor::from_vector<float>({1, 0, 1, 1, 0, 1}, {2, 3});  // columns: (1,1) (0,0) (1,1)
  auto r = run_ok(make_node("Unique", 1, 4, {{"axis", attr_int(-1)}}), {x});
  EXPECT_EQ(r[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(vals<float>(r[0]), (std::vector<float>{0, 1, 0, 1}));
  EXPECT_EQ(vals<int64_t>(r[3]), (std::vector<int64_t>{1, 2}));
  auto bad = run_node(make_node("Unique", 1, 1, {{"axis", attr_int(2)}}), {x});
  expect_invalid(bad, "axis 2");
}

}  // namespace
}  // namespace hearth
