#!/usr/bin/python3
"""End-to-end test of `hearth serve` over the KServe v2 REST protocol.

Starts the server on a free port against a temporary model repository (the
reference MLP from the zoo plus a corrupt model folder) and talks to it with a
client written from the KServe v2 spec using only the standard library
(urllib / http.client / socket). The server is always stopped at the end.

usage: rest_e2e_test.py HEARTH_BINARY ZOO_DIR
"""
import http.client
import gzip
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
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_util import stop_server  # noqa: E402

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


def start_server(hearth, repo, *extra):
    """Starts `hearth serve` on free ports; returns (proc, {protocol: port}, output lines).
    The ports come from the server's JSON log lines ({"event": "listening", ...})."""
    proc = subprocess.Popen([hearth, "serve", "--insecure-no-auth", "--model-repository", repo, "--http-port", "0", "--grpc-port", "0",
                             "--metrics-port", "0", "--http-address", "127.0.0.1", "--threads", "2",
                             "--http-max-body-mb", "1", "--http-header-timeout-secs", "2", "--access-log", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ports = {}
    lines = []

    def reader():
        for line in proc.stdout:
            lines.append(line.rstrip())
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "listening":
                ports[event["protocol"]] = event["port"]

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    for _ in range(600):
        if len(ports) == 3 or proc.poll() is not None:
            break
        threading.Event().wait(0.1)
    return proc, ports, lines


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
    check(status == 200 and meta.get("name") == "hearth" and "version" in meta
          and "binary_tensor_data" in meta.get("extensions", []), f"server metadata {meta}")
    check(request(base, "GET", "/v2/health/live")[0] == 200, "live")
    # Strict readiness (Triton's default): not ready while the corrupt model is not.
    check(request(base, "GET", "/v2/health/ready")[0] == 400, "not ready while a model failed to load")
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
    check(status == 400 and "error" in body, f"corrupt model not ready: {status} {body}")

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
    expect_error("'..' as a version", "POST", "/v2/models/mlp/versions/..%2F..%2F3/infer", good, (400, 404))
    expect_error("version with a leading zero", "POST", "/v2/models/mlp/versions/03/infer", good, (400, 404))
    expect_error("negative version", "POST", "/v2/models/mlp/versions/-3/infer", good, (400, 404))
    expect_error("corrupt model infer", "POST", "/v2/models/corrupt/infer", good, (503,))
    expect_error("unknown path", "GET", "/v2/nothing", None, (404,))
    # Triton's classification extension is refused by name, never ignored (issue 22).
    asked = dict(good, outputs=[{"name": "output", "parameters": {"classification": 3}}])
    status, reply = request(base, "POST", "/v2/models/mlp/infer", asked)
    check(status == 400 and "classification extension" in str(reply.get("error")),
          f"classification: refused naming the extension ({status} {reply})")
    # Extensions Hearth does not serve say which (issue 22).
    for path, ext in (("/v2/systemsharedmemory/status", "system shared memory"),
                      ("/v2/cudasharedmemory/region/r/register", "CUDA shared memory"),
                      ("/v2/trace/setting", "trace"), ("/v2/logging", "logging")):
        status, reply = request(base, "POST" if path.endswith("register") else "GET", path, None)
        check(status == 404 and f"the {ext} extension is not supported" in str(reply.get("error")),
              f"{path}: 404 naming the extension ({status} {reply})")
    expect_error("body too large", "POST", "/v2/models/mlp/infer", b"[" * (2 << 20), (413,))

    # Compression (Triton's HTTP API, issue 22): gzip and deflate request bodies,
    # compressed replies on Accept-Encoding, and what must be refused.
    def compressed(body, encoding, accept=None, raw=None):
        data = raw if raw is not None else json.dumps(body).encode()
        if raw is None:
            data = gzip.compress(data) if encoding == "gzip" else zlib.compress(data) if encoding == "deflate" else data
        req = urllib.request.Request(base + "/v2/models/mlp/infer", data=data, method="POST")
        req.add_header("Content-Type", "application/json")
        req.add_header("Content-Encoding", encoding)
        if accept:
            req.add_header("Accept-Encoding", accept)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers.get("Content-Encoding"), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Encoding"), e.read()

    ref = np.load(os.path.join(zoo, "mlp.out.npy"))
    for encoding in ("gzip", "deflate", "identity"):
        status, _, text = compressed(good, encoding)
        ok = status == 200 and rel_l2(np.array(json.loads(text)["outputs"][0]["data"]).reshape(ref.shape), ref) <= 1e-4
        check(ok, f"Content-Encoding {encoding}: answered like the plain request ({status})")
    for accept, want in (("gzip", "gzip"), ("br;q=1, deflate", "deflate"), ("gzip;q=0, identity", None)):
        status, enc, text = compressed(good, "gzip", accept=accept)
        if enc == "gzip":
            text = gzip.decompress(text)
        elif enc == "deflate":
            text = zlib.decompress(text)
        check(status == 200 and enc == want and "outputs" in json.loads(text),
              f"Accept-Encoding {accept!r}: reply encoded {enc!r}, want {want!r} ({status})")
    status, _, text = compressed(good, "br")
    check(status == 415 and b"'br' is not supported" in text, f"unknown Content-Encoding: 415 ({status} {text[:120]})")
    status, _, text = compressed(None, "gzip", raw=gzip.compress(json.dumps(good).encode())[:-20])
    check(status == 400 and b"does not inflate" in text, f"truncated gzip: 400 ({status} {text[:120]})")
    bomb = gzip.compress(b"[" + b" " * (3 << 20) + b"]")  # 3 MiB of spaces in a few KiB
    status, _, text = compressed(None, "gzip", raw=bomb)
    check(status == 413 and b"inflates past the limit" in text, f"a body inflating past the limit: 413 ({status} {text[:120]})")
    good_after("compressed requests")

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


def is_json(line):
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


def raw_request(port, method, path, body=b"", headers=None):
    """(status, headers dict lower-cased, body bytes) over http.client."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body, headers or {})
    r = conn.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    return r.status, hdrs, data


def run_extension_checks(base, port, zoo):
    """Triton's extensions: binary tensors, config, statistics, repository index, request ids, limits."""
    x = np.load(os.path.join(zoo, "mlp.b4.in.npy")).astype(np.float32)
    ref = np.load(os.path.join(zoo, "mlp.b4.out.npy"))
    raw = x.tobytes()
    header = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}).encode()
    status, hdrs, body = raw_request(port, "POST", "/v2/models/mlp/infer", header + raw,
                                     {"Inference-Header-Content-Length": str(len(header)),
                                      "Content-Type": "application/octet-stream", "X-Request-Id": "trace-42"})
    ok = status == 200 and "inference-header-content-length" in hdrs
    check(ok and hdrs.get("x-request-id") == "trace-42", f"binary infer answered with binary output ({status}, {hdrs})")
    if ok:
        n = int(hdrs["inference-header-content-length"])
        meta = json.loads(body[:n])
        out = meta["outputs"][0]
        y = np.frombuffer(body[n:], dtype=np.float32).reshape(out["shape"])
        size = out.get("parameters", {}).get("binary_data_size")
        check(size == len(body) - n and rel_l2(y, ref) <= 1e-4,
              f"binary output matches PyTorch (size {size}, rel L2 {rel_l2(y, ref):.2e})")
    status, _, body = raw_request(port, "POST", "/v2/models/mlp/infer", header + raw[:-4],
                                  {"Inference-Header-Content-Length": str(len(header))})
    check(status == 400 and b"binary" in body, f"binary size disagreeing with the data: {status} {body[:120]}")
    status, _, body = raw_request(port, "POST", "/v2/models/mlp/infer", header + raw,
                                  {"Inference-Header-Content-Length": str(len(header) + len(raw) + 10)})
    check(status == 400, f"Inference-Header-Content-Length beyond the body: {status} {body[:120]}")

    status, cfg = request(base, "GET", "/v2/models/mlp/config")
    check(status == 200 and cfg.get("name") == "mlp" and cfg.get("max_batch_size") == 8
          and cfg["input"][0]["dims"] == [64] and cfg["input"][0]["data_type"] == "TYPE_FP32", f"model config {cfg}")
    status, stats = request(base, "GET", "/v2/models/mlp/stats")
    ok = status == 200 and stats["model_stats"][0]["name"] == "mlp"
    check(ok and stats["model_stats"][0]["inference_count"] > 0
          and stats["model_stats"][0]["inference_stats"]["success"]["count"] > 0, f"model statistics {stats}")
    status, index = request(base, "POST", "/v2/repository/index", {})
    states = {(e["name"], e.get("version")): e["state"] for e in index} if status == 200 else {}
    check(states.get(("mlp", "3")) == "READY" and states.get(("corrupt", "1")) == "UNAVAILABLE"
          and all(e["reason"] for e in index if e["state"] == "UNAVAILABLE"), f"repository index {index}")
    status, body = request(base, "POST", "/v2/repository/models/mlp/unload", {})
    check(status == 400 and "explicit" in body.get("error", ""), f"unload refused outside explicit mode: {status} {body}")

    status, hdrs, _ = raw_request(port, "GET", "/v2/health/live")
    check(len(hdrs.get("x-request-id", "")) == 16, f"a request id is made up when the client sends none {hdrs}")
    status, _, _ = raw_request(port, "GET", "/v2/health/live", b"", {"X-Big": "a" * (40 << 10)})
    check(status == 431, f"header over the limit: {status}")
    # A slow client that never finishes its header is closed (--http-header-timeout-secs 2).
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
        s.settimeout(8)
        try:
            closed = s.recv(4096) == b""
        except socket.timeout:  # still open after 8 s (an OSError too: caught first)
            closed = False
        except OSError:  # reset by the server
            closed = True
    check(closed, "slow client that never finishes its header is disconnected")
    status, _ = request(base, "GET", "/v2/health/live")
    check(status == 200, "server answers after the slow client")


def run_cancel_check(base, port, zoo):
    """A client that disconnects while its request is queued cancels it."""
    body = json.dumps(infer_body(np.load(os.path.join(zoo, "mlp.in.npy")))).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /v2/models/slow/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        threading.Event().wait(0.3)
    threading.Event().wait(3.5)  # the batch delay passes; the worker finds the request cancelled
    status, stats = request(base, "GET", "/v2/models/slow/stats")
    s0 = stats["model_stats"][0] if status == 200 else {}
    check(s0.get("inference_count") == 0 and s0.get("inference_stats", {}).get("fail", {}).get("count") == 1,
          f"a disconnected client's queued request is dropped, not run: {s0}")


def run_metrics_checks(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/metrics")
    r = conn.getresponse()
    text = r.read().decode()
    conn.close()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    ok = values.get('hearth_inference_request_success_total{model="mlp",version="3"}', 0) > 0
    check(r.status == 200 and ok, "metrics: per-model success counter")
    check(values.get('hearth_inference_request_failure_total{model="mlp",version="3",reason="OTHER"}', 0) > 0,
          "metrics: failures counted with reason OTHER")
    check(values.get("hearth_process_resident_memory_bytes", 0) > 0, "metrics: process memory")
    check(values.get('hearth_inference_request_failure_total{model="slow",version="1",reason="CANCELED"}') == 1,
          "metrics: the disconnected client's request counted as CANCELED")
    check('hearth_inference_request_duration_us_bucket{model="mlp",version="3",le="+Inf"}' in values,
          "metrics: request duration histogram")


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
        # "slow": the MLP behind a 3 s batching delay, so a request sits in the queue.
        os.makedirs(os.path.join(repo, "slow", "1"))
        shutil.copy(os.path.join(zoo, "mlp.onnx"), os.path.join(repo, "slow", "1", "model.onnx"))
        with open(os.path.join(repo, "slow", "config.pbtxt"), "w") as f:
            f.write('max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 3000000 }\n')
        os.makedirs(os.path.join(repo, "corrupt", "1"))
        with open(os.path.join(repo, "corrupt", "1", "model.onnx"), "wb") as f:
            f.write(b"\x08\x07\x12\x04junk-not-a-model")
        proc, ports, lines = start_server(hearth, repo)
        check(len(ports) == 3, f"server started and logged its ports {ports}")
        if "http" not in ports:
            print("\n".join(lines))
            return 1
        port = ports["http"]
        run_checks(f"http://127.0.0.1:{port}", port, zoo)
        run_extension_checks(f"http://127.0.0.1:{port}", port, zoo)
        run_cancel_check(f"http://127.0.0.1:{port}", port, zoo)
        if "metrics" in ports:
            run_metrics_checks(ports["metrics"])
        check(proc.poll() is None, "server still running after all requests")
    finally:
        if proc is not None:
            rc = stop_server(proc)
            check(rc == 0, f"server stopped cleanly on SIGTERM (exit {rc})")
            bad = [l for l in lines if l.startswith("{") and not is_json(l)]
            check(not bad and any('"event":"http_request"' in l for l in lines),
                  f"every log line is JSON, with access-log lines ({len(lines)} lines, bad: {bad[:2]})")
        shutil.rmtree(work, ignore_errors=True)
    print(f"rest_e2e: {len(FAILURES)} failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
