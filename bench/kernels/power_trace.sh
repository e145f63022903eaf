#!/usr/bin/env bash
# Runs packed_decode_bench cases in turn while nvidia-smi samples the SM clock,
# power draw, temperatures and throttle reasons every 100 ms, then prints each
# run's result beside the clocks it ran under (power_runs.py). For telling
# run-to-run spread that comes from the card (a power cap lowering the SM
# clock) from spread that comes from the code (NOTES.md run 41).
#
# Usage (repo root, after run_on_h200.sh has built /tmp/build-gpu):
#   bench/kernels/power_trace.sh ROUNDS "CASE1;CASE2" [DEADLINE_S]
# A case is packed_decode_bench's arguments (--no-encode is added). No run
# starts after DEADLINE_S (default 240) seconds. Logs: $OUT/runs.log and
# $OUT/clocks.csv.
# Example (--fragment-step-only: the samples see the fragment step alone, not
# the baselines that a process otherwise runs after it):
#   L="--model llama3.1-8b --kbits 3 --k-align 16 --fragment --graph --iters 10 --batch 16"
#   bench/kernels/power_trace.sh 8 "$L --ctx 131072 --fragment-step-only;$L --ctx 131072"
set -uo pipefail
OUT=${OUT:-/tmp/out}
BIN=${BIN:-/tmp/build-gpu/bin/packed_decode_bench}
rounds=${1:?rounds}
deadline=${3:-240}
IFS=';' read -ra cases <<< "${2:?cases}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,temperature.memory,clocks_throttle_reasons.active \
  --format=csv,noheader -lms 100 > "$OUT/clocks.csv" 2>&1 &
smi=$!
stamp() { date +%H:%M:%S.%N | cut -c1-12; }
for r in $(seq 1 "$rounds"); do
  for c in "${cases[@]}"; do
    [ "$SECONDS" -lt "$deadline" ] || break 2
    echo "== run $r start $(stamp) case: $c"
    # shellcheck disable=SC2086  # a case is a list of arguments: split it
    "$BIN" $c --no-encode 2>&1 | grep -E "^(llama|qwen)"
    echo "== end $(stamp)"
  done
done > "$OUT/runs.log" 2>&1
kill "$smi"
python3 "$(dirname "$0")/power_runs.py" "$OUT/runs.log" "$OUT/clocks.csv"
