#!/usr/bin/env bash
# The eight rows of BENCHMARKS.md's encode table ("Latest, burst clocks: encode + pack") as
# an A/B: the working tree against another source tree, both built and
# alternated in one process start each, three rounds (run_on_h200.sh's
# AB_TREES), then the medians per row (ab_medians.py). Rows: 16-aligned K3V3
# and K2V2 plans with fragment pages (so each row also times the version-1
# encode), Llama-3.1-8B at 32K and 4K tokens and Qwen2.5-3B at 32K; greedy
# K3V3 plans (version-1 pages only) of both models at 32K. Every encode is
# one launch of all the row's tokens x all KV heads.
# Usage (repo root, GPU machine, .kdeps and the other tree carried):
#   mkdir -p .kab/base && git archive <rev> kernels core bench cmake tests | tar -x -C .kab/base
#   bench/kernels/encode_ab.sh .kab/base
# Logs in $OUT (ab.log, setup.log); the medians on stdout.
set -uo pipefail
OUT=${OUT:-/tmp/out}
BASE=${1:?usage: bench/kernels/encode_ab.sh <other source tree>}
I="--graph --iters 10 --batch 1"
F="--k-align 16 --fragment"
cases="--model llama3.1-8b --kbits 3 $F --ctx 32768 $I"
cases+=";--model llama3.1-8b --kbits 2 $F --ctx 32768 $I"
cases+=";--model llama3.1-8b --kbits 3 $F --ctx 4096 $I"
cases+=";--model llama3.1-8b --kbits 2 $F --ctx 4096 $I"
cases+=";--model qwen2.5-3b --kbits 3 $F --ctx 32768 $I"
cases+=";--model qwen2.5-3b --kbits 2 $F --ctx 32768 $I"
cases+=";--model llama3.1-8b --kbits 3 --ctx 32768 $I"
cases+=";--model qwen2.5-3b --kbits 3 --ctx 32768 $I"
SKIP_TESTS=1 SKIP_SANITIZERS=1 BUILD_TARGETS="${BUILD_TARGETS:-packed_decode_bench}" \
  AB_TREES="$BASE" AB_ENCODE=" " AB_CASES="$cases" \
  bash "$(dirname "$0")/run_on_h200.sh" --model qwen2.5-3b --kbits 2 --ctx 1024 --batch 1 \
  --iters 2 --no-encode > "$OUT/setup.log" 2>&1 || { tail -20 "$OUT/setup.log"; exit 1; }
python3 "$(dirname "$0")/ab_medians.py" "$OUT/ab.log"
