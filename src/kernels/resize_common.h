// Shared declarations of the resize kernel family: resize.cc (the kernels and
// their shape logic), resize_interp.cc (tap tables and the separable
// reference passes), resize_fast.cc (float32 2x fast paths), resize_pad.cc (Pad).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernel.h"

namespace hearth {

enum class InterpMode { kNearest, kLinear, kCubic };
enum class CoordMode { kHalfPixel, kPytorchHalfPixel, kAlignCorners, kAsymmetric, kTfCropAndResize, kTfHalfPixelForNn };
// kSimple: legacy Upsample / Resize-10 rule (floor when upsampling, ceil when downsampling).
enum class NearestMode { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kSimple };

struct ResizeConfig {
  InterpMode mode = InterpMode::kNearest;
  CoordMode coord = CoordMode::kHalfPixel;
  NearestMode nearest = NearestMode::kRoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0.0;
};

struct ResizePlan {
  Shape out;
  std::vector<double> scales;  // per axis, as the numpy reference uses them (sizes -> out / in)
  std::vector<double> roi;     // 2 * rank values for tf_crop_and_resize, else empty
};

// Taps of one axis: for output index o, taps [o * ntaps, (o + 1) * ntaps) of idx / w;
// extrap[o] != 0 means the output is the extrapolation value.
struct AxisTaps {
  int64_t in = 0, out = 0;
  int ntaps = 1;
  bool identity = false;
  std::vector<int64_t> idx;
  std::vector<double> w;
  std::vector<uint8_t> extrap;
};

// Output shape and per-axis scales from scales or sizes; validates them.
Result<ResizePlan> plan_resize(const ResizeConfig& cfg, const Shape& in, const std::vector<double>& scales,
                               const std::vector<int64_t>& sizes, const std::vector<double>& roi, const Node& node);
// Builds the taps of axis d.
AxisTaps make_axis_taps(const ResizeConfig& cfg, const ResizePlan& plan, const Shape& in, size_t d);
// Computes output 0 of ctx from x by the plan (fast path when one applies, else reference).
Status run_resize(const ResizeConfig& cfg, const ResizePlan& plan, const Tensor& x, KernelContext& ctx);
// The reference path alone (for tests comparing it with the fast path).
Result<Tensor> resize_reference(const ResizeConfig& cfg, const ResizePlan& plan, const Tensor& x, const Node& node);
// float32 2x fast paths: returns true and fills y when (cfg, plan, x) is a supported case.
bool resize_fast_2x(const ResizeConfig& cfg, const ResizePlan& plan, const Tensor& x, Tensor& y);
// Shape check for the fast paths without running them.
bool resize_fast_2x_applies(const ResizeConfig& cfg, const ResizePlan& plan, const Tensor& x);

void register_pad_kernels(KernelRegistry& r);  // resize_pad.cc

}  // namespace hearth
