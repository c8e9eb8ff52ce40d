#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan, undefined behaviour fatal) and
# runs each for a bounded time (after the hostile-model sweep test, built with the
# same sanitizers): SECONDS split evenly between them (`make test` gives it
# a minute, `make fuzz-long` an hour). Skips with a message when clang is not
# installed. Each target starts from its seeds (fuzz/corpus/<target>/ plus generated
# models) and reports executions and coverage; an input that crashes, hangs (over 10 s)
# or leaks fails the run and is kept under build/fuzz as crash-*/timeout-*/leak-*; once
# fixed, it belongs in fuzz/corpus/<target>/ as a regression seed. With KEEP_CORPUS=1
# the grown corpora are merged back into fuzz/corpus/ (minimized by libFuzzer).
# FUZZ_TARGETS="model_run model_file" runs only those (the time still splits 7 ways).
set -euo pipefail
dir=${1:-build/fuzz}
seconds=${2:-60}
if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found, skipping (install clang to fuzz)"
  exit 0
fi
targets=(model_loader model_run model_file http_request package policy token)
cmake -S . -B "$dir" -G Ninja -DHEARTH_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" -j 2 --target "${targets[@]/#/fuzz_}" sweep_sanitized
# The hostile-model sweeps under the sanitizers first: every op, hostile attributes and ranks.
"$dir/sweep_sanitized" --gtest_brief=1 > "$dir/sweep_sanitized.log" 2>&1 \
  || { tail -40 "$dir/sweep_sanitized.log"; echo "fuzz: the sanitized hostile-model sweep FAILED"; exit 1; }
echo "fuzz: sanitized sweep: $(grep -h '^swept' "$dir/sweep_sanitized.log" | tr '\n' ';')"

suite=build/conformance/node
# run TARGET SECONDS MAX_LEN [SEED_FILES...]
run() {
  local target=$1 secs=$2 max_len=$3
  shift 3
  if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $target "* ]]; then return 0; fi
  local corpus="$dir/corpus/$target"
  mkdir -p "$corpus"
  cp "fuzz/corpus/$target"/* "$corpus/" 2>/dev/null || true
  local i=0
  for f in "$@"; do [ -f "$f" ] && cp "$f" "$corpus/seed_$((i++))" || true; done
  echo "fuzz: $target for ${secs}s"
  (cd "$dir" && "./fuzz_$target" -max_total_time="$secs" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
     -print_final_stats=1 "corpus/$target" 2>"fuzz_$target.log") \
    || { tail -60 "$dir/fuzz_$target.log"; echo "fuzz: $target FAILED (crash, hang or leak; see $dir/fuzz_$target.log)"; exit 1; }
  local execs cov
  execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$dir/fuzz_$target.log" | tail -1 | awk '{print $2}')
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$dir/fuzz_$target.log" | tail -1)
  echo "fuzz: $target ran ${secs}s without a crash: ${execs:-0} executions, ${cov:-cov: n/a}, corpus $(ls "$corpus" | wc -l) inputs"
  # model_run's corpus grows to thousands of tiny inputs, too many to keep in git:
  # only its named regression seeds are.
  if [ "${KEEP_CORPUS:-0}" = 1 ] && [ "$target" != model_run ]; then
    mkdir -p "fuzz/corpus/$target"
    "$dir/fuzz_$target" -merge=1 -max_len="$max_len" -timeout=10 "fuzz/corpus/$target" "$corpus" >/dev/null 2>&1 || true
  fi
}

share=$(( (seconds + ${#targets[@]} - 1) / ${#targets[@]} ))
# Seeds: small real models, so the model targets start from valid protobuf.
seeds=()
for case in test_relu test_conv_with_strides_padding test_gather_0 test_add_bcast test_loop11 test_if \
            test_scan9_sum test_maxpool_2d_pads test_resize_upsample_scales_linear test_lstm_defaults \
            test_tile test_expand_dim_changed test_reshape_negative_dim test_constant_pad test_edge_pad test_depthtospace_example \
            test_einsum_batch_matmul test_top_k test_nonmaxsuppression_center_point_box_format; do
  seeds+=("$suite/$case/model.onnx")
done
run model_loader "$share" 65536 "${seeds[@]}"
run model_run "$share" 4096
run model_file "$share" 65536 "${seeds[@]}"
run http_request "$share" 16384
run package "$share" 65536
run policy "$share" 8192 examples/security/policy.yaml
run token "$share" 512
