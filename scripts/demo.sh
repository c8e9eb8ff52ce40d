#!/usr/bin/env bash
# `make demo`: runs resnet18 once against its PyTorch reference, then builds a demo model
# repository (mlp, resnet18, bert_encoder from the zoo) and serves it over KServe v2 REST on
# 127.0.0.1:8000 until Ctrl-C.
set -euo pipefail
build=${1:-build}
hearth=$build/hearth
zoo=$build/zoo
out=$build/demo
repo=$build/demo-repo
port=${HTTP_PORT:-8000}
mkdir -p "$out"
echo "== hearth run resnet18 on the PyTorch reference input"
"$hearth" run "$zoo/resnet18.onnx" --input "input=$zoo/resnet18.in.npy" --output-dir "$out"
/usr/bin/python3 - "$out/output.npy" "$zoo/resnet18.out.npy" <<'PY'
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
print(f"relative L2 error vs PyTorch: {np.linalg.norm(a - b) / np.linalg.norm(b):.2e}; top-1 class {a.argmax()} (PyTorch {b.argmax()})")
PY
rm -rf "$repo"
for m in mlp resnet18 bert_encoder; do
  mkdir -p "$repo/$m/1"
  cp "$zoo/$m.onnx" "$repo/$m/1/model.onnx"
done
cat <<EOT

== serving $repo on http://127.0.0.1:$port (Ctrl-C stops)
Try, from another terminal:
  curl 127.0.0.1:$port/v2/health/ready -i
  curl 127.0.0.1:$port/v2/models/mlp
  /usr/bin/python3 -c "import json; print(json.dumps({'inputs':[{'name':'input','shape':[1,64],'datatype':'FP32','data':[0.5]*64}]}))" \\
    | curl -s -X POST 127.0.0.1:$port/v2/models/mlp/infer -H 'Content-Type: application/json' -d @-
EOT
exec "$hearth" serve --model-repository "$repo" --http-port "$port" --http-address 127.0.0.1
