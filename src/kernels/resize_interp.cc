// Kernel family: resize, reference path. Per-axis tap tables follow ONNX's
// numpy reference (onnx/backend/test/case/node/resize.py) in double
// precision: coordinate transform, neighbour choice (edge-clamped), linear /
// cubic coefficients, exclude_outside renormalization, tf_crop_and_resize
// extrapolation. The tensor is then resized one axis at a time.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/resize_common.h"
#include "kernels/wrapping.h"

namespace hearth {
namespace {

// Source coordinate of output index o, or NaN when it must be extrapolated.
double source_coord(const ResizeConfig& cfg, const ResizePlan& plan, const Shape& in, size_t d, int64_t o) {
  double scale = plan.scales[d];
  double in_w = static_cast<double>(in[d]);
  double out_w = scale * in_w;
  double x = static_cast<double>(o);
  switch (cfg.coord) {
    case CoordMode::kAlignCorners:
      return out_w == 1.0 ? 0.0 : x * (in_w - 1) / (out_w - 1);
    case CoordMode::kAsymmetric:
      return x / scale;
    case CoordMode::kPytorchHalfPixel:
      return out_w == 1.0 ? -0.5 : (x + 0.5) / scale - 0.5;
    case CoordMode::kTfHalfPixelForNn:
      return (x + 0.5) / scale;
    case CoordMode::kTfCropAndResize: {
      size_t rank = in.size();
      double r0 = plan.roi[d], r1 = plan.roi[d + rank];
      double v = out_w == 1.0 ? (r1 - r0) * (in_w - 1) / 2 : x * (r1 - r0) * (in_w - 1) / (out_w - 1);
      v += r0 * (in_w - 1);
      if (v < 0 || v > in_w - 1) return std::nan("");
      return v;
    }
    case CoordMode::kHalfPixel:
    default:
      return (x + 0.5) / scale - 0.5;
  }
}

int64_t nearest_index(const ResizeConfig& cfg, double x, double scale) {
  double f = std::floor(x);
  if (x == f) return static_cast<int64_t>(f);
  double r = x - f;
  switch (cfg.nearest) {
    case NearestMode::kRoundPreferCeil: return static_cast<int64_t>(r < 0.5 ? f : f + 1);
    case NearestMode::kFloor: return static_cast<int64_t>(f);
    case NearestMode::kCeil: return static_cast<int64_t>(f + 1);
    case NearestMode::kSimple: return static_cast<int64_t>(scale < 1.0 ? f + 1 : f);
    case NearestMode::kRoundPreferFloor:
    default: return static_cast<int64_t>(r <= 0.5 ? f : f + 1);
  }
}

void cubic_coeffs(double r, double A, double* c) {
  double s = 1 - r;
  c[0] = ((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A;
  c[1] = ((A + 2) * r - (A + 3)) * r * r + 1;
  c[2] = ((A + 2) * s - (A + 3)) * s * s + 1;
  c[3] = ((A * (s + 1) - 5 * A) * (s + 1) + 8 * A) * (s + 1) - 4 * A;
}

template <typename T>
void interp_pass(const T* src, T* dst, int64_t outer, const AxisTaps& t, int64_t inner, T extrap) {
  std::vector<T> w(t.w.begin(), t.w.end());
  int nt = t.ntaps;
  int64_t rows = outer * t.out;
#pragma omp parallel for if (rows * inner * nt > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    int64_t ob = r / t.out, o = r % t.out;
    T* d = dst + r * inner;
    if (t.extrap[o]) {
      std::fill(d, d + inner, extrap);
      continue;
    }
    const T* s = src + ob * t.in * inner;
    const int64_t* ix = t.idx.data() + o * nt;
    const T* wo = w.data() + o * nt;
    if (inner == 1) {
      T acc = 0;
      for (int j = 0; j < nt; ++j) acc += wo[j] * s[ix[j]];
      d[0] = acc;
      continue;
    }
    const T* s0 = s + ix[0] * inner;
    for (int64_t i = 0; i < inner; ++i) d[i] = wo[0] * s0[i];
    for (int j = 1; j < nt; ++j) {
      if (wo[j] == T(0)) continue;
      const T* sj = s + ix[j] * inner;
      T wj = wo[j];
      for (int64_t i = 0; i < inner; ++i) d[i] += wj * sj[i];
    }
  }
}

template <typename E>
void nearest_pass(const E* src, E* dst, int64_t outer, const AxisTaps& t, int64_t inner, E extrap) {
  int64_t rows = outer * t.out;
#pragma omp parallel for if (rows * inner > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    int64_t ob = r / t.out, o = r % t.out;
    E* d = dst + r * inner;
    if (t.extrap[o]) std::fill(d, d + inner, extrap);
    else std::memcpy(d, src + (ob * t.in + t.idx[o]) * inner, static_cast<size_t>(inner) * sizeof(E));
  }
}

// Runs pass(src, dst, outer, taps, inner) over every non-identity axis, innermost first;
// the last pass writes to `out`. When that order would make an intermediate larger
// than both the input and the output (x [2^17, 1] resized to [1, 2^17] passes through
// [2^17, 2^17]), the shrinking axes go first, which bounds every intermediate by the
// larger of the two; the passes are separable, so only rounding can differ.
template <typename T, typename Pass>
void run_passes(const std::vector<AxisTaps>& taps, const Shape& in_shape, const T* src, T* out, Pass&& pass) {
  std::vector<size_t> axes;
  for (size_t d = taps.size(); d-- > 0;)
    if (!taps[d].identity) axes.push_back(d);
  {
    Shape cur = in_shape, out_shape = in_shape;
    for (size_t d : axes) out_shape[d] = taps[d].out;
    const int64_t bound = std::max(shape_numel(in_shape), shape_numel(out_shape));
    bool too_big = false;
    for (size_t k = 0; k + 1 < axes.size(); ++k) {
      cur[axes[k]] = taps[axes[k]].out;
      auto n = checked_numel(cur);
      too_big = too_big || !n.ok() || *n > bound;
    }
    if (too_big) {
      std::stable_partition(axes.begin(), axes.end(), [&](size_t d) { return taps[d].out < taps[d].in; });
    }
  }
  if (axes.empty()) {
    std::memcpy(out, src, static_cast<size_t>(shape_numel(in_shape)) * sizeof(T));
    return;
  }
  Shape cur = in_shape;
  std::vector<T> a, b;
  const T* s = src;
  for (size_t k = 0; k < axes.size(); ++k) {
    size_t d = axes[k];
    int64_t outer = 1, inner = 1;
    for (size_t i = 0; i < d; ++i) outer *= cur[i];
    for (size_t i = d + 1; i < cur.size(); ++i) inner *= cur[i];
    cur[d] = taps[d].out;
    T* dst = out;
    if (k + 1 < axes.size()) {
      std::vector<T>& buf = (s == a.data() && !a.empty()) ? b : a;
      buf.resize(static_cast<size_t>(shape_numel(cur)));
      dst = buf.data();
    }
    pass(s, dst, outer, taps[d], inner);
    s = dst;
  }
}

template <typename E>
E extrap_as(double v, DataType dt) {
  Tensor t = Tensor::scalar<float>(static_cast<float>(v));
  auto c = cast_tensor(t, dt);
  E e{};
  if (c.ok()) std::memcpy(&e, c->raw_data(), sizeof(E));
  return e;
}

template <typename E>
void resize_nearest_bytes(const std::vector<AxisTaps>& taps, const Tensor& x, Tensor& y, double extrapolation) {
  E ex = extrap_as<E>(extrapolation, x.dtype());
  run_passes<E>(taps, x.shape(), static_cast<const E*>(x.raw_data()), static_cast<E*>(y.raw_data()),
                [&](const E* s, E* d, int64_t outer, const AxisTaps& t, int64_t inner) {
                  nearest_pass<E>(s, d, outer, t, inner, ex);
                });
}

template <typename T>
void resize_interp_typed(const std::vector<AxisTaps>& taps, const Shape& shape, const T* src, T* dst,
                         double extrapolation) {
  run_passes<T>(taps, shape, src, dst, [&](const T* s, T* d, int64_t outer, const AxisTaps& t, int64_t inner) {
    interp_pass<T>(s, d, outer, t, inner, static_cast<T>(extrapolation));
  });
}

Status resize_interp(const ResizeConfig& cfg, const std::vector<AxisTaps>& taps, const Tensor& x, Tensor& y,
                     const Node& node) {
  switch (x.dtype()) {
    case DataType::kFloat:
      resize_interp_typed<float>(taps, x.shape(), x.data<float>(), y.data<float>(), cfg.extrapolation);
      return ok_status();
    case DataType::kDouble:
      resize_interp_typed<double>(taps, x.shape(), x.data<double>(), y.data<double>(), cfg.extrapolation);
      return ok_status();
    case DataType::kFloat16:
    case DataType::kBFloat16: {
      HEARTH_ASSIGN_OR_RETURN(Tensor xf, cast_tensor(x, DataType::kFloat));
      Tensor yf(DataType::kFloat, y.shape());
      resize_interp_typed<float>(taps, x.shape(), xf.data<float>(), yf.data<float>(), cfg.extrapolation);
      HEARTH_ASSIGN_OR_RETURN(Tensor yc, cast_tensor(yf, x.dtype()));
      std::memcpy(y.raw_data(), yc.raw_data(), y.nbytes());
      return ok_status();
    }
    case DataType::kUInt8:
    case DataType::kInt8:
    case DataType::kUInt16:
    case DataType::kInt16:
    case DataType::kInt32:
    case DataType::kInt64: {
      // Integer tensors (uint8 / int8 in quantized models): interpolate in float,
      // then round half to even and saturate to the type's range.
      HEARTH_ASSIGN_OR_RETURN(Tensor xf, cast_tensor(x, DataType::kFloat));
      Tensor yf(DataType::kFloat, y.shape());
      resize_interp_typed<float>(taps, x.shape(), xf.data<float>(), yf.data<float>(), cfg.extrapolation);
      return dispatch_arith(
          y.dtype(),
          [&](auto tag) -> Status {
            using T = decltype(tag);
            if constexpr (std::is_integral_v<T>) {
              for (int64_t i = 0; i < y.numel(); ++i)
                y.data<T>()[i] = saturating_cast<T>(std::nearbyint(static_cast<double>(yf.data<float>()[i])));
            }
            return ok_status();
          },
          [&]() -> Status { return internal_error("unreachable dtype"); });
    }
    default:
      return unimplemented(node.describe(), ": linear/cubic Resize of dtype ", dtype_name(x.dtype()),
                           " is not supported");
  }
}

Status resize_reference_into(const ResizeConfig& cfg, const ResizePlan& plan, const Tensor& x, Tensor& y,
                             const Node& node) {
  if (y.numel() == 0) return ok_status();
  if (x.numel() == 0) return invalid_argument(node.describe(), ": cannot resize an empty input to ", shape_str(plan.out));
  std::vector<AxisTaps> taps;
  for (size_t d = 0; d < x.rank(); ++d) taps.push_back(make_axis_taps(cfg, plan, x.shape(), d));
  if (cfg.mode != InterpMode::kNearest) return resize_interp(cfg, taps, x, y, node);
  switch (dtype_size(x.dtype())) {
    case 1: resize_nearest_bytes<uint8_t>(taps, x, y, cfg.extrapolation); break;
    case 2: resize_nearest_bytes<uint16_t>(taps, x, y, cfg.extrapolation); break;
    case 4: resize_nearest_bytes<uint32_t>(taps, x, y, cfg.extrapolation); break;
    case 8: resize_nearest_bytes<uint64_t>(taps, x, y, cfg.extrapolation); break;
    default: return unimplemented(node.describe(), ": Resize of dtype ", dtype_name(x.dtype()));
  }
  return ok_status();
}

}  // namespace

AxisTaps make_axis_taps(const ResizeConfig& cfg, const ResizePlan& plan, const Shape& in, size_t d) {
  AxisTaps t;
  t.in = in[d];
  t.out = plan.out[d];
  t.ntaps = cfg.mode == InterpMode::kNearest ? 1 : cfg.mode == InterpMode::kLinear ? 2 : 4;
  t.idx.assign(static_cast<size_t>(t.out * t.ntaps), 0);
  t.w.assign(static_cast<size_t>(t.out * t.ntaps), 0.0);
  t.extrap.assign(static_cast<size_t>(t.out), 0);
  bool identity = t.in == t.out;
  for (int64_t o = 0; o < t.out; ++o) {
    double x = source_coord(cfg, plan, in, d, o);
    int64_t* ix = t.idx.data() + o * t.ntaps;
    double* w = t.w.data() + o * t.ntaps;
    if (std::isnan(x)) {
      t.extrap[o] = 1;
      identity = false;
      continue;
    }
    if (cfg.mode == InterpMode::kNearest) {
      ix[0] = std::clamp<int64_t>(nearest_index(cfg, x, plan.scales[d]), 0, t.in - 1);
      w[0] = 1.0;
    } else {
      double f = std::floor(x);
      int64_t base = static_cast<int64_t>(f);
      double r = x - f;
      if (r == 0.0) {  // the reference takes the left neighbour with ratio 1
        base -= 1;
        r = 1.0;
      }
      if (cfg.mode == InterpMode::kLinear) {
        ix[0] = base;
        ix[1] = base + 1;
        w[0] = 1 - r;
        w[1] = r;
      } else {
        for (int j = 0; j < 4; ++j) ix[j] = base - 1 + j;
        cubic_coeffs(r, cfg.cubic_a, w);
      }
      if (cfg.exclude_outside) {
        double sum = 0;
        for (int j = 0; j < t.ntaps; ++j) {
          if (ix[j] < 0 || ix[j] >= t.in) w[j] = 0;
          sum += w[j];
        }
        if (sum != 0)
          for (int j = 0; j < t.ntaps; ++j) w[j] /= sum;
      }
      for (int j = 0; j < t.ntaps; ++j) ix[j] = std::clamp<int64_t>(ix[j], 0, t.in - 1);
    }
    for (int j = 0; j < t.ntaps; ++j)
      if (w[j] != 0.0 && (ix[j] != o || w[j] != 1.0)) identity = false;
  }
  t.identity = identity;
  return t;
}

Result<Tensor> resize_reference(const ResizeConfig& cfg, const ResizePlan& plan, const Tensor& x, const Node& node) {
  Tensor y(x.dtype(), plan.out);
  HEARTH_RETURN_IF_ERROR(resize_reference_into(cfg, plan, x, y, node));
  return y;
}

Status run_resize(const ResizeConfig& cfg, const ResizePlan& plan, const Tensor& x, KernelContext& ctx) {
  Tensor& y = ctx.allocate_output(0, x.dtype(), plan.out);
  if (resize_fast_2x(cfg, plan, x, y)) return ok_status();
  return resize_reference_into(cfg, plan, x, y, ctx.node());
}

}  // namespace hearth
