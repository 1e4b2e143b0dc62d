#!/usr/bin/env bash
# Rows per second from a PostgreSQL outbox into relais's store (issue 12; figures in
# docs/performance.md, "The database source").
#
#   bench/run-db-source-bench.sh [BUILD_DIR]      (default BUILD_DIR: build-bench next to bench/)
#
# 1. builds relais and bench_sink in BUILD_DIR (as run-core-bench.sh does);
# 2. starts a throwaway PostgreSQL 15 (initdb + pg_ctl as the postgres account, a loopback port,
#    a temporary folder; fsync on, as a real CMS76 server) and fills an outbox table with
#    BENCH_ROWS demande events (about 600 bytes of JSON each, like the CMS76 samples);
# 3. for each of BENCH_RUNS runs: marks every outbox row not done, starts relais on a fresh store
#    (or, with BENCH_PREFILL, on a copy of a store that already holds that many messages, made
#    once by bench/prefill-store.sh) in the shipped shape — store.encryption on (a key made as the shipped file says), the
#    source's idempotency key $.id, the correlation list, one route to an http destination
#    (bench_sink) — with the source polling the outbox (`database` kind, mode outbox, batch
#    BENCH_BATCH, mark_done an UPDATE); waits until every row is a message (the metric
#    relais_polled_records_total) and marked done in PostgreSQL; stops relais;
# 4. rows/s = rows ÷ (last received_at − first received_at) in the store, and also ÷ the wall
#    time from relais's start; checks the store holds exactly BENCH_ROWS messages with one
#    delivery each and that no outbox row is left undone;
# 5. prints each run and the median of the runs.
# With BENCH_DELIVERY=after, the sink holds every delivery (it answers none) until the intake is
# over — the route's deliveries do not compete with the intake for the CPU —, then answers them:
# each run also reports the deliveries per second from that moment to the sink's last delivery,
# and checks that every delivery is `delivered` in the store. The default (`during`) is the
# shipped shape: the sink answers at once, deliveries run during the intake.
# Everything listens on 127.0.0.1; every process started here is stopped on exit.
#
# Environment (defaults in brackets):
#   BENCH_ROWS [200000]   outbox rows per run      BENCH_RUNS [3]     runs (median reported)
#   BENCH_BATCH [1000]    rows per poll (`batch`)  BENCH_SYNC [full]  store.synchronous
#   BENCH_TIMEOUT [300]   seconds allowed to one run
#   BENCH_KEEP [0]        1 = keep the temp dir      BENCH_NO_BUILD [0]  1 = binaries as built
#   BENCH_PERF            if set, `perf record -g` of relais during run 1 into this file
#   BENCH_PERF_DRAIN      with BENCH_DELIVERY=after: `perf record` of relais while it delivers (run 1)
#   BENCH_PERF_ARGS       perf record's options instead of `-F 499 -g` (e.g. --call-graph dwarf)
#   BENCH_THREADS_CPU [0] 1 = print the CPU time of relais's busiest threads after each run
#   BENCH_PREFILL [0]     N > 0: each run starts on a copy of a store holding N older messages
#   BENCH_PREFILL_STORE   that store's path, kept between invocations (made when missing; by
#                         default a file of the temp dir, made again each time)
#   BENCH_DELIVERY [during]  during: the sink answers at once; after: it answers once the intake
#                         is over (intake and delivery measured apart)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(realpath -m "${1:-${BENCH_BUILD_DIR:-$ROOT/build-bench}}")
ROWS=${BENCH_ROWS:-200000}
RUNS=${BENCH_RUNS:-3}
BATCH=${BENCH_BATCH:-1000}
SYNC=${BENCH_SYNC:-full}
RUN_TIMEOUT=${BENCH_TIMEOUT:-300}
DELIVERY=${BENCH_DELIVERY:-during}
[[ $DELIVERY == during || $DELIVERY == after ]] || { echo "BENCH_DELIVERY: during or after" >&2; exit 2; }
TOKEN=bench-token-0123456789abcdef

BENCH_NAME=db-source-bench
# shellcheck source=bench/bench-lib.sh
source "$ROOT/bench/bench-lib.sh"
bench_build

# --- PostgreSQL ------------------------------------------------------------------------------
start_pg cms76 "-c shared_buffers=256MB"
log "PostgreSQL on 127.0.0.1:$PG_PORT; filling the outbox with $ROWS demande events"
psql_pg -d cms76 >/dev/null <<SQL
SET ROLE relais;
CREATE TABLE relais_outbox (id bigserial PRIMARY KEY, payload text NOT NULL, traite_le timestamptz NULL);
INSERT INTO relais_outbox (payload)
SELECT json_build_object(
  'event', 'demande.created', 'id', 'evt-bench-' || g,
  'occurred_at', '2026-12-07T09:00:00+01:00',
  'demande', json_build_object(
    'numero', g, 'service', 'Demande sociale', 'etat', 'Demande', 'avancement', 0,
    'individu_id', 50000 + g % 40000,
    'contexte', json_build_object('accueillant', 'Magali LEFRANC',
      'profil', 'Secrétaire médico-social', 'mode_contact', 'Physique', 'cms_intervention', 'Barentin'),
    'instruction', json_build_object('thematique', 'Budget', 'prise_en_charge_secretariat', false,
      'transfert', 'Vers 1 travailleur médico-social', 'suite', 'Poursuivre',
      'tms', json_build_object('nom', 'Léa GOSSELIN', 'email', 'lea.gosselin@example.org'))))::text
FROM generate_series(1, $ROWS) AS g;
CREATE INDEX relais_outbox_a_traiter ON relais_outbox (id) WHERE traite_le IS NULL;
SQL
psql_pg -d cms76 -c "VACUUM ANALYZE relais_outbox" >/dev/null
payload_bytes=$(psql_pg -d cms76 -c "SELECT avg(length(payload))::int FROM relais_outbox")

# --- a store the size of production (BENCH_PREFILL) ------------------------------------------
PREFILL=${BENCH_PREFILL:-0}
TEMPLATE=
if ((PREFILL > 0)); then
  TEMPLATE=${BENCH_PREFILL_STORE:-$TMP/prefilled.db}
  [[ -f $TEMPLATE ]] || "$ROOT/bench/prefill-store.sh" "$TEMPLATE" "$PREFILL" "$BUILD"
  [[ ! -s $TEMPLATE-wal ]] || die "$TEMPLATE has a WAL: another process holds it?"
  held=$(sqlite3 "$TEMPLATE" "SELECT COUNT(*) FROM messages")
  ((held >= PREFILL)) || die "$TEMPLATE holds $held messages, fewer than $PREFILL"
  log "each run starts on a copy of $TEMPLATE ($held messages)"
fi

# --- sink ------------------------------------------------------------------------------------
HOLD=$TMP/sink.hold  # while it exists, the sink answers no delivery (BENCH_DELIVERY=after)
"$SINK" --port-file "$TMP/sink.port" --hold-file "$HOLD" >"$TMP/sink.out" 2>&1 &
SINK_PID=$!
PIDS+=("$SINK_PID")
wait_for_file_line "$TMP/sink.out" 'listening on' "$SINK_PID" 10 || die "bench_sink did not start"
SINK_PORT=$(cat "$TMP/sink.port")

(umask 077 && head -c 32 /dev/urandom >"$TMP/store-1.key")
sink_count() { curl -sf "http://127.0.0.1:$SINK_PORT/count"; }  # deliveries first_ms last_ms
# Held deliveries wait in the sink for the whole intake: relais must not time them out.
DELIVERY_TIMEOUT=10s
[[ $DELIVERY == after ]] && DELIVERY_TIMEOUT=$((RUN_TIMEOUT + 60))s
# How often the end of the intake is looked for (GET /metrics). Each scrape walks the
# dispatcher's queue under the destination's lock (Dispatcher::stats): with the deliveries held
# (200,000 queued at the end) a scrape every 50 ms took a quarter of relais's CPU during the
# intake, so BENCH_DELIVERY=after looks every 0.5 s (the rates come from the store's times).
POLL_EVERY=0.05
[[ $DELIVERY == after ]] && POLL_EVERY=0.5
polled() {  # the source's committed records, from the metrics
  curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$1/metrics" |
    awk '/^relais_polled_records_total\{source="cms76"\}/ {print $2}'
}

results=()
for ((run = 1; run <= RUNS; run++)); do
  psql_pg -d cms76 -c "UPDATE relais_outbox SET traite_le = NULL" >/dev/null
  psql_pg -d cms76 -c "VACUUM ANALYZE relais_outbox" >/dev/null
  STORE=$TMP/run-$run.db
  [[ -z $TEMPLATE ]] || cp "$TEMPLATE" "$STORE"
  cat >"$TMP/relais-$run.yaml" <<EOF
# Generated by bench/run-db-source-bench.sh (run $run).
server:
  address: 127.0.0.1
  port: 0
store:
  path: $STORE
  synchronous: $SYNC
  encryption:
    active: store-1
    keys:
      - {id: store-1, file: $TMP/store-1.key}
log:
  level: warn
auth:
  tokens:
    - name: bench
      token: $TOKEN
      role: system
sources:
  cms76:
    type: \$.event
    correlation:
      - "rdv:{\$.rdv.id}"
      - "demande:{\$.demande.numero}"
      - "individu:{\$.individu.id}"
    idempotency: \$.id
    poll:
      kind: database
      interval: 100ms
      driver: postgresql
      connection: "host=127.0.0.1 port=$PG_PORT dbname=cms76 user=relais password=\${BENCH_PG_PASSWORD}"
      mode: outbox
      query: SELECT id, payload FROM relais_outbox WHERE traite_le IS NULL AND id > :id ORDER BY id LIMIT :limit
      watermark: [id]
      start: ["0"]
      body_column: payload
      mark_done: UPDATE relais_outbox SET traite_le = now() WHERE id IN (:ids)
      batch: $BATCH
connectors:
  sink:
    connector: http
    url: http://127.0.0.1:$SINK_PORT/bench/{\$.event}
    method: POST
    concurrency: 16
    timeout: $DELIVERY_TIMEOUT
routes:
  - name: demandes-to-sink
    source: cms76
    to:
      - destination: sink
EOF
  [[ $DELIVERY == after ]] && touch "$HOLD"
  t0=$(now_ms)
  BENCH_PG_PASSWORD=$PG_PASSWORD "$RELAIS" serve --config "$TMP/relais-$run.yaml" \
    >"$TMP/relais-$run.out" 2>"$TMP/relais-$run.err" &
  RELAIS_PID=$!
  PIDS+=("$RELAIS_PID")
  wait_for_file_line "$TMP/relais-$run.out" 'listening on http://' "$RELAIS_PID" 30 ||
    die "relais did not start: $(cat "$TMP/relais-$run.err")"
  PORT=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$TMP/relais-$run.out" | head -1)
  PERF_PID=
  if [[ $run == 1 && -n ${BENCH_PERF:-} ]]; then
    # shellcheck disable=SC2086 # the options are words
    perf record ${BENCH_PERF_ARGS:--F 499 -g} -p "$RELAIS_PID" -o "$BENCH_PERF" >"$TMP/perf.out" 2>&1 &
    PERF_PID=$!
  fi
  cpu0=$(cpu_ticks "$RELAIS_PID")
  deadline=$(($(now_ms) + RUN_TIMEOUT * 1000))
  while :; do
    n=$(polled "$PORT" || echo 0)
    [[ ${n:-0} -ge $ROWS ]] && break
    (($(now_ms) > deadline)) && die "run $run: $n of $ROWS rows after ${RUN_TIMEOUT}s: $(tail -3 "$TMP/relais-$run.err")"
    sleep "$POLL_EVERY"
  done
  t1=$(now_ms)
  cpu1=$(cpu_ticks "$RELAIS_PID")
  [[ -n $PERF_PID ]] && { kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null || true; }
  # The last batch's rows are marked done just after its commit.
  for ((i = 0; i < 100; i++)); do
    left=$(psql_pg -d cms76 -c "SELECT count(*) FROM relais_outbox WHERE traite_le IS NULL")
    [[ $left == 0 ]] && break
    sleep 0.1
  done
  [[ $left == 0 ]] || die "run $run: $left outbox rows not marked done"
  delivery_note=
  if [[ $DELIVERY == after ]]; then
    # The intake is over: the sink answers the deliveries held and those queued in relais.
    read -r sent0 _ _ < <(sink_count)
    cpu2=$(cpu_ticks "$RELAIS_PID")
    t2=$(now_ms)
    DRAIN_PERF_PID=
    if [[ $run == 1 && -n ${BENCH_PERF_DRAIN:-} ]]; then
      # shellcheck disable=SC2086 # the options are words
      perf record ${BENCH_PERF_ARGS:--F 499 -g} -p "$RELAIS_PID" -o "$BENCH_PERF_DRAIN" >"$TMP/perf-drain.out" 2>&1 &
      DRAIN_PERF_PID=$!
    fi
    rm -f "$HOLD"
    while :; do
      read -r sent _ sink_last < <(sink_count)
      ((sent - sent0 >= ROWS)) && break
      (($(now_ms) > t2 + RUN_TIMEOUT * 1000)) && die "run $run: $((sent - sent0)) of $ROWS deliveries after ${RUN_TIMEOUT}s"
      sleep 0.05
    done
    cpu3=$(cpu_ticks "$RELAIS_PID")
    [[ -n $DRAIN_PERF_PID ]] && { kill -INT "$DRAIN_PERF_PID"; wait "$DRAIN_PERF_PID" 2>/dev/null || true; }
    delivery_rate=$(awk -v n="$ROWS" -v a="$t2" -v b="$sink_last" 'BEGIN {printf "%.0f", n / ((b - a) / 1000)}')
    delivery_cpu=$(awk -v a="$cpu2" -v b="$cpu3" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", (b - a) / hz}')
    delivery_note="; then $delivery_rate deliveries/s (relais CPU ${delivery_cpu} s)"
  fi
  hwm=$(hwm_kib "$RELAIS_PID")
  # CPU seconds of relais's busiest threads (BENCH_THREADS_CPU=1): where the time goes.
  if [[ ${BENCH_THREADS_CPU:-0} == 1 ]]; then
    for task in /proc/"$RELAIS_PID"/task/*; do
      echo "$(awk '{print $14 + $15}' "$task/stat") $(cat "$task/comm") ${task##*/}"
    done | sort -rn | head -8 | awk -v hz="$(getconf CLK_TCK)" '{printf "  thread %s (%s): %.2f s\n", $3, $2, $1 / hz}' >&2
  fi
  stop_pid "$RELAIS_PID" 60
  read -r messages deliveries first_ms last_ms delivered < <(python3 - "$STORE" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
m, first, last = db.execute("SELECT COUNT(*), MIN(received_at), MAX(received_at) FROM messages WHERE source = 'cms76'").fetchone()
d = db.execute("SELECT COUNT(*) FROM deliveries d JOIN messages m ON m.seq = d.message_seq "
               "WHERE m.source = 'cms76'").fetchone()[0]
delivered = db.execute("SELECT COUNT(*) FROM deliveries WHERE state = 'delivered'").fetchone()[0]
print(m, d, first, last, delivered)
PY
  )
  [[ -z $TEMPLATE ]] || rm -f "$STORE" "$STORE-wal" "$STORE-shm"  # a copy of gigabytes
  ((messages == ROWS)) || die "run $run: the store holds $messages messages for $ROWS rows"
  ((deliveries == ROWS)) || die "run $run: the store holds $deliveries deliveries for $ROWS rows"
  [[ $DELIVERY == during ]] || ((delivered == ROWS)) ||
    die "run $run: $delivered of $ROWS deliveries delivered in the store"
  rate=$(awk -v n="$ROWS" -v a="$first_ms" -v b="$last_ms" 'BEGIN {printf "%.0f", n / ((b - a) / 1000)}')
  wall_rate=$(awk -v n="$ROWS" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / ((b - a) / 1000)}')
  cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", (b - a) / hz}')
  log "run $run: $rate rows/s in the store (first → last accept), $wall_rate rows/s from relais's start; relais CPU ${cpu_s} s${delivery_note}; peak RSS $((hwm / 1024)) MiB; load $(cut -d' ' -f1-3 /proc/loadavg)"
  results+=("$rate $wall_rate")
  echo "RUN run=$run rows=$ROWS batch=$BATCH delivery=$DELIVERY${delivery_rate:+ deliveries_per_s=$delivery_rate} rows_per_s=$rate wall_rows_per_s=$wall_rate cpu_s=$cpu_s hwm_kib=$hwm loadavg=$(cut -d' ' -f1 /proc/loadavg)"
done

median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
med=$(printf '%s\n' "${results[@]}" | cut -d' ' -f1 | median)
med_wall=$(printf '%s\n' "${results[@]}" | cut -d' ' -f2 | median)
printf '\n%-44s %s\n' "relais database-source benchmark" "$(date -Iseconds)"
printf '%-44s %s\n' "outbox" "$ROWS rows of ~$payload_bytes bytes, batch $BATCH, PostgreSQL 15 on loopback"
printf '%-44s %s\n' "deliveries" "$([[ $DELIVERY == during ]] && echo "during the intake (the shipped shape)" || echo "held by the sink until the intake is over")"
printf '%-44s %s\n' "store" "encrypted (store.encryption), synchronous=$SYNC, idempotency \$.id, 1 route, ${held:-0} older messages"
printf '%-44s %s rows/s (runs: %s)\n' "median into the store (first → last accept)" "$med" "$(printf '%s ' "${results[@]%% *}")"
printf '%-44s %s rows/s\n' "median from relais's start" "$med_wall"
floor_ok=$(awk -v r="$med" 'BEGIN {print (r >= 20000) ? "yes" : "no"}')
printf '%-44s %s\n' "floor (>= 20000 rows/s)" "$floor_ok"
echo "SUMMARY rows=$ROWS batch=$BATCH delivery=$DELIVERY prefill=${held:-0} runs=$RUNS median_rows_per_s=$med median_wall_rows_per_s=$med_wall floor_ok=$floor_ok"
