#!/usr/bin/env bash
# `make demo`: runs resnet18 once against its PyTorch reference, then builds a demo model
# repository (mlp, resnet18, bert_encoder from the zoo, each with the config.pbtxt of
# examples/model_repository) and serves it on 127.0.0.1: KServe v2 REST on 8000, gRPC on
# 8001, Prometheus metrics on 8002, until Ctrl-C.
set -euo pipefail
build=${1:-build}
hearth=$build/hearth
zoo=$build/zoo
out=$build/demo
repo=$build/demo-repo
http=${HTTP_PORT:-8000}
grpc=${GRPC_PORT:-8001}
metrics=${METRICS_PORT:-8002}
here=$(cd "$(dirname "$0")/.." && pwd)
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
  cp "$here/examples/model_repository/$m/config.pbtxt" "$repo/$m/config.pbtxt"
done
cat <<EOT

== serving $repo: REST http://127.0.0.1:$http, gRPC 127.0.0.1:$grpc, metrics http://127.0.0.1:$metrics/metrics
Try, from another terminal (README.md "Serving" has more, including a Python gRPC call):
  curl -i 127.0.0.1:$http/v2/health/ready
  curl 127.0.0.1:$http/v2/models/mlp
  curl 127.0.0.1:$http/v2/models/mlp/config
  /usr/bin/python3 -c "import json; print(json.dumps({'inputs':[{'name':'input','shape':[1,64],'datatype':'FP32','data':[0.5]*64}]}))" \\
    | curl -s -X POST 127.0.0.1:$http/v2/models/mlp/infer -H 'Content-Type: application/json' -d @-
  curl -s 127.0.0.1:$metrics/metrics | grep hearth_inference_request_success
The demo listens on loopback only and runs with --insecure-no-auth. A real
deployment uses tokens and TLS: see docs/SECURITY.md ("Access control", "TLS").
Ctrl-C stops the server (queued requests finish first).
EOT
exec "$hearth" serve --insecure-no-auth --model-repository "$repo" --http-address 127.0.0.1 --http-port "$http" \
  --grpc-address 127.0.0.1 --grpc-port "$grpc" --metrics-address 127.0.0.1 --metrics-port "$metrics"
