#!/usr/bin/env bash
# Fails when a shipped systemd unit (deploy/systemd/) does not pass `systemd-analyze verify`:
# unknown keys, bad values, a command that is not there. The units name /usr/bin/relais; the
# check puts this build's binary there in a copy of each unit.
set -euo pipefail
relais=$1
units=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for unit in "$units"/*.service; do
  name=$(basename "$unit")
  # A template is verified as one instance of it.
  [[ $name == *@.service ]] && name=${name/@/@node-a}
  sed "s#/usr/bin/relais#$relais#g" "$unit" >"$work/$name"
  out=$(systemd-analyze verify --man=no "$work/$name" 2>&1 || true)
  # Only what is about the unit itself (not the host's other units).
  mine=$(printf '%s\n' "$out" | grep -F "$name" || true)
  if [ -n "$mine" ]; then
    echo "$name:"
    printf '%s\n' "$mine"
    status=1
  else
    echo "$name: valid"
  fi
done
exit $status
