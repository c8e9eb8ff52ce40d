#!/usr/bin/python3
"""Small gRPC load client for bench/serve: closed-loop KServe v2 ModelInfer calls with
raw_input_contents from several processes (a few threads each), so the Python client
limits the number less. Stubs are generated at run time (protoc + grpc_python_plugin)
from src/frontend/proto and src/repository/proto into a temporary folder: only the public protocol is used.

  grpc_load.py --target 127.0.0.1:8001 --model mlp --input build/zoo/mlp.in.npy
"""
import argparse, json, multiprocessing as mp, os, subprocess, sys, tempfile, threading, time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO_DIR = os.path.join(ROOT, "src", "frontend", "proto")
CONFIG_PROTO_DIR = os.path.join(ROOT, "src", "repository", "proto")


def generate_stubs(out_dir, proto_dir=PROTO_DIR):
    """Compiles grpc_service.proto and model_config.proto into Python modules in out_dir."""
    cmd = ["protoc", "-I", proto_dir, "-I", CONFIG_PROTO_DIR, "--python_out", out_dir, "--grpc_python_out", out_dir,
           "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
           os.path.join(proto_dir, "grpc_service.proto"), os.path.join(CONFIG_PROTO_DIR, "model_config.proto")]
    subprocess.run(cmd, check=True)


def worker(args, stub_dir, barrier, results):
    """One process: `conc` threads, each calling ModelInfer back to back until the deadline."""
    import grpc
    sys.path.insert(0, stub_dir)
    import grpc_service_pb2 as pb2, grpc_service_pb2_grpc as pb2_grpc  # generated at run time
    stub = pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(args.target))
    array = np.load(args.input).astype(np.float32)
    req = pb2.ModelInferRequest(model_name=args.model, raw_input_contents=[array.tobytes()])
    req.inputs.add(name="input", datatype="FP32", shape=list(array.shape))
    for _ in range(20):  # warm up the channel before the clock starts; errors count later
        try:
            stub.ModelInfer(req, timeout=10)
        except grpc.RpcError:
            pass
    barrier.wait(timeout=120)
    deadline = time.perf_counter() + args.seconds
    lat, errors, first_error = [], [0], []

    def loop():
        mine = []
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                resp = stub.ModelInfer(req, timeout=5)
                if len(resp.raw_output_contents) != 1:
                    raise RuntimeError("response without raw_output_contents")
                mine.append(time.perf_counter() - t0)
            except Exception as e:  # grpc.RpcError or a bad answer
                errors[0] += 1
                first_error.append(str(e)[:200])
        lat.extend(mine)

    threads = [threading.Thread(target=loop) for _ in range(args.conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    path = os.path.join(stub_dir, f"lat{os.getpid()}.npy")  # a file: a big pickle could block in the pipe
    np.save(path, np.array(lat, dtype=np.float64))
    results.put((path, errors[0], first_error[:1]))


def run_load(args, stub_dir):
    ctx = mp.get_context("spawn")  # no gRPC state crosses a fork
    barrier, results = ctx.Barrier(args.procs), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(args, stub_dir, barrier, results)) for _ in range(args.procs)]
    for p in procs:
        p.start()
    parts = [results.get(timeout=args.seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    lat = np.concatenate([np.load(p[0]) for p in parts] + [np.zeros(0)]) * 1e3
    first = [e for p in parts for e in p[2]]
    pct = lambda q: float(np.percentile(lat, q)) if lat.size else 0.0
    return {"requests": int(lat.size), "errors": int(sum(p[1] for p in parts)), "qps": lat.size / args.seconds,
            "p50_ms": pct(50), "p99_ms": pct(99), "procs": args.procs, "conc": args.conc,
            "first_error": first[0] if first else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", required=True, help="host:port of the gRPC endpoint")
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--input", required=True, help=".npy file with the FP32 input tensor named 'input'")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--procs", type=int, default=4, help="client processes")
    ap.add_argument("--conc", type=int, default=2, help="threads (requests in flight) per process")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hearth_stubs_") as stub_dir:
        generate_stubs(stub_dir)
        print(json.dumps(run_load(args, stub_dir)))


if __name__ == "__main__":
    main()
