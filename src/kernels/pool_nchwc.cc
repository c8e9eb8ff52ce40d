// Blocked-layout 2-D pooling (see pool_nchwc.h).
#include "kernels/pool_nchwc.h"

// Vec8 values never cross a call boundary (all helpers are always_inline), so the
// AVX argument-passing ABI never applies.
#pragma GCC diagnostic ignored "-Wpsabi"

#include <algorithm>
#include <cmath>
#include <cstring>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/machine.h"

namespace hearth {
namespace {

typedef float Vec8 __attribute__((vector_size(32)));

// Everything below is inlined into the two compiled copies (rows_avx2, rows_baseline).
#define HEARTH_POOL_INLINE inline __attribute__((always_inline))

HEARTH_POOL_INLINE Vec8 load8(const float* p) {
  Vec8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
HEARTH_POOL_INLINE void store8(float* p, Vec8 v) { std::memcpy(p, &v, sizeof v); }
HEARTH_POOL_INLINE Vec8 splat(float f) { return Vec8{f, f, f, f, f, f, f, f}; }

template <bool kMax>
HEARTH_POOL_INLINE Vec8 combine(Vec8 acc, Vec8 v) {
  if constexpr (kMax) return v > acc ? v : acc;
  else return acc + v;
}

// Taps [t0, t1) of a window starting at `start` that fall inside [lo, hi).
HEARTH_POOL_INLINE void tap_range(int64_t start, int64_t k, int64_t lo, int64_t hi, int64_t* t0, int64_t* t1) {
  *t0 = std::clamp<int64_t>(lo - start, 0, k);
  *t1 = std::clamp<int64_t>(hi - start, *t0, k);
}

// One output whose window may cross X's edges.
template <bool kMax>
HEARTH_POOL_INLINE void pool_edge(const BlockedPool2d& p, const float* xp, float* yrow, int64_t y0, int64_t ky0,
                                  int64_t ky1, int64_t cy, int64_t kw, int64_t ox) {
  const int64_t x0 = ox * p.sw - p.pl;
  int64_t kx0, kx1, cx0, cx1;
  tap_range(x0, kw, 0, p.iw, &kx0, &kx1);
  tap_range(x0, kw, -p.pl, p.iw + p.pr, &cx0, &cx1);
  Vec8 acc = splat(kMax ? -INFINITY : 0.0f);
  for (int64_t a = ky0; a < ky1; ++a) {
    const float* row = xp + ((y0 + a) * p.iw + x0) * 8;
    for (int64_t b = kx0; b < kx1; ++b) acc = combine<kMax>(acc, load8(row + b * 8));
  }
  if constexpr (!kMax) {
    const int64_t n = p.count_include_pad ? cy * (cx1 - cx0) : (ky1 - ky0) * (kx1 - kx0);
    acc = n > 0 ? acc * splat(1.0f / static_cast<float>(n)) : splat(0.0f);
  }
  store8(yrow + ox * 8, acc);
}

// One output row of one plane. KW > 0 fixes the window width for the interior.
template <bool kMax, int KW>
HEARTH_POOL_INLINE void pool_row(const BlockedPool2d& p, const float* xp, float* yrow, int64_t oy) {
  const int64_t y0 = oy * p.sh - p.pt;
  int64_t ky0, ky1, cy0, cy1;
  tap_range(y0, p.kh, 0, p.ih, &ky0, &ky1);
  tap_range(y0, p.kh, -p.pt, p.ih + p.pb, &cy0, &cy1);
  const int64_t kw = KW > 0 ? KW : p.kw;
  // Input rows that the output row after next starts to need: on a layer fresh out of
  // a convolution they come from L3 or memory, and the row-by-row walk is too short
  // a stream for the hardware prefetcher to run ahead.
  const int64_t pf_end = std::min(p.ih, y0 + p.kh + 2 * p.sh);
  for (int64_t rr = std::max<int64_t>(0, y0 + p.kh + p.sh); rr < pf_end; ++rr) {
    const char* line = reinterpret_cast<const char*>(xp + rr * p.iw * 8);
    for (int64_t off = 0; off < p.iw * 8 * 4; off += 64) __builtin_prefetch(line + off);
  }
  // Outputs whose window lies inside X's columns.
  const int64_t ox_lo = std::min(p.ow, (p.pl + p.sw - 1) / p.sw);
  const int64_t ox_hi = p.iw + p.pl >= kw ? std::clamp<int64_t>((p.iw + p.pl - kw) / p.sw + 1, ox_lo, p.ow) : ox_lo;
  for (int64_t ox = 0; ox < ox_lo; ++ox) pool_edge<kMax>(p, xp, yrow, y0, ky0, ky1, cy1 - cy0, kw, ox);
  const int64_t rows = ky1 - ky0;
  const int64_t n_in = p.count_include_pad ? (cy1 - cy0) * kw : rows * kw;
  const Vec8 scale = splat(n_in > 0 ? 1.0f / static_cast<float>(n_in) : 0.0f);
  const float* top = xp + (y0 + ky0) * p.iw * 8;
  for (int64_t ox = ox_lo; ox < ox_hi; ++ox) {
    const float* base = top + (ox * p.sw - p.pl) * 8;
    Vec8 acc = splat(kMax ? -INFINITY : 0.0f);
    for (int64_t a = 0; a < rows; ++a) {
      const float* row = base + a * p.iw * 8;
      if constexpr (KW > 0) {
#pragma GCC unroll 4
        for (int b = 0; b < KW; ++b) acc = combine<kMax>(acc, load8(row + b * 8));
      } else {
        for (int64_t b = 0; b < kw; ++b) acc = combine<kMax>(acc, load8(row + b * 8));
      }
    }
    if constexpr (!kMax) acc = acc * scale;
    store8(yrow + ox * 8, acc);
  }
  for (int64_t ox = ox_hi; ox < p.ow; ++ox) pool_edge<kMax>(p, xp, yrow, y0, ky0, ky1, cy1 - cy0, kw, ox);
}

template <bool kMax>
HEARTH_POOL_INLINE void pool_one_row(const BlockedPool2d& p, const float* x, float* y, int64_t r) {
  const int64_t plane = r / p.oh, oy = r % p.oh;
  const float* xp = x + plane * p.ih * p.iw * 8;
  float* yrow = y + (plane * p.oh + oy) * p.ow * 8;
  if (p.kw == 3) pool_row<kMax, 3>(p, xp, yrow, oy);
  else if (p.kw == 2) pool_row<kMax, 2>(p, xp, yrow, oy);
  else pool_row<kMax, 0>(p, xp, yrow, oy);
}

// The same loops compiled twice; the OpenMP region stays outside (its outlined
// body would not inherit a target attribute).
__attribute__((target("avx2"))) void rows_avx2(const BlockedPool2d& p, const float* x, float* y, int64_t r0,
                                               int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    if (p.max) pool_one_row<true>(p, x, y, r);
    else pool_one_row<false>(p, x, y, r);
  }
}

void rows_baseline(const BlockedPool2d& p, const float* x, float* y, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    if (p.max) pool_one_row<true>(p, x, y, r);
    else pool_one_row<false>(p, x, y, r);
  }
}

}  // namespace

bool blocked_pool2d_supported(const Window& w) {
  return w.rank() == 2 && w.dilations[0] == 1 && w.dilations[1] == 1;
}

void blocked_pool2d(const BlockedPool2d& p, const float* x, float* y, int threads) {
  const bool avx2 = isa_at_least(IsaLevel::kAvx2);
  const int64_t rows = p.planes * p.oh;
  threads = static_cast<int>(std::clamp<int64_t>(threads, 1, std::max<int64_t>(rows, 1)));
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    int t = 0, nt = 1;
#ifdef _OPENMP
    t = omp_get_thread_num(), nt = omp_get_num_threads();
#endif
    const int64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
    if (avx2) rows_avx2(p, x, y, r0, r1);
    else rows_baseline(p, x, y, r0, r1);
  }
}

}  // namespace hearth
