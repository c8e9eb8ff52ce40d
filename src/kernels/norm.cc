// Kernel family: normalization. This file: BatchNormalization (inference, and
// the opset-14/15 training_mode variant with running statistics) and the
// family's registration; the row-wise normalizations live in norm_layer.cc.
// float16/bfloat16 run in float32 (norm_common.h).
#include <cstring>

#include "kernels/kernel.h"
#include "kernels/norm_common.h"
#include "kernels/register_all.h"

namespace hearth {

namespace {

constexpr int64_t kParallelThreshold = 65536;

class BatchNormKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    opset_ = info.opset;
    epsilon_ = info.node.attr_float("epsilon", 1e-5f);
    momentum_ = info.node.attr_float("momentum", 0.9f);
    training_ = opset_ >= 14 && info.node.attr_int("training_mode", 0) != 0;
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    for (size_t i = 0; i < 5; ++i) {
      if (!ctx.input(i)) return invalid_argument(node.describe(), ": required input ", i, " is missing");
    }
    const Tensor& x_in = *ctx.input(0);
    if (!norm_supported_type(x_in.dtype())) {
      return unimplemented(node.describe(), ": element type ", dtype_name(x_in.dtype()), " is not supported");
    }
    if (x_in.rank() < 2) {
      return invalid_argument(node.describe(), ": X must have rank >= 2 (N, C, ...), got ", shape_str(x_in.shape()));
    }
    const DataType compute = norm_compute_type(x_in.dtype());
    std::vector<Tensor> in(5);
    for (size_t i = 0; i < 5; ++i) { HEARTH_ASSIGN_OR_RETURN(in[i], norm_input(ctx, i, compute)); }
    HEARTH_RETURN_IF_ERROR(check_params(node, in));
    NormOutputs outs(ctx, compute);
    Tensor& y = outs.allocate(0, x_in.dtype(), x_in.shape());
    HEARTH_RETURN_IF_ERROR(norm_dispatch(compute, [&](auto tag) {
      using T = decltype(tag);
      return run<T>(ctx, in, y, outs);
    }));
    return outs.finish();
  }

 private:
  // Every parameter has C elements (or C x spatial for opset < 9 with spatial = 0).
  Status check_params(const Node& node, const std::vector<Tensor>& in) const {
    const int64_t C = in[0].dim(1), S = in[0].numel() / std::max<int64_t>(1, in[0].dim(0) * C);
    const int64_t P = in[1].numel();
    const bool per_element_ok = opset_ < 9 && !training_ && P == C * S;
    if (P != C && !per_element_ok) {
      return invalid_argument(node.describe(), ": scale has ", P, " elements but X has ", C, " channels");
    }
    static const char* kNames[] = {"X", "scale", "B", "mean", "var"};
    for (size_t i = 2; i < 5; ++i) {
      if (in[i].numel() != P) {
        return invalid_argument(node.describe(), ": ", kNames[i], " has ", in[i].numel(), " elements, expected ", P);
      }
    }
    return ok_status();
  }

  template <typename T>
  Status run(KernelContext& ctx, const std::vector<Tensor>& in, Tensor& y, NormOutputs& outs) const {
    const Tensor& x = in[0];
    const int64_t N = x.dim(0), C = x.dim(1), S = N * C == 0 ? 0 : x.numel() / (N * C), P = in[1].numel();
    std::vector<double> mean(P), var(P);
    for (int64_t p = 0; p < P; ++p) {
      mean[p] = in[3].data<T>()[p];
      var[p] = in[4].data<T>()[p];
    }
    if (training_) {
      batch_stats(x.data<T>(), N, C, S, mean.data(), var.data());
      HEARTH_RETURN_IF_ERROR(write_running_stats<T>(ctx, in, mean, var, outs));
    } else {
      HEARTH_RETURN_IF_ERROR(echo_stats(ctx, in, outs));
    }
    // y = x * a + b with a = scale / sqrt(var + eps), b = B - mean * a.
    std::vector<T> a(P), b(P);
    for (int64_t p = 0; p < P; ++p) {
      const double ap = in[1].data<T>()[p] / std::sqrt(var[p] + static_cast<double>(epsilon_));
      a[p] = static_cast<T>(ap);
      b[p] = static_cast<T>(in[2].data<T>()[p] - mean[p] * ap);
    }
    const T* xd = x.data<T>();
    T* yd = y.data<T>();
    const bool per_channel = P == C;
#pragma omp parallel for if (N * C * S > kParallelThreshold)
    for (int64_t nc = 0; nc < N * C; ++nc) {
      const int64_t c = nc % C;
      const T* xr = xd + nc * S;
      T* yr = yd + nc * S;
      if (per_channel) {
        const T ac = a[c], bc = b[c];
        for (int64_t s = 0; s < S; ++s) yr[s] = xr[s] * ac + bc;
      } else {
        const T* ar = a.data() + c * S;
        const T* br = b.data() + c * S;
        for (int64_t s = 0; s < S; ++s) yr[s] = xr[s] * ar[s] + br[s];
      }
    }
    return ok_status();
  }

  // Per-channel mean and biased variance over N and the spatial dims.
  template <typename T>
  static void batch_stats(const T* x, int64_t N, int64_t C, int64_t S, double* mean, double* var) {
#pragma omp parallel for if (N * C * S > kParallelThreshold)
    for (int64_t c = 0; c < C; ++c) {
      double sum = 0.0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t s = 0; s < S; ++s) sum += x[(n * C + c) * S + s];
      const double count = static_cast<double>(N * S);
      const double m = count > 0 ? sum / count : 0.0;
      double v = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        for (int64_t s = 0; s < S; ++s) {
          const double d = x[(n * C + c) * S + s] - m;
          v += d * d;
        }
      }
      mean[c] = m;
      var[c] = count > 0 ? v / count : 0.0;
    }
  }

  // training_mode outputs: running = input * momentum + batch * (1 - momentum).
  template <typename T>
  Status write_running_stats(KernelContext& ctx, const std::vector<Tensor>& in, const std::vector<double>& mean,
                             const std::vector<double>& var, NormOutputs& outs) const {
    for (size_t o = 1; o <= 2; ++o) {
      if (!outs.wanted(o)) continue;
      const Tensor& prev = in[o + 2];
      const std::vector<double>& cur = o == 1 ? mean : var;
      Tensor& t = outs.allocate(o, ctx.input(o + 2)->dtype(), prev.shape());
      for (int64_t p = 0; p < prev.numel(); ++p) {
        t.data<T>()[p] = static_cast<T>(prev.data<T>()[p] * momentum_ + cur[p] * (1.0 - momentum_));
      }
    }
    return ok_status();
  }

  // Inference mode with statistics outputs requested (old training-era
  // signatures): they echo the input mean (outputs 1, 3) and var (2, 4).
  Status echo_stats(KernelContext& ctx, const std::vector<Tensor>& in, NormOutputs& outs) const {
    for (size_t o = 1; o < ctx.num_outputs() && o <= 4; ++o) {
      if (!outs.wanted(o)) continue;
      const size_t src = o % 2 == 1 ? 3 : 4;
      Tensor& t = outs.allocate(o, ctx.input(src)->dtype(), in[src].shape());
      std::memcpy(t.raw_data(), in[src].raw_data(), in[src].nbytes());
    }
    return ok_status();
  }

  int64_t opset_ = 0;
  float epsilon_ = 1e-5f, momentum_ = 0.9f;
  bool training_ = false;
};

}  // namespace

void register_norm_kernels(KernelRegistry& r) {
  const std::vector<DataType> types = {DataType::kFloat, DataType::kDouble, DataType::kFloat16, DataType::kBFloat16};
  r.add({"BatchNormalization", "", 1, kMaxOpset, types, kernel_factory<BatchNormKernel>()});
  register_norm_layer_kernels(r);
}

}  // namespace hearth
