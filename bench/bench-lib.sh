# Shared by the bench scripts (sourced, not run): temp dir and the processes started, stopped
# on exit; waiting for a line in a log; a free port; CPU and peak memory of a process.
# The sourcing script sets BENCH_NAME (the log prefix and the temp dir's name) first.
log() { echo "[${BENCH_NAME:-bench}] $*" >&2; }
die() {
  log "FAIL: $*"
  exit 1
}
now_ms() { date +%s%3N; }

TMP=$(mktemp -d "/tmp/relais-${BENCH_NAME:-bench}.XXXXXX")
PIDS=()
stop_pid() {  # stop_pid PID [SECONDS]: TERM, wait up to SECONDS (10), then KILL
  local pid=$1 secs=${2:-10} i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for_file_line() {  # wait_for_file_line FILE REGEX PID SECONDS
  local file=$1 re=$2 pid=$3 secs=$4 i
  for ((i = 0; i < secs * 20; i++)); do
    grep -qE "$re" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime of one process
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_pg DB [POSTGRES_OPTIONS]: a throwaway PostgreSQL 15 in $TMP/pg (initdb + pg_ctl, as the
# postgres account when root: root cannot run postgres), on a free loopback port, durable as
# installed (fsync, synchronous_commit on) unless POSTGRES_OPTIONS say otherwise; a role relais
# (password PG_PASSWORD) owning the database DB. Sets PG_PORT and PG_URI; stopped on exit.
# as_pg CMD… runs a command as that account, psql_pg ARGS… psql as the superuser.
PG_BIN=/usr/lib/postgresql/15/bin
PG_PASSWORD=bench-pg-password-0123456789
as_pg() {
  if [[ $(id -u) == 0 ]]; then runuser -u postgres -- env -C "$TMP/pg" "$@"; else env -C "$TMP/pg" "$@"; fi
}
psql_pg() { as_pg "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$TMP/pg" -p "$PG_PORT" -U postgres "$@"; }
STOP_PG() { [[ -d $TMP/pg/data ]] && as_pg "$PG_BIN/pg_ctl" stop -D "$TMP/pg/data" -m fast -w >/dev/null 2>&1 || true; }
start_pg() {
  local db=$1 options=${2:-}
  [[ -x $PG_BIN/pg_ctl ]] || die "PostgreSQL 15 is missing (scripts/install-deps.sh)"
  mkdir -p "$TMP/pg"
  printf '%s\n' "$PG_PASSWORD" >"$TMP/pg/pw"
  [[ $(id -u) == 0 ]] && chown -R postgres: "$TMP/pg"
  chmod 755 "$TMP"
  as_pg "$PG_BIN/initdb" -D "$TMP/pg/data" -U postgres --auth-local=trust \
    --auth-host=scram-sha-256 --pwfile="$TMP/pg/pw" --encoding=UTF8 --no-locale >"$TMP/pg/initdb.log"
  PG_PORT=$(free_port)
  trap 'STOP_PG; cleanup' EXIT
  as_pg "$PG_BIN/pg_ctl" start -D "$TMP/pg/data" -l "$TMP/pg/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $TMP/pg $options" >/dev/null
  psql_pg -d postgres -c "CREATE ROLE relais LOGIN PASSWORD '$PG_PASSWORD'" >/dev/null
  psql_pg -d postgres -c "CREATE DATABASE $db OWNER relais" >/dev/null
  PG_URI="host=127.0.0.1 port=$PG_PORT dbname=$db user=relais password=$PG_PASSWORD"
}

# bench_build: configures BUILD (Release) if needed and builds relais and bench_sink there
# (unless BENCH_NO_BUILD=1); sets RELAIS and SINK. Needs ROOT and BUILD.
bench_build() {
  if [[ ! -f $BUILD/CMakeCache.txt ]]; then
    log "configuring $BUILD (Release)"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRELAIS_BENCH=ON >/dev/null
  fi
  if [[ ${BENCH_NO_BUILD:-0} != 1 ]]; then
    log "building relais and bench_sink in $BUILD"
    if ! cmake --build "$BUILD" -j2 --target relais bench_sink >"$BUILD/bench-build.log" 2>&1; then
      # A shared tree may fail to configure for unrelated reasons (another folder mid-edit):
      # go on with the binaries already built, loudly.
      [[ -x $BUILD/apps/relais && -x $BUILD/bench/bench_sink ]] ||
        die "build failed, see $BUILD/bench-build.log"
      log "WARNING: build failed (see $BUILD/bench-build.log); using the existing binaries"
    fi
  fi
  RELAIS=$BUILD/apps/relais
  SINK=$BUILD/bench/bench_sink
  [[ -x $RELAIS && -x $SINK ]] || die "relais or bench_sink missing in $BUILD"
}

# bench_hub_sections SHAPE: the log, auth, sources, mappings, connectors and routes sections of
# the core benchmark's relais (production: the shipped config/cms76.yaml's shape — the source's
# idempotency key $.id, the correlation list, a route on rdv.* with the shipped rdv-calendar
# mapping; bare: none of them), one http destination -> the sink. Needs ROOT, TOKEN, SINK_PORT,
# CONCURRENCY.
bench_hub_sections() {
  local source_extra="" mappings="" route_extra="" to_mapping=""
  if [[ $1 == production ]]; then
    source_extra="      - \"demande:{\$.demande.numero}\"
      - \"individu:{\$.individu.id}\"
    idempotency: \$.id"
    mappings="mappings:
  directory: $ROOT/config/mappings
  tables: $ROOT/config/tables"
    route_extra="    type: rdv.*"
    to_mapping="        mapping: rdv-calendar"
  fi
  cat <<EOF
log:
  level: warn
auth:
  tokens:
    - name: bench
      token: $TOKEN
      role: system
sources:
  bench:
    type: \$.event
    correlation:
      - "rdv:{\$.rdv.id}"
$source_extra
$mappings
connectors:
  sink:
    connector: http
    url: http://127.0.0.1:$SINK_PORT/bench/{\$.event}
    method: POST
    concurrency: $CONCURRENCY
    timeout: 10s
routes:
  - name: bench-to-sink
    source: bench
$route_extra
    to:
      - destination: sink
$to_mapping
EOF
}
