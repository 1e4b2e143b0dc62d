#!/usr/bin/env bash
# Fills a relais store with N historical messages, so that benchmarks run on a store the size of
# production (the go-live takes over 1.16 M CMS76 records; a few years of RDV and demandes make
# millions more), not on an empty one.
#
#   bench/prefill-store.sh STORE N [BUILD_DIR]
#
# STORE is created and migrated by `relais serve` (from BUILD_DIR, default build-bench) when it
# does not exist yet. Each added message is the CMS76 sample rdv.planned event with its own event
# id and RDV id (../shared/fixtures/cms76/rdv-planned.json), from source `bench`, with what a
# delivered message leaves in the store: one delivery (delivered, with a mapped payload), one
# attempt, and a live idempotency key (the worst case for the key lookup: none has expired).
# Runs of this script add up: it appends after the highest seq and delivery id.
# Needs the sqlite3 command-line tool (scripts/install-deps.sh installs it). Nothing else may
# hold the store while it runs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STORE=${1:?usage: prefill-store.sh STORE N [BUILD_DIR]}
N=${2:?usage: prefill-store.sh STORE N [BUILD_DIR]}
BUILD=$(realpath -m "${3:-$ROOT/build-bench}")
SHARED=${RELAIS_SHARED_DIR:-$ROOT/../shared}
BODY_FILE=$SHARED/fixtures/cms76/rdv-planned.json
[[ -f $BODY_FILE ]] || { echo "prefill: no sample body at $BODY_FILE" >&2; exit 1; }
[[ $N =~ ^[0-9]+$ ]] || { echo "prefill: N must be a number" >&2; exit 1; }

mkdir -p "$(dirname "$STORE")"
if [[ ! -f $STORE ]]; then
  RELAIS=$BUILD/apps/relais
  [[ -x $RELAIS ]] || { echo "prefill: no relais binary at $RELAIS" >&2; exit 1; }
  tmp=$(mktemp -d)
  cat >"$tmp/relais.yaml" <<EOF
server: {address: 127.0.0.1, port: 0}
store: {path: $(realpath -m "$STORE")}
log: {level: warn}
sources: {bench: {type: \$.event}}
connectors: {}
routes: []
EOF
  "$RELAIS" serve --config "$tmp/relais.yaml" >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  for ((i = 0; i < 200; i++)); do
    grep -q 'listening on' "$tmp/out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$tmp/err" >&2; exit 1; }
    sleep 0.05
  done
  kill -TERM "$pid"
  wait "$pid" || true
  rm -rf "$tmp"
fi

body=$(tr -d '\n' <"$BODY_FILE" | sed "s/'/''/g")
now_ms=$(date +%s%3N)
start=$(date +%s)
echo "prefill: adding $N messages to $STORE" >&2
sqlite3 "$STORE" <<SQL
PRAGMA synchronous = OFF;
PRAGMA cache_size = -1000000;
BEGIN;
CREATE TEMP TABLE base AS SELECT COALESCE(MAX(seq), 0) AS s FROM messages;
CREATE TEMP TABLE dbase AS SELECT COALESCE(MAX(id), 0) AS d FROM deliveries;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N)
INSERT INTO messages(seq, id, source, type, correlation, idempotency, headers, body, received_at,
                     routed)
SELECT (SELECT s FROM base) + i,
       printf('00HIST%020d', (SELECT s FROM base) + i),
       'bench', 'rdv.planned',
       'rdv:h' || ((SELECT s FROM base) + i),
       'hist-' || ((SELECT s FROM base) + i),
       '{}',
       replace(replace('$body', '91877', 'h' || ((SELECT s FROM base) + i)),
               'evt-2019-05-15-0003', 'hist-' || ((SELECT s FROM base) + i)),
       $now_ms - ($N - i) * 100, 1
FROM n;
INSERT INTO deliveries(id, message_seq, destination, route, mapping, mapping_version, state,
                       attempts, next_attempt_at, not_before, updated_at, last_outcome,
                       last_class, last_code, last_text, external_ref, payload, flags)
SELECT (SELECT d FROM dbase) + (seq - (SELECT s FROM base)), seq, 'sink', 'bench-to-sink',
       'rdv-calendar', 1, 'delivered', 1, 0, 0, received_at + 40, 'delivered', '', 200,
       'HTTP 200', '',
       '{"action":"create","mailbox":"lea.gosselin@example.org","event_key":"' || id ||
       '","event":{"subject":"RDV CMS76","start":"2019-05-17T08:00:00Z","end":"2019-05-17T08:30:00Z","location":"CMS Barentin, Place de la Libération, 76360 Barentin"}}',
       ''
FROM messages WHERE seq > (SELECT s FROM base);
INSERT INTO attempts(delivery_id, at, duration_ms, outcome, class, code, text, excerpt)
SELECT id, updated_at - 12, 12, 'delivered', '', 200, 'HTTP 200', ''
FROM deliveries WHERE id > (SELECT d FROM dbase);
INSERT INTO idempotency_keys(source, key, message_id, digest, expires_at)
SELECT source, idempotency, id, printf('%064d', seq), $now_ms + 30 * 86400000
FROM messages WHERE seq > (SELECT s FROM base);
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SELECT 'prefill: the store now holds ' || COUNT(*) || ' messages' FROM messages;
SQL
echo "prefill: $(( $(date +%s) - start )) s, $(du -h "$STORE" | cut -f1) on disk" >&2
