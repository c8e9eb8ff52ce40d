// Kernel family: shape. Ops that only compute or relabel shapes (Reshape,
// Flatten, Squeeze, Unsqueeze return views of their input), ops that read a
// shape (Shape, Size) and small generators (ConstantOfShape, Range, EyeLike,
// Trilu). Data-moving shape ops live in shape_copy.cc and shape_slice.cc.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/kernel.h"
#include "kernels/register_all.h"
#include "kernels/shape_util.h"
#include "kernels/wrapping.h"

namespace hearth {
namespace {

// Writes the value 1 (true for bool) into element i of a T array.
template <typename T>
void set_one(T* p, int64_t i) {
  if constexpr (std::is_same_v<T, Float16>) {
    p[i].bits = float_to_half(1.0f);
  } else if constexpr (std::is_same_v<T, BFloat16>) {
    p[i].bits = float_to_bfloat16(1.0f);
  } else {
    p[i] = static_cast<T>(1);
  }
}

// ---- Reshape ---------------------------------------------------------------

// Resolves a Reshape target: 0 copies the input dim (unless allowzero), -1 is inferred.
Result<Shape> reshape_target(const Shape& in, const std::vector<int64_t>& spec, bool allowzero) {
  Shape out(spec.size());
  int64_t infer_at = -1, known = 1;
  for (size_t i = 0; i < spec.size(); ++i) {
    int64_t d = spec[i];
    if (d == 0 && !allowzero) {
      if (i >= in.size()) {
        return invalid_argument("Reshape: shape[", i, "] is 0 but the input ", shape_str(in), " has no dim ", i);
      }
      d = in[i];
    }
    if (d == -1) {
      if (infer_at >= 0) return invalid_argument("Reshape: shape has more than one -1");
      infer_at = static_cast<int64_t>(i);
      continue;
    }
    if (d < 0) return invalid_argument("Reshape: shape[", i, "] = ", d, " is negative");
    out[i] = d;
    if (mul_overflows(known, d, &known))
      return invalid_argument("Reshape: shape ", shape_str(spec), " has more elements than fit in 64 bits");
  }
  const int64_t numel = shape_numel(in);
  if (infer_at >= 0) {
    if (known == 0 || numel % known != 0) {
      return invalid_argument("Reshape: cannot infer the -1 dim reshaping ", shape_str(in), " to ",
                              shape_str(spec));
    }
    out[static_cast<size_t>(infer_at)] = numel / known;
  } else if (known != numel) {
    return invalid_argument("Reshape: cannot reshape ", shape_str(in), " (", numel, " elements) to ",
                            shape_str(out), " (", known, " elements)");
  }
  return out;
}

// Sets output 0 to a view of `x` with `shape`.
Status set_view(KernelContext& ctx, const Tensor& x, Shape shape) {
  HEARTH_ASSIGN_OR_RETURN(Tensor y, x.reshaped(std::move(shape)));
  ctx.set_output(0, std::move(y));
  return ok_status();
}

class ReshapeKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    allowzero_ = info.opset >= 14 && info.node.attr_int("allowzero", 0) != 0;
    shape_from_attr_ = info.opset < 5;
    if (shape_from_attr_) attr_shape_ = info.node.attr_ints("shape");
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "data"));
    std::vector<int64_t> spec = attr_shape_;
    if (!shape_from_attr_) {
      HEARTH_ASSIGN_OR_RETURN(const Tensor* s, required_input(ctx, 1, "shape"));
      HEARTH_ASSIGN_OR_RETURN(spec, read_int64s(*s, "Reshape: shape"));
    }
    HEARTH_ASSIGN_OR_RETURN(Shape out, reshape_target(x->shape(), spec, allowzero_));
    return set_view(ctx, *x, std::move(out));
  }

 private:
  bool allowzero_ = false;
  bool shape_from_attr_ = false;
  std::vector<int64_t> attr_shape_;
};

// ---- Flatten / Squeeze / Unsqueeze -----------------------------------------

class FlattenKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    axis_ = info.node.attr_int("axis", 1);
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "input"));
    const int64_t rank = static_cast<int64_t>(x->rank());
    const int64_t axis = axis_ < 0 ? axis_ + rank : axis_;
    if (axis < 0 || axis > rank) return invalid_argument("Flatten: axis ", axis_, " is out of range for rank ", rank);
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < rank; ++d) (d < axis ? outer : inner) *= x->dim(static_cast<size_t>(d));
    return set_view(ctx, *x, {outer, inner});
  }

 private:
  int64_t axis_ = 1;
};

// Squeeze and Unsqueeze take axes from an attribute before opset 13, from input 1 after.
class AxesKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    axes_from_input_ = info.opset >= 13;
    has_attr_axes_ = info.node.has_attr("axes");
    attr_axes_ = info.node.attr_ints("axes");
    return ok_status();
  }

 protected:
  // Returns the axes, or nullopt-like empty + has=false when none were given.
  Result<bool> read_axes(const KernelContext& ctx, std::vector<int64_t>& axes) const {
    if (!axes_from_input_) {
      axes = attr_axes_;
      return has_attr_axes_;
    }
    const Tensor* a = ctx.input(1);
    if (!a) return false;
    HEARTH_ASSIGN_OR_RETURN(axes, read_int64s(*a, "axes"));
    return true;
  }

 private:
  bool axes_from_input_ = false;
  bool has_attr_axes_ = false;
  std::vector<int64_t> attr_axes_;
};

class SqueezeKernel : public AxesKernel {
 public:
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "data"));
    std::vector<int64_t> axes;
    HEARTH_ASSIGN_OR_RETURN(bool given, read_axes(ctx, axes));
    const int64_t rank = static_cast<int64_t>(x->rank());
    std::vector<bool> drop(x->rank(), false);
    if (!given) {
      for (size_t d = 0; d < x->rank(); ++d) drop[d] = x->dim(d) == 1;
    }
    for (int64_t a : axes) {
      HEARTH_ASSIGN_OR_RETURN(int64_t axis, normalize_axis_for(a, rank, "Squeeze"));
      if (x->dim(static_cast<size_t>(axis)) != 1) {
        return invalid_argument("Squeeze: axis ", a, " of input ", x->describe(), " has size ",
                                x->dim(static_cast<size_t>(axis)), ", not 1");
      }
      drop[static_cast<size_t>(axis)] = true;
    }
    Shape out;
    for (size_t d = 0; d < x->rank(); ++d)
      if (!drop[d]) out.push_back(x->dim(d));
    return set_view(ctx, *x, std::move(out));
  }
};

class UnsqueezeKernel : public AxesKernel {
 public:
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "data"));
    std::vector<int64_t> axes;
    HEARTH_ASSIGN_OR_RETURN(bool given, read_axes(ctx, axes));
    if (!given) return invalid_argument("Unsqueeze: axes are required");
    const int64_t out_rank = static_cast<int64_t>(x->rank() + axes.size());
    std::vector<bool> inserted(static_cast<size_t>(out_rank), false);
    for (int64_t a : axes) {
      HEARTH_ASSIGN_OR_RETURN(int64_t axis, normalize_axis_for(a, out_rank, "Unsqueeze"));
      if (inserted[static_cast<size_t>(axis)]) return invalid_argument("Unsqueeze: axis ", a, " is repeated");
      inserted[static_cast<size_t>(axis)] = true;
    }
    Shape out;
    size_t next = 0;
    for (size_t d = 0; d < inserted.size(); ++d) out.push_back(inserted[d] ? 1 : x->dim(next++));
    return set_view(ctx, *x, std::move(out));
  }
};

// ---- Shape / Size ----------------------------------------------------------

class ShapeKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    if (info.opset >= 15) {
      start_ = info.node.attr_int("start", 0);
      has_end_ = info.node.has_attr("end");
      end_ = info.node.attr_int("end", 0);
    }
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "data"));
    const int64_t rank = static_cast<int64_t>(x->rank());
    auto clamp_dim = [rank](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank); };
    const int64_t start = clamp_dim(start_);
    const int64_t end = has_end_ ? clamp_dim(end_) : rank;
    const int64_t n = std::max<int64_t>(end - start, 0);
    Tensor& y = ctx.allocate_output(0, DataType::kInt64, {n});
    for (int64_t i = 0; i < n; ++i) y.data<int64_t>()[i] = x->dim(static_cast<size_t>(start + i));
    return ok_status();
  }

 private:
  int64_t start_ = 0;
  bool has_end_ = false;
  int64_t end_ = 0;
};

class SizeKernel : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "data"));
    Tensor& y = ctx.allocate_output(0, DataType::kInt64, {});
    *y.data<int64_t>() = x->numel();
    return ok_status();
  }
};

// ---- ConstantOfShape / Range / EyeLike / Trilu ----------------------------

// Diagonal offsets past every possible row and column; bounding them keeps i + k exact.
constexpr int64_t kMaxDiagonal = int64_t{1} << 62;

class ConstantOfShapeKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    const Attribute* a = info.node.attr("value");
    if (a && a->t.defined()) {
      if (a->t.numel() != 1) return invalid_argument("value must have one element, got ", a->t.describe());
      HEARTH_RETURN_IF_ERROR(check_movable(a->t, "ConstantOfShape", "value"));
      value_ = a->t;
    } else {
      value_ = Tensor::scalar<float>(0.0f);
    }
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* s, required_input(ctx, 0, "input"));
    HEARTH_ASSIGN_OR_RETURN(Shape shape, read_int64s(*s, "ConstantOfShape: input"));
    for (int64_t d : shape)
      if (d < 0) return invalid_argument("ConstantOfShape: negative dim ", d, " in shape ", shape_str(shape));
    Tensor& y = ctx.allocate_output(0, value_.dtype(), shape);
    const int64_t n = y.numel();
    return dispatch_bytes(dtype_size(value_.dtype()), [&](auto tag) {
      using U = decltype(tag);
      U v;
      std::memcpy(&v, value_.raw_data(), sizeof(U));
      std::fill(y.data<U>(), y.data<U>() + n, v);
    });
  }

 private:
  Tensor value_;
};

class RangeKernel : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    const Tensor* in[3];
    static const char* kNames[3] = {"start", "limit", "delta"};
    for (size_t i = 0; i < 3; ++i) {
      HEARTH_ASSIGN_OR_RETURN(in[i], required_input(ctx, i, kNames[i]));
      if (in[i]->numel() != 1) return invalid_argument("Range: ", kNames[i], " must be a scalar, got ", in[i]->describe());
      if (in[i]->dtype() != in[0]->dtype()) return invalid_argument("Range: inputs must share one dtype");
    }
    const DataType dt = in[0]->dtype();
    return dispatch_arith(
        dt,
        [&](auto tag) -> Status {
          using T = decltype(tag);
          const T start = *in[0]->data<T>(), limit = *in[1]->data<T>(), delta = *in[2]->data<T>();
          if (delta == T(0)) return invalid_argument("Range: delta is zero");
          const double count = std::ceil((static_cast<double>(limit) - static_cast<double>(start)) /
                                         static_cast<double>(delta));
          if (!(count < 1e12)) return invalid_argument("Range: output would have ", count, " elements");
          const int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
          Tensor& y = ctx.allocate_output(0, dt, {n});
          // start + i * delta lies in [start, limit); only the product may leave the type: wrap it.
          for (int64_t i = 0; i < n; ++i) y.data<T>()[i] = wrap_add(start, wrap_mul(static_cast<T>(i), delta));
          return ok_status();
        },
        [&]() -> Status { return unimplemented("Range: dtype ", dtype_name(dt), " is not supported"); });
  }
};

class EyeLikeKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    dtype_ = static_cast<DataType>(info.node.attr_int("dtype", 0));
    if (dtype_ != DataType::kUndefined && !dtype_is_supported(dtype_)) {
      return unimplemented("EyeLike: dtype ", dtype_name(dtype_), " is not supported");
    }
    k_ = info.node.attr_int("k", 0);
    if (k_ < -kMaxDiagonal || k_ > kMaxDiagonal)
      return invalid_argument("EyeLike: k ", k_, " is outside [", -kMaxDiagonal, ", ", kMaxDiagonal, "]");
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "input"));
    if (x->rank() != 2) return invalid_argument("EyeLike: input must be 2-D, got ", x->describe());
    const DataType dt = dtype_ == DataType::kUndefined ? x->dtype() : dtype_;
    HEARTH_RETURN_IF_ERROR(check_movable(*x, "EyeLike", "input"));
    Tensor& y = ctx.allocate_output(0, dt, x->shape());
    std::memset(y.raw_data(), 0, y.nbytes());
    const int64_t rows = x->dim(0), cols = x->dim(1);
    return dispatch_all(
        dt,
        [&](auto tag) -> Status {
          using T = decltype(tag);
          for (int64_t i = std::max<int64_t>(0, -k_); i < rows && i + k_ < cols; ++i) set_one(y.data<T>(), i * cols + i + k_);
          return ok_status();
        },
        [&]() -> Status { return unimplemented("EyeLike: dtype ", dtype_name(dt), " is not supported"); });
  }

 private:
  DataType dtype_ = DataType::kUndefined;
  int64_t k_ = 0;
};

class TriluKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    upper_ = info.node.attr_int("upper", 1) != 0;
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0, "input"));
    HEARTH_RETURN_IF_ERROR(check_movable(*x, "Trilu", "input"));
    if (x->rank() < 2) return invalid_argument("Trilu: input must have rank >= 2, got ", x->describe());
    int64_t k = 0;
    if (const Tensor* kt = ctx.input(1)) {
      HEARTH_ASSIGN_OR_RETURN(k, read_int64_scalar(*kt, "Trilu: k"));
    }
    k = std::clamp(k, -kMaxDiagonal, kMaxDiagonal);  // beyond every row and column either way
    Tensor& y = ctx.allocate_output(0, x->dtype(), x->shape());
    const int64_t rows = x->dim(x->rank() - 2), cols = x->dim(x->rank() - 1);
    const int64_t mats = rows * cols == 0 ? 0 : x->numel() / (rows * cols);
    const size_t es = dtype_size(x->dtype());
    const auto* src = static_cast<const uint8_t*>(x->raw_data());
    auto* dst = static_cast<uint8_t*>(y.raw_data());
    for (int64_t m = 0; m < mats; ++m) {
      for (int64_t i = 0; i < rows; ++i) {
        // Kept columns: upper keeps j >= i + k, lower keeps j <= i + k.
        const int64_t lo = upper_ ? std::clamp<int64_t>(i + k, 0, cols) : 0;
        const int64_t hi = upper_ ? cols : std::clamp<int64_t>(i + k + 1, 0, cols);
        const size_t row = static_cast<size_t>((m * rows + i) * cols) * es;
        std::memset(dst + row, 0, static_cast<size_t>(cols) * es);
        if (hi > lo) {
          std::memcpy(dst + row + static_cast<size_t>(lo) * es, src + row + static_cast<size_t>(lo) * es,
                      static_cast<size_t>(hi - lo) * es);
        }
      }
    }
    return ok_status();
  }

 private:
  bool upper_ = true;
};

}  // namespace

void register_shape_kernels(KernelRegistry& r) {
  r.add({"Reshape", "", 1, kMaxOpset, all_types(), kernel_factory<ReshapeKernel>()});
  r.add({"Flatten", "", 1, kMaxOpset, all_types(), kernel_factory<FlattenKernel>()});
  r.add({"Squeeze", "", 1, kMaxOpset, all_types(), kernel_factory<SqueezeKernel>()});
  r.add({"Unsqueeze", "", 1, kMaxOpset, all_types(), kernel_factory<UnsqueezeKernel>()});
  r.add({"Shape", "", 1, kMaxOpset, all_types(), kernel_factory<ShapeKernel>()});
  r.add({"Size", "", 1, kMaxOpset, all_types(), kernel_factory<SizeKernel>()});
  r.add({"ConstantOfShape", "", 9, kMaxOpset, all_types(), kernel_factory<ConstantOfShapeKernel>()});
  r.add({"Range", "", 11, kMaxOpset, {DataType::kFloat, DataType::kDouble, DataType::kInt16, DataType::kInt32,
                                      DataType::kInt64}, kernel_factory<RangeKernel>()});
  r.add({"EyeLike", "", 9, kMaxOpset, all_types(), kernel_factory<EyeLikeKernel>()});
  r.add({"Trilu", "", 14, kMaxOpset, all_types(), kernel_factory<TriluKernel>()});
  register_shape_copy_kernels(r);
  register_shape_slice_kernels(r);
}

}  // namespace hearth
