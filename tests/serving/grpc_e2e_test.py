#!/usr/bin/python3
"""End-to-end test of `hearth serve` over the KServe v2 / Triton gRPC protocol.

Generates Python stubs at test time from Hearth's own grpc_service.proto and
model_config.proto (and a grpc.health.v1 health.proto written here from the
public gRPC health-checking spec), so the client speaks the protocol as the
.proto files document it. Starts the server with every port 0 against a
temporary repository (the zoo MLP with dynamic batching plus a corrupt model),
finds the gRPC port in the server's JSON log on stderr, and checks health,
metadata, config, inference (raw and typed), error codes, streaming,
statistics, the repository index and concurrency. The server is always
stopped at the end.

usage: grpc_e2e_test.py HEARTH_BINARY ZOO_DIR SOURCE_DIR
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

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_util import stop_server  # noqa: E402

FAILURES = []

HEALTH_PROTO = """
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health {
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse);
  rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse);
}
"""

CONFIG = """max_batch_size: 8
dynamic_batching {}
"""


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILURES.append(what)


def rel_l2(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def generate_stubs(source_dir, out_dir):
    """protoc + grpc_python_plugin -> importable *_pb2 / *_pb2_grpc modules."""
    plugin = "/usr/bin/grpc_python_plugin"
    for tool in ("protoc", plugin):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found (install protobuf-compiler and protobuf-compiler-grpc)")
    includes = ["-I", os.path.join(source_dir, "src", "frontend", "proto"),
                "-I", os.path.join(source_dir, "src", "repository", "proto")]
    with open(os.path.join(out_dir, "health.proto"), "w") as f:
        f.write(HEALTH_PROTO)
    for include, files in ((includes, ["grpc_service.proto", "model_config.proto"]), (["-I", out_dir], ["health.proto"])):
        subprocess.run(["protoc"] + include + [f"--python_out={out_dir}", f"--grpc_out={out_dir}",
                        f"--plugin=protoc-gen-grpc={plugin}"] + files, check=True)
    sys.path.insert(0, out_dir)


def make_repository(root, zoo):
    os.makedirs(os.path.join(root, "mlp", "1"))
    shutil.copy(os.path.join(zoo, "mlp.onnx"), os.path.join(root, "mlp", "1", "model.onnx"))
    with open(os.path.join(root, "mlp", "config.pbtxt"), "w") as f:
        f.write(CONFIG)
    os.makedirs(os.path.join(root, "broken", "1"))
    with open(os.path.join(root, "broken", "1", "model.onnx"), "wb") as f:
        f.write(b"this is not an ONNX model")


def start_server(hearth, repo, extra=()):
    """Starts `hearth serve`; returns (process, grpc port or None, log lines)."""
    proc = subprocess.Popen([hearth, "serve", "--insecure-no-auth", "--model-repository", repo, "--http-port", "0", "--grpc-port", "0",
                             "--metrics-port", "0"] + list(extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port, lines = [], []

    def read_stderr():
        for line in proc.stderr:
            lines.append(line.rstrip())
            try:
                event = json.loads(line)
            except ValueError:
                continue  # not every line is ours (e.g. gRPC's own logging)
            if (isinstance(event, dict) and event.get("event") == "listening" and event.get("protocol") == "grpc"
                    and not port):
                port.append(int(event["port"]))

    def read_stdout():
        for line in proc.stdout:
            lines.append(line.rstrip())

    threading.Thread(target=read_stderr, daemon=True).start()
    threading.Thread(target=read_stdout, daemon=True).start()
    deadline = time.time() + 120
    while not port and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    return proc, (port[0] if port else None), lines


class Client:
    """The generated stubs plus small helpers to build requests."""

    def __init__(self, grpc, port):
        import grpc_service_pb2 as pb
        import grpc_service_pb2_grpc as pb_grpc
        import health_pb2
        import health_pb2_grpc
        self.grpc, self.pb, self.health_pb = grpc, pb, health_pb2
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
            ("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    def raw_request(self, x, model="mlp", rid="", name="input", datatype="FP32", shape=None):
        req = self.pb.ModelInferRequest(model_name=model, id=rid)
        t = req.inputs.add(name=name, datatype=datatype)
        t.shape.extend(list(x.shape) if shape is None else shape)
        req.raw_input_contents.append(x.tobytes())
        return req

    def typed_request(self, x, rid=""):
        req = self.pb.ModelInferRequest(model_name="mlp", id=rid)
        t = req.inputs.add(name="input", datatype="FP32")
        t.shape.extend(x.shape)
        t.contents.fp32_contents.extend(x.reshape(-1).tolist())
        return req

    def error_of(self, call, *args, **kwargs):
        """(code, details) of a call expected to fail; (OK, '') when it succeeded."""
        try:
            call(*args, timeout=60, **kwargs)
            return self.grpc.StatusCode.OK, ""
        except self.grpc.RpcError as e:
            return e.code(), e.details() or ""


def output_array(resp, index=0):
    out = resp.outputs[index]
    if out.datatype != "FP32":
        check(False, f"output '{out.name}' datatype FP32 (got {out.datatype})")
    return np.frombuffer(resp.raw_output_contents[index], dtype=np.float32).reshape(list(out.shape))


def check_metadata(c, zoo):
    pb = c.pb
    check(c.stub.ServerLive(pb.ServerLiveRequest()).live, "ServerLive: live")
    check(c.stub.ServerReady(pb.ServerReadyRequest()).ready, "ServerReady: ready")
    meta = c.stub.ServerMetadata(pb.ServerMetadataRequest())
    check(meta.name == "hearth" and meta.version != "", f"ServerMetadata: {meta.name} {meta.version}")
    m = c.stub.ModelMetadata(pb.ModelMetadataRequest(name="mlp"))
    inputs = [(t.name, t.datatype, list(t.shape)) for t in m.inputs]
    outputs = [(t.name, t.datatype, list(t.shape)) for t in m.outputs]
    check(m.name == "mlp" and list(m.versions) == ["1"] and inputs == [("input", "FP32", [-1, 64])]
          and outputs == [("output", "FP32", [-1, 10])], f"ModelMetadata: {m.versions} {inputs} {outputs} {m.platform}")
    cfg = c.stub.ModelConfig(pb.ModelConfigRequest(name="mlp")).config
    check(cfg.name == "mlp" and cfg.max_batch_size == 8, f"ModelConfig: name {cfg.name!r} max_batch_size {cfg.max_batch_size}")
    check(c.stub.ModelReady(pb.ModelReadyRequest(name="mlp")).ready, "ModelReady mlp: ready")
    check(c.stub.ModelReady(pb.ModelReadyRequest(name="mlp", version="1")).ready, "ModelReady mlp version 1: ready")
    code, _ = c.error_of(c.stub.ModelReady, pb.ModelReadyRequest(name="broken"))
    broken_ready = code == c.grpc.StatusCode.OK and c.stub.ModelReady(pb.ModelReadyRequest(name="broken")).ready
    check(not broken_ready, f"ModelReady broken: not ready ({code})")
    code, details = c.error_of(c.stub.ModelMetadata, pb.ModelMetadataRequest(name="nope"))
    check(code == c.grpc.StatusCode.NOT_FOUND and "nope" in details, f"ModelMetadata unknown model: {code} {details!r}")
    hs = c.health_pb.HealthCheckResponse
    for service in ("", "inference.GRPCInferenceService"):
        status = c.health.Check(c.health_pb.HealthCheckRequest(service=service), timeout=10).status
        check(status == hs.SERVING, f"grpc.health.v1 Check({service!r}): {hs.ServingStatus.Name(status)}")


def check_inference(c, zoo):
    pb = c.pb
    for name in ("mlp", "mlp.b4"):
        x = np.load(os.path.join(zoo, name + ".in.npy")).astype(np.float32)
        ref = np.load(os.path.join(zoo, name + ".out.npy"))
        resp = c.stub.ModelInfer(c.raw_request(x, rid="raw-" + name), timeout=60)
        y = output_array(resp)
        err = rel_l2(y, ref)
        check(resp.model_name == "mlp" and resp.model_version == "1" and resp.id == "raw-" + name
              and [o.name for o in resp.outputs] == ["output"] and list(y.shape) == list(ref.shape) and err <= 1e-4,
              f"ModelInfer raw {name}: id {resp.id!r}, shape {list(y.shape)}, relative L2 {err:.2e}")
    x = np.load(os.path.join(zoo, "mlp.in.npy")).astype(np.float32)
    ref = np.load(os.path.join(zoo, "mlp.out.npy"))
    resp = c.stub.ModelInfer(c.typed_request(x, rid="typed"), timeout=60)
    err = rel_l2(output_array(resp), ref)
    check(resp.id == "typed" and err <= 1e-4, f"ModelInfer typed fp32_contents: relative L2 {err:.2e}")
    other = c.stub.ModelInfer(c.raw_request(x * -0.5 + 0.25), timeout=60)
    check(other.raw_output_contents[0] != resp.raw_output_contents[0], "output changes when the input does")

    req = c.raw_request(x, rid="subset")
    req.outputs.add(name="output")
    resp = c.stub.ModelInfer(req, timeout=60)
    check([o.name for o in resp.outputs] == ["output"] and len(resp.raw_output_contents) == 1,
          f"requested output subset: {[o.name for o in resp.outputs]}")
    req = c.raw_request(x)
    req.parameters["timeout"].int64_param = 30_000_000
    code, details = c.error_of(c.stub.ModelInfer, req)
    check(code == c.grpc.StatusCode.OK, f"parameter timeout (int64 us) accepted: {code} {details!r}")


def check_errors(c, zoo):
    """Each bad request fails with the right code and a message naming the
    problem; a good request right after still works."""
    pb, codes = c.pb, c.grpc.StatusCode
    x = np.load(os.path.join(zoo, "mlp.in.npy")).astype(np.float32)
    ref = np.load(os.path.join(zoo, "mlp.out.npy"))

    def expect(what, req, code, words):
        got, details = c.error_of(c.stub.ModelInfer, req)
        named = all(w.lower() in details.lower() for w in words)
        check(got == code and named, f"{what}: {got} {details!r}")
        resp = c.stub.ModelInfer(c.raw_request(x), timeout=60)
        check(rel_l2(output_array(resp), ref) <= 1e-4, f"good request works after {what}")

    expect("wrong shape", c.raw_request(x.reshape(2, 32)), codes.INVALID_ARGUMENT, ["input", "shape"])
    expect("wrong datatype", c.raw_request(x.astype(np.float64), datatype="FP64"), codes.INVALID_ARGUMENT,
           ["input", "FP64"])
    expect("unknown datatype", c.raw_request(x, datatype="FP99"), codes.INVALID_ARGUMENT, ["input", "FP99"])
    expect("unknown input", c.raw_request(x, name="nope"), codes.INVALID_ARGUMENT, ["nope"])
    expect("unknown model", c.raw_request(x, model="nope"), codes.NOT_FOUND, ["nope"])
    expect("unavailable model", c.raw_request(x, model="broken"), codes.UNAVAILABLE, ["broken"])
    expect("raw length mismatch", c.raw_request(x[:, :63], shape=[1, 64]), codes.INVALID_ARGUMENT,
           ["input", "raw_input_contents", "252", "256"])
    req = c.raw_request(x)
    req.inputs[0].contents.fp32_contents.extend([1.0] * 64)
    expect("raw and typed contents mixed", req, codes.INVALID_ARGUMENT, ["input", "raw"])
    req = c.typed_request(x)
    req.raw_input_contents.append(x.tobytes())
    req.raw_input_contents.append(x.tobytes())
    expect("raw count differs from inputs", req, codes.INVALID_ARGUMENT, ["raw_input_contents", "2"])
    req = pb.ModelInferRequest(model_name="mlp")
    t = req.inputs.add(name="input", datatype="FP32", shape=[1, 64])
    t.contents.int64_contents.extend([1] * 64)
    expect("typed contents in the wrong field", req, codes.INVALID_ARGUMENT, ["input", "fp32_contents", "int64_contents"])
    req = c.typed_request(x[:, :10])
    req.inputs[0].shape[:] = [1, 64]
    expect("typed count mismatch", req, codes.INVALID_ARGUMENT, ["input", "64", "10"])
    req = c.raw_request(x)
    req.outputs.add(name="nope")
    expect("unknown requested output", req, codes.INVALID_ARGUMENT, ["nope"])
    req = c.raw_request(x)
    req.parameters["timeout"].string_param = "soon"
    expect("timeout parameter of the wrong type", req, codes.INVALID_ARGUMENT, ["timeout"])
    big = np.zeros(17 << 20, dtype=np.float32)  # 68 MiB, over the 64 MiB default limit
    expect("message over the size limit", c.raw_request(big, shape=[1, big.size]), codes.RESOURCE_EXHAUSTED, [])
    # Compressed, the same 68 MiB of zeros is a few hundred KiB on the wire: the
    # limit holds for the decompressed size (issue 17).
    try:
        c.stub.ModelInfer(c.raw_request(big, shape=[1, big.size]), timeout=60, compression=c.grpc.Compression.Gzip)
        check(False, "a gzip message decompressing past the limit is refused")
    except c.grpc.RpcError as e:
        check(e.code() == codes.RESOURCE_EXHAUSTED,
              f"a gzip message decompressing past the limit is refused: {e.code()} {e.details()!r}")
    resp = c.stub.ModelInfer(c.raw_request(x), timeout=60, compression=c.grpc.Compression.Gzip)
    check(rel_l2(output_array(resp), ref) <= 1e-4, "a gzip-compressed request within the limit is answered")

    code, _ = c.error_of(c.stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="mlp"))
    check(code == codes.FAILED_PRECONDITION, f"RepositoryModelLoad outside explicit mode: {code}")
    code, _ = c.error_of(c.stub.RepositoryModelUnload, pb.RepositoryModelUnloadRequest(model_name="mlp"))
    check(code == codes.FAILED_PRECONDITION, f"RepositoryModelUnload outside explicit mode: {code}")
    # Triton's classification extension is refused by name, never ignored (issue 22).
    req = c.raw_request(np.load(os.path.join(zoo, "mlp.in.npy")).astype(np.float32))
    req.outputs.add(name="output").parameters["classification"].int64_param = 3
    code, details = c.error_of(c.stub.ModelInfer, req)
    check(code == codes.INVALID_ARGUMENT and "classification extension" in details,
          f"classification: refused naming the extension ({code} {details!r})")
    # Extensions Hearth does not serve answer UNIMPLEMENTED naming them (issue 22).
    for rpc, ext in (("SystemSharedMemoryStatus", "system shared memory"),
                     ("SystemSharedMemoryRegister", "system shared memory"),
                     ("CudaSharedMemoryUnregister", "CUDA shared memory"), ("TraceSetting", "trace"),
                     ("LogSettings", "logging")):
        code, details = c.error_of(getattr(c.stub, rpc), getattr(pb, rpc + "Request")())
        check(code == codes.UNIMPLEMENTED and f"the {ext} extension is not supported" in details,
              f"{rpc}: UNIMPLEMENTED naming the extension ({code} {details!r})")


def check_stream(c, zoo):
    x = np.load(os.path.join(zoo, "mlp.in.npy")).astype(np.float32)
    ref = np.load(os.path.join(zoo, "mlp.out.npy"))
    requests = [c.raw_request(x, rid="s1"), c.raw_request(x.reshape(2, 32), rid="s2"), c.typed_request(x, rid="s3")]
    answers = list(c.stub.ModelStreamInfer(iter(requests), timeout=60))
    check(len(answers) == 3, f"ModelStreamInfer: 3 requests, {len(answers)} answers")
    if len(answers) != 3:
        return
    for k in (0, 2):
        a = answers[k]
        ok = a.error_message == "" and a.infer_response.id == f"s{k + 1}"
        check(ok and rel_l2(output_array(a.infer_response), ref) <= 1e-4, f"stream answer {k + 1}: {a.error_message!r}")
    bad = answers[1]
    check("input" in bad.error_message and bad.infer_response.id == "s2",
          f"stream answer 2 carries the error: {bad.error_message!r}, id {bad.infer_response.id!r}")
    check(all("triton_final_response" not in a.infer_response.parameters for a in answers),
          "no triton_final_response unless the request asks for it")

    # enable_empty_final_response (tritonclient's stream final flag): each answer,
    # error or not, is marked final, since every model here answers once.
    flagged = [c.raw_request(x, rid="f1"), c.raw_request(x, rid="f2", model="nope")]
    for r in flagged:
        r.parameters["enable_empty_final_response"].bool_param = True
    answers = list(c.stub.ModelStreamInfer(iter(flagged), timeout=60))
    check(len(answers) == 2 and all(a.infer_response.parameters["triton_final_response"].bool_param for a in answers),
          f"enable_empty_final_response: every answer has triton_final_response=true ({len(answers)} answers)")

    # A longer stream (requests pipelined on the server) answers in request order.
    x4 = np.load(os.path.join(zoo, "mlp.b4.in.npy")).astype(np.float32)
    ref4 = np.load(os.path.join(zoo, "mlp.b4.out.npy"))
    many = []
    for i in range(60):
        if i % 7 == 3:
            many.append(c.raw_request(x, rid=f"m{i}", model="nope"))
        else:
            many.append(c.raw_request(x4[i % 4:i % 4 + 1], rid=f"m{i}"))
    answers = list(c.stub.ModelStreamInfer(iter(many), timeout=120))
    ids = [a.infer_response.id for a in answers]
    good = all((a.error_message != "") == (i % 7 == 3) for i, a in enumerate(answers))
    close = all(rel_l2(output_array(a.infer_response), ref4[i % 4:i % 4 + 1]) <= 1e-4
                for i, a in enumerate(answers) if i % 7 != 3)
    check(ids == [f"m{i}" for i in range(60)] and good and close,
          f"stream of 60 requests answered in order, errors in place ({len(answers)} answers)")

    # A client that cancels its stream midway leaves the server serving.
    def endless():
        i = 0
        while True:
            yield c.raw_request(x, rid=f"e{i}")
            i += 1
            time.sleep(0.002)

    call = c.stub.ModelStreamInfer(endless(), timeout=60)
    got = 0
    for _ in call:
        got += 1
        if got == 20:
            call.cancel()
            break
    resp = c.stub.ModelInfer(c.raw_request(x, rid="after-cancel"), timeout=60)
    check(got == 20 and resp.id == "after-cancel", f"stream cancelled after {got} answers; the server still serves")


def mlp_stats(c):
    resp = c.stub.ModelStatistics(c.pb.ModelStatisticsRequest(name="mlp"), timeout=30)
    rows = [s for s in resp.model_stats if s.name == "mlp"]
    return rows[0] if rows else None


def check_statistics(c, zoo):
    x = np.load(os.path.join(zoo, "mlp.in.npy")).astype(np.float32)
    before = mlp_stats(c)
    check(before is not None, "ModelStatistics has a row for mlp")
    if before is None:
        return
    for _ in range(3):
        c.stub.ModelInfer(c.raw_request(x), timeout=60)
    after = mlp_stats(c)
    s0, s1 = before.inference_stats, after.inference_stats
    check(after.version == "1" and after.inference_count >= before.inference_count + 3
          and after.execution_count > before.execution_count and s1.success.count >= s0.success.count + 3
          and s1.success.ns > s0.success.ns and after.last_inference > 0,
          f"statistics grow after 3 inferences: inference_count {before.inference_count} -> {after.inference_count}, "
          f"execution_count {before.execution_count} -> {after.execution_count}, "
          f"success {s0.success.count} -> {s1.success.count}")
    sizes = [b.batch_size for b in after.batch_stats]
    check(len(sizes) > 0 and sizes == sorted(sizes) and all(b.compute_infer.count > 0 for b in after.batch_stats),
          f"batch statistics per batch size: {sizes}")
    all_rows = c.stub.ModelStatistics(c.pb.ModelStatisticsRequest(), timeout=30).model_stats
    check(any(s.name == "mlp" for s in all_rows), "ModelStatistics without a name lists mlp")
    code, _ = c.error_of(c.stub.ModelStatistics, c.pb.ModelStatisticsRequest(name="nope"))
    check(code == c.grpc.StatusCode.NOT_FOUND, f"ModelStatistics unknown model: {code}")


def check_index(c, zoo):
    index = {m.name: m for m in c.stub.RepositoryIndex(c.pb.RepositoryIndexRequest(), timeout=30).models}
    mlp, broken = index.get("mlp"), index.get("broken")
    check(mlp is not None and mlp.state == "READY" and mlp.version == "1",
          f"RepositoryIndex: mlp {mlp.state if mlp else None}")
    check(broken is not None and broken.state == "UNAVAILABLE" and broken.reason != "",
          f"RepositoryIndex: broken {broken.state if broken else None} ({broken.reason if broken else ''!r})")
    ready = [m.name for m in c.stub.RepositoryIndex(c.pb.RepositoryIndexRequest(ready=True), timeout=30).models]
    check("mlp" in ready and "broken" not in ready, f"RepositoryIndex ready only: {ready}")


def check_concurrency(c, zoo):
    x = np.load(os.path.join(zoo, "mlp.in.npy")).astype(np.float32)
    ref = np.load(os.path.join(zoo, "mlp.out.npy"))
    results = []

    def client(k):
        for i in range(10):
            try:
                resp = c.stub.ModelInfer(c.raw_request(x, rid=f"t{k}-{i}"), timeout=60)
                y = np.frombuffer(resp.raw_output_contents[0], dtype=np.float32).reshape(list(resp.outputs[0].shape))
                results.append(resp.id == f"t{k}-{i}" and rel_l2(y, ref) <= 1e-4)
            except Exception as e:  # noqa: BLE001 - any failure counts
                print(f"     thread {k}: {e}", flush=True)
                results.append(False)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(len(results) == 80 and all(results), f"8 concurrent clients: {sum(results)}/80 correct")


def check_strict_readiness(grpc, hearth, repo):
    """With strict readiness (the default) the broken model makes the server
    not ready, and the gRPC health service says NOT_SERVING."""
    proc, port, lines = start_server(hearth, repo)
    try:
        check(port is not None, "strict-readiness server logs its gRPC port")
        if port is None:
            return
        c = Client(grpc, port)
        live = c.stub.ServerLive(c.pb.ServerLiveRequest()).live
        ready = c.stub.ServerReady(c.pb.ServerReadyRequest()).ready
        hs = c.health_pb.HealthCheckResponse
        status = c.health.Check(c.health_pb.HealthCheckRequest(), timeout=10).status
        check(live and not ready and status == hs.NOT_SERVING,
              f"strict readiness with a broken model: live {live}, ready {ready}, health {hs.ServingStatus.Name(status)}")
        c.channel.close()
    finally:
        stop_server(proc)


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    hearth, zoo, source = (os.path.abspath(a) for a in sys.argv[1:])
    try:
        import grpc
    except ImportError:
        print("FAIL python3-grpcio is not installed")
        return 1
    tmp = tempfile.mkdtemp(prefix="hearth_grpc_e2e_")
    proc, lines = None, []
    try:
        generate_stubs(source, tmp)
        repo = os.path.join(tmp, "repo")
        make_repository(repo, zoo)
        # Not strict: the broken model must not make the whole server unready.
        proc, port, lines = start_server(hearth, repo, ["--strict-readiness", "false", "--access-log"])
        check(port is not None, f"server logs a 'listening' event for gRPC (port {port})")
        if port is None:
            return 1
        c = Client(grpc, port)
        for step in (check_metadata, check_inference, check_errors, check_stream, check_statistics, check_index,
                     check_concurrency):
            try:
                step(c, zoo)
            except Exception as e:  # noqa: BLE001 - report and go on with the next group
                check(False, f"{step.__name__} raised {type(e).__name__}: {e}")
        c.channel.close()
        calls = [json.loads(l) for l in lines if '"event":"grpc_request"' in l]
        infer = [e for e in calls if e.get("method") == "ModelInfer"]
        check(infer and all(k in infer[0] for k in ("peer", "code", "duration_us", "request_id")),
              f"--access-log: one grpc_request line per call ({len(calls)} lines, e.g. {infer[:1]})")
        check(any(e.get("method") == "ModelInfer" and e.get("code") == "NOT_FOUND" for e in calls),
              "--access-log: failed calls are logged with their status code")
        rc = stop_server(proc)
        check(rc == 0, f"server exits 0 on SIGTERM (rc {rc})")
        check_strict_readiness(grpc, hearth, repo)
    finally:
        if proc is not None:
            stop_server(proc)
            if FAILURES:
                print("---- server output (last 40 lines) ----")
                print("\n".join(lines[-40:]))
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(FAILURES)} failure(s)" if FAILURES else "all gRPC checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
