// Winograd F(2x2, 3x3) convolution (see conv_winograd.h).
#include "kernels/conv_winograd.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <new>

#include <sys/mman.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/machine.h"

namespace hearth {
namespace {

#define HEARTH_WINO_TARGET __attribute__((target("avx2,fma")))

constexpr int64_t kTile = 16;     // 4x4 transformed values per tile and channel
constexpr int64_t kRows = 6;      // tiles per register block of the product
constexpr int64_t kCols = 16;     // output channels per register block (two vectors)
// Chunk sizes. A chunk's V and M, and U where it is small enough to stay
// there, should fit one core's L2 (512 KiB here): 64-channel layers use
// kSmallChunkBytes (24 tiles) next to their 256 KiB of U. Wider layers stream U
// from L3 for every chunk, so their chunks have at least kMinChunk tiles
// (U is then read 4/kMinChunk bytes per multiply-add).
constexpr int64_t kSmallU = 256 * 1024;
constexpr int64_t kSmallChunkBytes = 192 * 1024;
constexpr int64_t kMinChunk = 48;

// The chunk's part of the work: everything one thread touches between two
// transforms. V: [16][tiles][c_in], M: [16][tiles][oc_pad].
struct Chunk {
  int64_t t0, tiles;
  float* v;
  float* m;
};

struct Geometry {
  WinogradShape s;
  int64_t tiles_y, tiles_x, tiles;  // per image: tiles_y * tiles_x; all images: tiles
};

// Input transform of tiles [t0, t0 + count) into V (row stride c_in).
HEARTH_WINO_TARGET void transform_input(const Geometry& g, const float* x, const Chunk& c, int64_t c_in) {
  const WinogradShape& s = g.s;
  const int64_t cb_count = c_in / 8, plane = s.ih * s.iw;
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t i = 0; i < c.tiles; ++i) {
    const int64_t t = c.t0 + i, img = t / (g.tiles_y * g.tiles_x), in_img = t % (g.tiles_y * g.tiles_x);
    const int64_t y0 = in_img / g.tiles_x * 2 - s.pad_top, x0 = in_img % g.tiles_x * 2 - s.pad_left;
    const bool interior = y0 >= 0 && x0 >= 0 && y0 + 4 <= s.ih && x0 + 4 <= s.iw;
    for (int64_t cb = 0; cb < cb_count; ++cb) {
      const float* base = x + ((img * cb_count + cb) * plane) * 8;
      __m256 d[4][4];
      for (int r = 0; r < 4; ++r)
        for (int q = 0; q < 4; ++q) {
          const int64_t yy = y0 + r, xx = x0 + q;
          d[r][q] = interior || (yy >= 0 && yy < s.ih && xx >= 0 && xx < s.iw)
                        ? _mm256_loadu_ps(base + (yy * s.iw + xx) * 8)
                        : zero;
        }
      // B' d: rows (d0 - d2, d1 + d2, d2 - d1, d1 - d3), then the same over columns.
      __m256 t[4][4];
      for (int q = 0; q < 4; ++q) {
        t[0][q] = _mm256_sub_ps(d[0][q], d[2][q]);
        t[1][q] = _mm256_add_ps(d[1][q], d[2][q]);
        t[2][q] = _mm256_sub_ps(d[2][q], d[1][q]);
        t[3][q] = _mm256_sub_ps(d[1][q], d[3][q]);
      }
      float* out = c.v + i * c_in + cb * 8;
      const int64_t step = c.tiles * c_in;  // from one of the 16 values to the next
      for (int r = 0; r < 4; ++r) {
        _mm256_storeu_ps(out + (r * 4 + 0) * step, _mm256_sub_ps(t[r][0], t[r][2]));
        _mm256_storeu_ps(out + (r * 4 + 1) * step, _mm256_add_ps(t[r][1], t[r][2]));
        _mm256_storeu_ps(out + (r * 4 + 2) * step, _mm256_sub_ps(t[r][2], t[r][1]));
        _mm256_storeu_ps(out + (r * 4 + 3) * step, _mm256_sub_ps(t[r][1], t[r][3]));
      }
    }
  }
}

// m[R rows][16] = v[R rows][K] x u[K][16]; rows of v are `ldv` apart, of m `ldm`.
template <int R>
HEARTH_WINO_TARGET inline void product_block(const float* v, int64_t ldv, const float* u, int64_t K, float* m,
                                             int64_t ldm) {
  __m256 acc[R][2];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m256 b0 = _mm256_loadu_ps(u + k * kCols), b1 = _mm256_loadu_ps(u + k * kCols + 8);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(v + r * ldv + k);
      acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_ps(m + r * ldm, acc[r][0]);
    _mm256_storeu_ps(m + r * ldm + 8, acc[r][1]);
  }
}

// The 16 products of one chunk, M[xi] = V[xi] x U[xi], for the 16-column
// blocks [j0, j1) of the output channels.
HEARTH_WINO_TARGET void multiply(const Chunk& c, const float* u, int64_t c_in, int64_t oc_pad, int64_t j0,
                                 int64_t j1) {
  const int64_t col_blocks = oc_pad / kCols;
  for (int64_t xi = 0; xi < kTile; ++xi) {
    const float* v = c.v + xi * c.tiles * c_in;
    float* m = c.m + xi * c.tiles * oc_pad;
    for (int64_t j = j0; j < j1; ++j) {
      const float* uj = u + (xi * col_blocks + j) * c_in * kCols;
      int64_t i = 0;
      for (; i + kRows <= c.tiles; i += kRows)
        product_block<kRows>(v + i * c_in, c_in, uj, c_in, m + i * oc_pad + j * kCols, oc_pad);
      const float* vr = v + i * c_in;
      float* mr = m + i * oc_pad + j * kCols;
      switch (c.tiles - i) {
        case 5: product_block<5>(vr, c_in, uj, c_in, mr, oc_pad); break;
        case 4: product_block<4>(vr, c_in, uj, c_in, mr, oc_pad); break;
        case 3: product_block<3>(vr, c_in, uj, c_in, mr, oc_pad); break;
        case 2: product_block<2>(vr, c_in, uj, c_in, mr, oc_pad); break;
        case 1: product_block<1>(vr, c_in, uj, c_in, mr, oc_pad); break;
        default: break;
      }
    }
  }
}

HEARTH_WINO_TARGET inline __m256 activate(__m256 v, const ConvFusion& f) {
  switch (f.act) {
    // max/min return their second operand when either is NaN: v goes second so
    // that NaN stays NaN, as in the reference epilogue and oneDNN.
    case ConvActivation::kRelu: return _mm256_max_ps(_mm256_setzero_ps(), v);
    case ConvActivation::kLeakyRelu: {
      const __m256 neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
      return _mm256_blendv_ps(v, _mm256_mul_ps(v, _mm256_set1_ps(f.alpha)), neg);
    }
    case ConvActivation::kClip:
      return _mm256_min_ps(_mm256_set1_ps(f.beta), _mm256_max_ps(_mm256_set1_ps(f.alpha), v));
    default: return v;
  }
}

// Output transform of the chunk's tiles for the 8-channel output blocks
// [ob0, ob1), plus bias, Z and the activation.
HEARTH_WINO_TARGET void transform_output(const Geometry& g, const Chunk& c, const float* bias, const float* z,
                                         float* y, const ConvFusion& f, int64_t oc_pad, int64_t ob0, int64_t ob1) {
  const WinogradShape& s = g.s;
  const int64_t ob_count = s.c_out / 8, plane = s.oh * s.ow;
  for (int64_t i = 0; i < c.tiles; ++i) {
    const int64_t t = c.t0 + i, img = t / (g.tiles_y * g.tiles_x), in_img = t % (g.tiles_y * g.tiles_x);
    const int64_t oy = in_img / g.tiles_x * 2, ox = in_img % g.tiles_x * 2;
    const bool full = oy + 2 <= s.oh && ox + 2 <= s.ow;
    for (int64_t ob = ob0; ob < ob1; ++ob) {
      const float* mp = c.m + i * oc_pad + ob * 8;
      const int64_t step = c.tiles * oc_pad;
      __m256 m[4][4];
      for (int r = 0; r < 4; ++r)
        for (int q = 0; q < 4; ++q) m[r][q] = _mm256_loadu_ps(mp + (r * 4 + q) * step);
      // A' m: rows (m0 + m1 + m2, m1 - m2 - m3), then the same over columns.
      __m256 a[2][4];
      for (int q = 0; q < 4; ++q) {
        a[0][q] = _mm256_add_ps(_mm256_add_ps(m[0][q], m[1][q]), m[2][q]);
        a[1][q] = _mm256_sub_ps(_mm256_sub_ps(m[1][q], m[2][q]), m[3][q]);
      }
      const __m256 b = bias ? _mm256_loadu_ps(bias + ob * 8) : _mm256_setzero_ps();
      __m256 out[2][2];
      for (int r = 0; r < 2; ++r) {
        out[r][0] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a[r][0], a[r][1]), a[r][2]), b);
        out[r][1] = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(a[r][1], a[r][2]), a[r][3]), b);
      }
      const int64_t off = ((img * ob_count + ob) * plane + oy * s.ow + ox) * 8;
      for (int r = 0; r < 2; ++r)
        for (int q = 0; q < 2; ++q) {
          if (!full && (oy + r >= s.oh || ox + q >= s.ow)) continue;
          const int64_t at = off + (r * s.ow + q) * 8;
          __m256 v = out[r][q];
          if (z) v = _mm256_add_ps(v, _mm256_loadu_ps(z + at));
          _mm256_storeu_ps(y + at, activate(v, f));
        }
    }
  }
}

// One chunk, output channels [16 j0, 16 j1) (clipped to c_out).
HEARTH_WINO_TARGET void run_chunk(const Geometry& g, const float* x, const float* u, const float* bias,
                                  const float* z, float* y, const ConvFusion& f, const Chunk& c, int64_t oc_pad,
                                  int64_t j0, int64_t j1) {
  transform_input(g, x, c, g.s.c_in);
  multiply(c, u, g.s.c_in, oc_pad, j0, j1);
  transform_output(g, c, bias, z, y, f, oc_pad, j0 * (kCols / 8), std::min(j1 * (kCols / 8), g.s.c_out / 8));
}

}  // namespace

bool WinogradConv3x3::supported() {
  return isa_at_least(IsaLevel::kAvx2);
}

bool WinogradConv3x3::fusable(const ConvFusion& f) {
  return f.act == ConvActivation::kNone || f.act == ConvActivation::kRelu || f.act == ConvActivation::kLeakyRelu ||
         f.act == ConvActivation::kClip;
}

WinogradConv3x3::WinogradConv3x3(int64_t c_in, int64_t c_out, const float* w)
    : c_in_(c_in), c_out_(c_out), oc_pad_((c_out + kCols - 1) / kCols * kCols) {
  const int64_t col_blocks = oc_pad_ / kCols, xi_stride = col_blocks * c_in * kCols;
  // Wide layers hold tens of MiB here: ask for huge pages, which saves most of
  // the page faults of the first run.
  u_bytes_ = static_cast<size_t>(kTile * xi_stride) * sizeof(float);
  void* p = ::mmap(nullptr, u_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  ::madvise(p, u_bytes_, MADV_HUGEPAGE);
  u_ = static_cast<float*>(p);
  // In the order of u_'s rows: one kernel's 16 values go to 16 sequential
  // streams, and the 16 output channels of a row are computed side by side.
  for (int64_t j = 0; j < col_blocks; ++j)
    for (int64_t ic = 0; ic < c_in; ++ic) {
      float g[9][kCols] = {};
      for (int64_t l = 0; l < kCols && j * kCols + l < c_out; ++l)
        for (int q = 0; q < 9; ++q) g[q][l] = w[((j * kCols + l) * c_in + ic) * 9 + q];
      // G g (4x3), then (G g) G' (4x4); G's rows: g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2.
      float gg[4][3][kCols];
      for (int q = 0; q < 3; ++q)
        for (int64_t l = 0; l < kCols; ++l) {
          const float g0 = g[q][l], g1 = g[3 + q][l], g2 = g[6 + q][l];
          gg[0][q][l] = g0, gg[1][q][l] = (g0 + g1 + g2) * 0.5f, gg[2][q][l] = (g0 - g1 + g2) * 0.5f;
          gg[3][q][l] = g2;
        }
      float* row = u_ + (j * c_in + ic) * kCols;
      for (int r = 0; r < 4; ++r)
        for (int64_t l = 0; l < kCols; ++l) {
          const float g0 = gg[r][0][l], g1 = gg[r][1][l], g2 = gg[r][2][l];
          row[(r * 4 + 0) * xi_stride + l] = g0;
          row[(r * 4 + 1) * xi_stride + l] = (g0 + g1 + g2) * 0.5f;
          row[(r * 4 + 2) * xi_stride + l] = (g0 - g1 + g2) * 0.5f;
          row[(r * 4 + 3) * xi_stride + l] = g2;
        }
    }
}

WinogradConv3x3::~WinogradConv3x3() { ::munmap(u_, u_bytes_); }

void WinogradConv3x3::run(const WinogradShape& s, const float* x, const float* bias, const float* z, float* y,
                          const ConvFusion& f, int threads, Allocator* scratch) const {
  Geometry g{s, (s.oh + 1) / 2, (s.ow + 1) / 2, 0};
  g.tiles = s.n * g.tiles_y * g.tiles_x;
  if (g.tiles == 0) return;
  // Tiles per chunk (see kSmallU above).
  const int64_t per_tile = kTile * (c_in_ + oc_pad_) * static_cast<int64_t>(sizeof(float));
  const int64_t col_blocks = oc_pad_ / kCols, nt = std::max(1, threads);
  const int64_t u_bytes = kTile * c_in_ * oc_pad_ * static_cast<int64_t>(sizeof(float));
  int64_t chunk = u_bytes <= kSmallU ? std::max<int64_t>(kRows, kSmallChunkBytes / per_tile / kRows * kRows)
                                     : kMinChunk;
  // Threads split the tiles when there are enough for every thread to fill
  // chunks; otherwise (deep layers at small batch: 16 tiles of 7x7x512) they
  // split the output channels, so each reads only its part of U, and each
  // transforms the (few) input tiles itself.
  const bool split_columns = nt > 1 && g.tiles < kMinChunk * nt && col_blocks >= nt;
  chunk = std::min(chunk, split_columns ? g.tiles : (g.tiles + nt - 1) / nt);
  // When threads split the tiles, there are as many chunks for every thread,
  // cut as evenly as whole tiles allow: 3 chunks of 48 tiles at 2 threads
  // would leave one thread 80 tiles and the other 48 (4 chunks of 32 now).
  // Rounding up shrinks chunks a little below kMinChunk at times (392 tiles:
  // 10 chunks of 39-40 instead of 8 of 48 and one of 8), which costs less than
  // a thread left waiting.
  int64_t chunks = (g.tiles + chunk - 1) / chunk;
  const bool even = !split_columns && nt > 1;
  if (even) chunks = std::min(g.tiles, (chunks + nt - 1) / nt * nt);
  const int64_t most = even ? (g.tiles + chunks - 1) / chunks : chunk;  // tiles of the largest chunk
  const auto chunk_at = [&](int64_t k, float* v, float* m) {
    const int64_t t0 = even ? k * g.tiles / chunks : k * chunk;
    const int64_t t1 = even ? (k + 1) * g.tiles / chunks : std::min(g.tiles, t0 + chunk);
    return Chunk{t0, t1 - t0, v, m};
  };
  const int team = static_cast<int>(split_columns ? nt : std::min(nt, chunks));
  const size_t per_thread = static_cast<size_t>(most * per_tile);
  std::shared_ptr<void> buffer = (scratch ? scratch : default_allocator())->allocate(per_thread * team);
  char* base = static_cast<char*>(buffer.get());
  const float* u = u_;
  const int64_t oc_pad = oc_pad_, c_in = c_in_;
#pragma omp parallel num_threads(team) if (team > 1)
  {
    int t = 0, count = 1;
#ifdef _OPENMP
    t = omp_get_thread_num(), count = omp_get_num_threads();
#endif
    float* v = reinterpret_cast<float*>(base + per_thread * t);
    float* m = v + kTile * most * c_in;
    if (split_columns) {
      const int64_t per = (col_blocks + count - 1) / count;
      const int64_t j0 = std::min(col_blocks, per * t), j1 = std::min(col_blocks, j0 + per);
      for (int64_t k = 0; k < chunks && j0 < j1; ++k)
        run_chunk(g, x, u, bias, z, y, f, chunk_at(k, v, m), oc_pad, j0, j1);
    } else {
      // Handed out one at a time: a thread the host stalls for a moment leaves
      // its next chunks to the other, where a fixed split would wait for it.
#pragma omp for schedule(dynamic, 1) nowait
      for (int64_t k = 0; k < chunks; ++k) run_chunk(g, x, u, bias, z, y, f, chunk_at(k, v, m), oc_pad, 0, col_blocks);
    }
  }
}

}  // namespace hearth
