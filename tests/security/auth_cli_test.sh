#!/usr/bin/env bash
# End-to-end: hearth users / tokens on a scratch auth store: round trip, file mode,
# secrets never listed or stored, policy-defined roles, clear errors with exit 1.
# usage: auth_cli_test.sh HEARTH_BINARY [TMPDIR]
set -uo pipefail
hearth=$(realpath "$1")
work=$(mktemp -d "${2:-/tmp}/auth_cli.XXXXXX")
export HEARTH_AUDIT_LOG="$work/audit.db"  # changes are audited; never into the real HOME
trap 'rm -rf "$work"' EXIT
export HEARTH_AUTH_STORE=$work/cfg/auth.json
store=$HEARTH_AUTH_STORE
repo=$(cd "$(dirname "$0")/../.." && pwd)
policy=$repo/examples/security/policy.yaml
fails=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; fails=$((fails + 1)); }
# expect_error NAME PATTERN CMD...: the command fails with exit 1 and its stderr matches PATTERN
expect_error() {
  local name=$1 pattern=$2
  shift 2
  local err
  err=$("$@" 2>&1 >/dev/null)
  local rc=$?
  if [ $rc -eq 1 ] && grep -q -- "$pattern" <<<"$err"; then pass "$name"; else fail "$name (rc $rc: $err)"; fi
}
json() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# Users.
"$hearth" users add alice --role admin >/dev/null && pass "users add" || fail "users add"
[ "$(stat -c %a "$store")" = 600 ] && pass "store mode 0600" || fail "store mode $(stat -c %a "$store")"
[ "$(stat -c %a "$work/cfg")" = 700 ] && pass "store folder mode 0700" || fail "store folder mode"
"$hearth" users add bob --role viewer --role operator --cert-subject "CN=bob,O=Bank" >/dev/null \
  && pass "users add with two roles and a subject" || fail "users add bob"
out=$("$hearth" users list --json)
[ "$(json "[u['roles'] for u in d if u['name']=='bob'][0]" <<<"$out")" = "['viewer', 'operator']" ] \
  && pass "users list --json roles" || fail "users list --json: $out"
[ "$(json "[u['cert_subjects'] for u in d if u['name']=='bob'][0]" <<<"$out")" = "['CN=bob,O=Bank']" ] \
  && pass "users list --json subjects" || fail "users list subjects: $out"
"$hearth" users list | grep -q "^alice	roles=admin" && pass "users list text" || fail "users list text"
expect_error "duplicate user" "already exists" "$hearth" users add alice --role viewer
expect_error "unknown role" "unknown role 'fraud-analyst'" "$hearth" users add carol --role fraud-analyst
expect_error "bad user name" "invalid user name" "$hearth" users add "bad name" --role viewer
"$hearth" users add carol --role fraud-analyst --policy "$policy" >/dev/null \
  && pass "policy role accepted with --policy" || fail "users add with --policy"
"$hearth" users grant bob admin >/dev/null && "$hearth" users list --json | grep -q '"admin"' \
  && pass "users grant" || fail "users grant"
"$hearth" users revoke bob operator >/dev/null \
  && [ "$("$hearth" users list --json | json "[u['roles'] for u in d if u['name']=='bob'][0]")" = "['viewer', 'admin']" ] \
  && pass "users revoke" || fail "users revoke"
expect_error "revoke a role the user lacks" "does not have role 'operator'" "$hearth" users revoke bob operator
expect_error "grant unknown user" "no user 'nobody'" "$hearth" users grant nobody viewer
expect_error "grant unknown role" "unknown role 'root'" "$hearth" users grant bob root

# Tokens.
out=$("$hearth" tokens issue alice --description "ci job")
token=$(grep -o 'hth_[0-9a-f]\{12\}_[A-Za-z0-9_-]\{43\}' <<<"$out")
[ -n "$token" ] && pass "tokens issue prints the token" || fail "tokens issue: $out"
grep -q "not shown again" <<<"$out" && pass "shown-once notice" || fail "shown-once notice"
id=${token:4:12}
grep -q -- "${token:17}" "$store" && fail "secret stored in the file" || pass "secret not stored"
list=$("$hearth" tokens list)
grep -q "^$id	user=alice" <<<"$list" && pass "tokens list" || fail "tokens list: $list"
grep -q -- "${token:17}" <<<"$list" && fail "tokens list shows the secret" || pass "tokens list hides the secret"
grep -q "hash\|salt" <<<"$list" && fail "tokens list shows hashes" || pass "tokens list hides hashes"
exp=$("$hearth" tokens list --json | json "d[0]['expires']")
days=$(/usr/bin/python3 -c "import datetime as t; e=t.datetime.strptime('$exp','%Y-%m-%dT%H:%M:%SZ'); print(round((e-t.datetime.utcnow()).total_seconds()/86400))")
[ "$days" = 90 ] && pass "default expiry 90 days" || fail "default expiry $exp ($days days)"
out=$("$hearth" tokens issue bob --expires never --json)
[ "$(json "d['expires']" <<<"$out")" = None ] && pass "--expires never" || fail "--expires never: $out"
bob_id=$(json "d['id']" <<<"$out")
"$hearth" tokens issue bob --expires 12h >/dev/null && pass "--expires 12h" || fail "--expires 12h"
[ "$("$hearth" tokens list --user bob --json | json "len(d)")" = 2 ] && pass "tokens list --user" || fail "tokens list --user"
expect_error "bad --expires" "invalid --expires '5y'" "$hearth" tokens issue bob --expires 5y
expect_error "token for unknown user" "no user 'nobody'" "$hearth" tokens issue nobody
"$hearth" tokens revoke "$id" >/dev/null && ! "$hearth" tokens list | grep -q "^$id" && pass "tokens revoke" \
  || fail "tokens revoke"
expect_error "revoke unknown token" "no token with id" "$hearth" tokens revoke "$id"
"$hearth" users remove bob >/dev/null && [ "$("$hearth" tokens list --json | json "len(d)")" = 0 ] \
  && pass "users remove drops its tokens" || fail "users remove"
grep -q "$bob_id" "$store" && fail "removed user's token still stored" || pass "removed user's token gone"

# Refusals.
chmod 644 "$store"
expect_error "wide store mode refused" "wider than 0600" "$hearth" users list
chmod 600 "$store"
echo '{"version":1,"users":[{"name":"x"}],"tokens":[]}' >"$store"
expect_error "tampered store names the field" "users\[0\]: missing key 'roles'" "$hearth" users list
expect_error "missing store" "does not exist" "$hearth" users list --auth-store "$work/none.json"
expect_error "bad policy names the line" "bad.yaml:2:" bash -c \
  "printf 'roles:\n  Bad: {}\n' >'$work/bad.yaml'; '$hearth' users add z --role viewer --policy '$work/bad.yaml' \
   --auth-store '$work/other.json'"
"$hearth" users add dave --role viewer --auth-store "$work/explicit.json" >/dev/null && [ -f "$work/explicit.json" ] \
  && pass "--auth-store" || fail "--auth-store"
"$hearth" users add 2>/dev/null; [ $? -eq 2 ] && pass "usage error exits 2" || fail "usage error exit code"

# Commands run at the same moment do not lose each other's changes (a lock around read-change-save).
"$hearth" users add erin --role viewer --auth-store "$work/race.json" >/dev/null
for i in $(seq 8); do "$hearth" tokens issue erin --auth-store "$work/race.json" >/dev/null & done
wait
n=$("$hearth" tokens list --user erin --json --auth-store "$work/race.json" | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" = 8 ] && pass "8 tokens issued at once: all 8 kept" || fail "concurrent issue kept $n of 8 tokens"

echo "$fails failure(s)"
[ "$fails" -eq 0 ]
