#!/usr/bin/env bash
# Installs what Relais needs, builds it four times (sanitizers, the fuzz targets under libFuzzer,
# a compile-only Release build as a packager makes it, then RelWithDebInfo) and runs every test
# of the first and the last, and a bounded libFuzzer run of each fuzz target.
# The output ends with the ctest summary of the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${RELAIS_JOBS:-$(nproc)}

bash scripts/install-deps.sh

if [ ! -d ../shared/fixtures ]; then
  echo "test.sh: ../shared/fixtures is missing: the tests read the protocol samples from there" >&2
  exit 2
fi

if [ "${RELAIS_SKIP_SANITIZE:-0}" != "1" ]; then
  echo "== sanitizer build (ASan + UBSan) =="
  cmake -S "$ROOT" -B "$ROOT/build-asan" -DCMAKE_BUILD_TYPE=Debug -DRELAIS_SANITIZE=ON \
    -DRELAIS_BENCH=OFF >/dev/null
  cmake --build "$ROOT/build-asan" -j"$JOBS"
  (cd "$ROOT/build-asan" &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
    LSAN_OPTIONS=suppressions=$ROOT/scripts/lsan.supp:print_suppressions=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure --timeout 900 -j2 -LE long)
fi

# Fuzzing: every fuzz target under libFuzzer for a bounded time (clang, every library
# instrumented for coverage with ASan+UBSan; see docs/security.md "Fuzzing"). The replays of the
# seed corpora already ran in the sanitizer build's ctest (label fuzz).
if [ "${RELAIS_SKIP_FUZZ:-0}" != "1" ]; then
  echo "== fuzzing (libFuzzer, ${RELAIS_FUZZ_SECONDS:-20} s per target) =="
  FUZZ_LAUNCHER=()
  if command -v ccache >/dev/null; then FUZZ_LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$ROOT/build-fuzz" -DRELAIS_FUZZ=ON -DRELAIS_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELAIS_FUZZ_SECONDS="${RELAIS_FUZZ_SECONDS:-20}" \
    "${FUZZ_LAUNCHER[@]}" >/dev/null
  FUZZ_TARGETS=$(sed -n 's/^relais_fuzz_target(\([a-z_]*\) .*/fuzz_\1/p' "$ROOT/tests/fuzz/CMakeLists.txt")
  # shellcheck disable=SC2086
  cmake --build "$ROOT/build-fuzz" -j"$JOBS" --target $FUZZ_TARGETS
  (cd "$ROOT/build-fuzz" && ctest --output-on-failure -L libfuzzer)
fi

# A packager's build: CMAKE_BUILD_TYPE=Release (-O3) warns where -O2 does not (GCC 12's false
# -Wrestrict on inlined std::string code); warnings stay errors. Compile only, through ccache.
echo "== packager's Release build (compile only) =="
LAUNCHER=()
if command -v ccache >/dev/null; then LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S "$ROOT" -B "$ROOT/build-release-check" -DCMAKE_BUILD_TYPE=Release -DRELAIS_TESTS=OFF \
  -DRELAIS_BENCH=OFF "${LAUNCHER[@]}" >/dev/null
cmake --build "$ROOT/build-release-check" -j"$JOBS" --target relais

echo "== release build =="
cmake -S "$ROOT" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$ROOT/build" -j"$JOBS"
cd "$ROOT/build"
# The long scenarios (label "long": the 20,000-message crash test) run here only.
set +e
ctest --output-on-failure --timeout 900 -j2 2>&1 | tee "$ROOT/build/ctest-output.log"
status=${PIPESTATUS[0]}
set -e
# The crash test's figures (ctest keeps the output of passing tests in its log only), then the
# ctest summary again so that the output still ends with it.
grep -hE "^(crash test|cluster):" "$ROOT/build/Testing/Temporary/LastTest.log" || true
grep -E "tests passed|tests failed|^Total Test time" "$ROOT/build/ctest-output.log" | tail -n 2
exit "$status"
