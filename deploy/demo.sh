#!/usr/bin/env bash
# What `make demo` runs: kvplan end to end on a real model.
#
# Usage: deploy/demo.sh BUILD_DIR MODEL_DIR PROMPTS_FILE STATS_FILE SHARED_DIR
#   With MODEL_DIR present: a kvplan-coordinator on a fresh RocksDB data dir (loopback, any free
#   port), the model registered by fingerprint, a 4-shard calibration job run by two
#   `kvplan-worker serve` processes on the CPU while the job's progress is shown, a K3V3 plan
#   created from the job's merged statistics, promoted to `stable` and fetched by channel, a
#   what-if table from the coordinator, and the paper's fidelity diagnostic.
#   Without a model: the allocation and what-if offline from STATS_FILE.
set -euo pipefail
build=$1
model=$2
prompts=$3
stats=$4
shared=$5
kvplan="$build/bin/kvplan"
worker="$build/bin/kvplan-worker"
coordinator="$build/bin/kvplan-coordinator"
out="$build/demo"
mkdir -p "$out"

offline() {
  echo "== Bits of every RoPE block per (layer.kv_head) at 3 bits/dim (widths used, then each block):"
  "$kvplan" allocate --energy-json "$1" --bits 3
  echo
  echo "== Budgets: bytes per token, compression, memory at 128K context, distortion vs uniform"
  "$kvplan" whatif --energy-json "$1" --k-bits 2,2.5,3,4 --v-bits 2,3,4 \
    --context 131072 --batch 1 --memory-gib 80 --per-layer
}

if [[ ! -f "$model/config.json" || ! -f "$prompts" || ! -x "$worker" || ! -x "$coordinator" ]]; then
  if [[ ! -f "$stats" ]]; then
    cat >&2 <<MSG
make demo needs a model or block statistics and found neither:
  no Hugging Face checkpoint at '$model' (pass MODEL=DIR) and no statistics at '$stats'
  (pass STATS=FILE: JSON {"<layer>.<kv_head>": {"q": [...], "k": [...]}}, ready scores, or a
  calibration file from kvplan-worker calibrate), or put the shared test material at ../shared.
MSG
    exit 2
  fi
  echo "== No model at '$model' (or no worker/coordinator built); offline, from $stats"
  offline "$stats"
  exit 0
fi

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

echo "== 1. Start kvplan-coordinator (embedded RocksDB in $out/coordinator)"
rm -rf "$out/coordinator"
: >"$out/coordinator.log"
"$coordinator" --listen 127.0.0.1:0 --data-dir "$out/coordinator" \
  --metrics-listen 127.0.0.1:0 --log-format text >"$out/coordinator.log" 2>&1 &
pids+=($!)
addr=""
for _ in $(seq 1 200); do
  addr=$(sed -n 's/^listening on //p' "$out/coordinator.log")
  [[ -n "$addr" ]] && break
  sleep 0.05
done
[[ -n "$addr" ]] || { cat "$out/coordinator.log" >&2; exit 1; }
cat "$out/coordinator.log"
kv=("$kvplan" --coordinator "$addr")

echo
echo "== 2. Register the model by fingerprint"
fingerprint=$("$worker" fingerprint --model "$model")
"${kv[@]}" models register --model-config "$model/config.json" --fingerprint "$fingerprint" \
  --name demo-model

echo
echo "== 3. A calibration job: 4 shards of $prompts, 8192 tokens each, run by two workers"
"${kv[@]}" jobs create --model demo-model --prompts "$prompts" --shards 4 \
  --tokens-per-shard 8192 --name demo-job
for w in 1 2; do
  "$worker" serve --coordinator "$addr" --model "$model" --device cpu --seq-len 256 \
    --worker-id "demo-worker-$w" --once >"$out/worker-$w.log" 2>&1 &
  pids+=($!)
done
# A live progress line until the job ends; non-zero if it is cancelled.
"${kv[@]}" jobs watch demo-job || { cat "$out"/worker-*.log >&2; exit 1; }
grep -h "committed" "$out"/worker-*.log

echo
echo "== 4. A Block-GTQ K3V3 plan from the job's statistics, promoted to 'stable', fetched by channel"
"${kv[@]}" plans create --model demo-model --job demo-job --k-bits 3 --v-bits 3 --name k3v3
"${kv[@]}" channels promote --model demo-model --channel stable --plan k3v3
"${kv[@]}" plans get --model demo-model --channel stable --out "$out/plan-stable.json"
echo "stable plan written to $out/plan-stable.json"

echo
echo "== 5. What-if from the coordinator's statistics"
"${kv[@]}" whatif --model demo-model --k-bits 2,2.5,3,4 --v-bits 2,3,4 --context 131072 \
  --batch 1 --memory-gib 80

if [[ -f "$shared/data/calib-window.txt" ]]; then
  echo
  echo "== 6. Fidelity diagnostic (paper protocol: 2048 calibration + 2048 test tokens, K only)"
  "$worker" eval --model "$model" --calib-text "$shared/data/calib-window.txt" \
    --test-text "$shared/data/test-window.txt" --bits 2,3,4
fi
