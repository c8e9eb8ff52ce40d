// Reference (plain loop) matrix products: the twin the oneDNN paths are tested
// against, and the implementation for element types oneDNN does not cover.
// Also the numpy-style MatMul shape plan shared by both paths.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace hearth {

// Strided 2-D view: element (r, c) lives at data[r * rs + c * cs].
template <typename T>
struct MatView {
  const T* data;
  int64_t rs;
  int64_t cs;
  T at(int64_t r, int64_t c) const { return data[r * rs + c * cs]; }
};

// Accumulator type of the reference loops: double for float (a more exact
// reference), unsigned for signed integers (wraps like numpy, no UB).
template <typename T> struct MatmulAcc { using type = T; };
template <> struct MatmulAcc<float> { using type = double; };
template <> struct MatmulAcc<int32_t> { using type = uint32_t; };
template <> struct MatmulAcc<int64_t> { using type = uint64_t; };

// c[M, N] (dense row-major) = sum_k a(m, k) * b(k, n).
template <typename T>
void gemm_reference(int64_t M, int64_t N, int64_t K, MatView<T> a, MatView<T> b, T* c) {
  using Acc = typename MatmulAcc<T>::type;
  std::vector<Acc> row(static_cast<size_t>(N));
  for (int64_t m = 0; m < M; ++m) {
    for (auto& v : row) v = Acc(0);
    for (int64_t k = 0; k < K; ++k) {
      const Acc av = static_cast<Acc>(a.at(m, k));
      for (int64_t n = 0; n < N; ++n) row[n] += av * static_cast<Acc>(b.at(k, n));
    }
    for (int64_t n = 0; n < N; ++n) c[m * N + n] = static_cast<T>(row[n]);
  }
}

// How a numpy MatMul of shapes a and b is laid out. 1-D operands are promoted
// (a: [K] -> [1, K], b: [K] -> [K, 1]) and the promoted dims dropped from out_shape.
struct MatmulPlan {
  int64_t M = 0, K = 0, N = 0;
  Shape batch;      // broadcast batch dims of the output
  Shape out_shape;  // numpy result shape
  Shape a_full;     // [batch dims of a padded with 1s..., M, K]
  Shape b_full;     // [batch dims of b padded with 1s..., K, N]
  int64_t batch_count() const { return shape_numel(batch); }
};

// Plans MatMul(a, b); the error message says which dims disagree.
Result<MatmulPlan> plan_matmul(const Shape& a, const Shape& b);

// Element offsets of the A and B matrices used by output batch `index`.
void matmul_batch_offsets(const MatmulPlan& plan, int64_t index, int64_t* a_off, int64_t* b_off);

// Batched numpy MatMul on dense inputs; c holds batch_count * M * N elements.
template <typename T>
void matmul_reference(const MatmulPlan& p, const T* a, const T* b, T* c) {
  for (int64_t i = 0; i < p.batch_count(); ++i) {
    int64_t ao = 0, bo = 0;
    matmul_batch_offsets(p, i, &ao, &bo);
    gemm_reference<T>(p.M, p.N, p.K, {a + ao, p.K, 1}, {b + bo, p.N, 1}, c + i * p.M * p.N);
  }
}

}  // namespace hearth
