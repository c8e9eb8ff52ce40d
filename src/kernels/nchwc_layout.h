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

}  // namespace hearth
