#!/usr/bin/env bash
# End-to-end: hearth keys / encrypt / decrypt on real zoo models.
# usage: crypt_cli_test.sh HEARTH_BINARY BUILD_DIR
set -uo pipefail
hearth=$(realpath "$1")
build=$(realpath "${2:-build}")
zoo=$build/zoo
work=$(mktemp -d)
export HEARTH_AUDIT_LOG="$work/audit.db"  # key changes are audited; never into the real HOME
trap 'rm -rf "$work"' EXIT
export HEARTH_KEY_STORE=$work/store/keys
unset HEARTH_MODEL_KEY
fails=0
pass() { echo "ok   $1"; }
fail() { echo "FAIL $1"; fails=$((fails + 1)); }
# expect_error NAME PATTERN CMD...: the command fails (exit 1) and stderr matches PATTERN
expect_error() {
  local name=$1 pattern=$2
  shift 2
  local err
  err=$("$@" 2>&1 >/dev/null)
  local rc=$?
  if [ $rc -eq 1 ] && grep -q -- "$pattern" <<<"$err"; then pass "$name"; else fail "$name (rc $rc: $err)"; fi
}

# Keys.
"$hearth" keys create --id prod >/dev/null && pass "keys create" || fail "keys create"
[ "$(stat -c %a "$HEARTH_KEY_STORE")" = 600 ] && pass "store mode 0600" || fail "store mode"
"$hearth" keys rotate --id prod >/dev/null && "$hearth" keys list | grep -q '^prod-2' && pass "keys rotate" \
  || fail "keys rotate"
if "$hearth" keys list | grep -q "$(cut -d' ' -f2 <"$HEARTH_KEY_STORE" | tail -1)"; then fail "list shows secrets"; \
  else pass "list hides secrets"; fi
expect_error "export-public of an sm4 key" "only SM2 signing keys have a public half" "$hearth" keys export-public --id prod

# A single-file model round trip, and --check loads it.
"$hearth" encrypt "$zoo/mlp.onnx" --key prod -o "$work/mlp.sm4" >/dev/null && pass "encrypt file" || fail "encrypt file"
"$hearth" decrypt "$work/mlp.sm4" -o "$work/out" >/dev/null && cmp -s "$work/out/mlp.onnx" "$zoo/mlp.onnx" \
  && pass "decrypt round trip" || fail "decrypt round trip"
[ "$(stat -c %a "$work/out/mlp.onnx")" = 600 ] && pass "decrypted file mode 0600" || fail "decrypted file mode"
"$hearth" decrypt "$work/mlp.sm4" --check --json | grep -q '"inputs":1' && pass "decrypt --check loads the model" \
  || fail "decrypt --check"
expect_error "no overwrite without --force" "exists" "$hearth" decrypt "$work/mlp.sm4" -o "$work/out"

# Encrypting and checking creates no file other than the output.
mkdir -p "$work/quiet"
before=$(ls -A /tmp /dev/shm | sort)
(cd "$work/quiet" && TMPDIR=$work/quiet "$hearth" encrypt "$zoo/mlp.onnx" --key prod -o pkg.sm4 >/dev/null \
  && TMPDIR=$work/quiet "$hearth" decrypt pkg.sm4 --check >/dev/null)
[ "$(ls -A "$work/quiet")" = "pkg.sm4" ] && pass "only the output is written" || fail "stray files: $(ls -A "$work/quiet")"
after=$(ls -A /tmp /dev/shm | sort)
new=$(comm -13 <(echo "$before") <(echo "$after") | grep -v "$(basename "$work")" || true)
for f in $new; do
  [ -f "/tmp/$f" ] && cmp -s "/tmp/$f" "$zoo/mlp.onnx" && fail "plaintext copy in /tmp/$f"
done

# Errors.
expect_error "wrong key" "authentication failed: wrong key or tampered package" \
  bash -c "'$hearth' keys create --id prod --key-file '$work/other.key' >/dev/null && '$hearth' decrypt '$work/mlp.sm4' --key-file '$work/other.key' --check"
head -c 200 "$work/mlp.sm4" >"$work/cut.sm4"
expect_error "truncated" "truncated package: header says" "$hearth" decrypt "$work/cut.sm4" --check
cp "$work/mlp.sm4" "$work/bad.sm4"
# Flip every bit of one ciphertext byte (writing a fixed value would leave the
# file unchanged whenever the random ciphertext already held that value).
byte=$(od -An -tu1 -j5000 -N1 "$work/bad.sm4" | tr -d ' ')
printf "\\$(printf '%03o' $((byte ^ 255)))" | dd of="$work/bad.sm4" bs=1 seek=5000 conv=notrunc 2>/dev/null
cmp -s "$work/mlp.sm4" "$work/bad.sm4" && fail "the tampered copy equals the original"
expect_error "tampered" "authentication failed" "$hearth" decrypt "$work/bad.sm4" --check
expect_error "bad magic" "not a Hearth package (bad magic)" "$hearth" decrypt "$zoo/mlp.onnx" --check
"$hearth" keys create --id lonely --key-file "$work/lonely.key" >/dev/null
expect_error "missing key" "key 'prod' is not" "$hearth" decrypt "$work/mlp.sm4" --key-file "$work/lonely.key" --check
chmod 644 "$HEARTH_KEY_STORE"
expect_error "store mode refused" "has mode 0644" "$hearth" decrypt "$work/mlp.sm4" --check
chmod 600 "$HEARTH_KEY_STORE"

# Environment key.
secret=$(awk '$1=="prod"{print $2}' "$HEARTH_KEY_STORE")
HEARTH_MODEL_KEY="prod:$secret" HEARTH_KEY_STORE=$work/none "$hearth" decrypt "$work/mlp.sm4" --check >/dev/null \
  && pass "HEARTH_MODEL_KEY" || fail "HEARTH_MODEL_KEY"

# A folder with external data; symlinks out are refused; names stay inside -o.
mkdir -p "$work/model/sub"
cp "$zoo/mlp.onnx" "$work/model/model.onnx"
echo weights >"$work/model/sub/w.bin"
echo config >"$work/model/config.pbtxt"
"$hearth" encrypt "$work/model" --key prod -o "$work/model.sm4" >/dev/null \
  && "$hearth" decrypt "$work/model.sm4" -o "$work/model_out" >/dev/null \
  && cmp -s "$work/model_out/sub/w.bin" "$work/model/sub/w.bin" && [ ! -e "$work/model_out/config.pbtxt" ] \
  && pass "folder with external data" || fail "folder with external data"
ln -s /etc/hostname "$work/model/leak.bin"
expect_error "symlink out refused" "symlink leading out" "$hearth" encrypt "$work/model" --key prod -o "$work/x.sm4"
rm "$work/model/leak.bin"

# Key management is a control-plane action: it lands in the audit log.
"$hearth" audit list --action 'key.*' --json | grep -q '"action":"key.create"' \
  && "$hearth" audit list --action 'key.*' --json | grep -q '"action":"key.rotate"' \
  && "$hearth" audit verify >/dev/null && pass "key create / rotate audited" || fail "key changes audited"

[ $fails -eq 0 ] && echo "crypt cli: all passed" || echo "crypt cli: $fails failed"
exit $((fails > 0))
