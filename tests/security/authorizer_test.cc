// Authorizer: bearer tokens and certificate subjects, the reasons it gives,
// lockout of failing clients (doubling, cap, window, reset, bounded table),
// reload of the store after `tokens revoke`, role checks with their messages,
// and the allow-all mode of --insecure-no-auth.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "security/auth_store.h"
#include "security/authorizer.h"

namespace hearth::security {
namespace {

namespace fs = std::filesystem;

class AuthorizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("hearth_authz_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    store_path_ = (dir_ / "auth.json").string();
    AuthStore s = *AuthStore::open_or_empty(store_path_);
    ASSERT_TRUE(s.add_user("alice", {"admin"}).ok());
    ASSERT_TRUE(s.add_user("bob", {"viewer"}).ok());
    ASSERT_TRUE(s.add_subject("bob", "CN=bob,O=Bank").ok());
    alice_token_ = s.issue_token("alice", 0, "", 1000)->token;
    bob_token_ = s.issue_token("bob", 3600, "", 1000)->token;
    ASSERT_TRUE(s.save().ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  AuthorizerOptions options() {
    AuthorizerOptions o;
    o.store_path = store_path_;
    o.max_failures = 3;
    o.failure_window_seconds = 60;
    o.max_lockout_seconds = 5;
    o.clock_ms = [this] { return clock_ms_.load(); };
    o.unix_now = [this] { return unix_now_.load(); };
    return o;
  }
  std::unique_ptr<Authorizer> make(AuthorizerOptions o) {
    auto a = Authorizer::create(std::move(o));
    EXPECT_TRUE(a.ok()) << a.status().message();
    return a.ok() ? std::move(a).value() : nullptr;
  }
  Credentials bearer(const std::string& token, std::string_view client = "10.0.0.1") {
    header_ = "Bearer " + token;
    return Credentials{header_, client, {}};
  }
  void advance_ms(int64_t ms) { clock_ms_ += ms; }

  fs::path dir_;
  std::string store_path_, alice_token_, bob_token_, header_;
  std::atomic<int64_t> clock_ms_{1000000};
  std::atomic<int64_t> unix_now_{2000};
};

TEST_F(AuthorizerTest, CreateNeedsAStoreThatExists) {
  AuthorizerOptions o = options();
  o.store_path = (dir_ / "missing.json").string();
  auto a = Authorizer::create(o);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kNotFound);
  EXPECT_NE(a.status().message().find("hearth users add"), std::string::npos);
  o.store_path.clear();
  EXPECT_EQ(Authorizer::create(o).status().code(), StatusCode::kInvalidArgument);
  ::chmod(store_path_.c_str(), 0640);
  EXPECT_EQ(Authorizer::create(options()).status().code(), StatusCode::kPermissionDenied);
}

TEST_F(AuthorizerTest, UndefinedRoleNamesUserAndRole) {
  AuthStore s = *AuthStore::open(store_path_);
  ASSERT_TRUE(s.add_user("carol", {"fraud-analyst"}).ok());
  ASSERT_TRUE(s.save().ok());
  auto a = Authorizer::create(options());
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("user 'carol'"), std::string::npos) << a.status().message();
  EXPECT_NE(a.status().message().find("role 'fraud-analyst'"), std::string::npos) << a.status().message();

  std::string policy = (dir_ / "policy.yaml").string();
  std::ofstream(policy) << "roles:\n  fraud-analyst:\n    rules:\n      - resource: inference\n"
                           "        actions: [infer]\n        models: [\"fraud-*\"]\n";
  AuthorizerOptions o = options();
  o.policy_path = policy;
  auto b = make(o);
  ASSERT_NE(b, nullptr);
  Principal carol{"carol", {"fraud-analyst"}, "token"};
  EXPECT_TRUE(b->authorize(carol, Resource::kInference, Action::kInfer, "fraud-v1").ok());
  Status denied = b->authorize(carol, Resource::kInference, Action::kInfer, "mlp");
  EXPECT_EQ(denied.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.message(), "user 'carol' (roles: fraud-analyst) may not infer on inference for model 'mlp'");

  o.policy_path = (dir_ / "bad.yaml").string();
  std::ofstream(o.policy_path) << "roles:\n  x:\n    rules: 3\n";
  auto c = Authorizer::create(o);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("bad.yaml:3:"), std::string::npos) << c.status().message();
}

TEST_F(AuthorizerTest, BearerTokenGivesTheUsersRoles) {
  auto a = make(options());
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->enabled());
  Result<Principal> p = a->authenticate(bearer(alice_token_));
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->user, "alice");
  EXPECT_EQ(p->roles, std::vector<std::string>{"admin"});
  EXPECT_EQ(p->method, "token");
  std::string lower = "bearer  " + bob_token_;
  Result<Principal> q = a->authenticate({lower, "10.0.0.1", {}});
  ASSERT_TRUE(q.ok()) << q.status().message();
  EXPECT_EQ(q->user, "bob");
}

TEST_F(AuthorizerTest, FailureReasons) {
  AuthorizerOptions o = options();
  o.max_failures = 100;
  auto a = make(o);
  auto reason = [&](Credentials c) {
    Result<Principal> p = a->authenticate(c);
    EXPECT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), StatusCode::kUnauthenticated);
    return p.status().message();
  };
  EXPECT_EQ(reason({"", "c", ""}), "missing credentials: send 'Authorization: Bearer <token>'");
  for (std::string_view h : {"Basic YWxpY2U6cHc=", "Bearer", "Bearer ", "Bearer a b", "Token x"}) {
    EXPECT_EQ(reason({h, "c", ""}).rfind("malformed Authorization header", 0), 0u) << h;
  }
  EXPECT_EQ(reason(bearer("hth_nonsense")).rfind("invalid token", 0), 0u);
  std::string forged = alice_token_;
  forged[20] = forged[20] == 'A' ? 'B' : 'A';
  EXPECT_EQ(reason(bearer(forged)), "invalid token");
  unix_now_ = 1000 + 3600;
  EXPECT_EQ(reason(bearer(bob_token_)), "token expired");
  EXPECT_TRUE(a->authenticate(bearer(alice_token_)).ok());  // alice's never expires
}

TEST_F(AuthorizerTest, CertificateSubjectMapsToAUser) {
  auto a = make(options());
  Result<Principal> p = a->authenticate({"", "10.0.0.2", "CN=bob,O=Bank"});
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->user, "bob");
  EXPECT_EQ(p->method, "certificate");
  Result<Principal> unknown = a->authenticate({"", "10.0.0.2", "CN=eve,O=Bank"});
  EXPECT_EQ(unknown.status().code(), StatusCode::kUnauthenticated);
  EXPECT_NE(unknown.status().message().find("CN=eve,O=Bank"), std::string::npos);
  // A token is checked first: a bad token is not rescued by a good certificate.
  std::string header = "Bearer hth_bad";
  EXPECT_FALSE(a->authenticate({header, "10.0.0.2", "CN=bob,O=Bank"}).ok());
  // And a good token wins over the certificate's user.
  header = "Bearer " + alice_token_;
  EXPECT_EQ(a->authenticate({header, "10.0.0.2", "CN=bob,O=Bank"})->user, "alice");
}

TEST_F(AuthorizerTest, LockoutDoublesIsCappedAndNeverRefusesAValidToken) {
  auto a = make(options());  // 3 failures, cap 5 s
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(a->authenticate(bearer("hth_x")).status().code(), StatusCode::kUnauthenticated);
  }
  // The address is locked out: its next failed attempt answers 429 ...
  int wait = 0;
  Result<Principal> locked = a->authenticate(bearer("hth_x"), &wait);
  EXPECT_EQ(locked.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(locked.status().message(),
            "too many failed authentication attempts with this address (address 10.0.0.1); retry in 1 s");
  EXPECT_EQ(wait, 1);
  EXPECT_EQ(a->retry_after_seconds("address 10.0.0.1"), 1);
  EXPECT_EQ(a->retry_after_seconds("address 10.0.0.9"), 0);
  // ... but a valid token from the same address (a NAT, a proxy) is never refused.
  EXPECT_TRUE(a->authenticate(bearer(alice_token_)).ok());
  EXPECT_TRUE(a->authenticate(bearer(alice_token_, "10.0.0.9")).ok());

  int64_t expected[] = {2, 4, 5, 5};
  for (int64_t secs : expected) {
    advance_ms(a->retry_after_seconds("address 10.0.0.1") * 1000);
    EXPECT_EQ(a->retry_after_seconds("address 10.0.0.1"), 0);
    EXPECT_FALSE(a->authenticate(bearer("hth_x")).ok());
    EXPECT_EQ(a->retry_after_seconds("address 10.0.0.1"), secs);
  }
  // After a quiet window the count starts over: two failures do not lock, the third does, for 1 s.
  advance_ms(5000 + 61000);
  EXPECT_FALSE(a->authenticate(bearer("hth_x")).ok());
  EXPECT_FALSE(a->authenticate(bearer("hth_x")).ok());
  EXPECT_EQ(a->retry_after_seconds("address 10.0.0.1"), 0);
  EXPECT_FALSE(a->authenticate(bearer("hth_x")).ok());
  EXPECT_EQ(a->retry_after_seconds("address 10.0.0.1"), 1);
}

// Guessing the secret of a token that exists counts against that token, from
// any address; its owner's right token still works and resets the count.
TEST_F(AuthorizerTest, GuessesAtOneTokenAreThrottledPerToken) {
  auto a = make(options());
  const std::string id = parse_token(alice_token_)->id;
  const std::string wrong = "hth_" + id + "_" + std::string(43, 'A');
  const char* addresses[] = {"10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4"};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(a->authenticate(bearer(wrong, addresses[i])).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(a->authenticate(bearer(wrong, addresses[3])).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(a->retry_after_seconds("token " + id), 1);
  EXPECT_EQ(a->retry_after_seconds("address 10.1.0.4"), 0);
  EXPECT_TRUE(a->authenticate(bearer(alice_token_, "10.1.0.4")).ok());
  EXPECT_EQ(a->retry_after_seconds("token " + id), 0) << "the owner's success resets the token's count";
}

TEST_F(AuthorizerTest, AnIpv6Slash64CountsAsOneAddress) {
  auto a = make(options());
  for (const char* client : {"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"})
    EXPECT_EQ(a->authenticate(bearer("hth_x", client)).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(a->authenticate(bearer("hth_x", "2001:db8:1:2::99")).status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(a->retry_after_seconds("address 2001:db8:1:2::/64"), 1);
  EXPECT_EQ(a->authenticate(bearer("hth_x", "2001:db8:1:3::1")).status().code(), StatusCode::kUnauthenticated)
      << "another /64 is not affected";
}

TEST_F(AuthorizerTest, FailuresOutsideTheWindowAndMissingCredentialsDoNotCount) {
  auto a = make(options());
  for (int i = 0; i < 10; ++i) {
    EXPECT_FALSE(a->authenticate(bearer("hth_x")).ok());
    advance_ms(61000);
  }
  EXPECT_EQ(a->retry_after_seconds("address 10.0.0.1"), 0);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(a->authenticate({"", "10.0.0.1", ""}).status().code(), StatusCode::kUnauthenticated);
  }
  EXPECT_EQ(a->retry_after_seconds("address 10.0.0.1"), 0);
  EXPECT_TRUE(a->authenticate(bearer(alice_token_)).ok());
}

TEST_F(AuthorizerTest, FailureTableIsBounded) {
  AuthorizerOptions o = options();
  o.max_failures = 1;
  o.max_tracked_clients = 2;
  auto a = make(o);
  for (const char* client : {"a", "b", "c"}) EXPECT_FALSE(a->authenticate(bearer("hth_x", client)).ok());
  EXPECT_EQ(a->retry_after_seconds("address a"), 0);  // the oldest was evicted
  EXPECT_EQ(a->retry_after_seconds("address b"), 1);
  EXPECT_EQ(a->retry_after_seconds("address c"), 1);
}

TEST_F(AuthorizerTest, ReloadsTheStoreAfterRevokeAndKeepsTheLastGoodOne) {
  auto a = make(options());
  ASSERT_TRUE(a->authenticate(bearer(bob_token_)).ok());

  AuthStore s = *AuthStore::open(store_path_);
  std::string bob_id = bob_token_.substr(4, 12);
  ASSERT_TRUE(s.revoke_token(bob_id).ok());
  ASSERT_TRUE(s.grant("bob", "operator").ok());
  ASSERT_TRUE(s.save().ok());
  // Checked at most once a second.
  EXPECT_TRUE(a->authenticate(bearer(bob_token_, "10.0.0.5")).ok());
  advance_ms(1000);
  EXPECT_EQ(a->authenticate(bearer(bob_token_, "10.0.0.5")).status().message(), "invalid token");
  Result<Principal> bob = a->authenticate({"", "10.0.0.6", "CN=bob,O=Bank"});
  ASSERT_TRUE(bob.ok());
  EXPECT_EQ(bob->roles, (std::vector<std::string>{"viewer", "operator"}));

  // A broken file is not used: alice keeps working with the last good store.
  {
    std::ofstream(store_path_, std::ios::trunc) << "{ not json";
  }
  advance_ms(1000);
  EXPECT_TRUE(a->authenticate(bearer(alice_token_)).ok());
  // A store with a role the policy lacks is still applied, with a warning:
  // refusing it would also ignore every revocation saved after it. The
  // unknown role grants nothing.
  s = AuthStore::parse(R"({"version":1,"users":[{"name":"alice","roles":["ghost"]}],"tokens":[]})", store_path_)
          .value();
  auto ghost_token = s.issue_token("alice", 0, "", 1000);
  ASSERT_TRUE(ghost_token.ok());
  ASSERT_TRUE(s.save().ok());
  advance_ms(1000);
  EXPECT_EQ(a->authenticate(bearer(alice_token_)).status().message(), "invalid token");  // revoked by the new file
  Result<Principal> ghost = a->authenticate(bearer(ghost_token->token));
  ASSERT_TRUE(ghost.ok()) << ghost.status().message();
  EXPECT_EQ(a->authorize(*ghost, Resource::kModels, Action::kRead, "mlp").code(), StatusCode::kPermissionDenied);
}

TEST_F(AuthorizerTest, AuthorizeMessages) {
  auto a = make(options());
  Principal bob{"bob", {"viewer"}, "token"};
  EXPECT_TRUE(a->authorize(bob, Resource::kModels, Action::kRead, "mlp").ok());
  Status s = a->authorize(bob, Resource::kInference, Action::kInfer, "mlp");
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(), "user 'bob' (roles: viewer) may not infer on inference for model 'mlp'");
  Principal none{"nobody", {}, "certificate"};
  EXPECT_EQ(a->authorize(none, Resource::kKeys, Action::kRead).message(),
            "user 'nobody' (roles: none) may not read on keys");
  Principal two{"carol", {"viewer", "operator"}, "token"};
  EXPECT_TRUE(a->authorize(two, Resource::kInference, Action::kInfer, "mlp").ok());
  EXPECT_EQ(a->authorize(two, Resource::kUsers, Action::kCreate).message(),
            "user 'carol' (roles: viewer, operator) may not create on users");
}

TEST(AuthorizerAllowAll, EveryoneIsAnonymousAdmin) {
  auto a = Authorizer::allow_all();
  EXPECT_FALSE(a->enabled());
  for (std::string_view h : {"", "Bearer junk", "Basic x"}) {
    Result<Principal> p = a->authenticate({h, "1.2.3.4", ""});
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->user, "anonymous");
    EXPECT_EQ(p->roles, std::vector<std::string>{"admin"});
    EXPECT_EQ(p->method, "none");
  }
  EXPECT_TRUE(a->authorize({"x", {}, "none"}, Resource::kKeys, Action::kDelete).ok());
  EXPECT_EQ(a->retry_after_seconds("address 1.2.3.4"), 0);
}

TEST_F(AuthorizerTest, ConcurrentCallsWhileTheStoreChanges) {
  AuthorizerOptions o = options();
  o.clock_ms = nullptr;  // real clock: reloads happen while threads run
  o.max_failures = 1000000;
  auto a = make(o);
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::string good = "Bearer " + alice_token_, wrong = "Bearer hth_wrong";
      std::string client = "10.1.0." + std::to_string(t);
      while (!stop) {
        (a->authenticate({good, client, ""}).ok() ? ok : bad)++;
        (void)a->authenticate({wrong, client, ""});
      }
    });
  }
  for (int i = 0; i < 5; ++i) {
    AuthStore s = *AuthStore::open(store_path_);
    ASSERT_TRUE(s.add_user("u" + std::to_string(i), {"viewer"}).ok());
    ASSERT_TRUE(s.save().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_GT(ok.load(), 0);
  EXPECT_EQ(bad.load(), 0);
}

TEST_F(AuthorizerTest, ValidTokenCostsMicroseconds) {
  auto a = make(options());
  std::string header = "Bearer " + alice_token_;
  constexpr int kRounds = 5000;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRounds; ++i) ASSERT_TRUE(a->authenticate({header, "10.0.0.1", ""}).ok());
  double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / kRounds;
  std::printf("authenticate with a valid token: %.2f us per call\n", us);
  EXPECT_LT(us, 100.0);
}

}  // namespace
}  // namespace hearth::security
