#!/usr/bin/python3
"""Access control of `hearth serve`, end to end: every endpoint x every
built-in role (and no credentials), over REST and gRPC, allowed or denied.

Sets up an auth store with the hearth CLI (`hearth users add`, `hearth tokens
issue`), a policy file with a custom model-scoped role, starts the server with
authentication on (the default) and an audit log, and checks:
  - health endpoints are open, everything else needs a token (401 / UNAUTHENTICATED);
  - the REST and gRPC matrices of allowed (2xx / OK) and denied (403 / PERMISSION_DENIED);
  - a custom role scoped to "fraud-*" may infer on fraud-mlp and not on mlp;
  - a revoked token stops working while the server runs;
  - control-plane actions and refusals land in the audit log, whose chain verifies;
  - repeated failures from one address are slowed down (429 + Retry-After) without
    refusing anyone's valid token, then recover;
  - --insecure-no-auth is refused on a non-loopback address.

usage: auth_e2e_test.py HEARTH_BINARY ZOO_DIR SOURCE_DIR
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_util import launch_server, stop_server  # noqa: E402
from grpc_e2e_test import generate_stubs  # noqa: E402

FAILURES = []
ROLES = ("admin", "operator", "viewer")

POLICY = """# custom roles for the test
roles:
  fraud-analyst:
    description: runs the fraud models only
    rules:
      - resource: inference
        actions: [infer]
        models: ["fraud-*"]
      - resource: models
        actions: [read]
        models: ["fraud-*"]
  deployer:
    description: loads and unloads what is in the repository, uploads nothing
    rules:
      - resource: models
        actions: [read, deploy]
"""


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


AUDIT_ENV = {}  # HEARTH_AUDIT_LOG for the CLI: the server's log, never one in the real HOME


def run_cli(hearth, *args):
    return subprocess.run([hearth] + list(args), capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **AUDIT_ENV))


def setup_auth(hearth, tmp):
    """Users admin / operator / viewer / analyst, one token each; returns {user: token}."""
    store = os.path.join(tmp, "auth.json")
    policy = os.path.join(tmp, "policy.yaml")
    with open(policy, "w") as f:
        f.write(POLICY)
    tokens = {}
    for user, role in (("alice", "admin"), ("oscar", "operator"), ("vera", "viewer"), ("fiona", "fraud-analyst"),
                       ("dana", "deployer")):
        r = run_cli(hearth, "users", "add", user, "--role", role, "--auth-store", store, "--policy", policy)
        check(r.returncode == 0, f"hearth users add {user} --role {role} ({r.stderr.strip()})")
        r = run_cli(hearth, "tokens", "issue", user, "--expires", "1h", "--json", "--auth-store", store)
        check(r.returncode == 0, f"hearth tokens issue {user} ({r.stderr.strip()})")
        tokens[role] = json.loads(r.stdout)["token"]
    return store, policy, tokens


def make_repository(root, zoo):
    for name in ("mlp", "fraud-mlp"):
        os.makedirs(os.path.join(root, name, "1"))
        shutil.copy(os.path.join(zoo, "mlp.onnx"), os.path.join(root, name, "1", "model.onnx"))
        with open(os.path.join(root, name, "config.pbtxt"), "w") as f:
            f.write("max_batch_size: 8\n")


def start_server(hearth, repo, extra):
    return launch_server([hearth, "serve", "--model-repository", repo, "--model-control-mode", "explicit",
                          "--load-model", "*", "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"]
                         + list(extra))


def http(port, method, path, token=None, body=None, bearer=True):
    """(status, headers, body text) of one request."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}" if bearer else token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


INFER = json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]})

# (method, path, body, roles allowed). Health: open to everyone, no token needed.
REST_MATRIX = [
    ("GET", "/v2", None, ROLES),
    ("GET", "/v2/models/mlp", None, ROLES),
    ("GET", "/v2/models/mlp/versions/1", None, ROLES),
    ("GET", "/v2/models/mlp/ready", None, ROLES),
    ("GET", "/v2/models/mlp/config", None, ROLES),
    ("GET", "/v2/models/mlp/stats", None, ROLES),
    ("GET", "/v2/models/stats", None, ROLES),
    ("POST", "/v2/models/mlp/infer", INFER, ("admin", "operator")),
    ("POST", "/v2/models/mlp/versions/1/infer", INFER, ("admin", "operator")),
    ("POST", "/v2/repository/index", "{}", ROLES),
    ("POST", "/v2/repository/models/mlp/unload", "{}", ("admin", "operator")),
    ("POST", "/v2/repository/models/mlp/load", "{}", ("admin", "operator")),
]


def check_rest_matrix(port, tokens):
    for path in ("/v2/health/live", "/v2/health/ready"):
        status, _, _ = http(port, "GET", path)
        check(status == 200, f"REST GET {path} without a token: 200 (got {status})")
    for method, path, body, allowed in REST_MATRIX:
        status, headers, text = http(port, method, path, None, body)
        check(status == 401 and "Bearer" in headers.get("WWW-Authenticate", ""),
              f"REST {method} {path} without a token: 401 + WWW-Authenticate (got {status})")
        for role in ROLES:
            status, _, text = http(port, method, path, tokens[role], body)
            if role in allowed:
                check(status == 200, f"REST {method} {path} as {role}: allowed (got {status} {text[:120]})")
            else:
                check(status == 403 and "may not" in text,
                      f"REST {method} {path} as {role}: 403 naming the refusal (got {status} {text[:160]})")


def check_rest_releases(port, tokens):
    """The release endpoints under RBAC: reads for every role, changes need models:deploy, feedback inference:infer."""
    for path in ("/v2/models/mlp/releases", "/v2/models/mlp/routing?key=tenant-a"):
        status, headers, _ = http(port, "GET", path)
        check(status == 401, f"REST GET {path} without a token: 401 (got {status})")
        for role in ROLES:
            status, _, text = http(port, "GET", path, tokens[role])
            check(status == 200, f"REST GET {path} as {role}: allowed (got {status} {text[:120]})")
    changes = [("/v2/models/mlp/releases", json.dumps({"candidate": 99}), 400),  # allowed, then refused: no version 99
               ("/v2/models/mlp/releases/current/abort", "", 404),             # allowed, no release running
               ("/v2/models/mlp/production", json.dumps({"version": 1}), 200)]
    for path, body, allowed_status in changes:
        status, _, text = http(port, "POST", path, tokens["viewer"], body)
        check(status == 403 and "may not" in text, f"REST POST {path} as viewer: 403 (got {status} {text[:120]})")
        status, _, text = http(port, "POST", path, tokens["operator"], body)
        check(status == allowed_status, f"REST POST {path} as operator: {allowed_status} (got {status} {text[:160]})")
    status, _, text = http(port, "POST", "/v2/models/mlp/feedback", tokens["viewer"], json.dumps({"id": "x", "label": 1}))
    check(status == 403, f"feedback as viewer (no inference:infer): 403 (got {status})")
    status, _, text = http(port, "POST", "/v2/models/mlp/feedback", tokens["operator"], json.dumps({"id": "x", "label": 1}))
    check(status == 400 and "no release running" in text, f"feedback as operator: allowed, no release (got {status} {text[:120]})")


def check_rest_upload(port, tokens, zoo, repo):
    """A load with "file:" parameters (a model upload) needs models:create as well: viewer 403, operator 200."""
    with open(os.path.join(zoo, "mlp.onnx"), "rb") as f:
        body = json.dumps({"parameters": {"config": json.dumps({"max_batch_size": 8}),
                                          "file:1/model.onnx": base64.b64encode(f.read()).decode()}})
    path = "/v2/repository/models/uploaded/load"
    status, _, text = http(port, "POST", path, tokens["viewer"], body)
    check(status == 403 and "may not" in text and not os.path.exists(os.path.join(repo, "uploaded")),
          f"REST upload as viewer: 403 naming the refusal, nothing written (got {status} {text[:160]})")
    status, _, text = http(port, "POST", path, tokens["deployer"], body)
    check(status == 403 and "create" in text and not os.path.exists(os.path.join(repo, "uploaded")),
          f"REST upload with models:deploy but not create: 403 naming create (got {status} {text[:160]})")
    status, _, text = http(port, "POST", "/v2/repository/models/fraud-mlp/load", tokens["deployer"], "{}")
    check(status == 200, f"a plain load needs models:deploy only (got {status} {text[:160]})")
    status, _, text = http(port, "POST", path, tokens["operator"], body)
    check(status == 200 and os.path.isfile(os.path.join(repo, "uploaded", "1", "model.onnx")),
          f"REST upload as operator: allowed and written (got {status} {text[:160]})")


def check_rest_credentials(port, tokens):
    status, _, text = http(port, "GET", "/v2", "hth_000000000000_" + "A" * 43)
    check(status == 401 and "invalid" in text, f"REST: an unknown token is 401 'invalid token' (got {status} {text})")
    status, _, text = http(port, "GET", "/v2", "Basic dXNlcjpwYXNz", bearer=False)
    check(status == 401, f"REST: a Basic Authorization header is 401 (got {status} {text})")
    status, _, text = http(port, "GET", "/v2/no/such/path", tokens["viewer"])
    check(status == 404, f"REST: unknown path with a token: 404 (got {status})")
    status, _, text = http(port, "GET", "/v2/no/such/path")
    check(status == 401, f"REST: unknown path without a token: 401, nothing revealed (got {status})")


def check_refused_before_body(port, tokens):
    """Without valid credentials the answer comes before the body is read: a
    client announcing 50 MB gets its 401 without sending a byte of it."""
    def head_only(extra="", request_line="POST /v2/models/mlp/infer"):
        """The answer to a request head announcing a 50 MB body, none of which is sent."""
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall((f"{request_line} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       f"Content-Length: 50000000\r\n{extra}\r\n").encode())
            try:
                return s.recv(4096).decode(errors="replace")
            except socket.timeout:
                return ""
    answer = head_only()
    check(answer.startswith("HTTP/1.1 401") and "WWW-Authenticate" in answer,
          f"no token: 401 before the body is read ({answer[:40]!r})")
    answer = head_only("Authorization: Bearer hth_000000000000_" + "C" * 43 + "\r\n")
    check(answer.startswith("HTTP/1.1 401") and "invalid token" in answer,
          f"a wrong token: 401 before the body is read ({answer[:40]!r})")
    status, _, _ = http(port, "POST", "/v2/models/mlp/infer", tokens["operator"], INFER)
    check(status == 200, f"a good request right after (got {status})")

    # The open health paths and unparsable paths read no body either (issue 17).
    answer = head_only(request_line="POST /v2/health/live")
    check(answer.startswith("HTTP/1.1 405"), f"a POST to a health path: 405 before the body ({answer[:40]!r})")
    answer = head_only(request_line="GET /v2/health/ready")
    check(answer.startswith("HTTP/1.1 400") and "health requests take no body" in answer,
          f"a health GET with a body: 400 before the body ({answer[:60]!r})")
    answer = head_only(request_line="POST /v2/models/%2e%2e/infer")
    check(answer.startswith("HTTP/1.1 4"), f"an unparsable path: refused before the body ({answer[:40]!r})")
    status, _, _ = http(port, "GET", "/v2/health/live")
    check(status == 200, f"a plain health GET still answers (got {status})")


def check_custom_role(port, tokens):
    t = tokens["fraud-analyst"]
    status, _, text = http(port, "POST", "/v2/models/fraud-mlp/infer", t, INFER)
    check(status == 200, f"custom role fraud-analyst infers on fraud-mlp (got {status} {text[:120]})")
    status, _, text = http(port, "POST", "/v2/models/mlp/infer", t, INFER)
    check(status == 403, f"custom role fraud-analyst may not infer on mlp: 403 (got {status} {text[:160]})")
    status, _, _ = http(port, "GET", "/v2/models/fraud-mlp", t)
    check(status == 200, f"custom role fraud-analyst reads fraud-mlp metadata (got {status})")
    status, _, _ = http(port, "POST", "/v2/repository/index", t, "{}")
    check(status == 403, f"custom role fraud-analyst may not read the repository index (got {status})")


def check_metrics(port, tokens):
    status, _, _ = http(port, "GET", "/metrics")
    check(status == 401, f"metrics without a token: 401 (got {status})")
    status, _, text = http(port, "GET", "/metrics", tokens["viewer"])
    check(status == 200 and "hearth_access_denied_total" in text and "hearth_auth_failures_total" in text,
          f"metrics as viewer: 200 with the auth counters (got {status})")


def check_grpc_matrix(grpc_mod, port, tokens):
    import grpc_service_pb2 as pb
    import grpc_service_pb2_grpc as pb_grpc
    channel = grpc_mod.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.GRPCInferenceServiceStub(channel)

    def infer_request(model="mlp"):
        req = pb.ModelInferRequest(model_name=model)
        inp = req.inputs.add(name="input", datatype="FP32", shape=[1, 64])
        inp.contents.fp32_contents.extend([0.5] * 64)
        return req

    calls = [
        ("ServerMetadata", lambda md: stub.ServerMetadata(pb.ServerMetadataRequest(), metadata=md), ROLES),
        ("ModelMetadata", lambda md: stub.ModelMetadata(pb.ModelMetadataRequest(name="mlp"), metadata=md), ROLES),
        ("ModelReady", lambda md: stub.ModelReady(pb.ModelReadyRequest(name="mlp"), metadata=md), ROLES),
        ("ModelConfig", lambda md: stub.ModelConfig(pb.ModelConfigRequest(name="mlp"), metadata=md), ROLES),
        ("ModelStatistics", lambda md: stub.ModelStatistics(pb.ModelStatisticsRequest(name="mlp"), metadata=md),
         ROLES),
        ("RepositoryIndex", lambda md: stub.RepositoryIndex(pb.RepositoryIndexRequest(), metadata=md), ROLES),
        ("ModelInfer", lambda md: stub.ModelInfer(infer_request(), metadata=md), ("admin", "operator")),
        ("RepositoryModelUnload",
         lambda md: stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="mlp"), metadata=md),
         ("admin", "operator")),
        ("RepositoryModelLoad",
         lambda md: stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="mlp"), metadata=md),
         ("admin", "operator")),
    ]
    for name, health in (("ServerLive", lambda: stub.ServerLive(pb.ServerLiveRequest())),
                         ("ServerReady", lambda: stub.ServerReady(pb.ServerReadyRequest()))):
        try:
            health()
            check(True, f"gRPC {name} without a token: OK")
        except grpc_mod.RpcError as e:
            check(False, f"gRPC {name} without a token: OK (got {e.code()})")

    def outcome(call, md):
        try:
            call(md)
            return "OK", ""
        except grpc_mod.RpcError as e:
            return e.code().name, e.details()

    for name, call, allowed in calls:
        code, _ = outcome(call, None)
        check(code == "UNAUTHENTICATED", f"gRPC {name} without a token: UNAUTHENTICATED (got {code})")
        for role in ROLES:
            code, details = outcome(call, [("authorization", f"Bearer {tokens[role]}")])
            want = "OK" if role in allowed else "PERMISSION_DENIED"
            check(code == want, f"gRPC {name} as {role}: {want} (got {code} {details[:120]})")

    # A stream authenticates once and authorizes each request for its model.
    def stream(role, models):
        md = [("authorization", f"Bearer {tokens[role]}")]
        return list(stub.ModelStreamInfer(iter([infer_request(m) for m in models]), metadata=md, timeout=30))

    answers = stream("fraud-analyst", ["fraud-mlp", "mlp"])
    check(len(answers) == 2 and not answers[0].error_message and "may not" in answers[1].error_message,
          "gRPC stream as fraud-analyst: fraud-mlp answered, mlp refused in error_message "
          f"({[a.error_message[:80] for a in answers]})")
    answers = stream("viewer", ["mlp"])
    check(len(answers) == 1 and "may not" in answers[0].error_message, "gRPC stream as viewer: infer refused")
    try:
        list(stub.ModelStreamInfer(iter([infer_request()]), timeout=30))
        check(False, "gRPC stream without a token: UNAUTHENTICATED")
    except grpc_mod.RpcError as e:
        check(e.code().name == "UNAUTHENTICATED", f"gRPC stream without a token: UNAUTHENTICATED (got {e.code()})")
    channel.close()


def check_revocation(hearth, store, port, tokens):
    r = run_cli(hearth, "tokens", "list", "--user", "vera", "--json", "--auth-store", store)
    check(r.returncode == 0, f"hearth tokens list --user vera ({r.stderr.strip()})")
    try:
        ids = [t["id"] for t in json.loads(r.stdout)]
    except (ValueError, TypeError, KeyError):
        ids = []
    check(len(ids) == 1, f"vera has one token ({r.stdout.strip()[:200]})")
    if not ids:
        return
    r = run_cli(hearth, "tokens", "revoke", ids[0], "--auth-store", store)
    check(r.returncode == 0, f"hearth tokens revoke ({r.stderr.strip()})")
    deadline = time.time() + 5
    status = 200
    while time.time() < deadline:
        status, _, _ = http(port, "GET", "/v2", tokens["viewer"])
        if status == 401:
            break
        time.sleep(0.2)
    check(status == 401, f"a revoked token stops working without a restart (got {status})")


def check_audit(hearth, audit):
    r = run_cli(hearth, "audit", "list", "--audit-log", audit, "--json")
    check(r.returncode == 0, f"hearth audit list ({r.stderr.strip()})")
    records = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def has(**want):
        return any(all(str(rec.get(k, "")) == v for k, v in want.items()) for rec in records)

    check(has(user="oscar", action="model.load", outcome="ok", model="mlp"), "audit: operator loaded mlp (ok)")
    check(has(user="alice", action="model.unload", outcome="ok", model="mlp"), "audit: admin unloaded mlp (ok)")
    check(has(user="vera", action="model.load", outcome="denied"), "audit: viewer's load was denied")
    check(has(user="oscar", action="model.upload", outcome="ok", model="uploaded"), "audit: operator uploaded a model (ok)")
    check(has(user="vera", action="model.load", outcome="denied", model="uploaded"),
          "audit: viewer's upload was denied (a viewer may not even load)")
    check(has(user="dana", action="model.upload", outcome="denied", model="uploaded"),
          "audit: deployer's upload was denied (no models:create)")
    check(has(user="vera", action="access.denied", outcome="denied"), "audit: viewer's inference was denied")
    check(has(action="auth.failed", outcome="denied"), "audit: failed authentication recorded")
    check(not has(action="infer"), "audit: inference is not recorded one by one by default")
    check(has(action="user.add", client="cli", outcome="ok"), "audit: `hearth users add` is recorded")
    check(has(user="oscar", action="release.production", outcome="ok", model="mlp"),
          "audit: operator set mlp's production version (the request)")
    check(has(user="oscar", action="release.start", outcome="failed", model="mlp"),
          "audit: operator's refused release start is recorded with its outcome")
    check(has(action="token.revoke", client="cli"), "audit: `hearth tokens revoke` is recorded")
    r = run_cli(hearth, "audit", "verify", "--audit-log", audit)
    check(r.returncode == 0, f"hearth audit verify: chain OK ({r.stdout.strip()} {r.stderr.strip()})")


def check_lockout(port, tokens):
    """Last. From a loopback address no other check used (127.0.0.2), so that the
    failures counted against it are this check's own."""
    import http.client as httpclient

    def http_from(token):
        conn = httpclient.HTTPConnection("127.0.0.1", port, timeout=30, source_address=("127.0.0.2", 0))
        conn.request("GET", "/v2", headers={"Authorization": f"Bearer {token}"} if token else {})
        r = conn.getresponse()
        out = r.status, dict(r.getheaders()), r.read().decode()
        conn.close()
        return out

    bad = "hth_000000000000_" + "B" * 43  # an unknown token id: counted against the address
    status, _, _ = http_from(tokens["admin"])
    check(status == 200, f"a good token before the lockout test (got {status})")
    statuses = [http_from(bad)[0] for _ in range(8)]
    check(statuses[:5] == [401] * 5, f"the first failed attempts are 401 ({statuses})")
    check(429 in statuses, f"repeated failures from one address are slowed down with 429 ({statuses})")
    status, headers, _ = http_from(bad)
    retry = int(headers.get("Retry-After", "0") or 0)
    check(status == 429 and retry >= 1, f"while locked out, bad attempts get 429 + Retry-After ({status}, {retry})")
    # Other users behind the same address (a NAT, a proxy) are never refused (issue 17).
    status, _, _ = http_from(tokens["admin"])
    check(status == 200, f"during the address's lockout a valid token still works (got {status})")
    status, _, _ = http(port, "GET", "/v2", bad)
    check(status == 401, f"another address is not locked out (got {status})")
    time.sleep(min(retry, 60) + 0.5)
    status, _, _ = http_from(bad)
    check(status == 401, f"after Retry-After a bad token is answered 401 again (got {status})")
    status, _, _ = http(port, "GET", "/v2/health/live")
    check(status == 200, "health stays open during a lockout")


def check_refusals(hearth, repo, store):
    r = subprocess.run([hearth, "serve", "--insecure-no-auth", "--model-repository", repo, "--http-address", "0.0.0.0",
                        "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode != 0 and "loopback" in r.stderr,
          f"--insecure-no-auth on 0.0.0.0 is refused naming loopback (rc {r.returncode}: {r.stderr.strip()[-200:]})")
    r = subprocess.run([hearth, "serve", "--model-repository", repo, "--auth-store", store + ".missing",
                        "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode != 0 and "insecure-no-auth" in r.stderr,
          f"auth on with no auth store: refused with a hint (rc {r.returncode}: {r.stderr.strip()[-200:]})")


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    hearth, zoo, source = sys.argv[1:4]
    import grpc
    tmp = tempfile.mkdtemp(prefix="hearth_auth_")
    proc, lines = None, []
    try:
        generate_stubs(source, tmp)
        audit = os.path.join(tmp, "audit.db")
        AUDIT_ENV["HEARTH_AUDIT_LOG"] = audit
        store, policy, tokens = setup_auth(hearth, tmp)
        repo = os.path.join(tmp, "repo")
        make_repository(repo, zoo)
        check_refusals(hearth, repo, store)
        proc, ports, lines = start_server(hearth, repo, ["--auth-store", store, "--policy", policy,
                                                         "--audit-log", audit,
                                                         "--release-store", os.path.join(tmp, "releases.db")])
        check(len(ports) == 3, f"server listens on http, grpc and metrics ({ports})")
        if len(ports) < 3:
            return 1
        for step in (lambda: check_rest_matrix(ports["http"], tokens),
                     lambda: check_rest_upload(ports["http"], tokens, zoo, repo),
                     lambda: check_rest_releases(ports["http"], tokens),
                     lambda: check_rest_credentials(ports["http"], tokens),
                     lambda: check_refused_before_body(ports["http"], tokens),
                     lambda: check_custom_role(ports["http"], tokens),
                     lambda: check_metrics(ports["metrics"], tokens),
                     lambda: check_grpc_matrix(grpc, ports["grpc"], tokens),
                     lambda: check_revocation(hearth, store, ports["http"], tokens),
                     lambda: check_lockout(ports["http"], tokens)):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - report and go on
                check(False, f"step raised {type(e).__name__}: {e}")
        rc = stop_server(proc)
        check(rc == 0, f"server exits 0 on SIGTERM (rc {rc})")
        check_audit(hearth, audit)
    finally:
        if proc is not None:
            stop_server(proc)
            if FAILURES:
                print("---- server output (last 40 lines) ----")
                print("\n".join(lines[-40:]))
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(FAILURES)} failure(s)" if FAILURES else "all access-control checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
