#!/usr/bin/env bash
# Installs every Debian package Relais needs to build, test and benchmark.
# Idempotent: packages already present are left alone. Run as root on Debian 12.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates curl ccache
  libpoco-dev libpq-dev libsqlite3-dev sqlite3
  libcurl4-openssl-dev libssl-dev libpugixml-dev libxml2-dev libhiredis-dev
  libphonenumber-dev libprotobuf-dev libicu-dev libboost-dev
  nlohmann-json3-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  tzdata clang-format libxml2-utils
  clang libclang-rt-14-dev
  nginx-light wrk redis-server
  kannel kannel-extras
  openssh-server openssh-client
  chromium nodejs
  libmariadb-dev libjemalloc-dev
  postgresql-15 postgresql-client-15 mariadb-server mariadb-client
  systemd
)
# systemd: `systemd-analyze verify` checks the shipped units (deploy/systemd/); nothing runs
# under it in the tests.
# libmariadb-dev: MariaDB Connector/C, the `database` polling source's MySQL/MariaDB driver.
# libjemalloc-dev: the relais binary's allocator (CMake option RELAIS_JEMALLOC, on by default;
# the runtime package libjemalloc2 is what a server installing the binary needs).
# postgresql-15, mariadb-server (+ clients): the throwaway servers the database tests start
# (tests/support/pg_server.h, mariadb_server.h); they create the postgres and mysql accounts
# the servers run as. The packaged services are never started (the tests start their own).
# nodejs: the installed one (with npm) is kept; never `apt-get install npm` (it conflicts).
# chromium + playwright-core (npm, below) run the console's browser tests.
# nginx-light: the benchmark's reference relay, and the one address in front of two nodes in the
# console's browser test on a cluster (tests/support/nginx_proxy.h; run as the test's user).
# openssh-server (+ ssh-keygen): the real SFTP server of the file connector's tests (tests/support/sshd_server.h).

# The browser tests' npm packages (playwright-core only), pinned by tests/browser/package-lock.json.
install_browser_test_packages() {
  local dir want
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/browser"
  want="$(sed -n 's/.*"playwright-core": "\(.*\)".*/\1/p' "$dir/package.json")"
  if grep -qs "\"version\": \"$want\"" "$dir/node_modules/playwright-core/package.json"; then
    echo "install-deps: playwright-core $want present in tests/browser"
  else
    echo "install-deps: npm ci in tests/browser (playwright-core $want)"
    (cd "$dir" && npm ci --no-audit --no-fund)
  fi
}

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  install_browser_test_packages
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends --no-upgrade "${missing[@]}"
install_browser_test_packages
