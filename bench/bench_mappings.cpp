// Benchmarks of the mapping language on the CMS76 sample event (items/s = mappings/s).
//   bench_mappings --benchmark_repetitions=3
// Reads config/mappings, config/tables and ../shared/fixtures/cms76 (RELAIS_SOURCE_DIR and
// RELAIS_SHARED_DIR compile definitions, or the environment variables of the same names).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "mappings/mapping.h"

#ifndef RELAIS_SOURCE_DIR
#define RELAIS_SOURCE_DIR "."
#endif
#ifndef RELAIS_SHARED_DIR
#define RELAIS_SHARED_DIR "../shared"
#endif

namespace {

using relais::mappings::CompiledMapping;
using relais::mappings::Diagnostic;

std::string dir(const char* env, const char* fallback) {
  const char* v = std::getenv(env);
  return v && *v ? v : fallback;
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::shared_ptr<const CompiledMapping> load(const std::string& name) {
  const std::string src = dir("RELAIS_SOURCE_DIR", RELAIS_SOURCE_DIR);
  std::vector<Diagnostic> diags;
  auto tables = relais::mappings::TableSet::load_dir(src + "/config/tables", diags);
  const std::string file = src + "/config/mappings/" + name + ".yaml";
  auto m = relais::mappings::compile(read(file), file, tables, diags);
  if (!m || !diags.empty()) throw std::runtime_error("cannot compile " + file);
  return m;
}

nlohmann::json event(const std::string& name) {
  return nlohmann::json::parse(
      read(dir("RELAIS_SHARED_DIR", RELAIS_SHARED_DIR) + "/fixtures/cms76/" + name));
}

void run(benchmark::State& state, const char* mapping, const char* fixture) {
  auto m = load(mapping);
  const nlohmann::json body = event(fixture);
  const nlohmann::json meta = {{"id", body["id"]},
                               {"source", "cms76"},
                               {"type", body["event"]},
                               {"correlation_key", "rdv:91877"},
                               {"received_at", body["occurred_at"]}};
  if (m->apply(body, meta).kind != relais::mappings::MapResult::Kind::Ok) {
    state.SkipWithError("mapping did not produce an output");
    return;
  }
  size_t bytes = 0;
  for (auto _ : state) {
    auto r = m->apply(body, meta);
    bytes += r.text.size();
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}

void BM_RdvCalendar(benchmark::State& s) {
  run(s, "rdv-calendar", "rdv-planned.json");
}
void BM_RdvSmsConfirmation(benchmark::State& s) {
  run(s, "rdv-sms-confirmation", "rdv-planned.json");
}
void BM_RdvSmsReminder(benchmark::State& s) {
  run(s, "rdv-sms-reminder", "rdv-planned.json");
}
void BM_IndividuGenesis(benchmark::State& s) {
  run(s, "individu-genesis", "individu-created.json");
}

}  // namespace

BENCHMARK(BM_RdvCalendar);
BENCHMARK(BM_RdvSmsConfirmation);
BENCHMARK(BM_RdvSmsReminder);
BENCHMARK(BM_IndividuGenesis);
BENCHMARK_MAIN();
