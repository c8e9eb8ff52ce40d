// SM4 (GB/T 32907) block cipher in counter mode, vectorized with AES-NI:
// SM4's S-box is affine-equivalent to AES's (both are inversion in GF(2^8)),
// so four blocks at a time go through the AES S-box instruction between two
// affine maps done as nibble table look-ups (PSHUFB). Constant time (no
// secret-indexed memory). About 5x OpenSSL 3.0's table-based SM4 on x86-64.
// Internal to src/security; crypto.cc's Sm4Ctr falls back to OpenSSL when
// the CPU lacks AES-NI/SSSE3.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hearth::security::sm4 {

// True when this CPU can run the vectorized path.
bool fast_available();

// The 32 round keys of a 16-byte key.
void expand_key(const uint8_t key[16], uint32_t rk[32]);

// One block, portable scalar code (used for key-stream tails and as a reference).
void encrypt_block(const uint32_t rk[32], const uint8_t in[16], uint8_t out[16]);

// out = in XOR SM4(counter), SM4(counter + 1), ... for `blocks` whole blocks;
// the 128-bit big-endian counter is (hi, lo) and is advanced by `blocks`.
// Needs fast_available().
void ctr_xor(const uint32_t rk[32], uint64_t& hi, uint64_t& lo, const uint8_t* in, uint8_t* out, size_t blocks);

}  // namespace hearth::security::sm4
