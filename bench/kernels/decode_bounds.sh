#!/usr/bin/env bash
# What the fragment step's code decode costs, on the GPU machine (NOTES.md run
# 44, BENCHMARKS.md "Session 30"). The decode probe (fragment_decode_probe.cu:
# uniform K3V3 pages, and 16-aligned head layouts as `_static`) against its
# timing-only builds (-DKVPLAN_PROBE_SKELETONS=ON, wrong results:
# KVPLAN_FRAGMENT_DECODE_SKELETON 1 no lookups, 2 / 3 two or three byte permutes
# per code pair in their place, 4 no decode at all), batch 16, each binary its
# own process: once in burst clocks, then ROUNDS rounds alternated after a 2 s
# settle (sustained clocks). SHIPPED=1 adds the shipped step on K3V3a16 plans
# against a copy of fragment_decode.cuh without lookups (run_on_h200.sh's A/B,
# three rounds, sustained, and one burst case).
# Usage (repo root, .kdeps carried): bench/kernels/decode_bounds.sh [ROUNDS]
# (default 3; each round ~70 s for the seven probes). Logs in $OUT: probes.log,
# sass_loops.txt (each build's tile loop), ab.log with SHIPPED=1; the medians on
# stdout (probe_medians.py: speed against the first build, the probe as shipped).
set -uo pipefail
OUT=${OUT:-/tmp/out}
ROUNDS=${1:-3}
HERE=$(dirname "$0")
mkdir -p "$OUT"
HEADER=kernels/include/kvplan/kernels/fragment_decode.cuh
DEFAULT='#define KVPLAN_FRAGMENT_DECODE_SKELETON 0'
grep -qxF "$DEFAULT" "$HEADER" || { echo "$HEADER no longer has the line: $DEFAULT (update $0)"; exit 1; }
if [ "${SHIPPED:-0}" = 1 ]; then
  mkdir -p /tmp/decode_bounds
  sed "s/^$DEFAULT\$/#define KVPLAN_FRAGMENT_DECODE_SKELETON 1/" "$HEADER" > /tmp/decode_bounds/fragment_decode.cuh
  L="--model llama3.1-8b --kbits 3 --k-align 16 --fragment --fragment-step-only --graph --iters 10 --batch 16"
  Q="--model qwen2.5-3b --kbits 3 --k-align 16 --fragment --fragment-step-only --graph --iters 10 --batch 16"
  S="--settle-ms 2000"
  export AB_HEADERS="fragment_decode.cuh=/tmp/decode_bounds/fragment_decode.cuh"
  export AB_CASES="$L --ctx 32768 $S;$L --ctx 131072 $S;$Q --ctx 32768 $S;$Q --ctx 131072 $S;$L --ctx 32768"
fi
SKIP_TESTS=1 SKIP_SANITIZERS=1 BUILD_TARGETS="packed_decode_bench fragment_decode_probe fragment_decode_probe_static" \
  bash "$HERE/run_on_h200.sh" --model qwen2.5-3b --kbits 2 --ctx 1024 --batch 1 --iters 2 --no-encode \
  > "$OUT/setup.log" 2>&1 || { tail -20 "$OUT/setup.log"; exit 1; }
SKELETONS="fragment_decode_probe_skeleton fragment_decode_probe_prmt2 fragment_decode_probe_prmt3 fragment_decode_probe_nodecode fragment_decode_probe_static_skeleton"
cmake -DKVPLAN_PROBE_SKELETONS=ON /tmp/build-gpu > /dev/null 2>&1
# shellcheck disable=SC2086  # a list of targets
cmake --build /tmp/build-gpu -j 16 --target $SKELETONS > "$OUT/skeletons_build.log" 2>&1 ||
  { grep -E "error|FAILED" "$OUT/skeletons_build.log" | head -20; exit 1; }
rm -f "$OUT"/{configure.log,build.log,sass.txt,skeletons_build.log}
export LD_LIBRARY_PATH=/tmp/deb/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
BIN=/tmp/build-gpu/bin
PROBES="fragment_decode_probe fragment_decode_probe_skeleton fragment_decode_probe_prmt2 fragment_decode_probe_prmt3 fragment_decode_probe_nodecode fragment_decode_probe_static fragment_decode_probe_static_skeleton"
for p in $PROBES; do
  echo "== $p"
  cuobjdump -sass "$BIN/$p" > "/tmp/$p.sass" 2>/dev/null
  for i in 0 1 2 3 4 5 6; do
    python3 "$HERE/sass_loop.py" "/tmp/$p.sass" --function "$i" 2>/dev/null | grep -A1 "ProbeAttention"
  done
done > "$OUT/sass_loops.txt"
run() { timeout 120 "$BIN/$1" --batch 16 --iters 20 --no-check "${@:2}" 2>&1 | grep -E "^(llama|qwen)|rror"; }
{
  for p in $PROBES; do echo "== burst $p"; run "$p"; done
  for r in $(seq 1 "$ROUNDS"); do
    for p in $PROBES; do echo "== sustained round $r $p"; run "$p" --settle-ms 2000; done
  done
} > "$OUT/probes.log"
python3 "$HERE/probe_medians.py" "$OUT/probes.log"
[ "${SHIPPED:-0}" = 1 ] && python3 "$HERE/ab_medians.py" "$OUT/ab.log"
exit 0
