// Unit tests for the signal kernels: windows, MelWeightMatrix, DFT, STFT.
// References are plain O(n^2) DFT loops and hand-derived formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <numbers>

#include "kernels/kernel_test_util.h"

namespace hearth {
namespace {

using testing::attr_int;
using testing::make_node;
using testing::run_node;

constexpr double kPi = std::numbers::pi;

// Naive DFT of a complex sequence.
std::vector<std::complex<double>> naive_dft(const std::vector<std::complex<double>>& x, bool inverse) {
  const size_t n = x.size();
  std::vector<std::complex<double>> y(n);
  for (size_t k = 0; k < n; ++k) {
    for (size_t j = 0; j < n; ++j) {
      double a = (inverse ? 2 : -2) * kPi * double(j * k % n) / double(n);
      y[k] += x[j] * std::complex<double>(std::cos(a), std::sin(a));
    }
    if (inverse) y[k] /= double(n);
  }
  return y;
}

TEST(SignalWindows, hann_periodic_and_symmetric) {
  for (int periodic : {0, 1}) {
    auto out =
        run_node(make_node("HannWindow", 1, 1, {{"periodic", attr_int(periodic)}}), {Tensor::scalar<int64_t>(8)});
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    ASSERT_EQ(out.value()[0].shape(), Shape{8});
    ASSERT_EQ(out.value()[0].dtype(), DataType::kFloat);
    double n = periodic ? 8 : 7;
    for (int k = 0; k < 8; ++k)
      EXPECT_NEAR(out.value()[0].data<float>()[k], 0.5 - 0.5 * std::cos(2 * kPi * k / n), 1e-6);
  }
}

TEST(SignalWindows, hamming_and_blackman_values) {
  auto ham = run_node(make_node("HammingWindow", 1, 1), {Tensor::scalar<int32_t>(5)});
  auto bla = run_node(make_node("BlackmanWindow", 1, 1, {{"periodic", attr_int(0)}}), {Tensor::scalar<int32_t>(5)});
  ASSERT_TRUE(ham.ok() && bla.ok());
  for (int k = 0; k < 5; ++k) {
    EXPECT_NEAR(ham.value()[0].data<float>()[k], 25.0 / 46 - 21.0 / 46 * std::cos(2 * kPi * k / 5), 1e-6);
    double x = 2 * kPi * k / 4;
    EXPECT_NEAR(bla.value()[0].data<float>()[k], 0.42 - 0.5 * std::cos(x) + 0.08 * std::cos(2 * x), 1e-6);
  }
  // Symmetric Blackman is 0 at both ends and 1 in the middle.
  EXPECT_NEAR(bla.value()[0].data<float>()[2], 1.0, 1e-6);
}

TEST(SignalWindows, output_datatype_double) {
  auto out = run_node(make_node("HannWindow", 1, 1, {{"output_datatype", attr_int(11)}}), {Tensor::scalar<int64_t>(4)});
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out.value()[0].dtype(), DataType::kDouble);
  EXPECT_DOUBLE_EQ(out.value()[0].data<double>()[2], 1.0);
}

TEST(SignalWindows, rejects_negative_size_and_bad_dtype) {
  auto neg = run_node(make_node("HannWindow", 1, 1), {Tensor::scalar<int64_t>(-3)});
  EXPECT_EQ(neg.status().code(), StatusCode::kInvalidArgument);
  auto flt = run_node(make_node("HannWindow", 1, 1), {Tensor::scalar<float>(3)});
  EXPECT_EQ(flt.status().code(), StatusCode::kInvalidArgument);
  auto bad_type =
      run_node(make_node("HannWindow", 1, 1, {{"output_datatype", attr_int(8)}}), {Tensor::scalar<int64_t>(3)});
  EXPECT_FALSE(bad_type.ok());
}

TEST(SignalMel, triangles_peak_at_one) {
  auto out = run_node(make_node("MelWeightMatrix", 5, 1),
                      {Tensor::scalar<int32_t>(8), Tensor::scalar<int32_t>(16), Tensor::scalar<int32_t>(8192),
                       Tensor::scalar<float>(0), Tensor::scalar<float>(4096)});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const Tensor& m = out.value()[0];
  ASSERT_EQ(m.shape(), (Shape{9, 8}));
  // The ONNX reference output (see onnx/backend/test/case/node/melweightmatrix.py).
  std::vector<std::pair<int, int>> ones = {{0, 0}, {0, 1}, {1, 2}, {1, 3}, {2, 4}, {3, 5}, {4, 6}, {5, 7}};
  for (int r = 0; r < 9; ++r)
    for (int c = 0; c < 8; ++c) {
      bool one = std::find(ones.begin(), ones.end(), std::make_pair(r, c)) != ones.end();
      EXPECT_FLOAT_EQ(m.data<float>()[r * 8 + c], one ? 1.0f : 0.0f) << r << "," << c;
    }
}

TEST(SignalMel, rejects_nonpositive_bins) {
  auto out = run_node(make_node("MelWeightMatrix", 5, 1),
                      {Tensor::scalar<int32_t>(0), Tensor::scalar<int32_t>(16), Tensor::scalar<int32_t>(8192),
                       Tensor::scalar<float>(0), Tensor::scalar<float>(4096)});
  EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
}

// Checks DFT of a [1, n, 1] real or [1, n, 2] complex signal against the naive loop.
void check_dft(int64_t n, bool complex_input, bool inverse, bool onesided, int64_t dft_length = -1) {
  std::vector<std::complex<double>> x(n);
  std::vector<float> raw;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = {std::sin(0.7 * i) + 0.1 * i, complex_input ? std::cos(1.3 * i) : 0.0};
    raw.push_back(float(x[i].real()));
    if (complex_input) raw.push_back(float(x[i].imag()));
    x[i] = {double(float(x[i].real())), double(float(x[i].imag()))};
  }
  int64_t len = dft_length > 0 ? dft_length : n;
  x.resize(len);
  auto ref = naive_dft(x, inverse);
  std::vector<Tensor> inputs = {Tensor::from_vector<float>(raw, {1, n, complex_input ? 2 : 1})};
  if (dft_length > 0) inputs.push_back(Tensor::scalar<int64_t>(dft_length));
  auto node = make_node("DFT", inputs.size(), 1, {{"inverse", attr_int(inverse)}, {"onesided", attr_int(onesided)}});
  auto out = run_node(node, inputs);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const Tensor& y = out.value()[0];
  int64_t bins = onesided ? len / 2 + 1 : len;
  ASSERT_EQ(y.shape(), (Shape{1, bins, 2}));
  for (int64_t k = 0; k < bins; ++k) {
    EXPECT_NEAR(y.data<float>()[2 * k], ref[k].real(), 1e-3 * (1 + std::abs(ref[k]))) << "n=" << n << " k=" << k;
    EXPECT_NEAR(y.data<float>()[2 * k + 1], ref[k].imag(), 1e-3 * (1 + std::abs(ref[k]))) << "n=" << n << " k=" << k;
  }
}

TEST(SignalDft, matches_naive_dft_for_many_lengths) {
  for (int64_t n : {1, 2, 3, 5, 8, 12, 16, 17, 31, 64, 100}) {
    check_dft(n, false, false, false);
    check_dft(n, true, false, false);
    check_dft(n, true, true, false);
    check_dft(n, false, false, true);
  }
}

TEST(SignalDft, dft_length_pads_and_truncates) {
  check_dft(10, false, false, false, 16);
  check_dft(10, true, false, false, 6);
}

TEST(SignalDft, axis_selects_dimension) {
  // [1, 2, 3, 1]: DFT along axis 2 (length 3) for each of the 2 rows.
  std::vector<float> v = {1, 2, 3, 4, 5, 6};
  auto out = run_node(make_node("DFT", 1, 1, {{"axis", attr_int(2)}}), {Tensor::from_vector<float>(v, {1, 2, 3, 1})});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const Tensor& y = out.value()[0];
  ASSERT_EQ(y.shape(), (Shape{1, 2, 3, 2}));
  for (int r = 0; r < 2; ++r) {
    auto ref = naive_dft({v[3 * r], v[3 * r + 1], v[3 * r + 2]}, false);
    for (int k = 0; k < 3; ++k) {
      EXPECT_NEAR(y.data<float>()[(r * 3 + k) * 2], ref[k].real(), 1e-5);
      EXPECT_NEAR(y.data<float>()[(r * 3 + k) * 2 + 1], ref[k].imag(), 1e-5);
    }
  }
}

TEST(SignalDft, double_input_stays_double) {
  auto out = run_node(make_node("DFT", 1, 1), {Tensor::from_vector<double>({1, 0, 0, 0}, {1, 4, 1})});
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out.value()[0].dtype(), DataType::kDouble);
  for (int k = 0; k < 4; ++k) EXPECT_DOUBLE_EQ(out.value()[0].data<double>()[2 * k], 1.0);
}

TEST(SignalDft, rejects_bad_inputs) {
  auto bad_last = run_node(make_node("DFT", 1, 1), {Tensor::from_vector<float>({1, 2, 3}, {1, 1, 3})});
  EXPECT_EQ(bad_last.status().code(), StatusCode::kInvalidArgument);
  auto bad_axis =
      run_node(make_node("DFT", 1, 1, {{"axis", attr_int(2)}}), {Tensor::from_vector<float>({1, 2}, {1, 2, 1})});
  EXPECT_EQ(bad_axis.status().code(), StatusCode::kInvalidArgument);
  auto int_input = run_node(make_node("DFT", 1, 1), {Tensor::from_vector<int32_t>({1, 2}, {1, 2, 1})});
  EXPECT_EQ(int_input.status().code(), StatusCode::kUnimplemented);
  auto zero_len =
      run_node(make_node("DFT", 2, 1), {Tensor::from_vector<float>({1, 2}, {1, 2, 1}), Tensor::scalar<int64_t>(0)});
  EXPECT_EQ(zero_len.status().code(), StatusCode::kInvalidArgument);
}

TEST(SignalStft, frames_with_window_match_naive_dft) {
  const int64_t len = 40, n = 12, step = 5;
  std::vector<float> sig(len), win(n);
  for (int64_t i = 0; i < len; ++i) sig[i] = float(std::sin(0.3 * i) + 0.05 * i);
  for (int64_t i = 0; i < n; ++i) win[i] = float(0.5 - 0.5 * std::cos(2 * kPi * i / n));
  auto out =
      run_node(make_node("STFT", 4, 1), {Tensor::from_vector<float>(sig, {1, len, 1}), Tensor::scalar<int64_t>(step),
                                         Tensor::from_vector<float>(win, {n}), Tensor::scalar<int64_t>(n)});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const Tensor& y = out.value()[0];
  const int64_t frames = (len - n) / step + 1, bins = n / 2 + 1;
  ASSERT_EQ(y.shape(), (Shape{1, frames, bins, 2}));
  for (int64_t f = 0; f < frames; ++f) {
    std::vector<std::complex<double>> x(n);
    for (int64_t i = 0; i < n; ++i) x[i] = double(sig[f * step + i]) * double(win[i]);
    auto ref = naive_dft(x, false);
    for (int64_t k = 0; k < bins; ++k) {
      EXPECT_NEAR(y.data<float>()[(f * bins + k) * 2], ref[k].real(), 1e-4);
      EXPECT_NEAR(y.data<float>()[(f * bins + k) * 2 + 1], ref[k].imag(), 1e-4);
    }
  }
}

TEST(SignalStft, rejects_mismatched_window_and_missing_length) {
  Tensor sig = Tensor::from_vector<float>(std::vector<float>(32, 1.0f), {1, 32, 1});
  auto mismatch = run_node(make_node("STFT", 4, 1),
                           {sig, Tensor::scalar<int64_t>(4),
                            Tensor::from_vector<float>(std::vector<float>(8, 1.0f), {8}), Tensor::scalar<int64_t>(16)});
  EXPECT_EQ(mismatch.status().code(), StatusCode::kInvalidArgument);
  auto missing = run_node(make_node("STFT", 2, 1), {sig, Tensor::scalar<int64_t>(4)});
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  auto too_long =
      run_node(make_node("STFT", 4, 1), {sig, Tensor::scalar<int64_t>(4), Tensor(), Tensor::scalar<int64_t>(64)});
  EXPECT_EQ(too_long.status().code(), StatusCode::kInvalidArgument);
  auto zero_step =
      run_node(make_node("STFT", 4, 1), {sig, Tensor::scalar<int64_t>(0), Tensor(), Tensor::scalar<int64_t>(8)});
  EXPECT_EQ(zero_step.status().code(), StatusCode::kInvalidArgument);
}

TEST(SignalDft, threaded_batch_matches_single_thread) {
  // 256 signals of length 200 (Bluestein path) is big enough to run in parallel.
  std::vector<float> v(256 * 200);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(std::sin(0.01 * double(i * i % 977)));
  Tensor x = Tensor::from_vector<float>(v, {256, 200, 1});
  auto one = run_node(make_node("DFT", 1, 1), {x}, 17, {}, 1);
  auto two = run_node(make_node("DFT", 1, 1), {x}, 17, {}, 2);
  ASSERT_TRUE(one.ok() && two.ok());
  const Tensor& a = one.value()[0];
  const Tensor& b = two.value()[0];
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data<float>()[i], b.data<float>()[i]) << i;
}

TEST(SignalDft, float16_input_converts_through_double) {
  std::vector<Float16> v = {Float16{float_to_half(1.0f)}, Float16{float_to_half(2.0f)}, Float16{float_to_half(3.0f)}};
  auto out = run_node(make_node("DFT", 1, 1), {Tensor::from_vector<Float16>(v, {1, 3, 1})});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const Tensor& y = out.value()[0];
  ASSERT_EQ(y.dtype(), DataType::kFloat16);
  auto ref = naive_dft({1.0, 2.0, 3.0}, false);
  for (int k = 0; k < 3; ++k) {
    EXPECT_NEAR(half_to_float(y.data<Float16>()[2 * k].bits), ref[k].real(), 1e-2);
    EXPECT_NEAR(half_to_float(y.data<Float16>()[2 * k + 1].bits), ref[k].imag(), 1e-2);
  }
}

TEST(SignalDft, opset20_axis_input) {
  // opset 20 moves axis to input 2; -2 is the last signal axis.
  std::vector<float> v = {1, 2, 3, 4, 5, 6};
  Tensor x = Tensor::from_vector<float>(v, {1, 2, 3, 1});
  auto out = run_node(make_node("DFT", 3, 1), {x, Tensor(), Tensor::scalar<int64_t>(-2)}, 20);
  auto ref = run_node(make_node("DFT", 1, 1, {{"axis", attr_int(2)}}), {x}, 17);
  ASSERT_TRUE(out.ok() && ref.ok()) << out.status().to_string();
  ASSERT_EQ(out.value()[0].shape(), ref.value()[0].shape());
  for (int64_t i = 0; i < ref.value()[0].numel(); ++i) {
    EXPECT_FLOAT_EQ(out.value()[0].data<float>()[i], ref.value()[0].data<float>()[i]);
  }
}

TEST(SignalStft, complex_signal_needs_onesided_zero) {
  Tensor sig = Tensor::from_vector<float>(std::vector<float>(32, 1.0f), {1, 16, 2});
  auto onesided =
      run_node(make_node("STFT", 4, 1), {sig, Tensor::scalar<int64_t>(4), Tensor(), Tensor::scalar<int64_t>(8)});
  EXPECT_EQ(onesided.status().code(), StatusCode::kInvalidArgument);
  auto full = run_node(make_node("STFT", 4, 1, {{"onesided", attr_int(0)}}),
                       {sig, Tensor::scalar<int64_t>(4), Tensor(), Tensor::scalar<int64_t>(8)});
  ASSERT_TRUE(full.ok()) << full.status().to_string();
  ASSERT_EQ(full.value()[0].shape(), (Shape{1, 3, 8, 2}));
  // Constant 1+1i signal: all energy in bin 0.
  EXPECT_FLOAT_EQ(full.value()[0].data<float>()[0], 8.0f);
  EXPECT_FLOAT_EQ(full.value()[0].data<float>()[1], 8.0f);
  EXPECT_NEAR(full.value()[0].data<float>()[2], 0.0f, 1e-6);
}

}  // namespace
}  // namespace hearth
