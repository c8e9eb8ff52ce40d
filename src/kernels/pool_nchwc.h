// Max and average pooling over 2-D windows on the 8-channel blocked layout of
// graph/nchwc.h, written by hand: oneDNN 2.6's jit:avx2 pooling took 0.9 ms for
// ResNet's 3x3/2 max pool on 64x112x112, where these loops take about a fifth of
// that (docs/PERFORMANCE.md). An 8-channel block is one vector, so every window
// tap is one vector load and one max or add.
#pragma once

#include <cstdint>

#include "kernels/conv_geometry.h"

namespace hearth {

struct BlockedPool2d {
  int64_t planes = 0;  // n * c / 8
  int64_t ih = 0, iw = 0, oh = 0, ow = 0;
  int64_t kh = 0, kw = 0, sh = 1, sw = 1;
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;  // pads as declared (ceil_mode overhang is beyond pb/pr)
  bool max = true;
  bool count_include_pad = false;  // average only: declared pads count toward the divisor
};

// Whether the window fits these loops: 2-D, no dilation.
bool blocked_pool2d_supported(const Window& w);

// x [planes, ih, iw, 8] -> y [planes, oh, ow, 8]. Semantics as the reference
// (pool_ref.h): max over the taps inside X (-inf when there are none); the average
// divides by the taps inside X, or with count_include_pad by those inside the
// declared pads, never counting a ceil_mode overhang.
void blocked_pool2d(const BlockedPool2d& p, const float* x, float* y, int threads);

}  // namespace hearth
