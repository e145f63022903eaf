#!/usr/bin/env bash
# The encode + pack tables of BENCHMARKS.md ("Latest, burst clocks: encode + pack"; with
# BENCH_FLAGS="--settle-ms 2000" the sustained one), on the
# GPU machine after bench/kernels/run_on_h200.sh has built packed_decode_bench
# (its build tree: /tmp/build-gpu unless BUILD_DIR says otherwise). Three runs
# of each kind, each run its own process, then the median tables:
#   a16_32k:   16-aligned plans with fragment pages, batch 16 at 32K (so the
#              encode covers 32K tokens x all KV heads), both models, K3V3 and K2V2;
#   a16_4k:    the same plans, Llama at batch 1, 4K (a 4K-token prefill);
#   greedy_32k: greedy K3 plans (version-1 pages only), batch 16 at 32K.
# Usage (repo root): bench/kernels/encode_tables.sh [runs]; logs and tables in
# $OUT/encode_tables (tar it: the device tool returns at most 8 files).
# BENCH_FLAGS: more packed_decode_bench flags for every run, e.g.
# BENCH_FLAGS="--settle-ms 2000" (each timing in its own sustained clocks).
set -uo pipefail
OUT=${OUT:-/tmp/out}
BIN=${BUILD_DIR:-/tmp/build-gpu}/bin/packed_decode_bench
RUNS=${1:-3}
DIR="$OUT/encode_tables"
mkdir -p "$DIR"
[ -x "$BIN" ] || { echo "no $BIN: build packed_decode_bench first (run_on_h200.sh)"; exit 1; }
read -ra common <<< "--graph --iters 15 ${BENCH_FLAGS:-}"
for r in $(seq 1 "$RUNS"); do
  "$BIN" "${common[@]}" --k-align 16 --fragment --ctx 32768 --batch 16 > "$DIR/a16_32k_$r.log" 2>&1
  "$BIN" "${common[@]}" --k-align 16 --fragment --ctx 4096 --batch 1 --model llama3.1-8b \
    > "$DIR/a16_4k_$r.log" 2>&1
  "$BIN" "${common[@]}" --kbits 3 --ctx 32768 --batch 16 > "$DIR/greedy_32k_$r.log" 2>&1
done
for kind in a16_32k a16_4k greedy_32k; do
  echo "== $kind"
  python3 "$(dirname "$0")/median_tables.py" "$DIR/${kind}"_*.log
done | tee "$DIR/tables.md"
