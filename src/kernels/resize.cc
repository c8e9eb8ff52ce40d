// Kernel family: resize. Resize (opset 10, 11-13+) and Upsample (7, 9) here;
// Pad lives in resize_pad.cc. Resize is separable: each resized axis gets a
// table of taps (source index + weight per output index, built with the
// formulas of ONNX's numpy reference in double precision), then the tensor is
// resized one axis at a time. Nearest mode is a pure gather, so it works for
// every dtype; linear and cubic run in float (double for double inputs; integer
// inputs are rounded half to even and saturated on the way back).
// Fast twin: float32 NCHW 2x nearest / 2x half-pixel bilinear (resize_fast.cc).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/kernel.h"
#include "kernels/register_all.h"
#include "kernels/resize_common.h"

namespace hearth {
namespace {

Result<CoordMode> parse_coord_mode(const std::string& s, const Node& node) {
  if (s == "half_pixel") return CoordMode::kHalfPixel;
  if (s == "pytorch_half_pixel") return CoordMode::kPytorchHalfPixel;
  if (s == "align_corners") return CoordMode::kAlignCorners;
  if (s == "asymmetric") return CoordMode::kAsymmetric;
  if (s == "tf_crop_and_resize") return CoordMode::kTfCropAndResize;
  if (s == "tf_half_pixel_for_nn") return CoordMode::kTfHalfPixelForNn;
  return invalid_argument(node.describe(), ": unknown coordinate_transformation_mode '", s, "'");
}

Result<NearestMode> parse_nearest_mode(const std::string& s, const Node& node) {
  if (s == "round_prefer_floor") return NearestMode::kRoundPreferFloor;
  if (s == "round_prefer_ceil") return NearestMode::kRoundPreferCeil;
  if (s == "floor") return NearestMode::kFloor;
  if (s == "ceil") return NearestMode::kCeil;
  return invalid_argument(node.describe(), ": unknown nearest_mode '", s, "'");
}

Result<InterpMode> parse_interp_mode(const std::string& s, const Node& node) {
  if (s == "nearest") return InterpMode::kNearest;
  if (s == "linear" || s == "bilinear" || s == "trilinear") return InterpMode::kLinear;
  if (s == "cubic" || s == "bicubic") return InterpMode::kCubic;
  return invalid_argument(node.describe(), ": unknown mode '", s, "'");
}

// Reads an optional float tensor (scales, roi); omitted or empty gives {}.
Result<std::vector<double>> optional_doubles(const Tensor* t, const Node& node, const char* what) {
  if (!t || t->numel() == 0) return std::vector<double>{};
  if (t->dtype() == DataType::kFloat16) {
    std::vector<double> v(static_cast<size_t>(t->numel()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = half_to_float(t->data<uint16_t>()[i]);
    return v;
  }
  auto r = tensor_to_doubles(*t);
  if (!r.ok()) return invalid_argument(node.describe(), ": cannot read ", what, ": ", r.status().message());
  return std::move(r).value();
}

// Resize and Upsample: the versions differ only in where scales / sizes come from.
class ResizeKernel final : public Kernel {
 public:
  Status init(const KernelInfo& info) override {
    const Node& n = info.node;
    upsample_ = n.op_type == "Upsample";
    opset_ = info.opset;
    legacy_ = upsample_ || opset_ < 11;
    HEARTH_ASSIGN_OR_RETURN(cfg_.mode, parse_interp_mode(n.attr_string("mode", "nearest"), n));
    if (legacy_) {
      cfg_.coord = CoordMode::kAsymmetric;
      cfg_.nearest = NearestMode::kSimple;
      if (cfg_.mode == InterpMode::kCubic) return invalid_argument(n.describe(), ": cubic mode needs opset 11");
    } else {
      HEARTH_ASSIGN_OR_RETURN(cfg_.coord,
                              parse_coord_mode(n.attr_string("coordinate_transformation_mode", "half_pixel"), n));
      HEARTH_ASSIGN_OR_RETURN(cfg_.nearest, parse_nearest_mode(n.attr_string("nearest_mode", "round_prefer_floor"), n));
    }
    cfg_.cubic_a = n.attr_float("cubic_coeff_a", -0.75f);
    cfg_.exclude_outside = n.attr_int("exclude_outside", 0) != 0;
    cfg_.extrapolation = n.attr_float("extrapolation_value", 0.0f);
    if (upsample_ && opset_ < 9) {
      for (float f : n.attr_floats("scales")) attr_scales_.push_back(f);
      if (attr_scales_.empty()) return invalid_argument(n.describe(), ": Upsample-7 needs the scales attribute");
    }
    return ok_status();
  }

  Status compute(KernelContext& ctx) override {
    const Node& node = ctx.node();
    const Tensor* x = ctx.input(0);
    if (!x) return invalid_argument(node.describe(), ": input X is required");
    std::vector<double> roi, scales = attr_scales_;
    std::vector<int64_t> sizes;
    if (legacy_) {
      if (!(upsample_ && opset_ < 9)) {
        HEARTH_ASSIGN_OR_RETURN(scales, optional_doubles(ctx.input(1), node, "scales"));
      }
    } else {
      HEARTH_ASSIGN_OR_RETURN(roi, optional_doubles(ctx.input(1), node, "roi"));
      HEARTH_ASSIGN_OR_RETURN(scales, optional_doubles(ctx.input(2), node, "scales"));
      if (const Tensor* s = ctx.input(3); s && s->numel() > 0) {
        auto r = tensor_to_int64s(*s);
        if (!r.ok()) return invalid_argument(node.describe(), ": cannot read sizes: ", r.status().message());
        sizes = std::move(r).value();
      }
    }
    HEARTH_ASSIGN_OR_RETURN(ResizePlan plan, plan_resize(cfg_, x->shape(), scales, sizes, roi, node));
    return run_resize(cfg_, plan, *x, ctx);
  }

 private:
  ResizeConfig cfg_;
  bool upsample_ = false, legacy_ = false;
  int64_t opset_ = 0;
  std::vector<double> attr_scales_;
};

}  // namespace

Result<ResizePlan> plan_resize(const ResizeConfig& cfg, const Shape& in, const std::vector<double>& scales,
                               const std::vector<int64_t>& sizes, const std::vector<double>& roi, const Node& node) {
  size_t rank = in.size();
  ResizePlan p;
  p.out = in;
  p.scales.assign(rank, 1.0);
  if (!sizes.empty()) {
    if (sizes.size() != rank)
      return invalid_argument(node.describe(), ": sizes has ", sizes.size(), " values for input of rank ", rank);
    for (size_t d = 0; d < rank; ++d) {
      if (sizes[d] < 0) return invalid_argument(node.describe(), ": negative size ", sizes[d]);
      p.out[d] = sizes[d];
      p.scales[d] = in[d] > 0 ? static_cast<double>(sizes[d]) / static_cast<double>(in[d]) : 1.0;
    }
  } else if (!scales.empty()) {
    if (scales.size() != rank)
      return invalid_argument(node.describe(), ": scales has ", scales.size(), " values for input of rank ", rank);
    for (size_t d = 0; d < rank; ++d) {
      if (!(scales[d] > 0)) return invalid_argument(node.describe(), ": scale ", scales[d], " must be positive");
      const double out = std::floor(scales[d] * static_cast<double>(in[d]));
      if (!(out < 0x1p62))  // also refuses an infinite scale
        return invalid_argument(node.describe(), ": scale ", scales[d], " makes axis ", d, " of size ", in[d],
                                " too large");
      p.scales[d] = scales[d];
      p.out[d] = static_cast<int64_t>(out);
    }
  } else {
    return invalid_argument(node.describe(), ": one of scales or sizes must be given");
  }
  if (cfg.coord == CoordMode::kTfCropAndResize) {
    if (roi.size() != 2 * rank)
      return invalid_argument(node.describe(), ": tf_crop_and_resize needs roi with ", 2 * rank, " values, got ",
                              roi.size());
    p.roi = roi;
  }
  return p;
}

void register_resize_kernels(KernelRegistry& r) {
  r.add({"Resize", "", 10, kMaxOpset, all_types(), kernel_factory<ResizeKernel>()});
  r.add({"Upsample", "", 7, kMaxOpset, all_types(), kernel_factory<ResizeKernel>()});
  register_pad_kernels(r);
}

}  // namespace hearth
