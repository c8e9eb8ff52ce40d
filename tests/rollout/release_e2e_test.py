#!/usr/bin/python3
"""Releases in `hearth serve` under load: the targets of the release pipeline.

Builds a 16-feature, 4-class linear classifier with the `onnx` package and four
variants of it, puts them in one repository as versions of model "clf":
  1  the champion
  2  slow: the same answers after ~200 ms of extra work (a Loop)
  3  errors: fails the run on about 5% of inputs (a Gather out of range)
  4  perturbed: weights moved until its accuracy is 2 points lower
  5  good: the champion's weights in a new file
then, against one server with 64 wrk connections of varied inputs running:
  - 2, 3 and 4 are each rolled back within 2 judge intervals of taking traffic
    (2 and 3 on canary checks, 4 on shadow agreement), with no failed request;
  - kill -9 at the gate, the shadow step, canary step 1 and 2, and just after a
    rollback; each restart comes back to the routing the store holds (checked
    per routing key against `routing?key=`) and says it recovered;
  - N promote / abort cycles under load (20 here, 100 in `make release-soak`):
    no failed request, each swap's API call within 100 ms;
  - 5 is promoted through every step; webhooks arrive (one retried after a 500);
  - bad release bodies are refused naming the field, and change nothing.

usage: release_e2e_test.py HEARTH_BINARY [--cycles N]
"""
import http.server
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
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "serving"))
from e2e_util import FAILURES, check, launch_server, stop_server  # noqa: E402

FEATURES, CLASSES, POOL = 16, 4, 2000
CONFIG = f"""name: "clf"
max_batch_size: 8
input [ {{ name: "input" data_type: TYPE_FP32 dims: [ {FEATURES} ] }} ]
output [ {{ name: "output" data_type: TYPE_FP32 dims: [ {CLASSES} ] }} ]
version_policy: {{ specific: {{ versions: [ 1 ] }} }}
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
dynamic_batching {{ }}
"""


# ---- models ------------------------------------------------------------------

def graph_model(nodes, inits, name):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", FEATURES])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", CLASSES])
    g = helper.make_graph(nodes, name, [x], [y], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def linear(W, b, extra_nodes=(), extra_inits=(), logits="output"):
    nodes = [helper.make_node("MatMul", ["input", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], [logits])]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")]
    return list(nodes) + list(extra_nodes), inits + list(extra_inits)


def with_zero_term(W, b, term_nodes, term_inits, term, name):
    """The classifier plus 0 x `term` (a [N] or scalar value): same answers, the term still runs."""
    nodes, inits = linear(W, b, logits="logits")
    nodes += term_nodes + [helper.make_node("Mul", [term, "zero"], ["zt"]),
                           helper.make_node("Add", ["logits", "zt"], ["output"])]
    inits += term_inits + [numpy_helper.from_array(np.array(0, np.float32), "zero")]
    return graph_model(nodes, inits, name)


def slow_model(W, b, iterations):
    A = (np.random.default_rng(5).normal(size=(256, 256)) / 16).astype(np.float32)
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c2"]), helper.make_node("MatMul", ["v", "A"], ["m"]),
         helper.make_node("Tanh", ["m"], ["v2"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("c", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v", TensorProto.FLOAT, [1, 256])],
        [helper.make_tensor_value_info("c2", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v2", TensorProto.FLOAT, [1, 256])])
    nodes = [helper.make_node("Loop", ["T", "cond", "v0"], ["vT"], body=body),
             helper.make_node("ReduceSum", ["vT"], ["s"], keepdims=0)]
    inits = [numpy_helper.from_array(A, "A"), numpy_helper.from_array(np.array(iterations, np.int64), "T"),
             numpy_helper.from_array(np.array(True), "cond"), numpy_helper.from_array(np.ones((1, 256), np.float32), "v0")]
    return with_zero_term(W, b, nodes, inits, "s", "slow")


def failing_model(W, b):
    """Gathers from a 2-entry table at int(|x0| * 1.02): out of range when |x0| >= 1.96 (~5% of N(0,1))."""
    nodes = [helper.make_node("Slice", ["input", "s0", "s1", "ax"], ["x0"]),
             helper.make_node("Abs", ["x0"], ["a"]), helper.make_node("Mul", ["a", "scale"], ["as"]),
             helper.make_node("Cast", ["as"], ["i"], to=TensorProto.INT64),
             helper.make_node("Gather", ["table", "i"], ["g"], axis=0)]
    inits = [numpy_helper.from_array(np.array([0], np.int64), "s0"), numpy_helper.from_array(np.array([1], np.int64), "s1"),
             numpy_helper.from_array(np.array([1], np.int64), "ax"),
             numpy_helper.from_array(np.array(2.0 / 1.96, np.float32), "scale"),
             numpy_helper.from_array(np.array([1.0, 1.0], np.float32), "table")]
    return with_zero_term(W, b, nodes, inits, "g", "errors")


def make_data():
    rng = np.random.default_rng(1)
    W = rng.normal(size=(FEATURES, CLASSES)).astype(np.float32)
    b = rng.normal(size=CLASSES).astype(np.float32) * 0.1
    X = rng.normal(size=(POOL, FEATURES)).astype(np.float32)
    labels = np.argmax(X @ W + b + rng.normal(size=(POOL, CLASSES)) * 1.2, axis=1)
    acc = float(np.mean(np.argmax(X @ W + b, axis=1) == labels))
    # Perturbed weights with accuracy 2 points lower: scale a fixed random direction.
    R = rng.normal(size=W.shape).astype(np.float32)
    lo, hi = 0.0, 5.0
    for _ in range(40):
        mid = (lo + hi) / 2
        drop = acc - float(np.mean(np.argmax(X @ (W + mid * R) + b, axis=1) == labels))
        lo, hi = (mid, hi) if drop < 0.02 else (lo, mid)
    Wp = (W + hi * R).astype(np.float32)
    acc_p = float(np.mean(np.argmax(X @ Wp + b, axis=1) == labels))
    return W, b, Wp, X, labels, acc, acc_p


def build_repository(root, W, b, Wp, slow_iterations):
    models = {1: graph_model(*linear(W, b), "champion"), 2: slow_model(W, b, slow_iterations),
              3: failing_model(W, b), 4: graph_model(*linear(Wp, b), "perturbed"), 5: graph_model(*linear(W, b), "good")}
    for version, data in models.items():
        os.makedirs(os.path.join(root, "clf", str(version)))
        with open(os.path.join(root, "clf", str(version), "model.onnx"), "wb") as f:
            f.write(data)
    with open(os.path.join(root, "clf", "config.pbtxt"), "w") as f:
        f.write(CONFIG)


# ---- talking to the server -----------------------------------------------------

class Server:
    def __init__(self, hearth, repo, store):
        self.args = [hearth, "serve", "--insecure-no-auth", "--model-repository", repo, "--http-port", "0",
                     "--grpc-port", "0", "--metrics-port", "0", "--threads", "1", "--release-store", store]
        self.proc = None
        self.port = None
        self.metrics_port = None

    def start(self):
        self.proc, ports, self.lines = launch_server(self.args, ("http", "metrics"), timeout=120)
        self.port, self.metrics_port = ports.get("http"), ports.get("metrics")
        return self.port is not None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def call(self, method, path, body=None, timeout=60):
        data = (body if isinstance(body, str) else json.dumps(body)).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            text = e.read().decode()
            try:
                return e.code, json.loads(text)
            except ValueError:
                return e.code, {"error": text}

    def status(self):
        code, doc = self.call("GET", "/v2/models/clf/releases/current")
        return doc if code == 200 else {}

    def infer(self, x, key=None, version=None):
        body = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": [float(v) for v in x]}]}
        if key is not None:
            body["parameters"] = {"routing_key": key}
        path = f"/v2/models/clf/versions/{version}/infer" if version else "/v2/models/clf/infer"
        return self.call("POST", path, body)

    def wait(self, pred, seconds, what):
        deadline = time.time() + seconds
        s = {}
        while time.time() < deadline:
            s = self.status()
            if pred(s):
                return s
            time.sleep(0.1)
        check(False, f"{what} (last status: {json.dumps(s)[:600]})")
        return s


class Wrk:
    """64 connections of varied inputs against unnamed-version inference, in the background."""

    def __init__(self, port, bodies, seconds, connections=64):
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "20s", "-s",
               os.path.join(HERE, "bodies.lua"), f"http://127.0.0.1:{port}/v2/models/clf/infer"]
        self.proc = subprocess.Popen(cmd, env=dict(os.environ, BODIES_FILE=bodies), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)

    def stop(self):
        """Ends the run early (wrk prints its summary on SIGINT)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def finish(self, what):
        out = self.proc.communicate()[0]
        s = {}
        for line in out.splitlines():
            if line.startswith("WRK_JSON "):
                s = json.loads(line[len("WRK_JSON "):])
        check(s.get("requests", 0) > 0 and s.get("non200", 1) == 0 and s.get("socket_errors", 1) == 0,
              f"{what}: no failed request under load ({s})")
        return s


def decision_time(status, kind):
    for d in status.get("decisions", []):
        if d["kind"] == kind:
            return d["time_us"] / 1e6
    return None


def spec(candidate, **over):
    s = {"candidate": candidate, "champion": over.pop("champion", 1),
         "gate": {"latency_ratio": 0, "latency_runs": 5, "min_free_memory_mb": 0},
         "canary": {"steps": [20, 50, 100], "pause": "30s", "max_in_flight": 4},
         "judge": {"interval": "2s", "min_samples": 10, "failures_to_rollback": 1}}
    for key, value in over.items():
        s[key] = {**s.get(key, {}), **value} if isinstance(value, dict) else value
    return s


# ---- the checks ------------------------------------------------------------------

def send_feedback(srv, X, labels, results):
    """Requests with ids and, for each answer, its true label (the accuracy check's input)."""
    ok = bad = 0
    for i in range(len(X)):
        body = {"id": f"fb-{i}", "inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32",
                                              "data": [float(v) for v in X[i]]}]}
        code, _ = srv.call("POST", "/v2/models/clf/infer", body)
        if code != 200:
            bad += 1
            continue
        code, doc = srv.call("POST", "/v2/models/clf/feedback", {"id": f"fb-{i}", "label": int(labels[i])})
        ok += code == 200
        if code != 200 and "no release running" in doc.get("error", ""):
            break  # the release ended
    results.update(ok=ok, bad=bad)


def check_bad_candidates(srv, bodies, X, labels):
    cases = [
        ("slow (+200 ms)", 2, {"judge": {"checks": {"latency_p99": {"max_ratio": 2}, "latency_p50": {"max_ratio": 2}}}}),
        ("errors (5%)", 3, {}),
        ("perturbed (-2 points)", 4, {"shadow": {"share": 0.5, "duration": "30s"},
                                      "judge": {"checks": {"agreement": {"min": 0.99}}}}),
    ]
    for what, version, over in cases:
        load = Wrk(srv.port, bodies, 14)
        time.sleep(0.5)
        code, doc = srv.call("POST", "/v2/models/clf/releases", spec(version, **over))
        check(code == 200, f"{what}: the release starts ({code} {str(doc)[:200]})")
        feedback = {}
        if version == 4:
            threading.Thread(target=send_feedback, args=(srv, X[:400], labels[:400], feedback), daemon=True).start()
        s = srv.wait(lambda st: st.get("phase") in ("rolled_back", "promoted", "aborted", "gate_failed"), 40,
                     f"{what}: the release ends")
        traffic, back = decision_time(s, "gate"), decision_time(s, "rolled_back")
        took = (back - traffic) if traffic and back else None
        check(s.get("phase") == "rolled_back" and took is not None and took <= 2 * 2.0 + 0.5,
              f"{what}: rolled back {took if took is None else round(took, 2)} s after taking traffic "
              f"(2 judge intervals: 4 s) because: {s.get('reason', '')[:200]}")
        load.finish(what)
        code, doc = srv.infer(np.zeros(FEATURES))
        check(code == 200 and doc.get("model_version") == "1", f"{what}: unnamed requests are back on the champion")
        if version == 4:
            pairs = max([d["detail"].get("candidate_window", {}).get("pairs", 0) for d in s.get("decisions", [])
                         if d["kind"] == "check"] or [0])
            check(feedback.get("ok", 0) > 0 and feedback.get("bad", 1) == 0 and pairs > 0,
                  f"{what}: labelled feedback is scored against both answers ({feedback}, {pairs} pairs in a check)")
    code, doc = srv.call("POST", "/v2/models/clf/feedback", {"id": "fb-1", "label": 1})
    check(code == 400 and "no release running" in doc.get("error", ""), f"feedback without a release is refused ({doc})")


def check_keys_follow_the_store(srv, what, keys=150):
    """Every routing key is served by the version `routing?key=` names (the persisted routing)."""
    rng = np.random.default_rng(3)
    mismatches, versions = 0, {}
    for k in range(keys):
        key = f"tenant-{k}"
        code, doc = srv.infer(rng.normal(size=FEATURES), key=key)
        _, which = srv.call("GET", f"/v2/models/clf/routing?key={key}")
        served = doc.get("model_version")
        versions[served] = versions.get(served, 0) + 1
        if code != 200 or str(which.get("version")) != served:
            mismatches += 1
    check(mismatches == 0, f"{what}: {keys} routing keys served as the stored routing says ({versions})")
    return versions


def kill_and_restart(srv, what):
    srv.kill9()
    ok = srv.start()
    check(ok, f"{what}: the server restarts after kill -9")
    s = srv.status()
    recovered = [d for d in s.get("decisions", []) if d["kind"] == "recovered"]
    return s, recovered


def end_release(srv):
    srv.call("POST", "/v2/models/clf/releases/current/abort")


def check_kill_9(srv, rng):
    # At the gate: it runs again.
    srv.call("POST", "/v2/models/clf/releases", spec(5, gate={"latency_ratio": 1000, "latency_runs": 3000},
                                                    canary={"steps": [10, 50], "pause": "1h"}))
    s, rec = kill_and_restart(srv, "gate")
    check(bool(rec) and rec[-1]["detail"]["phase"] == "gate", f"gate: recovered at the gate ({json.dumps(rec)[:300]})")
    s = srv.wait(lambda st: st.get("phase") == "canary", 60, "gate: the gate runs again and passes")
    end_release(srv)

    # In the shadow step: traffic stays on the champion, shadows go on.
    srv.call("POST", "/v2/models/clf/releases", spec(5, shadow={"share": 0.5, "duration": "1h"}))
    srv.wait(lambda st: st.get("phase") == "shadow", 60, "shadow: reaches the shadow step")
    s, rec = kill_and_restart(srv, "shadow")
    check(s.get("phase") == "shadow" and bool(rec), f"shadow: still shadowing after the restart ({s.get('phase')})")
    served = {srv.infer(rng.normal(size=FEATURES))[1].get("model_version") for _ in range(50)}
    check(served == {"1"}, f"shadow: unnamed requests only on the champion ({served})")
    end_release(srv)

    # Canary step 1 (10%) with a long pause, then step 2 (50%) of a short one.
    srv.call("POST", "/v2/models/clf/releases", spec(5, canary={"steps": [10, 50], "pause": "1h"}))
    srv.wait(lambda st: st.get("phase") == "canary", 60, "canary step 1: reached")
    s, rec = kill_and_restart(srv, "canary step 1")
    check(s.get("phase") == "canary" and s.get("step") == 0 and bool(rec), f"canary step 1: same step ({s.get('step')})")
    v = check_keys_follow_the_store(srv, "canary step 1")
    check(0 < v.get("5", 0) < 40, f"canary step 1: about 10% of keys on the candidate ({v})")
    end_release(srv)

    srv.call("POST", "/v2/models/clf/releases",
             spec(5, canary={"steps": [10, 50, 90], "pause": "3s"}, judge={"interval": "500ms", "min_samples": 5}))
    srv.wait(lambda st: st.get("phase") == "canary", 60, "canary step 2: canary reached")
    deadline = time.time() + 30
    while time.time() < deadline and srv.status().get("step", 0) < 1:
        for _ in range(20):
            srv.infer(rng.normal(size=FEATURES))
    s, rec = kill_and_restart(srv, "canary step 2")
    check(s.get("phase") == "canary" and s.get("step") == 1 and s.get("weights", {}).get("5") == 50.0 and bool(rec),
          f"canary step 2: 50% after the restart ({s.get('phase')} step {s.get('step')} {s.get('weights')})")
    v = check_keys_follow_the_store(srv, "canary step 2")
    check(v.get("5", 0) > 40 and v.get("1", 0) > 40, f"canary step 2: about half of the keys on each ({v})")
    end_release(srv)


def check_kill_after_rollback(srv, bodies):
    load = Wrk(srv.port, bodies, 8)
    srv.call("POST", "/v2/models/clf/releases", spec(3, judge={"interval": "1s"}))
    srv.wait(lambda st: st.get("phase") == "rolled_back", 30, "mid-rollback: the failing candidate is rolled back")
    srv.kill9()  # the decision is stored; unloading may be half done
    load.proc.wait()
    check(srv.start(), "mid-rollback: restarts")
    code, doc = srv.call("GET", "/v2/models/clf/releases?limit=1")
    last = doc.get("releases", [{}])[0] if code == 200 else {}
    check(last.get("phase") == "rolled_back" and doc.get("production") == 1 and 3 in doc.get("excluded", []),
          f"mid-rollback: rolled back, production 1, version 3 kept out ({last.get('phase')}, {doc.get('production')})")
    code, index = srv.call("POST", "/v2/repository/index", {"ready": True})
    ready = {e["version"] for e in index if e["name"] == "clf"} if code == 200 else set()
    check("3" not in ready and "1" in ready, f"mid-rollback: version 3 not loaded after the restart ({ready})")


def check_cycles(srv, bodies, cycles):
    load = Wrk(srv.port, bodies, 600)
    times, production = [], 1
    for i in range(cycles):
        candidate = 5 if production == 1 else 1
        code, doc = srv.call("POST", "/v2/models/clf/releases",
                             spec(candidate, champion=production, gate={"enabled": False},
                                  canary={"steps": [50], "pause": "1h"}, judge={"interval": "1h"}))
        if code != 200:
            check(False, f"cycle {i}: start ({code} {doc})")
            break
        srv.wait(lambda st: st.get("phase") == "canary", 30, f"cycle {i}: canary")
        action = "promote" if i % 2 == 0 else "abort"
        t0 = time.time()
        code, doc = srv.call("POST", f"/v2/models/clf/releases/current/{action}")
        times.append(time.time() - t0)
        if code != 200:
            check(False, f"cycle {i}: {action} ({code} {doc})")
        if action == "promote":
            production = candidate
    load.stop()
    s = load.finish(f"{cycles} promote/abort cycles")
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))] if times else 1
    check(p95 <= 0.1, f"{cycles} cycles: promote/abort call p95 {p95 * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms "
                      f"(within 100 ms)")
    code, _ = srv.call("POST", "/v2/models/clf/production", {"version": 1})
    return s


class Hooks(http.server.BaseHTTPRequestHandler):
    events, calls = [], [0]

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Hooks.calls[0] += 1
        code = 500 if Hooks.calls[0] == 1 else 200  # the first delivery fails: retried
        if code == 200:
            Hooks.events.append(body["event"])
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args):
        pass


def check_good_candidate(srv, bodies):
    hooks = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    load = Wrk(srv.port, bodies, 20)
    code, doc = srv.call("POST", "/v2/models/clf/releases",
                         spec(5, canary={"steps": [20, 50, 100], "pause": "1s"},
                              judge={"interval": "1s", "checks": {"latency_p99": {"max_ratio": 3}}},
                              webhooks=[{"url": f"http://127.0.0.1:{hooks.server_address[1]}/hook"}]))
    check(code == 200, f"good: starts ({code} {str(doc)[:200]})")
    s = srv.wait(lambda st: st.get("phase") in ("promoted", "rolled_back"), 40, "good: ends")
    steps = [d for d in s.get("decisions", []) if d["kind"] == "step"]
    check(s.get("phase") == "promoted" and len(steps) == 2,
          f"good: promoted through every step ({s.get('phase')}, {len(steps)} steps, {s.get('reason')})")
    load.finish("good")
    code, doc = srv.infer(np.zeros(FEATURES))
    check(doc.get("model_version") == "5", "good: unnamed requests go to the promoted version")
    deadline = time.time() + 10
    while time.time() < deadline and "promoted" not in Hooks.events:
        time.sleep(0.1)
    check({"started", "gate", "step", "promoted"} <= set(Hooks.events),
          f"webhooks arrive, the first after a retry ({Hooks.events}, {Hooks.calls[0]} calls)")
    hooks.shutdown()
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.metrics_port}/metrics", timeout=10) as r:
        metrics = r.read().decode()
    check('hearth_release_weight{model="clf",version="5"} 100' in metrics and "hearth_release_checks_total" in metrics,
          "metrics: weights and checks per version")


def check_cli(hearth, srv, tmp):
    """`hearth release` against the server: JSON out, file mistakes named with the file and line."""
    server = ["--server", f"http://127.0.0.1:{srv.port}"]
    r = subprocess.run([hearth, "release", "history", "clf", "--limit", "2"] + server, capture_output=True, text=True)
    doc = json.loads(r.stdout) if r.returncode == 0 else {}
    check(r.returncode == 0 and doc.get("production") == 5 and len(doc.get("releases", [])) == 2,
          f"hearth release history: the last 2 releases, production 5 (rc {r.returncode} {r.stderr[-200:]})")
    r = subprocess.run([hearth, "release", "which", "clf", "--key", "tenant-1"] + server, capture_output=True, text=True)
    check(r.returncode == 0 and json.loads(r.stdout).get("version") == 5, f"hearth release which (rc {r.returncode})")
    bad = os.path.join(tmp, "bad.yaml")
    with open(bad, "w") as f:
        f.write("model: clf\ncandidate: two\n")
    r = subprocess.run([hearth, "release", "start", bad] + server, capture_output=True, text=True)
    check(r.returncode == 1 and f"{bad}:2: candidate: 'two' is not a whole number" in r.stderr,
          f"hearth release start names the file and line of a mistake ({r.stderr.strip()[-200:]})")
    r = subprocess.run([hearth, "release", "abort", "clf"] + server, capture_output=True, text=True)
    check(r.returncode == 1 and "404" in r.stderr and "no running release" in r.stderr,
          f"hearth release abort without a release: the server's 404 and why ({r.stderr.strip()[-200:]})")


def check_refusals(srv):
    cases = [({"candidate": 5, "canary": {"steps": [150]}}, "canary.steps[0]: 150 is over 100"),
             ({"candidate": 5, "judge": {"intervall": "1s"}}, "judge.intervall: unknown field"),
             ({"candidate": 9}, "has no version 9"),
             ({"candidate": 5, "model": "other"}, "not the model of the URL")]
    for body, words in cases:
        code, doc = srv.call("POST", "/v2/models/clf/releases", body)
        check(code == 400 and words in doc.get("error", ""), f"refused: {words} ({code} {doc.get('error', '')[:150]})")
    srv.call("POST", "/v2/models/clf/releases", spec(5, canary={"steps": [10], "pause": "1h"}))
    code, doc = srv.call("POST", "/v2/models/clf/releases", spec(5))
    check(code == 400 and "running" in doc.get("error", ""), f"refused: a second release of the model ({doc})")
    end_release(srv)
    code, doc = srv.infer(np.zeros(FEATURES))
    check(doc.get("model_version") == "1", "refusals leave the routing on the champion")


def main():
    hearth = sys.argv[1]
    cycles = int(sys.argv[sys.argv.index("--cycles") + 1]) if "--cycles" in sys.argv else 20
    tmp = tempfile.mkdtemp(prefix="hearth-release-")
    srv = None
    try:
        W, b, Wp, X, labels, acc, acc_p = make_data()
        print(f"champion accuracy {acc:.3f}, perturbed {acc_p:.3f}", flush=True)
        repo = os.path.join(tmp, "repo")
        build_repository(repo, W, b, Wp, 25000)
        bodies = os.path.join(tmp, "bodies.txt")
        with open(bodies, "w") as f:
            for x in X:
                f.write(json.dumps({"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32",
                                                "data": [round(float(v), 5) for v in x]}]}) + "\n")
        srv = Server(hearth, repo, os.path.join(tmp, "releases.db"))
        if not srv.start():
            check(False, "the server starts: " + "\n".join(srv.lines[-20:]))
            return 1
        t = []
        for version in ("1", "2"):
            out = subprocess.run([hearth, "bench", os.path.join(repo, "clf", version, "model.onnx"), "-t", "1", "-n", "3",
                                  "--warmup", "1", "--min-seconds", "0", "--json"], capture_output=True, text=True).stdout
            t.append(json.loads(out)["median_ms"] if out.strip().startswith("{") else 0)
        check(t[1] - t[0] > 150, f"the slow variant is slower by {t[1] - t[0]:.0f} ms (needs > 150)")
        rng = np.random.default_rng(9)
        check_refusals(srv)
        check_bad_candidates(srv, bodies, X, labels)
        check_kill_9(srv, rng)
        check_kill_after_rollback(srv, bodies)
        check_cycles(srv, bodies, cycles)
        check_good_candidate(srv, bodies)
        check_cli(hearth, srv, tmp)
    finally:
        if srv and srv.proc:
            stop_server(srv.proc)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(FAILURES)} failed" if FAILURES else "all passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
