#pragma once
// BAN (Base Adresse Nationale) geocoding, served by the IGN Géoplateforme
// (https://data.geopf.fr/geocodage): the `ban` enricher kind, its cache (in-memory LRU with TTL,
// optionally Redis shared by nodes), its rate limiter (local, optionally shared through Redis),
// bulk geocoding through /search/csv, and reverse geocoding. See docs/connectors/ban.md.
//
// Personal data: addresses are personal data. Nothing here logs an address, a query or a
// response; Redis keys are SHA-256 digests of the normalised query.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/enricher.h"
#include "core/json_template.h"
#include "core/metrics.h"
#include "core/rate_bucket.h"
#include "core/tls_client.h"

namespace relais {

// Registers the "ban" enricher kind.
void register_ban_enricher(EnricherRegistry& registry);

namespace ban {

// An address as read from a message. Plain value.
struct Address {
  std::string number;
  std::string street;
  std::string postcode;
  std::string city;
  std::string citycode;  // INSEE code, used as a filter only
  bool empty() const {
    return number.empty() && street.empty() && postcode.empty() && city.empty();
  }
};

// One /search request. Plain value.
struct Query {
  std::string q;         // free text: number street postcode city
  std::string postcode;  // filter ("" = none)
  std::string citycode;  // filter ("" = none)
  std::string type;      // housenumber | street | locality | municipality ("" = any)
  bool autocomplete = false;
  int limit = 1;
};

// Builds the query of an address: q from the non-empty parts (spaces collapsed, at most 200
// characters as the service requires), the postcode filter when `filter_postcode` and the
// postcode looks like one (5 digits), the citycode filter when given.
Query build_query(const Address& address, const std::string& type, bool filter_postcode);
// base_url?q=…&limit=1&autocomplete=0[&type=…][&postcode=…][&citycode=…] (URL-encoded).
std::string search_url(const std::string& base_url, const Query& query);
// base_url?lon=…&lat=…&limit=1[&type=…]
std::string reverse_url(const std::string& base_url, double lon, double lat,
                        const std::string& type);
// Lower-case, accents stripped (Latin-1 supplement and Latin Extended-A letters, œ → oe,
// æ → ae), punctuation other than digits/letters turned into spaces, spaces collapsed, trimmed.
std::string normalise(const std::string& text);
// The cache key of a query: normalised q, filters and type.
std::string cache_key(const Query& query);

// The best candidate of a response, in the shape the enricher adds it. Plain value.
struct Match {
  bool found = false;
  double score = 0;
  std::string type;     // housenumber | street | locality | municipality
  nlohmann::json data;  // label, score, id, type, housenumber, street, postcode, citycode, city,
                        // context, lon, lat, x, y (absent properties are left out)
};
// The data object of one GeoJSON feature of a response.
nlohmann::json feature_data(const nlohmann::json& feature);
// Parses a /search or /reverse body (a GeoJSON FeatureCollection); takes the first feature.
// Returns false (and sets `error`) when the body is not such a collection.
bool parse_response(const std::string& body, Match& out, std::string& error);

// What one lookup gave. Plain value.
struct Lookup {
  enum class Kind { Found, NotFound, Invalid, Unavailable };
  Kind kind = Kind::NotFound;          // Invalid: the service refused the query (400)
  std::shared_ptr<const Match> match;  // Found
  int code = 0;                        // HTTP status (0 = transport error)
  std::string text;                    // Unavailable / Invalid: why (no personal data)
  std::optional<int64_t> retry_after_ms;
  bool from_cache = false;
};

// An LRU map with a time-to-live. Thread-safe (one mutex); values are shared immutable matches.
class LruCache {
 public:
  LruCache(size_t capacity, int64_t ttl_ms);
  // The value when present and not expired at `now` (an expired entry is removed).
  std::shared_ptr<const Match> get(const std::string& key, Millis now);
  void put(const std::string& key, std::shared_ptr<const Match> value, Millis now);
  size_t size() const;
  void clear();

 private:
  struct Entry {
    std::string key;
    std::shared_ptr<const Match> value;
    Millis expires;
  };
  size_t capacity_;
  int64_t ttl_ms_;
  mutable std::mutex mu_;
  std::list<Entry> order_;  // most recent first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

// A synchronous Redis client (hiredis) on one connection guarded by a mutex. Thread-safe.
// Reconnects lazily (at most once per second) after an error; every operation reports failure
// instead of throwing, so callers fall back to local behaviour when Redis is down.
class Redis {
 public:
  Redis(std::string host_port, int64_t timeout_ms);
  ~Redis();
  Redis(const Redis&) = delete;
  Redis& operator=(const Redis&) = delete;

  // nullopt on a miss or an error (`error` tells which).
  std::optional<std::string> get(const std::string& key, bool* error = nullptr);
  bool setex(const std::string& key, int64_t ttl_s, const std::string& value);
  // EVAL of a script that answers an integer, with one key. nullopt on error.
  std::optional<long long> eval_integer(const char* script, const std::string& key,
                                        const std::vector<std::string>& args);
  bool ping();

 private:
  bool connect_locked();
  void drop_locked(const char* what);
  std::string host_;
  int port_ = 6379;
  int64_t timeout_ms_;
  std::mutex mu_;
  void* ctx_ = nullptr;  // redisContext*
  std::chrono::steady_clock::time_point next_connect_{};
  bool warned_ = false;
};

// Limits requests to `per_second` overall with the one token bucket of core/rate_bucket.h
// (burst 1: requests spaced 1/per_second apart, so any window of T ms holds at most
// 1 + T·per_second/1000 of them): locally a RateBucket; with Redis also the same bucket kept in
// Redis (kRateBucketScript, Redis's clock) under `key_prefix`, shared by every node. Redis
// unreachable: the local bucket alone. A 429 pauses every caller of this node until its
// Retry-After. Thread-safe.
class RateLimiter {
 public:
  RateLimiter(double per_second, Redis* redis, std::string key_prefix);
  // Waits for a slot; false when none could be had before `max_wait_ms`.
  bool acquire(int64_t max_wait_ms);
  // No request before now + ms.
  void pause_for(int64_t ms);

 private:
  RateBucket local_;
  Redis* redis_;
  std::string key_;
  std::string interval_;  // µs, for the script
};

// Every setting of a geocoder. Plain value; defaults are the documented ones.
struct Options {
  std::string base_url = "https://data.geopf.fr/geocodage/search";
  std::string reverse_url = "https://data.geopf.fr/geocodage/reverse";
  std::string csv_url = "https://data.geopf.fr/geocodage/search/csv";
  std::string type = "housenumber";  // "" = any
  bool filter_postcode = true;
  bool autocomplete = false;
  double accept_score = 0.8;
  double review_score = 0.5;
  bool reject_below_review = false;  // below_review: reject (true) | pass (false)
  int64_t timeout_ms = 5000;
  int64_t connect_timeout_ms = 2000;
  size_t cache_size = 10000;  // 0 = no in-memory cache
  int64_t cache_ttl_ms = 7LL * 24 * 3600 * 1000;
  std::string redis;  // host:port ("" = none)
  std::string redis_prefix = "relais:ban:";
  double rate_limit = 50;  // requests per second, overall
  bool tls_verify = true;
  std::string ca_file;
  TlsClientOptions tls;  // the `tls` block: CA bundle, client certificate
  std::string user_agent = "relais-ban/1";
};

// Geocodes single addresses: cache (memory, then Redis), rate limit, HTTP (libcurl, one handle
// per calling thread). Thread-safe; search() and reverse() may be called from any thread.
// Borrows `clock` (cache expiry) and `metrics` (may be null), which must outlive it.
class Geocoder {
 public:
  Geocoder(Options options, const Clock* clock, Metrics* metrics = nullptr,
           std::string name = "ban");
  ~Geocoder();
  Lookup search(const Address& address);
  Lookup search(const Query& query);
  // /reverse?lon=&lat= (not cached). `type` "" = any.
  Lookup reverse(double lon, double lat, const std::string& type = "housenumber");
  const Options& options() const { return options_; }
  LruCache* cache() { return cache_.get(); }
  // The shared Redis client, or null when none is configured.
  Redis* redis() { return redis_.get(); }
  uint64_t http_requests() const { return http_requests_.load(); }

 private:
  Lookup fetch(const std::string& url);
  Options options_;
  const Clock* clock_;
  std::string name_;
  std::unique_ptr<LruCache> cache_;
  std::unique_ptr<Redis> redis_;
  std::unique_ptr<RateLimiter> limiter_;
  std::atomic<uint64_t> http_requests_{0};
  Counter* hits_ = nullptr;
  Counter* redis_hits_ = nullptr;
  Counter* misses_ = nullptr;
  Counter* unavailable_ = nullptr;
};

// Reverse geocoding for the portal: one call, no cache, no shared limiter.
Lookup reverse_geocode(const Options& options, double lon, double lat,
                       const std::string& type = "housenumber");

// Where the enricher reads the address in a message body. Plain value.
struct Fields {
  std::optional<JsonPath> number, street, postcode, city, citycode;
  Address read(const nlohmann::json& body) const;
};

// The `ban` enricher: reads the address, geocodes it, applies the quality rules. The original
// address is never modified: the BAN result is added at the enricher's target. Thread-safe.
class BanEnricher final : public Enricher {
 public:
  BanEnricher(Options options, Fields fields, const Clock* clock, Metrics* metrics,
              std::string name);
  Enrichment enrich(const Message& message, const nlohmann::json& body) override;
  // The quality rules applied to a lookup (public for tests).
  Enrichment decide(const Lookup& lookup) const;
  Geocoder& geocoder() { return geocoder_; }
  const Fields& fields() const { return fields_; }

 private:
  Options options_;
  Fields fields_;
  Geocoder geocoder_;
};

// Builds an enricher from its validated configuration (throws std::runtime_error on a bad one).
std::unique_ptr<BanEnricher> make_ban_enricher(const EnricherContext& ctx);

// One row of a bulk result. Plain value.
struct BulkRow {
  bool ok = false;    // the service answered for this row (found or not)
  Match match;        // found / score / data (no x/y: the CSV service does not return them)
  std::string error;  // !ok: why
};

// Geocodes many addresses through /search/csv in chunks (multipart POST: `data` = a CSV file,
// `columns` = the columns making q, `postcode`/`citycode` = the filter columns). For backfills;
// independent of the hub and of any CLI. Not thread-safe: one bulk run per instance.
class BulkGeocoder {
 public:
  struct Settings {
    std::string csv_url = "https://data.geopf.fr/geocodage/search/csv";
    size_t chunk_size = 1000;
    int max_retries = 3;                // per chunk, on 429/5xx/transport errors
    int64_t max_retry_wait_ms = 30000;  // cap of one wait (Retry-After or back-off)
    int64_t timeout_ms = 120000;
    bool tls_verify = true;
    std::string ca_file;
    TlsClientOptions tls;  // CA bundle, client certificate
    bool filter_postcode = true;
    std::string user_agent = "relais-ban/1";
  };
  // Called after each chunk with rows done and total; return false to stop early (the rows not
  // done are returned with ok=false, error "cancelled").
  using Progress = std::function<bool(size_t done, size_t total)>;

  explicit BulkGeocoder(Settings settings) : settings_(std::move(settings)) {}
  std::vector<BulkRow> geocode(const std::vector<Address>& addresses,
                               const Progress& progress = {});

 private:
  Settings settings_;
};

// CSV helpers (RFC 4180: quotes doubled, fields with , " CR LF quoted). Exposed for tests.
std::string csv_escape(const std::string& field);
std::vector<std::vector<std::string>> csv_parse(const std::string& text);

}  // namespace ban
}  // namespace relais
