#!/usr/bin/env bash
# End-to-end checks of the hearth CLI: exit codes, run writes .npy outputs that
# match the PyTorch reference, inspect/bench print what they promise.
# Usage: cli_test.sh HEARTH_BINARY BUILD_DIR
set -u
hearth=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
pass=0
check() {  # check NAME EXPECTED_RC COMMAND...
  local name=$1 want=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL $name: exit $rc, expected $want"; cat "$tmp/out" "$tmp/err" | head -5; fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}
contains() {  # contains NAME FILE TEXT
  if grep -q -- "$3" "$2"; then pass=$((pass + 1)); else echo "FAIL $1: '$3' not in output"; head -5 "$2"; fail=$((fail + 1)); fi
}

check help_exits_0 0 "$hearth" --help
check run_help_exits_0 0 "$hearth" run --help
check no_command_is_usage_error 2 "$hearth"
check unknown_flag_is_usage_error 2 "$hearth" run --no-such-flag x
check missing_model_is_runtime_error 1 "$hearth" run /nonexistent.onnx
contains missing_model_message "$tmp/err" "does not exist"

printf 'garbage, not protobuf' > "$tmp/bad.onnx"
check corrupt_model_is_runtime_error 1 "$hearth" inspect "$tmp/bad.onnx"
contains corrupt_model_message "$tmp/err" "could not be parsed"

zoo=$build/zoo
check run_mlp 0 "$hearth" run "$zoo/mlp.onnx" --input "input=$zoo/mlp.in.npy" --output-dir "$tmp/out_dir"
[ -f "$tmp/out_dir/output.npy" ] && pass=$((pass + 1)) || { echo "FAIL run_mlp: no output.npy"; fail=$((fail + 1)); }
if /usr/bin/python3 -c "
import numpy as np, sys
a = np.load('$tmp/out_dir/output.npy'); b = np.load('$zoo/mlp.out.npy')
sys.exit(0 if a.shape == b.shape and np.linalg.norm(a - b) <= 1e-4 * np.linalg.norm(b) else 1)"; then
  pass=$((pass + 1))
else
  echo "FAIL run_mlp_matches_reference"; fail=$((fail + 1))
fi
check run_wrong_input_name 1 "$hearth" run "$zoo/mlp.onnx" --input "nope=$zoo/mlp.in.npy" --output-dir "$tmp/o2"
contains run_wrong_input_message "$tmp/err" "no input named 'nope'"
check run_wrong_shape 1 "$hearth" run "$zoo/mlp.onnx" --input "input=$zoo/resnet18.in.npy" --output-dir "$tmp/o3"
contains run_wrong_shape_message "$tmp/err" "input 'input'"

check inspect_resnet18 0 "$hearth" inspect "$zoo/resnet18.onnx"
contains inspect_params "$tmp/out" "parameters: 11684712"
contains inspect_ops "$tmp/out" "Conv: 20"
check inspect_json 0 "$hearth" inspect --json "$zoo/mlp.onnx"
/usr/bin/python3 -c "import json,sys; j=json.load(open('$tmp/out')); sys.exit(0 if j['parameters']==85002 and j['flops']>0 else 1)" \
  && pass=$((pass + 1)) || { echo "FAIL inspect_json fields"; fail=$((fail + 1)); }

check bench_json 0 "$hearth" bench "$zoo/mlp.onnx" --json --iterations 20 --min-seconds 0.1 --batch 2
/usr/bin/python3 -c "
import json,sys; j=json.load(open('$tmp/out'))
ok = all(k in j for k in ('median_ms','p90_ms','p99_ms','throughput_per_s','peak_rss_mib','load_ms')) and j['batch']==2
sys.exit(0 if ok and j['median_ms'] > 0 else 1)" && pass=$((pass + 1)) || { echo "FAIL bench_json fields"; cat "$tmp/out"; fail=$((fail + 1)); }
check bench_bad_batch 1 "$hearth" bench "$zoo/mlp.onnx" --batch 0
# --paced: a ready line, one line of times per request line, then the summary of all of them.
check bench_paced 0 "$hearth" bench "$zoo/mlp.onnx" --json --paced <<<$'3\n2'
/usr/bin/python3 -c "
import json,sys; l=[json.loads(x) for x in open('$tmp/out')]
ok = len(l) == 4 and l[0] == {'ready': True} and len(l[1]['times_ms']) == 3 and len(l[2]['times_ms']) == 2
sys.exit(0 if ok and l[3]['iterations'] == 5 and l[3]['median_ms'] > 0 else 1)" && pass=$((pass + 1)) || { echo "FAIL bench_paced lines"; cat "$tmp/out"; fail=$((fail + 1)); }
check bench_paced_bad_line 1 "$hearth" bench "$zoo/mlp.onnx" --paced <<<$'2\nmany'
contains bench_paced_bad_line_says "$tmp/err" "expected a number of runs"
check bench_paced_trailing_text 1 "$hearth" bench "$zoo/mlp.onnx" --paced <<<$'2many'
contains bench_paced_trailing_text_says "$tmp/err" "expected a number of runs"
check bench_paced_no_runs 1 "$hearth" bench "$zoo/mlp.onnx" --paced </dev/null
check bench_no_timed_runs 1 "$hearth" bench "$zoo/mlp.onnx" --iterations 0 --min-seconds 0

check ops_lists_conv 0 "$hearth" ops
contains ops_conv "$tmp/out" "^Conv "

# The CPU probe, the tuning cache and the per-layer plan.
check cpu 0 "$hearth" cpu
contains cpu_names_the_isa "$tmp/out" "^kernels: *avx\|^kernels: *scalar"
check cpu_capped 0 env HEARTH_MAX_ISA=scalar "$hearth" cpu --json
contains cpu_capped_json "$tmp/out" '"isa": "scalar"'
export HEARTH_TUNING_CACHE="$tmp/tuning.json"
check tune_resnet18 0 "$hearth" tune "$zoo/resnet18.onnx" -t 1
contains tune_measures "$tmp/out" "measured: "
contains tune_writes_the_cache "$tmp/out" "tuning cache: $tmp/tuning.json"
[ -s "$tmp/tuning.json" ] && pass=$((pass + 1)) || { echo "FAIL tune wrote no cache"; fail=$((fail + 1)); }
check plan_from_the_cache 0 "$hearth" inspect "$zoo/resnet18.onnx" --plan -t 1
contains plan_cached "$tmp/out" ", cached: "
check plan_heuristic 0 "$hearth" inspect "$zoo/resnet18.onnx" --plan -t 1 --tuning heuristic
contains plan_heuristic_says "$tmp/out" ", heuristic"
echo '{"format": "hearth-tuning-1", "entries": 7}' >"$tmp/tuning.json"
check plan_bad_cache_still_runs 0 "$hearth" inspect "$zoo/resnet18.onnx" --plan -t 1
contains plan_bad_cache_warns "$tmp/err" "tuning cache '$tmp/tuning.json' ignored: no 'entries' object"
check plan_bad_mode 1 "$hearth" inspect "$zoo/resnet18.onnx" --plan --tuning fastest
contains plan_bad_mode_says "$tmp/err" "unknown tuning mode 'fastest'"
unset HEARTH_TUNING_CACHE

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
