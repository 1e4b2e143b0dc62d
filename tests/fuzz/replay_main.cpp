// Replays a fuzz target's seed corpus, then deterministic mutations of each seed (bit flips,
// truncations, duplications, splices of interesting tokens), so that the targets run in every
// ctest run without a fuzzing engine. Usage: TARGET CORPUS_DIR [MUTATIONS_PER_SEED]

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_targets.h"

namespace {

void run(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

const char* kTokens[] = {"{",  "}",    "[",    "]",   "\"", ":",  ",",   "\\u0000", "\n",
                         "$.", "{$.",  "}}",   "- ",  "&a", "*a", "!!",  "null",    "1e999",
                         "é",  "\xff", "\xc3", "[*]", "'",  "()", "if(", "\t",      "#"};

std::string mutate(const std::string& seed, std::mt19937& rng) {
  std::string s = seed;
  int steps = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < steps; ++i) {
    size_t pos = s.empty() ? 0 : rng() % (s.size() + 1);
    switch (rng() % 5) {
      case 0:  // flip a bit
        if (!s.empty()) s[pos % s.size()] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1:  // truncate
        s.resize(pos);
        break;
      case 2:  // insert a token
        s.insert(pos, kTokens[rng() % (sizeof kTokens / sizeof *kTokens)]);
        break;
      case 3: {  // duplicate a slice
        size_t len = s.empty() ? 0 : rng() % std::min<size_t>(s.size(), 64);
        size_t from = s.empty() ? 0 : rng() % (s.size() - len + 1);
        s.insert(pos, s.substr(from, len));
        break;
      }
      default:  // erase a slice
        if (!s.empty()) s.erase(pos % s.size(), rng() % 16);
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s NAME CORPUS_DIR... (RELAIS_FUZZ_MUTATIONS per seed)\n",
                 argv[0]);
    return 64;
  }
  const char* env = std::getenv("RELAIS_FUZZ_MUTATIONS");
  int per_seed = env ? std::atoi(env) : 2000;
  std::vector<std::string> seeds;
  for (int a = 2; a < argc; ++a) {
    for (const auto& e : std::filesystem::directory_iterator(argv[a])) {
      if (!e.is_regular_file()) continue;
      std::ifstream in(e.path(), std::ios::binary);
      std::stringstream b;
      b << in.rdbuf();
      seeds.push_back(b.str());
    }
  }
  std::sort(seeds.begin(), seeds.end());
  if (seeds.empty()) {
    std::fprintf(stderr, "no seeds for %s\n", argv[1]);
    return 1;
  }
  std::mt19937 rng(20261123);
  size_t n = 0;
  for (const auto& s : seeds) {
    run(s);
    ++n;
    for (int i = 0; i < per_seed; ++i) {
      run(mutate(s, rng));
      ++n;
    }
  }
  run("");
  std::printf("fuzz replay %s: %zu inputs, no crash\n", argv[1], n + 1);
  return 0;
}
