// Vectorizable float32 approximations of exp, tanh and erf for the hot
// activation loops (Exp, Sigmoid, Tanh, Softmax, and Erf as used by GELU).
// Plain branch-free arithmetic, so loops marked `#pragma omp simd` compile to
// SIMD code; the <cmath> functions stay scalar library calls. Accuracy
// (checked in tests/kernels/activation_test.cc against <cmath>): exp within
// ~3e-7 relative on [-87, 88]; tanh within ~2e-6; erf within ~4e-7.
// Double precision always uses <cmath>.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace hearth {

// exp(x) for float: Cephes-style range reduction x = n*ln2 + r (n rounded to
// nearest with the 1.5*2^23 trick, which needs the default rounding mode) and
// a degree-6 polynomial for exp(r). Written without data-dependent branches so
// it vectorizes: out-of-range inputs are clamped to values whose result
// underflows to 0 or overflows to +inf by itself; NaN propagates through the
// arithmetic.
inline float fast_expf(float x) {
  const float kLog2e = 1.44269504088896341f;
  const float kLn2Hi = 0.693359375f;
  const float kLn2Lo = -2.12194440e-4f;
  const float kRound = 12582912.0f;  // 1.5 * 2^23
  float xc = x < -104.0f ? -104.0f : x;
  xc = xc > 89.0f ? 89.0f : xc;
  const float n = (xc * kLog2e + kRound) - kRound;
  const float r = xc - n * kLn2Hi - n * kLn2Lo;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  // Scale by 2^n in two steps so n in [-150, 129] never leaves the exponent field.
  // A NaN x keeps r (and so the result) NaN; only the exponent must be a number.
  const int32_t ni = static_cast<int32_t>(n == n ? n : 0.0f);
  const int32_t half = ni >> 1;
  const int32_t b1 = (half + 127) << 23;
  const int32_t b2 = (ni - half + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, 4);
  std::memcpy(&s2, &b2, 4);
  return p * s1 * s2;
}

// tanh(x) for float: a 13/6-degree rational approximation on [-7.9, 7.9]
// (beyond it tanh rounds to +-1 in float).
inline float fast_tanhf(float x) {
  const float kClamp = 7.90531110763549805f;
  float xc = x < -kClamp ? -kClamp : x;
  xc = xc > kClamp ? kClamp : xc;
  const float x2 = xc * xc;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 - 8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * xc;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return p / q;  // NaN propagates
}

// erf(x) for float: a 13/8-degree rational approximation on [-4, 4] (beyond
// it erf rounds to +-1 in float); max relative error about 4e-7.
inline float fast_erff(float x) {
  float a = x < -4.0f ? -4.0f : x;
  a = a > 4.0f ? 4.0f : a;
  const float x2 = a * a;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 - 2.10102402082508e-06f;
  p = p * x2 - 5.69250639462346e-05f;
  p = p * x2 - 7.34990630326855e-04f;
  p = p * x2 - 2.95459980854025e-03f;
  p = p * x2 - 1.60960333262415e-02f;
  p = p * a;
  float q = -1.45660718464996e-05f;
  q = q * x2 - 2.13374055278905e-04f;
  q = q * x2 - 1.68282697438203e-03f;
  q = q * x2 - 7.37332916720468e-03f;
  q = q * x2 - 1.42647390514189e-02f;
  return p / q;  // NaN propagates
}

// 1 / (1 + exp(-x)), with fast_expf for float.
inline float fast_sigmoidf(float x) { return 1.0f / (1.0f + fast_expf(-x)); }

// exp for the compute types: fast_expf for float, <cmath> otherwise.
inline float fast_exp(float x) { return fast_expf(x); }
inline double fast_exp(double x) { return std::exp(x); }

}  // namespace hearth
