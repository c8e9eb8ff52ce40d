#!/usr/bin/python3
"""What a confined trial load adds to a model load in `hearth serve`.

Starts two servers over the same repository of zoo models, one with
--isolate-model-loads all and one with none (explicit mode, nothing loaded),
then loads and unloads each model on them in turn (alternating, ROUNDS times)
and prints the median load time of each and their difference and ratio.

usage: bench/trial_load.py HEARTH ZOO_DIR [ROUNDS]
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

MODELS = ["mlp", "bert_encoder", "mobilenet_v2", "resnet18", "resnet50"]


def start(hearth, repo, scope):
    proc = subprocess.Popen([hearth, "serve", "--insecure-no-auth", "--model-repository", repo,
                             "--model-control-mode", "explicit", "--isolate-model-loads", scope,
                             "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0", "--threads", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port = []

    def reader():
        for line in proc.stderr:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") == "listening" and e.get("protocol") == "http":
                port.append(int(e["port"]))

    threading.Thread(target=reader, daemon=True).start()
    while not port and proc.poll() is None:
        time.sleep(0.05)
    return proc, port[0]


def post(port, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=600) as r:
        r.read()


def timed_load(port, model):
    t0 = time.perf_counter()
    post(port, f"/v2/repository/models/{model}/load")
    ms = (time.perf_counter() - t0) * 1000
    post(port, f"/v2/repository/models/{model}/unload")
    time.sleep(0.2)  # the unloaded version drains and is freed
    return ms


def main():
    hearth, zoo = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    tmp = tempfile.mkdtemp(prefix="hearth-trial-bench-")
    try:
        for m in MODELS:
            os.makedirs(os.path.join(tmp, m, "1"))
            shutil.copy(os.path.join(zoo, m + ".onnx"), os.path.join(tmp, m, "1", "model.onnx"))
        servers = {scope: start(hearth, tmp, scope) for scope in ("all", "none")}
        print(f"{'model':<14} {'in-process ms':>14} {'with trial ms':>14} {'added ms':>9} {'ratio':>6}")
        for m in MODELS:
            times = {"all": [], "none": []}
            for r in range(rounds):
                order = ("all", "none") if r % 2 == 0 else ("none", "all")
                for scope in order:
                    times[scope].append(timed_load(servers[scope][1], m))
            plain, trial = statistics.median(times["none"]), statistics.median(times["all"])
            print(f"{m:<14} {plain:>14.1f} {trial:>14.1f} {trial - plain:>9.1f} {trial / plain:>6.2f}")
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
