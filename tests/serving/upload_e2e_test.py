#!/usr/bin/python3
"""Model upload end to end: Triton's repository load with parameters
("config" + "file:<version>/<name>") over REST (base64 file contents) and over
gRPC (bytes_param, stubs generated from Hearth's .proto like grpc_e2e_test.py).

Starts `hearth serve --model-control-mode explicit --insecure-no-auth` on
127.0.0.1 over an empty repository inside a private temporary folder, then:
  - uploads the zoo MLP as a new model over REST and over gRPC, infers on it and
    compares with the zoo's reference output; checks the files landed in the
    repository (mode 0640) and no staging folder is left;
  - uploads a second version: it takes over; the same version again is refused
    (400 / ALREADY_EXISTS "upload a new version number");
  - refuses traversal and odd names ("file:../x", "file:1/../../etc/passwd",
    "file:/abs", "file:1/.hidden", "file:01/model.onnx"), unknown parameters,
    files without "config", wrong parameter types: 400 / INVALID_ARGUMENT naming
    the problem, and nothing written (repository and its parent folder listed
    before and after);
  - a broken model upload fails with the reason, is rolled back, and the
    previous version keeps serving;
  - after a restart (--load-model *) the uploaded models serve from disk.

usage: upload_e2e_test.py HEARTH_BINARY ZOO_DIR SOURCE_DIR
"""
import base64
import json
import os
import shutil
import stat
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_util import FAILURES, check, http_json, launch_server, rel_l2, stop_server  # noqa: E402
from grpc_e2e_test import generate_stubs  # noqa: E402

CONFIG = json.dumps({"max_batch_size": 8, "dynamic_batching": {}})
BAD_PATHS = [("../x", "'..' is not allowed"), ("1/../../etc/passwd", "'..' is not allowed"),
             ("/abs", "absolute path"), ("1/.hidden", "may not start with '.'"),
             ("01/model.onnx", "not a positive integer")]


def start_server(hearth, repo):
    return launch_server([hearth, "serve", "--insecure-no-auth", "--model-repository", repo,
                          "--model-control-mode", "explicit", "--load-model", "*", "--http-address", "127.0.0.1",
                          "--grpc-address", "127.0.0.1", "--http-port", "0", "--grpc-port", "0",
                          "--metrics-port", "0", "--threads", "2"])


http = http_json


def listing(tmp):
    """Every path under the private temp folder (the repository's parent) with its size."""
    out = set()
    for root, dirs, files in os.walk(tmp):
        for name in dirs + files:
            p = os.path.join(root, name)
            out.add((os.path.relpath(p, tmp), os.path.getsize(p) if os.path.isfile(p) else -1))
    return out


def rest_upload(port, model, params):
    return http(port, "POST", f"/v2/repository/models/{model}/load", {"parameters": params})


def rest_infer(port, model, x):
    body = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                        "data": x.reshape(-1).tolist()}]}
    status, text = http(port, "POST", f"/v2/models/{model}/infer", body)
    if status != 200:
        return status, None, None
    doc = json.loads(text)
    out = doc["outputs"][0]
    return status, doc.get("model_version"), np.array(out["data"], dtype=np.float32).reshape(out["shape"])


def check_rest(port, tmp, repo, mlp, x, ref):
    b64 = base64.b64encode(mlp).decode()
    status, text = rest_upload(port, "up_rest", {"config": CONFIG, "file:1/model.onnx": b64,
                                                 "file:1/extra/README": base64.b64encode(b"notes").decode()})
    check(status == 200, f"REST upload of a new model: 200 (got {status} {text[:200]})")
    status, version, y = rest_infer(port, "up_rest", x)
    check(status == 200 and version == "1" and rel_l2(y, ref) <= 1e-4,
          f"REST: the uploaded model infers like the reference (status {status}, version {version})")
    model_file = os.path.join(repo, "up_rest", "1", "model.onnx")
    mode = stat.S_IMODE(os.stat(model_file).st_mode) if os.path.exists(model_file) else None
    check(mode == 0o640 and open(model_file, "rb").read() == mlp,
          f"REST: the file is in the repository with mode 0640 (mode {oct(mode) if mode else None})")
    check(not [n for n in os.listdir(repo) if n.startswith(".upload")], "REST: no staging folder left")

    status, text = rest_upload(port, "up_rest", {"config": CONFIG, "file:2/model.onnx": b64})
    status_i, version, _ = rest_infer(port, "up_rest", x)
    check(status == 200 and status_i == 200 and version == "2", f"REST: version 2 takes over (got {status}, {version})")
    status, text = rest_upload(port, "up_rest", {"config": CONFIG, "file:2/model.onnx": b64})
    check(status == 400 and "version 2 of 'up_rest' exists; upload a new version number" in text,
          f"REST: an existing version is refused (got {status} {text[:200]})")

    before = listing(tmp)
    for path, why in BAD_PATHS:
        status, text = rest_upload(port, "up_rest", {"config": CONFIG, "file:3/model.onnx": b64, "file:" + path: "eA=="})
        check(status == 400 and why in text and f"file:{path}" in text,
              f"REST: 'file:{path}' refused with 400 naming it (got {status} {text[:200]})")
    for params, why in (({"unload_dependents": True}, "'unload_dependents' is not supported"),
                        ({"file:3/model.onnx": b64}, "needs the"),
                        ({"config": CONFIG, "file:3/model.onnx": "***"}, "not valid base64"),
                        ({"config": "{\"no_such_field\": 1}", "file:3/model.onnx": b64}, "no_such_field")):
        status, text = rest_upload(port, "up_rest", params)
        check(status == 400 and why in text, f"REST: {sorted(params)} refused naming {why} (got {status} {text[:200]})")
    status, text = http(port, "POST", "/v2/repository/models/..%2Fescape/load",
                        {"parameters": {"config": CONFIG, "file:1/model.onnx": b64}})
    check(status == 400, f"REST: model name '../escape' refused (got {status} {text[:160]})")
    check(listing(tmp) == before, "REST: refused uploads wrote nothing (repository and its parent unchanged)")

    status, text = rest_upload(port, "up_rest", {"config": CONFIG,
                                                 "file:3/model.onnx": base64.b64encode(b"not ONNX").decode()})
    status_i, version, _ = rest_infer(port, "up_rest", x)
    check(status == 400 and "rolled back" in text and listing(tmp) == before,
          f"REST: a broken upload fails with the reason and is rolled back (got {status} {text[:200]})")
    check(status_i == 200 and version == "2", f"REST: version 2 keeps serving after it (got {status_i}, {version})")


def check_grpc(port, repo, mlp, x, ref):
    import grpc
    import grpc_service_pb2 as pb
    import grpc_service_pb2_grpc as pb_grpc
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=30)
    stub = pb_grpc.GRPCInferenceServiceStub(channel)

    def load(model, files, config=CONFIG, string_files=False):
        req = pb.RepositoryModelLoadRequest(model_name=model)
        if config is not None:
            req.parameters["config"].string_param = config
        for path, data in files.items():
            if string_files:
                req.parameters["file:" + path].string_param = data.decode(errors="replace")
            else:
                req.parameters["file:" + path].bytes_param = data
        try:
            stub.RepositoryModelLoad(req, timeout=60)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            return e.code(), e.details() or ""

    def infer(model):
        req = pb.ModelInferRequest(model_name=model)
        t = req.inputs.add(name="input", datatype="FP32")
        t.shape.extend(x.shape)
        req.raw_input_contents.append(x.astype(np.float32).tobytes())
        resp = stub.ModelInfer(req, timeout=60)
        y = np.frombuffer(resp.raw_output_contents[0], dtype=np.float32).reshape(list(resp.outputs[0].shape))
        return resp.model_version, y

    code, details = load("up_grpc", {"1/model.onnx": mlp})
    check(code == grpc.StatusCode.OK, f"gRPC upload with bytes_param: OK (got {code} {details[:200]})")
    version, y = infer("up_grpc")
    check(version == "1" and rel_l2(y, ref) <= 1e-4, f"gRPC: the uploaded model infers like the reference ({version})")
    check(os.path.isfile(os.path.join(repo, "up_grpc", "1", "model.onnx")), "gRPC: the file is in the repository")
    code, details = load("up_grpc", {"1/model.onnx": mlp})
    check(code == grpc.StatusCode.ALREADY_EXISTS and "upload a new version number" in details,
          f"gRPC: an existing version is ALREADY_EXISTS (got {code} {details[:200]})")
    for path, why in BAD_PATHS:
        code, details = load("up_grpc", {"2/model.onnx": mlp, path: b"x"})
        check(code == grpc.StatusCode.INVALID_ARGUMENT and why in details,
              f"gRPC: 'file:{path}' is INVALID_ARGUMENT naming it (got {code} {details[:200]})")
    code, details = load("up_grpc", {"2/model.onnx": b"m"}, string_files=True)
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "bytes_param" in details,
          f"gRPC: a file as string_param is refused (got {code} {details[:200]})")
    code, details = load("up_grpc", {"2/model.onnx": mlp}, config=None)
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "config" in details,
          f"gRPC: files without config are refused (got {code} {details[:200]})")
    code, details = load("up_grpc", {"2/model.onnx": mlp})
    version, _ = infer("up_grpc")
    check(code == grpc.StatusCode.OK and version == "2", f"gRPC: version 2 upload serves (got {code}, {version})")

    # tritonclient's unload_model() always sends unload_dependents (issue 22).
    def unload(model, **params):
        req = pb.RepositoryModelUnloadRequest(model_name=model)
        for key, value in params.items():
            if isinstance(value, bool):
                req.parameters[key].bool_param = value
            else:
                req.parameters[key].string_param = value
        try:
            stub.RepositoryModelUnload(req, timeout=60)
            return grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            return e.code(), e.details() or ""

    code, details = unload("up_grpc", unload_dependents="yes")
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "must be a bool_param" in details,
          f"gRPC: unload_dependents as a string is refused (got {code} {details[:200]})")
    code, details = unload("up_grpc", something_else=True)
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "'something_else' is not supported" in details,
          f"gRPC: an unknown unload parameter is named (got {code} {details[:200]})")
    code, details = unload("up_grpc", unload_dependents=False)
    check(code == grpc.StatusCode.OK, f"gRPC: unload with unload_dependents=false, as tritonclient sends it ({code} {details})")
    try:
        stub.ModelInfer(pb.ModelInferRequest(model_name="up_grpc"), timeout=10)
        check(False, "gRPC: the unloaded model no longer answers")
    except grpc.RpcError as e:
        check(e.code() != grpc.StatusCode.OK, f"gRPC: the unloaded model no longer answers ({e.code()})")
    channel.close()


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    hearth, zoo, source = sys.argv[1:4]
    tmp = tempfile.mkdtemp(prefix="hearth_upload_")
    proc, lines = None, []
    try:
        stubs = os.path.join(tmp, "stubs")
        os.makedirs(stubs)
        generate_stubs(source, stubs)
        tmp_models = os.path.join(tmp, "area")  # the repository's parent holds nothing else
        repo = os.path.join(tmp_models, "repo")
        os.makedirs(repo)
        with open(os.path.join(zoo, "mlp.onnx"), "rb") as f:
            mlp = f.read()
        x = np.load(os.path.join(zoo, "mlp.in.npy")).astype(np.float32)
        ref = np.load(os.path.join(zoo, "mlp.out.npy"))
        proc, ports, lines = start_server(hearth, repo)
        check(len(ports) == 3, f"server listens on http, grpc and metrics ({ports})")
        if len(ports) < 3:
            return 1
        for step in (lambda: check_rest(ports["http"], tmp_models, repo, mlp, x, ref),
                     lambda: check_grpc(ports["grpc"], repo, mlp, x, ref)):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - report and go on
                check(False, f"step raised {type(e).__name__}: {e}")
        check(stop_server(proc) == 0, "server exits 0 on SIGTERM")
        proc, ports, lines = start_server(hearth, repo)
        if len(ports) == 3:
            for model in ("up_rest", "up_grpc"):
                status, version, y = rest_infer(ports["http"], model, x)
                check(status == 200 and version == "2" and rel_l2(y, ref) <= 1e-4,
                      f"after a restart {model} version 2 serves from the repository (got {status}, {version})")
        else:
            check(False, "server restarts over the uploaded repository")
    finally:
        if proc is not None:
            stop_server(proc)
            if FAILURES:
                print("---- server output (last 40 lines) ----")
                print("\n".join(lines[-40:]))
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(FAILURES)} failure(s)" if FAILURES else "all upload checks passed")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
