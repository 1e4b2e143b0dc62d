#!/usr/bin/env bash
# The core benchmark of relais (see docs/performance.md for figures and how to read them).
#
#   bench/run-core-bench.sh [BUILD_DIR]          (default BUILD_DIR: build-bench next to bench/)
#
# 1. builds relais and bench_sink in BUILD_DIR (Release, configured if needed);
# 2. starts bench_sink (quiet HTTP sink) and relais on an embedded store (a fresh one in a temp
#    dir, or BENCH_STORE: one already holding millions of rows, see bench/prefill-store.sh),
#    synchronous=full, or on a throwaway PostgreSQL 15 (BENCH_STORE=postgresql, durable), in
#    the shape of the shipped config/cms76.yaml (BENCH_SHAPE=production: the source's
#    idempotency key $.id, the correlation list, a route on rdv.* with the shipped
#    rdv-calendar mapping) with one http destination -> the sink;
# 3. wrk POSTs the CMS76 sample rdv.planned event (bench/wrk/post.lua) over N keep-alive
#    connections for D seconds; every response must be 202 (checked by the Lua script);
# 4. waits until the sink has received every accepted message, then reports accepted and
#    delivered msg/s, accept latency p50/p99, relais CPU seconds and peak RSS (VmHWM);
#    checks sink count == messages accepted by relais, and the store's rows;
# 5. stops relais, starts nginx (nginx-light) as a keep-alive reverse proxy in front of the same
#    sink and runs the same wrk against it: the reference for two HTTP hops on this machine;
# 6. prints a summary table with the ratio relais / nginx.
# Everything listens on 127.0.0.1; every process started here is stopped on exit.
#
# Environment (defaults in brackets):
#   BENCH_DURATION [20]       seconds of load per phase
#   BENCH_CONNECTIONS [32]    wrk connections        BENCH_THREADS [2]   wrk threads
#   BENCH_SHAPE [production]  production: idempotency + mapping as shipped (see above);
#                             bare: no idempotency, no mapping (the figures before 2026-12)
#   BENCH_STORE               postgresql: relais itself on a throwaway PostgreSQL 15 (durable:
#                             fsync and synchronous_commit on; `store: {kind: postgresql}`), the
#                             same shape and load as on SQLite; the server's CPU is reported too;
#                             postgresql-store-only: the store alone on that server, measured by
#                             bench_store (BENCH_CONNECTIONS threads accept one message at a time
#                             for BENCH_DURATION s, every outcome recorded), not through HTTP;
#                             else an existing store file to run on (kept; rows are counted as a
#                             difference); default: a fresh store in the temp dir
#   BENCH_PG_PREFILL [0]      postgresql: messages put in the database before the run
#                             (bench/prefill-store.sh postgresql:URI N: generate_series, fast)
#   BENCH_PG_WAITS            postgresql: if set, pg_stat_activity sampled every 100 ms during
#                             the load (wait events and running statements of relais's sessions),
#                             counted into this file
#   BENCH_PG_OPTIONS          postgresql: extra server options (e.g. "-c synchronous_commit=off",
#                             not durable: only to see the fsync's share)
#   BENCH_KEYS [vary]         vary: one correlation key and one event id per message;
#                             single: every message has the key rdv:91877 (FIFO worst case;
#                             with BENCH_SHAPE=bare only: with idempotency they are duplicates)
#   BENCH_CONCURRENCY [16]    relais destination concurrency (deliveries in flight)
#   BENCH_SYNC [full]         store.synchronous (full|normal)
#   BENCH_ENCRYPTION [1]      production shape: 1 = encryption at rest as shipped, 0 = without
#   BENCH_NGINX_WORKERS [2]   nginx worker_processes;  BENCH_SKIP_NGINX [0] 1 = relais only
#   BENCH_DRAIN_TIMEOUT [300] seconds to wait for the delivery queue to drain
#   BENCH_KEEP [0]            1 = keep the temp dir (configs, logs, store)
#   BENCH_NO_BUILD [0]        1 = use the binaries already in BUILD_DIR
#   BENCH_PERF                if set, `perf record` of relais during the load into this file
#                             (BENCH_PERF_ARGS [-g] are extra perf record options)
#   BENCH_SUMMARY_FILE        if set, the SUMMARY line is appended to this file
#   RELAIS_SHARED_DIR         the shared/ folder (default: the value cached by CMake)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(realpath -m "${1:-${BENCH_BUILD_DIR:-$ROOT/build-bench}}")
DURATION=${BENCH_DURATION:-20}
CONNS=${BENCH_CONNECTIONS:-32}
WRK_THREADS=${BENCH_THREADS:-2}
KEYS=${BENCH_KEYS:-vary}
CONCURRENCY=${BENCH_CONCURRENCY:-16}
SYNC=${BENCH_SYNC:-full}
NGINX_WORKERS=${BENCH_NGINX_WORKERS:-2}
SKIP_NGINX=${BENCH_SKIP_NGINX:-0}
SHAPE=${BENCH_SHAPE:-production}
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-300}
TOKEN=bench-token-0123456789abcdef
HZ=$(getconf CLK_TCK)

BENCH_NAME=bench
# shellcheck source=bench/bench-lib.sh
source "$ROOT/bench/bench-lib.sh"
[[ $SHAPE == production || $SHAPE == bare ]] || die "BENCH_SHAPE is production or bare"

# --- build -----------------------------------------------------------------------------------
if [[ ${BENCH_STORE:-} == postgresql-store-only ]]; then
  [[ -f $BUILD/CMakeCache.txt ]] ||
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRELAIS_BENCH=ON >/dev/null
  [[ ${BENCH_NO_BUILD:-0} == 1 ]] || cmake --build "$BUILD" -j2 --target bench_store \
    >"$BUILD/bench-build.log" 2>&1 || die "build failed, see $BUILD/bench-build.log"
  start_pg relais "${BENCH_PG_OPTIONS:-}"
  log "PostgreSQL on 127.0.0.1:$PG_PORT; $CONNS threads for $DURATION s"
  summary=$("$BUILD/bench/bench_store" --uri "$PG_URI" "$CONNS" "$DURATION")
  echo "SUMMARY $summary"
  [[ -n ${BENCH_SUMMARY_FILE:-} ]] && echo "SUMMARY $summary" >>"$BENCH_SUMMARY_FILE"
  exit 0
fi
bench_build
if [[ -z ${RELAIS_SHARED_DIR:-} ]]; then
  RELAIS_SHARED_DIR=$(sed -n 's/^RELAIS_SHARED_DIR:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
fi
BODY=$RELAIS_SHARED_DIR/fixtures/cms76/rdv-planned.json
[[ -f $BODY ]] || die "no sample body at $BODY (set RELAIS_SHARED_DIR)"
LUA=$ROOT/bench/wrk/post.lua

# --- processes and cleanup -------------------------------------------------------------------
sink_count() { curl -sf "http://127.0.0.1:$SINK_PORT/count"; }  # "delivered first_ms last_ms"
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }        # field NAME "k=v k=v"

run_wrk() {  # run_wrk URL EXPECT OUTFILE: wrk with the Lua script; the BENCH_RESULT line
  local url=$1 expect=$2 out=$3 rc=0
  BENCH_RUN_ID=$(date +%s%N) BENCH_BODY_FILE=$BODY BENCH_TOKEN=$TOKEN BENCH_EXPECT=$expect BENCH_KEYS=$KEYS \
    timeout $((DURATION + 60)) wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency \
    -s "$LUA" "$url" >"$out" 2>&1 || rc=$?
  grep -q '^BENCH_RESULT' "$out" || die "wrk gave no result (exit $rc): $(cat "$out")"
  [[ $rc == 0 ]] || die "wrk exit $rc: $(grep BENCH_FAIL "$out" || tail -3 "$out")"
  grep '^BENCH_RESULT' "$out"
}

# --- sink ------------------------------------------------------------------------------------
"$SINK" --port-file "$TMP/sink.port" >"$TMP/sink.out" 2>&1 &
SINK_PID=$!
PIDS+=("$SINK_PID")
wait_for_file_line "$TMP/sink.out" 'listening on' "$SINK_PID" 10 || die "bench_sink did not start"
SINK_PORT=$(cat "$TMP/sink.port")

# --- relais ----------------------------------------------------------------------------------
PG=0
[[ ${BENCH_STORE:-} == postgresql ]] && PG=1
# store_sql SQL: one value read from the store (SQLite file, or the PostgreSQL database).
store_sql() {
  if ((PG)); then
    psql_pg -d relais -c "$1"
  else
    python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$STORE" "$1"
  fi
}
if ((PG)); then
  start_pg relais "${BENCH_PG_OPTIONS:-}"
  STORE="postgresql on 127.0.0.1:$PG_PORT"
  PG_URI_NO_PW="host=127.0.0.1 port=$PG_PORT dbname=relais user=relais"
  export RELAIS_BENCH_PG_PASSWORD=$PG_PASSWORD
  mkdir -p "$TMP/state"
  STORE_SECTION="  kind: postgresql
  uri: \"$PG_URI_NO_PW\"
  password_env: RELAIS_BENCH_PG_PASSWORD
  state_dir: $TMP/state"
  if ((${BENCH_PG_PREFILL:-0} > 0)); then
    PGPASSWORD=$PG_PASSWORD "$ROOT/bench/prefill-store.sh" "postgresql:$PG_URI_NO_PW" \
      "$BENCH_PG_PREFILL" "$BUILD" || die "prefill failed"
  fi
  # The server's processes (postmaster and backends): their CPU is reported with relais's.
  PG_MASTER=$(head -1 "$TMP/pg/data/postmaster.pid")
  pg_ticks() {
    local t=$(cpu_ticks "$PG_MASTER") c
    for c in $(ps -o pid= --ppid "$PG_MASTER"); do t=$((t + $(cpu_ticks "$c" 2>/dev/null || echo 0))); done
    echo "$t"
  }
else
  STORE=${BENCH_STORE:-$TMP/relais.db}
  STORE_SECTION="  path: $STORE
  synchronous: $SYNC"
fi
seq_before=0
if ((PG)) || [[ -f $STORE ]]; then seq_before=$(store_sql "SELECT COALESCE(MAX(seq), 0) FROM messages" 2>/dev/null || echo 0); fi
# The shipped file encrypts bodies, payloads and excerpts at rest (store.encryption).
ENCRYPTION=""
if [[ $SHAPE == production && ${BENCH_ENCRYPTION:-1} == 1 ]]; then
  (umask 077 && head -c 32 /dev/urandom >"$TMP/store-1.key")
  ENCRYPTION="  encryption:
    active: store-1
    keys:
      - {id: store-1, file: $TMP/store-1.key}"
fi
cat >"$TMP/relais.yaml" <<EOF
# Generated by bench/run-core-bench.sh (shape: $SHAPE).
server:
  address: 127.0.0.1
  port: 0
  threads: 64
store:
$STORE_SECTION
$ENCRYPTION
EOF
bench_hub_sections "$SHAPE" >>"$TMP/relais.yaml"
"$RELAIS" serve --config "$TMP/relais.yaml" >"$TMP/relais.out" 2>"$TMP/relais.err" &
RELAIS_PID=$!
PIDS+=("$RELAIS_PID")
wait_for_file_line "$TMP/relais.out" 'listening on http://' "$RELAIS_PID" 30 ||
  die "relais did not start: $(cat "$TMP/relais.err")"
RELAIS_PORT=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$TMP/relais.out" | head -1)
RELAIS_URL=http://127.0.0.1:$RELAIS_PORT
log "relais pid $RELAIS_PID on $RELAIS_PORT, sink on $SINK_PORT; shape=$SHAPE, store holds $seq_before messages, keys=$KEYS, ${CONNS} connections, ${DURATION} s"

PERF_PID=
if [[ -n ${BENCH_PERF:-} ]]; then  # profile relais during the load (perf report -i FILE)
  perf record -F 499 ${BENCH_PERF_ARGS:--g} -p "$RELAIS_PID" -o "$BENCH_PERF" -- sleep "$DURATION" \
    >"$TMP/perf.out" 2>&1 &
  PERF_PID=$!
  PIDS+=("$PERF_PID")
fi
WAITS_PID=
if ((PG)) && [[ -n ${BENCH_PG_WAITS:-} ]]; then  # what relais's sessions wait on, sampled
  (
    end=$(($(now_ms) + DURATION * 1000))
    while (($(now_ms) < end)); do
      psql_pg -d postgres -F ' | ' -c "SELECT COALESCE(wait_event_type, 'CPU'), COALESCE(wait_event, '-'), state, left(regexp_replace(query, '\s+', ' ', 'g'), 60) FROM pg_stat_activity WHERE datname = 'relais' AND pid <> pg_backend_pid() AND state <> 'idle'" || true
      sleep 0.1
    done
  ) >"$TMP/pg-waits.raw" 2>/dev/null &
  WAITS_PID=$!
  PIDS+=("$WAITS_PID")
fi
cpu0=$(cpu_ticks "$RELAIS_PID")
# PostgreSQL: its transactions (the writer's groups, mostly) and WAL bytes over the load.
pg_counters() { psql_pg -d postgres -F ' ' -c "SELECT xact_commit, pg_current_wal_lsn() - '0/0'::pg_lsn FROM pg_stat_database WHERE datname = 'relais'"; }
((PG)) && pg0=$(pg_ticks) && read -r commits0 wal0 <<<"$(pg_counters)"
t0=$(now_ms)
R=$(run_wrk "$RELAIS_URL/api/v1/sources/bench/messages" 202 "$TMP/wrk-relais.out")
t1=$(now_ms)
cpu_load=$(cpu_ticks "$RELAIS_PID")
((PG)) && pg_load=$(pg_ticks) && read -r commits1 wal1 <<<"$(pg_counters)"
if [[ -n $WAITS_PID ]]; then
  wait "$WAITS_PID" 2>/dev/null || true
  { echo "# pg_stat_activity samples (every 100 ms for ${DURATION} s): count | wait type | event | state | statement"
    sort "$TMP/pg-waits.raw" | uniq -c | sort -rn; } >"$BENCH_PG_WAITS"
  log "wait events of relais's sessions: $BENCH_PG_WAITS"
fi
received_now() {
  curl -sf -H "Authorization: Bearer $TOKEN" "$RELAIS_URL/metrics" |
    awk '/^relais_received_total/ {s += $2} END {printf "%d", s}'
}
received=$(received_now)
read -r at_end _ _ <<<"$(sink_count)"
[[ -n $PERF_PID ]] && wait "$PERF_PID" 2>/dev/null
log "wrk done: $(field ok "$R") x 202 seen by wrk, $received received by relais, $at_end delivered so far"

# Drain: wait until the sink has every accepted message (bounded).
deadline=$(($(now_ms) + DRAIN_TIMEOUT * 1000))
# The requests in flight when wrk stopped are committed (and counted) a little later — on a
# busy machine after their delivery: the count is read again once the sink has caught up, until
# it no longer moves for 200 ms.
while :; do
  read -r delivered _ last_ms <<<"$(sink_count)"
  if ((delivered >= received)); then
    sleep 0.2
    again=$(received_now)
    ((again == received)) && break
    received=$again
    continue
  fi
  (($(now_ms) > deadline)) && die "queue not drained after ${DRAIN_TIMEOUT}s: $delivered/$received"
  sleep 0.1
done
cpu1=$(cpu_ticks "$RELAIS_PID")
((PG)) && pg1=$(pg_ticks)
hwm=$(hwm_kib "$RELAIS_PID")
ok=$(field ok "$R")
((delivered == received)) || die "sink has $delivered deliveries for $received accepted messages"
# Requests still in flight when wrk stops are accepted by relais but not counted by wrk.
((received >= ok && received - ok <= CONNS)) || die "relais received $received, wrk saw $ok x 202"
stop_pid "$RELAIS_PID"

# The store must hold every new message, each with one delivered delivery.
rows_messages=$(store_sql "SELECT COUNT(*) FROM messages WHERE seq > $seq_before")
rows_delivered=$(store_sql "SELECT COUNT(*) FROM deliveries WHERE state = 'delivered' AND message_seq > $seq_before")
((rows_messages == received && rows_delivered == received)) ||
  die "store has $rows_messages new messages / $rows_delivered delivered for $received accepted"

accept_rps=$(field rps "$R")
deliver_rps=$(awk -v n="$delivered" -v a="$t0" -v b="$last_ms" 'BEGIN {printf "%.1f", n / ((b - a) / 1000)}')
cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}')
cpu_load_s=$(awk -v a="$cpu0" -v b="$cpu_load" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}')
cpu_us_msg=$(awk -v c="$cpu_s" -v n="$received" 'BEGIN {printf "%.0f", c * 1e6 / n}')
pg_cpu_s=0 pg_cpu_load_s=0 pg_us_msg=0
if ((PG)); then
  pg_cpu_s=$(awk -v a="$pg0" -v b="$pg1" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}')
  pg_cpu_load_s=$(awk -v a="$pg0" -v b="$pg_load" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}')
  pg_us_msg=$(awk -v c="$pg_cpu_s" -v n="$received" 'BEGIN {printf "%.0f", c * 1e6 / n}')
  # pg_stat_database is reported with a delay of up to a second: an order of magnitude.
  pg_commits=$((commits1 - commits0))
  pg_group=$(awk -v c="$pg_commits" -v n="$received" 'BEGIN {printf "%.1f", (c > 0) ? n / c : 0}')
  pg_wal_msg=$(awk -v a="$wal0" -v b="$wal1" -v n="$received" 'BEGIN {printf "%.0f", (b - a) / n}')
fi
drain_s=$(awk -v a="$t1" -v b="$last_ms" 'BEGIN {printf "%.1f", (b - a) / 1000}')
p50=$(awk -v u="$(field p50_us "$R")" 'BEGIN {printf "%.2f", u / 1000}')
p99=$(awk -v u="$(field p99_us "$R")" 'BEGIN {printf "%.2f", u / 1000}')

# --- nginx reference -------------------------------------------------------------------------
nginx_rps=0 nginx_p50=0 nginx_p99=0 nginx_cpu_s=0 ratio=n/a
if [[ $SKIP_NGINX != 1 ]]; then
  NGINX_PORT=$(free_port)
  mkdir -p "$TMP/nginx/logs"
  cat >"$TMP/nginx/nginx.conf" <<EOF
# Generated by bench/run-core-bench.sh: a keep-alive reverse proxy in front of bench_sink.
worker_processes $NGINX_WORKERS;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $TMP/nginx/body;
  proxy_temp_path $TMP/nginx/proxy;
  fastcgi_temp_path $TMP/nginx/fastcgi;
  uwsgi_temp_path $TMP/nginx/uwsgi;
  scgi_temp_path $TMP/nginx/scgi;
  upstream sink {
    server 127.0.0.1:$SINK_PORT;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://sink;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/logs/error.log" \
    >"$TMP/nginx/stdout" 2>&1 &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
  for ((i = 0; i < 100; i++)); do
    curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break
    kill -0 "$NGINX_PID" 2>/dev/null || die "nginx did not start: $(cat "$TMP/nginx/stdout")"
    sleep 0.05
  done
  read -r before _ _ <<<"$(sink_count)"
  workers=$(ps -o pid= --ppid "$NGINX_PID" | tr -s ' \n' ' ')
  ncpu0=0
  for w in $workers; do ncpu0=$((ncpu0 + $(cpu_ticks "$w"))); done
  N=$(run_wrk "http://127.0.0.1:$NGINX_PORT/bench/rdv.planned" 200 "$TMP/wrk-nginx.out")
  ncpu1=0
  for w in $workers; do ncpu1=$((ncpu1 + $(cpu_ticks "$w"))); done
  read -r after _ _ <<<"$(sink_count)"
  n_ok=$(field ok "$N")
  # +1: the readiness probe above; in-flight requests at the end may add up to CONNS.
  ((after - before >= n_ok && after - before <= n_ok + CONNS + 1)) ||
    die "sink saw $((after - before)) requests through nginx, wrk saw $n_ok x 200"
  stop_pid "$NGINX_PID"
  nginx_rps=$(field rps "$N")
  nginx_p50=$(awk -v u="$(field p50_us "$N")" 'BEGIN {printf "%.2f", u / 1000}')
  nginx_p99=$(awk -v u="$(field p99_us "$N")" 'BEGIN {printf "%.2f", u / 1000}')
  nginx_cpu_s=$(awk -v a="$ncpu0" -v b="$ncpu1" -v hz="$HZ" 'BEGIN {printf "%.2f", (b - a) / hz}')
  ratio=$(awk -v a="$accept_rps" -v d="$deliver_rps" -v n="$nginx_rps" \
    'BEGIN {m = a < d ? a : d; printf "%.2f", m / n}')
fi

# --- report ----------------------------------------------------------------------------------
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
printf '\n%-44s %s\n' "relais core benchmark" "$(date -Iseconds)"
printf '%-44s %s\n' "load" "wrk -t$WRK_THREADS -c$CONNS -d${DURATION}s, shape=$SHAPE, keys=$KEYS, sync=$SYNC, dest concurrency $CONCURRENCY"
printf '%-44s %s\n' "store before the run" "$seq_before messages ($STORE)"
printf '%-44s %s\n' "accepted (202) msg/s" "$accept_rps"
printf '%-44s %s\n' "delivered msg/s (first accept -> last delivery)" "$deliver_rps"
printf '%-44s %s / %s\n' "accept latency p50 / p99 (ms)" "$p50" "$p99"
printf '%-44s %s (%s)\n' "messages accepted (wrk 202s)" "$received" "$ok"
printf '%-44s %s s after the load\n' "queue drained" "$drain_s"
printf '%-44s %s s under load, %s s with drain (%s us/msg)\n' "relais CPU (utime+stime)" "$cpu_load_s" "$cpu_s" "$cpu_us_msg"
if ((PG)); then
  printf '%-44s %s s under load, %s s with drain (%s us/msg)\n' "PostgreSQL server CPU (all its processes)" "$pg_cpu_load_s" "$pg_cpu_s" "$pg_us_msg"
  printf '%-44s %s commits under load (%s msg per commit), %s WAL bytes/msg\n' "PostgreSQL transactions" "$pg_commits" "$pg_group" "$pg_wal_msg"
fi
printf '%-44s %s MiB\n' "relais peak RSS (VmHWM)" "$(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}')"
if [[ $SKIP_NGINX != 1 ]]; then
  printf '%-44s %s msg/s, p50 %s ms, p99 %s ms, workers CPU %s s\n' "nginx reference ($NGINX_WORKERS workers)" "$nginx_rps" "$nginx_p50" "$nginx_p99" "$nginx_cpu_s"
  printf '%-44s %s\n' "ratio relais/nginx (min(accepted,delivered))" "$ratio"
fi
printf '%-44s %s\n' "load average at end" "$loadavg"
SUMMARY="SUMMARY store=$( ((PG)) && echo postgresql || echo sqlite) shape=$SHAPE store_rows=$seq_before keys=$KEYS sync=$SYNC conns=$CONNS duration=$DURATION accept_rps=$accept_rps deliver_rps=$deliver_rps p50_ms=$p50 p99_ms=$p99 received=$received wrk_ok=$ok drain_s=$drain_s cpu_load_s=$cpu_load_s cpu_s=$cpu_s cpu_us_msg=$cpu_us_msg pg_cpu_s=$pg_cpu_s pg_us_msg=$pg_us_msg pg_msg_per_commit=${pg_group:-0} pg_wal_msg=${pg_wal_msg:-0} hwm_kib=$hwm nginx_rps=$nginx_rps nginx_p50_ms=$nginx_p50 nginx_p99_ms=$nginx_p99 nginx_cpu_s=$nginx_cpu_s ratio=$ratio loadavg=${loadavg// /,}"
echo "$SUMMARY"
[[ -n ${BENCH_SUMMARY_FILE:-} ]] && echo "$SUMMARY" >>"$BENCH_SUMMARY_FILE"
# The floors: issue 10 (embedded store) 10,000 msg/s; issue 15 (one node on PostgreSQL) 3,000.
floor=10000
((PG)) && floor=3000
floor_ok=$(awk -v a="$accept_rps" -v d="$deliver_rps" -v f="$floor" 'BEGIN {print (a >= f && d >= f) ? "yes" : "no"}')
printf '%-44s %s\n' "floor (>= $floor msg/s accepted and delivered)" "$floor_ok"
exit 0
