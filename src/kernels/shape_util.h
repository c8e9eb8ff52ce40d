// Helpers shared by the shape and gather kernel families (shape_*.cc,
// gather*.cc): element moves by byte width, strided copies (the engine of
// Transpose, Slice, Expand, Tile, DepthToSpace), integer-input reading and
// axis/index normalization. Internal to src/kernels.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "kernels/kernel.h"

namespace hearth {

// Calls fn(U{}) with U the unsigned integer type of `bytes` width (1, 2, 4, 8),
// so data movement never depends on the element type. Other widths are an error.
template <typename Fn>
Status dispatch_bytes(size_t bytes, Fn&& fn) {
  switch (bytes) {
    case 1: fn(uint8_t{}); return ok_status();
    case 2: fn(uint16_t{}); return ok_status();
    case 4: fn(uint32_t{}); return ok_status();
    case 8: fn(uint64_t{}); return ok_status();
    default: return unimplemented("element size ", bytes, " bytes is not supported");
  }
}

// Error unless `t` holds a type Hearth can move (numeric or bool). `op` and
// `what` name the op and the input for the message.
Status check_movable(const Tensor& t, const char* op, const char* what);

// Returns input i or an invalid_argument error naming the op when it is missing.
Result<const Tensor*> required_input(const KernelContext& ctx, size_t i, const char* what);

// Reads an integer tensor (any integer type) as int64 values; error names `what`.
Result<std::vector<int64_t>> read_int64s(const Tensor& t, const char* what);
// Reads a one-element integer tensor.
Result<int64_t> read_int64_scalar(const Tensor& t, const char* what);

// `axis` in [-rank, rank) -> [0, rank); error names the op.
Result<int64_t> normalize_axis_for(int64_t axis, int64_t rank, const char* op);

// A copy where output element i (row-major over `shape`) reads source
// element src_offset + sum_d idx[d] * src_strides[d] (strides in elements,
// may be 0 or negative). Output is contiguous.
struct StridedCopy {
  Shape shape;
  std::vector<int64_t> src_strides;
  int64_t src_offset = 0;
};

// Executes `plan` from `src` into `dst` (both of the same element size;
// dst holds shape_numel(plan.shape) elements). Picks memcpy rows, fills and a
// cache-blocked 2-D transpose where they apply; OpenMP for large copies.
Status strided_copy(const StridedCopy& plan, const void* src, void* dst, size_t elem_size, int num_threads);

// dst = transpose(src viewed as `view_shape`, perm); dst must already have
// numel(view_shape) elements. Used by Transpose, DepthToSpace, SpaceToDepth.
Status permute_copy(const Tensor& src, const Shape& view_shape, const std::vector<int64_t>& perm, Tensor& dst,
                    int num_threads);

// Registration of the kernels living in the other shape/gather files.
void register_shape_copy_kernels(KernelRegistry& r);
void register_shape_slice_kernels(KernelRegistry& r);
void register_gather_scatter_kernels(KernelRegistry& r);
void register_gather_unique_kernels(KernelRegistry& r);

}  // namespace hearth
