// Tests of the quantized kernel family: hand-computed rounding / saturation
// cases and random shapes checked against plain integer loops written here.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/machine.h"
#include "kernels/kernel_test_util.h"
#include "kernels/quantized_common.h"

namespace hearth {
namespace {

using testing::attr_int;
using testing::attr_ints;
using testing::make_node;
using testing::run_node;

using testing::values;

template <typename T>
Tensor random_tensor(Shape shape, std::mt19937& rng, int lo, int hi) {
  std::uniform_int_distribution<int> dist(lo, hi);
  Tensor t(dtype_of<T>(), std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<T>()[i] = static_cast<T>(dist(rng));
  return t;
}

TEST(QuantizedTest, quantize_rounds_half_to_even_and_saturates) {
  Tensor x = Tensor::from_vector<float>({0.0f, 1.5f, 2.5f, -1.0f, 300.0f, 254.5f, -0.5f}, {7});
  auto out = run_node(make_node("QuantizeLinear", 2, 1), {x, Tensor::scalar<float>(1.0f)}, 13);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ((*out)[0].dtype(), DataType::kUInt8);
  EXPECT_EQ(values<uint8_t>((*out)[0]), (std::vector<uint8_t>{0, 2, 2, 0, 255, 254, 0}));

  Tensor xi = Tensor::from_vector<float>({-300.0f, 5.0f, 7.0f, 300.0f}, {4});
  auto o2 = run_node(make_node("QuantizeLinear", 3, 1),
                     {xi, Tensor::scalar<float>(2.0f), Tensor::scalar<int8_t>(1)}, 13);
  ASSERT_TRUE(o2.ok()) << o2.status().to_string();
  // 5/2 = 2.5 -> 2 (even) + 1 = 3; 7/2 = 3.5 -> 4 + 1 = 5
  EXPECT_EQ(values<int8_t>((*o2)[0]), (std::vector<int8_t>{-128, 3, 5, 127}));
}

TEST(QuantizedTest, quantize_and_dequantize_per_axis) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 2, 2});
  Tensor scale = Tensor::from_vector<float>({1.0f, 2.0f}, {2});
  Tensor zp = Tensor::from_vector<uint8_t>({0, 10}, {2});
  auto q = run_node(make_node("QuantizeLinear", 3, 1, {{"axis", attr_int(1)}}), {x, scale, zp}, 13);
  ASSERT_TRUE(q.ok()) << q.status().to_string();
  // channel 1 values 3,4,7,8 / 2 -> 1.5->2, 2, 3.5->4, 4; +10
  EXPECT_EQ(values<uint8_t>((*q)[0]), (std::vector<uint8_t>{1, 2, 12, 12, 5, 6, 14, 14}));
  auto d = run_node(make_node("DequantizeLinear", 3, 1, {{"axis", attr_int(1)}}), {(*q)[0], scale, zp}, 13);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(values<float>((*d)[0]), (std::vector<float>{1, 2, 4, 4, 5, 6, 8, 8}));
}

TEST(QuantizedTest, dequantize_int32_and_int8) {
  Tensor x = Tensor::from_vector<int32_t>({-1000, 0, 1000}, {3});
  auto d = run_node(make_node("DequantizeLinear", 2, 1), {x, Tensor::scalar<float>(0.5f)}, 13);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(values<float>((*d)[0]), (std::vector<float>{-500, 0, 500}));
  Tensor xi = Tensor::from_vector<int8_t>({-128, 0, 127}, {3});
  auto d2 = run_node(make_node("DequantizeLinear", 3, 1), {xi, Tensor::scalar<float>(2.0f), Tensor::scalar<int8_t>(-1)}, 13);
  ASSERT_TRUE(d2.ok()) << d2.status().to_string();
  EXPECT_EQ(values<float>((*d2)[0]), (std::vector<float>{-254, 2, 256}));
}

TEST(QuantizedTest, rejects_per_axis_scale_of_wrong_length) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor scale = Tensor::from_vector<float>({1.0f, 2.0f}, {2});
  auto q = run_node(make_node("QuantizeLinear", 2, 1, {{"axis", attr_int(1)}}), {x, scale}, 13);
  EXPECT_FALSE(q.ok());
  EXPECT_NE(q.status().message().find("axis"), std::string::npos) << q.status().message();
}

TEST(QuantizedTest, dynamic_quantize_matches_formula) {
  std::vector<float> xv{0.0f, 2.0f, -3.0f, -2.5f, 1.34f, 0.5f};
  auto out = run_node(make_node("DynamicQuantizeLinear", 1, 3), {Tensor::from_vector<float>(xv, {6})}, 11);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  float scale = (2.0f - -3.0f) / 255.0f;
  float zpf = std::nearbyint(3.0f / scale);
  EXPECT_FLOAT_EQ((*out)[1].data<float>()[0], scale);
  EXPECT_EQ((*out)[2].data<uint8_t>()[0], static_cast<uint8_t>(zpf));
  for (size_t i = 0; i < xv.size(); ++i) {
    float q = std::min(255.0f, std::max(0.0f, std::nearbyint(xv[i] / scale) + zpf));
    EXPECT_EQ((*out)[0].data<uint8_t>()[i], static_cast<uint8_t>(q)) << i;
  }
}

TEST(QuantizedTest, matmul_integer_batched_matches_loop) {
  std::mt19937 rng(7);
  Tensor a = random_tensor<uint8_t>({2, 1, 3, 5}, rng, 0, 255);
  Tensor b = random_tensor<int8_t>({3, 5, 4}, rng, -128, 127);
  Tensor azp = Tensor::scalar<uint8_t>(100);
  Tensor bzp = Tensor::from_vector<int8_t>({-3, 0, 5, 7}, {4});
  auto out = run_node(make_node("MatMulInteger", 4, 1), {a, b, azp, bzp}, 10);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const Tensor& y = (*out)[0];
  ASSERT_EQ(y.shape(), (Shape{2, 3, 3, 4}));
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int m = 0; m < 3; ++m)
        for (int n = 0; n < 4; ++n) {
          int32_t acc = 0;
          for (int k = 0; k < 5; ++k)
            acc += (a.data<uint8_t>()[(i * 3 + m) * 5 + k] - 100) *
                   (b.data<int8_t>()[(j * 5 + k) * 4 + n] - bzp.data<int8_t>()[n]);
          EXPECT_EQ(y.data<int32_t>()[((i * 3 + j) * 3 + m) * 4 + n], acc);
        }
}

TEST(QuantizedTest, matmul_integer_rejects_inner_dim_mismatch) {
  std::mt19937 rng(1);
  auto out = run_node(make_node("MatMulInteger", 2, 1),
                      {random_tensor<uint8_t>({2, 3}, rng, 0, 9), random_tensor<uint8_t>({4, 2}, rng, 0, 9)}, 10);
  EXPECT_FALSE(out.ok());
}

TEST(QuantizedTest, qlinear_matmul_requantizes_like_float_formula) {
  std::mt19937 rng(3);
  Tensor a = random_tensor<uint8_t>({4, 6}, rng, 0, 255);
  Tensor b = random_tensor<uint8_t>({6, 3}, rng, 0, 255);
  float as = 0.02f, bs = 0.01f, ys = 0.05f;
  auto out = run_node(make_node("QLinearMatMul", 8, 1),
                      {a, Tensor::scalar<float>(as), Tensor::scalar<uint8_t>(120), b, Tensor::scalar<float>(bs),
                       Tensor::scalar<uint8_t>(130), Tensor::scalar<float>(ys), Tensor::scalar<uint8_t>(128)},
                      10);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  for (int m = 0; m < 4; ++m)
    for (int n = 0; n < 3; ++n) {
      int32_t acc = 0;
      for (int k = 0; k < 6; ++k) acc += (a.data<uint8_t>()[m * 6 + k] - 120) * (b.data<uint8_t>()[k * 3 + n] - 130);
      float q = std::nearbyint(static_cast<float>(acc) * (as * bs / ys)) + 128;
      q = std::min(255.0f, std::max(0.0f, q));
      EXPECT_EQ((*out)[0].data<uint8_t>()[m * 3 + n], static_cast<uint8_t>(q));
    }
}

// Direct 2-D integer convolution written independently of the im2row path.
std::vector<int32_t> direct_conv(const Tensor& x, const Tensor& w, int32_t xzp, const std::vector<int32_t>& wzp,
                                 int64_t group, std::vector<int64_t> pads, std::vector<int64_t> strides,
                                 std::vector<int64_t> dil, Shape* out_shape) {
  int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), M = w.dim(0), KH = w.dim(2), KW = w.dim(3);
  int64_t Cg = C / group, Mg = M / group;
  int64_t OH = (H + pads[0] + pads[2] - ((KH - 1) * dil[0] + 1)) / strides[0] + 1;
  int64_t OW = (W + pads[1] + pads[3] - ((KW - 1) * dil[1] + 1)) / strides[1] + 1;
  *out_shape = {N, M, OH, OW};
  std::vector<int32_t> y(static_cast<size_t>(N * M * OH * OW), 0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          int32_t acc = 0;
          int64_t g = m / Mg;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t kh = 0; kh < KH; ++kh)
              for (int64_t kw = 0; kw < KW; ++kw) {
                int64_t ih = oh * strides[0] - pads[0] + kh * dil[0], iw = ow * strides[1] - pads[1] + kw * dil[1];
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                int32_t xv = x.data<uint8_t>()[((n * C + g * Cg + c) * H + ih) * W + iw] - xzp;
                int32_t wv = w.data<int8_t>()[((m * Cg + c) * KH + kh) * KW + kw] - wzp[wzp.size() == 1 ? 0 : m];
                acc += xv * wv;
              }
          y[static_cast<size_t>(((n * M + m) * OH + oh) * OW + ow)] = acc;
        }
  return y;
}

TEST(QuantizedTest, conv_integer_random_shapes_match_direct_loop) {
  std::mt19937 rng(11);
  struct Case { Shape x, w; int64_t group; std::vector<int64_t> pads, strides, dil; };
  std::vector<Case> cases = {
      {{1, 3, 7, 6}, {4, 3, 3, 3}, 1, {1, 1, 1, 1}, {1, 1}, {1, 1}},
      {{2, 4, 9, 8}, {6, 2, 3, 2}, 2, {0, 1, 2, 0}, {2, 1}, {1, 2}},
      {{1, 4, 5, 5}, {4, 1, 3, 3}, 4, {1, 1, 1, 1}, {2, 2}, {1, 1}},
  };
  for (const auto& c : cases) {
    Tensor x = random_tensor<uint8_t>(c.x, rng, 0, 255);
    Tensor w = random_tensor<int8_t>(c.w, rng, -128, 127);
    std::vector<int32_t> wzp_v;
    std::vector<int8_t> wzp_t;
    for (int64_t m = 0; m < c.w[0]; ++m) {
      wzp_v.push_back(static_cast<int32_t>(m) - 2);
      wzp_t.push_back(static_cast<int8_t>(m - 2));
    }
    Node node = make_node("ConvInteger", 4, 1, {{"group", attr_int(c.group)}, {"pads", attr_ints(c.pads)},
                                                 {"strides", attr_ints(c.strides)}, {"dilations", attr_ints(c.dil)}});
    auto out = run_node(node, {x, w, Tensor::scalar<uint8_t>(17), Tensor::from_vector<int8_t>(wzp_t, {c.w[0]})}, 10);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    Shape want_shape;
    auto want = direct_conv(x, w, 17, wzp_v, c.group, c.pads, c.strides, c.dil, &want_shape);
    ASSERT_EQ((*out)[0].shape(), want_shape);
    EXPECT_EQ(values<int32_t>((*out)[0]), want);
  }
}

TEST(QuantizedTest, qlinear_conv_per_channel_with_bias) {
  std::mt19937 rng(5);
  Tensor x = random_tensor<uint8_t>({1, 2, 5, 5}, rng, 0, 255);
  Tensor w = random_tensor<int8_t>({3, 2, 3, 3}, rng, -127, 127);
  std::vector<float> ws{0.01f, 0.02f, 0.005f};
  std::vector<int32_t> bias{100, -200, 0};
  float xs = 0.03f, ys = 0.2f;
  Node node = make_node("QLinearConv", 9, 1, {{"pads", attr_ints({1, 1, 1, 1})}});
  auto out = run_node(node,
                      {x, Tensor::scalar<float>(xs), Tensor::scalar<uint8_t>(128), w, Tensor::from_vector<float>(ws, {3}),
                       Tensor::from_vector<int8_t>({0, 0, 0}, {3}), Tensor::scalar<float>(ys), Tensor::scalar<uint8_t>(100),
                       Tensor::from_vector<int32_t>(bias, {3})},
                      10);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  Shape shape;
  auto acc = direct_conv(x, w, 128, {0}, 1, {1, 1, 1, 1}, {1, 1}, {1, 1}, &shape);
  ASSERT_EQ((*out)[0].shape(), shape);
  for (size_t i = 0; i < acc.size(); ++i) {
    size_t m = (i / 25) % 3;
    float q = std::nearbyint(static_cast<float>(acc[i] + bias[m]) * (xs * ws[m] / ys)) + 100;
    q = std::min(255.0f, std::max(0.0f, q));
    EXPECT_EQ((*out)[0].data<uint8_t>()[i], static_cast<uint8_t>(q)) << i;
  }
}

// The generic N-D im2row (used for 1-D / 3-D) must agree with the 2-D one: a 2-D
// convolution written as 3-D with a singleton depth gives the same numbers.
TEST(QuantizedTest, conv_integer_3d_with_unit_depth_equals_2d) {
  std::mt19937 rng(21);
  Tensor x = random_tensor<uint8_t>({1, 4, 6, 7}, rng, 0, 255);
  Tensor w = random_tensor<int8_t>({4, 2, 3, 2}, rng, -128, 127);
  Node n2 = make_node("ConvInteger", 3, 1, {{"group", attr_int(2)}, {"pads", attr_ints({1, 0, 1, 1})},
                                            {"strides", attr_ints({2, 1})}, {"dilations", attr_ints({1, 2})}});
  Node n3 = make_node("ConvInteger", 3, 1, {{"group", attr_int(2)}, {"pads", attr_ints({0, 1, 0, 0, 1, 1})},
                                            {"strides", attr_ints({1, 2, 1})}, {"dilations", attr_ints({1, 1, 2})}});
  auto o2 = run_node(n2, {x, w, Tensor::scalar<uint8_t>(9)}, 10);
  auto o3 = run_node(n3, {x.reshaped({1, 4, 1, 6, 7}).value(), w.reshaped({4, 2, 1, 3, 2}).value(), Tensor::scalar<uint8_t>(9)}, 10);
  ASSERT_TRUE(o2.ok()) << o2.status().to_string();
  ASSERT_TRUE(o3.ok()) << o3.status().to_string();
  EXPECT_EQ(values<int32_t>((*o2)[0]), values<int32_t>((*o3)[0]));
  EXPECT_EQ((*o3)[0].numel(), (*o2)[0].numel());
}

TEST(QuantizedTest, com_microsoft_qlinear_add_and_mul_broadcast) {
  Tensor a = Tensor::from_vector<uint8_t>({10, 20, 30, 40, 50, 60}, {2, 3});
  Tensor b = Tensor::from_vector<uint8_t>({0, 4, 8}, {3});
  auto args = [&](Tensor x, Tensor y) {
    return std::vector<Tensor>{x, Tensor::scalar<float>(0.5f), Tensor::scalar<uint8_t>(10), y,
                               Tensor::scalar<float>(0.25f), Tensor::scalar<uint8_t>(4), Tensor::scalar<float>(1.0f),
                               Tensor::scalar<uint8_t>(3)};
  };
  auto add = run_node(make_node("QLinearAdd", 8, 1, {}, "com.microsoft"), args(a, b), 1);
  ASSERT_TRUE(add.ok()) << add.status().to_string();
  // a -> (a-10)*0.5 = 0,5,10,15,20,25; b -> (b-4)*0.25 = -1,0,1; sum + 3
  EXPECT_EQ(values<uint8_t>((*add)[0]), (std::vector<uint8_t>{2, 8, 14, 17, 23, 29}));
  auto mul = run_node(make_node("QLinearMul", 8, 1, {}, "com.microsoft"), args(a, b), 1);
  ASSERT_TRUE(mul.ok()) << mul.status().to_string();
  // products 0,0,10,-15,0,25 + 3, clamped at 0
  EXPECT_EQ(values<uint8_t>((*mul)[0]), (std::vector<uint8_t>{3, 3, 13, 0, 3, 28}));
  Tensor i8 = Tensor::from_vector<int8_t>({1, 2, 3}, {3});
  EXPECT_FALSE(run_node(make_node("QLinearAdd", 8, 1, {}, "com.microsoft"), args(a, i8), 1).ok());
}

// The fast GEMM twin must equal the plain loop bit for bit, including the
// operand extremes (+-255) and shapes with ragged row / column blocks.
TEST(QuantizedTest, fast_gemm_matches_reference_on_random_shapes) {
  std::mt19937 rng(13);
  std::uniform_int_distribution<int> val(-255, 255), dim(1, 70);
  for (int trial = 0; trial < 12; ++trial) {
    int64_t M = dim(rng), N = trial == 0 ? 300 : dim(rng) * 3, K = trial == 1 ? 2304 : dim(rng) * 5;
    std::vector<int16_t> a(static_cast<size_t>(M * K)), bt(static_cast<size_t>(N * K));
    for (auto& v : a) v = static_cast<int16_t>(trial % 3 == 2 ? 255 : val(rng));
    for (auto& v : bt) v = static_cast<int16_t>(trial % 3 == 2 ? -255 : val(rng));
    std::vector<int32_t> fast(static_cast<size_t>(M * N)), ref(static_cast<size_t>(M * N));
    qgemm_nt(M, N, K, a.data(), bt.data(), fast.data());
    qgemm_nt_ref(M, N, K, a.data(), bt.data(), ref.data());
    ASSERT_EQ(fast, ref) << "M=" << M << " N=" << N << " K=" << K;
  }
}

TEST(QuantizedTest, conv_integer_rejects_channel_mismatch) {
  std::mt19937 rng(2);
  auto out = run_node(make_node("ConvInteger", 2, 1),
                      {random_tensor<uint8_t>({1, 3, 4, 4}, rng, 0, 9), random_tensor<uint8_t>({2, 2, 3, 3}, rng, 0, 9)}, 10);
  EXPECT_FALSE(out.ok());
  auto bad_zp = run_node(make_node("ConvInteger", 3, 1),
                         {random_tensor<uint8_t>({1, 2, 4, 4}, rng, 0, 9), random_tensor<uint8_t>({2, 2, 3, 3}, rng, 0, 9),
                          Tensor::scalar<int32_t>(1000)},
                         10);
  EXPECT_FALSE(bad_zp.ok());
}

}  // namespace
}  // namespace hearth

namespace hearth {
namespace {

// The vectorized float -> uint8 quantization against the scalar rule, under
// each ISA cap: ties to even, saturation, huge values, infinities, NaN, tails.
TEST(QuantizeFloatsU8, MatchesTheScalarRuleOnEveryPath) {
  std::vector<float> x;
  for (int i = -600; i <= 600; ++i) x.push_back(i * 0.25f);  // many exact ties at scale 0.5
  for (float v : {1e30f, -1e30f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::quiet_NaN(), 4194305.0f, -4194305.0f, 0.0f, -0.0f})
    x.push_back(v);
  for (int i = 0; i < 3001; ++i) x.push_back(std::sin(i * 0.37f) * 90.0f);
  for (IsaLevel cap : {IsaLevel::kScalar, IsaLevel::kAvx2, IsaLevel::kAvx512}) {
    set_isa_cap(cap);
    for (int threads : {1, 2})
      for (int32_t zp : {0, 128, 255})
        for (int64_t n : {static_cast<int64_t>(x.size()), int64_t{31}, int64_t{33}, int64_t{0}}) {
          std::vector<uint8_t> got(static_cast<size_t>(n) + 1, 7);
          quantize_floats_u8(x.data(), got.data(), n, 0.5f, zp, threads);
          for (int64_t i = 0; i < n; ++i)
            ASSERT_EQ(got[i], quantize_value<uint8_t>(x[i] / 0.5f, zp))
                << "x " << x[i] << " zp " << zp << " cap " << isa_name(cap) << " at " << i;
          EXPECT_EQ(got[n], 7) << "wrote past the end";
        }
  }
  set_isa_cap(IsaLevel::kAvx512);
}

}  // namespace
}  // namespace hearth
