// OpenSSL 3 wrappers for SM3, HMAC-SM3, HKDF-SM3 and SM4-CTR (see crypto.h).
#include "security/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <climits>
#include <cstring>

#include "security/sm4_fast.h"

namespace hearth::security {

namespace {

// The last OpenSSL error as text, for messages; clears the queue.
std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

Status crypto_error(const char* what) { return internal_error(what, " failed: ", openssl_error()); }

// Algorithms are fetched once; fetched objects are safe to share between threads.
const EVP_MD* sm3_md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SM3", nullptr);
  return md;
}
EVP_MAC* hmac_alg() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return mac;
}
const EVP_CIPHER* sm4_ctr_cipher() {
  static EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "SM4-CTR", nullptr);
  return c;
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

void cleanse(void* p, size_t n) {
  if (p && n) OPENSSL_cleanse(p, n);
}
void cleanse(std::string& s) { cleanse(s.data(), s.size()); }

Result<std::string> random_bytes(size_t n) {
  std::string out(n, '\0');
  if (n > INT_MAX || RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return crypto_error("RAND_bytes");
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto u = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = u(i) << 16 | u(i + 1) << 8 | u(i + 2);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kB64[(v >> s) & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest) {
    uint32_t v = u(i) << 16 | (rest == 2 ? u(i + 1) << 8 : 0);
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kB64[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Result<std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) return invalid_argument("base64 text has length ", text.size(), ", not a multiple of 4");
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    int pad = 0;
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) {
      char c = text[i + k];
      if (c == '=' && last && k >= 2) {
        ++pad;
        v <<= 6;
        continue;
      }
      int d = b64_value(c);
      if (d < 0 || pad) return invalid_argument("invalid base64 character at offset ", i + k);
      v = v << 6 | static_cast<uint32_t>(d);
    }
    out.push_back(static_cast<char>(v >> 16));
    if (pad < 2) out.push_back(static_cast<char>(v >> 8));
    if (pad < 1) out.push_back(static_cast<char>(v));
  }
  return out;
}

std::string to_hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

bool equal_constant_time(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Result<std::string> hkdf_sm3(std::string_view ikm, std::string_view salt, std::string_view info, size_t out_size) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (!kdf) return crypto_error("fetching HKDF");
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (!ctx) return crypto_error("EVP_KDF_CTX_new");
  char digest[] = "SM3";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<char*>(ikm.data()), ikm.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<char*>(salt.data()), salt.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size()),
      OSSL_PARAM_construct_end()};
  std::string out(out_size, '\0');
  int rc = EVP_KDF_derive(ctx, reinterpret_cast<unsigned char*>(out.data()), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (rc != 1) return crypto_error("HKDF-SM3");
  return out;
}

Sm3::Sm3() {
  ctx_ = EVP_MD_CTX_new();
  ok_ = ctx_ && sm3_md() && EVP_DigestInit_ex(ctx_, sm3_md(), nullptr) == 1;
}
Sm3::~Sm3() { EVP_MD_CTX_free(ctx_); }

Status Sm3::update(const void* data, size_t n) {
  if (!ok_ || (n && EVP_DigestUpdate(ctx_, data, n) != 1)) return crypto_error("SM3");
  return ok_status();
}

Result<std::string> Sm3::final() {
  std::string out(kSm3Size, '\0');
  unsigned int len = 0;
  if (!ok_ || EVP_DigestFinal_ex(ctx_, reinterpret_cast<unsigned char*>(out.data()), &len) != 1 || len != kSm3Size) {
    return crypto_error("SM3");
  }
  ok_ = false;
  return out;
}

HmacSm3::HmacSm3(std::string_view key) {
  ctx_ = hmac_alg() ? EVP_MAC_CTX_new(hmac_alg()) : nullptr;
  char digest[] = "SM3";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
  ok_ = ctx_ && EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params) == 1;
}
HmacSm3::~HmacSm3() { EVP_MAC_CTX_free(ctx_); }

Status HmacSm3::update(const void* data, size_t n) {
  if (!ok_ || (n && EVP_MAC_update(ctx_, static_cast<const unsigned char*>(data), n) != 1)) {
    return crypto_error("HMAC-SM3");
  }
  return ok_status();
}

Result<std::string> HmacSm3::final() {
  std::string out(kSm3Size, '\0');
  size_t len = 0;
  if (!ok_ || EVP_MAC_final(ctx_, reinterpret_cast<unsigned char*>(out.data()), &len, out.size()) != 1 ||
      len != kSm3Size) {
    return crypto_error("HMAC-SM3");
  }
  ok_ = false;
  return out;
}

Sm4Ctr::Sm4Ctr(std::string_view key, std::string_view iv, Impl impl) {
  if (key.size() != kSm4KeySize || iv.size() != kSm4BlockSize) return;
  if (impl == Impl::kAuto && sm4::fast_available()) {
    sm4::expand_key(reinterpret_cast<const uint8_t*>(key.data()), rk_);
    for (int i = 0; i < 8; ++i) {
      hi_ = hi_ << 8 | static_cast<unsigned char>(iv[i]);
      lo_ = lo_ << 8 | static_cast<unsigned char>(iv[8 + i]);
    }
    fast_ = ok_ = true;
    return;
  }
  ctx_ = EVP_CIPHER_CTX_new();
  ok_ = ctx_ && sm4_ctr_cipher() &&
        EVP_EncryptInit_ex(ctx_, sm4_ctr_cipher(), nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                           reinterpret_cast<const unsigned char*>(iv.data())) == 1;
}

Sm4Ctr::~Sm4Ctr() {
  EVP_CIPHER_CTX_free(ctx_);  // frees and cleanses the key schedule
  cleanse(rk_, sizeof(rk_));
  cleanse(ks_, sizeof(ks_));
}

Status Sm4Ctr::apply_fast(const unsigned char* in, unsigned char* out, size_t n) {
  while (n > 0 && ks_used_ < 16) {  // the rest of a partly used block
    *out++ = *in++ ^ ks_[ks_used_++];
    --n;
  }
  size_t blocks = n / 16;
  sm4::ctr_xor(rk_, hi_, lo_, in, out, blocks);
  in += 16 * blocks;
  out += 16 * blocks;
  n -= 16 * blocks;
  if (n > 0) {  // start a new block and keep what is left of its key stream
    std::memset(ks_, 0, sizeof(ks_));
    sm4::ctr_xor(rk_, hi_, lo_, ks_, ks_, 1);
    for (ks_used_ = 0; ks_used_ < n; ++ks_used_) out[ks_used_] = in[ks_used_] ^ ks_[ks_used_];
  }
  return ok_status();
}

Status Sm4Ctr::apply(const void* in, void* out, size_t n) {
  if (!ok_) return crypto_error("SM4-CTR setup");
  auto* src = static_cast<const unsigned char*>(in);
  auto* dst = static_cast<unsigned char*>(out);
  if (fast_) return apply_fast(src, dst, n);
  while (n > 0) {  // EVP takes int lengths
    int step = n > (1u << 30) ? (1 << 30) : static_cast<int>(n);
    int len = 0;
    if (EVP_EncryptUpdate(ctx_, dst, &len, src, step) != 1 || len != step) return crypto_error("SM4-CTR");
    src += step;
    dst += step;
    n -= static_cast<size_t>(step);
  }
  return ok_status();
}

std::string add_counter(std::string_view iv, uint64_t blocks) {
  std::string out(iv);
  unsigned carry = 0;
  for (int i = 15; i >= 0; --i) {
    unsigned add = (i >= 8 ? static_cast<unsigned>((blocks >> (8 * (15 - i))) & 0xff) : 0) + carry;
    unsigned v = static_cast<unsigned char>(out[i]) + add;
    out[i] = static_cast<char>(v & 0xff);
    carry = v >> 8;
  }
  return out;
}

}  // namespace hearth::security
