#!/usr/bin/python3
"""End-to-end test of `hearth serve` over the KServe v2 REST protocol.

Starts the server on a free port against a temporary model repository (the
reference MLP from the zoo plus a corrupt model folder) and talks to it with a
client written from the KServe v2 spec using only the standard library
(urllib / http.client / socket). The server is always stopped at the end.

usage: rest_e2e_test.py HEARTH_BINARY ZOO_DIR
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request

import numpy as np

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def request(base, method, path, body=None, raw=False):
    """Returns (status, parsed JSON or None). body: dict (JSON-encoded) or bytes."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, text = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    if not text:
        return status, None
    try:
        return status, json.loads(text)
    except ValueError:
        return status, {"unparsable": text[:200].decode(errors="replace")}


def infer_body(x, nested=True):
    data = x.tolist() if nested else x.reshape(-1).tolist()
    return {"id": "req-1", "inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32", "data": data}],
            "outputs": [{"name": "output"}]}


def rel_l2(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def start_server(hearth, repo):
    proc = subprocess.Popen([hearth, "serve", "--model-repository", repo, "--http-port", "0",
                             "--http-address", "127.0.0.1", "--threads", "2", "--http-max-body-mb", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    port = []
    lines = []

    def reader():
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("listening on") and not port:
                port.append(int(line.split()[2].rsplit(":", 1)[1]))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    for _ in range(600):
        if port or proc.poll() is not None:
            break
        threading.Event().wait(0.1)
    return proc, (port[0] if port else None), lines


def stop_server(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
    return proc.returncode


def run_checks(base, port, zoo):
    good = infer_body(np.load(os.path.join(zoo, "mlp.in.npy")))

    def good_after(what):
        status, body = request(base, "POST", "/v2/models/mlp/infer", good)
        check(status == 200 and body and "outputs" in body, "good request answered after " + what)

    def expect_error(what, method, path, body, codes):
        status, reply = request(base, method, path, body)
        check(status in codes and isinstance(reply, dict) and isinstance(reply.get("error"), str) and reply["error"],
              f"{what}: {status} {reply}")
        good_after(what)

    # Health and metadata.
    status, meta = request(base, "GET", "/v2")
    check(status == 200 and meta.get("name") == "hearth" and "version" in meta and meta.get("extensions") == [],
          f"server metadata {meta}")
    check(request(base, "GET", "/v2/health/live")[0] == 200, "live")
    check(request(base, "GET", "/v2/health/ready")[0] == 200, "ready")
    status, meta = request(base, "GET", "/v2/models/mlp")
    check(status == 200 and meta["name"] == "mlp" and meta["versions"] == ["3"]
          and meta["platform"] == "onnxruntime_onnx"
          and meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
          and meta["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 10]}],
          f"model metadata {meta}")
    check(request(base, "GET", "/v2/models/mlp/versions/3")[0] == 200, "versioned metadata")
    check(request(base, "GET", "/v2/models/mlp/ready")[0] == 200, "model ready")
    check(request(base, "GET", "/v2/models/mlp/versions/3/ready")[0] == 200, "versioned model ready")
    status, body = request(base, "GET", "/v2/models/corrupt/ready")
    check(status == 503 and "error" in body, f"corrupt model not ready: {status} {body}")

    # Inference against the PyTorch reference, batch 1 (nested data) and batch 4 (flat data).
    for name, nested, path in [("mlp", True, "/v2/models/mlp/infer"), ("mlp.b4", False, "/v2/models/mlp/versions/3/infer")]:
        x = np.load(os.path.join(zoo, name + ".in.npy"))
        ref = np.load(os.path.join(zoo, name + ".out.npy"))
        status, body = request(base, "POST", path, infer_body(x, nested))
        ok = status == 200 and body["model_name"] == "mlp" and body["model_version"] == "3" and body["id"] == "req-1"
        check(ok, f"infer {name}: {status}")
        if ok:
            out = body["outputs"][0]
            y = np.array(out["data"], dtype=np.float64).reshape(out["shape"])
            err = rel_l2(y, ref)
            check(out["name"] == "output" and out["datatype"] == "FP32" and list(out["shape"]) == list(ref.shape)
                  and err <= 1e-4, f"{name} output matches PyTorch (relative L2 {err:.2e})")
    x = np.load(os.path.join(zoo, "mlp.in.npy"))
    _, a = request(base, "POST", "/v2/models/mlp/infer", infer_body(x))
    _, b = request(base, "POST", "/v2/models/mlp/infer", infer_body(x * -0.5 + 0.25))
    check(a["outputs"][0]["data"] != b["outputs"][0]["data"], "output changes when the input does")

    # Bad requests: each a 4xx with an error message, then a good request.
    inp = good["inputs"][0]
    expect_error("malformed JSON", "POST", "/v2/models/mlp/infer", b"{\"inputs\": [", (400,))
    expect_error("wrong datatype", "POST", "/v2/models/mlp/infer",
                 {"inputs": [dict(inp, datatype="INT64", data=[1] * 64)]}, (400,))
    expect_error("shape/data disagreement", "POST", "/v2/models/mlp/infer",
                 {"inputs": [dict(inp, shape=[2, 64])]}, (400,))
    expect_error("unknown input", "POST", "/v2/models/mlp/infer", {"inputs": [dict(inp, name="nope")]}, (400,))
    expect_error("BYTES datatype", "POST", "/v2/models/mlp/infer",
                 {"inputs": [dict(inp, datatype="BYTES", data=["a"] * 64)]}, (400,))
    expect_error("unknown model", "POST", "/v2/models/nope/infer", good, (404,))
    expect_error("unknown version", "POST", "/v2/models/mlp/versions/9/infer", good, (404,))
    expect_error("'..' in model name", "POST", "/v2/models/../infer", good, (400, 404))
    expect_error("encoded '..' in model name", "POST", "/v2/models/..%2Fmlp/infer", good, (400, 404))
    expect_error("corrupt model infer", "POST", "/v2/models/corrupt/infer", good, (503,))
    expect_error("unknown path", "GET", "/v2/nothing", None, (404,))
    expect_error("body too large", "POST", "/v2/models/mlp/infer", b"[" * (2 << 20), (413,))

    # Malformed HTTP on a raw socket: answered or closed, and the server lives on.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        try:
            s.recv(4096)
        except OSError:
            pass
    good_after("malformed HTTP")

    # Concurrent clients, good and bad requests interleaved: every answer as expected.
    results = []

    def client(k):
        for i in range(8):
            if (i + k) % 2:
                status, body = request(base, "POST", "/v2/models/mlp/infer", good)
                results.append(status == 200 and "outputs" in body)
            else:
                status, body = request(base, "POST", "/v2/models/mlp/infer", b"{broken")
                results.append(status == 400 and "error" in body)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(len(results) == 32 and all(results), f"4 concurrent clients: {sum(results)}/32 answered as expected")

    # Keep-alive: several requests on one connection.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    statuses, sockets = [], set()
    for _ in range(3):
        conn.request("POST", "/v2/models/mlp/infer", json.dumps(good), {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        statuses.append(r.status)
        sockets.add(id(conn.sock))
    conn.close()
    check(statuses == [200] * 3 and len(sockets) == 1, f"keep-alive: three requests on one connection {statuses}")


def main():
    hearth, zoo = sys.argv[1], sys.argv[2]
    if not os.path.exists(os.path.join(zoo, "mlp.onnx")):
        print(f"FAIL {zoo}/mlp.onnx is missing: run `make zoo` first")
        return 1
    work = tempfile.mkdtemp(prefix="hearth_rest_e2e_")
    proc = None
    try:
        repo = os.path.join(work, "repo")
        os.makedirs(os.path.join(repo, "mlp", "1"))
        os.makedirs(os.path.join(repo, "mlp", "3"))
        shutil.copy(os.path.join(zoo, "mlp.onnx"), os.path.join(repo, "mlp", "3", "model.onnx"))
        with open(os.path.join(repo, "mlp", "1", "model.onnx"), "wb") as f:
            f.write(b"older version, never loaded")
        with open(os.path.join(repo, "mlp", "config.pbtxt"), "w") as f:
            f.write('name: "mlp"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n')
        os.makedirs(os.path.join(repo, "corrupt", "1"))
        with open(os.path.join(repo, "corrupt", "1", "model.onnx"), "wb") as f:
            f.write(b"\x08\x07\x12\x04junk-not-a-model")
        proc, port, lines = start_server(hearth, repo)
        check(port is not None, "server started and printed its port")
        if port is None:
            print("\n".join(lines))
            return 1
        run_checks(f"http://127.0.0.1:{port}", port, zoo)
        check(proc.poll() is None, "server still running after all requests")
    finally:
        if proc is not None:
            rc = stop_server(proc)
            check(rc == 0, f"server stopped cleanly on SIGTERM (exit {rc})")
        shutil.rmtree(work, ignore_errors=True)
    print(f"rest_e2e: {len(FAILURES)} failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
