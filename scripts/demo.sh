#!/usr/bin/env bash
# The Relais demo: installs, builds, starts a local sandbox destination and the hub on the
# embedded store with config/demo.yaml, posts the CMS76 sample events, and keeps running until
# Ctrl-C. Port and token: RELAIS_PORT (default 8080), RELAIS_TOKEN (default demo-token-change-me);
# the console at /console/ with the user demo (password RELAIS_CONSOLE_PASSWORD).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

bash scripts/install-deps.sh
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$ROOT/build" -j"$(nproc)" --target relais relais-sandbox

export RELAIS_PORT=${RELAIS_PORT:-8080}
export RELAIS_TOKEN=${RELAIS_TOKEN:-demo-token-change-me}
export RELAIS_SANDBOX_PORT=${RELAIS_SANDBOX_PORT:-8089}
export RELAIS_STORE=${RELAIS_STORE:-$ROOT/build/demo/relais-demo.db}
mkdir -p "$(dirname "$RELAIS_STORE")"
echo "demo: port $RELAIS_PORT, token $RELAIS_TOKEN, sandbox port $RELAIS_SANDBOX_PORT, store $RELAIS_STORE"

# A console administrator for the demo (kept if it exists already).
export RELAIS_CONSOLE_PASSWORD=${RELAIS_CONSOLE_PASSWORD:-demo-console-change-me}
RELAIS_PASSWORD="$RELAIS_CONSOLE_PASSWORD" "$ROOT/build/apps/relais" users add demo --role admin \
  --config "$ROOT/config/demo.yaml" 2>/dev/null || true

"$ROOT/build/tools/sandbox/relais-sandbox" "$RELAIS_SANDBOX_PORT" &
SANDBOX=$!
trap 'kill $SANDBOX 2>/dev/null || true' EXIT

FIXTURES="$ROOT/../shared/fixtures/cms76"
(
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$RELAIS_PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  if [ -d "$FIXTURES" ]; then
    for f in individu-created demande-created rdv-planned rdv-moved rdv-cancelled demande-closed; do
      printf 'demo: POST %s.json -> ' "$f"
      curl -s -X POST -H "Authorization: Bearer $RELAIS_TOKEN" -H 'Content-Type: application/json' \
        --data-binary "@$FIXTURES/$f.json" \
        "http://127.0.0.1:$RELAIS_PORT/api/v1/sources/cms76/messages"
      echo
    done
  fi
  cat <<MSG

demo: look at what happened:
  curl -s -H 'Authorization: Bearer $RELAIS_TOKEN' 'http://127.0.0.1:$RELAIS_PORT/api/v1/messages?limit=10'
  curl -s -H 'Authorization: Bearer $RELAIS_TOKEN' http://127.0.0.1:$RELAIS_PORT/api/v1/messages/<id>
  curl -s -H 'Authorization: Bearer $RELAIS_TOKEN' http://127.0.0.1:$RELAIS_PORT/metrics
demo: the console: http://127.0.0.1:$RELAIS_PORT/console/ (user demo, password $RELAIS_CONSOLE_PASSWORD)
demo: press Ctrl-C to stop.
MSG
) &

"$ROOT/build/apps/relais" serve --config "$ROOT/config/demo.yaml"
