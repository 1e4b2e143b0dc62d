#!/usr/bin/env bash
# The go-live backfill benchmark: 1.16 M CMS76 records through `relais backfill`.
#
#   bench/run-backfill-bench.sh [BUILD_DIR]        (default BUILD_DIR: build-bench next to bench/)
#
# 1. builds relais and bench_sink in BUILD_DIR (Release, configured if needed; BENCH_NO_BUILD=1
#    uses the binaries already there);
# 2. generates BENCH_INDIVIDUS individus + BENCH_DEMANDES demandes with bench/gen-cms76-ndjson;
# 3. starts bench_sink and relais on the shipped config/cms76.yaml, unchanged but for two things:
#    the BAN enrichment of the individus route is left out (it calls the national service, rate
#    limited; a backfill does not need it to be accepted), and the `genesis` destination becomes
#    a plain HTTP POST to bench_sink (bench_sink does not speak Genesis's SOAP nor appariement). Every destination URL (Genesis,
#    portal, Kannel) points at bench_sink through the environment variables the file reads;
#    mappings, routes and the source's `idempotency: $.id` are as shipped;
# 4. runs `relais backfill` (batch BENCH_BATCH, BENCH_PARALLEL requests in flight) and reports
#    the time until every record is accepted (routed and queued: answered after the commit);
# 5. waits until every delivery is settled (relais metrics: delivered + skipped + dead = routed)
#    and reports that time separately, with the sink's count;
# 6. checks the store: messages == records.
# Everything listens on 127.0.0.1; every process started here is stopped on exit.
#
# Environment (defaults in brackets):
#   BENCH_INDIVIDUS [160000]  BENCH_DEMANDES [995000]  BENCH_BATCH [1000]  BENCH_PARALLEL [2]
#   BENCH_SYNC [full]         store.synchronous
#   BENCH_DRAIN_TIMEOUT [1800] seconds to wait for the deliveries
#   BENCH_KEEP [0]            1 = keep the temp dir (config, logs, store, input)
#   BENCH_NO_BUILD [0]        1 = use the binaries already in BUILD_DIR
#   BENCH_PERF                if set, `perf record` of relais during the backfill into this file
#   BENCH_DELIVERY_NICE [0]   N > 0 = every destination gets `nice: N` (its delivery workers at a
#                             lower CPU priority: the intake goes first, the deliveries after)
#   BENCH_HOLD_DELIVERIES [0] 1 = the sink holds every delivery until the backfill is accepted
#                             (bench_sink --hold-file): the accept alone, without the deliveries
#                             competing for the CPU; they run afterwards
#   BENCH_SUMMARY_FILE        if set, the SUMMARY line is appended to this file
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(realpath -m "${1:-${BENCH_BUILD_DIR:-$ROOT/build-bench}}")
INDIVIDUS=${BENCH_INDIVIDUS:-160000}
DEMANDES=${BENCH_DEMANDES:-995000}
BATCH=${BENCH_BATCH:-1000}
PARALLEL=${BENCH_PARALLEL:-2}
SYNC=${BENCH_SYNC:-full}
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-1800}
TOKEN=bench-backfill-token-0123456789
ADMIN=bench-backfill-admin-0123456789

BENCH_NAME=backfill-bench
# shellcheck source=bench/bench-lib.sh
source "$ROOT/bench/bench-lib.sh"

# --- build -----------------------------------------------------------------------------------
bench_build

# --- helpers ---------------------------------------------------------------------------------
metric_sum() {  # metric_sum NAME: the sum of a counter over its labels
  curl -sf -H "Authorization: Bearer $ADMIN" "$RELAIS_URL/metrics" |
    awk -v m="$1" 'index($1, m "{") == 1 || $1 == m {s += $2} END {printf "%d", s}'
}

# --- input -----------------------------------------------------------------------------------
INPUT=$TMP/cms76.ndjson
t=$(now_ms)
"$ROOT/bench/gen-cms76-ndjson" --individus "$INDIVIDUS" --demandes "$DEMANDES" >"$INPUT"
RECORDS=$(wc -l <"$INPUT")
log "generated $RECORDS records ($(du -h "$INPUT" | cut -f1)) in $(($(now_ms) - t)) ms"

# --- sink ------------------------------------------------------------------------------------
HOLD_ARGS=()
if [[ ${BENCH_HOLD_DELIVERIES:-0} == 1 ]]; then
  touch "$TMP/sink.hold"
  HOLD_ARGS=(--hold-file "$TMP/sink.hold")
fi
"$SINK" --port-file "$TMP/sink.port" --threads 128 "${HOLD_ARGS[@]}" >"$TMP/sink.out" 2>&1 &
SINK_PID=$!
PIDS+=("$SINK_PID")
wait_for_file_line "$TMP/sink.out" 'listening on' "$SINK_PID" 10 || die "bench_sink did not start"
SINK_URL=http://127.0.0.1:$(cat "$TMP/sink.port")

# --- relais on the shipped cms76 configuration -----------------------------------------------
mkdir -p "$TMP/config"
ln -s "$ROOT/config/mappings" "$TMP/config/mappings"
ln -s "$ROOT/config/tables" "$TMP/config/tables"
# The one change: no BAN enrichment on the individus route (see the header).
sed -e '/^    enrich:$/{N;/enricher: adresse/d}' -e "s/^  synchronous: full$/  synchronous: $SYNC/" \
  "$ROOT/config/cms76.yaml" |
  # The `genesis` destination (SOAP, WS-Security, appariement: a search per new person) cannot
  # be answered by bench_sink: it becomes a plain HTTP POST to the sink, with the same
  # concurrency. What Genesis itself costs is not in these figures (docs/performance.md).
  awk -v url="$SINK_URL/genesis" '
    /^connectors:$/ { in_conn = 1 }
    in_conn && /^  genesis:$/ { skip = 1; print; print "    connector: http"; print "    url: " url;
      print "    method: POST"; print "    concurrency: 4"; print "    on_dead: hold"; next }
    skip && /^  [^ ]/ { skip = 0 }
    skip { next }
    { print }' |
  # BENCH_DELIVERY_NICE: `nice: N` after each destination's `connector:` line.
  awk -v nice="${BENCH_DELIVERY_NICE:-0}" '{ print } nice > 0 && /^    connector: / { print "    nice: " nice }' \
    >"$TMP/config/cms76.yaml"
grep -q '^    connector: genesis$' "$TMP/config/cms76.yaml" && die "the genesis destination is still there"
grep -q 'enricher: adresse, on_unavailable' "$TMP/config/cms76.yaml" && die "BAN step still there"
PORT=$(free_port)
export RELAIS_ADDRESS=127.0.0.1 RELAIS_PORT=$PORT RELAIS_STORE=$TMP/relais.db
# The shipped file encrypts at rest: its key, created as the file's comment says.
(umask 077 && head -c 32 /dev/urandom >"$TMP/store-1.key")
export RELAIS_STORE_KEY_FILE=$TMP/store-1.key
export CMS76_TOKEN=$TOKEN RELAIS_ADMIN_TOKEN=$ADMIN
# Genesis is a SOAP destination with WS-Security (docs/connectors/genesis.md): its password file.
(umask 077 && echo bench >"$TMP/genesis.password")
export GENESIS_URL=$SINK_URL/genesis GENESIS_USER=bench GENESIS_PASSWORD_FILE=$TMP/genesis.password
export GENESIS_INBOUND_TOKEN=bench-genesis-inbound-0123456789
export CMS76_API_URL=$SINK_URL/cms76 CMS76_API_TOKEN=bench PORTAIL_URL=$SINK_URL/portail
export PORTAIL_USER=bench PORTAIL_PASSWORD=bench BAN_URL=$SINK_URL/ban
export KANNEL_SENDSMS_URL=$SINK_URL/kannel KANNEL_USER=bench KANNEL_PASSWORD=bench
export RELAIS_PUBLIC_URL=http://127.0.0.1:$PORT SMS_INBOUND_TOKEN=bench-inbound-token-0123456789
export CALENDAR_TENANT=bench CALENDAR_CLIENT_ID=bench CALENDAR_CLIENT_SECRET=bench
export CMS76_API_URL=$SINK_URL/cms76 CMS76_API_TOKEN=bench GENESIS_EXPORTS_DIR=$TMP/genesis-exports
mkdir -p "$GENESIS_EXPORTS_DIR"  # the watched folder of Genesis's exports, empty here
"$RELAIS" serve --config "$TMP/config/cms76.yaml" >"$TMP/relais.out" 2>"$TMP/relais.err" &
RELAIS_PID=$!
PIDS+=("$RELAIS_PID")
wait_for_file_line "$TMP/relais.out" 'listening on http://' "$RELAIS_PID" 60 ||
  die "relais did not start: $(cat "$TMP/relais.err")"
RELAIS_URL=http://127.0.0.1:$PORT
log "relais pid $RELAIS_PID on $PORT (synchronous $SYNC), sink $SINK_URL"

PERF_PID=
if [[ -n ${BENCH_PERF:-} ]]; then
  perf record -F 499 -g -p "$RELAIS_PID" -o "$BENCH_PERF" >"$TMP/perf.out" 2>&1 &
  PERF_PID=$!
fi

# --- backfill ----------------------------------------------------------------------------------
HZ=$(getconf CLK_TCK)
cpu_s() { echo "scale=1; $1 / $HZ" | bc; }
thread_ticks() {  # per thread of relais: "ticks name", most first
  for t in /proc/"$RELAIS_PID"/task/*; do
    echo "$(awk '{print $14 + $15}' "$t/stat") $(cat "$t/comm")"
  done | sort -rn
}
relais_cpu0=$(cpu_ticks "$RELAIS_PID")
sink_cpu0=$(cpu_ticks "$SINK_PID")
t0=$(now_ms)
/usr/bin/time -f "%U %S" -o "$TMP/backfill.time" \
  "$RELAIS" backfill --input "$INPUT" --source cms76 --server "$RELAIS_URL" --token "$TOKEN" \
  --batch "$BATCH" --parallel "$PARALLEL" >"$TMP/backfill.out" 2>"$TMP/backfill.err" ||
  die "backfill failed: $(tail -5 "$TMP/backfill.err") $(cat "$TMP/backfill.out")"
t1=$(now_ms)
rm -f "$TMP/sink.hold"  # BENCH_HOLD_DELIVERIES: the deliveries go on from here
relais_cpu1=$(cpu_ticks "$RELAIS_PID")
sink_cpu1=$(cpu_ticks "$SINK_PID")
thread_ticks >"$TMP/threads.txt"
CLIENT_CPU=$(awk '{print $1 + $2}' "$TMP/backfill.time")
if [[ -n $PERF_PID ]]; then kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; fi
cat "$TMP/backfill.out" >&2
ACCEPT_MS=$((t1 - t0))
log "accepted: $RECORDS records in $ACCEPT_MS ms ($((RECORDS * 1000 / (ACCEPT_MS > 0 ? ACCEPT_MS : 1))) records/s)"
RELAIS_CPU=$(cpu_s $((relais_cpu1 - relais_cpu0)))
log "CPU during the backfill: relais ${RELAIS_CPU} s ($(((relais_cpu1 - relais_cpu0) * 1000000 / HZ / RECORDS)) µs/record), backfill client ${CLIENT_CPU} s, bench_sink $(cpu_s $((sink_cpu1 - sink_cpu0))) s; machine load $(cut -d' ' -f1-3 /proc/loadavg)"
# Threads of a pool summed (http-0, http-1, … → http-*; dlv-genesis-0, … → dlv-genesis-*).
log "relais threads by CPU (ticks of 1/$HZ s, pools summed): $(awk '{n = $2; sub(/-[0-9]+$/, "-*", n); s[n] += $1}
  END {for (k in s) if (s[k] > 0) print s[k], k}' "$TMP/threads.txt" | sort -rn | head -10 | tr '\n' ';')"

# --- deliveries --------------------------------------------------------------------------------
deadline=$(($(now_ms) + DRAIN_TIMEOUT * 1000))
while :; do
  routed=$(metric_sum relais_routed_total)
  settled=$(($(metric_sum relais_delivered_total) + $(metric_sum relais_skipped_total) + $(metric_sum relais_dead_total)))
  ((settled >= routed && routed > 0)) && break
  (($(now_ms) > deadline)) && die "deliveries not settled after ${DRAIN_TIMEOUT}s: $settled of $routed"
  sleep 1
done
t2=$(now_ms)
DELIVER_MS=$((t2 - t0))
read -r sunk _ _ <<<"$(curl -sf "$SINK_URL/count")"
delivered=$(metric_sum relais_delivered_total)
skipped=$(metric_sum relais_skipped_total)
dead=$(metric_sum relais_dead_total)
log "deliveries: $routed routed, $delivered delivered ($sunk at the sink), $skipped skipped, $dead dead; all settled $DELIVER_MS ms after the start"

HWM_MIB=$(($(awk '/^VmHWM:/ {print $2}' "/proc/$RELAIS_PID/status") / 1024))
log "relais peak RSS ${HWM_MIB} MiB"
stop_pid "$RELAIS_PID" 120
messages=$(sqlite3 "$TMP/relais.db" 'SELECT COUNT(*) FROM messages')
[[ $messages == "$RECORDS" ]] || die "the store has $messages messages for $RECORDS records"
SUMMARY="SUMMARY records=$RECORDS accept_ms=$ACCEPT_MS accept_rate=$((RECORDS * 1000 / (ACCEPT_MS > 0 ? ACCEPT_MS : 1))) deliveries=$routed delivered=$delivered skipped=$skipped dead=$dead all_settled_ms=$DELIVER_MS relais_cpu_s=$RELAIS_CPU client_cpu_s=$CLIENT_CPU peak_rss_mib=$HWM_MIB batch=$BATCH parallel=$PARALLEL sync=$SYNC hold=${BENCH_HOLD_DELIVERIES:-0} delivery_nice=${BENCH_DELIVERY_NICE:-0}"
echo "$SUMMARY"
[[ -n ${BENCH_SUMMARY_FILE:-} ]] && echo "$(date -Is) $SUMMARY" >>"$BENCH_SUMMARY_FILE"
exit 0
