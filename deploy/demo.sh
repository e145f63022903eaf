#!/usr/bin/env bash
# What `make demo` runs: Block-GTQ end to end on a real model, offline.
#
# Usage: deploy/demo.sh BUILD_DIR MODEL_DIR PROMPTS_FILE STATS_FILE SHARED_DIR
#   With MODEL_DIR present: kvplan-worker calibrates the model on PROMPTS_FILE,
#   kvplan builds a K3V3 plan from the statistics, prints the allocation and a
#   what-if table, and kvplan-worker runs the paper's fidelity diagnostic.
#   Without a model: the same allocation and what-if from STATS_FILE (energies
#   JSON or a calibration file).
set -euo pipefail
build=$1
model=$2
prompts=$3
stats=$4
shared=$5
kvplan="$build/bin/kvplan"
worker="$build/bin/kvplan-worker"
out="$build/demo"
mkdir -p "$out"

if [[ -f "$model/config.json" && -f "$prompts" && -x "$worker" ]]; then
  echo "== 1. Calibrate $model on 32768 tokens of $prompts (256-token windows, on the CPU)"
  "$worker" calibrate --model "$model" --prompts "$prompts" --max-tokens 32768 --seq-len 256 \
    --out "$out/stats.kvpc"
  stats="$out/stats.kvpc"
  echo
  echo "== 2. Build a Block-GTQ K3V3 plan from those statistics"
  "$kvplan" plan build --stats "$stats" --k-bits 3 --v-bits 3 --out "$out/plan-k3v3.json"
elif [[ ! -f "$stats" ]]; then
  cat >&2 <<MSG
make demo needs a model or block statistics and found neither:
  no Hugging Face checkpoint at '$model' (pass MODEL=DIR) and no statistics at '$stats'
  (pass STATS=FILE: JSON {"<layer>.<kv_head>": {"q": [...], "k": [...]}}, ready scores, or a
  calibration file from kvplan-worker calibrate), or put the shared test material at ../shared.
MSG
  exit 2
else
  echo "== No model at '$model'; using the block statistics in $stats"
fi
echo
echo "== Bits of every RoPE block per (layer.kv_head) at 3 bits/dim (widths used, then each block):"
"$kvplan" allocate --energy-json "$stats" --bits 3
echo
echo "== Budgets: bytes per token, compression, memory at 128K context, distortion vs uniform TQ-MSE"
"$kvplan" whatif --energy-json "$stats" --k-bits 2,2.5,3,4 --v-bits 2,3,4 \
  --context 131072 --batch 1 --memory-gib 80 --per-layer
if [[ -f "$model/config.json" && -f "$shared/data/calib-window.txt" && -x "$worker" ]]; then
  echo
  echo "== 3. Fidelity diagnostic (paper protocol: 2048 calibration + 2048 test tokens, K only)"
  "$worker" eval --model "$model" --calib-text "$shared/data/calib-window.txt" \
    --test-text "$shared/data/test-window.txt" --bits 2,3,4
fi
