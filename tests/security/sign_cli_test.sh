#!/usr/bin/env bash
# End-to-end: SM2 keys, hearth keys export-public, hearth sign and hearth verify
# on a plain model file and an .sm4 package; tampering is refused; the
# signature interoperates with the openssl command line (when installed).
# usage: sign_cli_test.sh HEARTH_BINARY TMPDIR
set -uo pipefail
hearth=$(realpath "$1")
mkdir -p "${2:-/tmp}"
work=$(mktemp -d "$(realpath "${2:-/tmp}")/sign_cli.XXXXXX")
export HEARTH_AUDIT_LOG="$work/audit.db"  # key changes are audited; never into the real HOME
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
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
# expect_ok NAME PATTERN CMD...: the command succeeds and stdout matches PATTERN
expect_ok() {
  local name=$1 pattern=$2
  shift 2
  local out
  out=$("$@" 2>&1)
  local rc=$?
  if [ $rc -eq 0 ] && grep -q -- "$pattern" <<<"$out"; then pass "$name"; else fail "$name (rc $rc: $out)"; fi
}

# flip FILE OFFSET: inverts one bit of the byte at OFFSET (always a change).
flip() {
  /usr/bin/python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); b = f.read(1)[0]
f.seek(int(sys.argv[2])); f.write(bytes([b ^ 1]))' "$1" "$2"
}

# A model-like file of 3 MiB (several read chunks).
head -c 3145828 /dev/urandom >model.onnx

# Keys: sm2 next to sm4, list shows types, store stays 0600, old lines stay valid.
"$hearth" keys create enc >/dev/null && pass "keys create (sm4 default)" || fail "keys create sm4"
expect_ok "keys create --type sm2" "created sm2 key alice" "$hearth" keys create alice --type sm2
"$hearth" keys create --id bob --type sm2 >/dev/null || fail "keys create --id bob"
[ "$(stat -c %a "$HEARTH_KEY_STORE")" = 600 ] && pass "store mode 0600" || fail "store mode"
grep -q '^enc [^ ]* [0-9]*$' "$HEARTH_KEY_STORE" && grep -q '^alice [^ ]* [0-9]* sm2$' "$HEARTH_KEY_STORE" \
  && pass "store lines: sm4 keeps 3 fields, sm2 adds a 4th" || fail "store format: $(cut -c1-20 "$HEARTH_KEY_STORE")"
list=$("$hearth" keys list)
grep -q "^alice	sm2	" <<<"$list" && grep -q "^enc	sm4	" <<<"$list" && pass "keys list shows types" \
  || fail "keys list: $list"
"$hearth" keys list --json | grep -q '"type": "sm2"' && pass "keys list --json type" || fail "keys list --json"
secret=$(awk '$1=="alice"{print $2}' "$HEARTH_KEY_STORE")
if "$hearth" keys list | grep -qF "$secret"; then fail "list shows secrets"; else pass "list hides secrets"; fi
expect_ok "keys rotate sm2" "rotated key alice to alice-2" "$hearth" keys rotate alice
"$hearth" keys list | grep -q "^alice-2	sm2	" && pass "rotated key keeps type sm2" || fail "rotate type"
"$hearth" keys create x --type rsa >/dev/null 2>&1
[ $? -eq 2 ] && ! grep -q '^x ' "$HEARTH_KEY_STORE" && pass "unknown --type is a usage error" || fail "--type rsa"

# export-public.
expect_ok "export-public" "alice.pub.pem" "$hearth" keys export-public alice
grep -q "BEGIN PUBLIC KEY" alice.pub.pem && ! grep -q "PRIVATE" alice.pub.pem && pass "public PEM written" \
  || fail "public PEM"
if grep -qF "$secret" alice.pub.pem; then fail "public file holds the secret"; else pass "no secret in PEM"; fi
expect_error "export-public no overwrite" "exists" "$hearth" keys export-public alice
mkdir -p trusted
"$hearth" keys export-public --id bob -o trusted/bob.pem >/dev/null && cp alice.pub.pem trusted/ \
  && pass "export-public -o" || fail "export-public -o"
"$hearth" keys export-public alice -o - | grep -q "BEGIN PUBLIC KEY" && pass "export-public -o -" \
  || fail "export-public to stdout"
expect_error "export-public of sm4 key" "key 'enc' is a symmetric SM4 key; only SM2 signing keys have a public half" \
  "$hearth" keys export-public enc
expect_error "export-public unknown key" "key 'nope' is not in the key store" "$hearth" keys export-public nope

# sign / verify a plain model.
expect_ok "sign" "signed model.onnx with key alice" "$hearth" sign model.onnx --key alice
grep -q '"format": "hearth-signature-1"' model.onnx.sig && grep -q '"algorithm": "SM2-SM3"' model.onnx.sig \
  && pass "signature file format" || fail "signature file: $(cat model.onnx.sig)"
expect_ok "verify with one key file" "signature OK: signed by alice" \
  "$hearth" verify model.onnx --trusted-signers alice.pub.pem
expect_ok "verify with a folder" "signature OK: signed by alice" "$hearth" verify model.onnx --trusted-signers trusted
expect_error "sign with an sm4 key" "key 'enc' is a symmetric SM4 key" "$hearth" sign model.onnx --key enc -o x.sig
expect_error "unsigned model" "is not signed (no other.onnx.sig)" \
  bash -c "cp model.onnx other.onnx && '$hearth' verify other.onnx --trusted-signers trusted"
"$hearth" sign model.onnx --key bob -o by-bob.sig >/dev/null
expect_error "untrusted signer" "unknown signer 'bob'" \
  "$hearth" verify model.onnx --trusted-signers alice.pub.pem --signature by-bob.sig
expect_ok "sign --json" '"signer":"bob"' "$hearth" sign model.onnx --key bob -o by-bob.sig --json

# Tampering.
cp model.onnx model.orig
flip model.onnx 2000000
expect_error "tampered model" "digest mismatch (file changed after signing" \
  "$hearth" verify model.onnx --trusted-signers trusted
cp model.orig model.onnx
cp model.onnx.sig model.sig.orig
# Flip one bit in the last byte of the DER signature (inside s).
/usr/bin/python3 - model.onnx.sig <<'PY'
import base64, json, sys
j = json.load(open(sys.argv[1]))
der = bytearray(base64.b64decode(j["signature"]))
der[-1] ^= 0x01
j["signature"] = base64.b64encode(bytes(der)).decode()
json.dump(j, open(sys.argv[1], "w"))
PY
cmp -s model.onnx.sig model.sig.orig && fail "signature edit did not change the file"
expect_error "tampered signature" "bad signature" "$hearth" verify model.onnx --trusted-signers trusted
echo '{"format":"hearth-signature-1"' >model.onnx.sig
expect_error "malformed signature" "malformed signature file" "$hearth" verify model.onnx --trusted-signers trusted
cp model.sig.orig model.onnx.sig
expect_ok "restored signature verifies" "signature OK" "$hearth" verify model.onnx --trusted-signers trusted

# An .sm4 package is signed as it is (no key needed to verify).
"$hearth" encrypt model.onnx --key enc -o model.onnx.sm4 >/dev/null && pass "encrypt" || fail "encrypt"
"$hearth" sign model.onnx.sm4 --key alice >/dev/null && [ -f model.onnx.sm4.sig ] && pass "sign package" \
  || fail "sign package"
expect_ok "verify package" "signed by alice" \
  env HEARTH_KEY_STORE=/nonexistent "$hearth" verify model.onnx.sm4 --trusted-signers trusted
flip model.onnx.sm4 100
expect_error "tampered package" "digest mismatch" "$hearth" verify model.onnx.sm4 --trusted-signers trusted

# Usage errors.
"$hearth" sign model.onnx >/dev/null 2>&1
[ $? -eq 2 ] && pass "sign without --key is a usage error" || fail "sign usage exit code"
"$hearth" verify model.onnx >/dev/null 2>&1
[ $? -eq 2 ] && pass "verify without --trusted-signers is a usage error" || fail "verify usage exit code"

# Interoperability: openssl verifies Hearth's signature with the default SM2 id.
if command -v openssl >/dev/null && openssl list -digest-algorithms 2>/dev/null | grep -qi sm3; then
  sed -n 's/.*"signature": "\([^"]*\)".*/\1/p' model.sig.orig | base64 -d >sig.der
  if openssl dgst -sm3 -verify alice.pub.pem -sigopt distid:1234567812345678 -signature sig.der model.onnx \
    >/dev/null 2>&1; then pass "openssl verifies the signature"; else fail "openssl interop"; fi
else
  echo "skip openssl interop (no openssl with SM3)"
fi

[ $fails -eq 0 ] && echo "sign cli: all passed" || echo "sign cli: $fails failed"
exit $((fails > 0))
