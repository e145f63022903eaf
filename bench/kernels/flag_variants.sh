#!/usr/bin/env bash
# Alternates flag variants of one packed_decode_bench binary on several cases,
# three rounds, in the ab.log format of run_on_h200.sh's AB_* comparisons, so
# that bench/kernels/ab_medians.py prints their medians. For choices the
# binary makes at run time (split counts, balanced splits, page table width),
# where AB_TREES would rebuild the same code twice.
#
# Usage (after run_on_h200.sh has built /tmp/build-gpu):
#   bench/kernels/flag_variants.sh "CASE1;CASE2" "VARIANT1;VARIANT2" [DEADLINE_S] > ab.log
#   bench/kernels/ab_medians.py ab.log
# A case is packed_decode_bench's arguments (--no-encode is added); a variant
# is flags added to it ("base": none). DEADLINE_S (default 480): no run starts
# after that many seconds of the script's time, so a device call ends within
# its limit (the log says "== deadline" where it stopped).
# Example:
#   L="--model llama3.1-8b --kbits 3 --k-align 16 --fragment --graph --iters 10 --batch 16"
#   bench/kernels/flag_variants.sh "$L --ctx 32768 --ragged" "base;--fit-splits"
set -uo pipefail
BIN=${BIN:-/tmp/build-gpu/bin/packed_decode_bench}
deadline=${3:-480}
IFS=';' read -ra cases <<< "$1"
IFS=';' read -ra variants <<< "$2"
for c in "${cases[@]}"; do
  echo "==== case: $c"
  for _ in 1 2 3; do
    for v in "${variants[@]}"; do
      [ "$SECONDS" -lt "$deadline" ] || { echo "== deadline"; exit 0; }
      echo "== $v"
      flags=$v
      [ "$v" = base ] && flags=
      # shellcheck disable=SC2086  # cases and variants are word lists
      "$BIN" $c $flags --no-encode 2>&1 | grep -E "^(llama|qwen)|step shape|rror" | head -4
    done
  done
done
