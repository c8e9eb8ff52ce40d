// Activations with extra operands: PRelu (slope broadcast to X), Clip (bounds
// as attributes before opset 11, as optional inputs after), and Dropout
// (inference only: identity plus an all-true mask).

// SIMD: the build's -ftrapping-math keeps GCC from if-converting the selects
// in these elementwise loops; no kernel here reads floating-point exception flags.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <cstring>
#include <limits>

#include "kernels/broadcast.h"
#include "kernels/elementwise_common.h"
#include "kernels/wrapping.h"

namespace hearth {
namespace {

class PReluKernel final : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0));
    HEARTH_ASSIGN_OR_RETURN(const Tensor* slope, required_input(ctx, 1));
    if (x->dtype() != slope->dtype()) {
      return invalid_argument(ctx.node().describe(), ": slope type ", slope->describe(), " differs from X ",
                              x->describe());
    }
    auto plan = make_broadcast_plan({x->shape(), slope->shape()});
    if (!plan.ok()) return plan.status().with_context(ctx.node().describe());
    if (plan->out_shape != x->shape()) {
      return invalid_argument(ctx.node().describe(), ": slope ", shape_str(slope->shape()),
                              " does not broadcast to X ", shape_str(x->shape()));
    }
    return dispatch_all(
        x->dtype(),
        [&](auto tag) -> Status {
          using T = decltype(tag);
          if constexpr (type_in_set<T>(TypeSet::kSigned)) {
            Tensor& y = ctx.allocate_output(0, x->dtype(), x->shape());
            broadcast_map2(*plan, x->data<T>(), slope->data<T>(), y.data<T>(), ctx.num_threads(), [](T a, T s) {
              const auto v = load_value(a);
              return v < decltype(v)(0) ? store_value<T>(wrap_mul(v, load_value(s))) : a;  // integers wrap
            });
            return ok_status();
          } else {
            return unsupported_dtype(ctx, x->dtype());
          }
        },
        [&]() -> Status { return unsupported_dtype(ctx, x->dtype()); });
  }
};

// Reads a scalar (or one-element) bound of type T from an optional input.
template <typename T>
Result<compute_t<T>> read_bound(KernelContext& ctx, size_t i, compute_t<T> def) {
  const Tensor* t = ctx.input(i);
  if (!t) return def;
  if (t->dtype() != dtype_of<T>() || t->numel() != 1) {
    return invalid_argument(ctx.node().describe(), ": input ", i, " (", i == 1 ? "min" : "max",
                            ") must be a one-element ", dtype_name(dtype_of<T>()), " tensor, got ", t->describe());
  }
  return load_value(t->data<T>()[0]);
}

class ClipKernel final : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    legacy_ = info.opset < 11;
    attr_min_ = info.node.attr_float("min", std::numeric_limits<float>::lowest());
    attr_max_ = info.node.attr_float("max", std::numeric_limits<float>::max());
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0));
    return dispatch_all(
        x->dtype(),
        [&](auto tag) -> Status {
          using T = decltype(tag);
          if constexpr (type_in_set<T>(TypeSet::kNumeric)) {
            using C = compute_t<T>;
            C lo = std::numeric_limits<C>::lowest(), hi = std::numeric_limits<C>::max();
            if (legacy_) {
              if (!is_floatlike_v<T>) return unsupported_dtype(ctx, x->dtype());
              lo = static_cast<C>(attr_min_);
              hi = static_cast<C>(attr_max_);
            } else {
              HEARTH_ASSIGN_OR_RETURN(lo, read_bound<T>(ctx, 1, lo));
              HEARTH_ASSIGN_OR_RETURN(hi, read_bound<T>(ctx, 2, hi));
            }
            Tensor& y = ctx.allocate_output(0, x->dtype(), x->shape());
            unary_map(x->data<T>(), y.data<T>(), x->numel(), ctx.num_threads(), [lo, hi](C v) {
              C r = v < lo ? lo : v;  // NaN passes through; lo > hi gives hi, as numpy.clip
              return r > hi ? hi : r;
            });
            return ok_status();
          } else {
            return unsupported_dtype(ctx, x->dtype());
          }
        },
        [&]() -> Status { return unsupported_dtype(ctx, x->dtype()); });
  }

 private:
  bool legacy_ = false;
  float attr_min_ = 0, attr_max_ = 0;
};

// Dropout at inference: Y = X (shared memory), mask (if requested) all true.
// Training mode with a non-zero ratio would need random numbers: unimplemented.
class DropoutKernel final : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    opset_ = info.opset;
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(const Tensor* x, required_input(ctx, 0));
    if (opset_ >= 12) HEARTH_RETURN_IF_ERROR(check_training(ctx));
    ctx.set_output(0, *x);
    const auto& outs = ctx.node().outputs;
    if (outs.size() < 2 || outs[1].empty()) return ok_status();
    if (opset_ >= 10) {
      Tensor& mask = ctx.allocate_output(1, DataType::kBool, x->shape());
      std::memset(mask.raw_data(), 1, mask.nbytes());
      return ok_status();
    }
    // Opsets 7-9: the mask has X's type; all ones.
    HEARTH_ASSIGN_OR_RETURN(Tensor ones, cast_tensor(Tensor::from_vector<bool>({true}, {}), x->dtype()));
    Tensor& mask = ctx.allocate_output(1, x->dtype(), x->shape());
    const size_t es = dtype_size(x->dtype());
    auto* dst = static_cast<uint8_t*>(mask.raw_data());
    for (int64_t i = 0; i < x->numel(); ++i) std::memcpy(dst + i * es, ones.raw_data(), es);
    return ok_status();
  }

 private:
  Status check_training(KernelContext& ctx) const {
    const Tensor* training = ctx.input(2);
    if (!training) return ok_status();
    if (training->dtype() != DataType::kBool || training->numel() != 1) {
      return invalid_argument(ctx.node().describe(), ": training_mode must be a bool scalar, got ",
                              training->describe());
    }
    if (!training->data<bool>()[0]) return ok_status();
    double ratio = 0.5;
    if (const Tensor* r = ctx.input(1)) {
      auto v = tensor_to_doubles(*r);
      if (!v.ok() || v->size() != 1) {
        return invalid_argument(ctx.node().describe(), ": ratio must be a scalar, got ", r->describe());
      }
      ratio = (*v)[0];
    }
    if (ratio != 0.0) {
      return unimplemented(ctx.node().describe(), ": training mode with ratio ", ratio, " is not supported");
    }
    return ok_status();
  }

  int64_t opset_ = 0;
};

}  // namespace

void register_activation_misc(KernelRegistry& r) {
  const auto flt = float_types();
  r.add({"PRelu", "", 7, kMaxOpset, flt, kernel_factory<PReluKernel>()});
  r.add({"Clip", "", 6, kMaxOpset, numeric_types(), kernel_factory<ClipKernel>()});
  r.add({"Dropout", "", 7, kMaxOpset, flt, kernel_factory<DropoutKernel>()});
}

}  // namespace hearth
