// Shared helpers of the quantized kernel family (quantized*.cc): rounding and
// saturation, reading scale / zero-point tensors, and the integer-exact
// reference GEMM that QLinearMatMul, MatMulInteger, ConvInteger and QLinearConv
// accumulate with (int32 accumulation, zero points already subtracted).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/kernel.h"

namespace hearth {

class KernelRegistry;
void register_quantized_matmul_kernels(KernelRegistry& r);  // quantized_matmul.cc
void register_quantized_conv_kernels(KernelRegistry& r);    // quantized_conv.cc
void register_quantized_contrib_kernels(KernelRegistry& r);  // quantized_contrib.cc (ONNX Runtime contrib ops, com.microsoft)

// Rounds half to even, adds the zero point and clamps to Q's range. The
// rounding is the add-and-subtract-2^23 trick (exact for |v| <= 2^22 in the
// default rounding mode), because std::nearbyint is a libm call when the build
// targets baseline x86-64 and it dominated requantization time.
template <typename Q>
inline Q quantize_value(float v, int32_t zero_point) {
  constexpr float kLimit = 4194304.0f;  // 2^22, far beyond any 8/16-bit range
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  // Written as `a > b ? a : b` so GCC emits branchless maxss / minss; NaN maps to the low end.
  v = v > -kLimit ? v : -kLimit;
  v = v < kLimit ? v : kLimit;
  float r = ((v + kMagic) - kMagic) + static_cast<float>(zero_point);
  constexpr float lo = static_cast<float>(std::numeric_limits<Q>::min());
  constexpr float hi = static_cast<float>(std::numeric_limits<Q>::max());
  r = r > lo ? r : lo;
  r = r < hi ? r : hi;
  return static_cast<Q>(static_cast<int32_t>(r));
}

// y[i] = quantize_value<uint8_t>(x[i] / scale, zero_point) for n values, vectorized
// where the CPU has AVX2 (the same results), split over `threads`.
void quantize_floats_u8(const float* x, uint8_t* q, int64_t n, float scale, int32_t zero_point, int threads);

// Reads a scale tensor (float / float16 / double) as floats.
Result<std::vector<float>> read_scales(const Tensor& t, const Node& node, const char* what);
// Reads an integer zero-point tensor as int32; a null tensor gives {0}.
Result<std::vector<int32_t>> read_zero_points(const Tensor* t, const Node& node, const char* what);

// Operands are 8-bit values minus an 8-bit zero point, so they lie in
// [-255, 255] and fit int16; products summed pairwise still fit int32 exactly,
// which lets the fast kernel use 16-bit multiply-add (pmaddwd) and stay exact.
// (oneDNN's int8 GEMM is not used: without VNNI it saturates 16-bit partial sums.)
//
// C[m,n] = sum_k A[m,k] * Bt[n,k], A is M x K, Bt is N x K (B transposed), C is M x N.
// Reference twin: plain triple loop.
void qgemm_nt_ref(int64_t M, int64_t N, int64_t K, const int16_t* a, const int16_t* bt, int32_t* c);
// Fast twin: 4-row register blocking, AVX2 when the CPU has it, OpenMP over columns.
void qgemm_nt(int64_t M, int64_t N, int64_t K, const int16_t* a, const int16_t* bt, int32_t* c);

// Checks that a zero point of a uint8/int8 operand is itself uint8/int8 (keeps operands in int16 range).
Status check_8bit_zero_point(const Tensor* zp, const Node& node, const char* what);

// Copies a uint8/int8 buffer to int16 minus a zero point per row (zp.size()==rows) or one shared value.
template <typename T>
inline void widen_minus_zp(const T* src, int64_t rows, int64_t cols, const std::vector<int32_t>& zp, int16_t* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    int32_t z = zp.size() == 1 ? zp[0] : zp[static_cast<size_t>(r)];
    const T* s = src + r * cols;
    int16_t* d = dst + r * cols;
    for (int64_t c = 0; c < cols; ++c) d[c] = static_cast<int16_t>(static_cast<int32_t>(s[c]) - z);
  }
}

}  // namespace hearth
