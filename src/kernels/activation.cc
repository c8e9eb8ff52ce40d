// Kernel family: activation. Pointwise activations are defined here as Ops for
// PointwiseKernel (elementwise_common.h); Softmax/LogSoftmax/Hardmax live in
// activation_softmax.cc, PRelu/Clip/Dropout in activation_misc.cc.

// SIMD: the build's -ftrapping-math keeps GCC from if-converting the selects
// in these elementwise loops; no kernel here reads floating-point exception flags.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/elementwise_common.h"
#include "kernels/elementwise_fastmath.h"
#include "kernels/kernel.h"
#include "kernels/register_all.h"
#include "kernels/wrapping.h"

namespace hearth {
namespace {

struct ReluOp {
  static constexpr TypeSet kTypes = TypeSet::kSigned;
  template <typename C>
  C operator()(C x) const { return x < C(0) ? C(0) : x; }
};

struct LeakyReluOp {
  static constexpr TypeSet kTypes = TypeSet::kFloat;
  float alpha = 0.01f;
  Status init(const KernelInfo& info) {
    alpha = info.node.attr_float("alpha", 0.01f);
    return ok_status();
  }
  template <typename C>
  C operator()(C x) const {
    const C scaled = C(alpha) * x;  // computed unconditionally so the select vectorizes
    return x < C(0) ? scaled : x;
  }
};

struct EluOp {
  static constexpr TypeSet kTypes = TypeSet::kFloat;
  float alpha = 1.0f;
  Status init(const KernelInfo& info) {
    alpha = info.node.attr_float("alpha", 1.0f);
    return ok_status();
  }
  template <typename C>
  C operator()(C x) const { return x < C(0) ? C(alpha) * std::expm1(x) : x; }
};

struct SeluOp {
  static constexpr TypeSet kTypes = TypeSet::kFloat;
  float alpha = 1.67326319217681884765625f;
  float gamma = 1.05070102214813232421875f;
  Status init(const KernelInfo& info) {
    alpha = info.node.attr_float("alpha", alpha);
    gamma = info.node.attr_float("gamma", gamma);
    return ok_status();
  }
  template <typename C>
  C operator()(C x) const { return x <= C(0) ? C(gamma) * (C(alpha) * std::exp(x) - C(alpha)) : C(gamma) * x; }
};

struct CeluOp {
  static constexpr TypeSet kTypes = TypeSet::kFloat;
  float alpha = 1.0f;
  Status init(const KernelInfo& info) {
    alpha = info.node.attr_float("alpha", 1.0f);
    if (alpha == 0.0f) return invalid_argument("Celu alpha must not be 0");
    return ok_status();
  }
  template <typename C>
  C operator()(C x) const {
    const C a = C(alpha);
    return std::max(C(0), x) + std::min(C(0), a * std::expm1(x / a));
  }
};

struct SigmoidOp {
  static constexpr TypeSet kTypes = TypeSet::kFloat;
  template <typename C>
  C operator()(C x) const {
    if constexpr (std::is_same_v<C, float>) {
      return fast_sigmoidf(x);
    } else {
      if (x >= C(0)) return C(1) / (C(1) + std::exp(-x));
      const C e = std::exp(x);
      return e / (C(1) + e);
    }
  }
};

struct TanhOp {
  static constexpr TypeSet kTypes = TypeSet::kFloat;
  template <typename C>
  C operator()(C x) const {
    if constexpr (std::is_same_v<C, float>) return fast_tanhf(x);
    else return std::tanh(x);
  }
};

struct HardSigmoidOp {
  static constexpr TypeSet kTypes = TypeSet::kFloat;
  float alpha = 0.2f, beta = 0.5f;
  Status init(const KernelInfo& info) {
    alpha = info.node.attr_float("alpha", 0.2f);
    beta = info.node.attr_float("beta", 0.5f);
    return ok_status();
  }
  template <typename C>
  C operator()(C x) const { return std::max(C(0), std::min(C(1), C(alpha) * x + C(beta))); }
};

struct HardSwishOp {
  static constexpr TypeSet kTypes = TypeSet::kFloat;
  template <typename C>
  C operator()(C x) const { return x * std::max(C(0), std::min(C(1), x * C(1.0 / 6.0) + C(0.5))); }
};

template <typename C>
C softplus(C x) {
  return x > C(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

struct SoftplusOp {
  static constexpr TypeSet kTypes = TypeSet::kFloat;
  template <typename C>
  C operator()(C x) const { return softplus(x); }
};

struct SoftsignOp {
  static constexpr TypeSet kTypes = TypeSet::kFloat;
  template <typename C>
  C operator()(C x) const { return x / (C(1) + std::abs(x)); }
};

struct MishOp {
  static constexpr TypeSet kTypes = TypeSet::kFloat;
  template <typename C>
  C operator()(C x) const { return x * std::tanh(softplus(x)); }
};

struct ThresholdedReluOp {
  static constexpr TypeSet kTypes = TypeSet::kFloat;
  float alpha = 1.0f;
  Status init(const KernelInfo& info) {
    alpha = info.node.attr_float("alpha", 1.0f);
    return ok_status();
  }
  template <typename C>
  C operator()(C x) const { return x > C(alpha) ? x : C(0); }
};

// Shrink accepts every numeric type; the comparison is done in double.
struct ShrinkOp {
  static constexpr TypeSet kTypes = TypeSet::kNumeric;
  float lambd = 0.5f, bias = 0.0f;
  Status init(const KernelInfo& info) {
    lambd = info.node.attr_float("lambd", 0.5f);
    bias = info.node.attr_float("bias", 0.0f);
    return ok_status();
  }
  template <typename C>
  C operator()(C x) const {
    const double v = static_cast<double>(x);
    // Integer outputs saturate: a huge bias would otherwise be an undefined conversion.
    if (v < -static_cast<double>(lambd)) return saturating_cast<C>(v + bias);
    if (v > static_cast<double>(lambd)) return saturating_cast<C>(v - bias);
    return C(0);
  }
};

template <typename Op>
KernelFactory pointwise() {
  return kernel_factory<PointwiseKernel<Op>>();
}

}  // namespace

void register_activation_kernels(KernelRegistry& r) {
  const auto flt = float_types();
  r.add({"Relu", "", 6, kMaxOpset, flt, pointwise<ReluOp>()});
  r.add({"LeakyRelu", "", 6, kMaxOpset, flt, pointwise<LeakyReluOp>()});
  r.add({"Elu", "", 6, kMaxOpset, flt, pointwise<EluOp>()});
  r.add({"Selu", "", 6, kMaxOpset, flt, pointwise<SeluOp>()});
  r.add({"Celu", "", 12, kMaxOpset, flt, pointwise<CeluOp>()});
  r.add({"Sigmoid", "", 6, kMaxOpset, flt, pointwise<SigmoidOp>()});
  r.add({"Tanh", "", 6, kMaxOpset, flt, pointwise<TanhOp>()});
  r.add({"HardSigmoid", "", 6, kMaxOpset, flt, pointwise<HardSigmoidOp>()});
  r.add({"HardSwish", "", 14, kMaxOpset, flt, pointwise<HardSwishOp>()});
  r.add({"Softplus", "", 1, kMaxOpset, flt, pointwise<SoftplusOp>()});
  r.add({"Softsign", "", 1, kMaxOpset, flt, pointwise<SoftsignOp>()});
  r.add({"Mish", "", 18, kMaxOpset, flt, pointwise<MishOp>()});
  r.add({"ThresholdedRelu", "", 10, kMaxOpset, flt, pointwise<ThresholdedReluOp>()});
  r.add({"Shrink", "", 9, kMaxOpset, numeric_types(), pointwise<ShrinkOp>()});
  register_activation_softmax(r);
  register_activation_misc(r);
}

}  // namespace hearth
