// Products with one to four rows of A against constant weights:
// Y[m, n] = alpha * sum_k A[m, k] * Bt[n, k] + bias[n], written by hand for the
// classifier layers of CNNs at batch 1 (ResNet-50's [1, 2048] x [2048, 1000]).
// They only stream the weights once, which is all their time; oneDNN 2.6's
// matmul read the 8 MB of weights at about half that speed (docs/PERFORMANCE.md).
#pragma once

#include <cstdint>

namespace hearth {

// Rows A lets this take (more rows reuse weights enough for a GEMM to win).
inline constexpr int64_t kGemvMaxRows = 4;

// True when the CPU has the AVX2 and FMA this needs.
bool gemv_available();

// A [M, K] with row stride lda, Bt [N, K] with row stride ldb (B transposed, rows
// contiguous), Y [M, N] dense; bias [N] or null. M in 1..kGemvMaxRows. OpenMP
// threads split N.
void gemv_rows(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Bt, int64_t ldb,
               float alpha, const float* bias, float* Y, int threads);

}  // namespace hearth
