// Conversions between plain NC(spatial) float32 data and the 8-channel blocked
// layout of graph/nchwc.h. `plane` is the product of the spatial dims; `c` is
// a multiple of 8.
#pragma once

#include <cstdint>

namespace hearth {

// x plain [n, c, plane] -> y blocked [n, c/8, plane, 8].
void nchwc_from_plain(const float* x, float* y, int64_t n, int64_t c, int64_t plane, int threads);
// x blocked [n, c/8, plane, 8] -> y plain [n, c, plane].
void nchwc_to_plain(const float* x, float* y, int64_t n, int64_t c, int64_t plane, int threads);

// True when oneDNN's convolutions on this CPU work in 8-channel blocks (SSE4.1,
// AVX, AVX2). With AVX-512 they want 16-channel blocks, and an 8-channel graph
// would make every convolution reorder twice; Session leaves the pass off there.
bool nchwc_native();

}  // namespace hearth
