// Kernel family: gather. Index-driven reads: Gather, GatherElements,
// GatherND, and the selection ops NonZero, Compress, OneHot. Scatter ops are
// in gather_scatter.cc; Unique and ReverseSequence in gather_unique.cc.
// Indices may be int32 or int64 (any integer type is accepted), negative
// indices count from the end, out-of-range indices are invalid_argument.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/kernel.h"
#include "kernels/register_all.h"
#include "kernels/shape_util.h"

namespace hearth {
namespace {

// Reads `t` as indices and maps negatives into [0, dim); error names op and axis.
Result<std::vector<int64_t>> read_indices(const Tensor& t, int64_t dim, int64_t axis, const char* op) {
  HEARTH_ASSIGN_OR_RETURN(std::vector<int64_t> idx, read_int64s(t, "indices"));
  for (int64_t& i : idx) {
    const int64_t v = i < 0 ? i + dim : i;
    if (v < 0 || v >= dim) {
      return invalid_argument(op, ": index ", i, " is out of range for axis ", axis, " of size ", dim);
    }
    i = v;
  }
  return idx;
}

int64_t prod(const Shape& s, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t d = begin; d < end && d < s.size(); ++d) p *= s[d];
  return p;
}

// Copies `count` blocks of `block` elements: dst block j <- src block src_block(j).
template <typename SrcBlock>
Status copy_indexed_blocks(const void* src, void* dst, size_t es, int64_t count, int64_t block, int num_threads,
                           SrcBlock&& src_block) {
  const bool parallel = num_threads > 1 && count * block > 64 * 1024 && count > 1;
  if (block == 1) {
    return dispatch_bytes(es, [&](auto tag) {
      using U = decltype(tag);
      const U* s = static_cast<const U*>(src);
      U* d = static_cast<U*>(dst);
#pragma omp parallel for num_threads(std::max(num_threads, 1)) schedule(static) if (parallel)
      for (int64_t j = 0; j < count; ++j) d[j] = s[src_block(j)];
    });
  }
  const size_t bytes = static_cast<size_t>(block) * es;
  const auto* s = static_cast<const uint8_t*>(src);
  auto* d = static_cast<uint8_t*>(dst);
#pragma omp parallel for num_threads(std::max(num_threads, 1)) schedule(static) if (parallel)
  for (int64_t j = 0; j < count; ++j) std::memcpy(d + j * bytes, s + src_block(j) * bytes, bytes);
  return ok_status();
}

// ---- Gather ----------------------------------------------------------------

class GatherKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    axis_ = info.node.attr_int("axis", 0);
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "data"));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* it, required_input(ctx, 1, "indices"));
    HEARTH_RETURN_IF_ERROR(check_movable(*x, "Gather", "data"));
    HEARTH_ASSIGN_OR_RETURN(int64_t axis, normalize_axis_for(axis_, static_cast<int64_t>(x->rank()), "Gather"));
    const size_t ax = static_cast<size_t>(axis);
    const int64_t dim = x->dim(ax);
    HEARTH_ASSIGN_OR_RETURN(std::vector<int64_t> idx, read_indices(*it, dim, axis, "Gather"));
    Shape out(x->shape().begin(), x->shape().begin() + axis);
    out.insert(out.end(), it->shape().begin(), it->shape().end());
    out.insert(out.end(), x->shape().begin() + axis + 1, x->shape().end());
    Tensor& y = ctx.allocate_output(0, x->dtype(), out);
    const int64_t n = static_cast<int64_t>(idx.size());
    const int64_t outer = prod(x->shape(), 0, ax), inner = prod(x->shape(), ax + 1, x->rank());
    if (y.numel() == 0) return ok_status();
    return copy_indexed_blocks(x->raw_data(), y.raw_data(), dtype_size(x->dtype()), outer * n, inner,
                               ctx.num_threads(), [&](int64_t j) { return (j / n) * dim + idx[j % n]; });
  }

 private:
  int64_t axis_ = 0;
};

// ---- GatherElements --------------------------------------------------------

class GatherElementsKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    axis_ = info.node.attr_int("axis", 0);
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "data"));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* it, required_input(ctx, 1, "indices"));
    HEARTH_RETURN_IF_ERROR(check_movable(*x, "GatherElements", "data"));
    const size_t rank = x->rank();
    HEARTH_ASSIGN_OR_RETURN(int64_t axis, normalize_axis_for(axis_, static_cast<int64_t>(rank), "GatherElements"));
    if (it->rank() != rank) {
      return invalid_argument("GatherElements: indices ", it->describe(), " must have the rank of data ",
                              x->describe());
    }
    for (size_t d = 0; d < rank; ++d) {
      if (static_cast<int64_t>(d) != axis && it->dim(d) > x->dim(d)) {
        return invalid_argument("GatherElements: indices ", it->describe(), " exceed data ", x->describe(),
                                " in dim ", d);
      }
    }
    const size_t ax = static_cast<size_t>(axis);
    HEARTH_ASSIGN_OR_RETURN(std::vector<int64_t> idx, read_indices(*it, x->dim(ax), axis, "GatherElements"));
    Tensor& y = ctx.allocate_output(0, x->dtype(), it->shape());
    if (y.numel() == 0) return ok_status();
    const std::vector<int64_t> xs = shape_strides(x->shape());
    // Walk the index tensor with an odometer; the data offset skips the axis.
    std::vector<int64_t> pos(rank, 0);
    std::vector<int64_t> src(idx.size());
    int64_t base = 0;
    for (size_t j = 0; j < idx.size(); ++j) {
      src[j] = base + idx[j] * xs[ax];
      for (size_t d = rank; d-- > 0;) {
        if (d != ax) base += xs[d];
        if (++pos[d] < it->dim(d)) break;
        if (d != ax) base -= xs[d] * it->dim(d);
        pos[d] = 0;
      }
    }
    return copy_indexed_blocks(x->raw_data(), y.raw_data(), dtype_size(x->dtype()), y.numel(), 1,
                               ctx.num_threads(), [&](int64_t j) { return src[static_cast<size_t>(j)]; });
  }

 private:
  int64_t axis_ = 0;
};

// ---- GatherND --------------------------------------------------------------

class GatherNDKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    batch_dims_ = info.opset >= 12 ? info.node.attr_int("batch_dims", 0) : 0;
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "data"));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* it, required_input(ctx, 1, "indices"));
    HEARTH_RETURN_IF_ERROR(check_movable(*x, "GatherND", "data"));
    const size_t r = x->rank(), q = it->rank();
    const int64_t b = batch_dims_;
    if (q < 1 || b < 0 || static_cast<size_t>(b) >= std::min(r, q)) {
      return invalid_argument("GatherND: batch_dims ", b, " is invalid for data ", x->describe(), " and indices ",
                              it->describe());
    }
    const size_t bd = static_cast<size_t>(b);
    const int64_t k = it->dim(q - 1);
    if (k < 1 || static_cast<size_t>(k) > r - bd) {
      return invalid_argument("GatherND: last indices dim ", k, " must be in [1, ", r - bd, "]");
    }
    for (size_t d = 0; d < bd; ++d) {
      if (it->dim(d) != x->dim(d)) {
        return invalid_argument("GatherND: batch dim ", d, " differs: data ", x->describe(), ", indices ",
                                it->describe());
      }
    }
    HEARTH_ASSIGN_OR_RETURN(std::vector<int64_t> idx, read_int64s(*it, "GatherND: indices"));
    Shape out(it->shape().begin(), it->shape().end() - 1);
    out.insert(out.end(), x->shape().begin() + b + k, x->shape().end());
    const int64_t batches = prod(x->shape(), 0, bd);
    const int64_t tuples = batches == 0 ? 0 : static_cast<int64_t>(idx.size()) / k / batches;
    const int64_t slice = prod(x->shape(), bd + static_cast<size_t>(k), r);
    const int64_t batch_stride = prod(x->shape(), bd, r);
    // Source slice (in units of `slice` elements) of each index tuple.
    std::vector<int64_t> src(static_cast<size_t>(batches * tuples));
    for (int64_t t = 0; t < batches * tuples; ++t) {
      int64_t off = 0;
      for (int64_t j = 0; j < k; ++j) {
        const size_t d = bd + static_cast<size_t>(j);
        int64_t v = idx[static_cast<size_t>(t * k + j)];
        if (v < 0) v += x->dim(d);
        if (v < 0 || v >= x->dim(d)) {
          return invalid_argument("GatherND: index ", idx[static_cast<size_t>(t * k + j)],
                                  " is out of range for axis ", d, " of size ", x->dim(d));
        }
        off = off * x->dim(d) + v;
      }
      src[static_cast<size_t>(t)] = (t / std::max<int64_t>(tuples, 1)) * (batch_stride / std::max<int64_t>(slice, 1)) + off;
    }
    Tensor& y = ctx.allocate_output(0, x->dtype(), out);
    if (y.numel() == 0) return ok_status();
    return copy_indexed_blocks(x->raw_data(), y.raw_data(), dtype_size(x->dtype()), batches * tuples, slice,
                               ctx.num_threads(), [&](int64_t j) { return src[static_cast<size_t>(j)]; });
  }

 private:
  int64_t batch_dims_ = 0;
};

// ---- NonZero / Compress / OneHot ------------------------------------------

// True when element i of a T array is not zero (16-bit floats: +-0 bits are zero).
template <typename T>
bool is_nonzero(const T* p, int64_t i) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) {
    return (p[i].bits & 0x7fff) != 0;
  } else {
    return p[i] != T(0);
  }
}

class NonZeroKernel : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "X"));
    std::vector<int64_t> hits;
    HEARTH_RETURN_IF_ERROR(dispatch_all(
        x->dtype(),
        [&](auto tag) -> Status {
          using T = decltype(tag);
          for (int64_t i = 0; i < x->numel(); ++i)
            if (is_nonzero(x->data<T>(), i)) hits.push_back(i);
          return ok_status();
        },
        [&]() -> Status { return unimplemented("NonZero: dtype ", dtype_name(x->dtype()), " is not supported"); }));
    const size_t rank = std::max<size_t>(x->rank(), 1);
    const int64_t nnz = static_cast<int64_t>(hits.size());
    Tensor& y = ctx.allocate_output(0, DataType::kInt64, {static_cast<int64_t>(rank), nnz});
    int64_t* out = y.data<int64_t>();
    for (int64_t j = 0; j < nnz; ++j) {
      int64_t rem = hits[static_cast<size_t>(j)];
      for (size_t d = x->rank(); d-- > 0;) {
        out[static_cast<int64_t>(d) * nnz + j] = rem % x->dim(d);
        rem /= x->dim(d);
      }
      if (x->rank() == 0) out[j] = 0;
    }
    return ok_status();
  }
};

class CompressKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    has_axis_ = info.node.has_attr("axis");
    axis_ = info.node.attr_int("axis", 0);
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "input"));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* c, required_input(ctx, 1, "condition"));
    HEARTH_RETURN_IF_ERROR(check_movable(*x, "Compress", "input"));
    if (c->dtype() != DataType::kBool || c->rank() != 1) {
      return invalid_argument("Compress: condition must be a 1-D bool tensor, got ", c->describe());
    }
    Shape shape = x->shape();
    size_t ax = 0;
    if (!has_axis_) {
      shape = {x->numel()};
    } else {
      HEARTH_ASSIGN_OR_RETURN(int64_t a, normalize_axis_for(axis_, static_cast<int64_t>(x->rank()), "Compress"));
      ax = static_cast<size_t>(a);
    }
    const int64_t dim = shape[ax];
    std::vector<int64_t> keep;
    for (int64_t i = 0; i < c->numel(); ++i) {
      if (!c->data<bool>()[i]) continue;
      if (i >= dim) return invalid_argument("Compress: condition is true at ", i, " beyond the axis size ", dim);
      keep.push_back(i);
    }
    const int64_t n = static_cast<int64_t>(keep.size());
    Shape out = shape;
    out[ax] = n;
    Tensor& y = ctx.allocate_output(0, x->dtype(), out);
    if (y.numel() == 0) return ok_status();
    const int64_t inner = prod(shape, ax + 1, shape.size());
    return copy_indexed_blocks(x->raw_data(), y.raw_data(), dtype_size(x->dtype()), prod(shape, 0, ax) * n, inner,
                               ctx.num_threads(), [&](int64_t j) { return (j / n) * dim + keep[j % n]; });
  }

 private:
  bool has_axis_ = false;
  int64_t axis_ = 0;
};

class OneHotKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    axis_ = info.node.attr_int("axis", -1);
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* it, required_input(ctx, 0, "indices"));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* dt, required_input(ctx, 1, "depth"));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* vt, required_input(ctx, 2, "values"));
    HEARTH_RETURN_IF_ERROR(check_movable(*vt, "OneHot", "values"));
    if (vt->numel() != 2) return invalid_argument("OneHot: values must have 2 elements, got ", vt->describe());
    if (dt->numel() != 1) return invalid_argument("OneHot: depth must have one element, got ", dt->describe());
    HEARTH_ASSIGN_OR_RETURN(std::vector<double> depth_v, tensor_to_doubles(*dt));
    if (!(depth_v[0] >= 1 && depth_v[0] < 1e12)) return invalid_argument("OneHot: depth ", depth_v[0], " is invalid");
    const int64_t depth = static_cast<int64_t>(depth_v[0]);
    HEARTH_ASSIGN_OR_RETURN(std::vector<double> idx, tensor_to_doubles(*it));
    const int64_t out_rank = static_cast<int64_t>(it->rank()) + 1;
    HEARTH_ASSIGN_OR_RETURN(int64_t axis, normalize_axis_for(axis_, out_rank, "OneHot"));
    Shape out = it->shape();
    out.insert(out.begin() + axis, depth);
    Tensor& y = ctx.allocate_output(0, vt->dtype(), out);
    const int64_t inner = prod(it->shape(), static_cast<size_t>(axis), it->rank());
    return dispatch_bytes(dtype_size(vt->dtype()), [&](auto tag) {
      using U = decltype(tag);
      const U off = vt->data<U>()[0], on = vt->data<U>()[1];
      U* dst = y.data<U>();
      std::fill(dst, dst + y.numel(), off);
      for (size_t j = 0; j < idx.size(); ++j) {
        if (!(std::fabs(idx[j]) < static_cast<double>(depth) + 1)) continue;  // NaN or out of range: all "off"
        int64_t v = static_cast<int64_t>(idx[j]);
        if (v < 0) v += depth;
        if (v < 0 || v >= depth) continue;  // out-of-range rows stay all "off" (ONNX spec)
        const int64_t o = static_cast<int64_t>(j) / inner, i = static_cast<int64_t>(j) % inner;
        dst[(o * depth + v) * inner + i] = on;
      }
    });
  }

 private:
  int64_t axis_ = -1;
};

}  // namespace

void register_gather_kernels(KernelRegistry& r) {
  r.add({"Gather", "", 1, kMaxOpset, all_types(), kernel_factory<GatherKernel>()});
  r.add({"GatherElements", "", 11, kMaxOpset, all_types(), kernel_factory<GatherElementsKernel>()});
  r.add({"GatherND", "", 11, kMaxOpset, all_types(), kernel_factory<GatherNDKernel>()});
  r.add({"NonZero", "", 9, kMaxOpset, all_types(), kernel_factory<NonZeroKernel>()});
  r.add({"Compress", "", 9, kMaxOpset, all_types(), kernel_factory<CompressKernel>()});
  r.add({"OneHot", "", 9, kMaxOpset, all_types(), kernel_factory<OneHotKernel>()});
  register_gather_scatter_kernels(r);
  register_gather_unique_kernels(r);
}

}  // namespace hearth
