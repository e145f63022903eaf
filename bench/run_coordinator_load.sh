#!/usr/bin/env bash
# Starts kvplan-coordinator on a temporary data dir at 127.0.0.1 (port 0, the
# bound port read from its "listening on" line), runs coordinator_load against
# it from a separate process, stops the coordinator and removes the data dir.
#
#   bench/run_coordinator_load.sh [coordinator_load flags...]
#
# BUILD_DIR (default build) holds bin/kvplan-coordinator and bin/coordinator_load.
# Bounded: the coordinator gets 30 s to come up, the load program 15 minutes.
set -euo pipefail

build_dir="${BUILD_DIR:-build}"
coordinator="$build_dir/bin/kvplan-coordinator"
load="$build_dir/bin/coordinator_load"
for bin in "$coordinator" "$load"; do
  [[ -x "$bin" ]] || { echo "run_coordinator_load: $bin is not built" >&2; exit 2; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/kvplan-coordinator-load.XXXXXX")"
coordinator_pid=""
cleanup() {
  if [[ -n "$coordinator_pid" ]]; then
    kill -TERM "$coordinator_pid" 2>/dev/null || true
    wait "$coordinator_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$coordinator" --listen 127.0.0.1:0 --data-dir "$work/data" >"$work/coordinator.log" 2>&1 &
coordinator_pid=$!
address=""
for _ in $(seq 300); do
  address="$(sed -n 's/^listening on //p' "$work/coordinator.log" | head -n 1)"
  [[ -n "$address" ]] && break
  kill -0 "$coordinator_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ "$address" != 127.0.0.1:* ]]; then
  echo "run_coordinator_load: the coordinator did not come up on 127.0.0.1:" >&2
  cat "$work/coordinator.log" >&2
  exit 1
fi

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ); coordinator pid $coordinator_pid on $address"
timeout 900 "$load" --target "$address" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
