// The tamper-evident audit log: who did what to which model, from where, and
// with what outcome, kept in a SQLite database (WAL mode) where every record
// carries SM3(previous hash || canonical encoding of the record). Editing,
// deleting or reordering records breaks the chain and verify() names the first
// bad record; an anchor ("SEQ:HASH" kept elsewhere) also catches records cut
// from the end or a rewritten chain. The byte-exact construction is in
// docs/security/audit.md. Used by the server (appends) and `hearth audit`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace hearth::security {

inline constexpr const char* kAuditLogEnv = "HEARTH_AUDIT_LOG";
inline constexpr int kAuditSchemaVersion = 1;
// Longest stored field; longer values are cut and end in "...[truncated]".
inline constexpr size_t kAuditMaxFieldSize = 4096;

struct AuditEvent {
  std::string user;      // who ("anonymous" when auth is off, "-" when unknown)
  std::string action;    // what: "model.load", "model.unload", "auth.failed", "access.denied", "token.issue", "infer", ...
  std::string resource;  // "models", "inference", "repository", ...
  std::string model;     // "" when not about a model
  std::string version;   // "" when none
  std::string client;    // from where: IP address or "cli"
  std::string outcome;   // "ok" | "denied" | "failed" | "error"
  std::string detail;    // free text (reason, request id)
};

// Hashes are lowercase hex SM3 (64 characters).
struct AuditRecord {
  int64_t seq = 0;
  int64_t time_us = 0;  // microseconds since the Unix epoch, UTC
  AuditEvent event;
  std::string prev_hash;
  std::string hash;
};

struct AuditFilter {
  int64_t since_us = 0;  // time_us >= since_us; 0 = open
  int64_t until_us = 0;  // time_us < until_us; 0 = open
  std::string user, action, model, outcome;  // "" = any; action may end in '*' (prefix match)
  size_t limit = 0;  // 0 = all; otherwise the newest `limit` matches. Always oldest first (newest last).
};

struct AuditVerifyReport {
  bool ok = true;
  int64_t records = 0;        // rows in the log
  int64_t first_bad_seq = -1; // the first record that is wrong or missing; -1 when ok
  std::string problem;        // what is wrong with it
  std::string head_hash;      // hash of the newest record that verified (64 zeros when none)
  std::string head;           // "SEQ:HASH" of that record; when ok, what head() gives
};

// The hash of the first record's predecessor: 64 zeros.
const std::string& audit_genesis_hash();
// SM3(prev_hash || encoding of seq, time_us and the event), lowercase hex.
// prev_hash is used as its 64 ASCII characters; see docs/security/audit.md.
std::string audit_record_hash(std::string_view prev_hash, int64_t seq, int64_t time_us, const AuditEvent& event);
// Splits "SEQ:HASH" (seq >= 0, hash 64 lowercase hex) into its parts.
Status parse_audit_anchor(std::string_view anchor, int64_t& seq, std::string& hash);

class AuditLog {
 public:
  // Opens or creates (file mode 0600, parent folder 0700 when created) a SQLite
  // database in WAL mode with synchronous=NORMAL; creates the schema when the
  // file is new and checks its version otherwise. Refuses a file that is not
  // regular, has a mode wider than 0600 or belongs to another user
  // (PERMISSION_DENIED), or is not a Hearth audit log (DATA_LOSS /
  // FAILED_PRECONDITION). Appends continue the chain already in the file.
  static Result<std::unique_ptr<AuditLog>> open(const std::string& path);
  // Same checks; the file must exist; append() fails.
  static Result<std::unique_ptr<AuditLog>> open_read_only(const std::string& path);
  // $HEARTH_AUDIT_LOG, else ~/.config/hearth/audit.db ("" without HOME); the server's default too.
  static std::string default_path();

  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  const std::string& path() const { return path_; }
  bool read_only() const { return read_only_; }

  // Appends one record stamped with the current time: seq = last + 1,
  // prev_hash = last hash (audit_genesis_hash() for the first). Thread-safe;
  // other processes may append to the same file (a busy database is retried
  // for up to 5 s). One short IMMEDIATE transaction per record.
  Status append(const AuditEvent& event);
  // As append(), returning the stored record.
  Result<AuditRecord> append_record(const AuditEvent& event);
  Result<AuditRecord> append_record_at(const AuditEvent& event, int64_t time_us);  // explicit time (tests, imports)

  // Records matching the filter, oldest first. Thread-safe.
  Result<std::vector<AuditRecord>> list(const AuditFilter& filter) const;

  // Walks the chain from seq 1: recomputes every hash, checks that seq has no
  // gaps and that prev_hash links. Names the first bad record (edited fields, a
  // deleted record in the middle, a reordered seq) in `problem`. With `anchor`
  // ("SEQ:HASH" from an earlier head()), also detects records deleted from the
  // end and a chain rewritten from before the anchor. An unreadable log or a
  // malformed anchor is an error, not a report. Reads one consistent snapshot
  // but holds this object's connection meanwhile: a server should verify through
  // its own open_read_only() instance so appends are not held up.
  Result<AuditVerifyReport> verify(std::string_view anchor = {}) const;
  // "SEQ:HASH" of the newest record ("0:" + 64 zeros when empty).
  Result<std::string> head() const;

 private:
  AuditLog(std::string path, bool read_only) : path_(std::move(path)), read_only_(read_only) {}
  static Result<std::unique_ptr<AuditLog>> open_impl(const std::string& path, bool read_only);
  Status init_schema();
  Status check_schema();
  Status prepare_statements();
  Status sqlite_error(const std::string& what, int rc) const;
  Result<AuditRecord> append_locked(const AuditEvent& event, int64_t time_us);

  std::string path_;
  bool read_only_ = false;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* last_stmt_ = nullptr;    // newest seq and hash
  sqlite3_stmt* insert_stmt_ = nullptr;
  mutable std::mutex mu_;               // one connection, used by one thread at a time
};

}  // namespace hearth::security
