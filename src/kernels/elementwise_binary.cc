// Binary ops with numpy broadcasting: Add, Sub, Mul, Div, Mod, BitShift,
// And, Or, Xor, Equal, Less, Greater, LessOrEqual, GreaterOrEqual, Pow.

// SIMD: the build's -ftrapping-math keeps GCC from if-converting the selects
// in these elementwise loops; no kernel here reads floating-point exception flags.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/broadcast.h"
#include "kernels/wrapping.h"
#include "kernels/elementwise_common.h"

namespace hearth {
namespace {

struct AddOp {
  static constexpr TypeSet kTypes = TypeSet::kNumeric;
  static constexpr bool kBoolOut = false;
  template <typename C>
  C operator()(C a, C b) const { return wrap_add(a, b); }
};
struct SubOp {
  static constexpr TypeSet kTypes = TypeSet::kNumeric;
  static constexpr bool kBoolOut = false;
  template <typename C>
  C operator()(C a, C b) const { return wrap_sub(a, b); }
};
struct MulOp {
  static constexpr TypeSet kTypes = TypeSet::kNumeric;
  static constexpr bool kBoolOut = false;
  template <typename C>
  C operator()(C a, C b) const { return wrap_mul(a, b); }
};
// Integer division truncates toward zero (C semantics, as ONNX's tests expect);
// division by zero gives 0 instead of trapping.
struct DivOp {
  static constexpr TypeSet kTypes = TypeSet::kNumeric;
  static constexpr bool kBoolOut = false;
  template <typename C>
  C operator()(C a, C b) const {
    if constexpr (std::is_integral_v<C>) {
      if (b == 0) return C(0);
      if constexpr (std::is_signed_v<C>) {
        if (b == C(-1)) return wrap_sub(C(0), a);
      }
      return static_cast<C>(a / b);
    } else {
      return a / b;
    }
  }
};

// Mod: fmod=1 gives the sign of the dividend (C fmod / %); fmod=0 the sign of
// the divisor (Python / numpy). Integer modulo by zero gives 0.
struct ModOp {
  static constexpr TypeSet kTypes = TypeSet::kNumeric;
  static constexpr bool kBoolOut = false;
  bool fmod = false;
  Status init(const KernelInfo& info) {
    fmod = info.node.attr_int("fmod", 0) != 0;
    return ok_status();
  }
  template <typename C>
  C operator()(C a, C b) const {
    C r;
    if constexpr (std::is_integral_v<C>) {
      if (b == 0) return C(0);
      if constexpr (std::is_signed_v<C>) {
        if (b == C(-1)) return C(0);
      }
      r = static_cast<C>(a % b);
    } else {
      r = std::fmod(a, b);
    }
    if constexpr (std::is_signed_v<C> || std::is_floating_point_v<C>) {
      if (!fmod && r != C(0) && ((r < C(0)) != (b < C(0)))) r = static_cast<C>(r + b);
    }
    return r;
  }
};

struct BitShiftOp {
  static constexpr TypeSet kTypes = TypeSet::kNumeric;
  static constexpr bool kBoolOut = false;
  bool left = true;
  Status init(const KernelInfo& info) {
    std::string d = info.node.attr_string("direction", "");
    if (d != "LEFT" && d != "RIGHT") return invalid_argument("BitShift direction must be LEFT or RIGHT, got '", d, "'");
    left = d == "LEFT";
    return ok_status();
  }
  template <typename C>
  C operator()(C a, C b) const {
    if constexpr (std::is_integral_v<C> && std::is_unsigned_v<C>) {
      if (b >= sizeof(C) * 8) return C(0);
      return left ? static_cast<C>(a << b) : static_cast<C>(a >> b);
    } else {
      return a;  // rejected by the dtype check in BinaryKernel
    }
  }
};

#define HEARTH_BOOL_BINARY(Name, Types, expr)  \
  struct Name {                                \
    static constexpr TypeSet kTypes = Types;   \
    static constexpr bool kBoolOut = true;     \
    template <typename C>                      \
    bool operator()(C a, C b) const {          \
      return expr;                             \
    }                                          \
  };
HEARTH_BOOL_BINARY(AndOp, TypeSet::kAll, a && b)
HEARTH_BOOL_BINARY(OrOp, TypeSet::kAll, a || b)
HEARTH_BOOL_BINARY(XorOp, TypeSet::kAll, a != b)
HEARTH_BOOL_BINARY(EqualOp, TypeSet::kAll, a == b)
HEARTH_BOOL_BINARY(LessOp, TypeSet::kNumeric, a < b)
HEARTH_BOOL_BINARY(GreaterOp, TypeSet::kNumeric, a > b)
HEARTH_BOOL_BINARY(LessOrEqualOp, TypeSet::kNumeric, a <= b)
HEARTH_BOOL_BINARY(GreaterOrEqualOp, TypeSet::kNumeric, a >= b)
#undef HEARTH_BOOL_BINARY

// Two inputs of one element type, broadcast; output of that type or bool.
// `only` restricts the accepted input types further (e.g. bool for And,
// unsigned for BitShift); empty means Op::kTypes alone decides.
template <typename Op>
class BinaryKernel final : public Kernel {
 public:
  explicit BinaryKernel(std::vector<DataType> only = {}) : only_(std::move(only)) {}

  Status init(const KernelInfo& info) override {
    if constexpr (requires(Op o) { o.init(info); }) return op_.init(info);
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* a, required_input(ctx, 0));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* b, required_input(ctx, 1));
    if (a->dtype() != b->dtype()) {
      return invalid_argument(ctx.node().describe(), ": input types differ (", a->describe(), " and ",
                              b->describe(), ")");
    }
    if (!only_.empty() && std::find(only_.begin(), only_.end(), a->dtype()) == only_.end()) {
      return unsupported_dtype(ctx, a->dtype());
    }
    auto plan = make_broadcast_plan({a->shape(), b->shape()});
    if (!plan.ok()) return plan.status().with_context(ctx.node().describe());
    return dispatch_all(
        a->dtype(),
        [&](auto tag) -> Status {
          using T = decltype(tag);
          if constexpr (type_in_set<T>(Op::kTypes)) {
            using O = std::conditional_t<Op::kBoolOut, bool, T>;
            // An operand of the output's shape that dies here holds the result (each
            // element is read before the same element is written).
            const DataType odt = dtype_of<O>();
            const size_t over = ctx.can_donate(1, odt, plan->out_shape) && b->shape() == plan->out_shape ? 1 : 0;
            Tensor& y = (over == 1 || a->shape() == plan->out_shape)
                            ? ctx.allocate_output_over_input(0, over, odt, plan->out_shape)
                            : ctx.allocate_output(0, odt, plan->out_shape);
            broadcast_map2(*plan, a->data<T>(), b->data<T>(), y.data<O>(), ctx.num_threads(),
                           [this](T x, T z) -> O {
                             if constexpr (is_half_v<T>) return store_value<O>(op_(load_value(x), load_value(z)));
                             else return op_(x, z);
                           });
            return ok_status();
          } else {
            return unsupported_dtype(ctx, a->dtype());
          }
        },
        [&]() -> Status { return unsupported_dtype(ctx, a->dtype()); });
  }

 private:
  Op op_;
  std::vector<DataType> only_;
};

template <typename Op>
KernelFactory binary(std::vector<DataType> only = {}) {
  return [only](const KernelInfo& info) -> Result<std::unique_ptr<Kernel>> {
    auto k = std::make_unique<BinaryKernel<Op>>(only);
    Status s = k->init(info);
    if (!s.ok()) return s.with_context(info.node.describe());
    return std::unique_ptr<Kernel>(std::move(k));
  };
}

// Integer power by squaring; negative exponents truncate toward zero like C.
template <typename I>
I int_pow(I base, int64_t e) {
  if (e < 0) {
    if (base == 1) return 1;
    if constexpr (std::is_signed_v<I>) {
      if (base == -1) return (e % 2) ? I(-1) : I(1);
    }
    return 0;
  }
  using U = WrapType<I>;
  U result = 1, b = static_cast<U>(base);
  while (e) {
    if (e & 1) result *= b;
    b *= b;
    e >>= 1;
  }
  return static_cast<I>(result);
}

template <typename E>
Result<Tensor> exponent_as(const Tensor& b) {
  if (b.dtype() == dtype_of<E>()) return b;
  return cast_tensor(b, dtype_of<E>());
}

// Common exponents get exact, vectorizable loops.
template <typename T>
Status pow_scalar_exponent(const Tensor& a, compute_t<T> p, Tensor& y, int nt) {
  using C = compute_t<T>;
  const T* x = a.data<T>();
  T* out = y.data<T>();
  const int64_t n = a.numel();
  if (p == C(2)) unary_map(x, out, n, nt, [](C v) { return v * v; });
  else if (p == C(1)) unary_map(x, out, n, nt, [](C v) { return v; });
  else if (p == C(0.5)) unary_map(x, out, n, nt, [](C v) { return std::sqrt(v); });
  else if (p == C(3)) unary_map(x, out, n, nt, [](C v) { return v * v * v; });
  else unary_map(x, out, n, nt, [p](C v) { return std::pow(v, p); });
  return ok_status();
}

// Pow of a base of type T (free functions, not members: clang 14 leaves member
// templates used from generic lambdas uninstantiated).
template <typename T>
Status pow_typed(KernelContext& ctx, const Tensor& a, const Tensor& b, const BroadcastPlan& plan, Tensor& y) {
  const int nt = ctx.num_threads();
  if constexpr (is_floatlike_v<T>) {
    using C = compute_t<T>;
    HEARTH_ASSIGN_OR_RETURN(Tensor e, exponent_as<C>(b));
    if (plan.is_scalar(1) && plan.is_contiguous(0)) return pow_scalar_exponent<T>(a, e.data<C>()[0], y, nt);
    broadcast_map2(plan, a.data<T>(), e.data<C>(), y.data<T>(), nt,
                   [](T x, C p) { return store_value<T>(std::pow(load_value(x), p)); });
  } else if (dtype_is_integer(b.dtype())) {
    HEARTH_ASSIGN_OR_RETURN(Tensor e, exponent_as<int64_t>(b));
    broadcast_map2(plan, a.data<T>(), e.data<int64_t>(), y.data<T>(), nt,
                   [](T x, int64_t p) { return int_pow<T>(x, p); });
  } else {
    HEARTH_ASSIGN_OR_RETURN(Tensor e, exponent_as<double>(b));
    broadcast_map2(plan, a.data<T>(), e.data<double>(), y.data<T>(), nt, [](T x, double p) {
      const double r = std::pow(static_cast<double>(x), p);
      return std::isfinite(r) ? saturating_cast<T>(r) : T(0);
    });
  }
  return ok_status();
}

// Pow: output has the base's type; the exponent may be any numeric type
// (opset 12+). The exponent is first converted to the base's compute type
// (float/double) or to int64 (integer base with integer exponent) or double.
class PowKernel final : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* a, required_input(ctx, 0));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* b, required_input(ctx, 1));
    auto plan = make_broadcast_plan({a->shape(), b->shape()});
    if (!plan.ok()) return plan.status().with_context(ctx.node().describe());
    if (!dtype_is_float(b->dtype()) && !dtype_is_integer(b->dtype())) return unsupported_dtype(ctx, b->dtype());
    return dispatch_all(
        a->dtype(),
        [&](auto tag) -> Status {
          using T = decltype(tag);
          if constexpr (std::is_same_v<T, bool>) {
            return unsupported_dtype(ctx, a->dtype());
          } else {
            Tensor& y = ctx.allocate_output(0, a->dtype(), plan->out_shape);
            return pow_typed<T>(ctx, *a, *b, *plan, y);
          }
        },
        [&]() -> Status { return unsupported_dtype(ctx, a->dtype()); });
  }
};

std::vector<DataType> unsigned_types() {
  return {DataType::kUInt8, DataType::kUInt16, DataType::kUInt32, DataType::kUInt64};
}

}  // namespace

void register_elementwise_binary(KernelRegistry& r) {
  const auto num = numeric_types();
  const std::vector<DataType> boolean = {DataType::kBool};
  r.add({"Add", "", 7, kMaxOpset, num, binary<AddOp>()});
  r.add({"Sub", "", 7, kMaxOpset, num, binary<SubOp>()});
  r.add({"Mul", "", 7, kMaxOpset, num, binary<MulOp>()});
  r.add({"Div", "", 7, kMaxOpset, num, binary<DivOp>()});
  r.add({"Mod", "", 10, kMaxOpset, num, binary<ModOp>()});
  r.add({"BitShift", "", 11, kMaxOpset, unsigned_types(), binary<BitShiftOp>(unsigned_types())});
  r.add({"And", "", 7, kMaxOpset, boolean, binary<AndOp>(boolean)});
  r.add({"Or", "", 7, kMaxOpset, boolean, binary<OrOp>(boolean)});
  r.add({"Xor", "", 7, kMaxOpset, boolean, binary<XorOp>(boolean)});
  r.add({"Equal", "", 7, kMaxOpset, all_types(), binary<EqualOp>()});
  r.add({"Less", "", 7, kMaxOpset, num, binary<LessOp>()});
  r.add({"Greater", "", 7, kMaxOpset, num, binary<GreaterOp>()});
  r.add({"LessOrEqual", "", 12, kMaxOpset, num, binary<LessOrEqualOp>()});
  r.add({"GreaterOrEqual", "", 12, kMaxOpset, num, binary<GreaterOrEqualOp>()});
  r.add({"Pow", "", 7, kMaxOpset, num, kernel_factory<PowKernel>()});
}

}  // namespace hearth
