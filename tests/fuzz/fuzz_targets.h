#pragma once
// Fuzz targets for every parser of outside input. Each target takes arbitrary bytes and must
// neither crash, nor throw, nor trip a sanitizer. Built two ways:
//   - always: linked with replay_main.cpp, which runs the seed corpus plus deterministic
//     mutations of it (ctest, under ASan+UBSan in CI);
//   - with clang and -DRELAIS_FUZZ=ON: as libFuzzer binaries for open-ended fuzzing.
// Ownership: stateless entry points; thread-compatible (one input at a time).

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
