// Numpy-style broadcasting for kernels with several inputs (Add, Where, Expand,
// PRelu, Max, ...). Header-only.
//
// Usage:
//   HEARTH_ASSIGN_OR_RETURN(BroadcastPlan plan, make_broadcast_plan({a.shape(), b.shape()}));
//   Tensor& out = ctx.allocate_output(0, dtype, plan.out_shape);
//   for_each_broadcast_row(plan, 0, plan.numel, [&](int64_t o, int64_t n, const int64_t* off, const int64_t* step) {
//     for (int64_t i = 0; i < n; ++i) y[o + i] = fa(a[off[0] + i * step[0]], b[off[1] + i * step[1]]);
//   });
// or, for the common element-wise case, broadcast_map2 / broadcast_map3 below,
// which also pick the contiguous / scalar fast paths and use OpenMP.
//
// The plan collapses adjacent dimensions that every input walks the same way,
// so same-shape operands become one contiguous row and [N,C,H,W] + [1,C,1,1]
// becomes rows of H*W with a constant (step 0) operand.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace hearth {

// Output shape of numpy broadcasting of `shapes` (right-aligned; each dim must
// equal the output dim or be 1). Error names both conflicting dims.
inline Result<Shape> broadcast_shapes(const std::vector<Shape>& shapes) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  Shape out(rank, 1);
  for (size_t k = 0; k < shapes.size(); ++k) {
    const Shape& s = shapes[k];
    const size_t pad = rank - s.size();
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& o = out[pad + i];
      const int64_t d = s[i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::string all;
      for (size_t j = 0; j < shapes.size(); ++j) all += (j ? " and " : "") + shape_str(shapes[j]);
      return invalid_argument("shapes ", all, " cannot be broadcast: dimension ", d, " of input ", k,
                              " conflicts with ", o);
    }
  }
  return out;
}

// A walk over the broadcast output, row by row. Row = the innermost collapsed dim.
struct BroadcastPlan {
  Shape out_shape;                 // full (uncollapsed) output shape
  int64_t numel = 0;               // elements in the output
  std::vector<int64_t> dims;       // collapsed dims; never empty (scalar -> {1})
  // strides[k][d]: element stride of input k along collapsed dim d (0 = broadcast).
  std::vector<std::vector<int64_t>> strides;

  size_t num_inputs() const { return strides.size(); }
  // True when input k is read contiguously, element i at offset i (same shape as output).
  bool is_contiguous(size_t k) const {
    return dims.size() == 1 && (strides[k][0] == 1 || numel <= 1);
  }
  // True when input k has exactly one element (a scalar operand).
  bool is_scalar(size_t k) const {
    for (int64_t s : strides[k])
      if (s != 0) return false;
    return true;
  }
};

// Limits of the row walker: inputs per plan (Where needs 3; variadic Max/Sum
// fold pairwise) and collapsed rank.
constexpr size_t kMaxBroadcastInputs = 8;
constexpr size_t kMaxBroadcastRank = 32;

// Builds the plan for inputs of the given shapes (1..kMaxBroadcastInputs of them).
inline Result<BroadcastPlan> make_broadcast_plan(const std::vector<Shape>& shapes) {
  BroadcastPlan p;
  if (shapes.empty() || shapes.size() > kMaxBroadcastInputs) {
    return invalid_argument("broadcast of ", shapes.size(), " inputs is not supported (1..", kMaxBroadcastInputs,
                            ")");
  }
  HEARTH_ASSIGN_OR_RETURN(p.out_shape, broadcast_shapes(shapes));
  // Inputs of legal sizes can still broadcast to a shape whose count overflows.
  HEARTH_ASSIGN_OR_RETURN(p.numel, checked_numel(p.out_shape));
  const size_t rank = p.out_shape.size();
  const size_t n_in = shapes.size();
  // Per-input strides aligned to the output rank (0 where the input is broadcast).
  std::vector<std::vector<int64_t>> full(n_in, std::vector<int64_t>(rank, 0));
  for (size_t k = 0; k < n_in; ++k) {
    const Shape& s = shapes[k];
    const size_t pad = rank - s.size();
    int64_t stride = 1;
    for (size_t i = s.size(); i-- > 0;) {
      full[k][pad + i] = (s[i] == 1) ? 0 : stride;
      stride *= s[i];
    }
  }
  // Drop output dims of size 1, then merge dims every input walks alike.
  p.strides.assign(n_in, {});
  for (size_t d = 0; d < rank; ++d) {
    if (p.out_shape[d] == 1) continue;
    bool merge = !p.dims.empty();
    for (size_t k = 0; merge && k < n_in; ++k) merge = p.strides[k].back() == full[k][d] * p.out_shape[d];
    if (merge) {
      p.dims.back() *= p.out_shape[d];
      for (size_t k = 0; k < n_in; ++k) p.strides[k].back() = full[k][d];
    } else {
      p.dims.push_back(p.out_shape[d]);
      for (size_t k = 0; k < n_in; ++k) p.strides[k].push_back(full[k][d]);
    }
  }
  if (p.dims.empty()) {
    p.dims.push_back(1);
    for (size_t k = 0; k < n_in; ++k) p.strides[k].push_back(0);
  }
  if (p.dims.size() > kMaxBroadcastRank) {
    return unimplemented("broadcast of rank ", p.dims.size(), " is not supported (max ", kMaxBroadcastRank, ")");
  }
  return p;
}

// Calls fn(out_offset, n, in_offsets, in_steps) for each run of output elements
// [out_offset, out_offset + n) within [begin, end). Element i of the run reads
// input k at in_offsets[k] + i * in_steps[k] (steps are 0 or the input's inner
// stride). Runs never cross a row. Thread safe for disjoint ranges.
template <typename Fn>
void for_each_broadcast_row(const BroadcastPlan& p, int64_t begin, int64_t end, Fn&& fn) {
  if (begin >= end) return;
  const size_t rank = p.dims.size();
  const size_t n_in = p.num_inputs();  // <= kMaxBroadcastInputs, checked by make_broadcast_plan
  int64_t idx[kMaxBroadcastRank] = {0};
  int64_t off[kMaxBroadcastInputs] = {0};
  int64_t step[kMaxBroadcastInputs] = {0};
  // Multi-index of `begin` and the offsets it implies.
  int64_t rem = begin;
  for (size_t d = rank; d-- > 0;) {
    idx[d] = rem % p.dims[d];
    rem /= p.dims[d];
  }
  for (size_t k = 0; k < n_in; ++k) {
    step[k] = p.strides[k][rank - 1];
    for (size_t d = 0; d < rank; ++d) off[k] += idx[d] * p.strides[k][d];
  }
  const int64_t row = p.dims[rank - 1];
  int64_t pos = begin;
  while (pos < end) {
    const int64_t n = std::min(row - idx[rank - 1], end - pos);
    fn(pos, n, static_cast<const int64_t*>(off), static_cast<const int64_t*>(step));
    pos += n;
    if (pos >= end) break;
    // Advance the odometer by n along the last dim, carrying into outer dims.
    idx[rank - 1] += n;
    for (size_t k = 0; k < n_in; ++k) off[k] += n * step[k];
    for (size_t d = rank - 1; d > 0 && idx[d] == p.dims[d]; --d) {
      idx[d] = 0;
      ++idx[d - 1];
      for (size_t k = 0; k < n_in; ++k) off[k] += p.strides[k][d - 1] - p.dims[d] * p.strides[k][d];
    }
  }
}

// Splits the output into chunks and runs for_each_broadcast_row on each,
// in parallel (OpenMP) when the output is large enough to pay for threads.
template <typename Fn>
void parallel_broadcast_rows(const BroadcastPlan& p, int num_threads, Fn&& fn) {
  constexpr int64_t kMinPerThread = 32 * 1024;
  int64_t chunks = std::min<int64_t>(std::max(num_threads, 1), std::max<int64_t>(p.numel / kMinPerThread, 1));
  if (chunks <= 1) {
    for_each_broadcast_row(p, 0, p.numel, fn);
    return;
  }
  const int64_t per = (p.numel + chunks - 1) / chunks;
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    for_each_broadcast_row(p, c * per, std::min(p.numel, (c + 1) * per), fn);
  }
}

// broadcast_map2's path for short tiled rows: the last two collapsed dims are
// [Q, R] with R small, one input reads a whole [Q, R] block and the other the
// same R elements for every q. This is a per-channel operand in the 8-channel
// blocked layout ([N, C/8, H, W, 8] * [N, C/8, 1, 1, 8]), where the row walker
// would pay its per-row bookkeeping every 8 elements. False when the plan has
// another form.
template <typename Out, typename A, typename B, typename Op>
bool broadcast_map2_tiled(const BroadcastPlan& p, const A* a, const B* b, Out* out, int num_threads, Op op) {
  const size_t r = p.dims.size();
  if (r < 2 || p.dims[r - 1] > 64 || p.numel == 0 || p.dims[r - 1] == 0 || p.dims[r - 2] == 0) return false;
  const int64_t q_n = p.dims[r - 2], r_n = p.dims[r - 1];
  const auto& sa = p.strides[0];
  const auto& sb = p.strides[1];
  const bool a_full = sa[r - 1] == 1 && sa[r - 2] == r_n, b_full = sb[r - 1] == 1 && sb[r - 2] == r_n;
  const bool a_tile = sa[r - 1] == 1 && sa[r - 2] == 0, b_tile = sb[r - 1] == 1 && sb[r - 2] == 0;
  if (!((a_full && b_tile) || (a_tile && b_full))) return false;
  const int64_t block = q_n * r_n, outer = p.numel / block;
  const bool par = num_threads > 1 && p.numel >= 64 * 1024;
#pragma omp parallel for num_threads(std::max(num_threads, 1)) if (par) schedule(static)
  for (int64_t m = 0; m < outer; ++m) {
    int64_t rem = m, oa = 0, ob = 0;
    for (size_t d = r - 2; d-- > 0;) {
      const int64_t i = rem % p.dims[d];
      rem /= p.dims[d];
      oa += i * sa[d], ob += i * sb[d];
    }
    Out* y = out + m * block;
    if (r_n == 8) {  // the blocked layout's rows: a fixed trip count the compiler unrolls and vectorizes
      for (int64_t q = 0; q < q_n; ++q) {
        const A* ra = a + oa + (a_full ? q * 8 : 0);
        const B* rb = b + ob + (b_full ? q * 8 : 0);
#pragma omp simd
        for (int64_t i = 0; i < 8; ++i) y[q * 8 + i] = op(ra[i], rb[i]);
      }
      continue;
    }
    for (int64_t q = 0; q < q_n; ++q) {
      const A* ra = a + oa + (a_full ? q * r_n : 0);
      const B* rb = b + ob + (b_full ? q * r_n : 0);
      Out* ry = y + q * r_n;
#pragma omp simd
      for (int64_t i = 0; i < r_n; ++i) ry[i] = op(ra[i], rb[i]);
    }
  }
  return true;
}

// out[i] = op(a[ia], b[ib]) over the broadcast of a and b. `p` must come from
// make_broadcast_plan({shape_a, shape_b}). Element types are whatever the
// pointers are; op is called with (A, B) values and must return Out.
template <typename Out, typename A, typename B, typename Op>
void broadcast_map2(const BroadcastPlan& p, const A* a, const B* b, Out* out, int num_threads, Op op) {
  if (broadcast_map2_tiled(p, a, b, out, num_threads, op)) return;
  parallel_broadcast_rows(p, num_threads, [&](int64_t o, int64_t n, const int64_t* off, const int64_t* st) {
    const A* pa = a + off[0];
    const B* pb = b + off[1];
    Out* y = out + o;
    // `omp simd`: the build's -O2 does not vectorize these loops on its own.
    if (st[0] == 1 && st[1] == 1) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) y[i] = op(pa[i], pb[i]);
    } else if (st[0] == 1 && st[1] == 0) {
      const B vb = *pb;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) y[i] = op(pa[i], vb);
    } else if (st[0] == 0 && st[1] == 1) {
      const A va = *pa;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) y[i] = op(va, pb[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) y[i] = op(pa[i * st[0]], pb[i * st[1]]);
    }
  });
}

// out[i] = op(a[ia], b[ib], c[ic]) over the broadcast of three inputs (Where, Clip-like).
template <typename Out, typename A, typename B, typename C, typename Op>
void broadcast_map3(const BroadcastPlan& p, const A* a, const B* b, const C* c, Out* out, int num_threads,
                    Op op) {
  parallel_broadcast_rows(p, num_threads, [&](int64_t o, int64_t n, const int64_t* off, const int64_t* st) {
    const A* pa = a + off[0];
    const B* pb = b + off[1];
    const C* pc = c + off[2];
    Out* y = out + o;
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) y[i] = op(pa[i], pb[i], pc[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) y[i] = op(pa[i * st[0]], pb[i * st[1]], pc[i * st[2]]);
    }
  });
}

}  // namespace hearth
