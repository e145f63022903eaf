#!/usr/bin/env bash
# The fragment-step decode table of BENCHMARKS.md ("Latest, burst clocks: the
# fragment-page decode step"), on the GPU machine after bench/kernels/run_on_h200.sh has built
# packed_decode_bench (its build tree: /tmp/build-gpu unless BUILD_DIR says
# otherwise). For each context, both models, K3V3 and K2V2 plans with K groups
# aligned to 16 dims, batch 1 and 16, CUDA graphs; `runs` rounds over the
# contexts, each run its own process, then a median table per context.
# Usage (repo root): bench/kernels/decode_tables.sh [runs] [contexts...]
# (default 3 runs of 32768 131072 524288 4096 16384); logs and tables in
# $OUT/decode_tables (tar it: the device tool returns at most 8 files).
# BENCH_FLAGS: more packed_decode_bench flags for every run, e.g.
# BENCH_FLAGS="--settle-ms 500" (each timing in its own sustained clocks).
set -uo pipefail
OUT=${OUT:-/tmp/out}
BIN=${BUILD_DIR:-/tmp/build-gpu}/bin/packed_decode_bench
RUNS=${1:-3}
shift $(($# > 0 ? 1 : 0))
CONTEXTS=${*:-32768 131072 524288 4096 16384}
DIR="$OUT/decode_tables"
mkdir -p "$DIR"
[ -x "$BIN" ] || { echo "no $BIN: build packed_decode_bench first (run_on_h200.sh)"; exit 1; }
for r in $(seq 1 "$RUNS"); do
  for c in $CONTEXTS; do
    # shellcheck disable=SC2086  # BENCH_FLAGS is a list of arguments: split it
    "$BIN" --k-align 16 --fragment --graph --iters 15 --ctx "$c" --no-encode ${BENCH_FLAGS:-} \
      > "$DIR/ctx${c}_$r.log" 2>&1 || echo "run $r, ctx $c failed: $DIR/ctx${c}_$r.log"
  done
done
for c in $CONTEXTS; do
  python3 "$(dirname "$0")/median_tables.py" "$DIR/ctx${c}"_*.log
done | tee "$DIR/tables.md"
