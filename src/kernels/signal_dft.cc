// Kernel family: signal, Fourier transforms. DFT (opset 17: axis attribute;
// opset 20: axis as input) and STFT. Real inputs have a trailing dimension of
// 1, complex ones of 2 (real, imaginary); outputs are always complex. Math is
// done in double through FftPlan (signal.cc) and converted back at the end.
#include <omp.h>

#include <algorithm>

#include "kernels/kernel.h"
#include "kernels/signal_common.h"

namespace hearth {

namespace {

using Complex = FftPlan::Complex;

// Complex input trailing dimension: 1 (real) or 2 (real, imaginary).
Status check_components(const KernelContext& ctx, const Tensor& x, const char* what) {
  int64_t c = x.rank() == 0 ? 0 : x.shape().back();
  if (c != 1 && c != 2) {
    return invalid_argument(ctx.node().describe(), ": the last dimension of ", what,
                            " must be 1 (real) or 2 (complex), got ", x.describe());
  }
  return ok_status();
}

Status check_float_input(const KernelContext& ctx, const Tensor& x, const char* what) {
  if (!dtype_is_float(x.dtype())) {
    return unimplemented(ctx.node().op_type, " node '", ctx.node().name, "': ", what, " dtype ", dtype_name(x.dtype()),
                         " is not supported (float, double, float16, bfloat16)");
  }
  return ok_status();
}

// One DFT problem: `count` independent signals of length `len` along an axis,
// addressed as ((outer * len + k) * inner + i) * comps.
struct DftLayout {
  int64_t outer = 1, len = 1, inner = 1, comps = 1;
  int64_t n = 1;      // transform length (zero-pads or truncates len)
  int64_t out_n = 1;  // bins written (n, or n/2+1 when onesided)
};

void run_dft(const FftPlan& plan, const DftLayout& L, const double* in, double* out, bool inverse, int num_threads) {
  const int64_t count = L.outer * L.inner;
  const int64_t take = std::min(L.len, L.n);
  const bool big = count * L.n > (1 << 15);
  std::vector<FftWork> work = make_fft_work(plan, num_threads);
#pragma omp parallel num_threads(num_threads) if (big)
  {
    std::vector<Complex>& buf = work[static_cast<size_t>(omp_get_thread_num())].buf;
    std::vector<Complex>& scratch = work[static_cast<size_t>(omp_get_thread_num())].scratch;
#pragma omp for schedule(static)
    for (int64_t s = 0; s < count; ++s) {
      const int64_t o = s / L.inner, i = s % L.inner;
      std::fill(buf.begin(), buf.end(), Complex(0, 0));
      for (int64_t k = 0; k < take; ++k) {
        const double* p = in + ((o * L.len + k) * L.inner + i) * L.comps;
        buf[k] = Complex(p[0], L.comps == 2 ? p[1] : 0.0);
      }
      plan.transform(buf.data(), inverse, scratch);
      for (int64_t k = 0; k < L.out_n; ++k) {
        double* q = out + ((o * L.out_n + k) * L.inner + i) * 2;
        q[0] = buf[k].real();
        q[1] = buf[k].imag();
      }
    }
  }
}

class DftKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    opset_ = info.opset;
    axis_ = info.node.attr_int("axis", opset_ >= 20 ? -2 : 1);
    inverse_ = info.node.attr_int("inverse", 0) != 0;
    onesided_ = info.node.attr_int("onesided", 0) != 0;
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Tensor* x = ctx.input(0);
    if (!x) return invalid_argument(ctx.node().describe(), ": input is required");
    HEARTH_RETURN_IF_ERROR(check_float_input(ctx, *x, "input"));
    const int64_t rank = static_cast<int64_t>(x->rank());
    if (rank < 2) {
      return invalid_argument(ctx.node().describe(), ": input must have rank >= 2 ([batch, ..., 1 or 2]), got ",
                              x->describe());
    }
    HEARTH_RETURN_IF_ERROR(check_components(ctx, *x, "input"));
    int64_t axis = axis_;
    if (opset_ >= 20 && ctx.input(2)) {
      HEARTH_ASSIGN_OR_RETURN(axis, signal_scalar_int(ctx, 2, "axis"));
    }
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank - 2) {
      return invalid_argument(ctx.node().describe(), ": axis ", axis_, " must index a signal dimension of ",
                              x->describe(), " (not the last, complex dimension)");
    }
    DftLayout L;
    L.comps = x->shape().back();
    L.len = x->dim(axis);
    for (int64_t d = 0; d < axis; ++d) L.outer *= x->dim(d);
    for (int64_t d = axis + 1; d < rank - 1; ++d) L.inner *= x->dim(d);
    L.n = L.len;
    if (ctx.input(1)) {
      HEARTH_ASSIGN_OR_RETURN(L.n, signal_scalar_int(ctx, 1, "dft_length"));
    }
    if (L.n < 1 || L.n > (int64_t{1} << 30)) {
      return invalid_argument(ctx.node().describe(), ": dft_length ", L.n, " must be in [1, 2^30]");
    }
    if (onesided_ && L.comps == 2 && !inverse_) {
      return invalid_argument(ctx.node().describe(), ": onesided=1 needs a real input, got complex ", x->describe());
    }
    L.out_n = onesided_ ? L.n / 2 + 1 : L.n;
    Shape out_shape = x->shape();
    out_shape[axis] = L.out_n;
    out_shape.back() = 2;
    HEARTH_RETURN_IF_ERROR(ctx.check_output_shape(DataType::kDouble, out_shape).with_context(ctx.node().describe()));
    Tensor yd(DataType::kDouble, out_shape, ctx.allocator());
    if (yd.numel() == 0) return signal_set_output(ctx, 0, yd, x->dtype());  // no transform to plan
    HEARTH_RETURN_IF_ERROR(check_fft_memory(ctx, L.n, ctx.num_threads()));
    HEARTH_ASSIGN_OR_RETURN(Tensor xd, signal_to_double(*x));
    run_dft(plans_.get(L.n), L, xd.data<double>(), yd.data<double>(), inverse_, ctx.num_threads());
    return signal_set_output(ctx, 0, yd, x->dtype());
  }

 private:
  FftPlanCache plans_;
  int64_t opset_ = 17;
  int64_t axis_ = 1;
  bool inverse_ = false;
  bool onesided_ = false;
};

// STFT: frames of `frame_length` samples every `frame_step`, multiplied by
// the optional window, each transformed by a DFT. Output [batch, frames, bins, 2].
class StftKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    onesided_ = info.node.attr_int("onesided", 1) != 0;
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Tensor* signal = ctx.input(0);
    if (!signal) return invalid_argument(ctx.node().describe(), ": signal is required");
    HEARTH_RETURN_IF_ERROR(check_float_input(ctx, *signal, "signal"));
    if (signal->rank() != 3) {
      return invalid_argument(ctx.node().describe(), ": signal must be [batch, length, 1 or 2], got ",
                              signal->describe());
    }
    HEARTH_RETURN_IF_ERROR(check_components(ctx, *signal, "signal"));
    HEARTH_ASSIGN_OR_RETURN(int64_t step, signal_scalar_int(ctx, 1, "frame_step"));
    if (step < 1) return invalid_argument(ctx.node().describe(), ": frame_step ", step, " must be positive");
    HEARTH_ASSIGN_OR_RETURN(int64_t n, frame_length(ctx));
    const int64_t batch = signal->dim(0), len = signal->dim(1), comps = signal->dim(2);
    if (n > len) {
      return invalid_argument(ctx.node().describe(), ": frame length ", n, " is longer than the signal (", len, ")");
    }
    if (onesided_ && comps == 2) {
      return invalid_argument(ctx.node().describe(), ": onesided=1 needs a real signal, got complex ",
                              signal->describe());
    }
    const int64_t frames = (len - n) / step + 1;
    const int64_t out_n = onesided_ ? n / 2 + 1 : n;
    HEARTH_RETURN_IF_ERROR(
        ctx.check_output_shape(DataType::kDouble, {batch, frames, out_n, 2}).with_context(ctx.node().describe()));
    if (batch == 0) {  // no frames to transform: no plan to build
      Tensor empty(DataType::kDouble, {batch, frames, out_n, 2}, ctx.allocator());
      return signal_set_output(ctx, 0, empty, signal->dtype());
    }
    HEARTH_RETURN_IF_ERROR(check_fft_memory(ctx, n, ctx.num_threads()));
    HEARTH_ASSIGN_OR_RETURN(Tensor sd, signal_to_double(*signal));
    std::vector<double> window(static_cast<size_t>(n), 1.0);
    if (const Tensor* w = ctx.input(2)) {
      HEARTH_ASSIGN_OR_RETURN(Tensor wd, signal_to_double(*w));
      std::copy(wd.data<double>(), wd.data<double>() + n, window.begin());
    }
    Tensor yd(DataType::kDouble, {batch, frames, out_n, 2}, ctx.allocator());
    run_frames(plans_.get(n), sd.data<double>(), window, yd.data<double>(), batch, frames, len, comps, step, out_n,
               ctx.num_threads());
    return signal_set_output(ctx, 0, yd, signal->dtype());
  }

 private:
  // The DFT size: frame_length when given, else the window's length; both must agree.
  static Result<int64_t> frame_length(const KernelContext& ctx) {
    const Tensor* w = ctx.input(2);
    if (w && w->rank() != 1) {
      return invalid_argument(ctx.node().describe(), ": window must be 1-D, got ", w->describe());
    }
    if (w && w->dtype() != ctx.input(0)->dtype()) {
      return invalid_argument(ctx.node().describe(), ": window ", w->describe(), " must have the signal's dtype");
    }
    if (!ctx.input(3)) {
      if (!w) return invalid_argument(ctx.node().describe(), ": needs a window or a frame_length");
      if (w->dim(0) < 1) return invalid_argument(ctx.node().describe(), ": window is empty");
      return w->dim(0);
    }
    HEARTH_ASSIGN_OR_RETURN(int64_t n, signal_scalar_int(ctx, 3, "frame_length"));
    if (n < 1) return invalid_argument(ctx.node().describe(), ": frame_length ", n, " must be positive");
    if (w && w->dim(0) != n) {
      return invalid_argument(ctx.node().describe(), ": window length ", w->dim(0), " differs from frame_length ", n);
    }
    return n;
  }

  static void run_frames(const FftPlan& plan, const double* in, const std::vector<double>& window, double* out,
                         int64_t batch, int64_t frames, int64_t len, int64_t comps, int64_t step, int64_t out_n,
                         int num_threads) {
    const int64_t n = static_cast<int64_t>(window.size());
    const int64_t count = batch * frames;
    const bool big = count * n > (1 << 15);
    std::vector<FftWork> work = make_fft_work(plan, num_threads);
#pragma omp parallel num_threads(num_threads) if (big)
    {
      std::vector<Complex>& buf = work[static_cast<size_t>(omp_get_thread_num())].buf;
      std::vector<Complex>& scratch = work[static_cast<size_t>(omp_get_thread_num())].scratch;
#pragma omp for schedule(static)
      for (int64_t s = 0; s < count; ++s) {
        const int64_t b = s / frames, f = s % frames;
        const double* p = in + (b * len + f * step) * comps;
        for (int64_t k = 0; k < n; ++k) {
          buf[k] = Complex(p[k * comps], comps == 2 ? p[k * comps + 1] : 0.0) * window[k];
        }
        plan.transform(buf.data(), false, scratch);
        double* q = out + s * out_n * 2;
        for (int64_t k = 0; k < out_n; ++k) {
          q[2 * k] = buf[k].real();
          q[2 * k + 1] = buf[k].imag();
        }
      }
    }
  }

  FftPlanCache plans_;
  bool onesided_ = true;
};

}  // namespace

void register_signal_dft_kernels(KernelRegistry& r) {
  r.add({"DFT", "", 17, kMaxOpset, float_types(), kernel_factory<DftKernel>()});
  r.add({"STFT", "", 17, kMaxOpset, float_types(), kernel_factory<StftKernel>()});
}

}  // namespace hearth
