// ONNX Runtime (npm onnxruntime-node, CPU) side of bench/compare.py: loads a
// model, runs it on a .npy input (or random data), prints one JSON object with
// per-run latencies, load time and peak RSS. Benchmark only; Hearth never links it.
//   node ort_bench.js MODEL --threads N --iterations N [--input FILE.npy] [--shape 1x3x224x224] [--output FILE.npy]
// With --paced 1 it runs as `hearth bench --paced` does: after warm-up it prints
// a line, then for each line N on stdin runs N times and prints their times; the
// summary follows the end of input.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(process.env.ORT_NODE_MODULE || path.join(__dirname, '..', 'build', 'ort', 'node_modules', 'onnxruntime-node'));

const NPY_TYPES = { '<f4': ['float32', Float32Array], '<i8': ['int64', BigInt64Array], '<i4': ['int32', Int32Array] };

function readNpy(file) {
  const buf = fs.readFileSync(file);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const offset = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', offset, offset + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map(s => s.trim()).filter(Boolean).map(Number);
  const [type, Ctor] = NPY_TYPES[descr] || (() => { throw new Error('unsupported npy dtype ' + descr); })();
  const start = offset + headerLen;
  const bytes = buf.subarray(start);
  const data = new Ctor(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return new ort.Tensor(type, data, shape);
}

function writeNpy(file, tensor) {
  if (tensor.type !== 'float32') throw new Error('only float32 outputs are written');
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${tensor.dims.join(', ')}${tensor.dims.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(head, 0);
  head[6] = 1; head[7] = 0; head.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength)]));
}

function randomTensor(meta, shape) {
  const n = shape.reduce((a, b) => a * b, 1);
  if (meta.type === 'int64') return new ort.Tensor('int64', BigInt64Array.from({ length: n }, () => BigInt(Math.floor(Math.random() * 100))), shape);
  return new ort.Tensor('float32', Float32Array.from({ length: n }, () => Math.random() * 2 - 1), shape);
}

async function main() {
  const args = process.argv.slice(2);
  const opt = { threads: 1, iterations: 20, warmup: 3 };
  const model = args[0];
  for (let i = 1; i < args.length; i += 2) opt[args[i].replace(/^--/, '')] = args[i + 1];
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: Number(opt.threads), interOpNumThreads: 1, executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const name = session.inputNames[0];
  let input;
  if (opt.input) input = readNpy(opt.input);
  else input = randomTensor(session.inputMetadata ? session.inputMetadata[0] : { type: 'float32' }, opt.shape.split('x').map(Number));
  const feeds = { [name]: input };
  const t1 = process.hrtime.bigint();
  let out = await session.run(feeds);
  const firstMs = Number(process.hrtime.bigint() - t1) / 1e6;
  for (let i = 1; i < Number(opt.warmup); i++) out = await session.run(feeds);
  const times = [];
  const timedRuns = async (n) => {
    const block = [];
    for (let i = 0; i < n; i++) {
      const a = process.hrtime.bigint();
      out = await session.run(feeds);
      block.push(Number(process.hrtime.bigint() - a) / 1e6);
    }
    for (const t of block) times.push(t);  // not push(...block): spread arguments overflow the stack past ~125k
    return block;
  };
  if (opt.paced && opt.paced !== '0') {
    console.log(JSON.stringify({ ready: true }));
    const rl = require('readline').createInterface({ input: process.stdin, terminal: false });
    for await (const line of rl) {
      const n = /^\s*\d+\s*$/.test(line) ? Number(line) : NaN;  // as hearth bench --paced: digits only
      if (!Number.isInteger(n) || n < 1 || n > 100000) throw new Error(`--paced: expected 1..100000 runs per line, got '${line}'`);
      console.log(JSON.stringify({ times_ms: await timedRuns(n) }));
    }
    if (times.length === 0) throw new Error('--paced: input ended before any timed run');
  } else {
    await timedRuns(Number(opt.iterations));
  }
  if (opt.output) writeNpy(opt.output, out[session.outputNames[0]]);
  const rssMiB = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({ load_ms: loadMs, first_run_ms: firstMs, times_ms: times, peak_rss_mib: rssMiB }));
}

main().catch(e => { console.error('error: ' + e.message); process.exit(1); });
