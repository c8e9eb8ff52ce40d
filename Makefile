# Hearth: the two commands a person types are `make demo` and `make test`.
# Both install what is missing (scripts/setup.sh), then build with CMake + Ninja.
JOBS ?= 2
BUILD ?= build
PY := /usr/bin/python3
HEARTH := $(BUILD)/hearth
SUITE := $(BUILD)/conformance/node
ZOO := $(BUILD)/zoo
FUZZ_SECONDS ?= 60

.PHONY: all setup build test conformance zoo fuzz fuzz-long demo clean bench-compare bench-serve release-soak bench-shadow

all: build

setup:
	@bash scripts/setup.sh

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: setup $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

$(SUITE)/.stamp:
	@mkdir -p $(BUILD)/conformance
	$(PY) scripts/gen_conformance.py $(BUILD)/conformance > $(BUILD)/conformance/generate.log 2>&1
	@touch $@

$(ZOO)/.stamp: scripts/zoo.py
	@mkdir -p $(ZOO)
	$(PY) scripts/zoo.py $(ZOO)
	@touch $@

zoo: setup $(ZOO)/.stamp

conformance: build $(SUITE)/.stamp
	$(HEARTH) conformance --suite $(SUITE) --report $(BUILD)/reports/conformance.json \
	  --must-pass tests/conformance/must_pass.txt

fuzz: setup $(SUITE)/.stamp
	bash scripts/fuzz.sh $(BUILD)/fuzz $(FUZZ_SECONDS)

# An hour over every fuzzer (the run-time model fuzzers included); the grown corpora
# are merged (minimized) back into fuzz/corpus/ as regression seeds.
FUZZ_LONG_SECONDS ?= 3600
fuzz-long: setup $(SUITE)/.stamp
	KEEP_CORPUS=1 bash scripts/fuzz.sh $(BUILD)/fuzz $(FUZZ_LONG_SECONDS)

# Every test: unit tests, conformance must-pass list, zoo against PyTorch, fuzzing.
test: build $(SUITE)/.stamp $(ZOO)/.stamp
	bash scripts/fuzz.sh $(BUILD)/fuzz $(FUZZ_SECONDS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build $(ZOO)/.stamp
	bash scripts/demo.sh $(BUILD)

clean:
	rm -rf $(BUILD)

# Hearth vs ONNX Runtime (npm onnxruntime-node, benchmark only) on the zoo.
ORT_DIR := $(BUILD)/ort
$(ORT_DIR)/node_modules/onnxruntime-node/package.json:
	@mkdir -p $(ORT_DIR)
	cd $(ORT_DIR) && echo '{"name":"hearth-bench-peers","private":true}' > package.json && \
	  npm install --ignore-scripts --no-audit --no-fund onnxruntime-node@1.30.0

bench-compare: build $(ZOO)/.stamp $(ORT_DIR)/node_modules/onnxruntime-node/package.json
	$(PY) bench/compare.py $(COMPARE_ARGS)

# hearth serve under load (wrk for REST, a Python gRPC client): QPS, p50/p99, errors.
# The release tests with 100 promote/abort cycles under load (make test runs 20).
release-soak: build
	$(PY) tests/rollout/release_e2e_test.py $(HEARTH) --cycles 100

# p50/p99/QPS of the champion's clients without and with a 50% shadow (docs/PERFORMANCE.md).
bench-shadow: build
	$(PY) bench/release_shadow.py $(HEARTH)

bench-serve: build $(ZOO)/.stamp
	$(PY) bench/serve/run.py --hearth $(HEARTH) --zoo $(ZOO) --report $(BUILD)/reports/serve.json
