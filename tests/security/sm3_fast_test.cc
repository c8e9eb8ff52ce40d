// The portable and 8-lane SM3 against the GB/T 32905 vectors and OpenSSL.
#include <gtest/gtest.h>

#include <random>

#include "security/crypto.h"
#include "security/sm3_fast.h"

namespace hearth::security {
namespace {

std::string openssl_sm3(const std::string& m) {
  Sm3 h;
  EXPECT_TRUE(h.update(m.data(), m.size()).ok());
  return *h.final();
}

std::string portable_sm3(const std::string& m) {
  uint32_t s[8];
  sm3::init(s);
  uint8_t out[32];
  sm3::finish(s, 0, reinterpret_cast<const uint8_t*>(m.data()), m.size(), out);
  return std::string(reinterpret_cast<char*>(out), 32);
}

TEST(Sm3Fast, PortableMatchesStandardVectors) {
  EXPECT_EQ(to_hex(portable_sm3("abc")), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
  std::string m;
  for (int i = 0; i < 16; ++i) m += "abcd";
  EXPECT_EQ(to_hex(portable_sm3(m)), "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732");
}

TEST(Sm3Fast, PortableAndMultiLaneMatchOpenSsl) {
  std::mt19937_64 rng(3);
  for (size_t n : {0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 4096, 70000}) {
    std::string msgs[8];
    const uint8_t* ptrs[8];
    for (int l = 0; l < 8; ++l) {
      msgs[l].resize(n);
      for (auto& c : msgs[l]) c = static_cast<char>(rng());
      ptrs[l] = reinterpret_cast<const uint8_t*>(msgs[l].data());
    }
    uint32_t s[8];
    sm3::init(s);
    uint8_t out[8][32];
    sm3::finish_x8(s, 0, ptrs, n, out);
    for (int l = 0; l < 8; ++l) {
      std::string want = openssl_sm3(msgs[l]);
      EXPECT_EQ(to_hex(portable_sm3(msgs[l])), to_hex(want)) << n;
      EXPECT_EQ(to_hex(std::string(reinterpret_cast<char*>(out[l]), 32)), to_hex(want)) << "lane " << l << " n " << n;
    }
  }
}

TEST(Sm3Fast, ContinuesFromAnAbsorbedPrefix) {
  std::string prefix(128, 'p'), msg(300, 'm');
  uint32_t s[8];
  sm3::init(s);
  sm3::compress(s, reinterpret_cast<const uint8_t*>(prefix.data()), 2);
  const uint8_t* ptrs[8];
  for (auto& p : ptrs) p = reinterpret_cast<const uint8_t*>(msg.data());
  uint8_t out[8][32];
  sm3::finish_x8(s, 128, ptrs, msg.size(), out);
  EXPECT_EQ(to_hex(std::string(reinterpret_cast<char*>(out[5]), 32)), to_hex(openssl_sm3(prefix + msg)));
}

TEST(Sm3Fast, HmacMatchesOpenSsl) {
  std::string key(32, 'k'), msg(5000, 'x');
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<char>(i * 7);
  HmacSm3 ref(key);
  ASSERT_TRUE(ref.update(msg.data(), msg.size()).ok());
  std::string want = *ref.final();
  sm3::HmacKey k;
  ASSERT_TRUE(sm3::hmac_key(reinterpret_cast<const uint8_t*>(key.data()), key.size(), k));
  uint8_t one[32], eight[8][32];
  sm3::hmac(k, reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), one);
  EXPECT_EQ(to_hex(std::string(reinterpret_cast<char*>(one), 32)), to_hex(want));
  const uint8_t* ptrs[8];
  for (auto& p : ptrs) p = reinterpret_cast<const uint8_t*>(msg.data());
  sm3::hmac_x8(k, ptrs, msg.size(), eight);
  EXPECT_EQ(to_hex(std::string(reinterpret_cast<char*>(eight[7]), 32)), to_hex(want));
}

}  // namespace
}  // namespace hearth::security
