// Tests of the resize kernel family: Resize / Upsample against values from
// ONNX's numpy reference and hand computation, the float32 2x fast twin
// against the reference path on random shapes, and Pad in every mode.
#include <gtest/gtest.h>

#include <random>

#include "kernels/kernel_test_util.h"
#include "kernels/resize_common.h"

namespace hearth {
namespace {

using testing::attr_float;
using testing::attr_floats;
using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;
using testing::make_node;
using testing::run_node;

std::vector<float> fvalues(const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); }

void expect_near_all(const std::vector<float>& got, const std::vector<float>& want, float tol = 1e-5f) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "index " << i;
}

Tensor scales4(float h, float w) { return Tensor::from_vector<float>({1.0f, 1.0f, h, w}, {4}); }

TEST(ResizeTest, linear_half_pixel_upsample_matches_numpy_reference) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2});
  auto out = run_node(make_node("Resize", 3, 1, {{"mode", attr_string("linear")}}), {x, Tensor(), scales4(2, 2)}, 13);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  expect_near_all(fvalues((*out)[0]),
                  {1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4});
}

TEST(ResizeTest, linear_align_corners_downsample_uses_fractional_output_width) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8}, {1, 1, 2, 4});
  Node node = make_node("Resize", 3, 1,
                        {{"mode", attr_string("linear")}, {"coordinate_transformation_mode", attr_string("align_corners")}});
  auto out = run_node(node, {x, Tensor(), scales4(0.6f, 0.6f)}, 13);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  expect_near_all(fvalues((*out)[0]), {1.0f, 3.142857f});
}

TEST(ResizeTest, nearest_sizes_and_modes) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor sizes = Tensor::from_vector<int64_t>({1, 1, 2, 3}, {4});
  auto out = run_node(make_node("Resize", 4, 1), {x, Tensor(), Tensor(), sizes}, 13);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  // half_pixel, scale 1.5: x = (o + 0.5) / 1.5 - 0.5 = -1/6, 0.5, 7/6 -> 0, 0 (prefer floor), 1
  expect_near_all(fvalues((*out)[0]), {1, 1, 2, 3, 3, 4});
  Node ceil_node = make_node("Resize", 4, 1, {{"nearest_mode", attr_string("round_prefer_ceil")}});
  auto out2 = run_node(ceil_node, {x, Tensor(), Tensor(), sizes}, 13);
  ASSERT_TRUE(out2.ok()) << out2.status().to_string();
  expect_near_all(fvalues((*out2)[0]), {1, 2, 2, 3, 4, 4});
}

TEST(ResizeTest, nearest_works_for_integer_dtypes) {
  Tensor x = Tensor::from_vector<int64_t>({5, -6}, {1, 2});
  auto out = run_node(make_node("Resize", 3, 1), {x, Tensor(), Tensor::from_vector<float>({1.0f, 2.0f}, {2})}, 13);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const Tensor& y = (*out)[0];
  ASSERT_EQ(y.shape(), (Shape{1, 4}));
  EXPECT_EQ(std::vector<int64_t>(y.data<int64_t>(), y.data<int64_t>() + 4), (std::vector<int64_t>{5, 5, -6, -6}));
}

TEST(ResizeTest, linear_uint8_rounds_and_saturates) {
  Tensor x = Tensor::from_vector<uint8_t>({0, 255, 10, 13}, {1, 4});
  Node node = make_node("Resize", 3, 1, {{"mode", attr_string("linear")}, {"coordinate_transformation_mode", attr_string("asymmetric")}});
  auto out = run_node(node, {x, Tensor(), Tensor::from_vector<float>({1.0f, 2.0f}, {2})}, 13);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const Tensor& y = (*out)[0];
  // x = o / 2: 0, 127.5 -> 128 (half to even), 255, 132.5 -> 132, 10, 11.5 -> 12, 13, 13
  EXPECT_EQ(std::vector<uint8_t>(y.data<uint8_t>(), y.data<uint8_t>() + 8),
            (std::vector<uint8_t>{0, 128, 255, 132, 10, 12, 13, 13}));
}

TEST(ResizeTest, tf_crop_and_resize_extrapolates_outside_roi) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor roi = Tensor::from_vector<float>({0, 0, 0, 0, 1, 1, 1, 1.5f}, {8});
  Node node = make_node("Resize", 4, 1,
                        {{"mode", attr_string("linear")},
                         {"coordinate_transformation_mode", attr_string("tf_crop_and_resize")},
                         {"extrapolation_value", attr_float(10.0f)}});
  auto out = run_node(node, {x, roi, Tensor(), Tensor::from_vector<int64_t>({1, 1, 1, 3}, {4})}, 13);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  // H: out 1 -> x = (1-0)*(2-1)/2 = 0.5; W: x = o * 1.5 / 2 = 0, 0.75, 1.5 (outside)
  expect_near_all(fvalues((*out)[0]), {2.0f, 2.75f, 10.0f});
}

TEST(ResizeTest, cubic_identity_scale_returns_input) {
  Tensor x = Tensor::from_vector<float>({1, 5, 2, 8, 3, 7}, {1, 1, 2, 3});
  auto out = run_node(make_node("Resize", 3, 1, {{"mode", attr_string("cubic")}}), {x, Tensor(), scales4(1, 1)}, 13);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  expect_near_all(fvalues((*out)[0]), fvalues(x));
}

TEST(ResizeTest, upsample_opset7_attribute_and_opset9_input) {
  Tensor x = Tensor::from_vector<float>({1, 2}, {1, 1, 1, 2});
  auto o7 = run_node(make_node("Upsample", 1, 1, {{"scales", attr_floats({1, 1, 2, 2})}}), {x}, 7);
  ASSERT_TRUE(o7.ok()) << o7.status().to_string();
  expect_near_all(fvalues((*o7)[0]), {1, 1, 2, 2, 1, 1, 2, 2});
  auto o9 = run_node(make_node("Upsample", 2, 1, {{"mode", attr_string("linear")}}), {x, scales4(1, 2)}, 9);
  ASSERT_TRUE(o9.ok()) << o9.status().to_string();
  // asymmetric: x = o / 2 -> 0, 0.5, 1, 1.5 (clamped)
  expect_near_all(fvalues((*o9)[0]), {1, 1.5, 2, 2});
}

TEST(ResizeTest, rejects_missing_or_wrong_length_scales) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2});
  EXPECT_FALSE(run_node(make_node("Resize", 3, 1), {x, Tensor(), Tensor()}, 13).ok());
  EXPECT_FALSE(run_node(make_node("Resize", 3, 1), {x, Tensor(), Tensor::from_vector<float>({2, 2}, {2})}, 13).ok());
  EXPECT_FALSE(run_node(make_node("Resize", 3, 1, {{"mode", attr_string("quartic")}}), {x, Tensor(), scales4(2, 2)}, 13).ok());
}

// The fast twin must agree with the reference path on random shapes and every
// coordinate mode that maps to the 2x pattern.
TEST(ResizeTest, fast_2x_paths_match_reference) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-5.0f, 5.0f);
  Node node = make_node("Resize", 3, 1);
  struct Case { InterpMode mode; CoordMode coord; NearestMode nearest; };
  std::vector<Case> cases = {
      {InterpMode::kNearest, CoordMode::kAsymmetric, NearestMode::kFloor},
      {InterpMode::kNearest, CoordMode::kHalfPixel, NearestMode::kRoundPreferFloor},
      {InterpMode::kNearest, CoordMode::kAsymmetric, NearestMode::kSimple},
      {InterpMode::kLinear, CoordMode::kHalfPixel, NearestMode::kRoundPreferFloor},
      {InterpMode::kLinear, CoordMode::kPytorchHalfPixel, NearestMode::kRoundPreferFloor},
  };
  for (Shape shape : {Shape{1, 1, 1, 1}, Shape{2, 3, 5, 7}, Shape{1, 8, 16, 13}}) {
    Tensor x(DataType::kFloat, shape);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = dist(rng);
    for (const Case& c : cases) {
      ResizeConfig cfg;
      cfg.mode = c.mode;
      cfg.coord = c.coord;
      cfg.nearest = c.nearest;
      auto plan = plan_resize(cfg, shape, {1, 1, 2, 2}, {}, {}, node);
      ASSERT_TRUE(plan.ok());
      ASSERT_TRUE(resize_fast_2x_applies(cfg, *plan, x)) << shape_str(shape);
      Tensor fast(DataType::kFloat, plan->out);
      ASSERT_TRUE(resize_fast_2x(cfg, *plan, x, fast));
      auto ref = resize_reference(cfg, *plan, x, node);
      ASSERT_TRUE(ref.ok()) << ref.status().to_string();
      expect_near_all(fvalues(fast), fvalues(*ref));
    }
  }
  // align_corners bilinear is not the 2x pattern: the fast path must decline it.
  ResizeConfig ac;
  ac.mode = InterpMode::kLinear;
  ac.coord = CoordMode::kAlignCorners;
  Tensor x(DataType::kFloat, {1, 1, 4, 4});
  auto plan = plan_resize(ac, x.shape(), {1, 1, 2, 2}, {}, {}, node);
  ASSERT_TRUE(plan.ok());
  EXPECT_FALSE(resize_fast_2x_applies(ac, *plan, x));
}

TEST(PadTest, constant_reflect_edge_and_wrap) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor pads = Tensor::from_vector<int64_t>({0, 2, 1, 1}, {4});
  auto c = run_node(make_node("Pad", 3, 1), {x, pads, Tensor::scalar<float>(9.0f)}, 13);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  ASSERT_EQ((*c)[0].shape(), (Shape{3, 6}));
  expect_near_all(fvalues((*c)[0]), {9, 9, 1, 2, 3, 9, 9, 9, 4, 5, 6, 9, 9, 9, 9, 9, 9, 9});
  auto r = run_node(make_node("Pad", 2, 1, {{"mode", attr_string("reflect")}}), {x, pads}, 13);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  expect_near_all(fvalues((*r)[0]), {3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5, 3, 2, 1, 2, 3, 2});
  auto e = run_node(make_node("Pad", 2, 1, {{"mode", attr_string("edge")}}), {x, pads}, 13);
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  expect_near_all(fvalues((*e)[0]), {1, 1, 1, 2, 3, 3, 4, 4, 4, 5, 6, 6, 4, 4, 4, 5, 6, 6});
  auto w = run_node(make_node("Pad", 2, 1, {{"mode", attr_string("wrap")}}), {x, pads}, 19);
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  expect_near_all(fvalues((*w)[0]), {2, 3, 1, 2, 3, 1, 5, 6, 4, 5, 6, 4, 2, 3, 1, 2, 3, 1});
}

TEST(PadTest, negative_pads_crop_and_opset2_attributes) {
  Tensor x = Tensor::from_vector<int32_t>({1, 2, 3, 4, 5, 6}, {2, 3});
  Node node = make_node("Pad", 1, 1, {{"pads", attr_ints({0, -1, 0, 1})}, {"value", attr_float(7.0f)}});
  auto out = run_node(node, {x}, 2);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const Tensor& y = (*out)[0];
  ASSERT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(std::vector<int32_t>(y.data<int32_t>(), y.data<int32_t>() + 6), (std::vector<int32_t>{2, 3, 7, 5, 6, 7}));
}

TEST(PadTest, rejects_wrong_pads_length_and_over_crop) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3}, {3});
  EXPECT_FALSE(run_node(make_node("Pad", 2, 1), {x, Tensor::from_vector<int64_t>({1, 1, 1}, {3})}, 13).ok());
  EXPECT_FALSE(run_node(make_node("Pad", 2, 1), {x, Tensor::from_vector<int64_t>({-2, -2}, {2})}, 13).ok());
  EXPECT_FALSE(run_node(make_node("Pad", 2, 1, {{"mode", attr_string("mirror")}}),
                        {x, Tensor::from_vector<int64_t>({1, 1}, {2})}, 13).ok());
}

}  // namespace
}  // namespace hearth
