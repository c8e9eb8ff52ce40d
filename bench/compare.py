#!/usr/bin/python3
"""Hearth vs ONNX Runtime, side by side, on the reference zoo.

Usage: /usr/bin/python3 bench/compare.py [--models a,b] [--threads 1,2] [--batches 1,8] [--rounds 5]

For every model x threads x batch it alternates rounds A B A B (Hearth, then
ONNX Runtime from npm onnxruntime-node), each process warming up before its
timed runs, and reports the median over rounds of each round's median latency,
the ratio Hearth/ORT, each side's peak RSS, and both outputs' relative L2 error
against PyTorch (batch 1 reference input). Writes build/reports/compare.json.
Run `make bench-compare` to install the peer first.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
HEARTH = os.path.join(BUILD, "hearth")
ZOO = os.path.join(BUILD, "zoo")
ORT_BENCH = os.path.join(ROOT, "bench", "ort_bench.js")
MODELS = ["mlp", "resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "squeezenet1_1",
          "efficientnet_b0", "bert_encoder"]


def input_shape(model, batch):
    if model == "mlp":
        return [batch, 64]
    if model == "bert_encoder":
        return [batch, 128]
    return [batch, 3, 224, 224]


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def hearth_round(model, threads, shape, iterations):
    j = run_json([HEARTH, "bench", os.path.join(ZOO, model + ".onnx"), "--json", "--threads", str(threads),
                  "--shape", "input=" + "x".join(map(str, shape)), "--iterations", str(iterations),
                  "--warmup", "3", "--min-seconds", "0"])
    return j["median_ms"], j["peak_rss_mib"], j["load_ms"] + j["first_run_ms"]


def ort_round(model, threads, shape, iterations):
    j = run_json(["node", ORT_BENCH, os.path.join(ZOO, model + ".onnx"), "--threads", str(threads),
                  "--shape", "x".join(map(str, shape)), "--iterations", str(iterations), "--warmup", "3"])
    return statistics.median(j["times_ms"]), j["peak_rss_mib"], j["load_ms"] + j["first_run_ms"]


def rel_err(a, b):
    return float(np.linalg.norm(a.astype(np.float64) - b) / max(np.linalg.norm(b), 1e-30))


def errors(model):
    ref_in = os.path.join(ZOO, model + ".in.npy")
    ref_out = np.load(os.path.join(ZOO, model + ".out.npy"))
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([HEARTH, "run", os.path.join(ZOO, model + ".onnx"), "--input", "input=" + ref_in,
                        "--output-dir", tmp], check=True, capture_output=True)
        h = rel_err(np.load(os.path.join(tmp, "output.npy")), ref_out)
        ort_out = os.path.join(tmp, "ort.npy")
        subprocess.run(["node", ORT_BENCH, os.path.join(ZOO, model + ".onnx"), "--threads", "1", "--iterations", "1",
                        "--warmup", "1", "--input", ref_in, "--output", ort_out], check=True, capture_output=True)
        o = rel_err(np.load(ort_out), ref_out)
    return h, o


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iterations", type=int, default=0, help="timed runs per round (0: auto)")
    args = p.parse_args()
    rows = []
    print(f"{'model':<20}{'thr':>4}{'batch':>6}{'hearth ms':>11}{'ort ms':>10}{'ratio':>7}"
          f"{'h RSS MiB':>10}{'o RSS MiB':>10}{'h load':>8}{'o load':>8}{'h err':>10}{'o err':>10}")
    for model in args.models.split(","):
        h_err, o_err = errors(model)
        for threads in map(int, args.threads.split(",")):
            for batch in map(int, args.batches.split(",")):
                shape = input_shape(model, batch)
                iterations = args.iterations or (200 if model == "mlp" else 10 if batch == 1 else 3)
                h, o = [], []
                for _ in range(args.rounds):  # A B A B ...
                    h.append(hearth_round(model, threads, shape, iterations))
                    o.append(ort_round(model, threads, shape, iterations))
                row = {
                    "model": model, "threads": threads, "batch": batch,
                    "hearth_median_ms": statistics.median(x[0] for x in h),
                    "ort_median_ms": statistics.median(x[0] for x in o),
                    "hearth_peak_rss_mib": max(x[1] for x in h), "ort_peak_rss_mib": max(x[1] for x in o),
                    "hearth_load_first_run_ms": statistics.median(x[2] for x in h),
                    "ort_load_first_run_ms": statistics.median(x[2] for x in o),
                    "hearth_rel_err": h_err, "ort_rel_err": o_err, "rounds": args.rounds, "iterations": iterations,
                }
                row["ratio"] = row["hearth_median_ms"] / row["ort_median_ms"]
                rows.append(row)
                print(f"{model:<20}{threads:>4}{batch:>6}{row['hearth_median_ms']:>11.3f}{row['ort_median_ms']:>10.3f}"
                      f"{row['ratio']:>7.2f}{row['hearth_peak_rss_mib']:>10.0f}{row['ort_peak_rss_mib']:>10.0f}"
                      f"{row['hearth_load_first_run_ms']:>8.0f}{row['ort_load_first_run_ms']:>8.0f}"
                      f"{h_err:>10.1e}{o_err:>10.1e}", flush=True)
    ratios = [r["ratio"] for r in rows]
    geo = float(np.exp(np.mean(np.log(ratios)))) if ratios else float("nan")
    print(f"geometric mean ratio Hearth/ORT: {geo:.3f} over {len(rows)} rows")
    os.makedirs(os.path.join(BUILD, "reports"), exist_ok=True)
    with open(os.path.join(BUILD, "reports", "compare.json"), "w") as f:
        json.dump({"rows": rows, "geomean_ratio": geo}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
