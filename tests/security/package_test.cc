// Encrypted model packages: round trips, wrong keys, tampering, truncation at
// every length, hostile headers, random bytes, and no files on disk.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <set>

#include "security/crypto.h"
#include "security/package.h"

namespace hearth::security {
namespace {

Key test_key(const std::string& id = "test-key", char fill = 7) { return Key(id, std::string(kKeySecretSize, fill)); }

std::string pattern(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

Package sample(size_t model_size = 3000, size_t data_size = 5000) {
  Package p;
  p.files.emplace_back("model.onnx", pattern(model_size, 1));
  p.files.emplace_back("weights/conv1.bin", pattern(data_size, 2));
  p.files.emplace_back("empty.bin", "");
  return p;
}

std::string seal(const Package& p, const Key& k, uint32_t chunk = 4096) {
  SealOptions o;
  o.chunk_size = chunk;
  Result<std::string> r = seal_package(p, k, o);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : "";
}

void expect_same(const Package& a, const Package& b) {
  ASSERT_EQ(a.files.size(), b.files.size());
  for (size_t i = 0; i < a.files.size(); ++i) {
    EXPECT_EQ(a.files[i].name, b.files[i].name);
    EXPECT_TRUE(a.files[i].data == b.files[i].data) << a.files[i].name;
  }
}

TEST(Package, RoundTripsFilesAcrossChunkBoundaries) {
  Key k = test_key();
  Package p = sample();
  std::string bytes = seal(p, k);
  SingleKeyResolver keys(k, "test");
  for (int threads : {1, 3}) {
    OpenOptions o;
    o.threads = threads;
    Result<Package> out = open_package(bytes, keys, o);
    ASSERT_TRUE(out.ok()) << out.status().message();
    EXPECT_EQ(out->key_id, "test-key");
    expect_same(p, *out);
  }
}

TEST(Package, RoundTripsAMultiMegabyteModelWithDefaultChunks) {
  Key k = test_key();
  Package p;
  p.files.emplace_back("model.onnx", pattern((3u << 20) + 123, 3));
  Result<std::string> bytes = seal_package(p, k);
  ASSERT_TRUE(bytes.ok());
  Result<Package> out = open_package(*bytes, SingleKeyResolver(k, "test"));
  ASSERT_TRUE(out.ok()) << out.status().message();
  expect_same(p, *out);
}

// The server opens packages in place, in the buffer they were read into.
TEST(Package, OpensInPlaceWithTheSameResult) {
  Key k = test_key();
  Package p = sample(300000, 500000);
  std::string bytes = seal(p, k);
  SingleKeyResolver keys(k, "test");
  for (bool digest : {false, true}) {
    std::string buffer = bytes;
    OpenOptions o;
    o.check_plaintext_digest = digest;
    Result<PackageView> view = open_package_in_place(buffer.data(), buffer.size(), keys, o);
    ASSERT_TRUE(view.ok()) << view.status().message();
    ASSERT_EQ(view->files.size(), p.files.size());
    for (size_t i = 0; i < p.files.size(); ++i) {
      EXPECT_EQ(view->files[i].first, p.files[i].name);
      EXPECT_TRUE(view->files[i].second == p.files[i].data) << p.files[i].name;
      // The views point into the caller's buffer.
      EXPECT_TRUE(view->files[i].second.empty() || (view->files[i].second.data() >= buffer.data() &&
                                                     view->files[i].second.data() < buffer.data() + buffer.size()));
    }
  }
}

TEST(Package, InPlaceOpenOfATamperedPackageFailsAndWipesThePayload) {
  Key k = test_key();
  Package p = sample(300000, 500000);
  std::string bytes = seal(p, k);
  bytes[bytes.size() / 2] ^= 0x01;
  auto header = parse_package_header(bytes);
  ASSERT_TRUE(header.ok());
  Result<PackageView> view = open_package_in_place(bytes.data(), bytes.size(), SingleKeyResolver(k, "test"));
  ASSERT_FALSE(view.ok());
  EXPECT_EQ(view.status().code(), StatusCode::kUnauthenticated);
  // No decrypted (unauthenticated) byte is left behind.
  const std::string_view payload(bytes.data() + header->header_size, static_cast<size_t>(header->payload_size));
  EXPECT_EQ(payload.find_first_not_of('\0'), std::string_view::npos);
}

TEST(Package, CiphertextHidesPlaintextAndNoncesDiffer) {
  Key k = test_key();
  Package p;
  p.files.emplace_back("model.onnx", std::string(10000, 'A'));
  std::string a = seal(p, k), b = seal(p, k);
  EXPECT_EQ(a.find(std::string(64, 'A')), std::string::npos);
  EXPECT_NE(a, b);  // fresh nonce each time
  Result<PackageHeader> ha = parse_package_header(a), hb = parse_package_header(b);
  ASSERT_TRUE(ha.ok() && hb.ok());
  EXPECT_NE(ha->nonce, hb->nonce);
  EXPECT_EQ(ha->plaintext_digest, hb->plaintext_digest);
}

TEST(Package, HeaderReadsWithoutKey) {
  std::string bytes = seal(sample(), test_key("prod-2"));
  Result<std::string> id = package_key_id(bytes);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, "prod-2");
  Result<PackageHeader> h = parse_package_header(bytes);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->cipher_suite, "SM4-CTR+HMAC-SM3");
  ASSERT_EQ(h->files.size(), 3u);
  EXPECT_EQ(h->files[1].name, "weights/conv1.bin");
  EXPECT_EQ(h->files[1].size, 5000u);
  EXPECT_EQ(bytes.substr(0, 8), "HEARTHPK");
}

TEST(Package, WrongKeyFailsAuthentication) {
  std::string bytes = seal(sample(), test_key("k", 1));
  Result<Package> out = open_package(bytes, SingleKeyResolver(test_key("k", 2), "test"));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(), "authentication failed: wrong key or tampered package");
}

TEST(Package, MissingKeyIsNamed) {
  std::string bytes = seal(sample(), test_key("alpha"));
  Result<Package> out = open_package(bytes, SingleKeyResolver(test_key("beta"), "test"));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kNotFound);
  EXPECT_NE(out.status().message().find("key 'alpha'"), std::string::npos) << out.status().message();
}

TEST(Package, EveryTamperedByteIsRejected) {
  Key k = test_key();
  Package p;
  p.files.emplace_back("model.onnx", pattern(300, 4));
  p.files.emplace_back("a.bin", pattern(200, 5));
  std::string bytes = seal(p, k);
  SingleKeyResolver keys(k, "test");
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    Result<Package> out = open_package(bad, keys);
    ASSERT_FALSE(out.ok()) << "flipping byte " << i << " was not detected";
  }
}

TEST(Package, TamperedCiphertextAndTagNameAuthentication) {
  Key k = test_key();
  std::string bytes = seal(sample(), k);
  Result<PackageHeader> h = parse_package_header(bytes);
  ASSERT_TRUE(h.ok());
  SingleKeyResolver keys(k, "test");
  for (size_t at : {static_cast<size_t>(h->header_size) + 5, bytes.size() - 1, bytes.size() - 32,
                    bytes.find(h->plaintext_digest) + 3, bytes.find(h->nonce) + 15}) {
    std::string bad = bytes;
    bad[at] = static_cast<char>(bad[at] ^ 0x80);
    Result<Package> out = open_package(bad, keys);
    ASSERT_FALSE(out.ok());
    EXPECT_NE(out.status().message().find("authentication failed"), std::string::npos)
        << "byte " << at << ": " << out.status().message();
  }
}

TEST(Package, TruncatedAtEveryLengthFailsCleanly) {
  Key k = test_key();
  Package p;
  p.files.emplace_back("model.onnx", pattern(100, 6));
  std::string bytes = seal(p, k);
  SingleKeyResolver keys(k, "test");
  for (size_t n = 0; n < bytes.size(); ++n) {
    Result<Package> out = open_package(std::string_view(bytes).substr(0, n), keys);
    ASSERT_FALSE(out.ok()) << n;
    if (n >= 24) {
      EXPECT_EQ(out.status().message(),
                str_cat("truncated package: header says ", bytes.size(), " bytes, file has ", n));
    } else {
      EXPECT_NE(out.status().message().find("truncated package"), std::string::npos) << n;
    }
  }
  EXPECT_TRUE(open_package(bytes, keys).ok());
  Result<Package> longer = open_package(bytes + "x", keys);
  ASSERT_FALSE(longer.ok());
  EXPECT_NE(longer.status().message().find("trailing data"), std::string::npos);
}

TEST(Package, BadMagicAndVersionAreNamed) {
  std::string bytes = seal(sample(), test_key());
  SingleKeyResolver keys(test_key(), "test");
  std::string bad = bytes;
  bad[0] = 'X';
  EXPECT_EQ(open_package(bad, keys).status().message(), "not a Hearth package (bad magic)");
  EXPECT_EQ(open_package("\x08\x01onnx model bytes", keys).status().message(), "not a Hearth package (bad magic)");
  bad = bytes;
  bad[8] = 9;
  EXPECT_NE(open_package(bad, keys).status().message().find("format version 9 is not supported"), std::string::npos);
}

// The package tag as docs/SECURITY.md defines it, recomputed with OpenSSL's HMAC-SM3.
std::string documented_tag(const std::string& bytes, const Key& k) {
  Result<PackageHeader> h = parse_package_header(bytes);
  EXPECT_TRUE(h.ok());
  Result<std::string> mac = hkdf_sm3(k.secret, h->nonce, "hearth package v1 HMAC-SM3 key", 32);
  Result<std::string> chunk_mac = hkdf_sm3(k.secret, h->nonce, "hearth package v1 chunk HMAC-SM3 key", 32);
  HmacSm3 tag(*mac);
  EXPECT_TRUE(tag.update(bytes.data(), h->header_size).ok());
  for (uint64_t a = 0; a < h->payload_size; a += h->chunk_size) {
    uint64_t b = std::min<uint64_t>(h->payload_size, a + h->chunk_size);
    HmacSm3 ct(*chunk_mac);
    EXPECT_TRUE(ct.update(bytes.data() + h->header_size + a, b - a).ok());
    std::string t = *ct.final();
    EXPECT_TRUE(tag.update(t.data(), t.size()).ok());
  }
  return *tag.final();
}

// The plaintext digest as docs/SECURITY.md defines it, with OpenSSL's SM3.
std::string documented_digest(const Package& p, uint32_t chunk) {
  std::string all;
  for (const auto& f : p.files) all += f.data;
  Sm3 outer;
  std::string prefix = "hearth package v1 plaintext SM3";
  for (int i = 0; i < 8; ++i) prefix.push_back(static_cast<char>((uint64_t{all.size()} >> (8 * i)) & 0xff));
  for (int i = 0; i < 4; ++i) prefix.push_back(static_cast<char>((chunk >> (8 * i)) & 0xff));
  EXPECT_TRUE(outer.update(prefix.data(), prefix.size()).ok());
  for (size_t a = 0; a < all.size(); a += chunk) {
    Sm3 d;
    EXPECT_TRUE(d.update(all.data() + a, std::min<size_t>(chunk, all.size() - a)).ok());
    std::string x = *d.final();
    EXPECT_TRUE(outer.update(x.data(), x.size()).ok());
  }
  return *outer.final();
}

TEST(Package, TagAndDigestFollowTheDocumentedConstruction) {
  // Layouts that take the eight-lane paths (whole groups of full chunks, inside
  // one file or across files) and the one-chunk paths (short groups).
  Key k = test_key();
  std::vector<std::vector<size_t>> layouts = {{8000}, {40000, 5000}, {10000, 30000, 1}, {4096 * 16}, {1, 2, 3}};
  for (const auto& sizes : layouts) {
    Package p;
    for (size_t i = 0; i < sizes.size(); ++i) {
      p.files.emplace_back(i == 0 ? "model.onnx" : "f" + std::to_string(i), pattern(sizes[i], 10 + i));
    }
    std::string bytes = seal(p, k);
    Result<PackageHeader> h = parse_package_header(bytes);
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(to_hex(bytes.substr(bytes.size() - 32)), to_hex(documented_tag(bytes, k))) << sizes[0];
    EXPECT_EQ(to_hex(h->plaintext_digest), to_hex(documented_digest(p, 4096))) << sizes[0];
    Result<Package> out = open_package(bytes, SingleKeyResolver(k, "test"));
    ASSERT_TRUE(out.ok()) << out.status().message();
    expect_same(p, *out);
  }
}

TEST(Package, DigestMismatchIsDetectedAfterAuthentication) {
  // A package sealed correctly except for a wrong digest (a buggy or hostile
  // sealer holding the key): the tag verifies, the digest check must not.
  Key k = test_key();
  std::string bytes = seal(sample(), k);
  Result<PackageHeader> h = parse_package_header(bytes);
  ASSERT_TRUE(h.ok());
  size_t digest_at = bytes.find(h->plaintext_digest);
  ASSERT_NE(digest_at, std::string::npos);
  bytes[digest_at] = static_cast<char>(bytes[digest_at] ^ 1);
  bytes.replace(bytes.size() - 32, 32, documented_tag(bytes, k));
  Result<Package> out = open_package(bytes, SingleKeyResolver(k, "test"));
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message(), "plaintext digest mismatch");
}

TEST(Package, RefusesPathTraversalNames) {
  for (const char* name : {"../model.onnx", "/etc/passwd", "a/../../b", "a//b", "./x", "a/.", "", "a\\..\\b",
                           "x/..", "a\nb"}) {
    EXPECT_FALSE(validate_package_file_name(name).ok()) << name;
    Package p;
    p.files.emplace_back(name, "data");
    EXPECT_FALSE(seal_package(p, test_key()).ok()) << name;
  }
  for (const char* name : {"model.onnx", "weights/a.bin", "a..b", ".hidden", "x/y/z.data"}) {
    EXPECT_TRUE(validate_package_file_name(name).ok()) << name;
  }
}

TEST(Package, ParserRefusesTraversalNamesInAForgedHeader) {
  // Same length as "model.onnx" so the rest of the header stays consistent.
  Key k = test_key();
  Package p;
  p.files.emplace_back("aaaaaaaaaa", "x");
  std::string bytes = seal(p, k);
  size_t at = bytes.find("aaaaaaaaaa");
  bytes.replace(at, 10, "../../evil");
  Result<Package> out = open_package(bytes, SingleKeyResolver(k, "test"));
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("path traversal"), std::string::npos) << out.status().message();
}

TEST(Package, RefusesDuplicateNamesAndEmptyPackages) {
  Package p;
  p.files.emplace_back("model.onnx", "a");
  p.files.emplace_back("model.onnx", "b");
  EXPECT_FALSE(seal_package(p, test_key()).ok());
  EXPECT_FALSE(seal_package(Package{}, test_key()).ok());
  Package q = sample();
  q.key_id = "other";
  EXPECT_FALSE(seal_package(q, test_key()).ok());
}

TEST(Package, RandomBytesNeverCrash) {
  Key k = test_key();
  SingleKeyResolver keys(k, "test");
  std::string valid = seal(sample(200, 300), k);
  std::mt19937 rng(42);
  for (int i = 0; i < 3000; ++i) {
    std::string b;
    if (i % 3 == 0) {
      b = pattern(rng() % 400, static_cast<uint32_t>(i));
    } else {  // mutate a valid package: random byte writes, sometimes a cut
      b = valid;
      for (int m = 0; m < 1 + static_cast<int>(rng() % 4); ++m) b[rng() % b.size()] = static_cast<char>(rng());
      if (i % 3 == 2) b.resize(rng() % b.size());
    }
    Result<Package> out = open_package(b, keys);
    if (b != valid) {
      EXPECT_FALSE(out.ok());
    }
    (void)package_key_id(b);
  }
}

TEST(Package, SealAndOpenCreateNoFiles) {
  namespace fs = std::filesystem;
  auto list = [](const fs::path& dir) {
    std::set<std::string> s;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      s.insert(it->path().string());
    }
    return s;
  };
  // A fresh folder that is both the working directory and TMPDIR while sealing and opening.
  fs::path dir = fs::temp_directory_path() / ("hearth_nofiles_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::path old_cwd = fs::current_path();
  const char* old_tmp = std::getenv("TMPDIR");
  std::string saved_tmp = old_tmp ? old_tmp : "";
  ::setenv("TMPDIR", dir.c_str(), 1);
  fs::current_path(dir);
  auto tmp_before = list("/tmp");
  auto shm_before = list("/dev/shm");

  Key k = test_key();
  Package p = sample(200000, 300000);
  std::string bytes = seal(p, k);
  Result<Package> out = open_package(bytes, SingleKeyResolver(k, "test"));

  auto tmp_after = list("/tmp");
  auto shm_after = list("/dev/shm");
  fs::current_path(old_cwd);
  if (old_tmp) {
    ::setenv("TMPDIR", saved_tmp.c_str(), 1);
  } else {
    ::unsetenv("TMPDIR");
  }
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(list(dir).empty()) << "files appeared in the working directory / TMPDIR";
  // Other tests may create files in /tmp or /dev/shm meanwhile; none of the
  // new files may hold plaintext.
  const std::string marker = p.files[0].data.substr(p.files[0].data.size() / 2, 256);
  auto holds_plaintext = [&](const std::string& f) {
    std::ifstream in(f, std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return content.find(marker) != std::string::npos;
  };
  for (const auto* pair : {&tmp_before, &shm_before}) {
    const auto& after = pair == &tmp_before ? tmp_after : shm_after;
    for (const auto& f : after) {
      std::error_code ec;
      if (!pair->count(f) && f.find(dir.string()) != 0 && fs::is_regular_file(f, ec)) {
        EXPECT_FALSE(holds_plaintext(f)) << "new file " << f << " holds plaintext";
      }
    }
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hearth::security
