// Unit tests for the detection kernels: NonMaxSuppression, TfIdfVectorizer,
// RoiAlign, MaxRoiPool and GridSample, on hand-computed cases.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/kernel_test_util.h"

namespace hearth {
namespace {

using testing::attr_float;
using testing::attr_floats;
using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;
using testing::make_node;
using testing::run_node;

std::vector<int64_t> ints_of(const Tensor& t) {
  return std::vector<int64_t>(t.data<int64_t>(), t.data<int64_t>() + t.numel());
}
std::vector<float> floats_of(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

// ---------------------------------------------------------------- NonMaxSuppression

std::vector<Tensor> nms_inputs(std::vector<float> boxes, std::vector<float> scores, int64_t classes, int64_t max_out,
                               float iou, float score) {
  int64_t n = static_cast<int64_t>(boxes.size() / 4);
  return {Tensor::from_vector<float>(boxes, {1, n, 4}), Tensor::from_vector<float>(scores, {1, classes, n}),
          Tensor::from_vector<int64_t>({max_out}, {1}), Tensor::from_vector<float>({iou}, {1}),
          Tensor::from_vector<float>({score}, {1})};
}

TEST(DetectionNms, keeps_best_and_drops_overlaps) {
  // Box 1 overlaps box 0 (IoU 0.82); box 2 is far away.
  auto out = run_node(make_node("NonMaxSuppression", 5, 1),
                      nms_inputs({0, 0, 1, 1, 0, 0.1f, 1, 1.1f, 5, 5, 6, 6}, {0.8f, 0.9f, 0.3f}, 1, 10, 0.5f, 0.0f));
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out.value()[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(ints_of(out.value()[0]), (std::vector<int64_t>{0, 0, 1, 0, 0, 2}));
}

TEST(DetectionNms, score_threshold_and_limit_per_class) {
  // Two classes; class 1 keeps only one box because of max_output_boxes_per_class.
  auto out = run_node(make_node("NonMaxSuppression", 5, 1),
                      nms_inputs({0, 0, 1, 1, 5, 5, 6, 6}, {0.2f, 0.6f, 0.7f, 0.9f}, 2, 1, 0.5f, 0.5f));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(ints_of(out.value()[0]), (std::vector<int64_t>{0, 0, 1, 0, 1, 1}));
}

TEST(DetectionNms, center_point_format) {
  // Same two overlapping boxes as centers/sizes: only the higher score survives.
  auto out = run_node(make_node("NonMaxSuppression", 5, 1, {{"center_point_box", attr_int(1)}}),
                      nms_inputs({0.5f, 0.5f, 1, 1, 0.5f, 0.6f, 1, 1}, {0.5f, 0.9f}, 1, 5, 0.5f, 0.0f));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(ints_of(out.value()[0]), (std::vector<int64_t>{0, 0, 1}));
}

TEST(DetectionNms, missing_max_output_selects_nothing) {
  auto in = nms_inputs({0, 0, 1, 1}, {0.5f}, 1, 0, 0.5f, 0.0f);
  in[2] = Tensor();
  auto out = run_node(make_node("NonMaxSuppression", 5, 1), in);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out.value()[0].shape(), (Shape{0, 3}));
}

TEST(DetectionNms, rejects_mismatched_scores) {
  auto in = nms_inputs({0, 0, 1, 1, 2, 2, 3, 3}, {0.5f, 0.4f}, 1, 5, 0.5f, 0.0f);
  in[1] = Tensor::from_vector<float>({0.5f, 0.4f, 0.3f}, {1, 1, 3});
  EXPECT_EQ(run_node(make_node("NonMaxSuppression", 5, 1), in).status().code(), StatusCode::kInvalidArgument);
  in = nms_inputs({0, 0, 1, 1}, {0.5f}, 1, 5, 1.5f, 0.0f);
  EXPECT_EQ(run_node(make_node("NonMaxSuppression", 5, 1), in).status().code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------- TfIdfVectorizer

Node tfidf_node(const std::string& mode, int64_t min_n, int64_t max_n, int64_t skip, std::vector<float> weights = {}) {
  std::map<std::string, Attribute> a = {{"mode", attr_string(mode)},
                                        {"min_gram_length", attr_int(min_n)},
                                        {"max_gram_length", attr_int(max_n)},
                                        {"max_skip_count", attr_int(skip)},
                                        {"ngram_counts", attr_ints({0, 2})},
                                        {"ngram_indexes", attr_ints({0, 1, 2})},
                                        // 1-grams: 4, 5; 2-grams: (4, 5)
                                        {"pool_int64s", attr_ints({4, 5, 4, 5})}};
  if (!weights.empty()) a["weights"] = attr_floats(weights);
  return make_node("TfIdfVectorizer", 1, 1, a);
}

TEST(DetectionTfIdf, counts_unigrams_and_skipped_bigrams) {
  Tensor x = Tensor::from_vector<int64_t>({4, 5, 4, 9, 5}, {5});
  // skip 0: (4,5) once; skip 1: (4,4)? no, (5,9) no, (4,5) at positions 2,4 -> once more.
  auto out = run_node(tfidf_node("TF", 1, 2, 1), {x});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(floats_of(out.value()[0]), (std::vector<float>{2, 2, 2}));
  auto only_bigrams = run_node(tfidf_node("TF", 2, 2, 0), {x});
  ASSERT_TRUE(only_bigrams.ok());
  EXPECT_EQ(floats_of(only_bigrams.value()[0]), (std::vector<float>{0, 0, 1}));
}

TEST(DetectionTfIdf, idf_and_tfidf_weights_rows) {
  Tensor x = Tensor::from_vector<int32_t>({4, 4, 5, 1, 1, 1}, {2, 3});
  auto idf = run_node(tfidf_node("IDF", 1, 1, 0, {0.5f, 2.0f, 3.0f}), {x});
  ASSERT_TRUE(idf.ok());
  EXPECT_EQ(idf.value()[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(floats_of(idf.value()[0]), (std::vector<float>{0.5f, 2.0f, 0, 0, 0, 0}));
  auto tfidf = run_node(tfidf_node("TFIDF", 1, 1, 0, {0.5f, 2.0f, 3.0f}), {x});
  ASSERT_TRUE(tfidf.ok());
  EXPECT_EQ(floats_of(tfidf.value()[0]), (std::vector<float>{1.0f, 2.0f, 0, 0, 0, 0}));
}

TEST(DetectionTfIdf, rejects_string_pool_and_bad_mode) {
  auto strings = run_node(make_node("TfIdfVectorizer", 1, 1,
                                    {{"mode", attr_string("TF")},
                                     {"min_gram_length", attr_int(1)},
                                     {"max_gram_length", attr_int(1)},
                                     {"max_skip_count", attr_int(0)},
                                     {"ngram_counts", attr_ints({0})},
                                     {"ngram_indexes", attr_ints({0})},
                                     {"pool_strings",
                                      [] {
                                        Attribute a;
                                        a.type = Attribute::Type::kStrings;
                                        a.strings = {"a"};
                                        return a;
                                      }()}}),
                          {Tensor::from_vector<int64_t>({1}, {1})});
  EXPECT_EQ(strings.status().code(), StatusCode::kUnimplemented);
  auto mode = run_node(tfidf_node("BM25", 1, 1, 0), {Tensor::from_vector<int64_t>({1}, {1})});
  EXPECT_EQ(mode.status().code(), StatusCode::kInvalidArgument);
  auto floats = run_node(tfidf_node("TF", 1, 1, 0), {Tensor::from_vector<float>({1}, {1})});
  EXPECT_EQ(floats.status().code(), StatusCode::kUnimplemented);
}

// ---------------------------------------------------------------- RoiAlign / MaxRoiPool

// 9x9 image whose value at (y, x) is x + 10 y: bilinear sampling of it is exact.
Tensor ramp_image() {
  std::vector<float> v;
  for (int y = 0; y < 9; ++y)
    for (int x = 0; x < 9; ++x) v.push_back(float(x + 10 * y));
  return Tensor::from_vector<float>(v, {1, 1, 9, 9});
}

Result<std::vector<Tensor>> roi_align(const std::string& mode, const std::string& ctm, int64_t sampling) {
  return run_node(
      make_node("RoiAlign", 3, 1,
                {{"mode", attr_string(mode)},
                 {"coordinate_transformation_mode", attr_string(ctm)},
                 {"output_height", attr_int(2)},
                 {"output_width", attr_int(2)},
                 {"sampling_ratio", attr_int(sampling)}}),
      {ramp_image(), Tensor::from_vector<float>({0, 0, 8, 8}, {1, 4}), Tensor::from_vector<int64_t>({0}, {1})}, 16);
}

TEST(DetectionRoiAlign, average_of_bilinear_samples) {
  // output_half_pixel: bins of 4 pixels, samples at 1, 3 | 5, 7.
  auto out = roi_align("avg", "output_half_pixel", 2);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out.value()[0].shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(floats_of(out.value()[0]), (std::vector<float>{22, 26, 62, 66}));
  // half_pixel shifts every sample by -0.5.
  auto half = roi_align("avg", "half_pixel", 2);
  ASSERT_TRUE(half.ok());
  std::vector<float> got = floats_of(half.value()[0]);
  std::vector<float> want = {16.5f, 20.5f, 56.5f, 60.5f};
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(got[i], want[i], 1e-4);
}

TEST(DetectionRoiAlign, max_mode_on_exact_samples) {
  auto out = roi_align("max", "output_half_pixel", 2);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(floats_of(out.value()[0]), (std::vector<float>{33, 37, 73, 77}));
}

TEST(DetectionRoiAlign, rejects_bad_batch_index_and_mode) {
  auto bad = run_node(make_node("RoiAlign", 3, 1), {ramp_image(), Tensor::from_vector<float>({0, 0, 8, 8}, {1, 4}),
                                                    Tensor::from_vector<int64_t>({3}, {1})});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(roi_align("median", "half_pixel", 2).ok());
  auto bad_rois = run_node(make_node("RoiAlign", 3, 1), {ramp_image(), Tensor::from_vector<float>({0, 0, 8}, {1, 3}),
                                                         Tensor::from_vector<int64_t>({0}, {1})});
  EXPECT_EQ(bad_rois.status().code(), StatusCode::kInvalidArgument);
}

TEST(DetectionMaxRoiPool, max_over_quantized_bins) {
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = float(i);
  auto out =
      run_node(make_node("MaxRoiPool", 2, 1, {{"pooled_shape", attr_ints({2, 2})}}),
               {Tensor::from_vector<float>(v, {1, 1, 4, 4}), Tensor::from_vector<float>({0, 0, 0, 3, 3}, {1, 5})});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(floats_of(out.value()[0]), (std::vector<float>{5, 7, 13, 15}));
  auto bad =
      run_node(make_node("MaxRoiPool", 2, 1, {{"pooled_shape", attr_ints({2, 2})}}),
               {Tensor::from_vector<float>(v, {1, 1, 4, 4}), Tensor::from_vector<float>({2, 0, 0, 3, 3}, {1, 5})});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------- GridSample

Result<std::vector<Tensor>> grid_sample(std::vector<float> grid, const std::string& mode, const std::string& padding,
                                        int align, std::vector<float> image = {1, 2, 3, 4}) {
  int64_t points = static_cast<int64_t>(grid.size() / 2);
  return run_node(
      make_node(
          "GridSample", 2, 1,
          {{"mode", attr_string(mode)}, {"padding_mode", attr_string(padding)}, {"align_corners", attr_int(align)}}),
      {Tensor::from_vector<float>(image, {1, 1, 2, 2}), Tensor::from_vector<float>(grid, {1, 1, points, 2})}, 16);
}

TEST(DetectionGridSample, bilinear_align_corners) {
  auto out = grid_sample({-1, -1, 1, 1, 0, 0, 1, -1}, "bilinear", "zeros", 1);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(out.value()[0].shape(), (Shape{1, 1, 1, 4}));
  EXPECT_EQ(floats_of(out.value()[0]), (std::vector<float>{1, 4, 2.5f, 2}));
}

TEST(DetectionGridSample, padding_modes_outside_the_image) {
  // x = 2 maps to pixel 1.5 (align_corners), y = 0 to 0.5.
  auto zeros = grid_sample({2, 0}, "bilinear", "zeros", 1);
  auto border = grid_sample({2, 0}, "bilinear", "border", 1);
  auto reflection = grid_sample({2, 0}, "bilinear", "reflection", 1);
  ASSERT_TRUE(zeros.ok() && border.ok() && reflection.ok());
  EXPECT_FLOAT_EQ(floats_of(zeros.value()[0])[0], 1.5f);
  EXPECT_FLOAT_EQ(floats_of(border.value()[0])[0], 3.0f);
  EXPECT_FLOAT_EQ(floats_of(reflection.value()[0])[0], 2.5f);
}

TEST(DetectionGridSample, nearest_without_align_corners) {
  // align_corners=0: x = -0.5 -> pixel 0, x = 0.6 -> pixel 1.1 -> 1.
  auto out = grid_sample({-0.5f, -0.5f, 0.6f, -0.5f, 0.6f, 0.6f}, "nearest", "zeros", 0);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(floats_of(out.value()[0]), (std::vector<float>{1, 2, 4}));
}

TEST(DetectionGridSample, bicubic_reproduces_constant_image) {
  auto out = grid_sample({0.3f, -0.7f, 0.9f, 0.1f, -1.2f, 1.4f}, "bicubic", "border", 0, {7, 7, 7, 7});
  ASSERT_TRUE(out.ok());
  for (float v : floats_of(out.value()[0])) EXPECT_NEAR(v, 7.0f, 1e-5);
}

TEST(DetectionGridSample, rejects_bad_grid_and_mode) {
  auto bad_grid = run_node(
      make_node("GridSample", 2, 1),
      {Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 2, 2}), Tensor::from_vector<float>({0, 0, 0}, {1, 1, 1, 3})},
      16);
  EXPECT_EQ(bad_grid.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(grid_sample({0, 0}, "lanczos", "zeros", 0).ok());
  EXPECT_FALSE(grid_sample({0, 0}, "bilinear", "mirror", 0).ok());
}

TEST(DetectionGridSample, threaded_matches_single_thread_and_double) {
  // 1x4x16x16 image sampled on a 96x96 grid: large enough for the parallel path.
  std::vector<float> img(4 * 16 * 16), grid(96 * 96 * 2);
  for (size_t i = 0; i < img.size(); ++i) img[i] = float((i * 37) % 101) / 10.0f;
  for (size_t i = 0; i < grid.size(); ++i) grid[i] = float(int(i * 53 % 241) - 120) / 100.0f;
  Node n =
      make_node("GridSample", 2, 1, {{"mode", attr_string("bicubic")}, {"padding_mode", attr_string("reflection")}});
  Tensor x = Tensor::from_vector<float>(img, {1, 4, 16, 16}), g = Tensor::from_vector<float>(grid, {1, 96, 96, 2});
  auto one = run_node(n, {x, g}, 16, {}, 1);
  auto two = run_node(n, {x, g}, 16, {}, 2);
  auto dbl = run_node(n, {cast_tensor(x, DataType::kDouble).value(), cast_tensor(g, DataType::kDouble).value()}, 16);
  ASSERT_TRUE(one.ok() && two.ok() && dbl.ok());
  const Tensor& a = one.value()[0];
  ASSERT_EQ(a.shape(), (Shape{1, 4, 96, 96}));
  for (int64_t i = 0; i < a.numel(); ++i) {
    ASSERT_EQ(a.data<float>()[i], two.value()[0].data<float>()[i]);
    ASSERT_NEAR(a.data<float>()[i], dbl.value()[0].data<double>()[i], 1e-5);
  }
}

TEST(DetectionRoiAlign, float16_matches_float) {
  Tensor x = ramp_image();
  Node n = make_node("RoiAlign", 3, 1, {{"output_height", attr_int(2)}, {"output_width", attr_int(2)}});
  Tensor rois = Tensor::from_vector<float>({0.5f, 1, 6, 7.5f}, {1, 4});
  Tensor idx = Tensor::from_vector<int64_t>({0}, {1});
  auto f32 = run_node(n, {x, rois, idx}, 16);
  Tensor x16 = cast_tensor(x, DataType::kFloat16).value(), rois16 = cast_tensor(rois, DataType::kFloat16).value();
  auto f16 = run_node(n, {x16, rois16, idx}, 16);
  ASSERT_TRUE(f32.ok() && f16.ok()) << f16.status().to_string();
  ASSERT_EQ(f16.value()[0].dtype(), DataType::kFloat16);
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(half_to_float(f16.value()[0].data<Float16>()[i].bits), f32.value()[0].data<float>()[i], 0.1);
  }
}

TEST(DetectionRoiAlign, nan_roi_reads_as_zero) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  auto out = run_node(
      make_node("RoiAlign", 3, 1),
      {ramp_image(), Tensor::from_vector<float>({nan, 0, 4, 4}, {1, 4}), Tensor::from_vector<int64_t>({0}, {1})}, 16);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_FALSE(std::isnan(out.value()[0].data<float>()[0]));
}

TEST(DetectionNms, nan_scores_are_skipped) {
  float nan = std::numeric_limits<float>::quiet_NaN();
  auto out = run_node(make_node("NonMaxSuppression", 5, 1),
                      nms_inputs({0, 0, 1, 1, 5, 5, 6, 6, 9, 9, 10, 10}, {nan, 0.5f, nan}, 1, 10, 0.5f, 0.0f));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(ints_of(out.value()[0]), (std::vector<int64_t>{0, 0, 1}));
}

}  // namespace
}  // namespace hearth
