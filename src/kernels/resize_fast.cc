// Kernel family: resize, fast twin for the float32 NCHW 2x upsamplings that
// detection and segmentation models use (FPN, U-Net, YOLO): nearest 2x and
// half-pixel bilinear 2x on the last two axes. A case qualifies when the
// reference tap tables of H and W equal the fixed 2x pattern, so the fast
// path can never disagree with the reference about which case it handles.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/resize_common.h"

namespace hearth {
namespace {

enum class FastKind { kNone, kNearest2x, kBilinear2x };

bool is_nearest_2x(const AxisTaps& t) {
  if (t.out != 2 * t.in) return false;
  for (int64_t o = 0; o < t.out; ++o)
    if (t.extrap[o] || t.idx[o] != o / 2) return false;
  return true;
}

bool is_bilinear_2x(const AxisTaps& t) {
  if (t.out != 2 * t.in || t.ntaps != 2) return false;
  for (int64_t o = 0; o < t.out; ++o) {
    int64_t i = o / 2;
    int64_t a = o % 2 == 0 ? std::max<int64_t>(i - 1, 0) : i;
    int64_t b = o % 2 == 0 ? i : std::min<int64_t>(i + 1, t.in - 1);
    double wa = o % 2 == 0 ? 0.25 : 0.75;
    if (t.extrap[o] || t.idx[2 * o] != a || t.idx[2 * o + 1] != b || t.w[2 * o] != wa || t.w[2 * o + 1] != 1 - wa)
      return false;
  }
  return true;
}

FastKind classify(const ResizeConfig& cfg, const ResizePlan& plan, const Tensor& x) {
  if (x.dtype() != DataType::kFloat || x.rank() != 4 || x.numel() == 0) return FastKind::kNone;
  if (plan.out[0] != x.dim(0) || plan.out[1] != x.dim(1)) return FastKind::kNone;
  if (plan.out[2] != 2 * x.dim(2) || plan.out[3] != 2 * x.dim(3)) return FastKind::kNone;
  if (cfg.mode == InterpMode::kCubic) return FastKind::kNone;
  AxisTaps th = make_axis_taps(cfg, plan, x.shape(), 2), tw = make_axis_taps(cfg, plan, x.shape(), 3);
  if (cfg.mode == InterpMode::kNearest) return is_nearest_2x(th) && is_nearest_2x(tw) ? FastKind::kNearest2x : FastKind::kNone;
  return is_bilinear_2x(th) && is_bilinear_2x(tw) ? FastKind::kBilinear2x : FastKind::kNone;
}

void nearest_2x(const float* x, float* y, int64_t planes, int64_t H, int64_t W) {
  int64_t rows = planes * H;
#pragma omp parallel for if (rows * W > (1 << 15))
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = x + r * W;
    float* d0 = y + r * 4 * W;  // output rows 2h and 2h+1 of the same plane are adjacent
    for (int64_t j = 0; j < W; ++j) {
      d0[2 * j] = s[j];
      d0[2 * j + 1] = s[j];
    }
    std::memcpy(d0 + 2 * W, d0, static_cast<size_t>(2 * W) * sizeof(float));
  }
}

// out[2j] = 0.25 in[j-1] + 0.75 in[j], out[2j+1] = 0.75 in[j] + 0.25 in[j+1], edges clamped.
// The interior loop has no branches so the compiler can vectorize it.
inline void upsample_row(const float* s, float* d, int64_t W) {
  auto edge = [&](int64_t j) {
    float l = s[j > 0 ? j - 1 : 0], c = s[j], r = s[j + 1 < W ? j + 1 : W - 1];
    d[2 * j] = 0.25f * l + 0.75f * c;
    d[2 * j + 1] = 0.75f * c + 0.25f * r;
  };
  edge(0);
  for (int64_t j = 1; j + 1 < W; ++j) {
    d[2 * j] = 0.25f * s[j - 1] + 0.75f * s[j];
    d[2 * j + 1] = 0.75f * s[j] + 0.25f * s[j + 1];
  }
  if (W > 1) edge(W - 1);
}

void bilinear_2x(const float* x, float* y, int64_t planes, int64_t H, int64_t W) {
  int64_t W2 = 2 * W;
#pragma omp parallel if (planes * H * W > (1 << 14))
  {
    std::vector<float> hrows(static_cast<size_t>(H * W2));
#pragma omp for
    for (int64_t p = 0; p < planes; ++p) {
      const float* s = x + p * H * W;
      float* d = y + p * 4 * H * W;
      for (int64_t h = 0; h < H; ++h) upsample_row(s + h * W, hrows.data() + h * W2, W);
      for (int64_t o = 0; o < 2 * H; ++o) {
        int64_t i = o / 2;
        int64_t a = o % 2 == 0 ? std::max<int64_t>(i - 1, 0) : i;
        int64_t b = o % 2 == 0 ? i : std::min<int64_t>(i + 1, H - 1);
        float wa = o % 2 == 0 ? 0.25f : 0.75f, wb = 1.0f - wa;
        const float* ra = hrows.data() + a * W2;
        const float* rb = hrows.data() + b * W2;
        float* dr = d + o * W2;
        for (int64_t j = 0; j < W2; ++j) dr[j] = wa * ra[j] + wb * rb[j];
      }
    }
  }
}

}  // namespace

bool resize_fast_2x_applies(const ResizeConfig& cfg, const ResizePlan& plan, const Tensor& x) {
  return classify(cfg, plan, x) != FastKind::kNone;
}

bool resize_fast_2x(const ResizeConfig& cfg, const ResizePlan& plan, const Tensor& x, Tensor& y) {
  FastKind k = classify(cfg, plan, x);
  if (k == FastKind::kNone) return false;
  int64_t planes = x.dim(0) * x.dim(1), H = x.dim(2), W = x.dim(3);
  if (k == FastKind::kNearest2x) nearest_2x(x.data<float>(), y.data<float>(), planes, H, W);
  else bilinear_2x(x.data<float>(), y.data<float>(), planes, H, W);
  return true;
}

}  // namespace hearth
