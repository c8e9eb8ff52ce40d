// Small-M products against constant weights, read in place (see gemv.h).
#include "kernels/gemv.h"

#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/machine.h"

namespace hearth {
namespace {

#define HEARTH_GEMV_TARGET __attribute__((target("avx2,fma")))

HEARTH_GEMV_TARGET inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// Outputs [n0, n1) for M rows, J weight rows at a time (M * J accumulators).
template <int M, int J>
HEARTH_GEMV_TARGET void gemv_block(int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda, const float* Bt,
                                   int64_t ldb, float alpha, const float* bias, float* Y, int64_t N) {
  const int64_t K8 = K / 8 * 8;
  int64_t n = n0;
  for (; n + J <= n1; n += J) {
    __m256 acc[M][J];
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m)
#pragma GCC unroll 8
      for (int j = 0; j < J; ++j) acc[m][j] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K8; k += 8) {
      __m256 b[J];
#pragma GCC unroll 8
      for (int j = 0; j < J; ++j) b[j] = _mm256_loadu_ps(Bt + (n + j) * ldb + k);
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m) {
        const __m256 a = _mm256_loadu_ps(A + m * lda + k);
#pragma GCC unroll 8
        for (int j = 0; j < J; ++j) acc[m][j] = _mm256_fmadd_ps(a, b[j], acc[m][j]);
      }
    }
    for (int m = 0; m < M; ++m)
      for (int j = 0; j < J; ++j) {
        float s = hsum(acc[m][j]);
        for (int64_t k = K8; k < K; ++k) s += A[m * lda + k] * Bt[(n + j) * ldb + k];
        Y[m * N + n + j] = alpha * s + (bias ? bias[n + j] : 0.0f);
      }
  }
  for (; n < n1; ++n) gemv_block<M, 1>(n, n + 1, K, A, lda, Bt, ldb, alpha, bias, Y, N);
}

template <int M>
HEARTH_GEMV_TARGET void gemv_range(int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda, const float* Bt,
                                   int64_t ldb, float alpha, const float* bias, float* Y, int64_t N) {
  // Several weight rows in flight keep the memory stream busy; M * J <= 8
  // accumulators (5 to 8 rows: one weight row, each loaded once for all of them).
  constexpr int J = M <= 2 ? 4 : M <= 4 ? 2 : 1;
  gemv_block<M, J>(n0, n1, K, A, lda, Bt, ldb, alpha, bias, Y, N);
}

// B [K, N] with unit column stride: Y's rows (in L1) accumulate four rows of B at a
// time, each read contiguously, so the weights stream front to back.
template <int M>
HEARTH_GEMV_TARGET void gemv_cols(int64_t n0, int64_t n1, int64_t K, const float* A, int64_t lda, const float* B,
                                  int64_t ldb, float alpha, const float* bias, float* Y, int64_t N) {
  const int64_t n8 = n0 + (n1 - n0) / 8 * 8;
  for (int m = 0; m < M; ++m) std::fill(Y + m * N + n0, Y + m * N + n1, 0.0f);
  int64_t k = 0;
  for (; k + 4 <= K; k += 4) {
    const float* b0 = B + k * ldb;
    __m256 a[M][4];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m)
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) a[m][i] = _mm256_broadcast_ss(A + m * lda + k + i);
    for (int64_t n = n0; n < n8; n += 8) {
      const __m256 w0 = _mm256_loadu_ps(b0 + n), w1 = _mm256_loadu_ps(b0 + ldb + n);
      const __m256 w2 = _mm256_loadu_ps(b0 + 2 * ldb + n), w3 = _mm256_loadu_ps(b0 + 3 * ldb + n);
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) {
        float* y = Y + m * N + n;
        __m256 acc = _mm256_loadu_ps(y);
        acc = _mm256_fmadd_ps(a[m][0], w0, acc);
        acc = _mm256_fmadd_ps(a[m][1], w1, acc);
        acc = _mm256_fmadd_ps(a[m][2], w2, acc);
        acc = _mm256_fmadd_ps(a[m][3], w3, acc);
        _mm256_storeu_ps(y, acc);
      }
    }
    for (int64_t n = n8; n < n1; ++n)
      for (int m = 0; m < M; ++m)
        for (int i = 0; i < 4; ++i) Y[m * N + n] += A[m * lda + k + i] * b0[i * ldb + n];
  }
  for (; k < K; ++k) {
    const float* b = B + k * ldb;
    for (int m = 0; m < M; ++m) {
      const __m256 a = _mm256_broadcast_ss(A + m * lda + k);
      float* y = Y + m * N;
      for (int64_t n = n0; n < n8; n += 8)
        _mm256_storeu_ps(y + n, _mm256_fmadd_ps(a, _mm256_loadu_ps(b + n), _mm256_loadu_ps(y + n)));
      for (int64_t n = n8; n < n1; ++n) y[n] += A[m * lda + k] * b[n];
    }
  }
  for (int m = 0; m < M; ++m)
    for (int64_t n = n0; n < n1; ++n) Y[m * N + n] = alpha * Y[m * N + n] + (bias ? bias[n] : 0.0f);
}

// Calls f(std::integral_constant<int, R>, A's rows, Y's rows) for M's rows in
// groups of up to G, so that each group runs a kernel compiled for its R rows.
template <int G, int R = 1, typename F>
void with_rows(int64_t rows, F&& f) {
  if constexpr (R < G) {
    if (rows != R) return with_rows<G, R + 1>(rows, f);
  }
  f(std::integral_constant<int, R>{});
}

template <int G, typename F>
void in_row_groups(int64_t M, const float* A, int64_t lda, float* Y, int64_t N, F&& f) {
  for (int64_t m0 = 0; m0 < M; m0 += G)
    with_rows<G>(std::min<int64_t>(G, M - m0), [&](auto r) { f(r, A + m0 * lda, Y + m0 * N); });
}

}  // namespace

bool gemv_available() {
  return isa_at_least(IsaLevel::kAvx2);
}

void gemv_rows(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t b_k,
               int64_t b_n, float alpha, const float* bias, float* Y, int threads) {
  const bool rows = b_k == 1;  // B stored transposed: each output is a dot product of two rows
  // Threads split N (in whole 8-column vectors for the column form); small products stay on one thread.
  const int nt = N * K < (1 << 16) ? 1 : std::max(1, threads);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int t = 0, count = 1;
#ifdef _OPENMP
    t = omp_get_thread_num(), count = omp_get_num_threads();
#endif
    const int64_t unit = rows ? 1 : 8;
    const int64_t units = (N + unit - 1) / unit, per = (units + count - 1) / count;
    const int64_t n0 = std::min(N, per * t * unit), n1 = std::min(N, n0 + per * unit);
    if (n0 < n1 && rows) {
      // Eight rows at a time: one pass over the weights for up to kGemvMaxRows.
      in_row_groups<8>(M, A, lda, Y, N, [&](auto r, const float* a, float* y) {
        gemv_range<decltype(r)::value>(n0, n1, K, a, lda, B, b_n, alpha, bias, y, N);
      });
    } else if (n0 < n1) {
      // Four rows at a time (their 16 broadcast values stay in registers); the
      // thread's columns of B are read again from cache for the next four.
      in_row_groups<4>(M, A, lda, Y, N, [&](auto r, const float* a, float* y) {
        gemv_cols<decltype(r)::value>(n0, n1, K, a, lda, B, b_k, alpha, bias, y, N);
      });
    }
  }
}

}  // namespace hearth
