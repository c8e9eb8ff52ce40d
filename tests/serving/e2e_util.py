"""Helpers shared by the end-to-end tests of `hearth serve` (imported from the
same folder; each test still runs as a plain script)."""
import json
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import numpy as np

FAILURES = []


def check(cond, what):
    """Prints the check and records a failure; the script exits non-zero at the end."""
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def launch_server(args, protocols=("http", "grpc", "metrics"), timeout=120):
    """Starts `args` (a `hearth serve` command line with port 0s) and reads both of its
    streams on threads. Waits until each of `protocols` has logged its 'listening'
    event, the process exits, or `timeout` s pass. Returns (proc, ports, lines):
    ports maps protocol to port, lines collects the output as it arrives."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ports, lines = {}, []

    def reader(stream):
        for line in stream:
            lines.append(line.rstrip())
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "listening":
                ports[event["protocol"]] = int(event["port"])

    threading.Thread(target=reader, args=(proc.stderr,), daemon=True).start()
    threading.Thread(target=reader, args=(proc.stdout,), daemon=True).start()
    deadline = time.time() + timeout
    while not all(p in ports for p in protocols) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    return proc, ports, lines


def http_json(port, method, path, body=None, timeout=60):
    """(status, body text) of one plain-HTTP request with `body` sent as JSON."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def rel_l2(a, b):
    """Relative L2 distance of `a` from the reference `b`."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def stop_server(proc, timeout=20):
    """SIGTERM, then wait; kills after `timeout` s. Returns the exit code, or None if killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
    return proc.returncode
