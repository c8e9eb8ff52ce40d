// Kernel family: reduce (axis-wise index and scan ops). ArgMax, ArgMin, TopK and
// CumSum. Each views its input as [outer, n, inner] around the chosen axis and
// walks the axis with contiguous inner rows. float16/bfloat16 run in float32.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <type_traits>

#include "kernels/kernel.h"
#include "kernels/reduce_internal.h"
#include "kernels/wrapping.h"

namespace hearth {
namespace {

constexpr int64_t kParallelThreshold = 1 << 16;

// [outer, n, inner] split of `shape` around `axis`.
struct AxisSplit {
  int64_t outer = 1, n = 1, inner = 1;
};
AxisSplit split_at(const Shape& shape, int64_t axis) {
  return {dims_product(shape, 0, axis), shape[axis], dims_product(shape, axis + 1, shape.size())};
}

// Total order for floating values with NaN above everything, so sorting never
// sees an inconsistent comparator.
template <typename T>
inline bool greater_than(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return !std::isnan(b);
    if (std::isnan(b)) return false;
  }
  return a > b;
}

Result<Tensor> as_computable(const Tensor& x, Allocator* alloc) {
  if (is_half_type(x.dtype())) return cast_tensor(x, DataType::kFloat, alloc);
  return x;
}

// ---------------------------------------------------------------- ArgMax / ArgMin

template <bool kMax, typename T>
void arg_extreme(const T* x, int64_t* out, const AxisSplit& s, bool last, int threads) {
  const bool par = s.outer > 1 && s.outer * s.n * s.inner >= kParallelThreshold && threads > 1;
  // `better(v, best)`: v replaces the current best.
  const auto better = [last](T v, T best) {
    bool strictly = kMax ? greater_than(v, best) : greater_than(best, v);
    return strictly || (last && !greater_than(v, best) && !greater_than(best, v));
  };
#pragma omp parallel for num_threads(threads) if (par) schedule(static)
  for (int64_t o = 0; o < s.outer; ++o) {
    const T* base = x + o * s.n * s.inner;
    int64_t* idx = out + o * s.inner;
    std::vector<T> best(base, base + s.inner);
    std::fill(idx, idx + s.inner, 0);
    for (int64_t k = 1; k < s.n; ++k) {
      const T* row = base + k * s.inner;
      for (int64_t i = 0; i < s.inner; ++i) {
        if (better(row[i], best[i])) {
          best[i] = row[i];
          idx[i] = k;
        }
      }
    }
  }
}

class ArgKernel : public Kernel {
 public:
  explicit ArgKernel(bool is_max) : is_max_(is_max) {}
  Status init(const KernelInfo& info) override {
    axis_ = info.node.attr_int("axis", 0);
    keepdims_ = info.node.attr_int("keepdims", 1) != 0;
    select_last_ = info.node.attr_int("select_last_index", 0) != 0;
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    if (!ctx.input(0)) return invalid_argument(node.describe(), ": missing input 'data'");
    const int64_t rank = static_cast<int64_t>(ctx.input(0)->rank());
    HEARTH_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(axis_, rank, node));
    HEARTH_ASSIGN_OR_RETURN(Tensor x, as_computable(*ctx.input(0), ctx.allocator()));
    const AxisSplit s = split_at(x.shape(), axis);
    Shape out_shape = x.shape();
    if (keepdims_) out_shape[axis] = 1;
    else out_shape.erase(out_shape.begin() + axis);
    Tensor& out = ctx.allocate_output(0, DataType::kInt64, out_shape);
    if (out.numel() == 0) return ok_status();
    if (s.n == 0) return invalid_argument(node.describe(), ": cannot take ", node.op_type, " over an empty axis");
    return dispatch_arith(
        x.dtype(),
        [&](auto tag) -> Status {
          using T = decltype(tag);
          if (is_max_) arg_extreme<true>(x.data<T>(), out.data<int64_t>(), s, select_last_, ctx.num_threads());
          else arg_extreme<false>(x.data<T>(), out.data<int64_t>(), s, select_last_, ctx.num_threads());
          return ok_status();
        },
        [&]() -> Status {
          return unimplemented(node.describe(), ": dtype ", dtype_name(x.dtype()), " is not supported");
        });
  }

 private:
  bool is_max_;
  int64_t axis_ = 0;
  bool keepdims_ = true;
  bool select_last_ = false;
};

class ArgMaxKernel : public ArgKernel {
 public:
  ArgMaxKernel() : ArgKernel(true) {}
};
class ArgMinKernel : public ArgKernel {
 public:
  ArgMinKernel() : ArgKernel(false) {}
};

// ---------------------------------------------------------------- TopK

template <typename T>
void topk_typed(const T* x, T* values, int64_t* indices, const AxisSplit& s, int64_t k, bool largest,
                int threads) {
  const bool par = s.outer * s.inner > 1 && s.outer * s.n * s.inner >= kParallelThreshold && threads > 1;
  // Orders candidate positions: the better value first, ties by lower index.
  const auto before = [largest](T va, int64_t ia, T vb, int64_t ib) {
    if (largest ? greater_than(va, vb) : greater_than(vb, va)) return true;
    if (largest ? greater_than(vb, va) : greater_than(va, vb)) return false;
    return ia < ib;
  };
#pragma omp parallel for num_threads(threads) if (par) schedule(static)
  for (int64_t oi = 0; oi < s.outer * s.inner; ++oi) {
    const int64_t o = oi / s.inner, i = oi % s.inner;
    const T* col = x + o * s.n * s.inner + i;
    std::vector<int64_t> order(s.n);
    std::iota(order.begin(), order.end(), 0);
    const auto cmp = [&](int64_t a, int64_t b) { return before(col[a * s.inner], a, col[b * s.inner], b); };
    std::partial_sort(order.begin(), order.begin() + k, order.end(), cmp);
    T* vout = values + o * k * s.inner + i;
    int64_t* iout = indices + o * k * s.inner + i;
    for (int64_t j = 0; j < k; ++j) {
      vout[j * s.inner] = col[order[j] * s.inner];
      iout[j * s.inner] = order[j];
    }
  }
}

class TopKKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    opset_ = info.opset;
    axis_ = info.node.attr_int("axis", -1);
    largest_ = info.node.attr_int("largest", 1) != 0;
    k_attr_ = info.node.attr_int("k", -1);
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    if (!ctx.input(0)) return invalid_argument(node.describe(), ": missing input 'X'");
    int64_t k = k_attr_;
    if (opset_ >= 10) {
      if (!ctx.input(1)) return invalid_argument(node.describe(), ": missing input 'K'");
      HEARTH_ASSIGN_OR_RETURN(k, read_scalar_int(*ctx.input(1), node, "K"));
    }
    const DataType dtype = ctx.input(0)->dtype();
    const int64_t rank = static_cast<int64_t>(ctx.input(0)->rank());
    HEARTH_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(axis_, rank, node));
    HEARTH_ASSIGN_OR_RETURN(Tensor x, as_computable(*ctx.input(0), ctx.allocator()));
    const AxisSplit s = split_at(x.shape(), axis);
    if (k < 0 || k > s.n) {
      return invalid_argument(node.describe(), ": k = ", k, " is out of range for axis ", axis, " of size ", s.n);
    }
    Shape out_shape = x.shape();
    out_shape[axis] = k;
    Tensor values(x.dtype(), out_shape, ctx.allocator());
    Tensor& indices = ctx.allocate_output(1, DataType::kInt64, out_shape);
    if (values.numel() > 0) {
      HEARTH_RETURN_IF_ERROR(dispatch_arith(
          x.dtype(),
          [&](auto tag) -> Status {
            using T = decltype(tag);
            topk_typed(x.data<T>(), values.data<T>(), indices.data<int64_t>(), s, k, largest_, ctx.num_threads());
            return ok_status();
          },
          [&]() -> Status {
            return unimplemented(node.describe(), ": dtype ", dtype_name(x.dtype()), " is not supported");
          }));
    }
    return set_output_as(ctx, 0, values, dtype);
  }

 private:
  int64_t opset_ = 11;
  int64_t axis_ = -1;
  bool largest_ = true;
  int64_t k_attr_ = -1;
};

// ---------------------------------------------------------------- CumSum

template <typename T>
void cumsum_typed(const T* x, T* y, const AxisSplit& s, bool exclusive, bool reverse, int threads) {
  const bool par = s.outer > 1 && s.outer * s.n * s.inner >= kParallelThreshold && threads > 1;
#pragma omp parallel for num_threads(threads) if (par) schedule(static)
  for (int64_t o = 0; o < s.outer; ++o) {
    std::vector<T> run(s.inner, T(0));
    for (int64_t step = 0; step < s.n; ++step) {
      const int64_t k = reverse ? s.n - 1 - step : step;
      const T* in = x + (o * s.n + k) * s.inner;
      T* out = y + (o * s.n + k) * s.inner;
      for (int64_t i = 0; i < s.inner; ++i) {
        if (exclusive) {
          out[i] = run[i];
          run[i] = wrap_add(run[i], in[i]);
        } else {
          run[i] = wrap_add(run[i], in[i]);
          out[i] = run[i];
        }
      }
    }
  }
}

class CumSumKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    exclusive_ = info.node.attr_int("exclusive", 0) != 0;
    reverse_ = info.node.attr_int("reverse", 0) != 0;
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    if (!ctx.input(0) || !ctx.input(1)) return invalid_argument(node.describe(), ": needs inputs 'x' and 'axis'");
    HEARTH_ASSIGN_OR_RETURN(int64_t a, read_scalar_int(*ctx.input(1), node, "axis"));
    const DataType dtype = ctx.input(0)->dtype();
    HEARTH_ASSIGN_OR_RETURN(int64_t axis, normalize_axis(a, static_cast<int64_t>(ctx.input(0)->rank()), node));
    HEARTH_ASSIGN_OR_RETURN(Tensor x, as_computable(*ctx.input(0), ctx.allocator()));
    const AxisSplit s = split_at(x.shape(), axis);
    Tensor y(x.dtype(), x.shape(), ctx.allocator());
    if (y.numel() > 0) {
      HEARTH_RETURN_IF_ERROR(dispatch_arith(
          x.dtype(),
          [&](auto tag) -> Status {
            using T = decltype(tag);
            cumsum_typed(x.data<T>(), y.data<T>(), s, exclusive_, reverse_, ctx.num_threads());
            return ok_status();
          },
          [&]() -> Status {
            return unimplemented(node.describe(), ": dtype ", dtype_name(x.dtype()), " is not supported");
          }));
    }
    return set_output_as(ctx, 0, y, dtype);
  }

 private:
  bool exclusive_ = false;
  bool reverse_ = false;
};

std::vector<DataType> index_types() {
  return {DataType::kFloat, DataType::kDouble, DataType::kFloat16, DataType::kBFloat16, DataType::kInt8,
          DataType::kUInt8, DataType::kInt16, DataType::kUInt16, DataType::kInt32, DataType::kUInt32,
          DataType::kInt64, DataType::kUInt64};
}

}  // namespace

void register_reduce_index_kernels(KernelRegistry& r) {
  r.add({"ArgMax", "", 1, kMaxOpset, index_types(), kernel_factory<ArgMaxKernel>()});
  r.add({"ArgMin", "", 1, kMaxOpset, index_types(), kernel_factory<ArgMinKernel>()});
  r.add({"TopK", "", 1, kMaxOpset, index_types(), kernel_factory<TopKKernel>()});
  r.add({"CumSum", "", 11, kMaxOpset, index_types(), kernel_factory<CumSumKernel>()});
}

}  // namespace hearth
