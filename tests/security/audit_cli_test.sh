#!/usr/bin/env bash
# End-to-end: hearth audit verify / list / head on a log written by an
# independent implementation of docs/security/audit.md (Python's sqlite3 and
# hashlib SM3), then on tampered copies edited with the sqlite3 tool.
# usage: audit_cli_test.sh HEARTH_BINARY TMPDIR
set -uo pipefail
hearth=$(realpath "$1")
mkdir -p "${2:-/tmp}"
work=$(mktemp -d "$(realpath "${2:-/tmp}")/audit_cli.XXXXXX")
trap 'rm -rf "$work"' EXIT
unset HEARTH_AUDIT_LOG
log=$work/audit.db
fails=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; fails=$((fails + 1)); }
# expect NAME RC PATTERN CMD...: the command exits RC and its output (stdout+stderr) matches PATTERN
expect() {
  local name=$1 want=$2 pattern=$3
  shift 3
  local out
  out=$("$@" 2>&1)
  local rc=$?
  if [ $rc -eq "$want" ] && grep -q -- "$pattern" <<<"$out"; then pass "$name"; else fail "$name (rc $rc: $out)"; fi
}
# seqs ARGS...: the seq numbers `hearth audit list --json ARGS` prints, space-separated
seqs() {
  "$hearth" audit list --audit-log "$log" --json "$@" | /usr/bin/python3 -c \
    'import json,sys; print(" ".join(str(json.loads(l)["seq"]) for l in sys.stdin))'
}
expect_seqs() {
  local name=$1 want=$2
  shift 2
  local got
  got=$(seqs "$@")
  if [ "$got" = "$want" ]; then pass "$name"; else fail "$name (got '$got', want '$want')"; fi
}

# Write a 5-record log the way docs/security/audit.md describes it, byte by byte.
umask 077
/usr/bin/python3 - "$log" <<'EOF' || { echo "FAIL cannot write the reference log"; exit 1; }
import hashlib, sqlite3, struct, sys
db = sqlite3.connect(sys.argv[1])
db.executescript("""
PRAGMA journal_mode=WAL;
CREATE TABLE audit (seq INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, user TEXT NOT NULL, action TEXT NOT NULL,
  resource TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, client TEXT NOT NULL, outcome TEXT NOT NULL,
  detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL) STRICT;
CREATE INDEX audit_time ON audit(time_us);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
PRAGMA application_id = 1213355080;
PRAGMA user_version = 1;
""")
t0 = 1577934000 * 1000000  # 2020-01-02T03:00:00Z
events = [
    ("alice", "model.load", "models", "resnet", "1", "10.0.0.7", "ok", "req-1"),
    ("bob", "infer", "inference", "resnet", "1", "10.0.0.8", "ok", "req-2"),
    ("bob", "access.denied", "models", "mlp", "", "10.0.0.8", "denied", "role viewer"),
    ("-", "auth.failed", "inference", "", "", "10.0.0.9", "failed", "bad token\nsecond line"),
    ("alice", "model.unload", "models", "resnet", "1", "cli", "ok", ""),
]
prev = "0" * 64
for i, e in enumerate(events, 1):
    t = t0 + (i - 1) * 300 * 1000000  # five minutes apart
    msg = prev.encode() + struct.pack(">QQ", i, t)
    for f in e:
        b = f.encode()
        msg += struct.pack(">I", len(b)) + b
    h = hashlib.new("sm3", msg).hexdigest()
    db.execute("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", (i, t, *e, prev, h))
    prev = h
db.commit()
db.close()
print(prev, file=open(sys.argv[1] + ".head", "w"))
EOF
head_hash=$(cat "$log.head")

# verify / head on the untouched log.
expect "verify ok" 0 "^audit log OK: 5 records, head 5:$head_hash\$" "$hearth" audit verify --audit-log "$log"
[ "$("$hearth" audit head --audit-log "$log")" = "5:$head_hash" ] && pass "head" || fail "head"
anchor=$("$hearth" audit head --audit-log "$log")
expect "verify with anchor" 0 "audit log OK" "$hearth" audit verify --audit-log "$log" --anchor "$anchor"
HEARTH_AUDIT_LOG=$log expect "HEARTH_AUDIT_LOG" 0 "audit log OK" "$hearth" audit verify
HOME= expect "no log given, no HOME" 2 "give --audit-log" "$hearth" audit verify
expect "missing log" 1 "does not exist" "$hearth" audit head --audit-log "$work/nope.db"
expect "bad anchor" 2 "is not SEQ:HASH" "$hearth" audit verify --audit-log "$log" --anchor 5:xyz

# list.
out=$("$hearth" audit list --audit-log "$log")
[ "$(wc -l <<<"$out")" = 6 ] && grep -q '^SEQ  *TIME  *USER' <<<"$out" && pass "list table" || fail "list table: $out"
grep -q '^3  *2020-01-02T03:10:00.000000Z  *bob  *10.0.0.8  *access.denied  *denied  *models  *mlp  *-  *role viewer$' \
  <<<"$out" && pass "list table row" || fail "list table row: $out"
grep -q 'bad token\\nsecond line' <<<"$out" && pass "list escapes newlines" || fail "list escapes newlines"
expect_seqs "list --json" "1 2 3 4 5"
"$hearth" audit list --audit-log "$log" --json --limit 1 | /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
assert r["seq"] == 5 and r["user"] == "alice" and r["action"] == "model.unload" and r["client"] == "cli", r
assert r["time"] == "2020-01-02T03:20:00.000000Z" and r["time_us"] == 1577935200000000, r
assert len(r["hash"]) == 64 and len(r["prev_hash"]) == 64, r' && pass "list --json fields" || fail "list --json fields"
expect_seqs "list --user" "2 3" --user bob
expect_seqs "list --action exact" "2" --action infer
expect_seqs "list --action prefix" "1 5" --action 'model.*'
expect_seqs "list --model" "1 2 5" --model resnet
expect_seqs "list --outcome" "3" --outcome denied
expect_seqs "list --since/--until ISO" "3 4" --since 2020-01-02T03:10:00Z --until 2020-01-02T03:20:00Z
expect_seqs "list --limit newest last" "4 5" --limit 2
expect_seqs "list --since age" "" --since 7d
expect_seqs "list --until age" "1 2 3 4 5" --until 1d
expect "list --since bad" 2 "expected an ISO 8601 UTC time" "$hearth" audit list --audit-log "$log" --since yesterday
expect "list --since bad date" 2 "expected an ISO 8601" "$hearth" audit list --audit-log "$log" --since 2020-02-30T00:00:00Z
expect "list nothing" 0 "no matching audit records" "$hearth" audit list --audit-log "$log" --user nobody

# Permissions and format.
cp "$log" "$work/wide.db" && chmod 644 "$work/wide.db"
expect "mode 0644 refused" 1 "wider than 0600" "$hearth" audit verify --audit-log "$work/wide.db"
echo "just some text, long enough to be read as a database header, but it is not one at all" >"$work/text.db"
expect "not a database" 1 "not a database" "$hearth" audit verify --audit-log "$work/text.db"

# Tampering with the sqlite3 tool. Triggers refuse plain edits first.
tamper() {  # tamper NAME SQL: a copy of the log with SQL applied (triggers dropped)
  cp "$log" "$work/$1.db"
  sqlite3 "$work/$1.db" "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; $2" || fail "sqlite3 $1"
  echo "$work/$1.db"
}
cp "$log" "$work/plain.db"
if sqlite3 "$work/plain.db" "UPDATE audit SET user = 'mallory' WHERE seq = 3" 2>/dev/null; then
  fail "trigger refuses UPDATE"; else pass "trigger refuses UPDATE"; fi
expect "edited field" 1 "^audit log TAMPERED at record 3: .*does not match" \
  "$hearth" audit verify --audit-log "$(tamper edit "UPDATE audit SET user = 'mallory' WHERE seq = 3")"
expect "deleted middle record" 1 "^audit log TAMPERED at record 2: .*missing" \
  "$hearth" audit verify --audit-log "$(tamper delmid "DELETE FROM audit WHERE seq = 2")"
expect "changed hash" 1 "^audit log TAMPERED at record 4:" \
  "$hearth" audit verify --audit-log "$(tamper hash "UPDATE audit SET hash = '$(printf 'a%.0s' {1..64})' WHERE seq = 4")"
dellast=$(tamper dellast "DELETE FROM audit WHERE seq = 5")
expect "deleted last record passes without anchor" 0 "audit log OK: 4 records, head 4:" \
  "$hearth" audit verify --audit-log "$dellast"
expect "deleted last record caught with anchor" 1 "^audit log TAMPERED at record 5: .*deleted from the end" \
  "$hearth" audit verify --audit-log "$dellast" --anchor "$anchor"

echo "$fails failure(s)"
[ $fails -eq 0 ]
