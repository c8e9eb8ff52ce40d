// Kernel family: quantized. QuantizeLinear, DequantizeLinear and
// DynamicQuantizeLinear live here, with the family's shared helpers; the
// integer matmuls are in quantized_matmul.cc and the integer convolutions in
// quantized_conv.cc. Rounding is half-to-even with saturation, as ONNX says.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/machine.h"

#include "kernels/kernel.h"
#include "kernels/quantized_common.h"
#include "kernels/register_all.h"

namespace hearth {

Result<std::vector<float>> read_scales(const Tensor& t, const Node& node, const char* what) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  switch (t.dtype()) {
    case DataType::kFloat:
      std::copy(t.data<float>(), t.data<float>() + t.numel(), out.begin());
      break;
    case DataType::kDouble:
      for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(t.data<double>()[i]);
      break;
    case DataType::kFloat16:
      for (size_t i = 0; i < out.size(); ++i) out[i] = half_to_float(t.data<uint16_t>()[i]);
      break;
    default:
      return invalid_argument(node.describe(), ": ", what, " must be a float tensor, got ", t.describe());
  }
  return out;
}

namespace {

// 32 values at a time: x / scale, rounded half to even by the conversion (the
// default MXCSR mode), clamped first as quantize_value does (so huge values and
// NaN saturate the same way), zero point added, packed with saturation.
// Eight values: max(v, lo) returns lo for a NaN v (its second operand), as quantize_value does.
__attribute__((target("avx2"))) inline __m256i quantize8_avx2(const float* p, __m256 s, __m256 lo, __m256 hi,
                                                             __m256i z) {
  const __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(_mm256_loadu_ps(p), s), lo), hi);
  return _mm256_add_epi32(_mm256_cvtps_epi32(v), z);
}

__attribute__((target("avx2"))) void quantize_u8_avx2(const float* x, uint8_t* q, int64_t n, float scale,
                                                     int32_t zero_point) {
  const __m256 s = _mm256_set1_ps(scale);
  const __m256 lo = _mm256_set1_ps(-4194304.0f), hi = _mm256_set1_ps(4194304.0f);
  const __m256i z = _mm256_set1_epi32(zero_point);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i ab =
        _mm256_packs_epi32(quantize8_avx2(x + i, s, lo, hi, z), quantize8_avx2(x + i + 8, s, lo, hi, z));
    const __m256i cd =
        _mm256_packs_epi32(quantize8_avx2(x + i + 16, s, lo, hi, z), quantize8_avx2(x + i + 24, s, lo, hi, z));
    const __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), bytes);
  }
  for (; i < n; ++i) q[i] = quantize_value<uint8_t>(x[i] / scale, zero_point);
}

}  // namespace

void quantize_floats_u8(const float* x, uint8_t* q, int64_t n, float scale, int32_t zero_point, int threads) {
  const bool avx2 = isa_at_least(IsaLevel::kAvx2);
  threads = n < (1 << 16) ? 1 : std::max(1, threads);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    int t = 0, nt = 1;
#ifdef _OPENMP
    t = omp_get_thread_num(), nt = omp_get_num_threads();
#endif
    const int64_t b = n * t / nt / 64 * 64, e = t + 1 == nt ? n : n * (t + 1) / nt / 64 * 64;
    if (avx2) quantize_u8_avx2(x + b, q + b, e - b, scale, zero_point);
    else
      for (int64_t i = b; i < e; ++i) q[i] = quantize_value<uint8_t>(x[i] / scale, zero_point);
  }
}

Result<std::vector<int32_t>> read_zero_points(const Tensor* t, const Node& node, const char* what) {
  if (t == nullptr) return std::vector<int32_t>{0};
  if (t->numel() == 0) return invalid_argument(node.describe(), ": ", what, " is empty");
  std::vector<int32_t> out(static_cast<size_t>(t->numel()));
  switch (t->dtype()) {
    case DataType::kUInt8:
      for (size_t i = 0; i < out.size(); ++i) out[i] = t->data<uint8_t>()[i];
      break;
    case DataType::kInt8:
      for (size_t i = 0; i < out.size(); ++i) out[i] = t->data<int8_t>()[i];
      break;
    case DataType::kInt32:
      for (size_t i = 0; i < out.size(); ++i) out[i] = t->data<int32_t>()[i];
      break;
    default:
      return unimplemented(node.describe(), ": ", what, " dtype ", dtype_name(t->dtype()), " is not supported");
  }
  return out;
}

namespace {

// Splits `shape` around `axis` for per-axis parameters: outer x channels x inner.
struct AxisSplit {
  int64_t outer = 1, channels = 1, inner = 1;
};

Result<AxisSplit> split_for_params(const Shape& shape, int64_t axis, size_t param_count, const Node& node) {
  AxisSplit s;
  if (param_count == 1) {
    s.inner = shape_numel(shape);
    return s;
  }
  HEARTH_ASSIGN_OR_RETURN(int64_t a, normalize_axis(axis, static_cast<int64_t>(shape.size()), node));
  if (shape[a] != static_cast<int64_t>(param_count))
    return invalid_argument(node.describe(), ": per-axis scale has ", param_count, " values but axis ", a,
                            " of input ", shape_str(shape), " has size ", shape[a]);
  for (int64_t i = 0; i < a; ++i) s.outer *= shape[i];
  s.channels = shape[a];
  for (size_t i = a + 1; i < shape.size(); ++i) s.inner *= shape[i];
  return s;
}

Status check_param_pair(const std::vector<float>& scale, const std::vector<int32_t>& zp, const Node& node) {
  if (scale.empty()) return invalid_argument(node.describe(), ": scale is empty");
  if (zp.size() != 1 && zp.size() != scale.size())
    return invalid_argument(node.describe(), ": zero point has ", zp.size(), " values but scale has ", scale.size());
  return ok_status();
}

// Reads element i of a float-like or int32 input as float.
template <typename T>
inline float load_float(const T* p, int64_t i) {
  if constexpr (std::is_same_v<T, Float16>) return half_to_float(p[i].bits);
  else return static_cast<float>(p[i]);
}

class QuantizeLinearKernel final : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    axis_ = info.node.attr_int("axis", 1);
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* x = ctx.input(0);
    if (!x || !ctx.input(1)) return invalid_argument(node.describe(), ": x and y_scale are required");
    HEARTH_ASSIGN_OR_RETURN(auto scale, read_scales(*ctx.input(1), node, "y_scale"));
    HEARTH_ASSIGN_OR_RETURN(auto zp, read_zero_points(ctx.input(2), node, "y_zero_point"));
    HEARTH_RETURN_IF_ERROR(check_param_pair(scale, zp, node));
    HEARTH_ASSIGN_OR_RETURN(AxisSplit s, split_for_params(x->shape(), axis_, scale.size(), node));
    DataType out_type = ctx.input(2) ? ctx.input(2)->dtype() : DataType::kUInt8;
    Tensor& y = ctx.allocate_output(0, out_type, x->shape());
    if (x->dtype() == DataType::kFloat && out_type == DataType::kUInt8 && scale.size() == 1) {
      quantize_floats_u8(x->data<float>(), y.data<uint8_t>(), x->numel(), scale[0], zp[0],
                         std::max(1, ctx.num_threads()));
      return ok_status();
    }
    auto by_input = [&](auto in_tag) -> Status {
      using TI = decltype(in_tag);
      const TI* xp = x->data<TI>();
      if (out_type == DataType::kUInt8) run<TI, uint8_t>(xp, y.data<uint8_t>(), s, scale, zp);
      else if (out_type == DataType::kInt8) run<TI, int8_t>(xp, y.data<int8_t>(), s, scale, zp);
      else return unimplemented(node.describe(), ": QuantizeLinear output dtype ", dtype_name(out_type));
      return ok_status();
    };
    switch (x->dtype()) {
      case DataType::kFloat: return by_input(float{});
      case DataType::kDouble: return by_input(double{});
      case DataType::kFloat16: return by_input(Float16{});
      case DataType::kInt32: return by_input(int32_t{});
      default: return unimplemented(node.describe(), ": QuantizeLinear input dtype ", dtype_name(x->dtype()));
    }
  }

 private:
  template <typename TI, typename Q>
  static void run(const TI* x, Q* y, const AxisSplit& s, const std::vector<float>& scale,
                  const std::vector<int32_t>& zp) {
    int64_t rows = s.outer * s.channels;
#pragma omp parallel for if (rows * s.inner > (1 << 16))
    for (int64_t r = 0; r < rows; ++r) {
      size_t c = static_cast<size_t>(r % s.channels);
      float sc = scale[c];
      int32_t z = zp.size() == 1 ? zp[0] : zp[c];
      int64_t base = r * s.inner;
#pragma omp simd
      for (int64_t i = 0; i < s.inner; ++i) y[base + i] = quantize_value<Q>(load_float(x, base + i) / sc, z);
    }
  }

  int64_t axis_ = 1;
};

class DequantizeLinearKernel final : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    axis_ = info.node.attr_int("axis", 1);
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* x = ctx.input(0);
    if (!x || !ctx.input(1)) return invalid_argument(node.describe(), ": x and x_scale are required");
    HEARTH_ASSIGN_OR_RETURN(auto scale, read_scales(*ctx.input(1), node, "x_scale"));
    HEARTH_ASSIGN_OR_RETURN(auto zp, read_zero_points(ctx.input(2), node, "x_zero_point"));
    HEARTH_RETURN_IF_ERROR(check_param_pair(scale, zp, node));
    if (ctx.input(2) && ctx.input(2)->dtype() != x->dtype())
      return invalid_argument(node.describe(), ": x_zero_point dtype ", dtype_name(ctx.input(2)->dtype()),
                              " differs from x dtype ", dtype_name(x->dtype()));
    HEARTH_ASSIGN_OR_RETURN(AxisSplit s, split_for_params(x->shape(), axis_, scale.size(), node));
    Tensor& y = ctx.allocate_output(0, DataType::kFloat, x->shape());
    switch (x->dtype()) {
      case DataType::kUInt8: run(x->data<uint8_t>(), y.data<float>(), s, scale, zp); break;
      case DataType::kInt8: run(x->data<int8_t>(), y.data<float>(), s, scale, zp); break;
      case DataType::kInt32: run(x->data<int32_t>(), y.data<float>(), s, scale, zp); break;
      default: return unimplemented(node.describe(), ": DequantizeLinear input dtype ", dtype_name(x->dtype()));
    }
    return ok_status();
  }

 private:
  template <typename Q>
  static void run(const Q* x, float* y, const AxisSplit& s, const std::vector<float>& scale,
                  const std::vector<int32_t>& zp) {
    int64_t rows = s.outer * s.channels;
#pragma omp parallel for if (rows * s.inner > (1 << 16))
    for (int64_t r = 0; r < rows; ++r) {
      size_t c = static_cast<size_t>(r % s.channels);
      float sc = scale[c];
      int32_t z = zp.size() == 1 ? zp[0] : zp[c];
      int64_t base = r * s.inner;
      for (int64_t i = 0; i < s.inner; ++i)
        y[base + i] = static_cast<float>(static_cast<int32_t>(x[base + i]) - z) * sc;
    }
  }

  int64_t axis_ = 1;
};

// y_scale = (max(0, max x) - min(0, min x)) / 255, zero point = round(-min / scale), uint8 output.
class DynamicQuantizeLinearKernel final : public Kernel {
 public:
  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* x = ctx.input(0);
    if (!x) return invalid_argument(node.describe(), ": input x is required");
    if (x->dtype() != DataType::kFloat)
      return unimplemented(node.describe(), ": DynamicQuantizeLinear input dtype ", dtype_name(x->dtype()));
    const float* xp = x->data<float>();
    int64_t n = x->numel();
    float lo = 0.0f, hi = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
      lo = std::min(lo, xp[i]);
      hi = std::max(hi, xp[i]);
    }
    float scale = (hi - lo) / 255.0f;
    int32_t zp = 0;
    if (scale > 0.0f) zp = quantize_value<uint8_t>((0.0f - lo) / scale, 0);
    Tensor& y = ctx.allocate_output(0, DataType::kUInt8, x->shape());
    uint8_t* yp = y.data<uint8_t>();
    if (scale > 0.0f) {
#pragma omp parallel for if (n > (1 << 16))
      for (int64_t i = 0; i < n; ++i) yp[i] = quantize_value<uint8_t>(xp[i] / scale, zp);
    } else {
      std::fill(yp, yp + n, uint8_t{0});
    }
    ctx.allocate_output(1, DataType::kFloat, {}).data<float>()[0] = scale;
    ctx.allocate_output(2, DataType::kUInt8, {}).data<uint8_t>()[0] = static_cast<uint8_t>(zp);
    return ok_status();
  }
};

}  // namespace

void register_quantized_kernels(KernelRegistry& r) {
  r.add({"QuantizeLinear", "", 10, kMaxOpset, {DataType::kFloat, DataType::kInt32, DataType::kUInt8, DataType::kInt8},
         kernel_factory<QuantizeLinearKernel>()});
  r.add({"DequantizeLinear", "", 10, kMaxOpset, {DataType::kUInt8, DataType::kInt8, DataType::kInt32, DataType::kFloat},
         kernel_factory<DequantizeLinearKernel>()});
  r.add({"DynamicQuantizeLinear", "", 11, kMaxOpset, {DataType::kFloat, DataType::kUInt8},
         kernel_factory<DynamicQuantizeLinearKernel>()});
  // ONNX Runtime's contrib-domain spellings of the same two ops (same semantics).
  r.add({"QuantizeLinear", "com.microsoft", 1, kMaxOpset, {DataType::kFloat, DataType::kUInt8, DataType::kInt8},
         kernel_factory<QuantizeLinearKernel>()});
  r.add({"DequantizeLinear", "com.microsoft", 1, kMaxOpset, {DataType::kUInt8, DataType::kInt8, DataType::kFloat},
         kernel_factory<DequantizeLinearKernel>()});
  register_quantized_matmul_kernels(r);
  register_quantized_conv_kernels(r);
  register_quantized_contrib_kernels(r);
}

}  // namespace hearth
