// Reference (plain loop) Conv and ConvTranspose: the twin the oneDNN path is
// tested against, and the path for dtypes or configurations oneDNN lacks.
#pragma once

#include <cstdint>

#include "kernels/conv_geometry.h"

namespace hearth {

// Channel counts plus the window padded to 3 spatial dims. Layouts are NC(D)(H)W;
// Conv weights are [c_out][c_in/group][k...], ConvTranspose weights are
// [c_in][c_out/group][k...]. For ConvTranspose, w.pe is the net end crop.
struct ConvShape {
  int64_t n = 0, c_in = 0, c_out = 0, group = 1;
  Window3 w{};
};

// y = conv(x, w) + b. `b` may be null. Accumulates in double.
template <typename T>
void conv_ref(const ConvShape& s, const T* x, const T* w, const T* b, T* y, int threads);

// y = conv_transpose(x, w) + b. `b` may be null. Accumulates in double.
template <typename T>
void conv_transpose_ref(const ConvShape& s, const T* x, const T* w, const T* b, T* y, int threads);

}  // namespace hearth
