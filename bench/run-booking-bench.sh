#!/usr/bin/env bash
# Online booking's slot lists (issue 13 floor: p99 <= 300 ms with a warm cache): bench_booking
# three times — 200 professionals' calendars on the Graph simulator, one week of slots, CLIENTS
# threads for SECONDS each — and the median run by answers per second, with the machine and the
# date, for docs/performance.md. The machine may be shared: say so with the figures.
# Usage: bench/run-booking-bench.sh [build dir=build]   (env: CLIENTS=8 SECONDS_PER_RUN=10
#        PROFESSIONALS=200)
set -euo pipefail
BENCH_NAME=booking-bench
source "$(dirname "$0")/bench-lib.sh"
build=${1:-build}
bin=$build/bench/bench_booking
[[ -x $bin ]] || die "$bin is missing: cmake --build $build --target bench_booking"
clients=${CLIENTS:-8}
secs=${SECONDS_PER_RUN:-10}
pros=${PROFESSIONALS:-200}
log "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
log "machine: $(nproc) CPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
log "command: $bin $clients $secs $pros (3 runs)"
for run in 1 2 3; do
  "$bin" "$clients" "$secs" "$pros" 2>/dev/null | tee -a "$TMP/runs.txt"
done
median=$(awk '{for (i = 1; i <= NF; i++) if ($i ~ /^answers_per_s=/) {split($i, a, "="); print a[2], $0}}' \
  "$TMP/runs.txt" | sort -n | sed -n 2p | cut -d' ' -f2-)
echo "median: $median"
p99=$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$median")
if awk -v p="$p99" 'BEGIN { exit !(p <= 300) }'; then
  log "floor met: p99 ${p99} ms <= 300 ms"
else
  log "FLOOR MISSED: p99 ${p99} ms > 300 ms"
  exit 1
fi
