#!/usr/bin/python3
"""Load time of an encrypted model vs the plain one (issue 5: <= 1.5x).

Plain:     `hearth bench MODEL --warmup 0 -n 1 --json`  -> load_ms (read + import + prepare).
Encrypted: `hearth decrypt PKG --check --json`          -> read_ms + open_ms (authenticate with
           HMAC-SM3, decrypt SM4-CTR, check the SM3 digest, all in memory) + load_ms (the same
           import + prepare from the decrypted bytes).
Each is run --runs times (fresh processes, file in the page cache); medians are reported.

usage: bench/encrypted_load.py HEARTH_BINARY MODEL.onnx [--runs 5] [--threads 0]
"""
import argparse
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile


def run_json(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hearth")
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="crypto and engine threads (0 = all cores)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        key_file = os.path.join(tmp, "bench.key")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, ("bench %s 0\n" % base64.b64encode(os.urandom(32)).decode()).encode())
        os.close(fd)
        pkg = os.path.join(tmp, "model.onnx.sm4")
        env = dict(os.environ)
        threads = ["--threads", str(a.threads)]
        subprocess.run([a.hearth, "encrypt", a.model, "--key", "bench", "--key-file", key_file, "-o", pkg] + threads,
                       env=env, check=True, capture_output=True)
        plain, enc, opened = [], [], []
        for _ in range(a.runs):
            p = run_json([a.hearth, "bench", a.model, "--warmup", "0", "-n", "1", "--min-seconds", "0", "--json",
                          "-t", str(a.threads)], env)
            e = run_json([a.hearth, "decrypt", pkg, "--key-file", key_file, "--check", "--json"] + threads, env)
            plain.append(p["load_ms"])
            enc.append(e["total_ms"])
            opened.append(e["read_ms"] + e["open_ms"])
        size_mb = os.path.getsize(a.model) / 1e6
    p, e, o = statistics.median(plain), statistics.median(enc), statistics.median(opened)
    print(json.dumps({"model": os.path.basename(a.model), "size_mb": round(size_mb, 1), "runs": a.runs,
                      "cores": os.cpu_count(), "plain_load_ms": round(p, 1), "encrypted_load_ms": round(e, 1),
                      "read_and_open_ms": round(o, 1), "open_mb_per_s": round(size_mb / (o / 1000), 1),
                      "ratio": round(e / p, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
