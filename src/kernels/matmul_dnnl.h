// Float32 matrix products on oneDNN's matmul primitive, with the primitive
// (and packed constant weights) cached per shape inside one kernel object.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace hearth {

// Operand of DnnlMatmul::run: dims and element strides (strides let callers
// describe transposed views without copying).
struct MatmulOperand {
  Shape dims;
  Shape strides;
  const float* data = nullptr;
};

// Row-major dense strides of `dims`, as MatmulOperand wants them.
Shape dense_strides(const Shape& dims);

// Row-major C[M, N] = alpha * op(A) * op(B) + beta * C on oneDNN's sgemm
// (op = transpose when trans_*). With beta == 0, C is not read. Threads: OpenMP.
Status sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
             const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// What oneDNN adds after the product, in the same pass over dst:
// dst = act(product + bias), bias broadcast along every dim but the last.
enum class MatmulActivation { kNone, kGelu, kGeluTanh };  // x * Phi(x): exact (erf) / tanh approximation
struct MatmulEpilogue {
  const float* bias = nullptr;  // [N], or none
  MatmulActivation act = MatmulActivation::kNone;
};

// Not thread safe: one instance per kernel object (kernels never run concurrently).
class DnnlMatmul {
 public:
  DnnlMatmul();
  ~DnnlMatmul();
  DnnlMatmul(const DnnlMatmul&) = delete;
  DnnlMatmul& operator=(const DnnlMatmul&) = delete;

  // dst = alpha * (a x b) where a is [batch..., M, K] and b is [batch..., K, N]
  // (same rank 2..12, each batch dim equal or 1); dst is dense [batch..., M, N]
  // with the broadcast batch dims. `b_constant` promises b's contents never
  // change, so its packed form is computed once per shape. `epilogue` needs
  // alpha == 1.
  // Returns kUnimplemented when oneDNN has no implementation for the shapes
  // (callers then fall back to the reference), kInternal for other oneDNN errors.
  // `threads`: the kernel's thread budget (the oneDNN primitive itself follows
  // OpenMP's, which the session sets to the same).
  Status run(const MatmulOperand& a, const MatmulOperand& b, float* dst, float alpha, bool b_constant,
             const MatmulEpilogue& epilogue = {}, int threads = 1);

 private:
  struct Entry;
  Result<Entry*> entry_for(const MatmulOperand& a, const MatmulOperand& b, float alpha, bool b_constant,
                           const MatmulEpilogue& epilogue);
  // The path for one to kGemvMaxRows rows of A (gemv.h), reading constant B in place.
  bool try_gemv(const MatmulOperand& a, const MatmulOperand& b, float* dst, float alpha, bool b_constant,
                const MatmulEpilogue& epilogue, int threads);
  std::map<std::vector<int64_t>, std::unique_ptr<Entry>> cache_;
};

}  // namespace hearth
