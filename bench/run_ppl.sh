#!/usr/bin/env bash
# End-to-end quality of the packed KV cache on doc-llama-h64: calibrates the
# model's block statistics on ../shared/data/calib-prompts.jsonl, builds
# Block-GTQ and uniform TQ-MSE plans at K2V2, K3V3 and K4V4, and runs
# `kvplan-worker ppl` over ../shared/data/eval-prompts.jsonl for each (the
# fp16 run once, with the first plan), then prints a Markdown table.
#
#   bench/run_ppl.sh [ppl flags...]     e.g. --context 256 --prefill 192 --max-windows 48
#
# BUILD_DIR (default build) holds bin/kvplan-worker and bin/kvplan; SHARED_DIR
# (default ../shared) the model and data; CALIB_TOKENS (default 32768) the
# calibration tokens, in 256-token windows. The JSON of every run is kept in
# OUT_DIR (default: a temporary directory, removed at exit). K_GROUP_ALIGN
# (default empty) lists K alignments in dims, e.g. 16 or 8,16: each adds a
# Block-GTQ plan per budget built with `kvplan plan build --k-group-align N`
# (every K width group a multiple of N dims) and its row in the table.
set -euo pipefail

build_dir="${BUILD_DIR:-build}"
shared="${SHARED_DIR:-../shared}"
worker="$build_dir/bin/kvplan-worker"
kvplan="$build_dir/bin/kvplan"
model="$shared/models/doc-llama-h64"
for bin in "$worker" "$kvplan"; do
  [[ -x "$bin" ]] || { echo "run_ppl: $bin is not built" >&2; exit 2; }
done
[[ -d "$model" ]] || { echo "run_ppl: $model is absent" >&2; exit 2; }
command -v jq >/dev/null || { echo "run_ppl: needs jq for the table" >&2; exit 2; }

if [[ -n "${OUT_DIR:-}" ]]; then
  work="$OUT_DIR"
  mkdir -p "$work"
else
  work="$(mktemp -d "${TMPDIR:-/tmp}/kvplan-ppl.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
fi

aligns=()
IFS=',' read -r -a aligns <<<"${K_GROUP_ALIGN:-}"
schemes=(uniform block-gtq)
for align in "${aligns[@]}"; do schemes+=("block-gtq-a$align"); done

"$worker" calibrate --model "$model" --prompts "$shared/data/calib-prompts.jsonl" \
  --out "$work/stats.kvps" --seq-len 256 --max-tokens "${CALIB_TOKENS:-32768}" >&2
for bits in 2 3 4; do
  "$kvplan" plan build --stats "$work/stats.kvps" --k-bits "$bits" --v-bits "$bits" \
    --out "$work/block-gtq-$bits.json" >&2
  "$kvplan" plan build --stats "$work/stats.kvps" --k-bits "$bits" --v-bits "$bits" --uniform \
    --out "$work/uniform-$bits.json" >&2
  for align in "${aligns[@]}"; do
    "$kvplan" plan build --stats "$work/stats.kvps" --k-bits "$bits" --v-bits "$bits" \
      --k-group-align "$align" --out "$work/block-gtq-a$align-$bits.json" >&2
  done
done

fp16_flag=()
for bits in 2 3 4; do
  for scheme in "${schemes[@]}"; do
    start=$SECONDS
    "$worker" ppl --model "$model" --text "$shared/data/eval-prompts.jsonl" \
      --plan "$work/$scheme-$bits.json" --json "${fp16_flag[@]}" "$@" >"$work/ppl-$scheme-$bits.json"
    echo "run_ppl: $scheme K${bits}V${bits} in $((SECONDS - start)) s" >&2
    fp16_flag=(--skip-fp16)
  done
done

first="$work/ppl-uniform-2.json"
jq -r '"\(.windows) windows of \(.context) tokens (prefill \(.prefill), sinks \(.sinks), recent \(.recent)), \(.runs[0].tokens_scored) tokens scored per run\n"' "$first"
echo "| K/V | scheme | PPL | ΔPPL vs fp16 | mean NLL | K B/token/head | V B/token/head |"
echo "|---|---|---|---|---|---|---|"
fp16_ppl="$(jq '.runs[] | select(.name == "fp16") | .perplexity' "$first")"
jq -r '.runs[] | select(.name == "fp16") |
  "| fp16 | — | \(.perplexity * 1000 | round / 1000) | 0 | \(.mean_nll * 100000 | round / 100000) | \(.k_bytes_per_token_head) | \(.v_bytes_per_token_head) |"' "$first"
for bits in 2 3 4; do
  for scheme in "${schemes[@]}"; do
    jq -r --argjson fp16 "$fp16_ppl" --arg kv "K${bits}V${bits}" '
      .plan.k_scheme as $s | .plan.k_group_align as $a | .runs[] | select(.name == "packed") |
      "| \($kv) | \(if $s == "uniform" then "TQ-MSE (uniform)" elif $a then "Block-GTQ, K groups of \($a) dims" else "Block-GTQ" end) | \(.perplexity * 1000 | round / 1000) | \((.perplexity - $fp16) * 1000 | round / 1000 | if . >= 0 then "+\(.)" else "\(.)" end) | \(.mean_nll * 100000 | round / 100000) | \(.k_bytes_per_token_head * 100 | round / 100) | \(.v_bytes_per_token_head * 100 | round / 100) |"' \
      "$work/ppl-$scheme-$bits.json"
  done
done
