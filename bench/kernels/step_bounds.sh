#!/usr/bin/env bash
# Bounds on what the fragment step's fixed-function kernels cost inside a step
# (NOTES.md run 24), on the GPU machine: packed_decode_bench built from three
# copies of this tree whose FragmentDecodeProgram::Step skips a launch (the
# merge, the prologue, both: the attention alone; their outputs are wrong by
# design, only their times mean something), alternated with this tree's own
# build by run_on_h200.sh's A/B on each case (same process start, three rounds).
# Usage (repo root): bench/kernels/step_bounds.sh [case;case...]
# (default: Llama and Qwen K3V3a16 at 32K, batch 1 and 16); the A/B log is
# $OUT/ab.log, one row per variant and round in the order: this tree, no
# merge, no prologue, attention alone.
set -uo pipefail
STEP=kernels/src/fragment_decode_program.cc
PROLOGUE='  cudaError_t e = LaunchFragmentPrologue(p, buffers.q_rot, stream);'
MERGE='  if (e == cudaSuccess) e = LaunchPackedMerge(p, stream);'
for line in "$PROLOGUE" "$MERGE"; do
  grep -qxF "$line" "$STEP" || { echo "$STEP no longer has the line: $line (update $0)"; exit 1; }
done
ROOT=/tmp/step_bounds
rm -rf "$ROOT"
for v in nomerge noprologue attention_only; do
  mkdir -p "$ROOT/$v" && cp -r kernels core bench cmake tests "$ROOT/$v/"
done
skip() {  # variant, line to drop, replacement
  python3 - "$ROOT/$1/$STEP" "$2" "$3" <<'PY'
import sys
path, line, new = sys.argv[1:]
text = open(path).read()
open(path, "w").write(text.replace(line + "\n", new + "\n"))
PY
}
skip nomerge "$MERGE" ""
skip noprologue "$PROLOGUE" "  cudaError_t e = cudaSuccess;"
skip attention_only "$MERGE" ""
skip attention_only "$PROLOGUE" "  cudaError_t e = cudaSuccess;"
L="--model llama3.1-8b --kbits 3 --k-align 16 --fragment --graph --iters 10"
Q="--model qwen2.5-3b --kbits 3 --k-align 16 --fragment --graph --iters 10"
CASES=${1:-"$L --batch 1 --ctx 32768;$L --batch 16 --ctx 32768;$Q --batch 1 --ctx 32768;$Q --batch 16 --ctx 32768"}
AB_TREES="$ROOT/nomerge $ROOT/noprologue $ROOT/attention_only" AB_CASES="$CASES" \
  SKIP_TESTS=1 SKIP_SANITIZERS=1 BUILD_TARGETS="packed_decode_bench" \
  bash "$(dirname "$0")/run_on_h200.sh" $L --batch 1 --ctx 4096 --no-encode
