// Shared helpers for the normalization kernels (norm.cc, norm_layer.cc):
// running float16/bfloat16 nodes in float32, and per-row statistics.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/kernel.h"

namespace hearth {

// The type a normalization computes in: double for double, float otherwise.
inline DataType norm_compute_type(DataType t) { return t == DataType::kDouble ? DataType::kDouble : DataType::kFloat; }

inline bool norm_supported_type(DataType t) {
  return t == DataType::kFloat || t == DataType::kDouble || t == DataType::kFloat16 || t == DataType::kBFloat16;
}

// Input i converted to `compute` (shares memory when it already is); an
// undefined Tensor when the input is absent.
inline Result<Tensor> norm_input(const KernelContext& ctx, size_t i, DataType compute) {
  const Tensor* t = ctx.input(i);
  if (!t) return Tensor();
  if (t->dtype() == compute) return *t;
  if (!norm_supported_type(t->dtype())) {
    return unimplemented(ctx.node().describe(), ": input ", i, " has unsupported element type ", dtype_name(t->dtype()));
  }
  return cast_tensor(*t, compute);
}

// Hands out outputs in the compute type; finish() narrows them to the node's
// type (float16/bfloat16) when that differs, and sets them on the context.
class NormOutputs {
 public:
  NormOutputs(KernelContext& ctx, DataType compute) : ctx_(ctx), compute_(compute), temps_(ctx.num_outputs()) {}

  // True when the node asks for output i (present and named).
  bool wanted(size_t i) const { return i < ctx_.num_outputs() && !ctx_.node().outputs[i].empty(); }

  // Allocates output i, computed in the compute type, finally stored as `final_type`.
  Tensor& allocate(size_t i, DataType final_type, Shape shape) {
    if (final_type == compute_) return ctx_.allocate_output(i, final_type, std::move(shape));
    if (Status st = ctx_.check_output_shape(compute_, shape); !st.ok()) throw SizeError(st);
    temps_[i] = {Tensor(compute_, std::move(shape)), final_type};
    return temps_[i].first;
  }

  Status finish() {
    for (size_t i = 0; i < temps_.size(); ++i) {
      if (!temps_[i].first.defined()) continue;
      HEARTH_ASSIGN_OR_RETURN(Tensor t, cast_tensor(temps_[i].first, temps_[i].second, ctx_.allocator()));
      ctx_.set_output(i, std::move(t));
    }
    return ok_status();
  }

 private:
  KernelContext& ctx_;
  DataType compute_;
  std::vector<std::pair<Tensor, DataType>> temps_;
};

// Mean and (biased) variance of x[0..n), two passes with double accumulators.
template <typename T>
void row_mean_var(const T* x, int64_t n, double* mean, double* var) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += x[i];
  const double m = n > 0 ? s / static_cast<double>(n) : 0.0;
  double v = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = x[i] - m;
    v += d * d;
  }
  *mean = m;
  *var = n > 0 ? v / static_cast<double>(n) : 0.0;
}

// float rows: eight float partial sums per pass (vectorizes), combined in double.
inline void row_mean_var(const float* x, int64_t n, double* mean, double* var) {
  if (n <= 0) {
    *mean = *var = 0.0;
    return;
  }
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += x[i + k];
  double s = 0.0;
  for (int k = 0; k < 8; ++k) s += acc[k];
  for (; i < n; ++i) s += x[i];
  const double m = s / static_cast<double>(n);
  const float mf = static_cast<float>(m);
  float sq[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (i = 0; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) {
      const float d = x[i + k] - mf;
      sq[k] += d * d;
    }
  double v = 0.0;
  for (int k = 0; k < 8; ++k) v += sq[k];
  for (; i < n; ++i) v += (x[i] - mf) * (x[i] - mf);
  *mean = m;
  *var = v / static_cast<double>(n);
}

// Runs fn(T{}) with T = float or double according to `compute`.
template <typename Fn>
Status norm_dispatch(DataType compute, Fn&& fn) {
  if (compute == DataType::kDouble) return fn(double{});
  return fn(float{});
}

// Registers LayerNormalization, InstanceNormalization, LRN and MeanVarianceNormalization.
void register_norm_layer_kernels(KernelRegistry& r);

}  // namespace hearth
