// SM3 compression, scalar and 8-lane AVX2 (see sm3_fast.h).
#include "security/sm3_fast.h"

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#define HEARTH_SM3_X86 1
#define HEARTH_SM3_TARGET __attribute__((target("avx2")))
#endif

namespace hearth::security::sm3 {

namespace {

constexpr uint32_t kIv[8] = {0x7380166f, 0x4914b2b9, 0x172442d7, 0xda8a0600,
                             0xa96f30bc, 0x163138aa, 0xe38dee4d, 0xb0fb0e4e};

inline uint32_t rol(uint32_t x, int n) {
  n &= 31;
  return n ? (x << n) | (x >> (32 - n)) : x;
}
inline uint32_t p0(uint32_t x) { return x ^ rol(x, 9) ^ rol(x, 17); }
inline uint32_t p1(uint32_t x) { return x ^ rol(x, 15) ^ rol(x, 23); }
inline uint32_t load_be32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 | static_cast<uint32_t>(p[2]) << 8 | p[3];
}

// rol(T_j, j mod 32) for each round.
struct RoundConstants {
  uint32_t t[64];
  RoundConstants() {
    for (int j = 0; j < 64; ++j) t[j] = rol(j < 16 ? 0x79cc4519u : 0x7a879d8au, j % 32);
  }
};
const RoundConstants kT;

// The padding blocks after the last whole block: the tail bytes, 0x80, zeros
// and the bit length (big-endian). Returns the number of blocks (1 or 2).
size_t pad_tail(const uint8_t* tail, size_t tail_len, uint64_t total_len, uint8_t out[128]) {
  std::memset(out, 0, 128);
  if (tail_len) std::memcpy(out, tail, tail_len);
  out[tail_len] = 0x80;
  size_t blocks = tail_len + 9 <= 64 ? 1 : 2;
  uint64_t bits = total_len * 8;
  for (int i = 0; i < 8; ++i) out[64 * blocks - 1 - i] = static_cast<uint8_t>(bits >> (8 * i));
  return blocks;
}

void store_digest(const uint32_t v[8], uint8_t out[32]) {
  for (int i = 0; i < 8; ++i) {
    out[4 * i] = static_cast<uint8_t>(v[i] >> 24);
    out[4 * i + 1] = static_cast<uint8_t>(v[i] >> 16);
    out[4 * i + 2] = static_cast<uint8_t>(v[i] >> 8);
    out[4 * i + 3] = static_cast<uint8_t>(v[i]);
  }
}

#ifdef HEARTH_SM3_X86

HEARTH_SM3_TARGET inline __m256i vrol(__m256i x, int n) {
  return _mm256_or_si256(_mm256_slli_epi32(x, n), _mm256_srli_epi32(x, 32 - n));
}
HEARTH_SM3_TARGET inline __m256i vxor3(__m256i a, __m256i b, __m256i c) {
  return _mm256_xor_si256(_mm256_xor_si256(a, b), c);
}
HEARTH_SM3_TARGET inline __m256i vp0(__m256i x) { return vxor3(x, vrol(x, 9), vrol(x, 17)); }
HEARTH_SM3_TARGET inline __m256i vp1(__m256i x) { return vxor3(x, vrol(x, 15), vrol(x, 23)); }

// Rows r[0..7] (8 words of lane i in r[i]) -> columns (word j of every lane in r[j]).
HEARTH_SM3_TARGET void transpose8(__m256i r[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2x128_si256(u[i], u[4 + i], 0x20);
    r[4 + i] = _mm256_permute2x128_si256(u[i], u[4 + i], 0x31);
  }
}

// One 64-byte block from each lane's pointer into the 8-lane state.
HEARTH_SM3_TARGET void compress_x8(__m256i v[8], const uint8_t* const blocks[kLanes]) {
  const __m256i bswap = _mm256_setr_epi8(3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5,
                                         4, 11, 10, 9, 8, 15, 14, 13, 12);
  __m256i w[68];
  for (int half = 0; half < 2; ++half) {
    __m256i r[8];
    for (int i = 0; i < kLanes; ++i) {
      r[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blocks[i] + 32 * half));
    }
    transpose8(r);
    // After the transpose r[j] holds word j as lanes 0..7 (the unpack order puts them in place).
    for (int j = 0; j < 8; ++j) w[8 * half + j] = _mm256_shuffle_epi8(r[j], bswap);
  }
  for (int j = 16; j < 68; ++j) {
    w[j] = vxor3(vp1(vxor3(w[j - 16], w[j - 9], vrol(w[j - 3], 15))), vrol(w[j - 13], 7), w[j - 6]);
  }
  __m256i a = v[0], b = v[1], c = v[2], d = v[3], e = v[4], f = v[5], g = v[6], h = v[7];
  for (int j = 0; j < 64; ++j) {
    __m256i a12 = vrol(a, 12);
    __m256i ss1 = vrol(_mm256_add_epi32(_mm256_add_epi32(a12, e), _mm256_set1_epi32(static_cast<int>(kT.t[j]))), 7);
    __m256i ss2 = _mm256_xor_si256(ss1, a12);
    __m256i ff, gg;
    if (j < 16) {
      ff = vxor3(a, b, c);
      gg = vxor3(e, f, g);
    } else {
      ff = _mm256_or_si256(_mm256_and_si256(a, _mm256_or_si256(b, c)), _mm256_and_si256(b, c));
      gg = _mm256_or_si256(_mm256_and_si256(e, f), _mm256_andnot_si256(e, g));
    }
    __m256i w1 = _mm256_xor_si256(w[j], w[j + 4]);
    __m256i tt1 = _mm256_add_epi32(_mm256_add_epi32(ff, d), _mm256_add_epi32(ss2, w1));
    __m256i tt2 = _mm256_add_epi32(_mm256_add_epi32(gg, h), _mm256_add_epi32(ss1, w[j]));
    d = c;
    c = vrol(b, 9);
    b = a;
    a = tt1;
    h = g;
    g = vrol(f, 19);
    f = e;
    e = vp0(tt2);
  }
  __m256i n[8] = {a, b, c, d, e, f, g, h};
  for (int i = 0; i < 8; ++i) v[i] = _mm256_xor_si256(v[i], n[i]);
}

HEARTH_SM3_TARGET void finish_x8_avx2(const uint32_t state[8], uint64_t prefix_len, const uint8_t* const msgs[kLanes],
                                      size_t n, uint8_t out[kLanes][32]) {
  __m256i v[8];
  for (int i = 0; i < 8; ++i) v[i] = _mm256_set1_epi32(static_cast<int>(state[i]));
  size_t whole = n / 64;
  const uint8_t* p[kLanes];
  for (size_t b = 0; b < whole; ++b) {
    for (int l = 0; l < kLanes; ++l) p[l] = msgs[l] + 64 * b;
    compress_x8(v, p);
  }
  alignas(32) uint8_t pad[kLanes][128];
  size_t tail_blocks = 0;
  for (int l = 0; l < kLanes; ++l) tail_blocks = pad_tail(msgs[l] + 64 * whole, n % 64, prefix_len + n, pad[l]);
  for (size_t b = 0; b < tail_blocks; ++b) {
    for (int l = 0; l < kLanes; ++l) p[l] = pad[l] + 64 * b;
    compress_x8(v, p);
  }
  alignas(32) uint32_t lanes[8][8];
  for (int i = 0; i < 8; ++i) _mm256_store_si256(reinterpret_cast<__m256i*>(lanes[i]), v[i]);
  for (int l = 0; l < kLanes; ++l) {
    uint32_t s[8];
    for (int i = 0; i < 8; ++i) s[i] = lanes[i][l];
    store_digest(s, out[l]);
  }
  std::memset(pad, 0, sizeof(pad));
}

#endif  // HEARTH_SM3_X86

}  // namespace

bool multi_available() {
#ifdef HEARTH_SM3_X86
  static const bool ok = __builtin_cpu_supports("avx2");
  return ok;
#else
  return false;
#endif
}

void init(uint32_t state[8]) { std::memcpy(state, kIv, sizeof(kIv)); }

void compress(uint32_t state[8], const uint8_t* blocks, size_t count) {
  for (size_t blk = 0; blk < count; ++blk, blocks += 64) {
    uint32_t w[68];
    for (int j = 0; j < 16; ++j) w[j] = load_be32(blocks + 4 * j);
    for (int j = 16; j < 68; ++j) w[j] = p1(w[j - 16] ^ w[j - 9] ^ rol(w[j - 3], 15)) ^ rol(w[j - 13], 7) ^ w[j - 6];
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int j = 0; j < 64; ++j) {
      uint32_t a12 = rol(a, 12);
      uint32_t ss1 = rol(a12 + e + kT.t[j], 7);
      uint32_t ss2 = ss1 ^ a12;
      uint32_t ff = j < 16 ? a ^ b ^ c : (a & b) | (a & c) | (b & c);
      uint32_t gg = j < 16 ? e ^ f ^ g : (e & f) | (~e & g);
      uint32_t tt1 = ff + d + ss2 + (w[j] ^ w[j + 4]);
      uint32_t tt2 = gg + h + ss1 + w[j];
      d = c;
      c = rol(b, 9);
      b = a;
      a = tt1;
      h = g;
      g = rol(f, 19);
      f = e;
      e = p0(tt2);
    }
    state[0] ^= a, state[1] ^= b, state[2] ^= c, state[3] ^= d;
    state[4] ^= e, state[5] ^= f, state[6] ^= g, state[7] ^= h;
  }
}

void finish(const uint32_t state[8], uint64_t prefix_len, const uint8_t* msg, size_t n, uint8_t out[32]) {
  uint32_t v[8];
  std::memcpy(v, state, sizeof(v));
  compress(v, msg, n / 64);
  uint8_t pad[128];
  size_t blocks = pad_tail(msg + (n / 64) * 64, n % 64, prefix_len + n, pad);
  compress(v, pad, blocks);
  store_digest(v, out);
  std::memset(pad, 0, sizeof(pad));
}

void finish_x8(const uint32_t state[8], uint64_t prefix_len, const uint8_t* const msgs[kLanes], size_t n,
               uint8_t out[kLanes][32]) {
#ifdef HEARTH_SM3_X86
  if (multi_available()) {
    finish_x8_avx2(state, prefix_len, msgs, n, out);
    return;
  }
#endif
  for (int l = 0; l < kLanes; ++l) finish(state, prefix_len, msgs[l], n, out[l]);
}

bool hmac_key(const uint8_t* key, size_t len, HmacKey& out) {
  if (len > 64) return false;
  uint8_t block[64];
  for (int pass = 0; pass < 2; ++pass) {
    std::memset(block, pass == 0 ? 0x36 : 0x5c, sizeof(block));
    for (size_t i = 0; i < len; ++i) block[i] ^= key[i];
    uint32_t* state = pass == 0 ? out.inner : out.outer;
    init(state);
    compress(state, block, 1);
  }
  std::memset(block, 0, sizeof(block));
  return true;
}

void hmac(const HmacKey& key, const uint8_t* msg, size_t n, uint8_t out[32]) {
  uint8_t inner[32];
  finish(key.inner, 64, msg, n, inner);
  finish(key.outer, 64, inner, 32, out);
}

void hmac_x8(const HmacKey& key, const uint8_t* const msgs[kLanes], size_t n, uint8_t out[kLanes][32]) {
  uint8_t inner[kLanes][32];
  finish_x8(key.inner, 64, msgs, n, inner);
  for (int l = 0; l < kLanes; ++l) finish(key.outer, 64, inner[l], 32, out[l]);
}

}  // namespace hearth::security::sm3
