#!/usr/bin/env bash
# Builds kvplan-worker's forward benchmark on the GPU machine (device tool: CUDA,
# CMake, Ninja and PyTorch's CUDA LibTorch there, nothing else) and measures
# calibration throughput with and without the energy capture.
#
# Abseil, nlohmann-json, OpenSSL, PCRE2 and Google Benchmark come as Debian .debs
# carried in .wdeps/ (git-ignored):
#   mkdir -p .wdeps && cd .wdeps && apt-get download libabsl-dev libabsl20220623 \
#     nlohmann-json3-dev libssl-dev libssl3 libpcre2-dev libpcre2-8-0 libbenchmark-dev \
#     libbenchmark1debian
# Usage (repo root, device tool, carry [".wdeps"]): bench/run_worker_on_h200.sh; logs in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/deb
for f in .wdeps/*.deb; do dpkg -x "$f" /tmp/deb; done
TORCH=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
LIB=/tmp/deb/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$LIB:${LD_LIBRARY_PATH:-}
cmake -S . -B /tmp/build-worker -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DKVPLAN_BUILD_CLIENT=OFF -DKVPLAN_BUILD_TESTS=OFF -DKVPLAN_BUILD_CUDA=OFF \
  -DKVPLAN_BUILD_WORKER=ON -DKVPLAN_BUILD_BENCH=ON \
  -DCMAKE_PREFIX_PATH="/tmp/deb/usr;$LIB/cmake;$TORCH" -DOPENSSL_ROOT_DIR=/tmp/deb/usr \
  -DCMAKE_EXE_LINKER_FLAGS="-L$LIB -Wl,-rpath-link,$LIB" > "$OUT/configure.log" 2>&1 \
  || { tail -40 "$OUT/configure.log"; exit 1; }
cmake --build /tmp/build-worker -j 16 --target worker_forward_bench > "$OUT/build.log" 2>&1 \
  || { grep -E "error|FAILED" "$OUT/build.log" | head -40; exit 1; }
echo "== build ok"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,memory.total --format=csv,noheader
bench=/tmp/build-worker/bin/worker_forward_bench
args="--benchmark_repetitions=5 --benchmark_report_aggregates_only=true"
$bench --shape=llama-3.1-8b --device=cuda --dtype=bf16 --batch=4 --seq=2048 $args 2>&1 | tee "$OUT/llama8b_4x2048.log"
$bench --shape=llama-3.1-8b --device=cuda --dtype=bf16 --batch=16 --seq=512 $args 2>&1 | tee "$OUT/llama8b_16x512.log"
