// Users and tokens file: round trip, permission refusal, tampered files,
// token text parsing, issue / verify / expiry / revoke, and the stored hash
// checked against an independent HMAC-SM3 (OpenSSL's HMAC()).
#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "security/auth_store.h"
#include "security/crypto.h"

namespace hearth::security {
namespace {

namespace fs = std::filesystem;

class AuthStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("hearth_auth_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  static mode_t mode_of(const std::string& p) {
    struct stat st {};
    ::stat(p.c_str(), &st);
    return st.st_mode & 0777;
  }
  static void write(const std::string& p, const std::string& text, mode_t mode = 0600) {
    std::ofstream(p) << text;
    ::chmod(p.c_str(), mode);
  }
  fs::path dir_;
};

std::string token_text(const std::string& id, const std::string& secret43) { return "hth_" + id + "_" + secret43; }

TEST(ParseToken, AcceptsIssuedShape) {
  std::string secret(42, 'A');
  secret += 'E';  // 'E' = 4: low two bits zero
  Result<TokenParts> p = parse_token(token_text("0123456789ab", secret));
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->id, "0123456789ab");
  EXPECT_EQ(p->secret.size(), kTokenSecretBytes);
  // "AAAA..." decodes to zero bytes; 'E' (000100) puts its top four bits 0001 in the last byte.
  EXPECT_EQ(static_cast<unsigned char>(p->secret.back()), 0x01);
  // base64url characters '-' and '_' are part of the secret alphabet.
  EXPECT_TRUE(parse_token(token_text("0123456789ab", "-_" + std::string(40, 'x') + "A")).ok());
}

TEST(ParseToken, EveryMalformedShapeGivesTheSameError) {
  const std::string good_secret = std::string(42, 'A') + "A";
  const std::vector<std::string> bad = {
      "",
      "hth_",
      "Bearer " + token_text("0123456789ab", good_secret),
      token_text("0123456789ab", good_secret) + "A",         // too long
      token_text("0123456789ab", good_secret.substr(1)),     // too short
      "htx_0123456789ab_" + good_secret,                      // prefix
      token_text("0123456789AB", good_secret),               // upper-case id
      token_text("0123456789ag", good_secret),               // non-hex id
      "hth_0123456789ab-" + good_secret,                      // separator
      token_text("0123456789ab", std::string(42, 'A') + "B"),  // non-canonical last character
      token_text("0123456789ab", std::string(42, 'A') + "="),  // padding
      token_text("0123456789ab", std::string(41, 'A') + "+A"),  // standard-alphabet character
      token_text("0123456789ab", std::string(41, 'A') + std::string(1, '\0') + "A"),
  };
  for (const std::string& t : bad) {
    Result<TokenParts> p = parse_token(t);
    ASSERT_FALSE(p.ok()) << t;
    EXPECT_EQ(p.status().code(), StatusCode::kUnauthenticated) << t;
    EXPECT_EQ(p.status().message(), "malformed token") << t;
  }
}

TEST(UserNames, Validation) {
  for (const char* ok : {"alice", "a", "svc.batch-1", "bob@bank.example", "A_9"}) {
    EXPECT_TRUE(validate_user_name(ok).ok()) << ok;
  }
  for (const std::string& bad :
       std::vector<std::string>{"", "-alice", ".x", "al ice", "a/b", "ali\xc3\xa9", std::string(65, 'a')}) {
    EXPECT_FALSE(validate_user_name(bad).ok()) << bad;
  }
  EXPECT_TRUE(validate_user_name(std::string(64, 'a')).ok());
}

TEST_F(AuthStoreTest, RoundTripThroughTheFile) {
  Result<AuthStore> s = AuthStore::open_or_empty(path("sub/auth.json"));
  ASSERT_TRUE(s.ok()) << s.status().message();
  ASSERT_TRUE(s->add_user("alice", {"admin"}).ok());
  ASSERT_TRUE(s->add_user("bob", {"viewer", "fraud-analyst", "viewer"}).ok());
  ASSERT_TRUE(s->add_subject("bob", "CN=bob,O=Bank").ok());
  Result<IssuedToken> t = s->issue_token("bob", 3600, "ci job", 1000);
  ASSERT_TRUE(t.ok()) << t.status().message();
  ASSERT_TRUE(s->save().ok());
  EXPECT_EQ(mode_of(path("sub/auth.json")), 0600u);
  EXPECT_EQ(mode_of(path("sub")), 0700u);

  Result<AuthStore> back = AuthStore::open(path("sub/auth.json"));
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->users().size(), 2u);
  const User* bob = back->find_user("bob");
  ASSERT_NE(bob, nullptr);
  EXPECT_EQ(bob->roles, (std::vector<std::string>{"viewer", "fraud-analyst"}));
  EXPECT_EQ(back->find_user_by_subject("CN=bob,O=Bank"), bob);
  EXPECT_EQ(back->find_user_by_subject("CN=bob"), nullptr);
  EXPECT_EQ(back->find_user_by_subject(""), nullptr);
  ASSERT_EQ(back->tokens().size(), 1u);
  EXPECT_EQ(back->tokens()[0].id, t->record.id);
  EXPECT_EQ(back->tokens()[0].expires_unix, 4600);
  EXPECT_EQ(back->tokens()[0].description, "ci job");
  Result<const User*> who = back->verify_token(t->token, 2000);
  ASSERT_TRUE(who.ok()) << who.status().message();
  EXPECT_EQ((*who)->name, "bob");

  // The secret is nowhere in the file.
  std::ifstream in(path("sub/auth.json"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.find(t->token.substr(17)), std::string::npos);
  EXPECT_EQ(text.find(t->token), std::string::npos);
}

TEST_F(AuthStoreTest, StoredHashIsHmacSm3OfTheSecretKeyedBySalt) {
  AuthStore s = *AuthStore::open_or_empty(path("a.json"));
  ASSERT_TRUE(s.add_user("alice", {"admin"}).ok());
  IssuedToken t = *s.issue_token("alice", 0, "", 1);
  ASSERT_EQ(t.token.size(), 4u + 12 + 1 + 43);
  EXPECT_EQ(t.token.substr(0, 4), "hth_");
  EXPECT_EQ(t.token.substr(4, 12), t.record.id);
  std::string secret = parse_token(t.token)->secret;
  std::string salt = *base64_decode(t.record.salt);
  ASSERT_EQ(salt.size(), kTokenSaltBytes);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ASSERT_NE(HMAC(EVP_sm3(), salt.data(), static_cast<int>(salt.size()),
                 reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), mac, &len),
            nullptr);
  EXPECT_EQ(t.record.hash, base64_encode(std::string(reinterpret_cast<char*>(mac), len)));
  EXPECT_EQ(t.record.expires_unix, 0);
}

TEST_F(AuthStoreTest, RefusesWideModeAndMissingFile) {
  AuthStore s = *AuthStore::open_or_empty(path("auth.json"));
  ASSERT_TRUE(s.add_user("alice", {"admin"}).ok());
  ASSERT_TRUE(s.save().ok());
  ::chmod(path("auth.json").c_str(), 0644);
  Result<AuthStore> wide = AuthStore::open(path("auth.json"));
  ASSERT_FALSE(wide.ok());
  EXPECT_EQ(wide.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(wide.status().message().find("0644"), std::string::npos) << wide.status().message();
  EXPECT_NE(wide.status().message().find(path("auth.json")), std::string::npos);
  EXPECT_EQ(AuthStore::open_or_empty(path("auth.json")).status().code(), StatusCode::kPermissionDenied);
  ::chmod(path("auth.json").c_str(), 0400);
  EXPECT_TRUE(AuthStore::open(path("auth.json")).ok());

  Result<AuthStore> missing = AuthStore::open(path("none.json"));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  Result<AuthStore> empty = AuthStore::open_or_empty(path("none.json"));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->users().empty());
  EXPECT_EQ(empty->path(), path("none.json"));
}

TEST_F(AuthStoreTest, TamperedFilesAreErrorsNamingTheFileAndField) {
  const std::string good_token = R"({"id":"0123456789ab","user":"alice","salt":"AAAAAAAAAAAAAAAAAAAAAA==",)"
                                 R"("hash":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","created":1,"expires":0})";
  struct Case {
    std::string json;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"{", "invalid JSON"},
      {"[]", "top level: expected an object"},
      {R"({"version":2,"users":[],"tokens":[]})", "version: expected version 1"},
      {R"({"version":1,"users":{},"tokens":[]})", "users: expected a list"},
      {R"({"version":1,"users":[],"tokens":[],"extra":1})", "unknown key 'extra'"},
      {R"({"version":1,"users":[{"name":"al ice","roles":[]}],"tokens":[]})", "users[0].name: invalid user name"},
      {R"({"version":1,"users":[{"name":"a","roles":"admin"}],"tokens":[]})", "users[0].roles: expected a list"},
      {R"({"version":1,"users":[{"name":"a","roles":["Admin"]}],"tokens":[]})", "users[0].roles: invalid role name"},
      {R"({"version":1,"users":[{"name":"a","roles":[]},{"name":"a","roles":[]}],"tokens":[]})",
       "users[1]: user 'a' appears twice"},
      {R"({"version":1,"users":[{"name":"a","roles":[],"created":-5}],"tokens":[]})",
       "users[0].created: expected a non-negative integer"},
      {R"({"version":1,"users":[],"tokens":[)" + good_token + "]}", "belongs to unknown user 'alice'"},
      {R"({"version":1,"users":[{"name":"alice","roles":[]}],"tokens":[)" + good_token + "," + good_token + "]}",
       "tokens[1]: token id 0123456789ab appears twice"},
      {R"({"version":1,"users":[{"name":"alice","roles":[]}],"tokens":[{"id":"xyz","user":"alice"}]})",
       "tokens[0].id: expected 12 lowercase hex characters"},
      {R"({"version":1,"users":[{"name":"alice","roles":[]}],"tokens":[{"id":"0123456789ab","user":"alice",)"
       R"("salt":"AAAA","hash":"AAAA"}]})",
       "tokens[0].salt: expected 16 bytes of base64"},
  };
  for (const Case& c : cases) {
    write(path("auth.json"), c.json);
    Result<AuthStore> s = AuthStore::open(path("auth.json"));
    ASSERT_FALSE(s.ok()) << c.json;
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << c.json;
    EXPECT_NE(s.status().message().find("auth store " + path("auth.json")), std::string::npos) << s.status().message();
    EXPECT_NE(s.status().message().find(c.expected), std::string::npos) << s.status().message();
  }
  // The well-formed version of the last ones opens.
  write(path("auth.json"), R"({"version":1,"users":[{"name":"alice","roles":[]}],"tokens":[)" + good_token + "]}");
  EXPECT_TRUE(AuthStore::open(path("auth.json")).ok());
}

TEST_F(AuthStoreTest, TamperedHashRejectsTheToken) {
  AuthStore s = *AuthStore::open_or_empty(path("auth.json"));
  ASSERT_TRUE(s.add_user("alice", {"admin"}).ok());
  IssuedToken t = *s.issue_token("alice", 0, "", 1);
  std::string text = s.to_json();
  size_t at = text.find(t.record.hash);
  ASSERT_NE(at, std::string::npos);
  text[at] = text[at] == 'A' ? 'B' : 'A';
  Result<AuthStore> tampered = AuthStore::parse(text, "mem");
  ASSERT_TRUE(tampered.ok()) << tampered.status().message();
  EXPECT_EQ(tampered->verify_token(t.token, 2).status().message(), "invalid token");
}

TEST_F(AuthStoreTest, VerifyIssueExpireRevoke) {
  AuthStore s = *AuthStore::open_or_empty(path("auth.json"));
  ASSERT_TRUE(s.add_user("alice", {"operator"}).ok());
  ASSERT_TRUE(s.add_user("bob", {"viewer"}).ok());
  IssuedToken a = *s.issue_token("alice", 100, "short", 1000);
  IssuedToken b = *s.issue_token("bob", 0, "", 1000);
  EXPECT_NE(a.record.id, b.record.id);

  EXPECT_EQ((*s.verify_token(a.token, 1099))->name, "alice");
  EXPECT_EQ((*s.verify_token(b.token, 1LL << 40))->name, "bob");
  Result<const User*> expired = s.verify_token(a.token, 1100);
  EXPECT_EQ(expired.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(expired.status().message(), "token expired");

  // Wrong secret for a known id, unknown id, malformed text.
  std::string wrong = a.token;
  wrong.back() = wrong.back() == 'A' ? 'Q' : 'A';
  EXPECT_EQ(s.verify_token(wrong, 1050).status().message(), "invalid token");
  std::string unknown = "hth_ffffffffffff_" + a.token.substr(17);
  if (unknown.substr(4, 12) != a.record.id && unknown.substr(4, 12) != b.record.id) {
    EXPECT_EQ(s.verify_token(unknown, 1050).status().message(), "invalid token");
  }
  Result<const User*> junk = s.verify_token("not-a-token", 1050);
  EXPECT_EQ(junk.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(junk.status().message().rfind("invalid token", 0), 0u);

  ASSERT_TRUE(s.revoke_token(a.record.id).ok());
  EXPECT_EQ(s.verify_token(a.token, 1050).status().message(), "invalid token");
  EXPECT_EQ(s.revoke_token(a.record.id).code(), StatusCode::kNotFound);
  EXPECT_TRUE(s.verify_token(b.token, 1050).ok());

  // Removing a user removes its tokens.
  ASSERT_TRUE(s.remove_user("bob").ok());
  EXPECT_TRUE(s.tokens().empty());
  EXPECT_EQ(s.verify_token(b.token, 1050).status().message(), "invalid token");
}

TEST_F(AuthStoreTest, IssuedTokensAreUniqueAndRandom) {
  AuthStore s = *AuthStore::open_or_empty(path("auth.json"));
  ASSERT_TRUE(s.add_user("alice", {"admin"}).ok());
  std::set<std::string> ids, secrets, salts;
  for (int i = 0; i < 50; ++i) {
    IssuedToken t = *s.issue_token("alice", 0, "", 1);
    EXPECT_TRUE(parse_token(t.token).ok());
    ids.insert(t.record.id);
    secrets.insert(t.token.substr(17));
    salts.insert(t.record.salt);
  }
  EXPECT_EQ(ids.size(), 50u);
  EXPECT_EQ(secrets.size(), 50u);
  EXPECT_EQ(salts.size(), 50u);
}

TEST_F(AuthStoreTest, UserEditsAndTheirErrors) {
  AuthStore s = *AuthStore::open_or_empty(path("auth.json"));
  ASSERT_TRUE(s.add_user("alice", {"viewer"}).ok());
  EXPECT_EQ(s.add_user("alice", {"admin"}).code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(s.add_user("bad name", {"admin"}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.add_user("carol", {"Bad Role"}).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(s.grant("alice", "operator").ok());
  EXPECT_EQ(s.grant("alice", "operator").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(s.grant("nobody", "operator").code(), StatusCode::kNotFound);
  EXPECT_EQ(s.find_user("alice")->roles, (std::vector<std::string>{"viewer", "operator"}));
  ASSERT_TRUE(s.revoke("alice", "viewer").ok());
  EXPECT_EQ(s.revoke("alice", "viewer").code(), StatusCode::kNotFound);
  EXPECT_EQ(s.find_user("alice")->roles, (std::vector<std::string>{"operator"}));
  ASSERT_TRUE(s.add_user("bob", {}).ok());
  ASSERT_TRUE(s.add_subject("alice", "CN=alice,O=Bank").ok());
  EXPECT_EQ(s.add_subject("bob", "CN=alice,O=Bank").code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(s.add_subject("bob", "CN=x\n").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.issue_token("nobody", 0, "", 1).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(s.issue_token("bob", 0, "line\nbreak", 1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.remove_user("nobody").code(), StatusCode::kNotFound);
}

TEST(AuthStoreDefaultPath, EnvironmentThenHome) {
  ::setenv(kAuthStoreEnv, "/tmp/x/auth.json", 1);
  EXPECT_EQ(AuthStore::default_path(), "/tmp/x/auth.json");
  ::unsetenv(kAuthStoreEnv);
  const char* old_home = std::getenv("HOME");
  std::string saved = old_home ? old_home : "";
  ::setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(AuthStore::default_path(), "/home/someone/.config/hearth/auth.json");
  if (old_home) ::setenv("HOME", saved.c_str(), 1); else ::unsetenv("HOME");
}

}  // namespace
}  // namespace hearth::security
