# kvplan front door. `make demo` and `make test` work on a fresh Debian 12 machine:
# each installs what is missing, configures, builds, then runs.
#
#   make demo [MODEL=DIR]    coordinator + workers + plan + what-if on a model (README.md)
#   make test                every test suite under ctest
#   make test-asan           core tests under AddressSanitizer + UBSan
#   make test-tsan           libkvplan-client's hot swap and subscriptions under ThreadSanitizer
#   make bench               the Google Benchmark programs (numbers go to BENCHMARKS.md)
#   make build               configure and build only
#   make format              clang-format every C++ file in place

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
SHARED     ?= ../shared
MODEL      ?= $(SHARED)/models/doc-llama-h64
PROMPTS    ?= $(SHARED)/data/calib-prompts.jsonl
STATS      ?= $(SHARED)/reference/doc-llama-h64.blockgtq-reference.json

.PHONY: deps build demo test test-asan test-tsan bench format

deps:
	@deploy/install-deps.sh

$(BUILD)/build.ninja: | deps
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_ARGS)

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	@deploy/demo.sh "$(BUILD)" "$(MODEL)" "$(PROMPTS)" "$(STATS)" "$(SHARED)"

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DKVPLAN_SANITIZE=address,undefined -DKVPLAN_BUILD_BENCH=OFF $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target core_tests client_tests kvplan
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) -L core

# The gRPC-free half of libkvplan-client, where its threads meet (readers during
# swaps, subscriptions, refusals); without gRPC and Abseil's uninstrumented
# mutexes in the process, every report is ours.
test-tsan: deps
	cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DKVPLAN_SANITIZE=thread \
	  -DKVPLAN_BUILD_SERVER=OFF -DKVPLAN_BUILD_WORKER=OFF -DKVPLAN_BUILD_BENCH=OFF $(CMAKE_ARGS)
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target client_lib_unit_tests
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --test-dir $(TSAN_BUILD) --output-on-failure -j $(JOBS) -L client

bench: build
	@for b in $(BUILD)/bin/*_bench; do echo "== $$b"; $$b --benchmark_min_time=0.2; done

format:
	@git ls-files '*.h' '*.cc' '*.cu' '*.cuh' | xargs clang-format -i
