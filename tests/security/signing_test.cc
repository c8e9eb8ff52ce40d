// SM2 model signatures: round trips, tampering with the file or the signature,
// unknown signers, malformed signature files, trusted signer folders, and sm2
// keys in the key store next to sm4 keys.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "security/crypto.h"
#include "security/keystore.h"
#include "security/signing.h"

namespace hearth::security {
namespace {

namespace fs = std::filesystem;

class SigningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("hearth_sign_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    Result<Key> a = generate_key("alice", KeyType::kSm2);
    ASSERT_TRUE(a.ok()) << a.status().message();
    alice_ = *a;
    Result<Key> m = generate_key("mallory", KeyType::kSm2);
    ASSERT_TRUE(m.ok()) << m.status().message();
    mallory_ = *m;
    model_ = "ONNX model bytes \x01\x02\x03 and some more bytes to sign";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path(name), std::ios::binary) << text;
  }
  // Writes the public half of `key` to `name` in the test folder.
  void export_public(const Key& key, const std::string& name) const {
    Result<std::string> pem = sm2_public_key_pem(key);
    ASSERT_TRUE(pem.ok()) << pem.status().message();
    write(name, *pem);
  }
  TrustedSigners trust(const std::string& p) const {
    Result<TrustedSigners> t = TrustedSigners::load(p);
    EXPECT_TRUE(t.ok()) << t.status().message();
    return t.ok() ? std::move(t).value() : TrustedSigners();
  }
  static void expect_refused(const Status& s, StatusCode code, const std::string& reason) {
    EXPECT_EQ(s.code(), code) << s.message();
    EXPECT_NE(s.message().find(reason), std::string::npos) << s.message();
  }

  fs::path dir_;
  Key alice_, mallory_;
  std::string model_;
};

TEST_F(SigningTest, SignatureFileHasTheDocumentedShape) {
  Result<std::string> sig = sign_bytes(model_, alice_);
  ASSERT_TRUE(sig.ok()) << sig.status().message();
  nlohmann::json j = nlohmann::json::parse(*sig);
  EXPECT_EQ(j["format"], "hearth-signature-1");
  EXPECT_EQ(j["signer"], "alice");
  EXPECT_EQ(j["algorithm"], "SM2-SM3");
  Sm3 sm3;
  ASSERT_TRUE(sm3.update(model_.data(), model_.size()).ok());
  EXPECT_EQ(j["file_sm3"], to_hex(*sm3.final()));
  Result<std::string> der = base64_decode(j["signature"].get<std::string>());
  ASSERT_TRUE(der.ok());
  EXPECT_EQ(static_cast<unsigned char>((*der)[0]), 0x30);  // DER SEQUENCE (r, s)
  // SM2 signatures are randomized: signing twice gives two different, valid signatures.
  Result<std::string> again = sign_bytes(model_, alice_);
  ASSERT_TRUE(again.ok());
  EXPECT_NE(*again, *sig);
}

TEST_F(SigningTest, RoundTripVerifies) {
  export_public(alice_, "alice.pub.pem");
  TrustedSigners signers = trust(path("alice.pub.pem"));
  ASSERT_EQ(signers.size(), 1u);
  Result<std::string> sig = sign_bytes(model_, alice_);
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(signers.verify(model_, *sig, "m.onnx").ok());
  Result<std::string> who = signers.verified_signer(model_, *sig, "m.onnx");
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(*who, "alice");
}

TEST_F(SigningTest, FlippedFileByteIsDigestMismatch) {
  export_public(alice_, "alice.pem");
  TrustedSigners signers = trust(path("alice.pem"));
  std::string sig = *sign_bytes(model_, alice_);
  for (size_t at : {size_t{0}, model_.size() / 2, model_.size() - 1}) {
    std::string changed = model_;
    changed[at] ^= 0x01;
    Status s = signers.verify(changed, sig, "models/m/1/model.onnx");
    expect_refused(s, StatusCode::kPermissionDenied, "digest mismatch (file changed after signing");
    EXPECT_EQ(s.message().rfind("models/m/1/model.onnx", 0), 0u) << s.message();
  }
  expect_refused(signers.verify(model_ + "x", sig, "m"), StatusCode::kPermissionDenied, "digest mismatch");
  expect_refused(signers.verify("", sig, "m"), StatusCode::kPermissionDenied, "digest mismatch");
}

TEST_F(SigningTest, FlippedSignatureByteIsBadSignature) {
  export_public(alice_, "alice.pem");
  TrustedSigners signers = trust(path("alice.pem"));
  nlohmann::json j = nlohmann::json::parse(*sign_bytes(model_, alice_));
  std::string der = *base64_decode(j["signature"].get<std::string>());
  // Flip a bit inside r, inside s, and the last byte.
  for (size_t at : {size_t{10}, der.size() - 10, der.size() - 1}) {
    std::string bad = der;
    bad[at] ^= 0x04;
    j["signature"] = base64_encode(bad);
    expect_refused(signers.verify(model_, j.dump(), "m"), StatusCode::kPermissionDenied, "bad signature");
  }
  // A digest edited to match a changed file does not help: the SM2 signature still fails.
  std::string changed = model_ + "!";
  Sm3 sm3;
  ASSERT_TRUE(sm3.update(changed.data(), changed.size()).ok());
  j["signature"] = base64_encode(der);
  j["file_sm3"] = to_hex(*sm3.final());
  expect_refused(signers.verify(changed, j.dump(), "m"), StatusCode::kPermissionDenied, "bad signature");
}

TEST_F(SigningTest, SignatureBySomeoneElseClaimingATrustedIdIsBad) {
  export_public(alice_, "alice.pem");
  TrustedSigners signers = trust(path("alice.pem"));
  nlohmann::json j = nlohmann::json::parse(*sign_bytes(model_, mallory_));
  j["signer"] = "alice";
  expect_refused(signers.verify(model_, j.dump(), "m"), StatusCode::kPermissionDenied, "bad signature");
}

TEST_F(SigningTest, UnknownSignerIsRefused) {
  export_public(alice_, "alice.pem");
  TrustedSigners signers = trust(path("alice.pem"));
  Status s = signers.verify(model_, *sign_bytes(model_, mallory_), "m.onnx");
  expect_refused(s, StatusCode::kPermissionDenied, "unknown signer 'mallory'");
}

TEST_F(SigningTest, MalformedSignatureFilesAreRefusedWithoutCrashing) {
  export_public(alice_, "alice.pem");
  TrustedSigners signers = trust(path("alice.pem"));
  nlohmann::json good = nlohmann::json::parse(*sign_bytes(model_, alice_));
  auto with = [&](const char* field, nlohmann::json value) {
    nlohmann::json j = good;
    if (value.is_null()) {
      j.erase(field);
    } else {
      j[field] = value;
    }
    return j.dump();
  };
  std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not valid JSON"},
      {"{", "not valid JSON"},
      {"[1,2]", "not a JSON object"},
      {"\"text\"", "not a JSON object"},
      {std::string(100000, ' '), "larger than"},
      {with("format", "hearth-signature-9"), "unknown format"},
      {with("format", nullptr), "field 'format' is missing"},
      {with("algorithm", "ECDSA-SHA256"), "unsupported algorithm"},
      {with("signer", 42), "field 'signer' is not a string"},
      {with("signer", "../etc"), "field 'signer'"},
      {with("file_sm3", "abc"), "field 'file_sm3'"},
      {with("file_sm3", std::string(64, 'G')), "field 'file_sm3'"},
      {with("signature", "!!!"), "field 'signature'"},
      {with("signature", ""), "field 'signature'"},
      {with("signature", nullptr), "field 'signature' is missing"},
      {with("signature", base64_encode(std::string(1000, 'x'))), "field 'signature'"},
  };
  for (const auto& [json, reason] : cases) {
    Status s = signers.verify(model_, json, "m.onnx");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.message();
    EXPECT_NE(s.message().find("m.onnx: malformed signature file"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(reason), std::string::npos) << reason << " / " << s.message();
  }
  // Garbage that is a well-formed field but not a DER signature is a bad signature.
  expect_refused(signers.verify(model_, with("signature", base64_encode("garbage")), "m"),
                 StatusCode::kPermissionDenied, "bad signature");
}

TEST_F(SigningTest, RandomlyMutatedSignatureFilesNeverVerify) {
  export_public(alice_, "alice.pem");
  TrustedSigners signers = trust(path("alice.pem"));
  std::string good = *sign_bytes(model_, alice_);
  uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1664525u + 1013904223u; };
  int refused = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string bad = good;
    for (int n = 1 + next() % 3; n > 0; --n) {
      size_t at = next() % bad.size();
      switch (next() % 3) {
        case 0: bad[at] = static_cast<char>(next()); break;
        case 1: bad.erase(at, 1 + next() % 8); break;
        default: bad.insert(at, 1, static_cast<char>(next())); break;
      }
    }
    if (bad == good) continue;
    Status s = signers.verify(model_, bad, "m");
    // Whitespace-only edits to the JSON are harmless; everything else is refused.
    auto squeeze = [](std::string t) {
      std::erase_if(t, [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; });
      return t;
    };
    if (s.ok()) {
      EXPECT_EQ(squeeze(bad), squeeze(good)) << bad;
    } else {
      ++refused;
      EXPECT_TRUE(s.code() == StatusCode::kInvalidArgument || s.code() == StatusCode::kPermissionDenied) << s.message();
    }
  }
  EXPECT_GT(refused, 1900);
}

TEST_F(SigningTest, FolderOfTrustedKeys) {
  fs::create_directories(path("trusted/sub"));
  export_public(alice_, "trusted/alice.pub.pem");
  export_public(mallory_, "trusted/bob.pem");  // the id comes from the file name
  write("trusted/README.txt", "not a key");
  write("trusted/sub/ignored.pem", "not a key either");
  TrustedSigners signers = trust(path("trusted"));
  EXPECT_EQ(signers.size(), 2u);
  EXPECT_EQ(signers.ids(), "alice, bob");
  EXPECT_TRUE(signers.verify(model_, *sign_bytes(model_, alice_), "m").ok());
  Key bob = mallory_;
  bob.id = "bob";
  EXPECT_TRUE(signers.verify(model_, *sign_bytes(model_, bob), "m").ok());
  expect_refused(signers.verify(model_, *sign_bytes(model_, mallory_), "m"), StatusCode::kPermissionDenied,
                 "unknown signer 'mallory'");
}

TEST_F(SigningTest, BadTrustedSignerSetsAreRefused) {
  EXPECT_EQ(TrustedSigners::load(path("absent")).status().code(), StatusCode::kNotFound);
  fs::create_directories(path("empty"));
  write("empty/notes.txt", "x");
  expect_refused(TrustedSigners::load(path("empty")).status(), StatusCode::kInvalidArgument, "holds no .pem");
  write("junk.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
  expect_refused(TrustedSigners::load(path("junk.pem")).status(), StatusCode::kInvalidArgument,
                 "is not a PEM public key");
  // A private key, or a non-SM2 public key, is not accepted as a trusted signer.
  write("private.pem", "-----BEGIN PRIVATE KEY-----\n" + base64_encode(alice_.secret) + "\n-----END PRIVATE KEY-----\n");
  EXPECT_FALSE(TrustedSigners::load(path("private.pem")).ok());
  write("p256.pem",
        "-----BEGIN PUBLIC KEY-----\n"
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEpI6mROfK9Qq0xcyDEYxtnIHsMwBj\n"
        "dRrTTxMBOfD8JFZFlp1ZMmuyKIpu/zrKk8QzUcOWnILvj/ixLi1yxLhFAQ==\n"
        "-----END PUBLIC KEY-----\n");
  expect_refused(TrustedSigners::load(path("p256.pem")).status(), StatusCode::kInvalidArgument,
                 "is not an SM2 public key");
  fs::create_directories(path("dup"));
  export_public(alice_, "dup/alice.pem");
  export_public(alice_, "dup/alice.pub.pem");
  expect_refused(TrustedSigners::load(path("dup")).status(), StatusCode::kInvalidArgument, "appears twice");
}

TEST_F(SigningTest, Sm4KeyIsRefusedForSigningAndExport) {
  Result<Key> sm4 = generate_key("models");
  ASSERT_TRUE(sm4.ok());
  Result<std::string> sig = sign_bytes(model_, *sm4);
  ASSERT_FALSE(sig.ok());
  expect_refused(sig.status(), StatusCode::kFailedPrecondition, "key 'models' is a symmetric SM4 key");
  expect_refused(sm2_public_key_pem(*sm4).status(), StatusCode::kFailedPrecondition,
                 "key 'models' is a symmetric SM4 key; only SM2 signing keys have a public half");
  // An "sm2" key whose secret is not an SM2 private key is refused, not crashed on.
  Key broken("broken", std::string(32, 'x'), 0, KeyType::kSm2);
  EXPECT_FALSE(sign_bytes(model_, broken).ok());
  EXPECT_FALSE(sm2_public_key_pem(broken).ok());
}

TEST_F(SigningTest, VerifyFileReadsTheSigFileNextToTheModel) {
  export_public(alice_, "alice.pem");
  TrustedSigners signers = trust(path("alice.pem"));
  std::string big(3 * (1 << 20) + 123, '\0');  // several read chunks
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 4096);
  write("model.onnx", big);
  Status unsigned_model = signers.verify_file(path("model.onnx"));
  expect_refused(unsigned_model, StatusCode::kNotFound,
                 "model " + path("model.onnx") + " is not signed (no " + path("model.onnx") + ".sig)");

  Result<std::string> sig = sign_file(path("model.onnx"), alice_);
  ASSERT_TRUE(sig.ok()) << sig.status().message();
  write(std::string("model.onnx") + kSignatureSuffix, *sig);
  EXPECT_TRUE(signers.verify_file(path("model.onnx")).ok());
  EXPECT_TRUE(signers.verify(big, *sig, "in memory").ok());  // chunked and whole-buffer signing agree
  EXPECT_EQ(*signers.verify_file_signer(path("model.onnx"), path("model.onnx.sig")), "alice");

  big[2 * (1 << 20) + 5] ^= 0x40;
  write("model.onnx", big);
  expect_refused(signers.verify_file(path("model.onnx")), StatusCode::kPermissionDenied, "digest mismatch");
  write("model.onnx.sig", "{not json");
  expect_refused(signers.verify_file(path("model.onnx")), StatusCode::kInvalidArgument, "malformed signature file");
}

TEST_F(SigningTest, KeyStoreWithMixedTypesRoundTrips) {
  std::string p = path("keys");
  Result<KeyStore> store = KeyStore::open_or_empty(p);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(store->create("enc").ok());
  Result<Key> sig = store->create("signer", KeyType::kSm2);
  ASSERT_TRUE(sig.ok()) << sig.status().message();
  Result<Key> rotated = store->rotate("signer");
  ASSERT_TRUE(rotated.ok()) << rotated.status().message();
  EXPECT_EQ(rotated->id, "signer-2");
  EXPECT_EQ(rotated->type, KeyType::kSm2);
  EXPECT_NE(rotated->secret, sig->secret);
  EXPECT_EQ(store->rotate("enc")->type, KeyType::kSm4);

  // The file keeps three fields for sm4 keys (readable by older versions) and adds "sm2".
  std::ifstream in(p);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\nenc " + base64_encode(store->find("enc")->secret) + " "), std::string::npos);
  EXPECT_NE(text.find(" sm2\n"), std::string::npos);

  Result<KeyStore> again = KeyStore::open(p);
  ASSERT_TRUE(again.ok()) << again.status().message();
  ASSERT_EQ(again->keys().size(), 4u);
  EXPECT_EQ(again->find("enc")->type, KeyType::kSm4);
  EXPECT_EQ(again->find("enc")->secret.size(), kKeySecretSize);
  EXPECT_EQ(again->find("signer")->type, KeyType::kSm2);
  EXPECT_EQ(again->find("signer")->secret, sig->secret);
  EXPECT_EQ(again->find("signer-2")->type, KeyType::kSm2);
  // A key read back signs, and its exported public key verifies.
  export_public(*again->find("signer"), "signer.pem");
  EXPECT_TRUE(trust(path("signer.pem")).verify(model_, *sign_bytes(model_, *again->find("signer")), "m").ok());
}

TEST_F(SigningTest, KeyStoreRejectsBadTypeFields) {
  std::string p = path("keys");
  auto open_with = [&](const std::string& line) {
    {
      std::ofstream f(p);
      f << "# c\n" << line << "\n";
    }
    ::chmod(p.c_str(), 0600);
    return KeyStore::open(p).status();
  };
  std::string sm4 = base64_encode(std::string(32, 'k'));
  EXPECT_TRUE(open_with("a " + sm4 + " 1700000000").ok());
  EXPECT_TRUE(open_with("a " + sm4 + " 1700000000 sm4").ok());
  expect_refused(open_with("a " + sm4 + " 1700000000 rsa"), StatusCode::kInvalidArgument, "line 2");
  expect_refused(open_with("a " + sm4 + " 1700000000 rsa"), StatusCode::kInvalidArgument, "unknown key type 'rsa'");
  expect_refused(open_with("a " + sm4 + " 1700000000 sm2"), StatusCode::kInvalidArgument,
                 "is not a base64 DER (PKCS#8) SM2 private key");
  expect_refused(open_with("a " + base64_encode(alice_.secret) + " 1700000000"), StatusCode::kInvalidArgument,
                 "32 bytes");
  expect_refused(open_with("a " + sm4 + " 1700000000 sm2 extra"), StatusCode::kInvalidArgument, "expected");
  EXPECT_TRUE(open_with("a " + base64_encode(alice_.secret) + " 1700000000 SM2").ok());
}

TEST_F(SigningTest, KeyFileHoldsAnSm2Key) {
  std::string p = path("signer.key");
  ASSERT_TRUE(write_key_file(p, alice_).ok());
  Result<std::unique_ptr<KeyResolver>> r = key_from_file(p);
  ASSERT_TRUE(r.ok()) << r.status().message();
  Result<Key> k = (*r)->find("alice");
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(k->type, KeyType::kSm2);
  EXPECT_EQ(k->secret, alice_.secret);
}

}  // namespace
}  // namespace hearth::security
