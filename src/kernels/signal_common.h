// Helpers shared by the signal kernels (signal.cc, signal_dft.cc): scalar
// input readers, double <-> any-float conversion of whole tensors, and the
// FFT used by DFT and STFT.
#pragma once

#include <complex>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/kernel.h"

namespace hearth {

// Reads input `index` as a single integer (int32/int64 scalar or 1-element tensor).
Result<int64_t> signal_scalar_int(const KernelContext& ctx, size_t index, const char* what);
// Reads input `index` as a single float value (float/double/float16/bfloat16/integer).
Result<double> signal_scalar_float(const KernelContext& ctx, size_t index, const char* what);

// Copies any float tensor into a double tensor (shares memory when it is already double).
Result<Tensor> signal_to_double(const Tensor& t);

// Sets output `index` to `values` (a double tensor) converted to `dtype`.
Status signal_set_output(KernelContext& ctx, size_t index, const Tensor& values, DataType dtype);

// A precomputed discrete Fourier transform of one length n (any n >= 1):
// radix-2 for powers of two, Bluestein's chirp-z over a radix-2 FFT otherwise.
// Immutable after construction, so one plan may be shared by many threads.
class FftPlan {
 public:
  using Complex = std::complex<double>;
  explicit FftPlan(int64_t n);
  int64_t size() const { return n_; }
  // Elements of scratch transform() needs (0 for powers of two).
  int64_t scratch_size() const { return m_ == n_ ? 0 : m_; }
  // Transforms data[0..n) in place: X[k] = sum_j x[j] exp(-+2 pi i jk/n); the
  // inverse also divides by n. `scratch` is reused between calls by one thread.
  void transform(Complex* data, bool inverse, std::vector<Complex>& scratch) const;

 private:
  void forward(Complex* data, std::vector<Complex>& scratch) const;
  int64_t n_ = 0;
  int64_t m_ = 0;                   // radix-2 size used (n itself, or Bluestein's padded size)
  std::vector<Complex> roots_;      // exp(-2 pi i k / m) for k < m/2
  std::vector<Complex> chirp_;      // Bluestein: exp(-pi i k^2 / n) for k < n
  std::vector<Complex> chirp_fft_;  // Bluestein: FFT of the conjugate chirp filter
};

// Keeps the plan of the last length used, so a kernel run repeatedly on the
// same shape (the usual case) builds its twiddles and chirp only once.
// Not thread safe: one cache per Kernel object (kernels never run concurrently).
// Memory a transform of length n takes: the plan's tables plus `threads` threads'
// buffers, checked against the tensor limit (as if it were one tensor) before any of
// it is allocated. dft_length and frame_length come from the model or an input.
Status check_fft_memory(const KernelContext& ctx, int64_t n, int threads);

// One thread's buffers for FftPlan::transform, made before a parallel region: an
// allocation failure inside one could not be caught.
struct FftWork {
  std::vector<std::complex<double>> buf, scratch;
};
std::vector<FftWork> make_fft_work(const FftPlan& plan, int threads);

class FftPlanCache {
 public:
  const FftPlan& get(int64_t n) {
    if (!plan_ || plan_->size() != n) plan_ = std::make_unique<FftPlan>(n);
    return *plan_;
  }

 private:
  std::unique_ptr<FftPlan> plan_;
};

}  // namespace hearth
