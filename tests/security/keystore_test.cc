// Key store, key files and HEARTH_MODEL_KEY: permissions, formats, rotation,
// resolvers, and the server resolver built from flags.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "security/crypto.h"
#include "security/keystore.h"
#include "security/model_source.h"
#include "security/package.h"

namespace hearth::security {
namespace {

namespace fs = std::filesystem;

class KeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("hearth_keys_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ::unsetenv(kModelKeyEnv);
  }
  void TearDown() override {
    fs::remove_all(dir_);
    ::unsetenv(kModelKeyEnv);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  static mode_t mode_of(const std::string& p) {
    struct stat st {};
    ::stat(p.c_str(), &st);
    return st.st_mode & 0777;
  }
  fs::path dir_;
};

TEST_F(KeyStoreTest, CreatesStoreWithOwnerOnlyModeAndReadsItBack) {
  std::string p = path("sub/keys");
  Result<KeyStore> store = KeyStore::open_or_empty(p);
  ASSERT_TRUE(store.ok()) << store.status().message();
  Result<Key> a = store->create("alpha");
  ASSERT_TRUE(a.ok()) << a.status().message();
  Result<Key> b = store->create("");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->id.rfind("key-", 0), 0u);
  EXPECT_EQ(a->secret.size(), kKeySecretSize);
  EXPECT_NE(a->secret, b->secret);
  EXPECT_EQ(mode_of(p), 0600u);
  Result<KeyStore> again = KeyStore::open(p);
  ASSERT_TRUE(again.ok()) << again.status().message();
  ASSERT_EQ(again->keys().size(), 2u);
  Result<Key> found = again->find("alpha");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->secret, a->secret);
  EXPECT_GT(found->created_unix, 1700000000);
  EXPECT_EQ(again->create("alpha").status().code(), StatusCode::kAlreadyExists);
  EXPECT_FALSE(again->create("../x").ok());
}

TEST_F(KeyStoreTest, RefusesStoreReadableByOthers) {
  std::string p = path("keys");
  ASSERT_TRUE(KeyStore::open_or_empty(p)->create("alpha").ok());
  ASSERT_EQ(::chmod(p.c_str(), 0644), 0);
  Result<KeyStore> store = KeyStore::open(p);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(store.status().message().find(p), std::string::npos);
  EXPECT_NE(store.status().message().find("mode 0644"), std::string::npos) << store.status().message();
  ASSERT_EQ(::chmod(p.c_str(), 0640), 0);
  EXPECT_FALSE(KeyStore::open(p).ok());
  ASSERT_EQ(::chmod(p.c_str(), 0400), 0);
  EXPECT_TRUE(KeyStore::open(p).ok());
  // The server resolver refuses it at start too.
  ASSERT_EQ(::chmod(p.c_str(), 0604), 0);
  EXPECT_FALSE(make_server_key_resolver(p, "").ok());
}

TEST_F(KeyStoreTest, MissingStoreIsNotFound) {
  EXPECT_EQ(KeyStore::open(path("nope")).status().code(), StatusCode::kNotFound);
  Result<KeyStore> empty = KeyStore::open_or_empty(path("nope"));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->keys().empty());
}

TEST_F(KeyStoreTest, MalformedLinesAreNamed) {
  std::string p = path("keys");
  {
    std::ofstream f(p);
    f << "# comment\n\ngood " << base64_encode(std::string(32, 'x')) << " 1700000000\nbad line\n";
  }
  ::chmod(p.c_str(), 0600);
  Result<KeyStore> store = KeyStore::open(p);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("line 4"), std::string::npos) << store.status().message();
  {
    std::ofstream f(p);
    f << "short " << base64_encode(std::string(16, 'x')) << " 1700000000\n";
  }
  store = KeyStore::open(p);
  ASSERT_FALSE(store.ok());
  EXPECT_NE(store.status().message().find("32 bytes"), std::string::npos) << store.status().message();
}

TEST_F(KeyStoreTest, RotateAddsNextIdAndKeepsOldKey) {
  std::string p = path("keys");
  Result<KeyStore> store = KeyStore::open_or_empty(p);
  Result<Key> a = store->create("models");
  ASSERT_TRUE(a.ok());
  Result<Key> r2 = store->rotate("models");
  ASSERT_TRUE(r2.ok()) << r2.status().message();
  EXPECT_EQ(r2->id, "models-2");
  Result<Key> r3 = store->rotate("models-2");
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(r3->id, "models-3");
  EXPECT_NE(r3->secret, a->secret);
  Result<KeyStore> again = KeyStore::open(p);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->keys().size(), 3u);
  EXPECT_EQ(again->find("models")->secret, a->secret);
  EXPECT_FALSE(store->rotate("absent").ok());
}

TEST_F(KeyStoreTest, EnvironmentKeyResolves) {
  Key k("env-key", std::string(32, 'e'));
  ::setenv(kModelKeyEnv, ("env-key:" + base64_encode(k.secret)).c_str(), 1);
  Result<std::unique_ptr<KeyResolver>> r = key_from_env();
  ASSERT_TRUE(r.ok()) << r.status().message();
  Result<Key> found = (*r)->find("env-key");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->secret, k.secret);
  Result<Key> other = (*r)->find("other");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("HEARTH_MODEL_KEY"), std::string::npos);
  ::setenv(kModelKeyEnv, "env-key:not base64", 1);
  EXPECT_FALSE(key_from_env().ok());
  ::setenv(kModelKeyEnv, ("env-key:" + base64_encode(std::string(31, 'e'))).c_str(), 1);
  EXPECT_FALSE(key_from_env().ok());
  ::unsetenv(kModelKeyEnv);
  EXPECT_EQ(key_from_env().status().code(), StatusCode::kNotFound);
}

TEST_F(KeyStoreTest, KeyFileResolvesAndObeysPermissions) {
  Result<Key> k = generate_key("filekey");
  ASSERT_TRUE(k.ok());
  std::string p = path("file.key");
  ASSERT_TRUE(write_key_file(p, *k).ok());
  EXPECT_EQ(mode_of(p), 0600u);
  EXPECT_FALSE(write_key_file(p, *k).ok()) << "must not overwrite an existing key file";
  Result<std::unique_ptr<KeyResolver>> r = key_from_file(p);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)->find("filekey")->secret, k->secret);
  ::chmod(p.c_str(), 0660);
  EXPECT_EQ(key_from_file(p).status().code(), StatusCode::kPermissionDenied);
}

TEST_F(KeyStoreTest, ServerResolverChainsStoreFileAndEnvironment) {
  Result<std::unique_ptr<KeyResolver>> none = make_server_key_resolver("", "");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->get(), nullptr);

  std::string store_path = path("keys");
  Result<KeyStore> store = KeyStore::open_or_empty(store_path);
  ASSERT_TRUE(store->create("in-store").ok());
  Result<Key> fk = generate_key("in-file");
  ASSERT_TRUE(write_key_file(path("f.key"), *fk).ok());
  Key ek("in-env", std::string(32, 'v'));
  ::setenv(kModelKeyEnv, ("in-env:" + base64_encode(ek.secret)).c_str(), 1);
  Result<std::unique_ptr<KeyResolver>> all = make_server_key_resolver(store_path, path("f.key"));
  ASSERT_TRUE(all.ok()) << all.status().message();
  ASSERT_NE(all->get(), nullptr);
  EXPECT_TRUE((*all)->find("in-store").ok());
  EXPECT_TRUE((*all)->find("in-file").ok());
  EXPECT_TRUE((*all)->find("in-env").ok());
  // Keys added to the store later (rotation) are seen without a restart.
  ASSERT_TRUE(store->rotate("in-store").ok());
  EXPECT_TRUE((*all)->find("in-store-2").ok());
  Result<Key> missing = (*all)->find("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("key 'nope'"), std::string::npos);
}

TEST_F(KeyStoreTest, LoadEncryptedModelReadsPackageFile) {
  Result<Key> k = generate_key("m");
  ASSERT_TRUE(k.ok());
  Package p;
  p.files.emplace_back("model.onnx", "model bytes");
  Result<std::string> bytes = seal_package(p, *k);
  ASSERT_TRUE(bytes.ok());
  std::string pkg = path(kEncryptedModelFileName);
  std::ofstream(pkg, std::ios::binary) << *bytes;
  SingleKeyResolver keys(*k, "test");
  Result<Package> out = load_encrypted_model(pkg, keys);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(out->files[0].data, "model bytes");
  std::ofstream(pkg, std::ios::binary) << bytes->substr(0, bytes->size() - 3);
  Result<Package> cut = load_encrypted_model(pkg, keys);
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find(pkg), std::string::npos);
  EXPECT_NE(cut.status().message().find("truncated package"), std::string::npos);
  EXPECT_EQ(load_encrypted_model(path("absent.sm4"), keys).status().code(), StatusCode::kNotFound);
}

TEST(Base64, RoundTripsAndRejectsGarbage) {
  for (size_t n = 0; n < 40; ++n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(i * 37 + 11));
    Result<std::string> back = base64_decode(base64_encode(s));
    ASSERT_TRUE(back.ok()) << n;
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(base64_encode("hearth"), "aGVhcnRo");
  EXPECT_FALSE(base64_decode("aGVhcnR").ok());
  EXPECT_FALSE(base64_decode("aG=hcnRo").ok());
  EXPECT_FALSE(base64_decode("aGVh cnRo").ok());
}

TEST(Sm3, MatchesTheStandardTestVector) {
  // GB/T 32905-2016 example 1: SM3("abc").
  Sm3 h;
  ASSERT_TRUE(h.update("abc", 3).ok());
  Result<std::string> d = h.final();
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(to_hex(*d), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
}

TEST(Sm4Ctr, MatchesTheStandardBlockAndCounterArithmetic) {
  // GB/T 32907-2016 example: SM4 of 0123456789abcdeffedcba9876543210 under the
  // same key is 681edf34d206965e86b3e94f536e4246. In CTR mode with that block
  // as the counter and zero plaintext, the first key-stream block is exactly that.
  std::string key = *base64_decode("ASNFZ4mrze/+3LqYdlQyEA==");
  Sm4Ctr ctr(key, key);
  std::string zeros(32, '\0'), out(32, '\0');
  ASSERT_TRUE(ctr.apply(zeros.data(), out.data(), zeros.size()).ok());
  EXPECT_EQ(to_hex(out.substr(0, 16)), "681edf34d206965e86b3e94f536e4246");
  // Starting at counter+1 gives the second block: the chunk IV arithmetic.
  Sm4Ctr second(key, add_counter(key, 1));
  std::string out2(16, '\0');
  ASSERT_TRUE(second.apply(zeros.data(), out2.data(), 16).ok());
  EXPECT_EQ(out2, out.substr(16));
  EXPECT_EQ(to_hex(add_counter(std::string(15, '\0') + "\xff", 1)), "00000000000000000000000000000100");
  EXPECT_EQ(to_hex(add_counter(std::string(16, '\xff'), 2)), "00000000000000000000000000000001");
}

}  // namespace
}  // namespace hearth::security
