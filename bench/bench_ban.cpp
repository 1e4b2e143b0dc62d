// BAN enrichment with a warm in-memory cache (issue 6: ≥ 100,000 lookups per second).
// The cache is primed directly (no network): each iteration reads the address from a CMS76
// body, builds and normalises the query, hits the LRU and applies the quality rules, i.e. the
// whole enrich() path a route runs for an address already seen.
//
//   bench_ban --benchmark_repetitions=3 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>

#include "connectors/ban/ban.h"

namespace {

using nlohmann::json;
using namespace relais;

json load_individu() {
  std::ifstream in(std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/individu-created.json");
  std::ostringstream s;
  s << in.rdbuf();
  return json::parse(s.str());
}

std::string load_answer() {
  std::ifstream in(std::string(RELAIS_SHARED_DIR) +
                   "/fixtures/ban/search-housenumber-20-avenue-kleber-paris.json");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ban::Fields cms76_fields() {
  ban::Fields f;
  JsonPath p;
  std::string err;
  JsonPath::parse("$.individu.adresse.numero", p, err);
  f.number = p;
  JsonPath::parse("$.individu.adresse.voie", p, err);
  f.street = p;
  JsonPath::parse("$.individu.adresse.code_postal", p, err);
  f.postcode = p;
  JsonPath::parse("$.individu.adresse.localite", p, err);
  f.city = p;
  return f;
}

void BM_BanEnrichWarmCache(benchmark::State& state) {
  const size_t distinct = static_cast<size_t>(state.range(0));
  ban::Options o;
  o.base_url = "http://127.0.0.1:1/unused";  // never called: every lookup is a cache hit
  o.cache_size = distinct;
  SystemClock& clock = SystemClock::instance();
  ban::BanEnricher enricher(o, cms76_fields(), &clock, nullptr, "ban");

  ban::Match m;
  std::string err;
  if (!ban::parse_response(load_answer(), m, err)) {
    state.SkipWithError("fixture unreadable");
    return;
  }
  auto match = std::make_shared<const ban::Match>(m);
  json base = load_individu();
  std::vector<json> bodies;
  for (size_t i = 0; i < distinct; ++i) {
    json b = base;
    b["individu"]["adresse"]["numero"] = std::to_string(i + 1);
    ban::Address a = enricher.fields().read(b);
    ban::Query q = ban::build_query(a, o.type, o.filter_postcode);
    enricher.geocoder().cache()->put(ban::cache_key(q), match, clock.now_ms());
    bodies.push_back(std::move(b));
  }
  Message msg;
  size_t i = 0, ok = 0;
  for (auto _ : state) {
    Enrichment e = enricher.enrich(msg, bodies[i]);
    ok += e.kind == Enrichment::Kind::Ok;
    benchmark::DoNotOptimize(e);
    if (++i == bodies.size()) i = 0;
  }
  if (enricher.geocoder().http_requests() != 0 || ok != static_cast<size_t>(state.iterations())) {
    state.SkipWithError("a lookup missed the cache");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BanEnrichWarmCache)->Arg(1000)->Arg(100000)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
