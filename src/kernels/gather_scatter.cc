// Kernel family: gather, scatter part. ScatterND, ScatterElements and the
// deprecated Scatter (opsets 9-10). Output = copy of data with updates
// written (or reduced with add/mul/max/min) at the indexed positions.
#include <algorithm>
#include <cstring>

#include "kernels/kernel.h"
#include "kernels/shape_util.h"
#include "kernels/wrapping.h"

namespace hearth {
namespace {

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

Result<Reduction> parse_reduction(const std::string& s) {
  if (s == "none") return Reduction::kNone;
  if (s == "add") return Reduction::kAdd;
  if (s == "mul") return Reduction::kMul;
  if (s == "max") return Reduction::kMax;
  if (s == "min") return Reduction::kMin;
  return invalid_argument("unknown reduction '", s, "'");
}

template <typename V>
V reduce_arith(V a, V b, Reduction r) {
  switch (r) {
    case Reduction::kAdd: return wrap_add(a, b);
    case Reduction::kMul: return wrap_mul(a, b);
    case Reduction::kMax: return std::max(a, b);
    case Reduction::kMin: return std::min(a, b);
    default: return b;
  }
}

// a (op) b for any element type: 16-bit floats go through float, bool uses or/and.
template <typename T>
T reduce_value(T a, T b, Reduction r) {
  if constexpr (std::is_same_v<T, Float16>) {
    return T{float_to_half(reduce_arith(half_to_float(a.bits), half_to_float(b.bits), r))};
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    return T{float_to_bfloat16(reduce_arith(bfloat16_to_float(a.bits), bfloat16_to_float(b.bits), r))};
  } else if constexpr (std::is_same_v<T, bool>) {
    return (r == Reduction::kAdd || r == Reduction::kMax) ? (a || b) : (r == Reduction::kNone ? b : (a && b));
  } else {
    return reduce_arith(a, b, r);
  }
}

// Applies dst[dst_off[j] + e] (op)= upd[j * block + e] for every j, in order
// (later duplicates win for "none", as the ONNX reference does).
Status apply_updates(Tensor& out, const Tensor& upd, const std::vector<int64_t>& dst_off, int64_t block,
                     Reduction red, const char* op) {
  return dispatch_all(
      out.dtype(),
      [&](auto tag) -> Status {
        using T = decltype(tag);
        T* y = out.data<T>();
        const T* u = upd.data<T>();
        for (size_t j = 0; j < dst_off.size(); ++j) {
          T* d = y + dst_off[j];
          const T* s = u + static_cast<int64_t>(j) * block;
          if (red == Reduction::kNone) {
            std::copy(s, s + block, d);
          } else {
            for (int64_t e = 0; e < block; ++e) d[e] = reduce_value(d[e], s[e], red);
          }
        }
        return ok_status();
      },
      [&]() -> Status { return unimplemented(op, ": dtype ", dtype_name(out.dtype()), " is not supported"); });
}

// Output starts as a copy of data.
Tensor& copy_data_to_output(KernelContext& ctx, const Tensor& x) {
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  if (x.nbytes()) std::memcpy(y.raw_data(), x.raw_data(), x.nbytes());
  return y;
}

// ---- ScatterND -------------------------------------------------------------

class ScatterNDKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    if (info.opset >= 16) {
      HEARTH_ASSIGN_OR_RETURN(red_, parse_reduction(info.node.attr_string("reduction", "none")));
    }
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "data"));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* it, required_input(ctx, 1, "indices"));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* u, required_input(ctx, 2, "updates"));
    HEARTH_RETURN_IF_ERROR(check_movable(*x, "ScatterND", "data"));
    const size_t r = x->rank(), q = it->rank();
    if (q < 1) return invalid_argument("ScatterND: indices must have rank >= 1, got ", it->describe());
    const int64_t k = it->dim(q - 1);
    if (k < 0 || static_cast<size_t>(k) > r) {
      return invalid_argument("ScatterND: last indices dim ", k, " exceeds data rank ", r);
    }
    Shape want(it->shape().begin(), it->shape().end() - 1);
    want.insert(want.end(), x->shape().begin() + k, x->shape().end());
    if (u->dtype() != x->dtype() || u->shape() != want) {
      return invalid_argument("ScatterND: updates ", u->describe(), " must be ", dtype_name(x->dtype()),
                              shape_str(want));
    }
    const int64_t block = shape_numel(Shape(x->shape().begin() + k, x->shape().end()));
    if (x->numel() == 0 || u->numel() == 0) {  // nothing to write, however many tuples the shapes say
      copy_data_to_output(ctx, *x);
      return ok_status();
    }
    HEARTH_ASSIGN_OR_RETURN(std::vector<int64_t> idx, read_int64s(*it, "ScatterND: indices"));
    const std::vector<int64_t> xs = shape_strides(x->shape());
    const int64_t tuples = k == 0 ? shape_numel(Shape(it->shape().begin(), it->shape().end() - 1))
                                  : static_cast<int64_t>(idx.size()) / k;
    std::vector<int64_t> dst(static_cast<size_t>(tuples), 0);
    for (int64_t t = 0; t < tuples; ++t) {
      for (int64_t j = 0; j < k; ++j) {
        const size_t d = static_cast<size_t>(j);
        int64_t v = idx[static_cast<size_t>(t * k + j)];
        if (v < 0) v += x->dim(d);
        if (v < 0 || v >= x->dim(d)) {
          return invalid_argument("ScatterND: index ", idx[static_cast<size_t>(t * k + j)],
                                  " is out of range for axis ", d, " of size ", x->dim(d));
        }
        dst[static_cast<size_t>(t)] += v * xs[d];
      }
    }
    Tensor& y = copy_data_to_output(ctx, *x);
    return apply_updates(y, *u, dst, block, red_, "ScatterND");
  }

 private:
  Reduction red_ = Reduction::kNone;
};

// ---- ScatterElements / Scatter ---------------------------------------------

class ScatterElementsKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    axis_ = info.node.attr_int("axis", 0);
    if (info.node.op_type == "ScatterElements" && info.opset >= 16) {
      HEARTH_ASSIGN_OR_RETURN(red_, parse_reduction(info.node.attr_string("reduction", "none")));
    }
    op_ = info.node.op_type;
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    const char* op = op_.c_str();
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "data"));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* it, required_input(ctx, 1, "indices"));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* u, required_input(ctx, 2, "updates"));
    HEARTH_RETURN_IF_ERROR(check_movable(*x, op, "data"));
    const size_t rank = x->rank();
    HEARTH_ASSIGN_OR_RETURN(int64_t axis, normalize_axis_for(axis_, static_cast<int64_t>(rank), op));
    if (it->rank() != rank || u->shape() != it->shape() || u->dtype() != x->dtype()) {
      return invalid_argument(op, ": indices ", it->describe(), " and updates ", u->describe(),
                              " must share one shape of the rank of data ", x->describe());
    }
    for (size_t d = 0; d < rank; ++d) {
      if (static_cast<int64_t>(d) != axis && it->dim(d) > x->dim(d)) {
        return invalid_argument(op, ": indices ", it->describe(), " exceed data ", x->describe(), " in dim ", d);
      }
    }
    const size_t ax = static_cast<size_t>(axis);
    HEARTH_ASSIGN_OR_RETURN(std::vector<int64_t> idx, read_int64s(*it, "indices"));
    const std::vector<int64_t> xs = shape_strides(x->shape());
    std::vector<int64_t> pos(rank, 0);
    std::vector<int64_t> dst(idx.size());
    int64_t base = 0;
    for (size_t j = 0; j < idx.size(); ++j) {
      int64_t v = idx[j] < 0 ? idx[j] + x->dim(ax) : idx[j];
      if (v < 0 || v >= x->dim(ax)) {
        return invalid_argument(op, ": index ", idx[j], " is out of range for axis ", axis, " of size ", x->dim(ax));
      }
      dst[j] = base + v * xs[ax];
      for (size_t d = rank; d-- > 0;) {
        if (d != ax) base += xs[d];
        if (++pos[d] < it->dim(d)) break;
        if (d != ax) base -= xs[d] * it->dim(d);
        pos[d] = 0;
      }
    }
    Tensor& y = copy_data_to_output(ctx, *x);
    return apply_updates(y, *u, dst, 1, red_, op);
  }

 private:
  int64_t axis_ = 0;
  Reduction red_ = Reduction::kNone;
  std::string op_;
};

}  // namespace

void register_gather_scatter_kernels(KernelRegistry& r) {
  r.add({"ScatterND", "", 11, kMaxOpset, all_types(), kernel_factory<ScatterNDKernel>()});
  r.add({"ScatterElements", "", 11, kMaxOpset, all_types(), kernel_factory<ScatterElementsKernel>()});
  r.add({"Scatter", "", 9, 10, all_types(), kernel_factory<ScatterElementsKernel>()});
}

}  // namespace hearth
