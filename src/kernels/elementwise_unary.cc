// Unary math ops: Abs, Neg, Floor, Ceil, Round, Sqrt, Reciprocal, Exp, Log,
// trigonometric and hyperbolic functions, Erf, Sign, IsNaN, IsInf, Not, Identity.

// SIMD: the build's -ftrapping-math keeps GCC from if-converting the selects
// in these elementwise loops; no kernel here reads floating-point exception flags.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <cmath>

#include "kernels/elementwise_common.h"
#include "kernels/wrapping.h"
#include "kernels/elementwise_fastmath.h"

namespace hearth {
namespace {

struct AbsOp {
  static constexpr TypeSet kTypes = TypeSet::kNumeric;
  template <typename C>
  C operator()(C x) const { return wrap_abs(x); }
};

struct NegOp {
  static constexpr TypeSet kTypes = TypeSet::kSigned;
  template <typename C>
  C operator()(C x) const {
    if constexpr (std::is_integral_v<C>) {
      using U = std::make_unsigned_t<C>;
      return static_cast<C>(U(0) - static_cast<U>(x));  // wraps for the minimum value
    } else {
      return -x;
    }
  }
};

struct SignOp {
  static constexpr TypeSet kTypes = TypeSet::kNumeric;
  template <typename C>
  C operator()(C x) const {
    if constexpr (std::is_unsigned_v<C>) return x > 0 ? C(1) : C(0);
    else if constexpr (std::is_floating_point_v<C>) return std::isnan(x) ? x : C((x > 0) - (x < 0));
    else return C((x > 0) - (x < 0));
  }
};

// Float-only ops that map to one <cmath> function. Float is computed in float,
// double in double.
#define HEARTH_FLOAT_UNARY(Name, expr)                 \
  struct Name {                                       \
    static constexpr TypeSet kTypes = TypeSet::kFloat; \
    template <typename C>                             \
    C operator()(C x) const {                         \
      return expr;                                    \
    }                                                 \
  };

HEARTH_FLOAT_UNARY(FloorOp, std::floor(x))
HEARTH_FLOAT_UNARY(CeilOp, std::ceil(x))
HEARTH_FLOAT_UNARY(RoundOp, std::nearbyint(x))  // default rounding mode: half to even
HEARTH_FLOAT_UNARY(SqrtOp, std::sqrt(x))
HEARTH_FLOAT_UNARY(ReciprocalOp, C(1) / x)
HEARTH_FLOAT_UNARY(ExpOp, fast_exp(x))
HEARTH_FLOAT_UNARY(LogOp, std::log(x))
HEARTH_FLOAT_UNARY(SinOp, std::sin(x))
HEARTH_FLOAT_UNARY(CosOp, std::cos(x))
HEARTH_FLOAT_UNARY(TanOp, std::tan(x))
HEARTH_FLOAT_UNARY(AsinOp, std::asin(x))
HEARTH_FLOAT_UNARY(AcosOp, std::acos(x))
HEARTH_FLOAT_UNARY(AtanOp, std::atan(x))
HEARTH_FLOAT_UNARY(SinhOp, std::sinh(x))
HEARTH_FLOAT_UNARY(CoshOp, std::cosh(x))
HEARTH_FLOAT_UNARY(AsinhOp, std::asinh(x))
HEARTH_FLOAT_UNARY(AcoshOp, std::acosh(x))
HEARTH_FLOAT_UNARY(AtanhOp, std::atanh(x))
#undef HEARTH_FLOAT_UNARY

// Erf since opset 9 also accepts integer inputs (computed in double, then truncated).
struct ErfAnyOp {
  static constexpr TypeSet kTypes = TypeSet::kNumeric;
  template <typename C>
  C operator()(C x) const {
    if constexpr (std::is_same_v<C, float>) return fast_erff(x);
    else if constexpr (std::is_floating_point_v<C>) return std::erf(x);
    else return static_cast<C>(std::erf(static_cast<double>(x)));
  }
};

// Kernels whose output is bool: IsNaN, IsInf, Not.
template <typename Pred>
Status bool_map(KernelContext& ctx, TypeSet types, const Pred& pred) {
  HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0));
  return dispatch_all(
      x->dtype(),
      [&](auto tag) -> Status {
        using T = decltype(tag);
        if (!type_in_set<T>(types)) return unsupported_dtype(ctx, x->dtype());
        Tensor& y = ctx.allocate_output(0, DataType::kBool, x->shape());
        unary_map(x->data<T>(), y.data<bool>(), x->numel(), ctx.num_threads(),
                  [&](compute_t<T> v) { return pred(v); });
        return ok_status();
      },
      [&]() -> Status { return unsupported_dtype(ctx, x->dtype()); });
}

class IsNaNKernel final : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    return bool_map(ctx, TypeSet::kFloat, [](auto v) {
      if constexpr (std::is_floating_point_v<decltype(v)>) return std::isnan(v);
      else return false;
    });
  }
};

class IsInfKernel final : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    pos_ = info.node.attr_int("detect_positive", 1) != 0;
    neg_ = info.node.attr_int("detect_negative", 1) != 0;
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    return bool_map(ctx, TypeSet::kFloat, [&](auto v) {
      if constexpr (std::is_floating_point_v<decltype(v)>) return std::isinf(v) && (v > 0 ? pos_ : neg_);
      else return false;
    });
  }

 private:
  bool pos_ = true, neg_ = true;
};

class NotKernel final : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0));
    if (x->dtype() != DataType::kBool) return unsupported_dtype(ctx, x->dtype());
    Tensor& y = ctx.allocate_output(0, DataType::kBool, x->shape());
    unary_map(x->data<bool>(), y.data<bool>(), x->numel(), ctx.num_threads(), [](bool v) { return !v; });
    return ok_status();
  }
};

// Identity (and inference-time no-ops): the output shares the input's memory.
class IdentityKernel final : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0));
    ctx.set_output(0, *x);
    return ok_status();
  }
};

template <typename Op>
KernelFactory pointwise() {
  return kernel_factory<PointwiseKernel<Op>>();
}

}  // namespace

void register_elementwise_unary(KernelRegistry& r) {
  const auto num = numeric_types();
  const auto flt = float_types();
  r.add({"Abs", "", 6, kMaxOpset, num, pointwise<AbsOp>()});
  r.add({"Neg", "", 6, kMaxOpset, num, pointwise<NegOp>()});
  r.add({"Sign", "", 9, kMaxOpset, num, pointwise<SignOp>()});
  r.add({"Floor", "", 6, kMaxOpset, flt, pointwise<FloorOp>()});
  r.add({"Ceil", "", 6, kMaxOpset, flt, pointwise<CeilOp>()});
  r.add({"Round", "", 11, kMaxOpset, flt, pointwise<RoundOp>()});
  r.add({"Sqrt", "", 6, kMaxOpset, flt, pointwise<SqrtOp>()});
  r.add({"Reciprocal", "", 6, kMaxOpset, flt, pointwise<ReciprocalOp>()});
  r.add({"Exp", "", 6, kMaxOpset, flt, pointwise<ExpOp>()});
  r.add({"Log", "", 6, kMaxOpset, flt, pointwise<LogOp>()});
  r.add({"Sin", "", 7, kMaxOpset, flt, pointwise<SinOp>()});
  r.add({"Cos", "", 7, kMaxOpset, flt, pointwise<CosOp>()});
  r.add({"Tan", "", 7, kMaxOpset, flt, pointwise<TanOp>()});
  r.add({"Asin", "", 7, kMaxOpset, flt, pointwise<AsinOp>()});
  r.add({"Acos", "", 7, kMaxOpset, flt, pointwise<AcosOp>()});
  r.add({"Atan", "", 7, kMaxOpset, flt, pointwise<AtanOp>()});
  r.add({"Sinh", "", 9, kMaxOpset, flt, pointwise<SinhOp>()});
  r.add({"Cosh", "", 9, kMaxOpset, flt, pointwise<CoshOp>()});
  r.add({"Asinh", "", 9, kMaxOpset, flt, pointwise<AsinhOp>()});
  r.add({"Acosh", "", 9, kMaxOpset, flt, pointwise<AcoshOp>()});
  r.add({"Atanh", "", 9, kMaxOpset, flt, pointwise<AtanhOp>()});
  r.add({"Erf", "", 9, kMaxOpset, num, pointwise<ErfAnyOp>()});
  r.add({"IsNaN", "", 9, kMaxOpset, flt, kernel_factory<IsNaNKernel>()});
  r.add({"IsInf", "", 10, kMaxOpset, flt, kernel_factory<IsInfKernel>()});
  r.add({"Not", "", 1, kMaxOpset, {DataType::kBool}, kernel_factory<NotKernel>()});
  r.add({"Identity", "", 1, kMaxOpset, all_types(), kernel_factory<IdentityKernel>()});
}

}  // namespace hearth
