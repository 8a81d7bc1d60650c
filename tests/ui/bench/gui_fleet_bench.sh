#!/usr/bin/env bash
# The desktop console under a live fleet: N agents (sextant-loadgen, synthetic figures changing
# every interval) streaming metrics to `sextant gui`, which prints the GUI thread's event-loop
# latency (p50/p99/max of queued calls) and the process's memory after SECONDS.
#
#   tests/ui/bench/gui_fleet_bench.sh BUILD_DIR [AGENTS=100] [SECONDS=60] [INTERVAL_MS=1000]
set -euo pipefail
build=${1:?build dir}
agents=${2:-100}
seconds=${3:-60}
interval=${4:-1000}
state=$(mktemp -d)
log="$state/loadgen.log"
cleanup() {
  if [[ -n "${lg:-}" ]]; then kill "$lg" 2>/dev/null || true; wait "$lg" 2>/dev/null || true; fi
  rm -rf "$state"
}
trap cleanup EXIT
"$build/tests/sextant-loadgen" --agents "$agents" --interval-ms "$interval" --state "$state/console" >"$log" 2>&1 &
lg=$!
for _ in $(seq 1 600); do
  grep -q "^ready " "$log" && break
  kill -0 "$lg" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
grep -q "^ready " "$log" || { echo "loadgen did not become ready" >&2; cat "$log"; exit 1; }
QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen} "$build/app/sextant/sextant" gui \
  --state "$state/console" --bench-seconds "$seconds"
