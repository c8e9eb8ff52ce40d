// Vectorized SM4-CTR with AES-NI (see sm4_fast.h). The affine maps around the
// AES S-box were derived from the two S-boxes' algebraic structure (SM4:
// A·inv(A·x + 0xD3) + 0xD3 over x^8+x^7+x^6+x^5+x^4+x^2+1; AES over 0x11B,
// related by a field isomorphism) and are checked against the S-box table
// for all 256 inputs by tests/security/sm4_fast_test.cc.
#include "security/sm4_fast.h"

#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define HEARTH_SM4_X86 1
#define HEARTH_SM4_TARGET __attribute__((target("sse2,ssse3,sse4.1,aes")))
#endif

namespace hearth::security::sm4 {

namespace {

// GB/T 32907 S-box.
constexpr uint8_t kSbox[256] = {
    0xd6, 0x90, 0xe9, 0xfe, 0xcc, 0xe1, 0x3d, 0xb7, 0x16, 0xb6, 0x14, 0xc2, 0x28, 0xfb, 0x2c, 0x05, 0x2b, 0x67, 0x9a,
    0x76, 0x2a, 0xbe, 0x04, 0xc3, 0xaa, 0x44, 0x13, 0x26, 0x49, 0x86, 0x06, 0x99, 0x9c, 0x42, 0x50, 0xf4, 0x91, 0xef,
    0x98, 0x7a, 0x33, 0x54, 0x0b, 0x43, 0xed, 0xcf, 0xac, 0x62, 0xe4, 0xb3, 0x1c, 0xa9, 0xc9, 0x08, 0xe8, 0x95, 0x80,
    0xdf, 0x94, 0xfa, 0x75, 0x8f, 0x3f, 0xa6, 0x47, 0x07, 0xa7, 0xfc, 0xf3, 0x73, 0x17, 0xba, 0x83, 0x59, 0x3c, 0x19,
    0xe6, 0x85, 0x4f, 0xa8, 0x68, 0x6b, 0x81, 0xb2, 0x71, 0x64, 0xda, 0x8b, 0xf8, 0xeb, 0x0f, 0x4b, 0x70, 0x56, 0x9d,
    0x35, 0x1e, 0x24, 0x0e, 0x5e, 0x63, 0x58, 0xd1, 0xa2, 0x25, 0x22, 0x7c, 0x3b, 0x01, 0x21, 0x78, 0x87, 0xd4, 0x00,
    0x46, 0x57, 0x9f, 0xd3, 0x27, 0x52, 0x4c, 0x36, 0x02, 0xe7, 0xa0, 0xc4, 0xc8, 0x9e, 0xea, 0xbf, 0x8a, 0xd2, 0x40,
    0xc7, 0x38, 0xb5, 0xa3, 0xf7, 0xf2, 0xce, 0xf9, 0x61, 0x15, 0xa1, 0xe0, 0xae, 0x5d, 0xa4, 0x9b, 0x34, 0x1a, 0x55,
    0xad, 0x93, 0x32, 0x30, 0xf5, 0x8c, 0xb1, 0xe3, 0x1d, 0xf6, 0xe2, 0x2e, 0x82, 0x66, 0xca, 0x60, 0xc0, 0x29, 0x23,
    0xab, 0x0d, 0x53, 0x4e, 0x6f, 0xd5, 0xdb, 0x37, 0x45, 0xde, 0xfd, 0x8e, 0x2f, 0x03, 0xff, 0x6a, 0x72, 0x6d, 0x6c,
    0x5b, 0x51, 0x8d, 0x1b, 0xaf, 0x92, 0xbb, 0xdd, 0xbc, 0x7f, 0x11, 0xd9, 0x5c, 0x41, 0x1f, 0x10, 0x5a, 0xd8, 0x0a,
    0xc1, 0x31, 0x88, 0xa5, 0xcd, 0x7b, 0xbd, 0x2d, 0x74, 0xd0, 0x12, 0xb8, 0xe5, 0xb4, 0xb0, 0x89, 0x69, 0x97, 0x4a,
    0x0c, 0x96, 0x77, 0x7e, 0x65, 0xb9, 0xf1, 0x09, 0xc5, 0x6e, 0xc6, 0x84, 0x18, 0xf0, 0x7d, 0xec, 0x3a, 0xdc, 0x4d,
    0x20, 0x79, 0xee, 0x5f, 0x3e, 0xd7, 0xcb, 0x39, 0x48};

constexpr uint32_t kFk[4] = {0xa3b1bac6, 0x56aa3350, 0x677d9197, 0xb27022dc};

inline uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

inline uint32_t tau(uint32_t x) {
  return static_cast<uint32_t>(kSbox[x >> 24]) << 24 | static_cast<uint32_t>(kSbox[(x >> 16) & 0xff]) << 16 |
         static_cast<uint32_t>(kSbox[(x >> 8) & 0xff]) << 8 | kSbox[x & 0xff];
}

inline uint32_t load_be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | p[3];
}

inline void store_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

void counter_block(uint64_t hi, uint64_t lo, uint8_t out[16]) {
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<uint8_t>(hi >> (56 - 8 * i));
    out[8 + i] = static_cast<uint8_t>(lo >> (56 - 8 * i));
  }
}

inline void increment(uint64_t& hi, uint64_t& lo) {
  if (++lo == 0) ++hi;
}

#ifdef HEARTH_SM4_X86

// Nibble tables of the affine maps around the AES S-box (see the file comment):
// SM4_S(x) = Post(AES_S(Pre(x))), Pre(x) = PreLo[x & 15] ^ PreHi[x >> 4], same for Post.
alignas(16) constexpr uint8_t kPreLo[16] = {0x3e, 0xb2, 0x0e, 0x82, 0xbb, 0x37, 0x8b, 0x07,
                                            0xa1, 0x2d, 0x91, 0x1d, 0x24, 0xa8, 0x14, 0x98};
alignas(16) constexpr uint8_t kPreHi[16] = {0x00, 0xdc, 0x2e, 0xf2, 0xc5, 0x19, 0xeb, 0x37,
                                            0x08, 0xd4, 0x26, 0xfa, 0xcd, 0x11, 0xe3, 0x3f};
alignas(16) constexpr uint8_t kPostLo[16] = {0x6c, 0xd4, 0xa6, 0x1e, 0x52, 0xea, 0x98, 0x20,
                                             0x0b, 0xb3, 0xc1, 0x79, 0x35, 0x8d, 0xff, 0x47};
alignas(16) constexpr uint8_t kPostHi[16] = {0x00, 0xe0, 0x50, 0xb0, 0x9d, 0x7d, 0xcd, 0x2d,
                                             0xc0, 0x20, 0x90, 0x70, 0x5d, 0xbd, 0x0d, 0xed};
// Undoes AESENCLAST's ShiftRows (byte r + 4c of the state comes from r + 4((c - r) mod 4)).
alignas(16) constexpr uint8_t kInvShiftRows[16] = {0, 13, 10, 7, 4, 1, 14, 11, 8, 5, 2, 15, 12, 9, 6, 3};
// Byte-swaps each 32-bit word (SM4 words are big-endian).
alignas(16) constexpr uint8_t kBswap32[16] = {3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12};
// Rotations of each 32-bit lane left by 8, 16 and 24 bits.
alignas(16) constexpr uint8_t kRol8[16] = {3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14};
alignas(16) constexpr uint8_t kRol16[16] = {2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13};
alignas(16) constexpr uint8_t kRol24[16] = {1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12};

struct Consts {
  __m128i pre_lo, pre_hi, post_lo, post_hi, inv_shift, mask4, rol8, rol16, rol24;
};

HEARTH_SM4_TARGET inline __m128i load16(const uint8_t* p) {
  return _mm_load_si128(reinterpret_cast<const __m128i*>(p));
}

HEARTH_SM4_TARGET inline Consts make_consts() {
  return {load16(kPreLo), load16(kPreHi), load16(kPostLo), load16(kPostHi), load16(kInvShiftRows),
          _mm_set1_epi8(0x0f), load16(kRol8), load16(kRol16), load16(kRol24)};
}

// Applies an affine map given as nibble tables to every byte.
HEARTH_SM4_TARGET inline __m128i affine(__m128i x, __m128i lo, __m128i hi, __m128i mask4) {
  __m128i l = _mm_shuffle_epi8(lo, _mm_and_si128(x, mask4));
  __m128i h = _mm_shuffle_epi8(hi, _mm_and_si128(_mm_srli_epi16(x, 4), mask4));
  return _mm_xor_si128(l, h);
}

// T(x) = L(tau(x)) on four 32-bit lanes.
HEARTH_SM4_TARGET inline __m128i round_t(__m128i x, const Consts& c) {
  x = affine(x, c.pre_lo, c.pre_hi, c.mask4);
  x = _mm_shuffle_epi8(x, c.inv_shift);
  x = _mm_aesenclast_si128(x, _mm_setzero_si128());
  x = affine(x, c.post_lo, c.post_hi, c.mask4);
  // L(b) = b ^ rol(b,2) ^ rol(b,10) ^ rol(b,18) ^ rol(b,24) = b ^ rol24(b) ^ rol2(b ^ rol8(b) ^ rol16(b)).
  __m128i t = _mm_xor_si128(_mm_xor_si128(x, _mm_shuffle_epi8(x, c.rol8)), _mm_shuffle_epi8(x, c.rol16));
  t = _mm_or_si128(_mm_slli_epi32(t, 2), _mm_srli_epi32(t, 30));
  return _mm_xor_si128(_mm_xor_si128(x, _mm_shuffle_epi8(x, c.rol24)), t);
}

// 4x4 transpose of 32-bit lanes.
HEARTH_SM4_TARGET inline void transpose(__m128i& a, __m128i& b, __m128i& c, __m128i& d) {
  __m128i t0 = _mm_unpacklo_epi32(a, b), t1 = _mm_unpackhi_epi32(a, b);
  __m128i t2 = _mm_unpacklo_epi32(c, d), t3 = _mm_unpackhi_epi32(c, d);
  a = _mm_unpacklo_epi64(t0, t2);
  b = _mm_unpackhi_epi64(t0, t2);
  c = _mm_unpacklo_epi64(t1, t3);
  d = _mm_unpackhi_epi64(t1, t3);
}

// Encrypts 8 blocks (two interleaved groups of four) in place.
HEARTH_SM4_TARGET void encrypt8(const uint32_t rk[32], uint8_t blocks[128], const Consts& c) {
  const __m128i bswap = load16(kBswap32);
  __m128i x[2][4];
  for (int g = 0; g < 2; ++g) {
    for (int i = 0; i < 4; ++i) {
      x[g][i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blocks + 64 * g + 16 * i)), bswap);
    }
    transpose(x[g][0], x[g][1], x[g][2], x[g][3]);
  }
  for (int r = 0; r < 32; ++r) {
    __m128i k = _mm_set1_epi32(static_cast<int>(rk[r]));
    for (int g = 0; g < 2; ++g) {
      __m128i t = _mm_xor_si128(_mm_xor_si128(x[g][(r + 1) & 3], x[g][(r + 2) & 3]), _mm_xor_si128(x[g][(r + 3) & 3], k));
      x[g][r & 3] = _mm_xor_si128(x[g][r & 3], round_t(t, c));
    }
  }
  for (int g = 0; g < 2; ++g) {
    // Output is (X35, X34, X33, X32): the last four words in reverse order.
    __m128i a = x[g][3], b = x[g][2], cc = x[g][1], d = x[g][0];
    transpose(a, b, cc, d);
    __m128i out[4] = {a, b, cc, d};
    for (int i = 0; i < 4; ++i) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(blocks + 64 * g + 16 * i), _mm_shuffle_epi8(out[i], bswap));
    }
  }
}

HEARTH_SM4_TARGET void ctr_xor_x86(const uint32_t rk[32], uint64_t& hi, uint64_t& lo, const uint8_t* in,
                                   uint8_t* out, size_t blocks) {
  const Consts c = make_consts();
  alignas(16) uint8_t ks[128];
  while (blocks > 0) {
    size_t n = blocks < 8 ? blocks : 8;
    for (size_t i = 0; i < 8; ++i) {
      counter_block(hi, lo, ks + 16 * i);
      if (i < n) increment(hi, lo);
    }
    encrypt8(rk, ks, c);
    for (size_t i = 0; i < n; ++i) {
      __m128i p = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + 16 * i));
      __m128i k = _mm_load_si128(reinterpret_cast<const __m128i*>(ks + 16 * i));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16 * i), _mm_xor_si128(p, k));
    }
    in += 16 * n;
    out += 16 * n;
    blocks -= n;
  }
  std::memset(ks, 0, sizeof(ks));
}

#define HEARTH_SM4_VAES_TARGET __attribute__((target("avx2,vaes,aes,ssse3,sse4.1")))

// The same round on eight blocks per 256-bit register (VAES: two AES lanes per instruction).
HEARTH_SM4_VAES_TARGET inline __m256i affine256(__m256i x, __m256i lo, __m256i hi, __m256i mask4) {
  __m256i l = _mm256_shuffle_epi8(lo, _mm256_and_si256(x, mask4));
  __m256i h = _mm256_shuffle_epi8(hi, _mm256_and_si256(_mm256_srli_epi16(x, 4), mask4));
  return _mm256_xor_si256(l, h);
}

struct Consts256 {
  __m256i pre_lo, pre_hi, post_lo, post_hi, inv_shift, mask4, rol8, rol16, rol24;
};

HEARTH_SM4_VAES_TARGET inline __m256i dup(const uint8_t* p) {
  return _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(p)));
}

HEARTH_SM4_VAES_TARGET inline __m256i round_t256(__m256i x, const Consts256& c) {
  x = affine256(x, c.pre_lo, c.pre_hi, c.mask4);
  x = _mm256_shuffle_epi8(x, c.inv_shift);
  x = _mm256_aesenclast_epi128(x, _mm256_setzero_si256());
  x = affine256(x, c.post_lo, c.post_hi, c.mask4);
  __m256i t = _mm256_xor_si256(_mm256_xor_si256(x, _mm256_shuffle_epi8(x, c.rol8)), _mm256_shuffle_epi8(x, c.rol16));
  t = _mm256_or_si256(_mm256_slli_epi32(t, 2), _mm256_srli_epi32(t, 30));
  return _mm256_xor_si256(_mm256_xor_si256(x, _mm256_shuffle_epi8(x, c.rol24)), t);
}

// Encrypts 16 blocks in place: two groups of eight, each group's word j in one register.
HEARTH_SM4_VAES_TARGET void encrypt16(const uint32_t rk[32], uint8_t blocks[256]) {
  const Consts256 c = {dup(kPreLo), dup(kPreHi), dup(kPostLo), dup(kPostHi), dup(kInvShiftRows),
                       _mm256_set1_epi8(0x0f), dup(kRol8), dup(kRol16), dup(kRol24)};
  const __m128i bswap = load16(kBswap32);
  __m256i x[2][4];
  for (int g = 0; g < 2; ++g) {
    __m128i q[2][4];
    for (int half = 0; half < 2; ++half) {
      for (int i = 0; i < 4; ++i) {
        const uint8_t* p = blocks + 128 * g + 64 * half + 16 * i;
        q[half][i] = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), bswap);
      }
      transpose(q[half][0], q[half][1], q[half][2], q[half][3]);
    }
    for (int i = 0; i < 4; ++i) x[g][i] = _mm256_set_m128i(q[1][i], q[0][i]);
  }
  for (int r = 0; r < 32; ++r) {
    __m256i k = _mm256_set1_epi32(static_cast<int>(rk[r]));
    for (int g = 0; g < 2; ++g) {
      __m256i t = _mm256_xor_si256(_mm256_xor_si256(x[g][(r + 1) & 3], x[g][(r + 2) & 3]),
                                   _mm256_xor_si256(x[g][(r + 3) & 3], k));
      x[g][r & 3] = _mm256_xor_si256(x[g][r & 3], round_t256(t, c));
    }
  }
  for (int g = 0; g < 2; ++g) {
    for (int half = 0; half < 2; ++half) {
      __m128i w[4];
      for (int i = 0; i < 4; ++i) {
        w[i] = half ? _mm256_extracti128_si256(x[g][3 - i], 1) : _mm256_castsi256_si128(x[g][3 - i]);
      }
      transpose(w[0], w[1], w[2], w[3]);
      for (int i = 0; i < 4; ++i) {
        uint8_t* p = blocks + 128 * g + 64 * half + 16 * i;
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm_shuffle_epi8(w[i], bswap));
      }
    }
  }
}

HEARTH_SM4_VAES_TARGET void ctr_xor_vaes(const uint32_t rk[32], uint64_t& hi, uint64_t& lo, const uint8_t* in,
                                         uint8_t* out, size_t blocks) {
  alignas(32) uint8_t ks[256];
  while (blocks > 0) {
    size_t n = blocks < 16 ? blocks : 16;
    for (size_t i = 0; i < 16; ++i) {
      counter_block(hi, lo, ks + 16 * i);
      if (i < n) increment(hi, lo);
    }
    encrypt16(rk, ks);
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
      __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + 16 * i));
      __m256i k = _mm256_load_si256(reinterpret_cast<const __m256i*>(ks + 16 * i));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16 * i), _mm256_xor_si256(p, k));
    }
    for (; i < n; ++i) {
      for (int b = 0; b < 16; ++b) out[16 * i + b] = in[16 * i + b] ^ ks[16 * i + b];
    }
    in += 16 * n;
    out += 16 * n;
    blocks -= n;
  }
  std::memset(ks, 0, sizeof(ks));
}

// VAES is CPUID leaf 7 ECX bit 9 (read directly: not every compiler's
// __builtin_cpu_supports knows it); AVX2 also checks that the OS saves YMM state.
bool vaes_available() {
  static const bool ok = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("aes")) return false;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 9)) != 0;
  }();
  return ok;
}

#endif  // HEARTH_SM4_X86

}  // namespace

bool fast_available() {
#ifdef HEARTH_SM4_X86
  static const bool ok = __builtin_cpu_supports("aes") && __builtin_cpu_supports("ssse3") &&
                         __builtin_cpu_supports("sse4.1");
  return ok;
#else
  return false;
#endif
}

void expand_key(const uint8_t key[16], uint32_t rk[32]) {
  uint32_t k[36];
  for (int i = 0; i < 4; ++i) k[i] = load_be32(key + 4 * i) ^ kFk[i];
  for (int i = 0; i < 32; ++i) {
    uint32_t ck = 0;
    for (int j = 0; j < 4; ++j) ck = ck << 8 | static_cast<uint32_t>(((4 * i + j) * 7) & 0xff);
    uint32_t b = tau(k[i + 1] ^ k[i + 2] ^ k[i + 3] ^ ck);
    k[i + 4] = k[i] ^ b ^ rol(b, 13) ^ rol(b, 23);
    rk[i] = k[i + 4];
  }
  std::memset(k, 0, sizeof(k));
}

void encrypt_block(const uint32_t rk[32], const uint8_t in[16], uint8_t out[16]) {
  uint32_t x[4];
  for (int i = 0; i < 4; ++i) x[i] = load_be32(in + 4 * i);
  for (int r = 0; r < 32; ++r) {
    uint32_t b = tau(x[(r + 1) & 3] ^ x[(r + 2) & 3] ^ x[(r + 3) & 3] ^ rk[r]);
    x[r & 3] ^= b ^ rol(b, 2) ^ rol(b, 10) ^ rol(b, 18) ^ rol(b, 24);
  }
  for (int i = 0; i < 4; ++i) store_be32(out + 4 * i, x[3 - i]);
}

void ctr_xor(const uint32_t rk[32], uint64_t& hi, uint64_t& lo, const uint8_t* in, uint8_t* out, size_t blocks) {
#ifdef HEARTH_SM4_X86
  if (fast_available()) {
    if (vaes_available() && blocks >= 8) {
      ctr_xor_vaes(rk, hi, lo, in, out, blocks);
    } else {
      ctr_xor_x86(rk, hi, lo, in, out, blocks);
    }
    return;
  }
#endif
  uint8_t ctr[16], ks[16];
  for (size_t b = 0; b < blocks; ++b) {
    counter_block(hi, lo, ctr);
    encrypt_block(rk, ctr, ks);
    for (int i = 0; i < 16; ++i) out[16 * b + i] = in[16 * b + i] ^ ks[i];
    increment(hi, lo);
  }
}

}  // namespace hearth::security::sm4
