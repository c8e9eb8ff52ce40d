// ReleaseStore: where releases persist, in SQLite (WAL, synchronous=FULL: a
// transition that returned is on disk). Every transition of a release is written
// before it takes effect, so a server killed at any moment finds on restart the
// state it last chose; the decisions (every judge check, gate result, step,
// pause, promotion, rollback, with measured values and who acted) and the
// routing history ("which version served tenant T at time t") are kept too.
//
//   releases   one row per release: spec, phase, step, weights, failed checks
//   decisions  one row per decision, with its detail as JSON
//   routes     one row per routing change of a model, with the table as JSON
//   models     a model's production version (and the previous one, kept loaded)
//
// Thread safety: every method may be called from any thread (one connection,
// guarded by a mutex).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"

struct sqlite3;

namespace hearth::rollout {

// Where a release is. Terminal phases end it. A promotion or rollback is one
// transaction (the release's end, the model's production version and the routing
// change together), so no phase lies between a decision and its effect.
enum class Phase { kGate, kShadow, kCanary, kPromoted, kRolledBack, kAborted, kGateFailed };
const char* phase_name(Phase p);
Result<Phase> parse_phase(const std::string& name);
bool is_terminal(Phase p);

struct ReleaseRecord {
  int64_t id = 0;
  std::string model;
  int64_t champion = 0;
  std::vector<int64_t> candidates;  // still in the release (a failed one leaves)
  std::vector<int64_t> dropped;     // candidates rolled back on their own (A/B/n)
  std::string spec_json;
  Phase phase = Phase::kGate;
  int step = 0;                     // index into canary.steps while in kCanary
  bool paused = false;
  std::map<int64_t, int> failed_checks;  // failed judge checks per candidate
  int64_t promoted_version = 0;     // when promoted
  int64_t started_us = 0, updated_us = 0, step_started_us = 0, ended_us = 0;
  std::string actor;                // who started it
  std::string reason;               // why it ended (or holds)
};

struct DecisionRecord {
  int64_t id = 0;
  int64_t release_id = 0;
  int64_t time_us = 0;
  std::string kind;     // started|gate|check|step|paused|resumed|promoted|rolled_back|aborted|recovered
  std::string verdict;  // pass|fail|inconclusive|... or "" when none
  std::string actor;    // a user, or "judge", "gate", "server"
  int step = 0;
  std::string detail;   // JSON
};

struct RouteRecord {
  int64_t time_us = 0;
  int64_t release_id = 0;  // 0: not part of a release
  std::string table;       // JSON (see release_router.h)
};

struct ModelRecord {
  int64_t production = 0;  // 0: none chosen (default routing)
  int64_t previous = 0;
  std::set<int64_t> excluded;  // rolled-back versions kept out of loading
};

class ReleaseStore {
 public:
  // Opens or creates (0600; the folder 0700 when created) the database.
  static Result<std::unique_ptr<ReleaseStore>> open(const std::string& path);
  // $HEARTH_RELEASE_STORE, else ~/.config/hearth/releases/<name>-<hash>.db for the
  // model repository at `repository` (its canonical path hashed: servers of
  // different repositories never share releases); "" without HOME. "off" (in the
  // variable) turns releases off.
  static std::string default_path(const std::string& repository);
  ~ReleaseStore();
  ReleaseStore(const ReleaseStore&) = delete;
  ReleaseStore& operator=(const ReleaseStore&) = delete;

  const std::string& path() const { return path_; }

  // Inserts a release and its first decision (and, given, the routing change and
  // the model's record) in one transaction; sets r.id.
  Status create(ReleaseRecord& r, const DecisionRecord& first, const RouteRecord* route = nullptr,
                const ModelRecord* model = nullptr);
  // Writes the release's state and (optionally) a decision, a routing change and
  // the model's record, all in one transaction.
  Status transition(const ReleaseRecord& r, const DecisionRecord* decision, const RouteRecord* route = nullptr,
                    const ModelRecord* model = nullptr);
  Status add_decision(const DecisionRecord& d);

  Result<ReleaseRecord> release(int64_t id) const;
  // The model's releases, newest first (at most `limit`; 0 = all).
  Result<std::vector<ReleaseRecord>> releases(const std::string& model, size_t limit = 0) const;
  // Releases not in a terminal phase, oldest first.
  Result<std::vector<ReleaseRecord>> active() const;
  // Decisions of a release, oldest first (the newest `limit`; 0 = all); with
  // deciding_only, inconclusive checks are left out.
  Result<std::vector<DecisionRecord>> decisions(int64_t release_id, size_t limit = 0, bool deciding_only = false) const;
  // The routing of `model` in force at `time_us` (the last change at or before it).
  Result<std::optional<RouteRecord>> route_at(const std::string& model, int64_t time_us) const;
  Result<ModelRecord> model(const std::string& name) const;
  Result<std::map<std::string, ModelRecord>> models() const;
  Status set_model(const std::string& name, const ModelRecord& m, const RouteRecord* route = nullptr);

 private:
  ReleaseStore() = default;
  Status exec(const char* sql) const;
  // COMMIT when `s` is OK, else (or when COMMIT fails) ROLLBACK; returns the outcome.
  Status finish(Status s) const;
  Status write_release(const ReleaseRecord& r) const;
  Status write_decision(const DecisionRecord& d) const;
  Status write_route(const std::string& model, const RouteRecord& r) const;
  Status write_model(const std::string& name, const ModelRecord& m) const;
  Result<std::vector<ReleaseRecord>> query_releases(const char* where, const std::string& arg, size_t limit) const;

  mutable std::mutex mu_;
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace hearth::rollout
