// Kernel family: detection, region-of-interest pooling. RoiAlign (opset 10,
// and 16 with coordinate_transformation_mode) following ONNX Runtime's
// bilinear sampling, and MaxRoiPool (Caffe-style quantized max pooling).
// Computes in float (double for double inputs); float16 converts through float.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/kernel.h"

namespace hearth {

namespace {

template <typename T>
double load(const T& v) {
  if constexpr (std::is_same_v<T, Float16>)
    return half_to_float(v.bits);
  else
    return static_cast<double>(v);
}

// Runs fn(T{}) for float, double and float16 inputs; other dtypes are unimplemented.
template <typename Fn>
Status dispatch_roi_type(const KernelContext& ctx, DataType t, Fn&& fn) {
  switch (t) {
    case DataType::kFloat:
      return fn(float{});
    case DataType::kDouble:
      return fn(double{});
    case DataType::kFloat16:
      return fn(Float16{});
    default:
      return unimplemented(ctx.node().describe(), ": dtype ", dtype_name(t),
                           " is not supported (float, double, float16)");
  }
}

// Validates X [N, C, H, W] and rois [R, cols] with matching dtypes.
Status check_x_rois(const KernelContext& ctx, const Tensor* x, const Tensor* rois, int64_t cols) {
  const std::string where = ctx.node().describe();
  if (!x || !rois) return invalid_argument(where, ": X and rois are required");
  if (x->rank() != 4) return invalid_argument(where, ": X must be 4-D [N, C, H, W], got ", x->describe());
  if (rois->rank() != 2 || rois->dim(1) != cols) {
    return invalid_argument(where, ": rois must be [num_rois, ", cols, "], got ", rois->describe());
  }
  if (rois->dtype() != x->dtype()) {
    return invalid_argument(where, ": rois ", rois->describe(), " must have X's dtype ", dtype_name(x->dtype()));
  }
  return ok_status();
}

// ---------------------------------------------------------------- RoiAlign

// One bilinear sample: four source offsets within a channel plane and weights.
struct Sample {
  int64_t pos[4] = {0, 0, 0, 0};
  double w[4] = {0, 0, 0, 0};
};

Sample bilinear_sample(double y, double x, int64_t height, int64_t width) {
  Sample s;
  // Written so that NaN coordinates also count as outside.
  if (!(y >= -1.0 && y <= static_cast<double>(height) && x >= -1.0 && x <= static_cast<double>(width))) return s;
  y = std::max(y, 0.0);
  x = std::max(x, 0.0);
  int64_t y_low = static_cast<int64_t>(y), x_low = static_cast<int64_t>(x), y_high, x_high;
  if (y_low >= height - 1) {
    y_high = y_low = height - 1;
    y = static_cast<double>(y_low);
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= width - 1) {
    x_high = x_low = width - 1;
    x = static_cast<double>(x_low);
  } else {
    x_high = x_low + 1;
  }
  double ly = y - y_low, lx = x - x_low, hy = 1 - ly, hx = 1 - lx;
  s.pos[0] = y_low * width + x_low;
  s.pos[1] = y_low * width + x_high;
  s.pos[2] = y_high * width + x_low;
  s.pos[3] = y_high * width + x_high;
  s.w[0] = hy * hx;
  s.w[1] = hy * lx;
  s.w[2] = ly * hx;
  s.w[3] = ly * lx;
  return s;
}

class RoiAlignKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    const Node& n = info.node;
    std::string mode = n.attr_string("mode", "avg");
    if (mode != "avg" && mode != "max") return invalid_argument("mode must be 'avg' or 'max', got '", mode, "'");
    max_mode_ = mode == "max";
    std::string ctm =
        n.attr_string("coordinate_transformation_mode", info.opset >= 16 ? "half_pixel" : "output_half_pixel");
    if (ctm != "half_pixel" && ctm != "output_half_pixel") {
      return invalid_argument("coordinate_transformation_mode must be half_pixel or output_half_pixel, got '", ctm,
                              "'");
    }
    half_pixel_ = ctm == "half_pixel";
    out_h_ = n.attr_int("output_height", 1);
    out_w_ = n.attr_int("output_width", 1);
    sampling_ratio_ = n.attr_int("sampling_ratio", 0);
    spatial_scale_ = n.attr_float("spatial_scale", 1.0f);
    if (out_h_ < 1 || out_w_ < 1 || sampling_ratio_ < 0) {
      return invalid_argument("output_height/output_width must be >= 1 and sampling_ratio >= 0");
    }
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Tensor* x = ctx.input(0);
    const Tensor* rois = ctx.input(1);
    const Tensor* idx = ctx.input(2);
    HEARTH_RETURN_IF_ERROR(check_x_rois(ctx, x, rois, 4));
    if (!idx || idx->rank() != 1 || idx->dim(0) != rois->dim(0) || !dtype_is_integer(idx->dtype())) {
      return invalid_argument(ctx.node().describe(), ": batch_indices must be an integer [", rois->dim(0),
                              "] tensor, got ", idx ? idx->describe() : std::string("nothing"));
    }
    if ((x->dim(2) < 1 || x->dim(3) < 1) && rois->dim(0) * x->dim(1) > 0) {
      return invalid_argument(ctx.node().describe(), ": X ", x->describe(), " has an empty spatial dimension");
    }
    HEARTH_ASSIGN_OR_RETURN(std::vector<int64_t> batch, tensor_to_int64s(*idx));
    for (size_t r = 0; r < batch.size(); ++r) {
      if (batch[r] < 0 || batch[r] >= x->dim(0)) {
        return invalid_argument(ctx.node().describe(), ": batch_indices[", r, "] = ", batch[r],
                                " is out of range for batch size ", x->dim(0));
      }
    }
    Tensor& y = ctx.allocate_output(0, x->dtype(), {rois->dim(0), x->dim(1), out_h_, out_w_});
    if (y.numel() == 0) return ok_status();  // no bins to sample, however many rois and bins there are
    return dispatch_roi_type(ctx, x->dtype(), [&](auto tag) {
      using T = decltype(tag);
      return run<T>(ctx, *x, *rois, batch, y);
    });
  }

 private:
  // Where one roi samples: bin origin and size, and samples per bin.
  struct RoiGeometry {
    double start_h = 0, start_w = 0, bin_h = 0, bin_w = 0;
    int64_t grid_h = 0, grid_w = 0;
  };

  // Largest grid of samples per bin accepted (an adaptive grid grows with the roi).
  static constexpr int64_t kMaxSamplesPerBin = int64_t{1} << 24;

  template <typename T>
  Status geometry(const KernelContext& ctx, const T* roi, int64_t r, RoiGeometry& g) const {
    const double offset = half_pixel_ ? 0.5 : 0.0, scale = spatial_scale_;
    g.start_w = load(roi[0]) * scale - offset;
    g.start_h = load(roi[1]) * scale - offset;
    double roi_w = load(roi[2]) * scale - offset - g.start_w, roi_h = load(roi[3]) * scale - offset - g.start_h;
    if (!half_pixel_) {
      roi_w = std::max(roi_w, 1.0);
      roi_h = std::max(roi_h, 1.0);
    }
    g.bin_h = roi_h / static_cast<double>(out_h_);
    g.bin_w = roi_w / static_cast<double>(out_w_);
    double gh = sampling_ratio_ > 0 ? sampling_ratio_ : std::ceil(roi_h / static_cast<double>(out_h_));
    double gw = sampling_ratio_ > 0 ? sampling_ratio_ : std::ceil(roi_w / static_cast<double>(out_w_));
    // Empty, inverted or NaN rois sample nothing; their bins read as 0.
    if (!(gh > 0 && gw > 0)) return ok_status();
    if (gh * gw > static_cast<double>(kMaxSamplesPerBin)) {
      return invalid_argument(ctx.node().describe(), ": roi ", r, " needs ", gh, "x", gw,
                              " samples per bin; set sampling_ratio or check the roi coordinates");
    }
    g.grid_h = static_cast<int64_t>(gh);
    g.grid_w = static_cast<int64_t>(gw);
    return ok_status();
  }

  template <typename T>
  Status run(const KernelContext& ctx, const Tensor& x, const Tensor& rois, const std::vector<int64_t>& batch,
             Tensor& y) const {
    const int64_t num_rois = rois.dim(0), channels = x.dim(1), height = x.dim(2), width = x.dim(3);
    std::vector<RoiGeometry> geo(static_cast<size_t>(num_rois));
    for (int64_t r = 0; r < num_rois; ++r) HEARTH_RETURN_IF_ERROR(geometry(ctx, rois.data<T>() + r * 4, r, geo[r]));
    const T* xd = x.data<T>();
    T* yd = y.data<T>();
    const int64_t bins = out_h_ * out_w_;
    const bool big = num_rois * channels * bins > 4096;
    // Each thread's sample buffer, as large as the largest grid, held to the tensor limit
    // and allocated here: an allocation failure inside the parallel region could not be caught.
    int64_t most = 0;
    for (const RoiGeometry& g : geo) most = std::max(most, g.grid_h * g.grid_w);
    const int threads = std::max(1, ctx.num_threads());
    HEARTH_RETURN_IF_ERROR(ctx.check_output_shape(DataType::kUInt8, {threads, most, int64_t{sizeof(Sample)}})
                               .with_context(ctx.node().describe() + ": sample buffers"));
    std::vector<std::vector<Sample>> buffers(static_cast<size_t>(threads));
    for (auto& b : buffers) b.reserve(static_cast<size_t>(most));
#pragma omp parallel for num_threads(threads) if (big) schedule(dynamic)
    for (int64_t rb = 0; rb < num_rois * bins; ++rb) {
      const int64_t r = rb / bins, ph = (rb % bins) / out_w_, pw = rb % out_w_;
      const RoiGeometry& g = geo[r];
      std::vector<Sample>& samples = buffers[static_cast<size_t>(omp_get_thread_num())];
      samples.clear();
      for (int64_t iy = 0; iy < g.grid_h; ++iy) {
        double yy = g.start_h + ph * g.bin_h + (iy + 0.5) * g.bin_h / static_cast<double>(g.grid_h);
        for (int64_t ix = 0; ix < g.grid_w; ++ix) {
          double xx = g.start_w + pw * g.bin_w + (ix + 0.5) * g.bin_w / static_cast<double>(g.grid_w);
          samples.push_back(bilinear_sample(yy, xx, height, width));
        }
      }
      for (int64_t c = 0; c < channels; ++c) {
        const T* plane = xd + (batch[r] * channels + c) * height * width;
        yd[(r * channels + c) * bins + rb % bins] = pool_bin(plane, samples);
      }
    }
    return ok_status();
  }

  // Average (or ONNX Runtime's max) of one bin's bilinear samples.
  template <typename T>
  T pool_bin(const T* plane, const std::vector<Sample>& samples) const {
    double acc = 0;
    for (size_t k = 0; k < samples.size(); ++k) {
      const Sample& s = samples[k];
      if (!max_mode_) {
        for (int j = 0; j < 4; ++j) acc += s.w[j] * load(plane[s.pos[j]]);
        continue;
      }
      // Max mode takes the largest weighted corner, maximized over samples.
      double v = s.w[0] * load(plane[s.pos[0]]);
      for (int j = 1; j < 4; ++j) v = std::max(v, s.w[j] * load(plane[s.pos[j]]));
      acc = k == 0 ? v : std::max(acc, v);
    }
    double result = max_mode_ ? acc : acc / static_cast<double>(std::max<size_t>(samples.size(), 1));
    if constexpr (std::is_same_v<T, Float16>)
      return Float16{float_to_half(static_cast<float>(result))};
    else
      return static_cast<T>(result);
  }

  bool max_mode_ = false;
  bool half_pixel_ = true;
  int64_t out_h_ = 1, out_w_ = 1, sampling_ratio_ = 0;
  float spatial_scale_ = 1.0f;
};

// ---------------------------------------------------------------- MaxRoiPool

class MaxRoiPoolKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    std::vector<int64_t> shape = info.node.attr_ints("pooled_shape");
    if (shape.size() != 2 || shape[0] < 1 || shape[1] < 1) {
      return invalid_argument("pooled_shape must hold two positive values");
    }
    pooled_h_ = shape[0];
    pooled_w_ = shape[1];
    spatial_scale_ = info.node.attr_float("spatial_scale", 1.0f);
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Tensor* x = ctx.input(0);
    const Tensor* rois = ctx.input(1);
    HEARTH_RETURN_IF_ERROR(check_x_rois(ctx, x, rois, 5));
    Tensor& y = ctx.allocate_output(0, x->dtype(), {rois->dim(0), x->dim(1), pooled_h_, pooled_w_});
    return dispatch_roi_type(ctx, x->dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T* rd = rois->data<T>();
      for (int64_t r = 0; r < rois->dim(0); ++r) {
        double bv = load(rd[r * 5]);
        if (!(bv >= 0 && bv < static_cast<double>(x->dim(0)))) {  // also rejects NaN
          return invalid_argument(ctx.node().describe(), ": roi ", r, " has batch index ", bv,
                                  " out of range for batch size ", x->dim(0));
        }
        const int64_t b = static_cast<int64_t>(bv);
        pool_roi<T>(*x, b, rd + r * 5 + 1, y.data<T>() + r * x->dim(1) * pooled_h_ * pooled_w_);
      }
      return ok_status();
    });
  }

 private:
  template <typename T>
  void pool_roi(const Tensor& x, int64_t b, const T* roi, T* out) const {
    const int64_t channels = x.dim(1), height = x.dim(2), width = x.dim(3);
    // Coordinates are clamped to a range that cannot overflow below (NaN -> 0).
    auto coord = [&](int i) {
      double v = std::round(load(roi[i]) * spatial_scale_);
      return static_cast<int64_t>(v >= -1e12 ? std::min(v, 1e12) : (v < 0 ? -1e12 : 0.0));
    };
    const int64_t x1 = coord(0), y1 = coord(1), x2 = coord(2), y2 = coord(3);
    const double bin_h = static_cast<double>(std::max<int64_t>(y2 - y1 + 1, 1)) / pooled_h_;
    const double bin_w = static_cast<double>(std::max<int64_t>(x2 - x1 + 1, 1)) / pooled_w_;
    for (int64_t c = 0; c < channels; ++c) {
      const T* plane = x.data<T>() + (b * channels + c) * height * width;
      for (int64_t ph = 0; ph < pooled_h_; ++ph) {
        int64_t hs = std::clamp<int64_t>(static_cast<int64_t>(std::floor(ph * bin_h)) + y1, 0, height);
        int64_t he = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((ph + 1) * bin_h)) + y1, 0, height);
        for (int64_t pw = 0; pw < pooled_w_; ++pw) {
          int64_t ws = std::clamp<int64_t>(static_cast<int64_t>(std::floor(pw * bin_w)) + x1, 0, width);
          int64_t we = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((pw + 1) * bin_w)) + x1, 0, width);
          double m = (he <= hs || we <= ws) ? 0.0 : -std::numeric_limits<double>::infinity();
          for (int64_t h = hs; h < he; ++h)
            for (int64_t w = ws; w < we; ++w) m = std::max(m, load(plane[h * width + w]));
          T& dst = out[(c * pooled_h_ + ph) * pooled_w_ + pw];
          if constexpr (std::is_same_v<T, Float16>)
            dst = Float16{float_to_half(static_cast<float>(m))};
          else
            dst = static_cast<T>(m);
        }
      }
    }
  }

  int64_t pooled_h_ = 1, pooled_w_ = 1;
  float spatial_scale_ = 1.0f;
};

}  // namespace

void register_detection_roi_kernels(KernelRegistry& r) {
  r.add({"RoiAlign", "", 10, kMaxOpset, float_types(), kernel_factory<RoiAlignKernel>()});
  r.add({"MaxRoiPool", "", 1, kMaxOpset, float_types(), kernel_factory<MaxRoiPoolKernel>()});
}

}  // namespace hearth
