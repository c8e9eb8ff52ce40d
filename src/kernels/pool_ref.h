// Reference pooling loops (MaxPool with Indices, AveragePool, LpPool): the twin
// the oneDNN pooling path is tested against, and the path for every dtype and
// configuration oneDNN does not take.
#pragma once

#include <cstdint>

#include "kernels/conv_geometry.h"

namespace hearth {

// Layout NC(D)(H)W; the window padded to 3 spatial dims.
struct PoolShape {
  int64_t n = 0, c = 0;
  Window3 w{};
};

// Max over each window, ignoring padding. `indices` (may be null) receives the
// flat index of the max in X as ONNX MaxPool's Indices output: row-major, or
// column-major within each spatial plane when `col_major` (storage_order=1).
template <typename T>
void max_pool_ref(const PoolShape& s, const T* x, T* y, int64_t* indices, bool col_major, int threads);

// Average over each window; the divisor counts padding cells only with
// `count_include_pad` (never the extra cells ceil_mode adds past pad_end).
template <typename T>
void avg_pool_ref(const PoolShape& s, const T* x, T* y, bool count_include_pad, int threads);

// (sum |x|^p)^(1/p) over each window; padding contributes nothing.
template <typename T>
void lp_pool_ref(const PoolShape& s, const T* x, T* y, double p, int threads);

}  // namespace hearth
