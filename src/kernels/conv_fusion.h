// What a fused convolution adds after the conv itself: an optional residual
// input Z and an activation, Y = act(conv(X, W) + B + Z), as ONNX Runtime's
// com.microsoft FusedConv defines it. The optimizer may emit FusedConv for
// Conv -> [Add] -> activation chains; oneDNN runs them as post-ops.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace hearth {

enum class ConvActivation { kNone, kRelu, kLeakyRelu, kSigmoid, kTanh, kClip, kHardSigmoid, kHardSwish, kSwish };

struct ConvFusion {
  ConvActivation act = ConvActivation::kNone;
  float alpha = 0, beta = 0;  // LeakyRelu alpha; Clip min/max; HardSigmoid alpha/beta
  bool sum = false;           // a Z input is added before the activation
  bool any() const { return sum || act != ConvActivation::kNone; }
};

// Parses FusedConv's `activation` / `activation_params` attributes.
inline Status parse_conv_activation(const std::string& name, const std::vector<float>& params, ConvFusion* f) {
  auto param = [&](size_t i, float def) { return i < params.size() ? params[i] : def; };
  if (name.empty()) f->act = ConvActivation::kNone;
  else if (name == "Relu") f->act = ConvActivation::kRelu;
  else if (name == "LeakyRelu") f->act = ConvActivation::kLeakyRelu, f->alpha = param(0, 0.01f);
  else if (name == "Sigmoid") f->act = ConvActivation::kSigmoid;
  else if (name == "Tanh") f->act = ConvActivation::kTanh;
  else if (name == "Clip") {
    f->act = ConvActivation::kClip, f->alpha = param(0, -INFINITY), f->beta = param(1, INFINITY);
  } else if (name == "HardSigmoid") {
    f->act = ConvActivation::kHardSigmoid, f->alpha = param(0, 0.2f), f->beta = param(1, 0.5f);
  } else if (name == "HardSwish") f->act = ConvActivation::kHardSwish;
  else if (name == "Swish") f->act = ConvActivation::kSwish;  // x * sigmoid(x), a.k.a. SiLU
  else return unimplemented("fused activation '", name, "' is not supported");
  return ok_status();
}

// Reference epilogue: y[i] = act(y[i] + z[i]) (z may be null).
template <typename T>
void apply_conv_fusion(const ConvFusion& f, const T* z, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    double v = static_cast<double>(y[i]) + (z ? static_cast<double>(z[i]) : 0.0);
    switch (f.act) {
      case ConvActivation::kNone: break;
      case ConvActivation::kRelu: v = std::max(v, 0.0); break;
      case ConvActivation::kLeakyRelu: v = v < 0 ? v * f.alpha : v; break;
      case ConvActivation::kSigmoid: v = 1.0 / (1.0 + std::exp(-v)); break;
      case ConvActivation::kTanh: v = std::tanh(v); break;
      case ConvActivation::kClip: v = std::min<double>(std::max<double>(v, f.alpha), f.beta); break;
      case ConvActivation::kHardSigmoid: v = std::clamp(f.alpha * v + f.beta, 0.0, 1.0); break;
      case ConvActivation::kHardSwish: v = v * std::clamp(v / 6.0 + 0.5, 0.0, 1.0); break;
      case ConvActivation::kSwish: v = v / (1.0 + std::exp(-v)); break;
    }
    y[i] = static_cast<T>(v);
  }
}

}  // namespace hearth
