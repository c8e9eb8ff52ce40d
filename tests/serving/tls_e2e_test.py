#!/usr/bin/python3
"""End-to-end test of TLS in `hearth serve` and `hearth certs self-signed`.

Creates a CA, a server certificate and a client certificate with
`hearth certs self-signed`, then starts `hearth serve --tls-cert/--tls-key`
(and later also --tls-client-ca for mutual TLS) on free ports against a
temporary repository holding the zoo MLP, and talks to it with python3's
ssl / urllib and with python3-grpcio (stubs generated from Hearth's .proto
files, as grpc_e2e_test.py does): health and inference over HTTPS and gRPC
with TLS, metrics over HTTPS, plain HTTP / insecure gRPC refused, and with
mutual TLS the client certificate required. The server is always stopped.

usage: tls_e2e_test.py HEARTH_BINARY ZOO_DIR [SOURCE_DIR]
       (SOURCE_DIR, for the .proto files, defaults to this file's repository)
"""
import http.client
import json
import os
import shutil
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from e2e_util import stop_server  # noqa: E402

FAILURES = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def run(args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, **kwargs)


# ---- certificates ----

def make_certs(hearth, out):
    r = run([hearth, "certs", "self-signed", "-o", out, "--client", "alice", "--json"])
    check(r.returncode == 0, f"certs self-signed exits 0 (rc {r.returncode}, {r.stderr.strip()})")
    info = json.loads(r.stdout) if r.returncode == 0 else {}
    names = sorted(os.listdir(out)) if os.path.isdir(out) else []
    expected = ["ca.key", "ca.pem", "client-alice.key", "client-alice.pem", "server.key", "server.pem"]
    check(names == expected, f"certs self-signed wrote {names}")
    modes = {n: stat.S_IMODE(os.stat(os.path.join(out, n)).st_mode) for n in names if n.endswith(".key")}
    check(modes and all(m == 0o600 for m in modes.values()), f"private keys are mode 0600 ({modes})")
    subjects = [c.get("subject") for c in info.get("clients", [])]
    check(subjects == ["CN=alice"], f"client subject printed in RFC 2253 form: {subjects}")
    text = run([hearth, "certs", "self-signed", "-o", os.path.join(out, "again"), "--client", "bob"])
    check(text.returncode == 0 and "CN=bob" in text.stdout and "server.pem" in text.stdout,
          "text output lists the files and the client subject")
    again = run([hearth, "certs", "self-signed", "-o", out])
    check(again.returncode != 0 and "already exists" in again.stderr,
          f"refuses to overwrite existing files (rc {again.returncode}: {again.stderr.strip()})")
    bad = run([hearth, "certs", "self-signed", "-o", os.path.join(out, "bad"), "--client", "../x"])
    check(bad.returncode != 0 and not os.path.exists(os.path.join(out, "bad", "ca.pem")),
          f"bad client name refused, nothing written (rc {bad.returncode})")


# ---- the server ----

def start_server(hearth, repo, extra, auth=False):
    """Starts `hearth serve`; returns (proc, {protocol: listening event}, output lines)."""
    args = [hearth, "serve"]
    if not auth:
        args.append("--insecure-no-auth")  # transport security only; `auth` runs give --auth-store
    args += ["--model-repository", repo, "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0",
             "--threads", "2", "--http-header-timeout-secs", "3"] + list(extra)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    events, lines = {}, []

    def reader():
        for line in proc.stdout:
            lines.append(line.rstrip())
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "listening":
                events[event["protocol"]] = event

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.time() + 120
    while len(events) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    return proc, events, lines


def https_context(ca, client=None):
    ctx = ssl.create_default_context(cafile=ca)
    if client:
        ctx.load_cert_chain(client[0], client[1])
    return ctx


def https(port, path, ctx, body=None, host="127.0.0.1"):
    """(status, body bytes); raises on TLS or connection failure."""
    req = urllib.request.Request(f"https://{host}:{port}{path}", data=body,
                                 headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def fails(f):
    """(True, exception text) when f() raised."""
    try:
        f()
        return False, ""
    except Exception as e:  # noqa: BLE001 - any failure is what we want here
        return True, f"{type(e).__name__}: {e}"


def infer_body(x):
    return json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                   "data": x.reshape(-1).tolist()}]}).encode()


def rel_l2(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def check_https(port, metrics_port, certs, zoo):
    ca = os.path.join(certs, "ca.pem")
    ctx = https_context(ca)
    status, _ = https(port, "/v2/health/ready", ctx)
    check(status == 200, f"HTTPS health/ready with the CA: {status}")
    status, _ = https(port, "/v2/health/live", ctx, host="localhost")
    check(status == 200, f"HTTPS by the name localhost: {status}")
    x = np.load(os.path.join(zoo, "mlp.in.npy")).astype(np.float32)
    ref = np.load(os.path.join(zoo, "mlp.out.npy"))
    status, body = https(port, "/v2/models/mlp/infer", ctx, infer_body(x))
    out = json.loads(body)["outputs"][0] if status == 200 else {}
    err = rel_l2(np.asarray(out.get("data", [])).reshape(out.get("shape", [0])), ref) if out else 1.0
    check(status == 200 and err <= 1e-4, f"HTTPS inference: status {status}, relative L2 {err:.2e}")
    failed, why = fails(lambda: https(port, "/v2/health/ready", ssl.create_default_context()))
    check(failed and "CERTIFICATE_VERIFY_FAILED" in why, f"a client not trusting the CA refuses the server ({why})")

    def plain():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/v2/health/ready")
        return conn.getresponse().status
    failed, why = fails(plain)
    check(failed, f"plain HTTP to the TLS port gets no HTTP answer ({why})")
    status, _ = https(port, "/v2/health/ready", ctx)
    check(status == 200, f"server still serves HTTPS after the plain client: {status}")
    status, body = https(metrics_port, "/metrics", ctx)
    check(status == 200 and b"hearth_" in body, f"metrics over HTTPS: {status}")


def check_mtls_https(port, metrics_port, certs):
    ca = os.path.join(certs, "ca.pem")
    alice = (os.path.join(certs, "client-alice.pem"), os.path.join(certs, "client-alice.key"))
    failed, why = fails(lambda: https(port, "/v2/health/ready", https_context(ca)))
    check(failed, f"mTLS: HTTPS without a client certificate refused ({why})")
    status, _ = https(port, "/v2/health/ready", https_context(ca, alice))
    check(status == 200, f"mTLS: HTTPS with alice's certificate: {status}")
    status, _ = https(metrics_port, "/metrics", https_context(ca, alice))
    check(status == 200, f"mTLS: metrics with alice's certificate: {status}")
    failed, why = fails(lambda: https(metrics_port, "/metrics", https_context(ca)))
    check(failed, f"mTLS: metrics without a client certificate refused ({why})")


def grpc_channel(grpc, port, certs, client=None):
    with open(os.path.join(certs, "ca.pem"), "rb") as f:
        root = f.read()
    key = chain = None
    if client:
        with open(client[0], "rb") as f:
            chain = f.read()
        with open(client[1], "rb") as f:
            key = f.read()
    creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=key, certificate_chain=chain)
    return grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "localhost")])


def grpc_live(grpc, channel):
    import grpc_service_pb2 as pb
    import grpc_service_pb2_grpc as pb_grpc
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    return stub.ServerLive(pb.ServerLiveRequest(), timeout=15).live


def check_grpc(grpc, port, certs, zoo):
    import grpc_service_pb2 as pb
    import grpc_service_pb2_grpc as pb_grpc
    channel = grpc_channel(grpc, port, certs)
    check(grpc_live(grpc, channel), "gRPC over TLS: ServerLive")
    x = np.load(os.path.join(zoo, "mlp.in.npy")).astype(np.float32)
    ref = np.load(os.path.join(zoo, "mlp.out.npy"))
    req = pb.ModelInferRequest(model_name="mlp")
    t = req.inputs.add(name="input", datatype="FP32")
    t.shape.extend(x.shape)
    req.raw_input_contents.append(x.tobytes())
    resp = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(req, timeout=60)
    y = np.frombuffer(resp.raw_output_contents[0], dtype=np.float32).reshape(list(resp.outputs[0].shape))
    err = rel_l2(y, ref)
    check(err <= 1e-4, f"gRPC over TLS: ModelInfer relative L2 {err:.2e}")
    channel.close()
    insecure = grpc.insecure_channel(f"127.0.0.1:{port}")
    failed, why = fails(lambda: grpc_live(grpc, insecure))
    check(failed, f"gRPC without TLS refused ({why.splitlines()[0] if why else ''})")
    insecure.close()


def check_mtls_grpc(grpc, port, certs):
    alice = (os.path.join(certs, "client-alice.pem"), os.path.join(certs, "client-alice.key"))
    channel = grpc_channel(grpc, port, certs)
    failed, why = fails(lambda: grpc_live(grpc, channel))
    check(failed, f"mTLS: gRPC without a client certificate refused ({why.splitlines()[0] if why else ''})")
    channel.close()
    channel = grpc_channel(grpc, port, certs, alice)
    try:
        live, why = grpc_live(grpc, channel), ""
    except grpc.RpcError as e:
        live, why = False, f"{e.code()}: {e.details()}"
    check(live, f"mTLS: gRPC with alice's certificate: ServerLive {live} {why}")
    channel.close()


def serve_and_check(hearth, repo, certs, extra, checks, label, auth=False):
    proc, events, lines = start_server(hearth, repo, extra, auth)
    try:
        check(len(events) == 3 and all(e.get("tls") is True for e in events.values()),
              f"{label}: every listener logs tls:true ({ {p: e.get('tls') for p, e in events.items()} })")
        if len(events) < 3:
            print("\n".join(lines[-30:]))
            return
        for step in checks:
            try:
                step(events)
            except Exception as e:  # noqa: BLE001 - report and go on
                check(False, f"{label}: {getattr(step, '__name__', 'check')} raised {type(e).__name__}: {e}")
        check(proc.poll() is None, f"{label}: server still running")
    finally:
        rc = stop_server(proc)
        check(rc == 0, f"{label}: server stopped cleanly on SIGTERM (exit {rc})")
        if FAILURES:
            print("---- server output (last 30 lines) ----")
            print("\n".join(lines[-30:]))


def setup_cert_users(hearth, work):
    """Certificates for alice, bob and carol; alice -> operator, bob -> viewer by
    certificate subject, carol has no user. Returns (certs folder, auth store)."""
    certs = os.path.join(work, "certs-users")
    r = run([hearth, "certs", "self-signed", "-o", certs, "--client", "alice", "--client", "bob", "--client", "carol"])
    check(r.returncode == 0, f"certificates for alice, bob and carol ({r.stderr.strip()})")
    store = os.path.join(work, "auth.json")
    for user, role in (("alice", "operator"), ("bob", "viewer")):
        r = run([hearth, "users", "add", user, "--role", role, "--cert-subject", f"CN={user}", "--auth-store", store,
                 "--audit-log", os.path.join(work, "audit.db")])
        check(r.returncode == 0, f"users add {user} --cert-subject CN={user} ({r.stderr.strip()})")
    return certs, store


def check_cert_users(grpc, ports, certs, zoo):
    """mTLS with authentication on: the certificate subject is the user, no token needed."""
    import grpc_service_pb2 as pb
    import grpc_service_pb2_grpc as pb_grpc
    ca = os.path.join(certs, "ca.pem")
    who = {n: (os.path.join(certs, f"client-{n}.pem"), os.path.join(certs, f"client-{n}.key"))
           for n in ("alice", "bob", "carol")}
    x = np.load(os.path.join(zoo, "mlp.in.npy")).astype(np.float32)
    body = infer_body(x)
    status, _ = https(ports["http"], "/v2/models/mlp/infer", https_context(ca, who["alice"]), body)
    check(status == 200, f"mTLS user alice (operator, by subject) infers without a token: {status}")
    status, text = https(ports["http"], "/v2/models/mlp/infer", https_context(ca, who["bob"]), body)
    check(status == 403, f"mTLS user bob (viewer, by subject) may not infer: {status} {text[:120]}")
    status, _ = https(ports["http"], "/v2/models/mlp", https_context(ca, who["bob"]))
    check(status == 200, f"mTLS user bob reads model metadata: {status}")
    status, text = https(ports["http"], "/v2/models/mlp", https_context(ca, who["carol"]))
    check(status == 401, f"a valid certificate that maps to no user is 401: {status} {text[:120]}")
    status, _ = https(ports["http"], "/v2/health/ready", https_context(ca, who["carol"]))
    check(status == 200, f"health stays open with auth on: {status}")
    for name, want in (("alice", "OK"), ("bob", "PERMISSION_DENIED")):
        channel = grpc_channel(grpc, ports["grpc"], certs, who[name])
        req = pb.ModelInferRequest(model_name="mlp")
        t = req.inputs.add(name="input", datatype="FP32")
        t.shape.extend(x.shape)
        req.raw_input_contents.append(x.tobytes())
        try:
            pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(req, timeout=60)
            code = "OK"
        except grpc.RpcError as e:
            code = e.code().name
        check(code == want, f"gRPC mTLS user {name}: ModelInfer {want} (got {code})")
        channel.close()


def check_usage_errors(hearth, repo, certs):
    r = run([hearth, "serve", "--model-repository", repo, "--tls-cert", os.path.join(certs, "server.pem")])
    check(r.returncode == 2 and "--tls-key" in r.stderr, f"--tls-cert without --tls-key: usage error ({r.returncode})")
    r = run([hearth, "serve", "--model-repository", repo, "--tls-client-ca", os.path.join(certs, "ca.pem")])
    check(r.returncode == 2 and "--tls-cert" in r.stderr, f"--tls-client-ca alone: usage error ({r.returncode})")
    bad_key = os.path.join(certs, "client-alice.key")
    proc, events, lines = start_server(hearth, repo, ["--tls-cert", os.path.join(certs, "server.pem"),
                                                      "--tls-key", bad_key])
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        rc = None
    time.sleep(0.2)
    text = "\n".join(lines)
    check(rc not in (0, None) and bad_key in text, f"a key not matching the certificate: exit {rc}, message names it")
    stop_server(proc)


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__)
        return 2
    hearth, zoo = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    source = os.path.abspath(sys.argv[3]) if len(sys.argv) == 4 else os.path.dirname(os.path.dirname(HERE))
    if not os.path.exists(os.path.join(zoo, "mlp.onnx")):
        print(f"FAIL {zoo}/mlp.onnx is missing: run `make zoo` first")
        return 1
    try:
        import grpc
    except ImportError:
        print("FAIL python3-grpcio is not installed")
        return 1
    from grpc_e2e_test import generate_stubs
    work = tempfile.mkdtemp(prefix="hearth_tls_e2e_")
    try:
        generate_stubs(source, work)
        repo = os.path.join(work, "repo")
        os.makedirs(os.path.join(repo, "mlp", "1"))
        shutil.copy(os.path.join(zoo, "mlp.onnx"), os.path.join(repo, "mlp", "1", "model.onnx"))
        with open(os.path.join(repo, "mlp", "config.pbtxt"), "w") as f:
            f.write("max_batch_size: 8\n")
        certs = os.path.join(work, "certs")
        make_certs(hearth, certs)
        tls = ["--tls-cert", os.path.join(certs, "server.pem"), "--tls-key", os.path.join(certs, "server.key")]
        serve_and_check(hearth, repo, certs, tls, [
            lambda ev: check_https(ev["http"]["port"], ev["metrics"]["port"], certs, zoo),
            lambda ev: check_grpc(grpc, ev["grpc"]["port"], certs, zoo),
        ], "TLS")
        serve_and_check(hearth, repo, certs, tls + ["--tls-client-ca", os.path.join(certs, "ca.pem")], [
            lambda ev: check_mtls_https(ev["http"]["port"], ev["metrics"]["port"], certs),
            lambda ev: check_mtls_grpc(grpc, ev["grpc"]["port"], certs),
        ], "mTLS")
        ucerts, store = setup_cert_users(hearth, work)
        serve_and_check(hearth, repo, ucerts,
                        ["--tls-cert", os.path.join(ucerts, "server.pem"), "--tls-key", os.path.join(ucerts, "server.key"),
                         "--tls-client-ca", os.path.join(ucerts, "ca.pem"), "--auth-store", store,
                         "--audit-log", os.path.join(work, "audit.db")],
                        [lambda ev: check_cert_users(grpc, {p: e["port"] for p, e in ev.items()}, ucerts, zoo)],
                        "mTLS users", auth=True)
        check_usage_errors(hearth, repo, certs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"tls_e2e: {len(FAILURES)} failed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
