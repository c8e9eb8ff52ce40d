#!/usr/bin/python3
"""End-to-end test of encrypted models in `hearth serve`.

Creates a key with `hearth keys create`, encrypts the zoo MLP with `hearth encrypt`
into <repo>/mlp/1/model.onnx.sm4 (and, as "mlpext", the MLP saved with its weights in
an external-data file, sealed from its folder) and checks that the server (poll mode) serves it with
PyTorch's outputs, that no file appears anywhere under the repository or the temp
folders while it loads (the plaintext exists only in memory), and that a tampered
package, a package under an unknown key and a package with no key configured each stay
UNAVAILABLE with a reason naming the problem while the good version keeps serving.

usage: encrypted_e2e_test.py HEARTH_BINARY ZOO_DIR
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_util import stop_server  # noqa: E402

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def files_under(*roots):
    seen = set()
    for root in roots:
        for d, _, names in os.walk(root):
            for n in names:
                seen.add(os.path.join(d, n))
    return seen


def holds(path, marker):
    """True when the file (if still there and readable) contains `marker`."""
    try:
        with open(path, "rb") as f:
            return marker in f.read()
    except OSError:
        return False


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def start(hearth, repo, *extra):
    proc = subprocess.Popen([hearth, "serve", "--insecure-no-auth", "--model-repository", repo, "--http-port", "0", "--grpc-port", "0",
                             "--metrics-port", "0", "--model-control-mode", "poll", "--repository-poll-secs", "1",
                             "--strict-readiness", "false", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    port, lines = [], []

    def reader():
        for line in proc.stdout:
            lines.append(line)
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") == "listening" and e.get("protocol") == "http":
                port.append(e["port"])

    threading.Thread(target=reader, daemon=True).start()
    for _ in range(300):
        if port or proc.poll() is not None:
            break
        time.sleep(0.1)
    return proc, (port[0] if port else None), lines


def index_reasons(base):
    _, index = call(base, "POST", "/v2/repository/index", {})
    return {(e["name"], e.get("version")): (e["state"], e["reason"]) for e in index}


def wait_for(cond, seconds=8):
    end = time.time() + seconds
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


def check_signed(hearth, zoo, work, store):
    """--trusted-signers: signed plain and encrypted models load; unsigned,
    tampered-after-signing and untrusted-signer models are refused by reason."""
    repo = os.path.join(work, "signed-repo")
    trusted = os.path.join(work, "trusted")
    os.makedirs(trusted)
    for key in ("release", "stranger"):
        r = run([hearth, "keys", "create", key, "--type", "sm2", "--key-store", store])
        check(r.returncode == 0, f"sm2 key {key} created: {r.stderr.strip()}")
    r = run([hearth, "keys", "export-public", "release", "-o", os.path.join(trusted, "release.pub.pem"),
             "--key-store", store])
    check(r.returncode == 0, f"public half of 'release' exported: {r.stderr.strip()}")

    def version(model, filename="model.onnx"):
        d = os.path.join(repo, model, "1")
        os.makedirs(d)
        return os.path.join(d, filename)

    def sign(path, key="release"):
        r = run([hearth, "sign", path, "--key", key, "--key-store", store])
        check(r.returncode == 0, f"signed {os.path.relpath(path, repo)} with {key}: {r.stderr.strip()}")

    src = os.path.join(zoo, "mlp.onnx")
    for model in ("signed", "unsigned", "tampered", "stranger"):
        shutil.copy(src, version(model))
    sign(os.path.join(repo, "signed", "1", "model.onnx"))
    sign(os.path.join(repo, "tampered", "1", "model.onnx"))
    with open(os.path.join(repo, "tampered", "1", "model.onnx"), "ab") as f:
        f.write(b"\0")  # changed after signing (a trailing byte is still a valid ONNX file)
    sign(os.path.join(repo, "stranger", "1", "model.onnx"), "stranger")
    pkg = version("encrypted", "model.onnx.sm4")
    r = run([hearth, "encrypt", src, "--key", "prod", "--key-store", store, "-o", pkg])
    check(r.returncode == 0, f"encrypted package for the signed repository: {r.stderr.strip()}")
    sign(pkg)

    proc, port, lines = start(hearth, repo, "--model-key-store", store, "--trusted-signers", trusted)
    try:
        check(port is not None, "server with --trusted-signers started")
        if port is None:
            print("".join(lines[-20:]))
            return
        base = f"http://127.0.0.1:{port}"
        reasons = index_reasons(base)
        for model in ("signed", "encrypted"):
            st, why = reasons.get((model, "1"), ("", ""))
            check(st == "READY", f"{model} model with a trusted signature loads ({st} {why})")
        for model, want in (("unsigned", "not signed"), ("tampered", "digest mismatch"),
                            ("stranger", "unknown signer")):
            st, why = reasons.get((model, "1"), ("", ""))
            check(st == "UNAVAILABLE" and want in why, f"{model} model refused naming '{want}': {why}")
        x = np.load(os.path.join(zoo, "mlp.in.npy"))
        body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                            "data": x.reshape(-1).tolist()}]}
        for model in ("signed", "encrypted"):
            status, _ = call(base, "POST", f"/v2/models/{model}/infer", body)
            check(status == 200, f"signed {model} model serves ({status})")
    finally:
        stop_server(proc)


def main():
    hearth, zoo = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="hearth_enc_e2e_")
    os.environ["HEARTH_AUDIT_LOG"] = os.path.join(work, "audit.db")  # key changes are audited; not into HOME
    proc = None
    try:
        store, other = os.path.join(work, "keys"), os.path.join(work, "other-keys")
        repo = os.path.join(work, "repo")
        r = run([hearth, "keys", "create", "--id", "prod", "--key-store", store])
        check(r.returncode == 0 and oct(os.stat(store).st_mode & 0o777) == "0o600", f"key store created 0600: {r.stdout}{r.stderr}")
        run([hearth, "keys", "create", "--id", "prod", "--key-store", other])  # same id, another secret
        run([hearth, "keys", "create", "--id", "elsewhere", "--key-store", other])
        # The plaintext carries a random marker in its doc_string, so a file
        # that holds it can only come from this test (others copy the zoo MLP).
        import onnx
        marker = os.urandom(24).hex()
        unique = onnx.load(os.path.join(zoo, "mlp.onnx"))
        unique.doc_string = f"hearth-enc-e2e-marker-{marker}"
        plain_mlp = os.path.join(work, "mlp_marked.onnx")
        onnx.save_model(unique, plain_mlp)
        for name, ks, key in [("mlp", store, "prod"), ("wrongkey", other, "prod"), ("unknownkey", other, "elsewhere")]:
            os.makedirs(os.path.join(repo, name, "1"))
            r = run([hearth, "encrypt", plain_mlp, "--key", key, "--key-store", ks,
                     "-o", os.path.join(repo, name, "1", "model.onnx.sm4")])
            check(r.returncode == 0, f"encrypt {name}: {r.stderr.strip()}")
        # The MLP with its weights in an external-data file, sealed from its folder.
        ext_dir = os.path.join(work, "mlp_ext")
        os.makedirs(ext_dir)
        model = onnx.load(os.path.join(zoo, "mlp.onnx"))
        onnx.save_model(model, os.path.join(ext_dir, "model.onnx"), save_as_external_data=True,
                        all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
        check(os.path.getsize(os.path.join(ext_dir, "weights.bin")) > 1000, "MLP saved with external data")
        os.makedirs(os.path.join(repo, "mlpext", "1"))
        r = run([hearth, "encrypt", ext_dir, "--key", "prod", "--key-store", store,
                 "-o", os.path.join(repo, "mlpext", "1", "model.onnx.sm4")])
        check(r.returncode == 0, f"encrypt a model folder with external data: {r.stderr.strip()}")
        os.makedirs(os.path.join(repo, "tampered", "1"))
        with open(os.path.join(repo, "mlp", "1", "model.onnx.sm4"), "rb") as f:
            blob = bytearray(f.read())
        blob[len(blob) // 2] ^= 0x40
        with open(os.path.join(repo, "tampered", "1", "model.onnx.sm4"), "wb") as f:
            f.write(blob)
        check(run([hearth, "inspect", os.path.join(repo, "mlp", "1", "model.onnx.sm4")]).returncode != 0,
              "the package is not a readable ONNX file")

        tmp_roots = [d for d in {tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"} if os.path.isdir(d)]
        before = files_under(repo, *tmp_roots)
        proc, port, lines = start(hearth, repo, "--model-key-store", store)
        check(port is not None, "server started")
        if port is None:
            print("".join(lines))
            return 1
        base = f"http://127.0.0.1:{port}"
        x = np.load(os.path.join(zoo, "mlp.in.npy"))
        ref = np.load(os.path.join(zoo, "mlp.out.npy"))
        body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}]}
        status, out = call(base, "POST", "/v2/models/mlp/infer", body)
        ok = status == 200
        y = np.array(out["outputs"][0]["data"]).reshape(ref.shape) if ok else None
        check(ok and float(np.linalg.norm(y - ref) / np.linalg.norm(ref)) <= 1e-4,
              f"encrypted MLP serves PyTorch's outputs ({status})")
        status, out = call(base, "POST", "/v2/models/mlpext/infer", body)
        ok = status == 200
        y = np.array(out["outputs"][0]["data"]).reshape(ref.shape) if ok else None
        check(ok and float(np.linalg.norm(y - ref) / np.linalg.norm(ref)) <= 1e-4,
              f"encrypted MLP with external data serves PyTorch's outputs ({status} {out if not ok else ''})")
        # Other tests may run beside this one and create files in /tmp: what
        # must not appear is a file holding the model's plaintext.
        marker = f"hearth-enc-e2e-marker-{marker}".encode()
        new = {f for f in files_under(repo, *tmp_roots) - before if "hearth_enc_e2e_" not in f or f.startswith(repo)}
        check(not {f for f in new if f.startswith(repo)}, f"no file appeared in the repository: {sorted(new)[:5]}")
        check(not [f for f in new if holds(f, marker)],
              f"no new file under the temp folders holds plaintext: {[f for f in new if holds(f, marker)][:5]}")

        reasons = index_reasons(base)
        st, why = reasons.get(("tampered", "1"), ("", ""))
        check(st == "UNAVAILABLE" and "authentication failed" in why, f"tampered package refused: {why}")
        st, why = reasons.get(("wrongkey", "1"), ("", ""))
        check(st == "UNAVAILABLE" and "authentication failed" in why, f"package under another secret refused: {why}")
        st, why = reasons.get(("unknownkey", "1"), ("", ""))
        check(st == "UNAVAILABLE" and "elsewhere" in why, f"package under an unknown key id refused: {why}")

        # A tampered new version leaves the serving one in place (poll mode picks it up).
        os.makedirs(os.path.join(repo, "mlp", "2"))
        with open(os.path.join(repo, "mlp", "2", "model.onnx.sm4"), "wb") as f:
            f.write(blob)
        check(wait_for(lambda: index_reasons(base).get(("mlp", "2"), ("", ""))[0] == "UNAVAILABLE"),
              "poll mode saw the tampered version 2")
        status, out = call(base, "POST", "/v2/models/mlp/infer", body)
        check(status == 200 and out["model_version"] == "1", f"version 1 keeps serving: {status}")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)

        # No key source at all: the reason says how to give one.
        shutil.rmtree(os.path.join(repo, "mlp", "2"))
        env = {k: v for k, v in os.environ.items() if k not in ("HEARTH_MODEL_KEY", "HEARTH_KEY_STORE")}
        proc = subprocess.Popen([hearth, "serve", "--insecure-no-auth", "--model-repository", repo, "--http-port", "0", "--grpc-port", "0",
                                 "--metrics-port", "0", "--strict-readiness", "false"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        out_lines = []
        for line in proc.stdout:
            out_lines.append(line)
            if '"event":"listening"' in line:
                break
        states = [json.loads(l) for l in out_lines if '"event":"model_state"' in l]
        mlp = [s for s in states if s["model"] == "mlp"]
        check(mlp and mlp[0]["state"] == "UNAVAILABLE" and "--model-key-store" in mlp[0]["reason"],
              f"without a key the reason names the flags: {mlp}")
        stop_server(proc)
        proc = None
        check_signed(hearth, zoo, work, store)
    finally:
        if proc is not None:
            stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)
    print(f"encrypted_e2e: {len(FAILURES)} failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
