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
