#!/usr/bin/env bash
# Installs every Debian package Relais needs to build, test and benchmark.
# Idempotent: packages already present are left alone. Run as root on Debian 12.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates curl
  libpoco-dev libpq-dev libsqlite3-dev sqlite3
  libcurl4-openssl-dev libssl-dev libpugixml-dev libhiredis-dev
  libphonenumber-dev libprotobuf-dev libicu-dev libboost-dev
  nlohmann-json3-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  tzdata clang-format libxml2-utils
  nginx-light wrk redis-server
  kannel kannel-extras
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}"
