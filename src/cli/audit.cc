// `hearth audit verify|list|head`: checks and reads the server's tamper-evident
// audit log (see docs/security/audit.md). Every command opens the log
// read-only; verify exits 1 when the chain is broken, naming the first bad record.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "security/audit_log.h"

namespace hearth::cli {

namespace {

struct AuditOptions {
  std::string audit_log;
  std::string anchor;
  std::string since, until;
  security::AuditFilter filter;
  bool json = false;
};

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "15m", "2h", "7d": that long before now.
bool parse_age(const std::string& text, int64_t now, int64_t& out) {
  if (text.size() < 2) return false;
  int64_t n = 0;
  const char* end = text.data() + text.size() - 1;
  auto [ptr, ec] = std::from_chars(text.data(), end, n);
  if (ec != std::errc() || ptr != end || n < 0) return false;
  int64_t unit = 0;
  switch (text.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 7 * 86400; break;
    default: return false;
  }
  if (n > (int64_t{1} << 40) / unit) return false;
  out = now - n * unit * 1000000;
  return true;
}

// "2026-11-25T10:00:00Z" (optionally with a fraction of a second) or "2026-11-25" (midnight UTC).
bool parse_iso(const std::string& text, int64_t& out) {
  std::tm tm {};
  int used = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &used) != 3 || used != 10) {
    return false;
  }
  int64_t frac_us = 0;
  std::string rest = text.substr(10);
  if (!rest.empty()) {
    int n = 0;
    if (std::sscanf(rest.c_str(), "T%2d:%2d:%2d%n", &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 3 || n != 9) {
      return false;
    }
    rest = rest.substr(9);
    if (!rest.empty() && rest[0] == '.') {
      size_t digits = 1;
      for (int64_t scale = 100000; digits < rest.size() && std::isdigit(static_cast<unsigned char>(rest[digits]));
           ++digits, scale /= 10) {
        frac_us += (rest[digits] - '0') * scale;
      }
      if (digits == 1) return false;
      rest = rest.substr(digits);
    }
    if (rest != "Z" && rest != "+00:00") return false;
  }
  std::tm want = tm;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::time_t t = timegm(&tm);
  // timegm normalizes out-of-range fields (month 13, 31 February): refuse those.
  if (tm.tm_year + 1900 != want.tm_year || tm.tm_mon + 1 != want.tm_mon || tm.tm_mday != want.tm_mday ||
      tm.tm_hour != want.tm_hour || tm.tm_min != want.tm_min || tm.tm_sec != want.tm_sec) {
    return false;
  }
  out = static_cast<int64_t>(t) * 1000000 + frac_us;
  return true;
}

Result<int64_t> parse_time(const std::string& flag, const std::string& text, int64_t now) {
  int64_t out = 0;
  if (parse_age(text, now, out) || parse_iso(text, out)) return out;
  return invalid_argument(flag, " '", text, "': expected an ISO 8601 UTC time (2026-11-25T10:00:00Z) or an age ",
                          "like 90s, 15m, 2h, 7d");
}

std::string iso_time_us(int64_t time_us) {
  int64_t secs = time_us / 1000000, frac = time_us % 1000000;
  if (frac < 0) secs -= 1, frac += 1000000;
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm {};
  gmtime_r(&t, &tm);
  char buf[48];
  size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06lldZ", static_cast<long long>(frac));
  return buf;
}

// Makes a field safe for a terminal table: no control characters, "-" for empty.
std::string printable(const std::string& s) {
  if (s.empty()) return "-";
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

Result<std::unique_ptr<security::AuditLog>> open_log(const AuditOptions& o) {
  std::string path = o.audit_log.empty() ? security::AuditLog::default_path() : o.audit_log;
  if (path.empty()) return invalid_argument("give --audit-log FILE (or set ", security::kAuditLogEnv, ")");
  return security::AuditLog::open_read_only(path);
}

Status audit_verify(const AuditOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(std::unique_ptr<security::AuditLog> log, open_log(o));
  HEARTH_ASSIGN_OR_RETURN(security::AuditVerifyReport rep, log->verify(o.anchor));
  if (rep.ok) {
    std::cout << "audit log OK: " << rep.records << " records, head " << rep.head << "\n";
  } else {
    std::cout << "audit log TAMPERED at record " << rep.first_bad_seq << ": " << rep.problem << "\n";
    set_exit_code(kExitRuntime);
  }
  return ok_status();
}

nlohmann::ordered_json record_json(const security::AuditRecord& r) {
  const security::AuditEvent& e = r.event;
  return {{"seq", r.seq},         {"time", iso_time_us(r.time_us)}, {"time_us", r.time_us},
          {"user", e.user},       {"action", e.action},             {"resource", e.resource},
          {"model", e.model},     {"version", e.version},           {"client", e.client},
          {"outcome", e.outcome}, {"detail", e.detail},             {"prev_hash", r.prev_hash},
          {"hash", r.hash}};
}

void print_table(const std::vector<security::AuditRecord>& records) {
  std::vector<std::vector<std::string>> rows = {
      {"SEQ", "TIME", "USER", "CLIENT", "ACTION", "OUTCOME", "RESOURCE", "MODEL", "VERSION", "DETAIL"}};
  for (const auto& r : records) {
    const security::AuditEvent& e = r.event;
    rows.push_back({std::to_string(r.seq), iso_time_us(r.time_us), printable(e.user), printable(e.client),
                    printable(e.action), printable(e.outcome), printable(e.resource), printable(e.model),
                    printable(e.version), printable(e.detail)});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

Status audit_list(AuditOptions o) {
  int64_t now = now_us();
  if (!o.since.empty()) {
    HEARTH_ASSIGN_OR_RETURN(o.filter.since_us, parse_time("--since", o.since, now));
  }
  if (!o.until.empty()) {
    HEARTH_ASSIGN_OR_RETURN(o.filter.until_us, parse_time("--until", o.until, now));
  }
  HEARTH_ASSIGN_OR_RETURN(std::unique_ptr<security::AuditLog> log, open_log(o));
  HEARTH_ASSIGN_OR_RETURN(std::vector<security::AuditRecord> records, log->list(o.filter));
  if (o.json) {
    for (const auto& r : records) {
      std::cout << record_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
  } else if (records.empty()) {
    std::cout << "no matching audit records in " << log->path() << "\n";
  } else {
    print_table(records);
  }
  return ok_status();
}

Status audit_head(const AuditOptions& o) {
  HEARTH_ASSIGN_OR_RETURN(std::unique_ptr<security::AuditLog> log, open_log(o));
  HEARTH_ASSIGN_OR_RETURN(std::string head, log->head());
  std::cout << head << "\n";
  return ok_status();
}

template <typename Fn>
void run_audit(const std::shared_ptr<AuditOptions>& o, Fn fn) {
  Status s = fn(*o);
  if (!s.ok()) {
    report_error(s);
    if (s.code() == StatusCode::kInvalidArgument) set_exit_code(kExitUsage);
  }
}

void add_log_option(CLI::App* cmd, AuditOptions& o) {
  cmd->add_option("--audit-log", o.audit_log, "audit log file (default $HEARTH_AUDIT_LOG, else ~/.config/hearth/audit.db)");
}

}  // namespace

void add_audit_command(CLI::App& app) {
  auto o = std::make_shared<AuditOptions>();
  CLI::App* audit = app.add_subcommand("audit", "Check and read the tamper-evident audit log");
  audit->require_subcommand(1);

  CLI::App* verify = audit->add_subcommand("verify", "Recompute the hash chain; exit 1 naming the first bad record");
  add_log_option(verify, *o);
  verify->add_option("--anchor", o->anchor, "SEQ:HASH from an earlier `hearth audit head` (catches cut-off records)");
  verify->callback([o] { run_audit(o, audit_verify); });

  CLI::App* list = audit->add_subcommand("list", "Show records, oldest first");
  add_log_option(list, *o);
  list->add_option("--since", o->since, "from this time: 2026-11-25T10:00:00Z, or an age: 15m, 2h, 7d");
  list->add_option("--until", o->until, "before this time (same forms)");
  list->add_option("--user", o->filter.user, "only this user");
  list->add_option("--action", o->filter.action, "only this action; 'model.*' for a prefix");
  list->add_option("--model", o->filter.model, "only this model");
  list->add_option("--outcome", o->filter.outcome, "only this outcome: ok, denied, failed, error");
  list->add_option("--limit", o->filter.limit, "only the newest N matches");
  list->add_flag("--json", o->json, "print one JSON object a line");
  list->callback([o] { run_audit(o, audit_list); });

  CLI::App* head = audit->add_subcommand("head", "Print SEQ:HASH of the newest record (keep it elsewhere as an anchor)");
  add_log_option(head, *o);
  head->callback([o] { run_audit(o, audit_head); });
}

}  // namespace hearth::cli
