// Winograd F(2x2, 3x3) (conv_winograd.h) against the double reference conv
// followed by the reference epilogue, on the blocked layout, over geometries
// that exercise edge tiles, asymmetric pads, odd output sizes, channel counts
// that leave a half-filled 16-column block, chunking over many tiles, and 1 and
// 2 threads (two threads split the tiles of the 270-tile case and the output
// channels of the cases with few tiles, including a split that ends mid-block).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/conv_fusion.h"
#include "kernels/conv_ref.h"
#include "kernels/conv_winograd.h"
#include "kernels/nchwc_layout.h"

namespace hearth {
namespace {

struct Case {
  int64_t n, c_in, c_out, ih, iw;
  int64_t pt, pl, pb, pr;
};

std::vector<float> random_values(size_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(count);
  for (float& f : v) f = d(rng);
  return v;
}

// act(conv(x, w) + b + z) in plain NCHW, accumulated in double.
std::vector<float> reference(const Case& c, int64_t oh, int64_t ow, const std::vector<float>& x,
                             const std::vector<float>& w, const std::vector<float>& b, const float* z,
                             const ConvFusion& f) {
  Window win;
  win.in = {c.ih, c.iw};
  win.out = {oh, ow};
  win.kernel = {3, 3};
  win.strides = win.dilations = {1, 1};
  win.pad_begin = {c.pt, c.pl};
  win.pad_end = {c.pb, c.pr};
  std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end()), bd(b.begin(), b.end());
  std::vector<double> yd(static_cast<size_t>(c.n * c.c_out * oh * ow));
  conv_ref<double>(ConvShape{c.n, c.c_in, c.c_out, 1, to_window3(win)}, xd.data(), wd.data(), bd.data(), yd.data(),
                   1);
  std::vector<double> zd;
  if (z) zd.assign(z, z + yd.size());
  apply_conv_fusion<double>(f, z ? zd.data() : nullptr, yd.data(), static_cast<int64_t>(yd.size()));
  return std::vector<float>(yd.begin(), yd.end());
}

TEST(Winograd, matches_reference_over_geometries_epilogues_and_threads) {
  if (!WinogradConv3x3::supported()) GTEST_SKIP() << "the CPU lacks AVX2/FMA";
  const std::vector<Case> cases = {
      {1, 8, 8, 4, 4, 0, 0, 0, 0},      // one tile, no padding
      {1, 16, 24, 7, 7, 1, 1, 1, 1},    // odd output: clipped edge tiles; 24 = 16 + a half block
      {2, 32, 16, 6, 9, 1, 1, 1, 1},    // two images, rectangular
      {1, 8, 8, 5, 6, 2, 0, 1, 2},      // asymmetric pads, a pad of 2 (rows of zeros only)
      {1, 24, 40, 3, 3, 0, 1, 2, 0},    // tiny image, uneven pads
      {3, 16, 32, 20, 17, 1, 1, 1, 1},  // many tiles: several chunks and register-block remainders
      {1, 64, 64, 14, 14, 1, 1, 1, 1},  // a ResNet layer-3-like shape
  };
  std::vector<ConvFusion> epilogues(4);
  epilogues[1].act = ConvActivation::kRelu;
  epilogues[2].act = ConvActivation::kLeakyRelu, epilogues[2].alpha = 0.1f;
  epilogues[3].act = ConvActivation::kClip, epilogues[3].alpha = -0.5f, epilogues[3].beta = 0.75f;
  std::mt19937 rng(7);
  for (const Case& c : cases) {
    const int64_t oh = c.ih + c.pt + c.pb - 2, ow = c.iw + c.pl + c.pr - 2;
    const std::vector<float> x = random_values(c.n * c.c_in * c.ih * c.iw, rng);
    const std::vector<float> w = random_values(c.c_out * c.c_in * 9, rng);
    const std::vector<float> b = random_values(c.c_out, rng);
    const std::vector<float> z = random_values(c.n * c.c_out * oh * ow, rng);
    const WinogradConv3x3 conv(c.c_in, c.c_out, w.data());
    WinogradShape s;
    s.n = c.n, s.c_in = c.c_in, s.c_out = c.c_out, s.ih = c.ih, s.iw = c.iw, s.oh = oh, s.ow = ow;
    s.pad_top = c.pt, s.pad_left = c.pl;
    std::vector<float> xb(x.size()), zb(z.size());
    nchwc_from_plain(x.data(), xb.data(), c.n, c.c_in, c.ih * c.iw, 1);
    nchwc_from_plain(z.data(), zb.data(), c.n, c.c_out, oh * ow, 1);
    for (size_t e = 0; e < epilogues.size(); ++e)
      for (int use : {0, 1, 2})  // no Z; Z in its own buffer; Z accumulated in place (z == y)
        for (int threads : {1, 2, 3}) {  // 3: chunks balanced over an odd team
          const ConvFusion& f = epilogues[e];
          const bool with_z = use > 0, with_bias = (e + use + threads) % 2 == 0;  // half the runs without bias
          const std::vector<float> no_bias(b.size(), 0.0f);
          const std::vector<float> want =
              reference(c, oh, ow, x, w, with_bias ? b : no_bias, with_z ? z.data() : nullptr, f);
          std::vector<float> yb(want.size(), NAN), y(want.size());
          if (use == 2) yb = zb;
          conv.run(s, xb.data(), with_bias ? b.data() : nullptr,
                   use == 1 ? zb.data() : use == 2 ? yb.data() : nullptr, yb.data(), f, threads, nullptr);
          nchwc_to_plain(yb.data(), y.data(), c.n, c.c_out, oh * ow, 1);
          double worst = 0;
          size_t at = 0;
          for (size_t i = 0; i < y.size(); ++i) {
            const double err = std::abs(static_cast<double>(y[i]) - want[i]) / (1.0 + std::abs(want[i]));
            if (std::isnan(err) || err > worst) {  // NaN (an unwritten output) counts as the worst
              worst = std::isnan(err) ? INFINITY : err;
              at = i;
            }
          }
          EXPECT_LE(worst, 1e-5) << "case n=" << c.n << " c_in=" << c.c_in << " c_out=" << c.c_out << " " << c.ih
                                 << "x" << c.iw << " pads " << c.pt << "," << c.pl << "," << c.pb << "," << c.pr
                                 << " epilogue " << e << " z " << use << " bias " << with_bias << " threads "
                                 << threads << ": output " << at
                                 << " is " << y[at] << ", want " << want[at];
        }
  }
}

// NaN stays NaN through every epilogue (max/min intrinsics drop a NaN in their
// first operand): each output whose 3x3 window holds the NaN input is NaN.
TEST(Winograd, nan_input_stays_nan_through_the_epilogue) {
  if (!WinogradConv3x3::supported()) GTEST_SKIP() << "the CPU lacks AVX2/FMA";
  const int64_t c = 8, h = 6, w = 6;
  std::mt19937 rng(3);
  std::vector<float> x = random_values(c * h * w, rng), wt = random_values(c * c * 9, rng), xb(x.size());
  x[2 * w + 3] = NAN;  // channel 0, row 2, column 3
  nchwc_from_plain(x.data(), xb.data(), 1, c, h * w, 1);
  const WinogradConv3x3 conv(c, c, wt.data());
  WinogradShape s;
  s.n = 1, s.c_in = c, s.c_out = c, s.ih = h, s.iw = w, s.oh = h, s.ow = w, s.pad_top = 1, s.pad_left = 1;
  std::vector<ConvFusion> epilogues(3);
  epilogues[0].act = ConvActivation::kRelu;
  epilogues[1].act = ConvActivation::kClip, epilogues[1].alpha = 0.0f, epilogues[1].beta = 6.0f;
  epilogues[2].act = ConvActivation::kLeakyRelu, epilogues[2].alpha = 0.1f;
  for (const ConvFusion& f : epilogues) {
    std::vector<float> yb(x.size()), y(x.size());
    conv.run(s, xb.data(), nullptr, nullptr, yb.data(), f, 1, nullptr);
    nchwc_to_plain(yb.data(), y.data(), 1, c, h * w, 1);
    for (int64_t oc = 0; oc < c; ++oc)
      for (int64_t r = 1; r <= 3; ++r)
        for (int64_t q = 2; q <= 4; ++q)
          EXPECT_TRUE(std::isnan(y[(oc * h + r) * w + q])) << "channel " << oc << " row " << r << " col " << q;
  }
}

}  // namespace
}  // namespace hearth
