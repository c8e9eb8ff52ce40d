#!/usr/bin/env bash
# `make demo`: shows the engine on the reference zoo: inspect a model, run it on
# a PyTorch-made input and compare, then benchmark it.
# (Serving with `hearth serve` arrives with the serving layer; see README.)
set -euo pipefail
build=${1:-build}
hearth=$build/hearth
zoo=$build/zoo
out=$build/demo
mkdir -p "$out"
echo "== hearth inspect resnet18"
"$hearth" inspect "$zoo/resnet18.onnx" | head -12
echo
echo "== hearth run resnet18 on the PyTorch reference input"
"$hearth" run "$zoo/resnet18.onnx" --input "input=$zoo/resnet18.in.npy" --output-dir "$out"
/usr/bin/python3 - "$out/output.npy" "$zoo/resnet18.out.npy" <<'PY'
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
print(f"relative L2 error vs PyTorch: {np.linalg.norm(a - b) / np.linalg.norm(b):.2e}; top-1 class {a.argmax()} (PyTorch {b.argmax()})")
PY
echo
for m in mlp resnet18 bert_encoder; do
  echo "== hearth bench $m"
  shape=()
  [ "$m" = bert_encoder ] && shape=(--shape input=1x128)
  "$hearth" bench "$zoo/$m.onnx" "${shape[@]}" --min-seconds 2
  echo
done
