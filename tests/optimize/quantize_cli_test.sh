#!/bin/bash
# hearth optimize quantize end to end on the zoo: the output is a valid ONNX QDQ
# model (onnx.checker), runs in Hearth close to FP32, the report is written, and
# bad input fails before any work with what was wrong.
# usage: quantize_cli_test.sh HEARTH BUILD_DIR
hearth=$1
zoo=$2/zoo
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }

mkdir "$tmp/cal"
cp "$zoo/resnet18.in.npy" "$tmp/cal/a.npy"
cp "$zoo/resnet18.b4.in.npy" "$tmp/cal/b.npy"
"$hearth" optimize quantize "$zoo/resnet18.onnx" -o "$tmp/r18.onnx" --calibration "$tmp/cal" >"$tmp/out" 2>&1 \
  && ok || { bad "static quantize: $(cat "$tmp/out")"; }
grep -q "21 of 21 Conv/MatMul/Gemm nodes quantized" "$tmp/out" && ok || bad "every Conv and the Gemm quantized: $(head -2 "$tmp/out")"
[ -s "$tmp/r18.onnx.report.json" ] && [ -s "$tmp/r18.onnx.report.md" ] && ok || bad "report files"
/usr/bin/python3 - "$tmp/r18.onnx" "$zoo/resnet18.onnx" "$tmp/r18.onnx.report.json" <<'PY' && ok || bad "checker / size / agreement"
import json, os, sys, onnx
m = onnx.load(sys.argv[1]); onnx.checker.check_model(m)
ops = {n.op_type for n in m.graph.node}
assert {"QuantizeLinear", "DequantizeLinear"} <= ops, ops
size = os.path.getsize(sys.argv[1]) / os.path.getsize(sys.argv[2])
assert size <= 0.27, size
r = json.load(open(sys.argv[3]))
assert r["outputs"][0]["cosine_min"] > 0.99, r["outputs"]
assert r["after"]["int8_parameters"] > 11_000_000, r["after"]
PY
"$hearth" run "$tmp/r18.onnx" --input "input=$zoo/resnet18.in.npy" --output-dir "$tmp/y" >/dev/null 2>&1 && ok || bad "the QDQ model runs"

# Weights only: no calibration needed, same speed class as FP32 (the DequantizeLinear folds at load).
"$hearth" optimize quantize "$zoo/mlp.onnx" -o "$tmp/mlp.onnx" --mode weights --no-report >"$tmp/out" 2>&1 \
  && ok || bad "weights mode: $(cat "$tmp/out")"

# Bad input: refused before work, nothing written.
"$hearth" optimize quantize "$zoo/resnet18.onnx" -o "$tmp/r18.onnx" --calibration "$tmp/cal" >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "exists (--force replaces it)" "$tmp/err" && ok || bad "existing output refused"
mkdir "$tmp/badcal"
cp "$zoo/mlp.in.npy" "$tmp/badcal/x.npy"
"$hearth" optimize quantize "$zoo/resnet18.onnx" -o "$tmp/never.onnx" --calibration "$tmp/badcal" >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "but input 'input' is float\[" "$tmp/err" && [ ! -e "$tmp/never.onnx" ] && ok \
  || bad "wrong-shape calibration: $(cat "$tmp/err")"
"$hearth" optimize quantize "$zoo/resnet18.onnx" -o "$tmp/never.onnx" >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "static quantization needs --calibration" "$tmp/err" && ok || bad "static without calibration"
"$hearth" optimize quantize "$zoo/resnet18.onnx" -o "$tmp/never.onnx" --calibration "$tmp/cal" --method entropy \
  >/dev/null 2>"$tmp/err"
[ $? -eq 1 ] && grep -q "'entropy' is not implemented yet" "$tmp/err" && ok || bad "entropy refused: $(cat "$tmp/err")"
[ ! -e "$tmp/never.onnx" ] && ok || bad "a failed run wrote its output"
ls "$tmp" | grep -q '\.tmp\.' && bad "a temporary file was left" || ok

echo "optimize cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
