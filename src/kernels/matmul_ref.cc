// numpy MatMul shape planning (1-D promotion, batch broadcasting).
#include "kernels/matmul_ref.h"

#include <algorithm>

namespace hearth {

Result<MatmulPlan> plan_matmul(const Shape& a_in, const Shape& b_in) {
  if (a_in.empty() || b_in.empty()) {
    return invalid_argument("MatMul operands must have rank >= 1, got ", shape_str(a_in), " and ", shape_str(b_in));
  }
  Shape a = a_in, b = b_in;
  if (a.size() == 1) a.insert(a.begin(), 1);
  if (b.size() == 1) b.push_back(1);
  MatmulPlan p;
  p.M = a[a.size() - 2];
  p.K = a[a.size() - 1];
  p.N = b[b.size() - 1];
  if (b[b.size() - 2] != p.K) {
    return invalid_argument("MatMul inner dimensions differ: ", shape_str(a_in), " x ", shape_str(b_in));
  }
  const size_t rank = std::max(a.size(), b.size());
  a.insert(a.begin(), rank - a.size(), 1);
  b.insert(b.begin(), rank - b.size(), 1);
  for (size_t d = 0; d + 2 < rank; ++d) {
    if (a[d] != b[d] && a[d] != 1 && b[d] != 1) {
      return invalid_argument("MatMul batch dimensions do not broadcast: ", shape_str(a_in), " x ", shape_str(b_in));
    }
    p.batch.push_back(a[d] == 1 ? b[d] : a[d]);
  }
  p.a_full = a;
  p.b_full = b;
  p.out_shape = p.batch;
  if (a_in.size() > 1) p.out_shape.push_back(p.M);
  if (b_in.size() > 1) p.out_shape.push_back(p.N);
  return p;
}

void matmul_batch_offsets(const MatmulPlan& p, int64_t index, int64_t* a_off, int64_t* b_off) {
  int64_t ao = 0, bo = 0;
  int64_t a_stride = p.M * p.K, b_stride = p.K * p.N;
  for (size_t d = p.batch.size(); d-- > 0;) {
    const int64_t i = index % p.batch[d];
    index /= p.batch[d];
    if (p.a_full[d] != 1) ao += i * a_stride;
    if (p.b_full[d] != 1) bo += i * b_stride;
    a_stride *= p.a_full[d];
    b_stride *= p.b_full[d];
  }
  *a_off = ao;
  *b_off = bo;
}

}  // namespace hearth
