// Pooling tests: hand-computed cases (ONNX examples), the oneDNN float path
// against the double reference twin on random windows, global pools,
// MaxUnpool, MaxRoiPool (detection_roi.cc) and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/kernel_test_util.h"
#include "kernels/pool_ref.h"

namespace hearth {
namespace {

using testing::attr_float;
using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;
using testing::make_node;
using testing::run_node;

std::vector<double> to_doubles(const Tensor& t) { return tensor_to_doubles(t).value(); }

Tensor iota(const Shape& shape, float start = 1) {
  std::vector<float> v(shape_numel(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = start + static_cast<float>(i);
  return Tensor::from_vector(v, shape);
}

TEST(MaxPoolKernel, returns_indices_row_and_column_major) {
  Tensor x = iota({1, 1, 5, 5});
  auto out = run_node(make_node("MaxPool", 1, 2, {{"kernel_shape", attr_ints({2, 2})}, {"strides", attr_ints({2, 2})}}),
                      {x}, 12);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(to_doubles((*out)[0]), (std::vector<double>{7, 9, 17, 19}));
  EXPECT_EQ(to_doubles((*out)[1]), (std::vector<double>{6, 8, 16, 18}));
  auto col = run_node(make_node("MaxPool", 1, 2,
                                {{"kernel_shape", attr_ints({2, 2})}, {"strides", attr_ints({2, 2})},
                                 {"storage_order", attr_int(1)}}),
                      {x}, 12);
  ASSERT_TRUE(col.ok()) << col.status().to_string();
  EXPECT_EQ(to_doubles((*col)[1]), (std::vector<double>{6, 16, 8, 18}));
}

TEST(MaxPoolKernel, ceil_mode_adds_partial_windows) {
  Tensor x = iota({1, 1, 4, 4});
  auto out = run_node(make_node("MaxPool", 1, 1,
                                {{"kernel_shape", attr_ints({3, 3})}, {"strides", attr_ints({2, 2})},
                                 {"ceil_mode", attr_int(1)}}),
                      {x}, 12);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(to_doubles((*out)[0]), (std::vector<double>{11, 12, 15, 16}));
}

TEST(MaxPoolKernel, handles_uint8_and_int8) {
  Tensor x = Tensor::from_vector<int8_t>({-5, -3, -8, -1}, {1, 1, 4});
  auto out = run_node(make_node("MaxPool", 1, 1, {{"kernel_shape", attr_ints({2})}}), {x}, 12);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kInt8);
  EXPECT_EQ(to_doubles((*out)[0]), (std::vector<double>{-3, -3, -1}));
  Tensor u = Tensor::from_vector<uint8_t>({1, 200, 3, 4}, {1, 1, 2, 2});
  auto outu = run_node(make_node("MaxPool", 1, 1, {{"kernel_shape", attr_ints({2, 2})}}), {u}, 12);
  ASSERT_TRUE(outu.ok()) << outu.status().to_string();
  EXPECT_EQ(to_doubles((*outu)[0]), (std::vector<double>{200}));
}

TEST(AveragePoolKernel, count_include_pad_changes_border_divisor) {
  Tensor x = iota({1, 1, 2, 2});  // [[1,2],[3,4]]
  auto attrs = std::map<std::string, Attribute>{{"kernel_shape", attr_ints({2, 2})}, {"pads", attr_ints({1, 1, 0, 0})}};
  auto ex = run_node(make_node("AveragePool", 1, 1, attrs), {x});
  ASSERT_TRUE(ex.ok()) << ex.status().to_string();
  EXPECT_EQ(to_doubles((*ex)[0]), (std::vector<double>{1, 1.5, 2, 2.5}));
  attrs["count_include_pad"] = attr_int(1);
  auto in = run_node(make_node("AveragePool", 1, 1, attrs), {x});
  ASSERT_TRUE(in.ok()) << in.status().to_string();
  EXPECT_EQ(to_doubles((*in)[0]), (std::vector<double>{0.25, 0.75, 1, 2.5}));
}

TEST(PoolKernel, onednn_matches_reference_on_random_windows) {
  std::mt19937 rng(5);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  std::uniform_real_distribution<float> val(-1, 1);
  for (int i = 0; i < 60; ++i) {
    const int dims = 1 + i % 3;
    const int64_t k = pick(1, 3), s = pick(1, 3), d = pick(1, 2), size = (k - 1) * d + 1 + pick(0, 6);
    const int64_t pb = pick(0, k - 1), pe = pick(0, k - 1);
    const bool ceil = pick(0, 1) == 1, include = pick(0, 1) == 1, is_max = i % 2 == 0;
    Shape xs = {pick(1, 2), pick(1, 5)};
    xs.insert(xs.end(), dims, size);
    std::vector<float> xv(shape_numel(xs));
    for (auto& v : xv) v = val(rng);
    Tensor x = Tensor::from_vector(xv, xs);
    std::vector<int64_t> pads(dims, pb);
    pads.insert(pads.end(), dims, pe);
    std::map<std::string, Attribute> attrs = {{"kernel_shape", attr_ints(std::vector<int64_t>(dims, k))},
                                              {"strides", attr_ints(std::vector<int64_t>(dims, s))},
                                              {"pads", attr_ints(pads)},
                                              {"dilations", attr_ints(std::vector<int64_t>(dims, d))},
                                              {"ceil_mode", attr_int(ceil)}};
    if (!is_max) attrs["count_include_pad"] = attr_int(include);
    auto out = run_node(make_node(is_max ? "MaxPool" : "AveragePool", 1, 1, attrs), {x}, 19);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    const Tensor& y = (*out)[0];
    Window w;
    w.in.assign(dims, size);
    w.out.assign(y.shape().begin() + 2, y.shape().end());
    w.kernel.assign(dims, k);
    w.strides.assign(dims, s);
    w.dilations.assign(dims, d);
    w.pad_begin.assign(dims, pb);
    w.pad_end.assign(dims, pe);
    PoolShape ps{xs[0], xs[1], to_window3(w)};
    auto xd = to_doubles(x);
    std::vector<double> ref(y.numel());
    if (is_max) max_pool_ref<double>(ps, xd.data(), ref.data(), nullptr, false, 1);
    else avg_pool_ref<double>(ps, xd.data(), ref.data(), include, 1);
    auto yd = to_doubles(y);
    for (size_t j = 0; j < ref.size(); ++j)
      ASSERT_NEAR(yd[j], ref[j], 1e-5) << "case " << i << " dims " << dims << " k " << k << " s " << s << " d " << d << " pads "
                                       << pb << "," << pe << " ceil " << ceil << " include " << include;
  }
}

TEST(LpPoolKernel, computes_p_norm_over_windows) {
  Tensor x = Tensor::from_vector<float>({3, 4, 0, 5, 12}, {1, 1, 5});
  auto out = run_node(make_node("LpPool", 1, 1, {{"kernel_shape", attr_ints({2})}, {"strides", attr_ints({3})}}),
                      {x}, 11);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(to_doubles((*out)[0]), (std::vector<double>{5, 13}));
}

TEST(GlobalPoolKernel, reduces_every_spatial_plane) {
  Tensor x = iota({1, 2, 2, 2});
  auto avg = run_node(make_node("GlobalAveragePool", 1, 1), {x});
  auto mx = run_node(make_node("GlobalMaxPool", 1, 1), {x});
  auto lp = run_node(make_node("GlobalLpPool", 1, 1, {{"p", attr_int(1)}}), {x});
  ASSERT_TRUE(avg.ok() && mx.ok() && lp.ok());
  EXPECT_EQ((*avg)[0].shape(), (Shape{1, 2, 1, 1}));
  EXPECT_EQ(to_doubles((*avg)[0]), (std::vector<double>{2.5, 6.5}));
  EXPECT_EQ(to_doubles((*mx)[0]), (std::vector<double>{4, 8}));
  EXPECT_EQ(to_doubles((*lp)[0]), (std::vector<double>{10, 26}));
}

TEST(MaxUnpoolKernel, scatters_into_default_and_explicit_shape) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor idx = Tensor::from_vector<int64_t>({5, 7, 13, 15}, {1, 1, 2, 2});
  auto attrs = std::map<std::string, Attribute>{{"kernel_shape", attr_ints({2, 2})}, {"strides", attr_ints({2, 2})}};
  auto out = run_node(make_node("MaxUnpool", 2, 1, attrs), {x, idx}, 11);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(to_doubles((*out)[0]), (std::vector<double>{0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4}));
  Tensor shape = Tensor::from_vector<int64_t>({1, 1, 5, 5}, {4});
  auto big = run_node(make_node("MaxUnpool", 3, 1, attrs), {x, idx, shape}, 11);
  ASSERT_TRUE(big.ok()) << big.status().to_string();
  auto v = to_doubles((*big)[0]);
  EXPECT_EQ(v[6], 1);
  EXPECT_EQ(v[18], 4);
  Tensor bad = Tensor::from_vector<int64_t>({5, 7, 13, 16}, {1, 1, 2, 2});
  EXPECT_FALSE(run_node(make_node("MaxUnpool", 2, 1, attrs), {x, bad}, 11).ok());
}

TEST(MaxRoiPoolKernel, pools_each_roi_cell) {
  Tensor x = iota({1, 1, 4, 4}, 0);
  Tensor rois = Tensor::from_vector<float>({0, 0, 0, 3, 3, 0, 1, 1, 2, 2}, {2, 5});
  auto out = run_node(make_node("MaxRoiPool", 2, 1, {{"pooled_shape", attr_ints({2, 2})}}), {x, rois}, 1);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].shape(), (Shape{2, 1, 2, 2}));
  EXPECT_EQ(to_doubles((*out)[0]), (std::vector<double>{5, 7, 13, 15, 5, 6, 9, 10}));
}

TEST(PoolKernel, rejects_bad_inputs) {
  Tensor x2 = iota({4, 4});
  auto r1 = run_node(make_node("MaxPool", 1, 1, {{"kernel_shape", attr_ints({2})}}), {x2});
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.status().code(), StatusCode::kInvalidArgument);
  Tensor x = iota({1, 1, 4, 4});
  auto r2 = run_node(make_node("AveragePool", 1, 1, {{"kernel_shape", attr_ints({2})}}), {x});
  EXPECT_FALSE(r2.ok());
  auto r3 = run_node(make_node("MaxPool", 1, 1, {{"kernel_shape", attr_ints({5, 5})}}), {x});
  EXPECT_FALSE(r3.ok());
  auto r4 = run_node(make_node("GlobalMaxPool", 1, 1), {Tensor::from_vector<int32_t>({1, 2}, {1, 1, 2})});
  ASSERT_FALSE(r4.ok());
  EXPECT_EQ(r4.status().code(), StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace hearth
