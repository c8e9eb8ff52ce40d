// Shared helpers for the reduce family files (reduce.cc, reduce_index.cc,
// einsum.cc): sub-registration functions and small tensor utilities.
// Internal to src/kernels; no other layer includes it.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/kernel.h"

namespace hearth {

// Registered from register_reduce_kernels (reduce.cc).
void register_reduce_index_kernels(KernelRegistry& r);  // reduce_index.cc: ArgMax, ArgMin, TopK, CumSum
void register_einsum_kernels(KernelRegistry& r);        // einsum.cc: Einsum, Det

// True for float16 / bfloat16, which the reduce family computes in float32.
inline bool is_half_type(DataType t) { return t == DataType::kFloat16 || t == DataType::kBFloat16; }

// Product of shape[begin, end).
inline int64_t dims_product(const Shape& shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end && i < shape.size(); ++i) p *= shape[i];
  return p;
}

// Copies `t` into output `i` after casting to `dtype` (used to return a
// float32 result as float16/bfloat16).
inline Status set_output_as(KernelContext& ctx, size_t i, const Tensor& t, DataType dtype) {
  if (t.dtype() == dtype) {
    ctx.set_output(i, t);
    return ok_status();
  }
  HEARTH_ASSIGN_OR_RETURN(Tensor c, cast_tensor(t, dtype, ctx.allocator()));
  ctx.set_output(i, std::move(c));
  return ok_status();
}

// Reads a scalar or one-element integer tensor (e.g. CumSum's axis, TopK's k).
inline Result<int64_t> read_scalar_int(const Tensor& t, const Node& node, const char* what) {
  if (t.numel() != 1) {
    return invalid_argument(node.describe(), ": ", what, " must hold exactly one value, got shape ",
                            shape_str(t.shape()));
  }
  HEARTH_ASSIGN_OR_RETURN(auto v, tensor_to_int64s(t));
  return v[0];
}

}  // namespace hearth
