// Kernel family: detection, GridSample (opset 16, 4-D inputs). Follows
// PyTorch's grid_sample, which produced the ONNX reference data: bilinear /
// nearest / bicubic interpolation, zeros / border / reflection padding,
// align_corners. Math in double; float16 converts through float.
#include <algorithm>
#include <cmath>

#include "kernels/kernel.h"

namespace hearth {

namespace {

enum class GridMode { kBilinear, kNearest, kBicubic };
enum class GridPadding { kZeros, kBorder, kReflection };

template <typename T>
double load(const T& v) {
  if constexpr (std::is_same_v<T, Float16>)
    return half_to_float(v.bits);
  else
    return static_cast<double>(v);
}
template <typename T>
T store(double v) {
  if constexpr (std::is_same_v<T, Float16>)
    return Float16{float_to_half(static_cast<float>(v))};
  else
    return static_cast<T>(v);
}

// Maps a normalized coordinate in [-1, 1] to a pixel coordinate.
double unnormalize(double coord, int64_t size, bool align_corners) {
  return align_corners ? (coord + 1) / 2 * static_cast<double>(size - 1)
                       : ((coord + 1) * static_cast<double>(size) - 1) / 2;
}

double clip(double coord, int64_t size) { return std::min(static_cast<double>(size - 1), std::max(coord, 0.0)); }

// Reflects coord into [twice_low/2, twice_high/2] as many times as needed.
double reflect(double coord, int64_t twice_low, int64_t twice_high) {
  if (twice_low == twice_high) return 0;
  double lo = twice_low / 2.0, span = (twice_high - twice_low) / 2.0;
  coord = std::fabs(coord - lo);
  double extra = std::fmod(coord, span);
  double flips = std::floor(coord / span);  // stays a double: coord may be huge
  return std::fmod(flips, 2.0) == 0 ? extra + lo : span - extra + lo;
}

// Applies the padding mode to a pixel coordinate (zeros: unchanged).
double pad_coordinate(double coord, int64_t size, GridPadding padding, bool align_corners) {
  if (padding == GridPadding::kBorder) return clip(coord, size);
  if (padding == GridPadding::kReflection) {
    coord = align_corners ? reflect(coord, 0, 2 * (size - 1)) : reflect(coord, -1, 2 * size - 1);
    return clip(coord, size);
  }
  return coord;
}

// Keys cubic convolution weights (A = -0.75) for fractional offset t.
void cubic_weights(double t, double w[4]) {
  const double A = -0.75;
  auto near = [&](double x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };
  auto far = [&](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };
  w[0] = far(t + 1);
  w[1] = near(t);
  w[2] = near(1 - t);
  w[3] = far(2 - t);
}

class GridSampleKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    const Node& n = info.node;
    std::string mode = n.attr_string("mode", "bilinear");
    if (mode == "bilinear" || mode == "linear")
      mode_ = GridMode::kBilinear;
    else if (mode == "nearest")
      mode_ = GridMode::kNearest;
    else if (mode == "bicubic" || mode == "cubic")
      mode_ = GridMode::kBicubic;
    else
      return invalid_argument("mode must be bilinear, nearest or bicubic, got '", mode, "'");
    std::string padding = n.attr_string("padding_mode", "zeros");
    if (padding == "zeros")
      padding_ = GridPadding::kZeros;
    else if (padding == "border")
      padding_ = GridPadding::kBorder;
    else if (padding == "reflection")
      padding_ = GridPadding::kReflection;
    else
      return invalid_argument("padding_mode must be zeros, border or reflection, got '", padding, "'");
    align_corners_ = n.attr_int("align_corners", 0) != 0;
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Tensor* x = ctx.input(0);
    const Tensor* grid = ctx.input(1);
    HEARTH_RETURN_IF_ERROR(check_inputs(ctx, x, grid));
    Tensor& y = ctx.allocate_output(0, x->dtype(), {x->dim(0), x->dim(1), grid->dim(1), grid->dim(2)});
    switch (x->dtype()) {
      case DataType::kFloat:
        run<float>(*x, *grid, y, ctx.num_threads());
        break;
      case DataType::kDouble:
        run<double>(*x, *grid, y, ctx.num_threads());
        break;
      case DataType::kFloat16:
        run<Float16>(*x, *grid, y, ctx.num_threads());
        break;
      default:
        return unimplemented(ctx.node().describe(), ": dtype ", dtype_name(x->dtype()),
                             " is not supported (float, double, float16)");
    }
    return ok_status();
  }

 private:
  static Status check_inputs(const KernelContext& ctx, const Tensor* x, const Tensor* grid) {
    const std::string where = ctx.node().describe();
    if (!x || !grid) return invalid_argument(where, ": X and grid are required");
    if (x->rank() != 4) return unimplemented(where, ": only 4-D X [N, C, H, W] is supported, got ", x->describe());
    if (grid->rank() != 4 || grid->dim(0) != x->dim(0) || grid->dim(3) != 2) {
      return invalid_argument(where, ": grid must be [", x->dim(0), ", H_out, W_out, 2], got ", grid->describe());
    }
    if (grid->dtype() != x->dtype()) {
      return invalid_argument(where, ": grid ", grid->describe(), " must have X's dtype ", dtype_name(x->dtype()));
    }
    if (x->dim(2) < 1 || x->dim(3) < 1) {
      if (grid->dim(1) * grid->dim(2) * x->dim(1) > 0)
        return invalid_argument(where, ": X ", x->describe(), " is empty");
    }
    return ok_status();
  }

  template <typename T>
  void run(const Tensor& x, const Tensor& grid, Tensor& y, int threads) const {
    const int64_t n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
    const int64_t oh = grid.dim(1), ow = grid.dim(2);
    const T* xd = x.data<T>();
    const T* gd = grid.data<T>();
    T* yd = y.data<T>();
    const bool big = n * c * oh * ow > 65536;
#pragma omp parallel for collapse(2) num_threads(threads) if (big)
    for (int64_t b = 0; b < n; ++b) {
      for (int64_t p = 0; p < oh * ow; ++p) {
        double gx = unnormalize(load(gd[(b * oh * ow + p) * 2]), w, align_corners_);
        double gy = unnormalize(load(gd[(b * oh * ow + p) * 2 + 1]), h, align_corners_);
        for (int64_t ch = 0; ch < c; ++ch) {
          const T* plane = xd + (b * c + ch) * h * w;
          yd[(b * c + ch) * oh * ow + p] = store<T>(sample(plane, h, w, gy, gx));
        }
      }
    }
  }

  // Value at integral pixel (iy, ix), 0 outside the image. Takes doubles so
  // that far-away coordinates never overflow an integer conversion.
  template <typename T>
  static double at(const T* plane, int64_t h, int64_t w, double iy, double ix) {
    if (!(iy >= 0 && iy < static_cast<double>(h) && ix >= 0 && ix < static_cast<double>(w))) return 0.0;
    return load(plane[static_cast<int64_t>(iy) * w + static_cast<int64_t>(ix)]);
  }

  template <typename T>
  double sample(const T* plane, int64_t h, int64_t w, double y, double x) const {
    if (mode_ == GridMode::kBicubic) return bicubic(plane, h, w, y, x);
    y = pad_coordinate(y, h, padding_, align_corners_);
    x = pad_coordinate(x, w, padding_, align_corners_);
    if (!std::isfinite(x) || !std::isfinite(y)) return 0.0;
    if (mode_ == GridMode::kNearest) {
      return at(plane, h, w, std::nearbyint(y), std::nearbyint(x));
    }
    double fy = std::floor(y), fx = std::floor(x);
    double ly = y - fy, lx = x - fx;
    return at(plane, h, w, fy, fx) * (1 - ly) * (1 - lx) + at(plane, h, w, fy, fx + 1) * (1 - ly) * lx +
           at(plane, h, w, fy + 1, fx) * ly * (1 - lx) + at(plane, h, w, fy + 1, fx + 1) * ly * lx;
  }

  // Bicubic: padding applies to each of the 4x4 taps, not to the sample point.
  template <typename T>
  double bicubic(const T* plane, int64_t h, int64_t w, double y, double x) const {
    if (!std::isfinite(x) || !std::isfinite(y)) return 0.0;
    double fy = std::floor(y), fx = std::floor(x);
    double wy[4], wx[4];
    cubic_weights(y - fy, wy);
    cubic_weights(x - fx, wx);
    double acc = 0;
    for (int i = 0; i < 4; ++i) {
      double ty = pad_coordinate(fy - 1 + i, h, padding_, align_corners_);
      double row = 0;
      for (int j = 0; j < 4; ++j) {
        double tx = pad_coordinate(fx - 1 + j, w, padding_, align_corners_);
        row += wx[j] * at(plane, h, w, std::trunc(ty), std::trunc(tx));
      }
      acc += wy[i] * row;
    }
    return acc;
  }

  GridMode mode_ = GridMode::kBilinear;
  GridPadding padding_ = GridPadding::kZeros;
  bool align_corners_ = false;
};

}  // namespace

void register_detection_grid_kernels(KernelRegistry& r) {
  r.add({"GridSample", "", 16, kMaxOpset, float_types(), kernel_factory<GridSampleKernel>()});
}

}  // namespace hearth
