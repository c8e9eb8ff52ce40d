#!/usr/bin/python3
"""What a shadow costs the champion's clients: p50/p99 and QPS of 64 wrk
connections on the release tests' classifier, with no release, and with a
release in its shadow step copying `--share` of the requests to a candidate.
Rounds alternate A B B A so that the host's slow stretches fall on both; prints
medians and the ratio. The target (issue 19): the shadow adds at most 5% to the
champion's p99 at a 50% share.

  /usr/bin/python3 bench/release_shadow.py build/hearth [--share 0.5] [--seconds 5] [--rounds 3]
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "rollout"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "serving"))
import release_e2e_test as rt  # noqa: E402  the models, the server and wrk drivers of the tests
from e2e_util import stop_server  # noqa: E402


def measure(srv, bodies, seconds, connections):
    load = rt.Wrk(srv.port, bodies, seconds, connections)
    out = load.proc.communicate()[0]
    for line in out.splitlines():
        if line.startswith("WRK_JSON "):
            s = json.loads(line[len("WRK_JSON "):])
            s["qps"] = s["requests"] / seconds
            return s
    raise RuntimeError("wrk printed no summary:\n" + out)


def shadow_on(srv, share):
    spec = rt.spec(5, gate={"enabled": False}, shadow={"share": share, "duration": "1h"}, judge={"interval": "1h"})
    code, doc = srv.call("POST", "/v2/models/clf/releases", spec)
    if code != 200:
        raise RuntimeError(f"release: {code} {doc}")
    srv.wait(lambda st: st.get("phase") == "shadow", 30, "shadow step")


def shadow_off(srv):
    srv.call("POST", "/v2/models/clf/releases/current/abort")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("hearth")
    ap.add_argument("--share", type=float, default=0.5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="hearth-shadow-bench-")
    srv = None
    try:
        W, b, Wp, X, labels, _, _ = rt.make_data()
        repo = os.path.join(tmp, "repo")
        rt.build_repository(repo, W, b, Wp, 10)
        bodies = os.path.join(tmp, "bodies.txt")
        with open(bodies, "w") as f:
            for x in X:
                f.write(json.dumps({"inputs": [{"name": "input", "shape": [1, rt.FEATURES], "datatype": "FP32",
                                                "data": [round(float(v), 5) for v in x]}]}) + "\n")
        srv = rt.Server(args.hearth, repo, os.path.join(tmp, "releases.db"))
        if not srv.start():
            raise RuntimeError("the server did not start")
        measure(srv, bodies, 2, args.connections)  # warm-up
        runs = {"off": [], "on": []}
        order = []
        for r in range(args.rounds):
            order += ["off", "on", "on", "off"] if r % 2 == 0 else ["on", "off", "off", "on"]
        dropped = 0
        for mode in order:
            if mode == "on":
                shadow_on(srv, args.share)
            runs[mode].append(measure(srv, bodies, args.seconds, args.connections))
            if mode == "on":
                live = srv.status().get("live", {}).get("5", {})
                dropped += live.get("shadow_dropped", 0)
                shadow_off(srv)
            time.sleep(0.5)
        med = {m: {k: statistics.median(x[k] for x in runs[m]) for k in ("p50_us", "p99_us", "qps")} for m in runs}
        print(f"{len(runs['on'])} runs each, {args.seconds} s, {args.connections} connections, share {args.share}")
        print("| | no shadow | shadow | ratio |")
        print("| --- | --- | --- | --- |")
        for k, unit in (("p50_us", "us"), ("p99_us", "us"), ("qps", "/s")):
            print(f"| {k} | {med['off'][k]:.0f} {unit} | {med['on'][k]:.0f} {unit} | {med['on'][k] / med['off'][k]:.3f} |")
        print(f"shadow copies dropped (queue full): {dropped}")
        failed = sum(x["non200"] + x["socket_errors"] for m in runs for x in runs[m])
        print(f"failed requests: {failed}")
        return 0
    finally:
        if srv and srv.proc:
            stop_server(srv.proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
