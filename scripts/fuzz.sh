#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a
# bounded time (SECONDS split evenly between them). Skips with a message when clang
# is not installed. Inputs that crash are kept under fuzz/corpus/<target>/ as
# regression seeds once fixed.
set -euo pipefail
dir=${1:-build/fuzz}
seconds=${2:-60}
if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found, skipping (install clang to fuzz)"
  exit 0
fi
cmake -S . -B "$dir" -G Ninja -DHEARTH_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" -j 2 --target fuzz_model_loader fuzz_http_request fuzz_package fuzz_policy fuzz_token

# run TARGET SECONDS MAX_LEN [SEED_FILES...]
run() {
  local target=$1 secs=$2 max_len=$3
  shift 3
  local corpus="$dir/corpus/$target"
  mkdir -p "$corpus"
  cp "fuzz/corpus/$target"/* "$corpus/" 2>/dev/null || true
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$corpus/" || true; done
  echo "fuzz: $target for ${secs}s"
  "$dir/fuzz_$target" -max_total_time="$secs" -max_len="$max_len" -rss_limit_mb=2048 -print_final_stats=1 \
    "$corpus" 2>"$dir/fuzz_$target.log" || { tail -50 "$dir/fuzz_$target.log"; echo "fuzz: $target CRASH found"; exit 1; }
  grep -E 'stat::number_of_executed_units' "$dir/fuzz_$target.log" | tail -1 || true
  echo "fuzz: $target ran ${secs}s without a crash"
}

share=$(( (seconds + 4) / 5 ))  # five targets share the time
# Seeds for the model loader: small real models, so it starts from valid protobuf.
run model_loader "$share" 65536 build/conformance/node/test_relu/model.onnx \
  build/conformance/node/test_conv_with_strides_padding/model.onnx build/conformance/node/test_gather_0/model.onnx \
  build/conformance/node/test_add_bcast/model.onnx
run http_request "$share" 16384
run package "$share" 65536
run policy "$share" 8192 examples/security/policy.yaml
run token "$share" 512
