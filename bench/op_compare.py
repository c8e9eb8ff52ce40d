#!/usr/bin/python3
"""Per-operator time of Hearth and ONNX Runtime on one model, side by side.

Where bench/compare.py says how far apart the engines are, this says where: it runs
`hearth bench --profile` and ONNX Runtime with its profiler on (onnxruntime-node from
build/ort, benchmark only), takes each node's median time, and prints the totals per
op type. ONNX Runtime names its fused nodes after their last op (a Conv with a fused
Relu is "Conv", its NCHWc reorders are "ReorderInput/Output"), so compare op types
with that in mind. With --conv-shapes it also lists ORT's convolutions grouped by
shape with their GFLOP/s, to line up against `hearth bench --profile`.

  /usr/bin/python3 bench/op_compare.py build/zoo/resnet18.onnx --threads 1 --batch 1
"""
import argparse, collections, glob, json, os, re, statistics, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

ORT_SCRIPT = r"""
const ort = require(process.env.ORT_NODE_MODULE);
(async () => {
  const [model, threads, shape, runs, prefix] = process.argv.slice(2);
  const s = await ort.InferenceSession.create(model, {intraOpNumThreads: Number(threads), interOpNumThreads: 1,
    executionMode: 'sequential', graphOptimizationLevel: 'all', enableProfiling: true, profileFilePrefix: prefix});
  const dims = shape.split('x').map(Number);
  const meta = s.inputMetadata ? s.inputMetadata[0] : null;
  const n = dims.reduce((a, b) => a * b, 1);
  const x = meta && meta.type === 'int64'
      ? new ort.Tensor('int64', BigInt64Array.from({length: n}, () => 1n), dims)
      : new ort.Tensor('float32', Float32Array.from({length: n}, () => Math.random()), dims);
  for (let i = 0; i < Number(runs); i++) await s.run({[s.inputNames[0]]: x});
  s.endProfiling();
})().catch(e => { console.error(e.message); process.exit(1); });
"""


def ort_profile(model, threads, shape, runs, tmp):
    script = os.path.join(tmp, "ort_profile.js")
    with open(script, "w") as f:
        f.write(ORT_SCRIPT)
    env = dict(os.environ, ORT_NODE_MODULE=os.path.join(ROOT, "build", "ort", "node_modules", "onnxruntime-node"))
    prefix = os.path.join(tmp, "ort")
    subprocess.run(["node", script, model, str(threads), shape, str(runs), prefix], check=True, env=env)
    events = json.load(open(glob.glob(prefix + "*.json")[0]))
    times, info = collections.defaultdict(list), {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            times[e["name"]].append(e["dur"])
            info.setdefault(e["name"], e["args"])
    warm = min(3, runs - 1)
    return {k: (statistics.median(v[warm:]), info[k]) for k, v in times.items()}


def hearth_profile(model, threads, input_name, shape, runs):
    hearth = os.path.join(ROOT, "build", "hearth")
    r = subprocess.run([hearth, "bench", model, "-t", str(threads), "--shape", f"{input_name}={shape}", "--profile",
                        "-n", str(runs)], capture_output=True, text=True, check=True)
    per_op = collections.Counter()
    for line in (r.stdout + r.stderr).splitlines():
        m = re.match(r"\s*([\d.]+)\s+[\d.e+-]+%\s+(\S+)\s", line)
        if m:
            per_op[m.group(2)] += float(m.group(1))
    return per_op


def shape_of(arg):
    return list(arg.values())[0] if isinstance(arg, dict) else arg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--shape", help="ORT input shape, e.g. 1x3x224x224 (default: from the model's input)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--conv-shapes", action="store_true", help="also list ORT's convolutions by shape")
    args = ap.parse_args()
    sys.path.insert(0, "/usr/lib/python3/dist-packages")
    import onnx
    first_input = onnx.load(args.model, load_external_data=False).graph.input[0]
    shape = args.shape
    if not shape:
        dims = [d.dim_value if d.dim_value > 0 else args.batch for d in first_input.type.tensor_type.shape.dim]
        dims[0] = args.batch
        shape = "x".join(str(d) for d in dims)
    with tempfile.TemporaryDirectory() as tmp:
        ort = ort_profile(args.model, args.threads, shape, args.runs, tmp)
    ours = hearth_profile(args.model, args.threads, first_input.name, shape, args.runs)  # the same input shape
    ort_ops = collections.Counter()
    for name, (us, a) in ort.items():
        ort_ops[a.get("op_name", "?")] += us
    print(f"{os.path.basename(args.model)}, {args.threads} thread(s), input {shape}: per-op totals, median us per run")
    print(f"{'op':24s} {'hearth':>10s} {'ort':>10s} {'diff':>10s}")
    print(f"{'(all)':24s} {sum(ours.values()):10.0f} {sum(ort_ops.values()):10.0f} "
          f"{sum(ours.values()) - sum(ort_ops.values()):+10.0f}")
    for op in sorted(set(ours) | set(ort_ops), key=lambda o: -(ours[o] + ort_ops[o])):
        print(f"{op:24s} {ours[op]:10.0f} {ort_ops[op]:10.0f} {ours[op] - ort_ops[op]:+10.0f}")
    if args.conv_shapes:
        groups = collections.defaultdict(lambda: [0, 0.0, 0.0])
        for name, (us, a) in ort.items():
            if a.get("op_name") not in ("Conv", "FusedConv"):
                continue
            ins, outs = a.get("input_type_shape", []), a.get("output_type_shape", [])
            if len(ins) < 2 or not outs:
                continue
            x, w, y = shape_of(ins[0]), shape_of(ins[1]), shape_of(outs[0])
            if len(w) != 4 or len(y) != 4:
                continue
            flops = 2 * y[0] * w[0] * w[1] * w[2] * w[3] * y[2] * y[3]
            g = groups[(w[1], w[0], w[2], x[2], y[2])]
            g[0] += 1
            g[1] += us
            g[2] += flops
        print("\nONNX Runtime convolutions by shape (in ch/group, out ch, kernel, in size, out size):")
        for (ic, oc, k, hin, hout), (count, us, flops) in sorted(groups.items(), key=lambda kv: -kv[1][1]):
            print(f"  ic {ic:4d} oc {oc:4d} k{k} {hin:3d}->{hout:3d}  x{count}  {us:8.0f} us  "
                  f"{flops / us / 1e3:5.1f} GFLOP/s")


if __name__ == "__main__":
    main()
