#!/usr/bin/env bash
# What `make demo` runs: Block-GTQ on a model's block statistics, offline.
#
# Usage: deploy/demo.sh BUILD_DIR STATS_FILE
#   STATS_FILE: a JSON energy/score file or a kvplan statistics file; make demo
#   passes ../shared/reference/doc-llama-h64.blockgtq-reference.json unless STATS= is given.
set -euo pipefail
build=$1
stats=$2
kvplan="$build/bin/kvplan"

if [[ ! -f "$stats" ]]; then
  cat >&2 <<MSG
make demo needs block statistics and found none at '$stats'.
Pass a file: make demo STATS=path/to/energies.json
  (JSON {"<layer>.<kv_head>": {"q": [...], "k": [...]}} or ready scores, or a statistics
  file from kvplan-worker calibrate), or put the shared test material at ../shared.
MSG
  exit 2
fi

echo "== Block statistics: $stats"
echo
echo "== Bit allocation per (layer.kv_head) at 3 bits/dim (widths used, then bits of each RoPE block):"
"$kvplan" allocate --energy-json "$stats" --bits 3
echo
echo "== Budgets: bytes per token, compression, memory at 128K context, distortion vs uniform TQ-MSE"
"$kvplan" whatif --energy-json "$stats" --k-bits 2,2.5,3,4 --v-bits 2,3,4 \
  --context 131072 --batch 1 --memory-gib 80 --per-layer
