// Thin RAII wrappers over OpenSSL 3 for the primitives model packages use:
// SM3, HMAC-SM3, HKDF-SM3, SM4-CTR, random bytes, base64 and cleansing.
// Internal to src/security; every failure comes back as a Status naming the
// primitive, never as an exception or an abort.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

struct evp_mac_ctx_st;
struct evp_md_ctx_st;
struct evp_cipher_ctx_st;

namespace hearth::security {

inline constexpr size_t kSm3Size = 32;
inline constexpr size_t kSm4KeySize = 16;
inline constexpr size_t kSm4BlockSize = 16;

// Overwrites a buffer with zeros in a way the compiler may not elide.
void cleanse(void* p, size_t n);
void cleanse(std::string& s);

// n bytes from OpenSSL's CSPRNG.
Result<std::string> random_bytes(size_t n);

std::string base64_encode(std::string_view bytes);
// Strict: only the standard alphabet with '=' padding; anything else is an error.
Result<std::string> base64_decode(std::string_view text);
std::string to_hex(std::string_view bytes);

// Compares in time independent of where the inputs differ.
bool equal_constant_time(std::string_view a, std::string_view b);

// HKDF (RFC 5869) with SM3: `out_size` bytes from ikm, salt and info.
Result<std::string> hkdf_sm3(std::string_view ikm, std::string_view salt, std::string_view info, size_t out_size);

// Incremental SM3.
class Sm3 {
 public:
  Sm3();
  ~Sm3();
  Sm3(const Sm3&) = delete;
  Sm3& operator=(const Sm3&) = delete;
  Status update(const void* data, size_t n);
  Result<std::string> final();  // 32 bytes

 private:
  evp_md_ctx_st* ctx_ = nullptr;
  bool ok_ = false;
};

// Incremental HMAC-SM3.
class HmacSm3 {
 public:
  explicit HmacSm3(std::string_view key);
  ~HmacSm3();
  HmacSm3(const HmacSm3&) = delete;
  HmacSm3& operator=(const HmacSm3&) = delete;
  Status update(const void* data, size_t n);
  Result<std::string> final();  // 32 bytes

 private:
  evp_mac_ctx_st* ctx_ = nullptr;
  bool ok_ = false;
};

// SM4 in counter mode; encryption and decryption are the same operation.
// The 16-byte IV is the initial big-endian 128-bit counter block. Uses the
// AES-NI implementation of sm4_fast.h when the CPU has it, else OpenSSL.
class Sm4Ctr {
 public:
  enum class Impl { kAuto, kOpenSsl };
  Sm4Ctr(std::string_view key, std::string_view iv, Impl impl = Impl::kAuto);
  ~Sm4Ctr();
  Sm4Ctr(const Sm4Ctr&) = delete;
  Sm4Ctr& operator=(const Sm4Ctr&) = delete;
  // Processes n bytes from in to out (may be the same buffer); the key stream
  // continues across calls.
  Status apply(const void* in, void* out, size_t n);
  bool uses_fast_path() const { return fast_; }

 private:
  Status apply_fast(const unsigned char* in, unsigned char* out, size_t n);

  evp_cipher_ctx_st* ctx_ = nullptr;
  bool ok_ = false;
  bool fast_ = false;
  uint32_t rk_[32] = {};
  uint64_t hi_ = 0, lo_ = 0;      // next counter block
  unsigned char ks_[16] = {};     // key stream of a partly used block
  size_t ks_used_ = 16;           // bytes of ks_ already used
};

// Adds `blocks` to a 16-byte big-endian counter (mod 2^128).
std::string add_counter(std::string_view iv, uint64_t blocks);

}  // namespace hearth::security
