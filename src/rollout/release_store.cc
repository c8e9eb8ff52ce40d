// SQLite persistence of releases (see release_store.h).
#include "rollout/release_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <cstdlib>
#include <cstring>

#include <nlohmann/json.hpp>

#include "security/private_file.h"

namespace hearth::rollout {

namespace {

constexpr int kBusyTimeoutMs = 5000;
// "HRLS": marks a SQLite file as a Hearth release store (PRAGMA application_id).
constexpr int kApplicationId = 0x48524c53;

constexpr const char* kSchemaSql = R"sql(
CREATE TABLE IF NOT EXISTS releases (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  model TEXT NOT NULL,
  champion INTEGER NOT NULL,
  candidates TEXT NOT NULL,
  dropped TEXT NOT NULL,
  spec TEXT NOT NULL,
  phase TEXT NOT NULL,
  step INTEGER NOT NULL,
  paused INTEGER NOT NULL,
  failed_checks TEXT NOT NULL,
  promoted_version INTEGER NOT NULL,
  started_us INTEGER NOT NULL,
  updated_us INTEGER NOT NULL,
  step_started_us INTEGER NOT NULL,
  ended_us INTEGER NOT NULL,
  actor TEXT NOT NULL,
  reason TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS releases_model ON releases(model, id);
CREATE TABLE IF NOT EXISTS decisions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  release_id INTEGER NOT NULL,
  time_us INTEGER NOT NULL,
  kind TEXT NOT NULL,
  verdict TEXT NOT NULL,
  actor TEXT NOT NULL,
  step INTEGER NOT NULL,
  detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS decisions_release ON decisions(release_id, id);
CREATE TABLE IF NOT EXISTS routes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  model TEXT NOT NULL,
  time_us INTEGER NOT NULL,
  release_id INTEGER NOT NULL,
  route TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS routes_model ON routes(model, time_us);
CREATE TABLE IF NOT EXISTS models (
  model TEXT PRIMARY KEY,
  production INTEGER NOT NULL,
  previous INTEGER NOT NULL,
  excluded TEXT NOT NULL);
)sql";

constexpr const char* kReleaseColumns =
    "id, model, champion, candidates, dropped, spec, phase, step, paused, failed_checks, promoted_version, "
    "started_us, updated_us, step_started_us, ended_us, actor, reason";

// One prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) { rc_ = sqlite3_prepare_v2(db, sql, -1, &st_, nullptr); }
  ~Stmt() { sqlite3_finalize(st_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  Stmt& bind(int i, int64_t v) {
    if (ok()) sqlite3_bind_int64(st_, i, v);
    return *this;
  }
  Stmt& bind(int i, const std::string& v) {
    if (ok()) sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  int step() { return ok() ? sqlite3_step(st_) : rc_; }
  int64_t integer(int col) const { return sqlite3_column_int64(st_, col); }
  std::string text(int col) const {
    const unsigned char* p = sqlite3_column_text(st_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(st_, col))) : "";
  }
  Status error(const std::string& what) const {
    return Status(StatusCode::kInternal, str_cat("release store: ", what, ": ", sqlite3_errmsg(db_)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
  int rc_ = SQLITE_OK;
};

std::string ints_json(const std::vector<int64_t>& v) { return nlohmann::json(v).dump(); }
std::vector<int64_t> ints_from_json(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  std::vector<int64_t> out;
  if (j.is_array())
    for (const auto& x : j)
      if (x.is_number_integer()) out.push_back(x.get<int64_t>());
  return out;
}

ReleaseRecord read_release_row(const Stmt& s) {
  ReleaseRecord r;
  r.id = s.integer(0);
  r.model = s.text(1);
  r.champion = s.integer(2);
  r.candidates = ints_from_json(s.text(3));
  r.dropped = ints_from_json(s.text(4));
  r.spec_json = s.text(5);
  auto phase = parse_phase(s.text(6));
  r.phase = phase.ok() ? *phase : Phase::kAborted;
  r.step = static_cast<int>(s.integer(7));
  r.paused = s.integer(8) != 0;
  auto failures = nlohmann::json::parse(s.text(9), nullptr, false);
  if (failures.is_object())
    for (auto it = failures.begin(); it != failures.end(); ++it)
      if (it.value().is_number_integer()) r.failed_checks[std::atoll(it.key().c_str())] = it.value().get<int>();
  r.promoted_version = s.integer(10);
  r.started_us = s.integer(11);
  r.updated_us = s.integer(12);
  r.step_started_us = s.integer(13);
  r.ended_us = s.integer(14);
  r.actor = s.text(15);
  r.reason = s.text(16);
  return r;
}

}  // namespace

const char* phase_name(Phase p) {
  switch (p) {
    case Phase::kGate: return "gate";
    case Phase::kShadow: return "shadow";
    case Phase::kCanary: return "canary";
    case Phase::kPromoted: return "promoted";
    case Phase::kRolledBack: return "rolled_back";
    case Phase::kAborted: return "aborted";
    case Phase::kGateFailed: return "gate_failed";
  }
  return "?";
}

Result<Phase> parse_phase(const std::string& name) {
  for (Phase p : {Phase::kGate, Phase::kShadow, Phase::kCanary, Phase::kPromoted, Phase::kRolledBack, Phase::kAborted,
                  Phase::kGateFailed})
    if (name == phase_name(p)) return p;
  return invalid_argument("unknown release phase '", name, "'");
}

bool is_terminal(Phase p) {
  return p == Phase::kPromoted || p == Phase::kRolledBack || p == Phase::kAborted || p == Phase::kGateFailed;
}

std::string ReleaseStore::default_path(const std::string& repository) {
  const char* p = std::getenv("HEARTH_RELEASE_STORE");
  if (p && *p) return p;
  const char* home = std::getenv("HOME");
  if (!home || !*home) return "";
  std::error_code ec;
  const std::filesystem::path repo = std::filesystem::weakly_canonical(repository, ec);
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (char c : repo.string()) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  std::string name = repo.filename().string();
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
  return str_cat(home, "/.config/hearth/releases/", name.substr(0, 48), "-", std::string(hex, 8), ".db");
}

Result<std::unique_ptr<ReleaseStore>> ReleaseStore::open(const std::string& path) {
  if (path.empty()) return invalid_argument("no release store file given (set HOME or pass --release-store)");
  HEARTH_RETURN_IF_ERROR(security::ensure_private_parent_dir(path));
  // Created owner-only before SQLite opens it (SQLite would use the umask).
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return invalid_argument("release store ", path, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  const bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  ::close(fd);
  if (!regular) return invalid_argument("release store ", path, " is not a regular file");
  if (st.st_uid != geteuid() || (st.st_mode & 077) != 0)
    return Status(StatusCode::kPermissionDenied,
                  str_cat("release store ", path, " must belong to this user with mode 0600 (chmod 600)"));
  std::unique_ptr<ReleaseStore> s(new ReleaseStore());
  s->path_ = path;
  if (sqlite3_open_v2(path.c_str(), &s->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK)
    return invalid_argument("release store ", path, ": ", s->db_ ? sqlite3_errmsg(s->db_) : "cannot open");
  sqlite3_busy_timeout(s->db_, kBusyTimeoutMs);
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"})
    if (Status st2 = s->exec(pragma); !st2.ok())
      return invalid_argument("release store ", path, " is not a SQLite database (", st2.message(), ")");
  Stmt app(s->db_, "PRAGMA application_id");
  const int64_t id = app.step() == SQLITE_ROW ? app.integer(0) : -1;
  if (id != 0 && id != kApplicationId)
    return Status(StatusCode::kFailedPrecondition, str_cat("release store ", path, " is another program's database"));
  HEARTH_RETURN_IF_ERROR(s->exec(kSchemaSql));
  HEARTH_RETURN_IF_ERROR(s->exec(str_cat("PRAGMA application_id = ", kApplicationId).c_str()));
  return s;
}

ReleaseStore::~ReleaseStore() { sqlite3_close_v2(db_); }

Status ReleaseStore::exec(const char* sql) const {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) == SQLITE_OK) return ok_status();
  Status s(StatusCode::kInternal, str_cat("release store: ", err ? err : "error"));
  sqlite3_free(err);
  return s;
}

Status ReleaseStore::write_release(const ReleaseRecord& r) const {
  Stmt s(db_,
         "INSERT OR REPLACE INTO releases (id, model, champion, candidates, dropped, spec, phase, step, paused, "
         "failed_checks, promoted_version, started_us, updated_us, step_started_us, ended_us, actor, reason) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)");
  s.bind(2, r.model).bind(3, r.champion).bind(4, ints_json(r.candidates)).bind(5, ints_json(r.dropped));
  s.bind(6, r.spec_json).bind(7, std::string(phase_name(r.phase))).bind(8, int64_t{r.step});
  nlohmann::json failures = nlohmann::json::object();
  for (const auto& [v, n] : r.failed_checks) failures[std::to_string(v)] = n;
  s.bind(9, int64_t{r.paused}).bind(10, failures.dump()).bind(11, r.promoted_version);
  s.bind(12, r.started_us).bind(13, r.updated_us).bind(14, r.step_started_us).bind(15, r.ended_us);
  s.bind(16, r.actor).bind(17, r.reason);
  if (r.id > 0) s.bind(1, r.id);
  return s.step() == SQLITE_DONE ? ok_status() : s.error("write release");
}

Status ReleaseStore::write_decision(const DecisionRecord& d) const {
  Stmt s(db_, "INSERT INTO decisions (release_id, time_us, kind, verdict, actor, step, detail) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
  s.bind(1, d.release_id).bind(2, d.time_us).bind(3, d.kind).bind(4, d.verdict).bind(5, d.actor);
  s.bind(6, int64_t{d.step}).bind(7, d.detail.empty() ? std::string("{}") : d.detail);
  return s.step() == SQLITE_DONE ? ok_status() : s.error("write decision");
}

Status ReleaseStore::write_route(const std::string& model, const RouteRecord& r) const {
  Stmt s(db_, "INSERT INTO routes (model, time_us, release_id, route) VALUES (?1, ?2, ?3, ?4)");
  s.bind(1, model).bind(2, r.time_us).bind(3, r.release_id).bind(4, r.table);
  return s.step() == SQLITE_DONE ? ok_status() : s.error("write route");
}

Status ReleaseStore::write_model(const std::string& name, const ModelRecord& m) const {
  Stmt s(db_, "INSERT OR REPLACE INTO models (model, production, previous, excluded) VALUES (?1, ?2, ?3, ?4)");
  s.bind(1, name).bind(2, m.production).bind(3, m.previous);
  s.bind(4, ints_json(std::vector<int64_t>(m.excluded.begin(), m.excluded.end())));
  return s.step() == SQLITE_DONE ? ok_status() : s.error("write model");
}

Status ReleaseStore::finish(Status s) const {
  if (s.ok()) s = exec("COMMIT");
  if (!s.ok()) (void)exec("ROLLBACK");  // a failed COMMIT leaves the transaction open otherwise
  return s;
}

Status ReleaseStore::create(ReleaseRecord& r, const DecisionRecord& first, const RouteRecord* route,
                            const ModelRecord* model) {
  std::lock_guard<std::mutex> lock(mu_);
  HEARTH_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
  ReleaseRecord row = r;
  row.id = 0;
  Status s = write_release(row);
  if (s.ok()) {
    DecisionRecord d = first;
    d.release_id = sqlite3_last_insert_rowid(db_);
    row.id = d.release_id;
    s = write_decision(d);
  }
  if (s.ok() && route) {
    RouteRecord rr = *route;
    rr.release_id = row.id;
    s = write_route(r.model, rr);
  }
  if (s.ok() && model) s = write_model(r.model, *model);
  HEARTH_RETURN_IF_ERROR(finish(s));
  r.id = row.id;
  return ok_status();
}

Status ReleaseStore::transition(const ReleaseRecord& r, const DecisionRecord* decision, const RouteRecord* route,
                                const ModelRecord* model) {
  std::lock_guard<std::mutex> lock(mu_);
  HEARTH_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
  Status s = write_release(r);
  if (s.ok() && decision) s = write_decision(*decision);
  if (s.ok() && route) s = write_route(r.model, *route);
  if (s.ok() && model) s = write_model(r.model, *model);
  return finish(s);
}

Status ReleaseStore::add_decision(const DecisionRecord& d) {
  std::lock_guard<std::mutex> lock(mu_);
  return write_decision(d);
}

Status ReleaseStore::set_model(const std::string& name, const ModelRecord& m, const RouteRecord* route) {
  std::lock_guard<std::mutex> lock(mu_);
  HEARTH_RETURN_IF_ERROR(exec("BEGIN IMMEDIATE"));
  Status s = write_model(name, m);
  if (s.ok() && route) s = write_route(name, *route);
  return finish(s);
}

Result<std::vector<ReleaseRecord>> ReleaseStore::query_releases(const char* where, const std::string& arg,
                                                                size_t limit) const {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string sql = str_cat("SELECT ", kReleaseColumns, " FROM releases WHERE ", where,
                                  limit ? str_cat(" LIMIT ", limit) : std::string());
  Stmt s(db_, sql.c_str());
  if (!arg.empty()) s.bind(1, arg);
  std::vector<ReleaseRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) out.push_back(read_release_row(s));
  if (rc != SQLITE_DONE) return s.error("read releases");
  return out;
}

Result<ReleaseRecord> ReleaseStore::release(int64_t id) const {
  HEARTH_ASSIGN_OR_RETURN(auto rows, query_releases(str_cat("id = ", id).c_str(), "", 1));
  if (rows.empty()) return not_found("no release ", id);
  return rows.front();
}

Result<std::vector<ReleaseRecord>> ReleaseStore::releases(const std::string& model, size_t limit) const {
  return query_releases("model = ?1 ORDER BY id DESC", model, limit);
}

Result<std::vector<ReleaseRecord>> ReleaseStore::active() const {
  return query_releases(
      "phase NOT IN ('promoted', 'rolled_back', 'aborted', 'gate_failed') ORDER BY id", "", 0);
}

Result<std::vector<DecisionRecord>> ReleaseStore::decisions(int64_t release_id, size_t limit, bool deciding_only) const {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string sql =
      str_cat("SELECT id, release_id, time_us, kind, verdict, actor, step, detail FROM (SELECT * FROM decisions "
              "WHERE release_id = ?1",
              deciding_only ? " AND NOT (kind = 'check' AND verdict = 'inconclusive')" : "", " ORDER BY id DESC",
              limit ? str_cat(" LIMIT ", limit) : std::string(), ") ORDER BY id");
  Stmt s(db_, sql.c_str());
  s.bind(1, release_id);
  std::vector<DecisionRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    out.push_back({s.integer(0), s.integer(1), s.integer(2), s.text(3), s.text(4), s.text(5),
                   static_cast<int>(s.integer(6)), s.text(7)});
  }
  if (rc != SQLITE_DONE) return s.error("read decisions");
  return out;
}

Result<std::optional<RouteRecord>> ReleaseStore::route_at(const std::string& model, int64_t time_us) const {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, "SELECT time_us, release_id, route FROM routes WHERE model = ?1 AND time_us <= ?2 "
              "ORDER BY time_us DESC, id DESC LIMIT 1");
  s.bind(1, model).bind(2, time_us);
  const int rc = s.step();
  if (rc == SQLITE_DONE) return std::optional<RouteRecord>();
  if (rc != SQLITE_ROW) return s.error("read routes");
  return std::optional<RouteRecord>(RouteRecord{s.integer(0), s.integer(1), s.text(2)});
}

Result<ModelRecord> ReleaseStore::model(const std::string& name) const {
  HEARTH_ASSIGN_OR_RETURN(auto all, models());
  auto it = all.find(name);
  return it == all.end() ? ModelRecord{} : it->second;
}

Result<std::map<std::string, ModelRecord>> ReleaseStore::models() const {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt s(db_, "SELECT model, production, previous, excluded FROM models");
  std::map<std::string, ModelRecord> out;
  int rc;
  while ((rc = s.step()) == SQLITE_ROW) {
    ModelRecord m;
    m.production = s.integer(1);
    m.previous = s.integer(2);
    for (int64_t v : ints_from_json(s.text(3))) m.excluded.insert(v);
    out[s.text(0)] = m;
  }
  if (rc != SQLITE_DONE) return s.error("read models");
  return out;
}

}  // namespace hearth::rollout
