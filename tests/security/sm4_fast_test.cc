// The AES-NI SM4 against the GB/T 32907 test vector and against OpenSSL's
// SM4-CTR on random keys, counters (including 64- and 128-bit wrap) and
// random split points.
#include <gtest/gtest.h>

#include <random>

#include "security/crypto.h"
#include "security/sm4_fast.h"

namespace hearth::security {
namespace {

std::string unhex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

TEST(Sm4Fast, ScalarBlockMatchesTheStandardVector) {
  std::string key = unhex("0123456789abcdeffedcba9876543210");
  uint32_t rk[32];
  sm4::expand_key(reinterpret_cast<const uint8_t*>(key.data()), rk);
  EXPECT_EQ(rk[0], 0xf12186f9u);  // GB/T 32907 appendix A: rk0
  EXPECT_EQ(rk[31], 0x9124a012u);
  uint8_t out[16];
  sm4::encrypt_block(rk, reinterpret_cast<const uint8_t*>(key.data()), out);
  EXPECT_EQ(to_hex(std::string(reinterpret_cast<char*>(out), 16)), "681edf34d206965e86b3e94f536e4246");
}

TEST(Sm4Fast, CtrMatchesOpenSslOnRandomInputs) {
  if (!sm4::fast_available()) GTEST_SKIP() << "no AES-NI on this CPU: OpenSSL is used";
  std::mt19937_64 rng(7);
  auto bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  };
  const std::string wraps[] = {std::string(8, '\0') + std::string(8, '\xff'), std::string(16, '\xff'),
                               std::string(15, '\xff') + "\xf0"};
  for (int trial = 0; trial < 60; ++trial) {
    std::string key = bytes(16);
    std::string iv = trial < 3 ? wraps[trial] : bytes(16);
    std::string data = bytes(1 + rng() % 5000);
    std::string ref(data.size(), '\0'), fast(data.size(), '\0');
    Sm4Ctr slow(key, iv, Sm4Ctr::Impl::kOpenSsl);
    ASSERT_FALSE(slow.uses_fast_path());
    ASSERT_TRUE(slow.apply(data.data(), ref.data(), data.size()).ok());
    Sm4Ctr quick(key, iv);
    ASSERT_TRUE(quick.uses_fast_path());
    // Random split points exercise the partial-block key stream.
    size_t at = 0;
    while (at < data.size()) {
      size_t n = std::min<size_t>(data.size() - at, rng() % 100 == 0 ? 1000 : rng() % 40);
      ASSERT_TRUE(quick.apply(data.data() + at, fast.data() + at, n).ok());
      at += n;
    }
    ASSERT_EQ(to_hex(fast), to_hex(ref)) << "trial " << trial;
  }
}

TEST(Sm4Fast, ScalarAndVectorCtrAgree) {
  std::string key = unhex("00112233445566778899aabbccddeeff");
  uint32_t rk[32];
  sm4::expand_key(reinterpret_cast<const uint8_t*>(key.data()), rk);
  std::string in(16 * 19, 'x'), vec(in.size(), '\0');
  uint64_t hi = 1, lo = ~uint64_t{0} - 5, hi2 = hi, lo2 = lo;
  sm4::ctr_xor(rk, hi, lo, reinterpret_cast<const uint8_t*>(in.data()), reinterpret_cast<uint8_t*>(vec.data()), 19);
  EXPECT_EQ(hi, 2u);
  EXPECT_EQ(lo, 13u);
  for (size_t b = 0; b < 19; ++b) {
    uint8_t ctr[16], ks[16];
    for (int i = 0; i < 8; ++i) {
      ctr[i] = static_cast<uint8_t>(hi2 >> (56 - 8 * i));
      ctr[8 + i] = static_cast<uint8_t>(lo2 >> (56 - 8 * i));
    }
    sm4::encrypt_block(rk, ctr, ks);
    for (int i = 0; i < 16; ++i) ASSERT_EQ(static_cast<uint8_t>(vec[16 * b + i]), ks[i] ^ 'x') << b;
    if (++lo2 == 0) ++hi2;
  }
}

}  // namespace
}  // namespace hearth::security
