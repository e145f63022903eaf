#!/usr/bin/env bash
# A bound on what the fragment step's merge kernel costs inside a step (NOTES.md
# run 24), on the GPU machine: packed_decode_bench built from this tree and from
# a copy whose FragmentDecodeProgram::Step skips the merge launch (its outputs
# are wrong by design, only its time means something), alternated by
# run_on_h200.sh's A/B on each case (same process start, three rounds).
# Only launches whose removal leaves the attention's inputs intact give a
# bound: skipping the prologue instead leaves q̂ unwritten, and the attention
# then runs on a buffer with no queries in it, faster than any real step
# (NOTES run 24).
# Usage (repo root): bench/kernels/step_bounds.sh ["case;case..."]
# (default: Llama and Qwen K3V3a16 at 32K, batch 1 and 16); the A/B log is
# $OUT/ab.log, one row per variant and round: this tree, then no merge.
set -uo pipefail
STEP=kernels/src/fragment_decode_program.cc
MERGE='  if (e == cudaSuccess) e = LaunchPackedMerge(p, stream);'
grep -qxF "$MERGE" "$STEP" || { echo "$STEP no longer has the line: $MERGE (update $0)"; exit 1; }
ROOT=/tmp/step_bounds
rm -rf "$ROOT" && mkdir -p "$ROOT/nomerge" && cp -r kernels core bench cmake tests "$ROOT/nomerge/"
python3 - "$ROOT/nomerge/$STEP" "$MERGE" <<'PY'
import sys
path, line = sys.argv[1:]
text = open(path).read()
open(path, "w").write(text.replace(line + "\n", ""))
PY
L="--model llama3.1-8b --kbits 3 --k-align 16 --fragment --graph --iters 10"
Q="--model qwen2.5-3b --kbits 3 --k-align 16 --fragment --graph --iters 10"
CASES=${1:-"$L --batch 1 --ctx 32768;$L --batch 16 --ctx 32768;$Q --batch 1 --ctx 32768;$Q --batch 16 --ctx 32768"}
AB_TREES="$ROOT/nomerge" AB_CASES="$CASES" \
  SKIP_TESTS=1 SKIP_SANITIZERS=1 BUILD_TARGETS="packed_decode_bench" \
  bash "$(dirname "$0")/run_on_h200.sh" $L --batch 1 --ctx 4096 --no-encode
