// SM3 (GB/T 32905) compression in portable C++ and an 8-lane AVX2 version
// that hashes eight equal-length messages at once (multi-buffer). Package
// chunks are independent, so eight chunk MACs or digests cost about one.
// Internal to src/security; results are checked against OpenSSL's SM3 in
// tests/security/sm3_fast_test.cc.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hearth::security::sm3 {

inline constexpr int kLanes = 8;

// True when this CPU can run finish_x8's AVX2 path (it works, slowly, without).
bool multi_available();

// The SM3 initial value.
void init(uint32_t state[8]);
// Absorbs whole 64-byte blocks.
void compress(uint32_t state[8], const uint8_t* blocks, size_t count);

// Finishes SM3 of `prefix_len` bytes already absorbed into `state` (a multiple
// of 64) followed by msg[0..n): pads and writes the 32-byte digest.
void finish(const uint32_t state[8], uint64_t prefix_len, const uint8_t* msg, size_t n, uint8_t out[32]);

// finish() for eight messages of the same length n, all continuing from the same state.
void finish_x8(const uint32_t state[8], uint64_t prefix_len, const uint8_t* const msgs[kLanes], size_t n,
               uint8_t out[kLanes][32]);

// HMAC-SM3 with the key's inner and outer pads absorbed once.
struct HmacKey {
  uint32_t inner[8];
  uint32_t outer[8];
};
// Keys longer than 64 bytes are not needed here and are refused (returns false).
bool hmac_key(const uint8_t* key, size_t len, HmacKey& out);
void hmac(const HmacKey& key, const uint8_t* msg, size_t n, uint8_t out[32]);
// Eight messages of the same length n under one key.
void hmac_x8(const HmacKey& key, const uint8_t* const msgs[kLanes], size_t n, uint8_t out[kLanes][32]);

}  // namespace hearth::security::sm3
