#!/bin/bash
# hearth doctor end to end: a clean setup passes; each problem it checks for
# (a bad model, a store readable by others, a busy port, an expired or nearly
# expired certificate, a tampered audit log, an encrypted model without its key)
# fails or warns naming it; --skip, --level and --json do what they say.
# usage: doctor_test.sh HEARTH BUILD_DIR
hearth=$1
zoo=$2/zoo
tmp=$(mktemp -d)
trap 'kill $listener 2>/dev/null; rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
export HOME=$tmp/home HEARTH_TUNING_CACHE=off
mkdir -p "$HOME"
free_ports() { /usr/bin/python3 -c "
import socket
s=[socket.socket() for _ in range(3)]
[x.bind(('127.0.0.1',0)) for x in s]
print(' '.join(str(x.getsockname()[1]) for x in s))"; }
ports=$(free_ports)
doctor() { "$hearth" doctor --address 127.0.0.1 --ports $ports "$@"; }

mkdir -p "$tmp/repo/mlp/1"
cp "$zoo/mlp.onnx" "$tmp/repo/mlp/1/model.onnx"
printf 'max_batch_size: 0\n' >"$tmp/repo/mlp/config.pbtxt"
doctor --level 3 --model-repository "$tmp/repo" --skip disk ports >"$tmp/out" 2>&1
grep -q "^ok    models-load: 1 versions load and run once" "$tmp/out" && ok || bad "clean repository: $(cat "$tmp/out")"
grep -q "doctor: 0 failed" "$tmp/out" && ok || bad "clean setup passes: $(tail -3 "$tmp/out")"

# A model file that is not ONNX: the load check names it (level 3), exit code 1.
mkdir -p "$tmp/repo/broken/1"
echo "not a model" >"$tmp/repo/broken/1/model.onnx"
doctor --level 3 --model-repository "$tmp/repo" >"$tmp/out" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "FAIL  models-load: broken version 1" "$tmp/out" && ok || bad "broken model named (rc $rc): $(grep models-load "$tmp/out")"
doctor --level 2 --model-repository "$tmp/repo" >"$tmp/out" 2>&1
grep -q "skip  models-load: level 3" "$tmp/out" && ok || bad "--level 2 skips the load check"
rm -rf "$tmp/repo/broken"

# A store readable by others, a busy port.
"$hearth" keys create --id k >/dev/null 2>&1
chmod 644 "$HOME/.config/hearth/keys"
/usr/bin/python3 -c "
import socket,time
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', ${ports%% *})); s.listen(); time.sleep(60)" &
listener=$!
sleep 0.5
doctor --model-repository "$tmp/repo" >"$tmp/out" 2>&1
grep -q "FAIL  key-store: key store .* has mode 0644, wider than 0600; refusing to use it (run: chmod 600" "$tmp/out" && ok || bad "loose key store: $(grep key-store "$tmp/out")"
grep -q "FAIL  ports: in use on 127.0.0.1: ${ports%% *}" "$tmp/out" && ok || bad "busy port: $(grep ports "$tmp/out")"
doctor --model-repository "$tmp/repo" --skip ports key-store >"$tmp/out" 2>&1
grep -q "skip  ports: skipped (--skip)" "$tmp/out" && grep -q "doctor: 0 failed" "$tmp/out" && ok || bad "--skip: $(tail -2 "$tmp/out")"
kill $listener 2>/dev/null
chmod 600 "$HOME/.config/hearth/keys"

# An encrypted model whose key is not in the store (level 2).
mkdir -p "$tmp/repo/secret/1"
"$hearth" keys create --id gone --key-file "$tmp/gone.key" >/dev/null 2>&1
"$hearth" encrypt "$zoo/mlp.onnx" --key gone --key-file "$tmp/gone.key" -o "$tmp/repo/secret/1/model.onnx.sm4" >/dev/null 2>&1
printf 'max_batch_size: 0\n' >"$tmp/repo/secret/config.pbtxt"
doctor --level 2 --model-repository "$tmp/repo" >"$tmp/out" 2>&1
grep -q "FAIL  model-keys: .*needs key 'gone'" "$tmp/out" && ok || bad "missing model key: $(grep model-keys "$tmp/out")"
rm -rf "$tmp/repo/secret"

# Certificates: 10 days left warns.
"$hearth" certs self-signed -o "$tmp/tls" --days 10 >/dev/null 2>&1
doctor --tls-cert "$tmp/tls/server.pem" --json >"$tmp/out" 2>&1
/usr/bin/python3 -c "
import json,sys; j=json.load(open('$tmp/out')); c={x['name']: x for x in j['checks']}
d = c['certificates']['detail']
sys.exit(0 if c['certificates']['status'] == 'warn' and ('expires in 9 days' in d or 'expires in 10 days' in d) else 1)" \
  && ok || bad "certificate near expiry: $(cat "$tmp/out" | head -40)"

# A tampered audit log (level 2).
"$hearth" users add alice --role viewer >/dev/null 2>&1
"$hearth" users add bob --role viewer >/dev/null 2>&1
sqlite3 "$HOME/.config/hearth/audit.db" "DROP TRIGGER audit_no_update; UPDATE audit SET user = 'mallory' WHERE seq = 1"
doctor --level 2 >"$tmp/out" 2>&1
grep -q "FAIL  audit-chain: .*record 1" "$tmp/out" && ok || bad "tampered audit log: $(grep audit-chain "$tmp/out")"

# A model folder named like a shell command is a path, never run (level 3 spawns argv).
evil="q'; touch pwned; '"
mkdir -p "$tmp/repo2/$evil/1"
cp "$zoo/mlp.onnx" "$tmp/repo2/$evil/1/model.onnx"
printf 'max_batch_size: 0\n' >"$tmp/repo2/$evil/config.pbtxt"
(cd "$tmp" && doctor --level 3 --model-repository "$tmp/repo2" --skip ports >"$tmp/out" 2>&1)
[ ! -e "$tmp/pwned" ] && ok || bad "a model's folder name ran as a command"
grep -q "^ok    models-load: 1 versions load and run once" "$tmp/out" && ok || bad "odd folder name loads: $(grep -E 'repository|models-load' "$tmp/out")"

"$hearth" doctor --level 4 >/dev/null 2>&1
[ $? -eq 1 ] && ok || bad "--level 4 refused"
echo "doctor: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
