#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a
# bounded time. Skips with a message when clang is not installed.
set -euo pipefail
dir=${1:-build/fuzz}
seconds=${2:-60}
if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found, skipping (install clang to fuzz)"
  exit 0
fi
cmake -S . -B "$dir" -G Ninja -DHEARTH_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" -j 2 --target fuzz_model_loader
corpus="$dir/corpus/model_loader"
mkdir -p "$corpus"
# Seeds: inputs that once crashed (kept as regression cases), and small real models
# when present, so the fuzzer starts from valid protobuf.
cp fuzz/corpus/model_loader/* "$corpus/" 2>/dev/null || true
for f in build/conformance/node/test_relu/model.onnx build/conformance/node/test_conv_with_strides_padding/model.onnx \
         build/conformance/node/test_gather_0/model.onnx build/conformance/node/test_add_bcast/model.onnx; do
  [ -f "$f" ] && cp "$f" "$corpus/" || true
done
echo "fuzz: model loader for ${seconds}s"
"$dir/fuzz_model_loader" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 \
  "$corpus" 2>"$dir/fuzz_model_loader.log" || { tail -50 "$dir/fuzz_model_loader.log"; echo "fuzz: CRASH found"; exit 1; }
grep -E 'stat::number_of_executed_units|Done' "$dir/fuzz_model_loader.log" | tail -2 || true
echo "fuzz: model loader ran ${seconds}s without a crash"
