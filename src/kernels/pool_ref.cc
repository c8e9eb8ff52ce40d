// Reference pooling loops (see pool_ref.h).
#include "kernels/pool_ref.h"

#include <cmath>
#include <limits>

namespace hearth {
namespace {

// First tap index k with start + k*d >= lo, and one past the last with start + k*d < hi.
inline void tap_range(int64_t start, int64_t d, int64_t k, int64_t lo, int64_t hi, int64_t* k0, int64_t* k1) {
  int64_t a = 0;
  if (start < lo) a = (lo - start + d - 1) / d;
  int64_t b = k;
  if (start + (k - 1) * d >= hi) b = hi - start <= 0 ? 0 : (hi - start + d - 1) / d;
  *k0 = a;
  *k1 = b < a ? a : b;
}

// Calls fn(out_offset, plane_offset, start[3], k0[3], k1[3]) for every output cell.
template <typename Fn>
void for_each_window(const PoolShape& s, int threads, Fn fn) {
  const Window3& g = s.w;
  const int64_t in_sp = g.in[0] * g.in[1] * g.in[2];
  const int64_t out_sp = g.out[0] * g.out[1] * g.out[2];
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t nc = 0; nc < s.n * s.c; ++nc) {
    int64_t o = nc * out_sp;
    for (int64_t od = 0; od < g.out[0]; ++od)
      for (int64_t oh = 0; oh < g.out[1]; ++oh)
        for (int64_t ow = 0; ow < g.out[2]; ++ow, ++o) {
          const int64_t start[3] = {od * g.s[0] - g.pb[0], oh * g.s[1] - g.pb[1], ow * g.s[2] - g.pb[2]};
          int64_t k0[3], k1[3];
          for (int i = 0; i < 3; ++i) tap_range(start[i], g.d[i], g.k[i], 0, g.in[i], &k0[i], &k1[i]);
          fn(o, nc * in_sp, start, k0, k1);
        }
  }
}

}  // namespace

template <typename T>
void max_pool_ref(const PoolShape& s, const T* x, T* y, int64_t* indices, bool col_major, int threads) {
  const Window3& g = s.w;
  for_each_window(s, threads, [&](int64_t o, int64_t base, const int64_t* st, const int64_t* k0, const int64_t* k1) {
    T best = std::numeric_limits<T>::lowest();
    if constexpr (std::numeric_limits<T>::has_infinity) best = -std::numeric_limits<T>::infinity();
    int64_t best_i = -1;
    for (int64_t a = k0[0]; a < k1[0]; ++a) {
      const int64_t i0 = st[0] + a * g.d[0];
      for (int64_t b = k0[1]; b < k1[1]; ++b) {
        const int64_t i1 = st[1] + b * g.d[1];
        for (int64_t c = k0[2]; c < k1[2]; ++c) {
          const int64_t i2 = st[2] + c * g.d[2];
          const int64_t idx = (i0 * g.in[1] + i1) * g.in[2] + i2;
          const T v = x[base + idx];
          if (v > best || best_i < 0) {
            best = v;
            best_i = col_major ? i0 + i1 * g.in[0] + i2 * g.in[0] * g.in[1] : idx;
          }
        }
      }
    }
    y[o] = best;
    if (indices) indices[o] = best_i < 0 ? -1 : base + best_i;
  });
}

template <typename T>
void avg_pool_ref(const PoolShape& s, const T* x, T* y, bool count_include_pad, int threads) {
  const Window3& g = s.w;
  for_each_window(s, threads, [&](int64_t o, int64_t base, const int64_t* st, const int64_t* k0, const int64_t* k1) {
    double sum = 0;
    for (int64_t a = k0[0]; a < k1[0]; ++a) {
      const int64_t i0 = st[0] + a * g.d[0];
      for (int64_t b = k0[1]; b < k1[1]; ++b) {
        const int64_t i1 = st[1] + b * g.d[1];
        const T* row = x + base + (i0 * g.in[1] + i1) * g.in[2];
        for (int64_t c = k0[2]; c < k1[2]; ++c) sum += static_cast<double>(row[st[2] + c * g.d[2]]);
      }
    }
    int64_t count = 1;
    for (int i = 0; i < 3; ++i) {
      int64_t t0 = k0[i], t1 = k1[i];
      if (count_include_pad) tap_range(st[i], g.d[i], g.k[i], -g.pb[i], g.in[i] + g.pe[i], &t0, &t1);
      count *= t1 - t0;
    }
    y[o] = count > 0 ? static_cast<T>(sum / static_cast<double>(count)) : T(0);
  });
}

template <typename T>
void lp_pool_ref(const PoolShape& s, const T* x, T* y, double p, int threads) {
  const Window3& g = s.w;
  for_each_window(s, threads, [&](int64_t o, int64_t base, const int64_t* st, const int64_t* k0, const int64_t* k1) {
    double sum = 0;
    for (int64_t a = k0[0]; a < k1[0]; ++a) {
      const int64_t i0 = st[0] + a * g.d[0];
      for (int64_t b = k0[1]; b < k1[1]; ++b) {
        const int64_t i1 = st[1] + b * g.d[1];
        const T* row = x + base + (i0 * g.in[1] + i1) * g.in[2];
        for (int64_t c = k0[2]; c < k1[2]; ++c)
          sum += std::pow(std::fabs(static_cast<double>(row[st[2] + c * g.d[2]])), p);
      }
    }
    y[o] = static_cast<T>(std::pow(sum, 1.0 / p));
  });
}

template void max_pool_ref<float>(const PoolShape&, const float*, float*, int64_t*, bool, int);
template void max_pool_ref<double>(const PoolShape&, const double*, double*, int64_t*, bool, int);
template void max_pool_ref<int8_t>(const PoolShape&, const int8_t*, int8_t*, int64_t*, bool, int);
template void max_pool_ref<uint8_t>(const PoolShape&, const uint8_t*, uint8_t*, int64_t*, bool, int);
template void avg_pool_ref<float>(const PoolShape&, const float*, float*, bool, int);
template void avg_pool_ref<double>(const PoolShape&, const double*, double*, bool, int);
template void lp_pool_ref<float>(const PoolShape&, const float*, float*, double, int);
template void lp_pool_ref<double>(const PoolShape&, const double*, double*, double, int);

}  // namespace hearth
