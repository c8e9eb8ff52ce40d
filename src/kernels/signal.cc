// Kernel family: signal. Window generators (HannWindow, HammingWindow,
// BlackmanWindow), MelWeightMatrix, and the helpers shared with DFT/STFT
// (signal_dft.cc): scalar readers, dtype conversion and the FFT plan.
#include <cmath>
#include <numbers>

#include "kernels/kernel.h"
#include "kernels/register_all.h"
#include "kernels/signal_common.h"

namespace hearth {

void register_signal_dft_kernels(KernelRegistry& r);  // signal_dft.cc

// ---------------------------------------------------------------- helpers

Result<int64_t> signal_scalar_int(const KernelContext& ctx, size_t index, const char* what) {
  const Tensor* t = ctx.input(index);
  if (!t) return invalid_argument(ctx.node().describe(), ": input '", what, "' is required");
  if (t->numel() != 1) {
    return invalid_argument(ctx.node().describe(), ": input '", what, "' must be a scalar, got ", t->describe());
  }
  if (t->dtype() != DataType::kInt32 && t->dtype() != DataType::kInt64) {
    return invalid_argument(ctx.node().describe(), ": input '", what, "' must be int32 or int64, got ", t->describe());
  }
  return t->dtype() == DataType::kInt32 ? static_cast<int64_t>(t->data<int32_t>()[0]) : t->data<int64_t>()[0];
}

Result<double> signal_scalar_float(const KernelContext& ctx, size_t index, const char* what) {
  const Tensor* t = ctx.input(index);
  if (!t) return invalid_argument(ctx.node().describe(), ": input '", what, "' is required");
  if (t->numel() != 1 || t->dtype() == DataType::kBool) {
    return invalid_argument(ctx.node().describe(), ": input '", what, "' must be a numeric scalar, got ",
                            t->describe());
  }
  auto v = tensor_to_doubles(*t);
  if (!v.ok()) return v.status().with_context(ctx.node().describe());
  return v.value()[0];
}

Result<Tensor> signal_to_double(const Tensor& t) {
  if (t.dtype() == DataType::kDouble) return t;
  return cast_tensor(t, DataType::kDouble);
}

Status signal_set_output(KernelContext& ctx, size_t index, const Tensor& values, DataType dtype) {
  if (dtype == DataType::kDouble) {
    ctx.set_output(index, values);
    return ok_status();
  }
  auto out = cast_tensor(values, dtype, ctx.allocator());
  if (!out.ok()) return out.status().with_context(ctx.node().describe());
  ctx.set_output(index, std::move(out.value()));
  return ok_status();
}

// Output element types allowed by the window and mel ops (T2/T3 in the spec).
static bool is_signal_output_type(int64_t dt) {
  auto t = static_cast<DataType>(dt);
  return dtype_is_float(t) || dtype_is_integer(t);
}

// ---------------------------------------------------------------- FFT plan

static bool is_power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

static std::vector<FftPlan::Complex> make_roots(int64_t m) {
  std::vector<FftPlan::Complex> roots(static_cast<size_t>(m / 2));
  for (int64_t k = 0; k < m / 2; ++k) {
    double a = -2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(m);
    roots[k] = {std::cos(a), std::sin(a)};
  }
  return roots;
}

// In-place iterative radix-2 FFT of size m (a power of two) with roots exp(-2 pi i k/m).
static void radix2_fft(FftPlan::Complex* a, int64_t m, const std::vector<FftPlan::Complex>& roots) {
  for (int64_t i = 1, j = 0; i < m; ++i) {
    int64_t bit = m >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (int64_t len = 2; len <= m; len <<= 1) {
    int64_t half = len / 2, step = m / len;
    for (int64_t i = 0; i < m; i += len) {
      for (int64_t k = 0; k < half; ++k) {
        FftPlan::Complex w = roots[k * step];
        FftPlan::Complex u = a[i + k], v = a[i + k + half] * w;
        a[i + k] = u + v;
        a[i + k + half] = u - v;
      }
    }
  }
}

FftPlan::FftPlan(int64_t n) : n_(n) {
  if (n <= 1) {
    m_ = n;
    return;
  }
  if (is_power_of_two(n)) {
    m_ = n;
    roots_ = make_roots(m_);
    return;
  }
  m_ = 1;
  while (m_ < 2 * n - 1) m_ <<= 1;
  roots_ = make_roots(m_);
  chirp_.resize(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    // k^2 mod 2n keeps the angle small so it stays exact for long signals.
    int64_t k2 = static_cast<int64_t>((static_cast<unsigned __int128>(k) * k) % (2 * static_cast<uint64_t>(n)));
    double a = -std::numbers::pi * static_cast<double>(k2) / static_cast<double>(n);
    chirp_[k] = {std::cos(a), std::sin(a)};
  }
  chirp_fft_.assign(static_cast<size_t>(m_), Complex(0, 0));
  chirp_fft_[0] = std::conj(chirp_[0]);
  for (int64_t k = 1; k < n; ++k) chirp_fft_[k] = chirp_fft_[m_ - k] = std::conj(chirp_[k]);
  radix2_fft(chirp_fft_.data(), m_, roots_);
}

void FftPlan::forward(Complex* data, std::vector<Complex>& scratch) const {
  if (n_ <= 1) return;
  if (m_ == n_) {
    radix2_fft(data, m_, roots_);
    return;
  }
  scratch.assign(static_cast<size_t>(m_), Complex(0, 0));
  for (int64_t k = 0; k < n_; ++k) scratch[k] = data[k] * chirp_[k];
  radix2_fft(scratch.data(), m_, roots_);
  // Inverse FFT of the product via conjugation: ifft(z) = conj(fft(conj(z))) / m.
  for (int64_t k = 0; k < m_; ++k) scratch[k] = std::conj(scratch[k] * chirp_fft_[k]);
  radix2_fft(scratch.data(), m_, roots_);
  double inv_m = 1.0 / static_cast<double>(m_);
  for (int64_t k = 0; k < n_; ++k) data[k] = std::conj(scratch[k]) * inv_m * chirp_[k];
}

void FftPlan::transform(Complex* data, bool inverse, std::vector<Complex>& scratch) const {
  if (!inverse) {
    forward(data, scratch);
    return;
  }
  for (int64_t k = 0; k < n_; ++k) data[k] = std::conj(data[k]);
  forward(data, scratch);
  double inv_n = 1.0 / static_cast<double>(n_);
  for (int64_t k = 0; k < n_; ++k) data[k] = std::conj(data[k]) * inv_n;
}

Status check_fft_memory(const KernelContext& ctx, int64_t n, int threads) {
  // Bluestein pads to m < 4n: roots m/2, chirp n, its FFT m; per thread n + m.
  int64_t per_n = 0;
  if (n < 0 || mul_overflows(4, static_cast<int64_t>(std::max(threads, 1)) + 2, &per_n))
    return invalid_argument(ctx.node().describe(), ": transform length ", n, " is out of range");
  HEARTH_ASSIGN_OR_RETURN(int64_t doubles, checked_mul(per_n * 2 + 4, n, "transform memory"));
  return ctx.check_output_shape(DataType::kDouble, {doubles})
      .with_context(str_cat(ctx.node().describe(), ": a transform of length ", n));
}

std::vector<FftWork> make_fft_work(const FftPlan& plan, int threads) {
  std::vector<FftWork> work(static_cast<size_t>(std::max(threads, 1)));
  for (auto& w : work) {
    w.buf.resize(static_cast<size_t>(plan.size()));
    w.scratch.reserve(static_cast<size_t>(plan.scratch_size()));
  }
  return work;
}

// ---------------------------------------------------------------- windows

// Generalized cosine window: w[k] = a0 - a1 cos(2 pi k / N) + a2 cos(4 pi k / N),
// N = size (periodic) or size - 1 (symmetric).
struct CosineWindow {
  double a0, a1, a2;
};

class WindowKernel : public Kernel {
 public:
  explicit WindowKernel(CosineWindow w) : w_(w) {}

  Status init(const KernelInfo& info) override {
    periodic_ = info.node.attr_int("periodic", 1) != 0;
    output_dtype_ = info.node.attr_int("output_datatype", 1);
    if (!is_signal_output_type(output_dtype_)) {
      return invalid_argument("output_datatype ", output_dtype_, " is not a numeric ONNX type");
    }
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(int64_t size, signal_scalar_int(ctx, 0, "size"));
    if (size < 0) return invalid_argument(ctx.node().describe(), ": window size ", size, " is negative");
    Tensor values(DataType::kDouble, {size}, ctx.allocator());
    double* y = values.data<double>();
    double denom = static_cast<double>(periodic_ ? size : size - 1);
    for (int64_t k = 0; k < size; ++k) {
      double x = denom > 0 ? 2.0 * std::numbers::pi * static_cast<double>(k) / denom : 0.0;
      y[k] = w_.a0 - w_.a1 * std::cos(x) + w_.a2 * std::cos(2.0 * x);
    }
    return signal_set_output(ctx, 0, values, static_cast<DataType>(output_dtype_));
  }

 private:
  CosineWindow w_;
  bool periodic_ = true;
  int64_t output_dtype_ = 1;
};

template <int kKind>
class NamedWindowKernel : public WindowKernel {
 public:
  NamedWindowKernel()
      : WindowKernel(kKind == 0   ? CosineWindow{0.5, 0.5, 0.0}
                     : kKind == 1 ? CosineWindow{25.0 / 46.0, 21.0 / 46.0, 0.0}
                                  : CosineWindow{0.42, 0.5, 0.08}) {}
};
using HannWindowKernel = NamedWindowKernel<0>;
using HammingWindowKernel = NamedWindowKernel<1>;
using BlackmanWindowKernel = NamedWindowKernel<2>;

// ---------------------------------------------------------------- MelWeightMatrix

// Triangular mel filter banks, [dft_length/2 + 1, num_mel_bins], following the
// ONNX reference: num_mel_bins + 2 equally spaced mel points mapped to FFT bins.
class MelWeightMatrixKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    output_dtype_ = info.node.attr_int("output_datatype", 1);
    if (!is_signal_output_type(output_dtype_)) {
      return invalid_argument("output_datatype ", output_dtype_, " is not a numeric ONNX type");
    }
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    HEARTH_ASSIGN_OR_RETURN(int64_t num_mel_bins, signal_scalar_int(ctx, 0, "num_mel_bins"));
    HEARTH_ASSIGN_OR_RETURN(int64_t dft_length, signal_scalar_int(ctx, 1, "dft_length"));
    HEARTH_ASSIGN_OR_RETURN(int64_t sample_rate, signal_scalar_int(ctx, 2, "sample_rate"));
    HEARTH_ASSIGN_OR_RETURN(double lower_hz, signal_scalar_float(ctx, 3, "lower_edge_hertz"));
    HEARTH_ASSIGN_OR_RETURN(double upper_hz, signal_scalar_float(ctx, 4, "upper_edge_hertz"));
    if (num_mel_bins <= 0 || dft_length <= 0 || sample_rate <= 0) {
      return invalid_argument(ctx.node().describe(), ": num_mel_bins (", num_mel_bins, "), dft_length (", dft_length,
                              ") and sample_rate (", sample_rate, ") must be positive");
    }
    if (!(lower_hz >= 0) || !(upper_hz >= lower_hz) || !std::isfinite(upper_hz)) {
      return invalid_argument(ctx.node().describe(), ": need 0 <= lower_edge_hertz (", lower_hz,
                              ") <= upper_edge_hertz (", upper_hz, "), both finite");
    }
    const int64_t num_bins = dft_length / 2 + 1;
    HEARTH_RETURN_IF_ERROR(ctx.check_output_shape(DataType::kDouble, {num_bins, num_mel_bins}).with_context(
        ctx.node().describe()));
    HEARTH_ASSIGN_OR_RETURN(std::vector<int64_t> points,
                            mel_points(num_mel_bins, dft_length, sample_rate, lower_hz, upper_hz, ctx.node()));
    Tensor values = Tensor::zeros(DataType::kDouble, {num_bins, num_mel_bins}, ctx.allocator());
    double* out = values.data<double>();
    auto set = [&](int64_t row, int64_t col, double v) {
      if (row >= 0 && row < num_bins) out[row * num_mel_bins + col] = v;
    };
    for (int64_t i = 0; i < num_mel_bins; ++i) {
      int64_t low = points[i], center = points[i + 1], high = points[i + 2];
      // Only rows inside the matrix are written: the points may lie far beyond it.
      if (center == low) {
        set(center, i, 1.0);
      } else {
        for (int64_t j = std::max<int64_t>(low, 0); j <= std::min(center, num_bins - 1); ++j)
          set(j, i, double(j - low) / double(center - low));
      }
      for (int64_t j = std::max<int64_t>(center, 0); j < std::min(high, num_bins); ++j)
        set(j, i, double(high - j) / double(high - center));
    }
    return signal_set_output(ctx, 0, values, static_cast<DataType>(output_dtype_));
  }

 private:
  static Result<std::vector<int64_t>> mel_points(int64_t num_mel_bins, int64_t dft_length, int64_t sample_rate,
                                                 double lower_hz, double upper_hz, const Node& node) {
    auto to_mel = [](double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); };
    double low_mel = to_mel(lower_hz), high_mel = to_mel(upper_hz);
    double step = (high_mel - low_mel) / static_cast<double>(num_mel_bins + 2);
    std::vector<int64_t> points(static_cast<size_t>(num_mel_bins + 2));
    for (int64_t i = 0; i < num_mel_bins + 2; ++i) {
      double hz = 700.0 * (std::pow(10.0, (static_cast<double>(i) * step + low_mel) / 2595.0) - 1.0);
      const double bin = std::floor(static_cast<double>(dft_length + 1) * hz / static_cast<double>(sample_rate));
      if (!(std::fabs(bin) < 0x1p52))
        return invalid_argument(node.describe(), ": upper_edge_hertz ", upper_hz, " maps past any FFT bin");
      points[i] = static_cast<int64_t>(bin);
    }
    return points;
  }

  int64_t output_dtype_ = 1;
};

// Output types of the window / mel ops.
static std::vector<DataType> signal_output_types() { return numeric_types(); }

void register_signal_kernels(KernelRegistry& r) {
  r.add({"HannWindow", "", 17, kMaxOpset, signal_output_types(), kernel_factory<HannWindowKernel>()});
  r.add({"HammingWindow", "", 17, kMaxOpset, signal_output_types(), kernel_factory<HammingWindowKernel>()});
  r.add({"BlackmanWindow", "", 17, kMaxOpset, signal_output_types(), kernel_factory<BlackmanWindowKernel>()});
  r.add({"MelWeightMatrix", "", 17, kMaxOpset, signal_output_types(), kernel_factory<MelWeightMatrixKernel>()});
  register_signal_dft_kernels(r);
}

}  // namespace hearth
