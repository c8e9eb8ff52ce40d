// Implementation of the shape/gather helpers: strided copies with collapsed
// dimensions, a cache-blocked 2-D transpose path, integer input reading.
#include "kernels/shape_util.h"

#include <algorithm>

namespace hearth {

Status check_movable(const Tensor& t, const char* op, const char* what) {
  if (!dtype_is_supported(t.dtype()) || dtype_size(t.dtype()) == 0) {
    return unimplemented(op, ": ", what, " dtype ", dtype_name(t.dtype()), " is not supported");
  }
  return ok_status();
}

Result<const Tensor*> required_input(const KernelContext& ctx, size_t i, const char* what) {
  const Tensor* t = ctx.input(i);
  if (!t) return invalid_argument(ctx.node().op_type, ": required input ", i, " (", what, ") is missing");
  return t;
}

Result<std::vector<int64_t>> read_int64s(const Tensor& t, const char* what) {
  if (!dtype_is_integer(t.dtype())) {
    return invalid_argument(what, " must be an integer tensor, got ", dtype_name(t.dtype()));
  }
  auto r = tensor_to_int64s(t);
  if (!r.ok()) return r.status().with_context(what);
  return r;
}

Result<int64_t> read_int64_scalar(const Tensor& t, const char* what) {
  if (t.numel() != 1) return invalid_argument(what, " must have exactly one element, got ", t.describe());
  HEARTH_ASSIGN_OR_RETURN(auto v, read_int64s(t, what));
  return v[0];
}

Result<int64_t> normalize_axis_for(int64_t axis, int64_t rank, const char* op) {
  const int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) return invalid_argument(op, ": axis ", axis, " is out of range for rank ", rank);
  return a;
}

namespace {

// Drops size-1 dims and merges neighbours the source walks contiguously.
void collapse(const StridedCopy& in, std::vector<int64_t>& dims, std::vector<int64_t>& strides) {
  for (size_t d = 0; d < in.shape.size(); ++d) {
    if (in.shape[d] == 1) continue;
    if (!dims.empty() && strides.back() == in.src_strides[d] * in.shape[d]) {
      dims.back() *= in.shape[d];
      strides.back() = in.src_strides[d];
    } else {
      dims.push_back(in.shape[d]);
      strides.push_back(in.src_strides[d]);
    }
  }
  if (dims.empty()) {
    dims.push_back(1);
    strides.push_back(0);
  }
}

// Splits `total` work items into chunks for OpenMP when the copy is large.
int64_t chunk_count(int64_t total, int64_t elems_per_item, int num_threads) {
  constexpr int64_t kMinElemsPerChunk = 64 * 1024;
  const int64_t work = total * std::max<int64_t>(elems_per_item, 1);
  const int64_t by_work = std::max<int64_t>(work / kMinElemsPerChunk, 1);
  return std::min<int64_t>({by_work, std::max(num_threads, 1), std::max<int64_t>(total, 1)});
}

// Row-wise copy: each output row (last collapsed dim) is a memcpy, a fill or
// a strided gather.
template <typename U>
void copy_rows(const U* src, U* dst, const std::vector<int64_t>& dims, const std::vector<int64_t>& strides,
               int64_t r0, int64_t r1) {
  const size_t rank = dims.size();
  const int64_t inner = dims[rank - 1];
  const int64_t step = strides[rank - 1];
  std::vector<int64_t> idx(rank, 0);
  int64_t off = 0;
  int64_t rem = r0;
  for (size_t d = rank - 1; d-- > 0;) {
    idx[d] = rem % dims[d];
    rem /= dims[d];
    off += idx[d] * strides[d];
  }
  for (int64_t r = r0; r < r1; ++r) {
    U* y = dst + r * inner;
    const U* x = src + off;
    if (step == 1) {
      std::memcpy(y, x, static_cast<size_t>(inner) * sizeof(U));
    } else if (step == 0) {
      std::fill(y, y + inner, *x);
    } else {
      for (int64_t i = 0; i < inner; ++i) y[i] = x[i * step];
    }
    for (size_t d = rank - 1; d-- > 0;) {
      off += strides[d];
      if (++idx[d] < dims[d]) break;
      off -= strides[d] * dims[d];
      idx[d] = 0;
    }
  }
}

// Output [..., M, N] where the source is contiguous along M (stride 1) and
// strided along N: a batched 2-D transpose, done in cache-sized tiles.
template <typename U>
void copy_transposed(const U* src, U* dst, const std::vector<int64_t>& dims, const std::vector<int64_t>& strides,
                     int num_threads) {
  constexpr int64_t kTile = 32;
  const size_t rank = dims.size();
  const int64_t m = dims[rank - 2], n = dims[rank - 1];
  const int64_t ns = strides[rank - 1];
  int64_t batches = 1;
  for (size_t d = 0; d + 2 < rank; ++d) batches *= dims[d];
  const int64_t mtiles = (m + kTile - 1) / kTile;
  const int64_t items = batches * mtiles;
  const int64_t chunks = chunk_count(items, kTile * n, num_threads);
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static) if (chunks > 1)
  for (int64_t it = 0; it < items; ++it) {
    const int64_t b = it / mtiles, i0 = (it % mtiles) * kTile;
    int64_t off = 0, rem = b;
    for (size_t d = rank - 2; d-- > 0;) {
      off += (rem % dims[d]) * strides[d];
      rem /= dims[d];
    }
    const U* x = src + off;
    U* y = dst + b * m * n;
    const int64_t i1 = std::min(m, i0 + kTile);
    for (int64_t j0 = 0; j0 < n; j0 += kTile) {
      const int64_t j1 = std::min(n, j0 + kTile);
      for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = j0; j < j1; ++j) y[i * n + j] = x[i + j * ns];
    }
  }
}

template <typename U>
void strided_copy_t(const U* src, U* dst, const std::vector<int64_t>& dims, const std::vector<int64_t>& strides,
                    int num_threads) {
  const size_t rank = dims.size();
  if (rank >= 2 && strides[rank - 2] == 1 && strides[rank - 1] != 1 && strides[rank - 1] != 0 &&
      dims[rank - 2] >= 8 && dims[rank - 1] >= 8) {
    copy_transposed(src, dst, dims, strides, num_threads);
    return;
  }
  const int64_t inner = dims[rank - 1];
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < rank; ++d) rows *= dims[d];
  const int64_t chunks = chunk_count(rows, inner, num_threads);
  if (chunks <= 1) {
    copy_rows(src, dst, dims, strides, 0, rows);
    return;
  }
  const int64_t per = (rows + chunks - 1) / chunks;
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    copy_rows(src, dst, dims, strides, c * per, std::min(rows, (c + 1) * per));
  }
}

}  // namespace

Status strided_copy(const StridedCopy& plan, const void* src, void* dst, size_t elem_size, int num_threads) {
  if (plan.shape.size() != plan.src_strides.size()) {
    return internal_error("strided copy: shape rank ", plan.shape.size(), " != stride count ",
                          plan.src_strides.size());
  }
  if (shape_numel(plan.shape) == 0) return ok_status();
  std::vector<int64_t> dims, strides;
  collapse(plan, dims, strides);
  return dispatch_bytes(elem_size, [&](auto tag) {
    using U = decltype(tag);
    strided_copy_t(static_cast<const U*>(src) + plan.src_offset, static_cast<U*>(dst), dims, strides,
                   num_threads);
  });
}

Status permute_copy(const Tensor& src, const Shape& view_shape, const std::vector<int64_t>& perm, Tensor& dst,
                    int num_threads) {
  if (perm.size() != view_shape.size()) {
    return internal_error("permute: perm size ", perm.size(), " != rank ", view_shape.size());
  }
  const std::vector<int64_t> in_strides = shape_strides(view_shape);
  StridedCopy plan;
  for (int64_t p : perm) {
    plan.shape.push_back(view_shape[static_cast<size_t>(p)]);
    plan.src_strides.push_back(in_strides[static_cast<size_t>(p)]);
  }
  return strided_copy(plan, src.raw_data(), dst.raw_data(), dtype_size(src.dtype()), num_threads);
}

}  // namespace hearth
