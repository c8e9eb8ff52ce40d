// Variadic and type-changing elementwise ops: Max, Min, Sum, Mean (any number
// of inputs, broadcast together), Where (3-input broadcast), Cast, CastLike.

// SIMD: the build's -ftrapping-math keeps GCC from if-converting the selects
// in these elementwise loops; no kernel here reads floating-point exception flags.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <cmath>
#include <cstring>

#include "kernels/broadcast.h"
#include "kernels/elementwise_common.h"

namespace hearth {
namespace {

enum class Fold { kMax, kMin, kSum, kMean };

template <typename C>
C fold_step(Fold f, C acc, C v) {
  switch (f) {
    case Fold::kMax:
      if constexpr (std::is_floating_point_v<C>) {
        if (std::isnan(v)) return v;
      }
      return acc < v ? v : acc;
    case Fold::kMin:
      if constexpr (std::is_floating_point_v<C>) {
        if (std::isnan(v)) return v;
      }
      return v < acc ? v : acc;
    default:
      if constexpr (std::is_integral_v<C> && std::is_signed_v<C> && sizeof(C) >= 4) {
        using U = std::make_unsigned_t<C>;
        return static_cast<C>(static_cast<U>(acc) + static_cast<U>(v));
      } else {
        return static_cast<C>(acc + v);
      }
  }
}

// y = fold(x0, x1, ..., xn-1) with every input broadcast to the common shape.
// The output is first filled with x0 broadcast, then each further input is
// folded in place (input 0 of each plan is the output itself, read at offset i).
template <Fold kFold>
class FoldKernel final : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    if (ctx.num_inputs() == 0) return invalid_argument(ctx.node().describe(), ": needs at least one input");
    std::vector<Shape> shapes;
    const DataType dt = ctx.input(0) ? ctx.input(0)->dtype() : DataType::kUndefined;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, i));
      if (x->dtype() != dt) {
        return invalid_argument(ctx.node().describe(), ": input ", i, " is ", x->describe(), " but input 0 is ",
                                dtype_name(dt));
      }
      shapes.push_back(x->shape());
    }
    auto out_shape = broadcast_shapes(shapes);
    if (!out_shape.ok()) return out_shape.status().with_context(ctx.node().describe());
    constexpr TypeSet kTypes = kFold == Fold::kMean ? TypeSet::kFloat : TypeSet::kNumeric;
    return dispatch_all(
        dt,
        [&](auto tag) -> Status {
          using T = decltype(tag);
          if constexpr (type_in_set<T>(kTypes)) {
            Tensor& y = ctx.allocate_output(0, dt, *out_shape);
            return fold<T>(ctx, y);
          } else {
            return unsupported_dtype(ctx, dt);
          }
        },
        [&]() -> Status { return unsupported_dtype(ctx, dt); });
  }

 private:
  template <typename T>
  Status fold(KernelContext& ctx, Tensor& y) {
    using C = compute_t<T>;
    T* out = y.data<T>();
    const int nt = ctx.num_threads();
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      const Tensor* x = ctx.input(i);
      HEARTH_ASSIGN_OR_RETURN(BroadcastPlan plan, make_broadcast_plan({y.shape(), x->shape()}));
      const bool last = i + 1 == ctx.num_inputs();
      const C scale = static_cast<C>(1.0 / static_cast<double>(ctx.num_inputs()));
      broadcast_map2(plan, out, x->data<T>(), out, nt, [&](T acc, T v) {
        C r = i == 0 ? load_value(v) : fold_step<C>(kFold, load_value(acc), load_value(v));
        if constexpr (kFold == Fold::kMean) {
          if (last) r = r * scale;
        }
        return store_value<T>(r);
      });
    }
    return ok_status();
  }
};

// Copies by element size: Where and friends only move bits.
template <typename Fn>
auto dispatch_by_size(size_t bytes, Fn&& fn) {
  switch (bytes) {
    case 1: return fn(uint8_t{});
    case 2: return fn(uint16_t{});
    case 4: return fn(uint32_t{});
    default: return fn(uint64_t{});
  }
}

class WhereKernel final : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* c, required_input(ctx, 0));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 1));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* z, required_input(ctx, 2));
    if (c->dtype() != DataType::kBool) {
      return invalid_argument(ctx.node().describe(), ": condition must be bool, got ", c->describe());
    }
    if (x->dtype() != z->dtype()) {
      return invalid_argument(ctx.node().describe(), ": X and Y types differ (", x->describe(), " and ",
                              z->describe(), ")");
    }
    const size_t es = dtype_size(x->dtype());
    if (es == 0 || es > 8) return unsupported_dtype(ctx, x->dtype());
    auto plan = make_broadcast_plan({c->shape(), x->shape(), z->shape()});
    if (!plan.ok()) return plan.status().with_context(ctx.node().describe());
    Tensor& y = ctx.allocate_output(0, x->dtype(), plan->out_shape);
    dispatch_by_size(es, [&](auto tag) {
      using E = decltype(tag);
      broadcast_map3(*plan, c->data<bool>(), static_cast<const E*>(x->raw_data()),
                     static_cast<const E*>(z->raw_data()), static_cast<E*>(y.raw_data()), ctx.num_threads(),
                     [](bool cond, E a, E b) { return cond ? a : b; });
      return 0;
    });
    return ok_status();
  }
};

Status cast_into(KernelContext& ctx, const Tensor& x, DataType to) {
  if (to == DataType::kString || !dtype_is_supported(to)) {
    return unimplemented(ctx.node().describe(), ": cast to ", dtype_name(to), " is not supported");
  }
  if (x.dtype() == to) {
    ctx.set_output(0, x);
    return ok_status();
  }
  auto y = cast_tensor(x, to, ctx.allocator());
  if (!y.ok()) return y.status().with_context(ctx.node().describe());
  ctx.set_output(0, std::move(y).value());
  return ok_status();
}

class CastKernel final : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    if (!info.node.has_attr("to")) return invalid_argument("Cast needs the 'to' attribute");
    to_ = static_cast<DataType>(info.node.attr_int("to", 0));
    if (to_ == DataType::kString || !dtype_is_supported(to_)) {
      return unimplemented("Cast to ", dtype_name(to_), " is not supported");
    }
    return ok_status();
  }
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0));
    return cast_into(ctx, *x, to_);
  }

 private:
  DataType to_ = DataType::kUndefined;
};

class CastLikeKernel final : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* like, required_input(ctx, 1));
    return cast_into(ctx, *x, like->dtype());
  }
};

}  // namespace

void register_elementwise_variadic(KernelRegistry& r) {
  const auto num = numeric_types();
  r.add({"Max", "", 6, kMaxOpset, num, kernel_factory<FoldKernel<Fold::kMax>>()});
  r.add({"Min", "", 6, kMaxOpset, num, kernel_factory<FoldKernel<Fold::kMin>>()});
  r.add({"Sum", "", 6, kMaxOpset, num, kernel_factory<FoldKernel<Fold::kSum>>()});
  r.add({"Mean", "", 6, kMaxOpset, float_types(), kernel_factory<FoldKernel<Fold::kMean>>()});
  r.add({"Where", "", 9, kMaxOpset, all_types(), kernel_factory<WhereKernel>()});
  r.add({"Cast", "", 6, kMaxOpset, all_types(), kernel_factory<CastKernel>()});
  r.add({"CastLike", "", 15, kMaxOpset, all_types(), kernel_factory<CastLikeKernel>()});
}

}  // namespace hearth
