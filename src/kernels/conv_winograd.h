// Winograd F(2x2, 3x3) convolution on the 8-channel blocked layout of
// graph/nchwc.h: 3x3 kernels, stride 1, dilation 1, group 1, any padding.
//
// Each 2x2 block of outputs ("tile") is computed from its 4x4 input patch with
// 16 multiplications per input channel instead of 36 (Lavin & Gray, "Fast
// Algorithms for Convolutional Neural Networks", 2015):
//   V = B' d B   (input patch d, per channel; additions only)
//   U = G g G'   (3x3 kernel g; once, when the plan is built)
//   M = sum over input channels of U . V   (16 independent products)
//   Y = A' M A   (2x2 outputs; additions only)
// so the bulk of the work is 16 matrix products [tiles x C_in] x [C_in x C_out],
// run by a register-tiled AVX2/FMA kernel on tile chunks sized for L2.
// The transforms only add, subtract and halve, so the result stays within a
// few ulps of direct convolution (checked against the reference in tests).
// Non-finite inputs differ: a NaN or infinity in a tile's 4x4 input patch
// makes all four of its outputs NaN, where a direct convolution spoils only
// the outputs whose 3x3 window holds it.
//
// oneDNN 2.6 offers Winograd only with AVX-512; this is hand-written because no
// library on the platform provides it for AVX2.
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "kernels/conv_fusion.h"

namespace hearth {

struct WinogradShape {
  int64_t n = 0, c_in = 0, c_out = 0;  // channels: multiples of 8
  int64_t ih = 0, iw = 0, oh = 0, ow = 0;
  int64_t pad_top = 0, pad_left = 0;  // pads at the end follow from oh / ow
};

class WinogradConv3x3 {
 public:
  // The CPU runs AVX2 and FMA.
  static bool supported();
  // The epilogue can apply `f`'s activation (none, Relu, LeakyRelu, Clip).
  static bool fusable(const ConvFusion& f);

  // `w`: [c_out, c_in, 3, 3], transformed and packed here; not referenced later.
  WinogradConv3x3(int64_t c_in, int64_t c_out, const float* w);
  ~WinogradConv3x3();
  WinogradConv3x3(const WinogradConv3x3&) = delete;
  WinogradConv3x3& operator=(const WinogradConv3x3&) = delete;

  // y = act(conv(x, w) + bias + z). x: [n, c_in/8, ih, iw, 8]; y, z:
  // [n, c_out/8, oh, ow, 8]. bias and z may be null; z may be y itself.
  // Scratch memory comes from `scratch`: per thread, 64 * (c_in + c_out)
  // bytes per tile of a chunk (18-48 tiles, or the layer's tiles if fewer):
  // about 200 KiB for 64 channels, 3 MiB for 512.
  void run(const WinogradShape& s, const float* x, const float* bias, const float* z, float* y,
           const ConvFusion& f, int threads, Allocator* scratch) const;

  int64_t c_in() const { return c_in_; }
  int64_t c_out() const { return c_out_; }

 private:
  int64_t c_in_, c_out_, oc_pad_;  // oc_pad_: c_out rounded up to 16
  float* u_ = nullptr;             // [16][oc_pad/16][c_in][16], mapped (huge pages)
  size_t u_bytes_ = 0;
};

}  // namespace hearth
