// The tamper-evident audit log on SQLite (see audit_log.h and docs/security/audit.md).
#include "security/audit_log.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "security/crypto.h"
#include "security/sm3_fast.h"
#include "security/private_file.h"

namespace hearth::security {

namespace {

// "HRTH": marks a SQLite file as a Hearth audit log (PRAGMA application_id).
constexpr int kApplicationId = 0x48525448;
constexpr int kBusyTimeoutMs = 5000;
constexpr const char* kTruncatedMark = "...[truncated]";

constexpr const char* kSchemaSql = R"sql(
CREATE TABLE audit (
  seq INTEGER PRIMARY KEY,
  time_us INTEGER NOT NULL,
  user TEXT NOT NULL,
  action TEXT NOT NULL,
  resource TEXT NOT NULL,
  model TEXT NOT NULL,
  version TEXT NOT NULL,
  client TEXT NOT NULL,
  outcome TEXT NOT NULL,
  detail TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
) STRICT;
CREATE INDEX audit_time ON audit(time_us);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
PRAGMA application_id = 1213355080;
PRAGMA user_version = 1;
)sql";
static_assert(kApplicationId == 1213355080, "kSchemaSql spells the application id in decimal");
static_assert(kAuditSchemaVersion == 1, "kSchemaSql spells the schema version");

constexpr const char* kColumns =
    "seq, time_us, user, action, resource, model, version, client, outcome, detail, prev_hash, hash";

Status permission_denied(const std::string& msg) { return Status(StatusCode::kPermissionDenied, msg); }

// Creates the log's folder (mode 0700 when Hearth creates it) and an empty 0600 file when absent.
Status create_if_absent(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
    std::filesystem::create_directories(parent, ec);
    if (ec) return internal_error("cannot create folder ", parent.string(), " for the audit log: ", ec.message());
    std::filesystem::permissions(parent, std::filesystem::perms::owner_all, ec);
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) {
    ::close(fd);
    return ok_status();
  }
  if (errno == EEXIST) return ok_status();
  return permission_denied(str_cat("cannot create audit log ", path, ": ", std::strerror(errno)));
}

StatusCode code_for(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return StatusCode::kUnavailable;
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return StatusCode::kDataLoss;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return StatusCode::kPermissionDenied;
    case SQLITE_CANTOPEN:
      return StatusCode::kNotFound;
    case SQLITE_FULL:
      return StatusCode::kResourceExhausted;
    case SQLITE_CONSTRAINT:
      return StatusCode::kFailedPrecondition;
    default:
      return StatusCode::kInternal;
  }
}

void put_u64(std::string& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

void put_field(std::string& out, std::string_view s) {
  uint32_t n = static_cast<uint32_t>(s.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
  out.append(s);
}

std::string cut(const std::string& s) {
  if (s.size() <= kAuditMaxFieldSize) return s;
  size_t keep = kAuditMaxFieldSize - std::strlen(kTruncatedMark);
  while (keep > 0 && (static_cast<unsigned char>(s[keep]) & 0xc0) == 0x80) --keep;  // not inside a UTF-8 character
  return s.substr(0, keep) + kTruncatedMark;
}

AuditEvent truncated(const AuditEvent& e) {
  return AuditEvent{cut(e.user),    cut(e.action), cut(e.resource), cut(e.model),
                    cut(e.version), cut(e.client), cut(e.outcome),  cut(e.detail)};
}

bool is_hash_hex(std::string_view h) {
  if (h.size() != 2 * kSm3Size) return false;
  for (char c : h) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string column_text(sqlite3_stmt* st, int i) {
  const unsigned char* p = sqlite3_column_text(st, i);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(st, i)));
}

AuditRecord read_record(sqlite3_stmt* st) {
  AuditRecord r;
  r.seq = sqlite3_column_int64(st, 0);
  r.time_us = sqlite3_column_int64(st, 1);
  AuditEvent& e = r.event;
  std::string* fields[] = {&e.user, &e.action, &e.resource, &e.model, &e.version, &e.client, &e.outcome, &e.detail};
  for (int i = 0; i < 8; ++i) *fields[i] = column_text(st, 2 + i);
  r.prev_hash = column_text(st, 10);
  r.hash = column_text(st, 11);
  return r;
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Finalizes a statement when it goes out of scope.
struct StmtGuard {
  sqlite3_stmt* st = nullptr;
  ~StmtGuard() { sqlite3_finalize(st); }
};

// Resets a cached statement when it goes out of scope, so it never holds a read lock.
struct ResetGuard {
  sqlite3_stmt* st;
  ~ResetGuard() {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
  }
};

std::string short_hash(const std::string& h) { return h.size() > 16 ? h.substr(0, 16) + "..." : h; }

}  // namespace

const std::string& audit_genesis_hash() {
  static const std::string kGenesis(2 * kSm3Size, '0');
  return kGenesis;
}

std::string audit_record_hash(std::string_view prev_hash, int64_t seq, int64_t time_us, const AuditEvent& e) {
  std::string msg;
  msg.reserve(prev_hash.size() + 16 + 8 * 4 + e.user.size() + e.action.size() + e.resource.size() +
              e.model.size() + e.version.size() + e.client.size() + e.outcome.size() + e.detail.size());
  msg.append(prev_hash);
  put_u64(msg, static_cast<uint64_t>(seq));
  put_u64(msg, static_cast<uint64_t>(time_us));
  for (const std::string* f : {&e.user, &e.action, &e.resource, &e.model, &e.version, &e.client, &e.outcome,
                               &e.detail}) {
    put_field(msg, *f);
  }
  uint32_t state[8];
  sm3::init(state);
  uint8_t digest[kSm3Size];
  sm3::finish(state, 0, reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), digest);
  return to_hex(std::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

Status parse_audit_anchor(std::string_view anchor, int64_t& seq, std::string& hash) {
  size_t colon = anchor.find(':');
  std::string_view num = anchor.substr(0, colon);
  auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), seq);
  if (colon == std::string_view::npos || num.empty() || ec != std::errc() || ptr != num.data() + num.size() ||
      seq < 0 || !is_hash_hex(anchor.substr(colon + 1))) {
    return invalid_argument("anchor '", anchor, "' is not SEQ:HASH (a record number, ':', 64 lowercase hex digits, ",
                            "as printed by `hearth audit head`)");
  }
  hash = std::string(anchor.substr(colon + 1));
  return ok_status();
}

std::string AuditLog::default_path() {
  const char* p = std::getenv(kAuditLogEnv);
  if (p && *p) return p;
  const char* home = std::getenv("HOME");
  return home && *home ? std::string(home) + "/.config/hearth/audit.db" : "";
}

Result<std::unique_ptr<AuditLog>> AuditLog::open(const std::string& path) { return open_impl(path, false); }

Result<std::unique_ptr<AuditLog>> AuditLog::open_read_only(const std::string& path) { return open_impl(path, true); }

Result<std::unique_ptr<AuditLog>> AuditLog::open_impl(const std::string& path, bool read_only) {
  if (path.empty()) return invalid_argument("no audit log file given");
  if (!read_only) HEARTH_RETURN_IF_ERROR(create_if_absent(path));
  HEARTH_RETURN_IF_ERROR(check_private_file(path, "audit log"));
  std::unique_ptr<AuditLog> log(new AuditLog(path, read_only));
  int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_FULLMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &log->db_, flags, nullptr);
  if (rc != SQLITE_OK) return log->sqlite_error("open", rc);
  sqlite3_busy_timeout(log->db_, kBusyTimeoutMs);
  if (!read_only) {
    // journal_mode=WAL also makes the first read of the file, so a non-SQLite file fails here.
    for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"}) {
      rc = sqlite3_exec(log->db_, pragma, nullptr, nullptr, nullptr);
      if (rc != SQLITE_OK) return log->sqlite_error(str_cat("set ", pragma + 7), rc);
    }
    HEARTH_RETURN_IF_ERROR(log->init_schema());
  }
  HEARTH_RETURN_IF_ERROR(log->check_schema());
  HEARTH_RETURN_IF_ERROR(log->prepare_statements());
  return log;
}

AuditLog::~AuditLog() {
  sqlite3_finalize(last_stmt_);
  sqlite3_finalize(insert_stmt_);
  sqlite3_close_v2(db_);
}

Status AuditLog::sqlite_error(const std::string& what, int rc) const {
  const char* msg = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  std::string text = str_cat("audit log ", path_, ": ", what, ": ", msg ? msg : sqlite3_errstr(rc));
  if ((rc & 0xff) == SQLITE_NOTADB) text += " (it is not a Hearth audit log, or it is damaged)";
  return Status(code_for(rc), text);
}

// Creates the schema in an empty database; two processes racing to do so are serialized by BEGIN IMMEDIATE.
Status AuditLog::init_schema() {
  int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return sqlite_error("begin", rc);
  sqlite3_stmt* st = nullptr;
  rc = sqlite3_prepare_v2(db_, "SELECT count(*) FROM sqlite_schema", -1, &st, nullptr);
  StmtGuard guard{st};
  int64_t objects = -1;
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) objects = sqlite3_column_int64(st, 0);
  Status s;
  if (objects < 0) {
    s = sqlite_error("read schema", rc);
  } else if (objects == 0) {
    rc = sqlite3_exec(db_, kSchemaSql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) s = sqlite_error("create schema", rc);
  }
  rc = sqlite3_exec(db_, s.ok() ? "COMMIT" : "ROLLBACK", nullptr, nullptr, nullptr);
  if (s.ok() && rc != SQLITE_OK) s = sqlite_error("commit schema", rc);
  return s;
}

Status AuditLog::check_schema() {
  int64_t values[2] = {0, 0};
  const char* pragmas[2] = {"PRAGMA application_id", "PRAGMA user_version"};
  for (int i = 0; i < 2; ++i) {
    sqlite3_stmt* st = nullptr;
    int rc = sqlite3_prepare_v2(db_, pragmas[i], -1, &st, nullptr);
    StmtGuard guard{st};
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) return sqlite_error("read header", rc);
    values[i] = sqlite3_column_int64(st, 0);
  }
  if (values[0] == 0 && values[1] == 0) {
    return failed_precondition("audit log ", path_, " is not a Hearth audit log (an empty or other SQLite database: no audit schema)");
  }
  if (values[0] != kApplicationId) {
    return failed_precondition("audit log ", path_, " is a SQLite database but not a Hearth audit log");
  }
  if (values[1] != kAuditSchemaVersion) {
    return failed_precondition("audit log ", path_, " has schema version ", values[1], "; this hearth reads version ",
                               kAuditSchemaVersion);
  }
  return ok_status();
}

Status AuditLog::prepare_statements() {
  int rc = sqlite3_prepare_v3(db_, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", -1,
                              SQLITE_PREPARE_PERSISTENT, &last_stmt_, nullptr);
  if (rc != SQLITE_OK) return sqlite_error("prepare", rc);
  if (read_only_) return ok_status();
  rc = sqlite3_prepare_v3(db_, str_cat("INSERT INTO audit (", kColumns, ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?)").c_str(),
                          -1, SQLITE_PREPARE_PERSISTENT, &insert_stmt_, nullptr);
  if (rc != SQLITE_OK) return sqlite_error("prepare", rc);
  return ok_status();
}

Status AuditLog::append(const AuditEvent& event) { return append_record(event).status(); }

Result<AuditRecord> AuditLog::append_record(const AuditEvent& event) { return append_record_at(event, now_us()); }

Result<AuditRecord> AuditLog::append_record_at(const AuditEvent& event, int64_t time_us) {
  if (read_only_) return failed_precondition("audit log ", path_, " is open read-only");
  std::lock_guard<std::mutex> lock(mu_);
  int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return sqlite_error("append: begin", rc);
  Result<AuditRecord> r = append_locked(event, time_us);
  rc = sqlite3_exec(db_, r.ok() ? "COMMIT" : "ROLLBACK", nullptr, nullptr, nullptr);
  if (r.ok() && rc != SQLITE_OK) {
    Status s = sqlite_error("append: commit", rc);
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return s;
  }
  return r;
}

// Inside the append transaction: reads the chain's head, then inserts the next record.
Result<AuditRecord> AuditLog::append_locked(const AuditEvent& event, int64_t time_us) {
  AuditRecord r;
  r.prev_hash = audit_genesis_hash();
  {
    ResetGuard reset{last_stmt_};
    int rc = sqlite3_step(last_stmt_);
    if (rc == SQLITE_ROW) {
      r.seq = sqlite3_column_int64(last_stmt_, 0);
      r.prev_hash = column_text(last_stmt_, 1);
    } else if (rc != SQLITE_DONE) {
      return sqlite_error("append: read head", rc);
    }
  }
  r.seq += 1;
  r.time_us = time_us;
  r.event = truncated(event);
  r.hash = audit_record_hash(r.prev_hash, r.seq, r.time_us, r.event);
  ResetGuard reset{insert_stmt_};
  sqlite3_bind_int64(insert_stmt_, 1, r.seq);
  sqlite3_bind_int64(insert_stmt_, 2, r.time_us);
  const AuditEvent& e = r.event;
  const std::string* texts[] = {&e.user,   &e.action,  &e.resource,  &e.model, &e.version,
                                &e.client, &e.outcome, &e.detail, &r.prev_hash, &r.hash};
  for (int i = 0; i < 10; ++i) {
    sqlite3_bind_text(insert_stmt_, 3 + i, texts[i]->data(), static_cast<int>(texts[i]->size()), SQLITE_STATIC);
  }
  int rc = sqlite3_step(insert_stmt_);
  if (rc != SQLITE_DONE) return sqlite_error("append", rc);
  return r;
}

Result<std::vector<AuditRecord>> AuditLog::list(const AuditFilter& f) const {
  std::string where = " WHERE 1";
  if (f.since_us != 0) where += " AND time_us >= :since";
  if (f.until_us != 0) where += " AND time_us < :until";
  if (!f.user.empty()) where += " AND user = :user";
  if (!f.model.empty()) where += " AND model = :model";
  if (!f.outcome.empty()) where += " AND outcome = :outcome";
  std::string action = f.action;
  bool prefix = !action.empty() && action.back() == '*';
  if (prefix) action.pop_back();
  if (prefix && !action.empty()) where += " AND substr(action, 1, length(:action)) = :action";
  if (!prefix && !action.empty()) where += " AND action = :action";
  std::string sql = str_cat("SELECT ", kColumns, " FROM audit", where, " ORDER BY seq DESC");
  if (f.limit != 0) sql += " LIMIT :limit";
  sql = str_cat("SELECT * FROM (", sql, ") ORDER BY seq ASC");

  std::lock_guard<std::mutex> lock(mu_);
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr);
  StmtGuard guard{st};
  if (rc != SQLITE_OK) return sqlite_error("list", rc);
  auto bind_text = [st](const char* name, const std::string& v) {
    int i = sqlite3_bind_parameter_index(st, name);
    if (i > 0) sqlite3_bind_text(st, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  };
  auto bind_int = [st](const char* name, int64_t v) {
    int i = sqlite3_bind_parameter_index(st, name);
    if (i > 0) sqlite3_bind_int64(st, i, v);
  };
  bind_int(":since", f.since_us);
  bind_int(":until", f.until_us);
  bind_int(":limit", static_cast<int64_t>(f.limit));
  bind_text(":user", f.user);
  bind_text(":model", f.model);
  bind_text(":outcome", f.outcome);
  bind_text(":action", action);
  std::vector<AuditRecord> out;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) out.push_back(read_record(st));
  if (rc != SQLITE_DONE) return sqlite_error("list", rc);
  return out;
}

Result<std::string> AuditLog::head() const {
  std::lock_guard<std::mutex> lock(mu_);
  ResetGuard reset{last_stmt_};
  int rc = sqlite3_step(last_stmt_);
  if (rc == SQLITE_DONE) return str_cat("0:", audit_genesis_hash());
  if (rc != SQLITE_ROW) return sqlite_error("head", rc);
  return str_cat(sqlite3_column_int64(last_stmt_, 0), ":", column_text(last_stmt_, 1));
}

namespace {

// Checks one record against the chain so far; sets the report's problem on the first fault.
void check_record(const AuditRecord& r, int64_t expected_seq, const std::string& expected_prev,
                  AuditVerifyReport& rep) {
  auto bad = [&rep](int64_t seq, std::string problem) {
    rep.ok = false;
    rep.first_bad_seq = seq;
    rep.problem = std::move(problem);
  };
  if (r.seq > expected_seq) {
    bad(expected_seq, expected_seq + 1 == r.seq
                          ? str_cat("record is missing (deleted): the log goes from ", expected_seq - 1, " to ", r.seq)
                          : str_cat("records ", expected_seq, "..", r.seq - 1, " are missing (deleted): the log goes from ",
                                    expected_seq - 1, " to ", r.seq));
  } else if (r.seq < expected_seq) {
    bad(r.seq, str_cat("record has seq ", r.seq, " where ", expected_seq, " was expected (seq edited)"));
  } else if (r.prev_hash != expected_prev) {
    bad(r.seq, str_cat("prev_hash ", short_hash(r.prev_hash), " does not link to the hash of ",
                       expected_seq == 1 ? std::string("the chain start (64 zeros)")
                                         : str_cat("record ", expected_seq - 1, " (", short_hash(expected_prev), ")"),
                       ": records reordered, removed or edited"));
  } else if (!is_hash_hex(r.hash)) {
    bad(r.seq, "stored hash is not 64 lowercase hex digits (hash edited)");
  } else if (audit_record_hash(r.prev_hash, r.seq, r.time_us, r.event) != r.hash) {
    bad(r.seq, str_cat("stored hash ", short_hash(r.hash),
                       " does not match the record's contents (fields or hash edited)"));
  }
}

// After the walk: does the log still hold the anchored record, unchanged?
void check_anchor(int64_t anchor_seq, const std::string& anchor_hash, bool anchor_seen, int64_t last_seq,
                  AuditVerifyReport& rep) {
  if (!rep.ok) return;
  if (anchor_seq > last_seq) {
    rep.ok = false;
    rep.first_bad_seq = last_seq + 1;
    rep.problem = str_cat("the log ends at record ", last_seq, " but the anchor names record ", anchor_seq,
                          ": records deleted from the end");
  } else if ((anchor_seq == 0 && anchor_hash != audit_genesis_hash()) || (anchor_seq > 0 && !anchor_seen)) {
    rep.ok = false;
    rep.first_bad_seq = anchor_seq;
    rep.problem = str_cat("hash differs from the anchor ", anchor_seq, ":", short_hash(anchor_hash),
                          " (the chain was rewritten at or before this record)");
  }
}

}  // namespace

Result<AuditVerifyReport> AuditLog::verify(std::string_view anchor) const {
  int64_t anchor_seq = -1;
  std::string anchor_hash;
  if (!anchor.empty()) HEARTH_RETURN_IF_ERROR(parse_audit_anchor(anchor, anchor_seq, anchor_hash));
  std::lock_guard<std::mutex> lock(mu_);
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db_, str_cat("SELECT ", kColumns, " FROM audit ORDER BY seq").c_str(), -1, &st,
                              nullptr);
  StmtGuard guard{st};
  if (rc != SQLITE_OK) return sqlite_error("verify", rc);
  AuditVerifyReport rep;
  std::string prev = audit_genesis_hash();
  int64_t last_seq = 0;
  bool anchor_seen = false;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    ++rep.records;
    if (!rep.ok) continue;  // count the rest
    AuditRecord r = read_record(st);
    check_record(r, last_seq + 1, prev, rep);
    if (!rep.ok) continue;
    if (r.seq == anchor_seq) anchor_seen = r.hash == anchor_hash;
    if (r.seq == anchor_seq && !anchor_seen) {
      rep.ok = false;
      rep.first_bad_seq = r.seq;
      rep.problem = str_cat("hash ", short_hash(r.hash), " differs from the anchor ", anchor_seq, ":",
                            short_hash(anchor_hash), " (the chain was rewritten at or before this record)");
      continue;
    }
    last_seq = r.seq;
    prev = std::move(r.hash);
  }
  if (rc != SQLITE_DONE) return sqlite_error("verify", rc);
  if (anchor_seq >= 0) check_anchor(anchor_seq, anchor_hash, anchor_seen, last_seq, rep);
  rep.head_hash = prev;
  rep.head = str_cat(last_seq, ":", prev);
  return rep;
}

}  // namespace hearth::security
