// Fuzz target: what the BAN enricher reads — the service's GeoJSON answers (/search, /reverse),
// its CSV answers (/search/csv), and an address as CMS76 sends it (query building, the
// normalisation behind the cache key). None may crash, throw or trip a sanitizer.

#include "connectors/ban/ban.h"
#include "tests/fuzz/fuzz_targets.h"

namespace ban = relais::ban;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);

  ban::Match m;
  std::string error;
  if (ban::parse_response(text, m, error)) {
    if (m.found && !m.data.is_object()) __builtin_trap();
  } else if (error.empty()) {
    __builtin_trap();
  }
  (void)ban::csv_parse(text);

  // The same bytes as an address's parts.
  size_t q = text.size() / 4;
  ban::Address address{text.substr(0, q), text.substr(q, q), text.substr(2 * q, 5),
                       text.substr(2 * q, q), text.substr(3 * q)};
  for (bool filter : {false, true}) {
    ban::Query query = ban::build_query(address, "housenumber", filter);
    (void)ban::search_url("https://api-adresse.data.gouv.fr/search/", query);
    (void)ban::cache_key(query);
  }
  std::string n = ban::normalise(text);
  if (ban::normalise(n) != n) __builtin_trap();  // normalising is idempotent
  return 0;
}
