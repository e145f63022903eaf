#!/usr/bin/env bash
# Bounds on what the fragment step's merge kernel costs inside a step (NOTES.md
# runs 24, 39), on the GPU machine: packed_decode_bench built from this tree and
# from two copies whose outputs are wrong by design (only their time means
# something): one whose FragmentDecodeProgram::Step skips the merge launch, one
# whose MergeKernel leaves V's rotation in the output (as if R_v were folded
# into the model's W_o). All alternated by run_on_h200.sh's A/B on each case
# (same process start, three rounds).
# Only launches whose removal leaves the attention's inputs intact give a
# bound: skipping the prologue instead leaves q̂ unwritten, and the attention
# then runs on a buffer with no queries in it, faster than any real step
# (NOTES run 24).
# Usage (repo root): bench/kernels/step_bounds.sh ["case;case..."]
# (default: Llama and Qwen K3V3a16 at 32K, batch 1 and 16); the A/B log is
# $OUT/ab.log, one row per variant and round: this tree, no merge, no rotation.
set -uo pipefail
STEP=kernels/src/fragment_decode_program.cc
MERGE='  if (e == cudaSuccess) e = LaunchPackedMerge(p, stream);'
grep -qxF "$MERGE" "$STEP" || { echo "$STEP no longer has the line: $MERGE (update $0)"; exit 1; }
ROOT=/tmp/step_bounds
rm -rf "$ROOT"
for v in nomerge norotation; do
  mkdir -p "$ROOT/$v" && cp -r kernels core bench cmake tests "$ROOT/$v/"
done
python3 - "$ROOT/nomerge/$STEP" "$MERGE" <<'PY'
import sys
path, line = sys.argv[1:]
text = open(path).read()
open(path, "w").write(text.replace(line + "\n", ""))
PY
# MergeKernel without its rotation: no prefetch of R's column, no products,
# and each head's merged sum (rot) as the output's numerator.
python3 - "$ROOT/norotation/kernels/include/kvplan/kernels/decode_attention.cuh" <<'PY' || exit 1
import sys
path = sys.argv[1]
text = open(path).read()
edits = [
    ("""  const float* r = p.rotations + p.heads[kv_head].v_rotation;
  constexpr int kTerms = HEAD_DIM / kSumParts;
  float r_col[kTerms];
#pragma unroll
  for (int k = 0; k < kTerms; ++k) r_col[k] = r[(part * kTerms + k) * HEAD_DIM + dim];
""", ""),
    ("""  // x_i = Σ_j R[j][i]·y_j / √d: column dim of R, the part's rows, every head.
  float acc[HEADS];
#pragma unroll
  for (int h = 0; h < HEADS; ++h) acc[h] = 0.0f;
#pragma unroll
  for (int k = 0; k < kTerms; k += 4) {
#pragma unroll
    for (int h = 0; h < HEADS; ++h) {
      const float4 y = *reinterpret_cast<const float4*>(rot + h * HEAD_DIM + part * kTerms + k);
      acc[h] += r_col[k] * y.x;
      acc[h] += r_col[k + 1] * y.y;
      acc[h] += r_col[k + 2] * y.z;
      acc[h] += r_col[k + 3] * y.w;
    }
  }
#pragma unroll
  for (int h = 0; h < HEADS; ++h) partial[(h * kSumParts + part) * HEAD_DIM + dim] = acc[h];
  __syncthreads();
""", ""),
    ("""    const float rotated = parts_sum(h);
""", """    const float rotated = rot[h * HEAD_DIM + dim];
"""),
]
for old, new in edits:
    if text.count(old) != 1:
        sys.exit(f"{path}: MergeKernel no longer has the expected code (update step_bounds.sh):\n{old}")
    text = text.replace(old, new)
open(path, "w").write(text)
PY
L="--model llama3.1-8b --kbits 3 --k-align 16 --fragment --graph --iters 10"
Q="--model qwen2.5-3b --kbits 3 --k-align 16 --fragment --graph --iters 10"
CASES=${1:-"$L --batch 1 --ctx 32768;$L --batch 16 --ctx 32768;$Q --batch 1 --ctx 32768;$Q --batch 16 --ctx 32768"}
AB_TREES="$ROOT/nomerge $ROOT/norotation" AB_CASES="$CASES" \
  SKIP_TESTS=1 SKIP_SANITIZERS=1 BUILD_TARGETS="packed_decode_bench" \
  bash "$(dirname "$0")/run_on_h200.sh" $L --batch 1 --ctx 4096 --no-encode
