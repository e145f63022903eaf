#!/usr/bin/env bash
# What the wgmma encode's exact match with the CPU reference costs (NOTES.md
# run 39, BENCHMARKS.md "Session 25"), on the GPU machine: packed_decode_bench
# built from this tree and from three copies whose outputs are wrong by design
# (only their time means something), alternated by run_on_h200.sh's A/B on
# each case (same process start, three rounds), then the medians per case.
#   fp32:    the split's ‖x‖² lanes and the codes' c² sums in fp32 instead of
#            the CPU's fp64 order (c² read as 4 bytes of the fp64 table: the
#            cost of a float table, not its values);
#   twopass: the rotation without its x_hi·R_lo product (16 wgmma steps per
#            slab instead of 24);
#   both:    the two.
# A copy whose edit no longer matches the source stops the script: update the
# patterns below with the kernel.
# Usage (repo root): bench/kernels/exactness_bounds.sh ["case;case..."]
# (default: Llama K3V3a16 and K2V2a16 with fragment pages, greedy Llama K3V3,
# Qwen K3V3a16 with fragment pages, 32K tokens each); logs in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}
ROOT=/tmp/exactness_bounds
INC=kernels/include/kvplan/kernels
rm -rf "$ROOT"
for v in fp32 twopass both; do
  mkdir -p "$ROOT/$v" && cp -r kernels core bench cmake tests "$ROOT/$v/"
done
python3 - "$ROOT" "$INC" <<'PY' || exit 1
import sys
root, inc = sys.argv[1:]

def edit(tree, name, old, new, count):
    path = f"{root}/{tree}/{inc}/{name}"
    text = open(path).read()
    if text.count(old) != count:
        sys.exit(f"{name}: expected {count} x {old!r}, found {text.count(old)}")
    open(path, "w").write(text.replace(old, new))

def fp32_sums(tree):
    edit(tree, "encode_pack.cuh",
         "__device__ __forceinline__ double AddSquare(double sum, float v) {",
         "__device__ __forceinline__ float AddSquare(float sum, float v) { return fmaf(v, v, sum); }\n"
         "__device__ __forceinline__ double AddSquare(double sum, float v) {", 1)
    for name, lanes, square in (("encode_k_wgmma.cuh", 3, "square"),
                                ("encode_v_wgmma.cuh", 1, "squares")):
        edit(tree, name, "double lane_a = 0.0, lane_b = 0.0;",
             "float lane_a = 0.0f, lane_b = 0.0f;", lanes)
        edit(tree, name, "double code_sum[2] = {0.0, 0.0};",
             "float code_sum[2] = {0.0f, 0.0f};", 1)
        edit(tree, name, f"code_sum[r] = __dadd_rn(code_sum[r], {square}[code[e]]);",
             f"code_sum[r] += reinterpret_cast<const float*>({square})[code[e]];", 1)
    for lane, index in (("lane_a", "codes & 0xff"), ("lane_b", "codes >> 8")):
        edit(tree, "encode_k_wgmma.cuh", f"{lane} = __dadd_rn({lane}, square[{index}]);",
             f"{lane} += reinterpret_cast<const float*>(square)[{index}];", 1)

def two_products(tree):
    edit(tree, "encode_wgmma_slab.cuh",
         "    WgmmaM64N128K16(acc, desc(a_hi + 256 * kk), desc(b_lo + 256 * kk), true);\n", "", 1)

fp32_sums("fp32")
two_products("twopass")
fp32_sums("both")
two_products("both")
PY
I="--graph --iters 10 --batch 1 --ctx 32768"
F="--k-align 16 --fragment"
CASES=${1:-"--model llama3.1-8b --kbits 3 $F $I;--model llama3.1-8b --kbits 2 $F $I;--model llama3.1-8b --kbits 3 $I;--model qwen2.5-3b --kbits 3 $F $I"}
SKIP_TESTS=1 SKIP_SANITIZERS=1 BUILD_TARGETS="packed_decode_bench" \
  AB_TREES="$ROOT/fp32 $ROOT/twopass $ROOT/both" AB_ENCODE=" " AB_CASES="$CASES" \
  bash "$(dirname "$0")/run_on_h200.sh" --model qwen2.5-3b --kbits 2 --ctx 1024 --batch 1 \
  --iters 2 --no-encode > "$OUT/setup.log" 2>&1 || { tail -20 "$OUT/setup.log"; exit 1; }
python3 "$(dirname "$0")/ab_medians.py" "$OUT/ab.log"
