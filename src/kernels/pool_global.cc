// Pooling family, part 2: GlobalAveragePool, GlobalMaxPool, GlobalLpPool,
// MaxUnpool and MaxRoiPool (plain loops; the global pools are one contiguous
// reduction per channel plane).
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/conv_geometry.h"
#include "kernels/kernel.h"
#include "kernels/pool_kernels.h"

namespace hearth {
namespace {

enum class GlobalOp { kAvg, kMax, kLp };

template <GlobalOp kOp, typename T>
void global_pool(const T* x, T* y, int64_t planes, int64_t plane, double p, int threads) {
  const bool par = planes * plane > (1 << 16);
#pragma omp parallel for num_threads(threads) if (par) schedule(static)
  for (int64_t i = 0; i < planes; ++i) {
    const T* src = x + i * plane;
    if constexpr (kOp == GlobalOp::kMax) {
      T m = src[0];
      for (int64_t j = 1; j < plane; ++j) m = src[j] > m ? src[j] : m;
      y[i] = m;
    } else if constexpr (kOp == GlobalOp::kAvg) {
      // Eight partial sums: the compiler vectorizes them without reassociating.
      T part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t j = 0;
      for (; j + 8 <= plane; j += 8)
        for (int u = 0; u < 8; ++u) part[u] += src[j + u];
      T sum = 0;
      for (; j < plane; ++j) sum += src[j];
      for (int u = 0; u < 8; ++u) sum += part[u];
      y[i] = sum / static_cast<T>(plane);
    } else {
      double sum = 0;
      for (int64_t j = 0; j < plane; ++j) sum += std::pow(std::fabs(static_cast<double>(src[j])), p);
      y[i] = static_cast<T>(std::pow(sum, 1.0 / p));
    }
  }
}

template <GlobalOp kOp>
class GlobalPoolKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    p_ = info.node.attr_float("p", 2.0f);
    if (p_ <= 0) return invalid_argument("p must be positive, got ", p_);
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* x = ctx.input(0);
    if (!x) return invalid_argument(node.describe(), ": input X is required");
    if (x->rank() < 3) return invalid_argument(node.describe(), ": X must have rank >= 3, got ", x->describe());
    Shape out_shape(x->rank(), 1);
    out_shape[0] = x->dim(0), out_shape[1] = x->dim(1);
    const int64_t planes = x->dim(0) * x->dim(1);
    const int64_t plane = planes == 0 ? 0 : x->numel() / planes;
    if (planes > 0 && plane == 0) return invalid_argument(node.describe(), ": empty spatial dims in ", x->describe());
    const int threads = std::max(1, ctx.num_threads());
    if (x->dtype() == DataType::kFloat16 || x->dtype() == DataType::kBFloat16) {
      HEARTH_ASSIGN_OR_RETURN(Tensor xf, cast_tensor(*x, DataType::kFloat));
      Tensor yf(DataType::kFloat, out_shape);
      global_pool<kOp, float>(xf.data<float>(), yf.data<float>(), planes, plane, p_, threads);
      HEARTH_ASSIGN_OR_RETURN(Tensor yc, cast_tensor(yf, x->dtype()));
      ctx.set_output(0, yc);
      return ok_status();
    }
    Tensor& y = ctx.allocate_output(0, x->dtype(), out_shape);
    if (x->dtype() == DataType::kFloat) {
      global_pool<kOp, float>(x->data<float>(), y.data<float>(), planes, plane, p_, threads);
    } else if (x->dtype() == DataType::kDouble) {
      global_pool<kOp, double>(x->data<double>(), y.data<double>(), planes, plane, p_, threads);
    } else {
      return unimplemented(node.describe(), ": dtype ", dtype_name(x->dtype()), " is not supported");
    }
    return ok_status();
  }

 private:
  double p_ = 2.0;
};

// MaxUnpool: scatters X into zeros at the positions in I. Indices address the
// default output shape ((in-1)*stride + kernel - pads); with an explicit
// output_shape each index is unraveled there and raveled into the given shape
// (what the ONNX reference data does).
class MaxUnpoolKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    HEARTH_RETURN_IF_ERROR(parse_window_attrs(info.node, &attrs_));
    if (attrs_.kernel_shape.empty()) return invalid_argument("kernel_shape is required");
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* x = ctx.input(0);
    const Tensor* ind = ctx.input(1);
    if (!x || !ind) return invalid_argument(node.describe(), ": inputs X and I are required");
    if (x->rank() < 3) return invalid_argument(node.describe(), ": X must have rank >= 3, got ", x->describe());
    if (ind->dtype() != DataType::kInt64 || ind->shape() != x->shape())
      return invalid_argument(node.describe(), ": I ", ind->describe(), " must be int64 with the shape of X ",
                              x->describe());
    HEARTH_ASSIGN_OR_RETURN(Shape def_shape, default_shape(node, *x));
    Shape out_shape = def_shape;
    if (const Tensor* os = ctx.input(2)) {
      HEARTH_ASSIGN_OR_RETURN(out_shape, tensor_to_int64s(*os));
      if (out_shape.size() != x->rank())
        return invalid_argument(node.describe(), ": output_shape ", shape_str(out_shape), " must have rank ",
                                x->rank());
      for (size_t i = 0; i < out_shape.size(); ++i)
        if (out_shape[i] < (i < 2 ? x->dim(i) : def_shape[i]))
          return invalid_argument(node.describe(), ": output_shape ", shape_str(out_shape),
                                  " is smaller than the default ", shape_str(def_shape));
    }
    Tensor& y = ctx.allocate_output(0, x->dtype(), out_shape);
    const size_t es = dtype_size(x->dtype());
    std::fill_n(static_cast<char*>(y.raw_data()), y.nbytes(), 0);
    const std::vector<int64_t> def_strides = shape_strides(def_shape), out_strides = shape_strides(out_shape);
    const int64_t def_numel = shape_numel(def_shape);
    const int64_t* idx = ind->data<int64_t>();
    const char* src = static_cast<const char*>(x->raw_data());
    char* dst = static_cast<char*>(y.raw_data());
    for (int64_t i = 0; i < x->numel(); ++i) {
      int64_t flat = idx[i];
      if (flat < 0 || flat >= def_numel)
        return invalid_argument(node.describe(), ": index ", flat, " is out of range for output ",
                                shape_str(def_shape));
      int64_t off = 0;
      for (size_t d = 0; d < def_shape.size(); ++d) {
        off += (flat / def_strides[d]) * out_strides[d];
        flat %= def_strides[d];
      }
      std::copy_n(src + i * es, es, dst + off * es);
    }
    return ok_status();
  }

 private:
  Result<Shape> default_shape(const Node& node, const Tensor& x) const {
    const std::vector<int64_t> in_sp(x.shape().begin() + 2, x.shape().end());
    WindowAttrs a = attrs_;
    a.auto_pad = AutoPad::kNotSet;
    HEARTH_ASSIGN_OR_RETURN(Window w, resolve_window(a, in_sp, attrs_.kernel_shape, node));  // validates ranks
    Shape s = {x.dim(0), x.dim(1)};
    for (size_t i = 0; i < w.rank(); ++i) {
      const int64_t v = (w.in[i] - 1) * w.strides[i] + w.kernel[i] - w.pad_begin[i] - w.pad_end[i];
      if (v <= 0) return invalid_argument(node.describe(), ": default output size ", v, " is not positive");
      s.push_back(v);
    }
    return s;
  }

  WindowAttrs attrs_;
};

// MaxRoiPool: max over each ROI cell, as ONNX Runtime computes it (rounded ROI
// corners, floor/ceil cell borders, empty cells give 0).
class MaxRoiPoolKernel : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    pooled_ = info.node.attr_ints("pooled_shape");
    scale_ = info.node.attr_float("spatial_scale", 1.0f);
    if (pooled_.size() != 2 || pooled_[0] <= 0 || pooled_[1] <= 0)
      return invalid_argument("pooled_shape must be two positive values");
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* x = ctx.input(0);
    const Tensor* rois = ctx.input(1);
    if (!x || !rois) return invalid_argument(node.describe(), ": inputs X and rois are required");
    if (x->rank() != 4) return invalid_argument(node.describe(), ": X must be 4-D, got ", x->describe());
    if (rois->rank() != 2 || rois->dim(1) != 5 || rois->dtype() != x->dtype())
      return invalid_argument(node.describe(), ": rois ", rois->describe(), " must be [num_rois, 5] of X's dtype");
    HEARTH_ASSIGN_OR_RETURN(Tensor xf, cast_tensor(*x, DataType::kDouble));
    HEARTH_ASSIGN_OR_RETURN(Tensor rf, cast_tensor(*rois, DataType::kDouble));
    Tensor yd(DataType::kDouble, {rois->dim(0), x->dim(1), pooled_[0], pooled_[1]});
    HEARTH_RETURN_IF_ERROR(pool(node, xf, rf, &yd));
    HEARTH_ASSIGN_OR_RETURN(Tensor y, cast_tensor(yd, x->dtype()));
    ctx.set_output(0, y);
    return ok_status();
  }

 private:
  Status pool(const Node& node, const Tensor& x, const Tensor& rois, Tensor* y) const {
    const int64_t C = x.dim(1), H = x.dim(2), W = x.dim(3), ph_n = pooled_[0], pw_n = pooled_[1];
    const double* r = rois.data<double>();
    double* out = y->data<double>();
    // Corners far outside the image (or not finite) are clamped before any integer
    // conversion; the windows are clamped to the image below anyway.
    auto corner = [&](double v) {
      const double c = v * scale_;
      return std::llround(c != c ? 0.0 : std::clamp(c, -0x1p40, 0x1p40));
    };
    for (int64_t n = 0; n < rois.dim(0); ++n, r += 5) {
      if (!(r[0] >= 0 && r[0] < static_cast<double>(x.dim(0))))
        return invalid_argument(node.describe(), ": roi ", n, " has batch index ", r[0], " outside [0, ", x.dim(0), ")");
      const int64_t b = static_cast<int64_t>(r[0]);
      const int64_t x0 = corner(r[1]), y0 = corner(r[2]);
      const int64_t x1 = corner(r[3]), y1 = corner(r[4]);
      const double bin_h = static_cast<double>(std::max<int64_t>(y1 - y0 + 1, 1)) / ph_n;
      const double bin_w = static_cast<double>(std::max<int64_t>(x1 - x0 + 1, 1)) / pw_n;
      for (int64_t c = 0; c < C; ++c) {
        const double* plane = x.data<double>() + (b * C + c) * H * W;
        for (int64_t ph = 0; ph < ph_n; ++ph)
          for (int64_t pw = 0; pw < pw_n; ++pw, ++out) {
            const int64_t hs = std::clamp<int64_t>(static_cast<int64_t>(std::floor(ph * bin_h)) + y0, 0, H);
            const int64_t he = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((ph + 1) * bin_h)) + y0, 0, H);
            const int64_t ws = std::clamp<int64_t>(static_cast<int64_t>(std::floor(pw * bin_w)) + x0, 0, W);
            const int64_t we = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((pw + 1) * bin_w)) + x0, 0, W);
            double m = (he <= hs || we <= ws) ? 0.0 : -std::numeric_limits<double>::infinity();
            for (int64_t h = hs; h < he; ++h)
              for (int64_t w = ws; w < we; ++w) m = std::max(m, plane[h * W + w]);
            *out = m;
          }
      }
    }
    return ok_status();
  }

  std::vector<int64_t> pooled_;
  double scale_ = 1.0;
};

}  // namespace

void register_pool_global_kernels(KernelRegistry& r) {
  r.add({"GlobalAveragePool", "", 1, kMaxOpset, float_types(), kernel_factory<GlobalPoolKernel<GlobalOp::kAvg>>()});
  r.add({"GlobalMaxPool", "", 1, kMaxOpset, float_types(), kernel_factory<GlobalPoolKernel<GlobalOp::kMax>>()});
  r.add({"GlobalLpPool", "", 1, kMaxOpset, float_types(), kernel_factory<GlobalPoolKernel<GlobalOp::kLp>>()});
  r.add({"MaxUnpool", "", 9, kMaxOpset, all_types(), kernel_factory<MaxUnpoolKernel>()});
  r.add({"MaxRoiPool", "", 1, kMaxOpset, float_types(), kernel_factory<MaxRoiPoolKernel>()});
}

}  // namespace hearth
