// The audit log: append/list/filters, the documented hash construction, chain
// continuity across reopen and threads, tampering through the raw sqlite3 API,
// file permission and format checks.
#include <gtest/gtest.h>

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "security/audit_log.h"
#include "security/crypto.h"

namespace hearth::security {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kT0 = 1795600800000000;  // 2026-11-25T10:00:00Z

AuditEvent event(const std::string& user, const std::string& action, const std::string& model = "",
                 const std::string& outcome = "ok") {
  return AuditEvent{user, action, "models", model, model.empty() ? "" : "1", "10.0.0.7", outcome, "req-1"};
}

// Runs SQL on the file through the raw sqlite3 API, as an attacker with the file would.
std::string raw_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  char* err = nullptr;
  if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = rc == SQLITE_OK ? "" : (err ? err : sqlite3_errmsg(db));
  sqlite3_free(err);
  sqlite3_close(db);
  return msg;
}

constexpr const char* kDropTriggers = "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;";

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("hearth_audit_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name = "audit.db") const { return (dir_ / name).string(); }
  static mode_t mode_of(const std::string& p) {
    struct stat st {};
    ::stat(p.c_str(), &st);
    return st.st_mode & 0777;
  }
  std::unique_ptr<AuditLog> open_log(const std::string& p) {
    Result<std::unique_ptr<AuditLog>> log = AuditLog::open(p);
    EXPECT_TRUE(log.ok()) << log.status().message();
    return log.ok() ? std::move(log).value() : nullptr;
  }
  // A log with `n` records one second apart from kT0; returns head() after them.
  std::string make_log(const std::string& p, int n) {
    auto log = open_log(p);
    if (!log) return "";
    for (int i = 1; i <= n; ++i) {
      EXPECT_TRUE(log->append_record_at(event("u" + std::to_string(i), "model.load", "m"), kT0 + i * 1000000).ok());
    }
    return *log->head();
  }
  AuditVerifyReport verify(const std::string& p, const std::string& anchor = "") {
    Result<std::unique_ptr<AuditLog>> log = AuditLog::open_read_only(p);
    EXPECT_TRUE(log.ok()) << log.status().message();
    if (!log.ok()) return {};
    Result<AuditVerifyReport> rep = (*log)->verify(anchor);
    EXPECT_TRUE(rep.ok()) << rep.status().message();
    return rep.ok() ? *rep : AuditVerifyReport{};
  }
  fs::path dir_;
};

TEST_F(AuditLogTest, AppendsAndListsWithFilters) {
  auto log = open_log(path());
  ASSERT_TRUE(log);
  ASSERT_TRUE(log->append_record_at(event("alice", "model.load", "resnet"), kT0).ok());
  ASSERT_TRUE(log->append_record_at(event("bob", "infer", "resnet"), kT0 + 60000000).ok());
  ASSERT_TRUE(log->append_record_at(event("bob", "access.denied", "mlp", "denied"), kT0 + 120000000).ok());
  ASSERT_TRUE(log->append_record_at(event("alice", "model.unload", "resnet"), kT0 + 180000000).ok());
  ASSERT_TRUE(log->append(event("-", "auth.failed", "", "failed")).ok());  // now

  auto seqs = [&](const AuditFilter& f) {
    Result<std::vector<AuditRecord>> r = log->list(f);
    EXPECT_TRUE(r.ok()) << r.status().message();
    std::vector<int64_t> out;
    if (r.ok()) for (const auto& rec : *r) out.push_back(rec.seq);
    return out;
  };
  using V = std::vector<int64_t>;
  EXPECT_EQ(seqs({}), (V{1, 2, 3, 4, 5}));
  AuditFilter f;
  f.user = "bob";
  EXPECT_EQ(seqs(f), (V{2, 3}));
  f = {};
  f.action = "model.*";
  EXPECT_EQ(seqs(f), (V{1, 4}));
  f.action = "model.load";
  EXPECT_EQ(seqs(f), (V{1}));
  f.action = "model.";  // no '*': exact match only
  EXPECT_EQ(seqs(f), V{});
  f = {};
  f.model = "resnet";
  EXPECT_EQ(seqs(f), (V{1, 2, 4}));
  f = {};
  f.outcome = "denied";
  EXPECT_EQ(seqs(f), (V{3}));
  f = {};
  f.since_us = kT0 + 60000000;  // inclusive
  f.until_us = kT0 + 180000000; // exclusive
  EXPECT_EQ(seqs(f), (V{2, 3}));
  f = {};
  f.limit = 2;  // the newest two, newest last
  EXPECT_EQ(seqs(f), (V{4, 5}));
  f.model = "resnet";
  EXPECT_EQ(seqs(f), (V{2, 4}));

  Result<std::vector<AuditRecord>> all = log->list({});
  ASSERT_TRUE(all.ok());
  const AuditRecord& third = (*all)[2];
  EXPECT_EQ(third.time_us, kT0 + 120000000);
  EXPECT_EQ(third.event.user, "bob");
  EXPECT_EQ(third.event.action, "access.denied");
  EXPECT_EQ(third.event.resource, "models");
  EXPECT_EQ(third.event.model, "mlp");
  EXPECT_EQ(third.event.version, "1");
  EXPECT_EQ(third.event.client, "10.0.0.7");
  EXPECT_EQ(third.event.outcome, "denied");
  EXPECT_EQ(third.event.detail, "req-1");
  EXPECT_EQ(third.prev_hash, (*all)[1].hash);
  EXPECT_GT((*all)[4].time_us, kT0 + 180000000);
}

// An independent encoding of docs/security/audit.md, hashed with OpenSSL's SM3.
TEST_F(AuditLogTest, HashFollowsTheDocumentedByteEncoding) {
  auto log = open_log(path());
  ASSERT_TRUE(log);
  AuditEvent e{"alice", "model.load", "models", "resnet", "1", "10.0.0.7", "ok", std::string("a\0b", 3)};
  Result<AuditRecord> r = log->append_record_at(e, 0x0102030405060708);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::string bytes(64, '0');
  bytes += std::string("\0\0\0\0\0\0\0\x01", 8);
  bytes += std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8);
  for (const std::string& f : {e.user, e.action, e.resource, e.model, e.version, e.client, e.outcome, e.detail}) {
    bytes += std::string("\0\0\0", 3) + static_cast<char>(f.size()) + f;
  }
  Sm3 sm3;
  ASSERT_TRUE(sm3.update(bytes.data(), bytes.size()).ok());
  Result<std::string> digest = sm3.final();
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(r->prev_hash, std::string(64, '0'));
  EXPECT_EQ(r->hash, to_hex(*digest));
  Result<std::vector<AuditRecord>> stored = log->list({});
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ((*stored)[0].event.detail, e.detail);  // the NUL survives the round trip
  EXPECT_EQ((*stored)[0].hash, r->hash);
  EXPECT_EQ(*log->head(), "1:" + r->hash);
}

TEST_F(AuditLogTest, ReopenContinuesTheChain) {
  std::string first_head = make_log(path(), 3);
  EXPECT_EQ(first_head.substr(0, 2), "3:");
  {
    auto log = open_log(path());
    ASSERT_TRUE(log);
    EXPECT_EQ(*log->head(), first_head);
    Result<AuditRecord> r = log->append_record(event("carol", "model.load"));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->seq, 4);
    EXPECT_EQ(r->prev_hash, first_head.substr(2));
  }
  AuditVerifyReport rep = verify(path(), first_head);
  EXPECT_TRUE(rep.ok) << rep.problem;
  EXPECT_EQ(rep.records, 4);
  EXPECT_EQ(rep.head.substr(0, 2), "4:");
}

TEST_F(AuditLogTest, EmptyLogHeadAndVerify) {
  auto log = open_log(path());
  ASSERT_TRUE(log);
  EXPECT_EQ(*log->head(), "0:" + std::string(64, '0'));
  AuditVerifyReport rep = verify(path(), "0:" + std::string(64, '0'));
  EXPECT_TRUE(rep.ok);
  EXPECT_EQ(rep.records, 0);
  EXPECT_EQ(mode_of(path()), 0600u);
}

TEST_F(AuditLogTest, ConcurrentAppendsFromFourThreadsGiveAValidChain) {
  auto log = open_log(path());
  ASSERT_TRUE(log);
  auto other = open_log(path());  // a second connection, as a second process would have
  ASSERT_TRUE(other);
  constexpr int kPerThread = 150;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    AuditLog* target = t == 3 ? other.get() : log.get();
    threads.emplace_back([target, t, &failures] {
      for (int i = 0; i < kPerThread; ++i) {
        if (!target->append(event("t" + std::to_string(t), "infer", "m")).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  Result<std::vector<AuditRecord>> all = log->list({});
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 4u * kPerThread);
  for (size_t i = 0; i < all->size(); ++i) EXPECT_EQ((*all)[i].seq, static_cast<int64_t>(i + 1));
  AuditVerifyReport rep = verify(path());
  EXPECT_TRUE(rep.ok) << rep.problem;
  EXPECT_EQ(rep.records, 4 * kPerThread);
  EXPECT_EQ(mode_of(path() + "-wal"), 0600u);
}

TEST_F(AuditLogTest, TriggersRefusePlainEditsAndDeletes) {
  make_log(path(), 3);
  EXPECT_NE(raw_sql(path(), "UPDATE audit SET user = 'x' WHERE seq = 2").find("append-only"), std::string::npos);
  EXPECT_NE(raw_sql(path(), "DELETE FROM audit WHERE seq = 3").find("append-only"), std::string::npos);
  EXPECT_TRUE(verify(path()).ok);
}

TEST_F(AuditLogTest, DetectsAnEditedField) {
  make_log(path(), 5);
  ASSERT_EQ(raw_sql(path(), std::string(kDropTriggers) + "UPDATE audit SET outcome = 'denied' WHERE seq = 3"), "");
  AuditVerifyReport rep = verify(path());
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 3);
  EXPECT_NE(rep.problem.find("does not match"), std::string::npos) << rep.problem;
  EXPECT_EQ(rep.records, 5);
}

TEST_F(AuditLogTest, DetectsAnEditedTime) {
  make_log(path(), 5);
  ASSERT_EQ(raw_sql(path(), std::string(kDropTriggers) + "UPDATE audit SET time_us = time_us + 1 WHERE seq = 4"), "");
  AuditVerifyReport rep = verify(path());
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 4);
}

TEST_F(AuditLogTest, DetectsADeletedMiddleRecord) {
  make_log(path(), 5);
  ASSERT_EQ(raw_sql(path(), std::string(kDropTriggers) + "DELETE FROM audit WHERE seq = 3"), "");
  AuditVerifyReport rep = verify(path());
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 3);
  EXPECT_NE(rep.problem.find("missing"), std::string::npos) << rep.problem;
}

TEST_F(AuditLogTest, DetectsADeletedFirstRecord) {
  make_log(path(), 3);
  ASSERT_EQ(raw_sql(path(), std::string(kDropTriggers) + "DELETE FROM audit WHERE seq = 1"), "");
  AuditVerifyReport rep = verify(path());
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 1);
}

TEST_F(AuditLogTest, DetectsADeletedLastRecordOnlyWithAnAnchor) {
  std::string anchor = make_log(path(), 5);
  ASSERT_EQ(raw_sql(path(), std::string(kDropTriggers) + "DELETE FROM audit WHERE seq = 5"), "");
  AuditVerifyReport plain = verify(path());
  EXPECT_TRUE(plain.ok) << plain.problem;  // a shorter chain is still a chain
  EXPECT_EQ(plain.records, 4);
  AuditVerifyReport anchored = verify(path(), anchor);
  EXPECT_FALSE(anchored.ok);
  EXPECT_EQ(anchored.first_bad_seq, 5);
  EXPECT_NE(anchored.problem.find("deleted from the end"), std::string::npos) << anchored.problem;
}

TEST_F(AuditLogTest, DetectsAChangedHash) {
  make_log(path(), 4);
  ASSERT_EQ(raw_sql(path(), std::string(kDropTriggers) + "UPDATE audit SET hash = '" + std::string(64, 'a') +
                                "' WHERE seq = 2"),
            "");
  AuditVerifyReport rep = verify(path());
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 2);
}

TEST_F(AuditLogTest, DetectsReorderedSeq) {
  make_log(path(), 5);
  ASSERT_EQ(raw_sql(path(), std::string(kDropTriggers) +
                                "UPDATE audit SET seq = 100 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3;"
                                "UPDATE audit SET seq = 3 WHERE seq = 100;"),
            "");
  AuditVerifyReport rep = verify(path());
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 2);
  EXPECT_NE(rep.problem.find("does not link"), std::string::npos) << rep.problem;
}

// Someone who rewrites the whole chain after an edit passes the plain check; the anchor catches it.
TEST_F(AuditLogTest, AnchorCatchesARecomputedChain) {
  std::string anchor = make_log(path(), 4);
  ASSERT_EQ(raw_sql(path(), std::string(kDropTriggers) + "UPDATE audit SET user = 'mallory' WHERE seq = 2"), "");
  std::vector<AuditRecord> recs;
  {
    auto log = AuditLog::open_read_only(path());
    ASSERT_TRUE(log.ok());
    recs = *(*log)->list({});
  }
  std::string prev = audit_genesis_hash();
  std::string sql;
  for (AuditRecord& r : recs) {
    r.hash = audit_record_hash(prev, r.seq, r.time_us, r.event);
    sql += "UPDATE audit SET prev_hash = '" + prev + "', hash = '" + r.hash + "' WHERE seq = " +
           std::to_string(r.seq) + ";";
    prev = r.hash;
  }
  ASSERT_EQ(raw_sql(path(), sql), "");
  EXPECT_TRUE(verify(path()).ok);
  AuditVerifyReport rep = verify(path(), anchor);
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.first_bad_seq, 4);
  EXPECT_NE(rep.problem.find("anchor"), std::string::npos) << rep.problem;
}

TEST_F(AuditLogTest, RejectsMalformedAnchors) {
  make_log(path(), 1);
  auto log = AuditLog::open_read_only(path());
  ASSERT_TRUE(log.ok());
  for (const char* bad : {"5", "x:abc", "-1:" "0000000000000000000000000000000000000000000000000000000000000000",
                          "1:ABCDEF", "1:0000000000000000000000000000000000000000000000000000000000000000zz"}) {
    Result<AuditVerifyReport> rep = (*log)->verify(bad);
    EXPECT_FALSE(rep.ok()) << bad;
    EXPECT_EQ(rep.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST_F(AuditLogTest, RefusesAFileWithModeWiderThan0600) {
  make_log(path(), 1);
  ASSERT_EQ(::chmod(path().c_str(), 0644), 0);
  for (bool ro : {false, true}) {
    Result<std::unique_ptr<AuditLog>> log = ro ? AuditLog::open_read_only(path()) : AuditLog::open(path());
    ASSERT_FALSE(log.ok());
    EXPECT_EQ(log.status().code(), StatusCode::kPermissionDenied);
    EXPECT_NE(log.status().message().find("0644"), std::string::npos) << log.status().message();
    EXPECT_NE(log.status().message().find(path()), std::string::npos);
  }
}

TEST_F(AuditLogTest, NonSqliteFileGivesAClearError) {
  {
    std::ofstream out(path("notes.txt"));
    out << "this is not a database, just some text that is long enough to look like a header........\n";
  }
  ASSERT_EQ(::chmod(path("notes.txt").c_str(), 0600), 0);
  for (bool ro : {false, true}) {
    Result<std::unique_ptr<AuditLog>> log = ro ? AuditLog::open_read_only(path("notes.txt"))
                                               : AuditLog::open(path("notes.txt"));
    ASSERT_FALSE(log.ok());
    EXPECT_EQ(log.status().code(), StatusCode::kDataLoss) << log.status().message();
    EXPECT_NE(log.status().message().find("not a database"), std::string::npos) << log.status().message();
    EXPECT_NE(log.status().message().find("notes.txt"), std::string::npos);
  }
}

TEST_F(AuditLogTest, OtherSqliteDatabaseIsNotAnAuditLog) {
  std::string p = path("other.db");
  {
    std::ofstream touch(p);
  }
  ASSERT_EQ(::chmod(p.c_str(), 0600), 0);
  ASSERT_EQ(raw_sql(p, "CREATE TABLE things (x INTEGER)"), "");
  Result<std::unique_ptr<AuditLog>> log = AuditLog::open(p);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(log.status().message().find("not a Hearth audit log"), std::string::npos) << log.status().message();
}

TEST_F(AuditLogTest, ReadOnlyRefusesAppendsAndMissingFiles) {
  Result<std::unique_ptr<AuditLog>> missing = AuditLog::open_read_only(path("nope.db"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(path("nope.db")));
  make_log(path(), 2);  // the writer is closed again: no -wal/-shm left
  Result<std::unique_ptr<AuditLog>> ro = AuditLog::open_read_only(path());
  ASSERT_TRUE(ro.ok()) << ro.status().message();
  EXPECT_EQ((*ro)->append(event("x", "infer")).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ((*ro)->list({})->size(), 2u);
}

TEST_F(AuditLogTest, CreatesParentFolderOwnerOnly) {
  std::string p = path("sub/dir/audit.db");
  auto log = open_log(p);
  ASSERT_TRUE(log);
  EXPECT_EQ(mode_of(path("sub/dir")), 0700u);
  EXPECT_EQ(mode_of(p), 0600u);
}

TEST_F(AuditLogTest, CutsOverlongFieldsAndStillVerifies) {
  auto log = open_log(path());
  ASSERT_TRUE(log);
  AuditEvent e = event("u", "infer");
  e.detail = std::string(kAuditMaxFieldSize * 3, 'x');
  Result<AuditRecord> r = log->append_record(e);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->event.detail.size(), kAuditMaxFieldSize);
  EXPECT_NE(r->event.detail.find("[truncated]"), std::string::npos);
  EXPECT_TRUE(verify(path()).ok);
}

}  // namespace
}  // namespace hearth::security
