// Kernel family: quantized, the exact integer GEMM behind every quantized
// matmul and convolution. Operands are int16 (8-bit value minus 8-bit zero
// point), accumulation is int32. The reference twin is a plain loop; the fast
// twin blocks 4 rows of A against one row of Bt so each Bt load feeds 4
// accumulators, and is compiled twice (AVX2 and baseline) with run-time choice,
// since the project builds without -march. GCC turns the inner loop into
// pmaddwd, which is exact here because |operand| <= 255.
#include <algorithm>
#include <cstdint>

#include "core/machine.h"
#include "kernels/quantized_common.h"

namespace hearth {

void qgemm_nt_ref(int64_t M, int64_t N, int64_t K, const int16_t* a, const int16_t* bt, int32_t* c) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      int32_t acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += static_cast<int32_t>(a[m * K + k]) * static_cast<int32_t>(bt[n * K + k]);
      c[m * N + n] = acc;
    }
}

namespace {

// Columns [n0, n1) of C.
__attribute__((always_inline)) inline void qgemm_block(int64_t M, int64_t N, int64_t K, const int16_t* a,
                                                       const int16_t* bt, int32_t* c, int64_t n0, int64_t n1) {
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) {
    const int16_t* a0 = a + m * K;
    const int16_t* a1 = a0 + K;
    const int16_t* a2 = a1 + K;
    const int16_t* a3 = a2 + K;
    for (int64_t n = n0; n < n1; ++n) {
      const int16_t* b = bt + n * K;
      int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (int64_t k = 0; k < K; ++k) {
        int32_t bk = b[k];
        s0 += a0[k] * bk;
        s1 += a1[k] * bk;
        s2 += a2[k] * bk;
        s3 += a3[k] * bk;
      }
      c[m * N + n] = s0;
      c[(m + 1) * N + n] = s1;
      c[(m + 2) * N + n] = s2;
      c[(m + 3) * N + n] = s3;
    }
  }
  for (; m < M; ++m) {
    const int16_t* ar = a + m * K;
    for (int64_t n = n0; n < n1; ++n) {
      const int16_t* b = bt + n * K;
      int32_t s = 0;
      for (int64_t k = 0; k < K; ++k) s += ar[k] * static_cast<int32_t>(b[k]);
      c[m * N + n] = s;
    }
  }
}

__attribute__((target("avx2"), optimize("O3"))) void qgemm_block_avx2(int64_t M, int64_t N, int64_t K,
                                                                      const int16_t* a, const int16_t* bt, int32_t* c,
                                                                      int64_t n0, int64_t n1) {
  qgemm_block(M, N, K, a, bt, c, n0, n1);
}

__attribute__((optimize("O3"))) void qgemm_block_base(int64_t M, int64_t N, int64_t K, const int16_t* a,
                                                      const int16_t* bt, int32_t* c, int64_t n0, int64_t n1) {
  qgemm_block(M, N, K, a, bt, c, n0, n1);
}

bool has_avx2() {
  return isa_at_least(IsaLevel::kAvx2);
}

}  // namespace

void qgemm_nt(int64_t M, int64_t N, int64_t K, const int16_t* a, const int16_t* bt, int32_t* c) {
  constexpr int64_t kColBlock = 64;
  int64_t blocks = (N + kColBlock - 1) / kColBlock;
  bool avx2 = has_avx2();
#pragma omp parallel for schedule(static) if (M * N * K > (1 << 18) && blocks > 1)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    int64_t n0 = blk * kColBlock, n1 = std::min(N, n0 + kColBlock);
    if (avx2) qgemm_block_avx2(M, N, K, a, bt, c, n0, n1);
    else qgemm_block_base(M, N, K, a, bt, c, n0, n1);
  }
}

Status check_8bit_zero_point(const Tensor* zp, const Node& node, const char* what) {
  if (zp && zp->dtype() != DataType::kUInt8 && zp->dtype() != DataType::kInt8)
    return invalid_argument(node.describe(), ": ", what, " must be uint8 or int8, got ", zp->describe());
  return ok_status();
}

}  // namespace hearth
