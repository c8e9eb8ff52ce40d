// Products with one to eight rows of A against constant weights:
// Y[m, n] = alpha * sum_k A[m, k] * B[k, n] + bias[n], written by hand for the
// classifier layers of CNNs at batch 1 to 8 (ResNet-50's [8, 2048] x [2048, 1000]).
// They only stream the weights once, which is all their time; oneDNN 2.6's
// matmul read the 8 MB of weights at about half that speed (docs/PERFORMANCE.md),
// and its first GEMM call in a process spends ~20 ms compiling its kernels.
#pragma once

#include <cstdint>

namespace hearth {

// Rows A lets this take (more rows reuse weights enough for a GEMM to win).
inline constexpr int64_t kGemvMaxRows = 8;
// Weights (elements) small enough to stay in L2: products with them of any K
// and N come here (no oneDNN dispatch; the hand loops handle any K, N).
inline constexpr int64_t kGemvCachedWeights = 256 * 1024;

// True when the CPU has the AVX2 and FMA this needs.
bool gemv_available();

// Y [M, N] (dense) = alpha * A B + bias, A [M, K] with row stride lda, B [K, N]
// read in place through its strides (b_k between rows, b_n between columns):
// b_k == 1 reads B as transposed rows of stride b_n, otherwise b_n must be 1 and
// rows are b_k apart. bias [N] or null. Any M >= 1 works (the weights are read once
// per 8 rows, or per 4 in the second form); callers send up to kGemvMaxRows.
// `threads` split N.
void gemv_rows(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t b_k,
               int64_t b_n, float alpha, const float* bias, float* Y, int threads);

}  // namespace hearth
