// Talking to the BAN: single lookups (cache, rate limit, libcurl), reverse geocoding and bulk
// geocoding through /search/csv.

#include <curl/curl.h>

#include "connectors/http/curl_capture.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <thread>

#include "connectors/ban/ban.h"
#include "connectors/http/http_connector.h"
#include "core/crypto.h"
#include "core/log.h"

namespace relais::ban {
namespace {

constexpr size_t kMaxBody = 8u << 20;  // an answer larger than this is cut (and unreadable)

// One libcurl handle per thread, reused so connections stay open (keep-alive).
struct ThreadHandle {
  CURL* h = curl_easy_init();
  ~ThreadHandle() {
    if (h) curl_easy_cleanup(h);
  }
};

CURL* thread_handle() {
  thread_local ThreadHandle handle;
  return handle.h;
}

struct HttpResult {
  CURLcode rc = CURLE_OK;
  long status = 0;
  CurlCapture cap{kMaxBody};
};

// The shared transfer options plus what only the BAN sends.
void common_options(CURL* h, const std::string& url, const CurlTransfer& transfer,
                    const std::string& user_agent, CurlCapture& cap) {
  prepare_curl(h, url, transfer, cap);
  curl_easy_setopt(h, CURLOPT_USERAGENT, user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
}

nlohmann::json match_to_json(const Match& m) {
  return {{"found", m.found}, {"score", m.score}, {"type", m.type}, {"data", m.data}};
}

bool match_from_json(const std::string& text, Match& m) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("found")) return false;
  m.found = j.value("found", false);
  m.score = j.value("score", 0.0);
  m.type = j.value("type", "");
  m.data = j.contains("data") ? j["data"] : nlohmann::json();
  return true;
}

Lookup from_match(std::shared_ptr<const Match> m, bool cached) {
  Lookup l;
  l.kind = m->found ? Lookup::Kind::Found : Lookup::Kind::NotFound;
  l.match = std::move(m);
  l.from_cache = cached;
  return l;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Geocoder

Geocoder::Geocoder(Options options, const Clock* clock, Metrics* metrics, std::string name)
    : options_(std::move(options)),
      clock_(clock ? clock : &SystemClock::instance()),
      name_(std::move(name)) {
  if (options_.cache_size > 0) {
    cache_ = std::make_unique<LruCache>(options_.cache_size, options_.cache_ttl_ms);
  }
  if (!options_.redis.empty()) {
    redis_ = std::make_unique<Redis>(options_.redis, std::min<int64_t>(options_.timeout_ms, 1000));
  }
  limiter_ = std::make_unique<RateLimiter>(options_.rate_limit, redis_.get(),
                                           options_.redis_prefix + name_ + ":");
  if (metrics) {
    metrics->describe("relais_ban_lookups_total", "counter",
                      "BAN lookups by enricher and result (memory/redis cache hit, request, "
                      "unavailable)");
    hits_ =
        &metrics->counter("relais_ban_lookups_total", {{"enricher", name_}, {"result", "memory"}});
    redis_hits_ =
        &metrics->counter("relais_ban_lookups_total", {{"enricher", name_}, {"result", "redis"}});
    misses_ =
        &metrics->counter("relais_ban_lookups_total", {{"enricher", name_}, {"result", "request"}});
    unavailable_ = &metrics->counter("relais_ban_lookups_total",
                                     {{"enricher", name_}, {"result", "unavailable"}});
  }
}

Geocoder::~Geocoder() = default;

Lookup Geocoder::search(const Address& address) {
  Query q = build_query(address, options_.type, options_.filter_postcode);
  q.autocomplete = options_.autocomplete;
  return search(q);
}

Lookup Geocoder::search(const Query& query) {
  std::string key = cache_key(query);
  if (cache_) {
    if (auto m = cache_->get(key, clock_->now_ms())) {
      if (hits_) hits_->inc();
      return from_match(std::move(m), true);
    }
  }
  std::string redis_key;
  if (redis_) {
    redis_key = options_.redis_prefix + "c:" + sha256_hex(key);
    if (auto text = redis_->get(redis_key)) {
      Match m;
      if (match_from_json(*text, m)) {
        auto shared = std::make_shared<const Match>(std::move(m));
        if (cache_) cache_->put(key, shared, clock_->now_ms());
        if (redis_hits_) redis_hits_->inc();
        return from_match(std::move(shared), true);
      }
    }
  }
  Lookup l = fetch(search_url(options_.base_url, query));
  if (l.kind == Lookup::Kind::Found || l.kind == Lookup::Kind::NotFound) {
    if (cache_) cache_->put(key, l.match, clock_->now_ms());
    if (redis_) {
      redis_->setex(redis_key, std::max<int64_t>(1, options_.cache_ttl_ms / 1000),
                    match_to_json(*l.match).dump());
    }
  }
  return l;
}

Lookup Geocoder::reverse(double lon, double lat, const std::string& type) {
  return fetch(reverse_url(options_.reverse_url, lon, lat, type));
}

Lookup Geocoder::fetch(const std::string& url) {
  Lookup l;
  if (!limiter_->acquire(options_.timeout_ms)) {
    l.kind = Lookup::Kind::Unavailable;
    l.text = "rate limit: no request slot within the timeout";
    l.retry_after_ms = 1000;
    if (unavailable_) unavailable_->inc();
    return l;
  }
  CURL* h = thread_handle();
  if (h == nullptr) {
    l.kind = Lookup::Kind::Unavailable;
    l.text = "curl_easy_init failed";
    return l;
  }
  CurlCapture cap(kMaxBody);
  common_options(h, url,
                 CurlTransfer{options_.timeout_ms, options_.connect_timeout_ms, options_.tls_verify,
                              options_.ca_file, options_.tls},
                 options_.user_agent, cap);
  curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  http_requests_.fetch_add(1);
  if (misses_) misses_->inc();
  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    l.kind = Lookup::Kind::Unavailable;
    l.text = std::string(rc == CURLE_OPERATION_TIMEDOUT ? "timeout: " : "unreachable: ") +
             curl_easy_strerror(rc);
    if (unavailable_) unavailable_->inc();
    return l;
  }
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  l.code = static_cast<int>(status);
  if (status == 200) {
    Match m;
    std::string err;
    if (!parse_response(cap.body, m, err)) {
      l.kind = Lookup::Kind::Unavailable;
      l.text = "unreadable answer: " + err;
      if (unavailable_) unavailable_->inc();
      return l;
    }
    l.kind = m.found ? Lookup::Kind::Found : Lookup::Kind::NotFound;
    l.match = std::make_shared<const Match>(std::move(m));
    return l;
  }
  if (status == 400) {
    l.kind = Lookup::Kind::Invalid;
    l.text = "the BAN refused the query (400)";
    return l;
  }
  l.kind = Lookup::Kind::Unavailable;
  if (unavailable_) unavailable_->inc();
  if (status == 429) {
    int64_t ms = cap.header("retry-after").empty()
                     ? -1
                     : parse_retry_after_ms(cap.header("retry-after"), clock_->now_ms());
    if (ms < 0) ms = 1000;
    l.retry_after_ms = ms;
    l.text = "rate limited by the BAN (429)";
    limiter_->pause_for(ms);
    log_warn("ban", name_ + ": 429 from the BAN, pausing " + std::to_string(ms) + " ms");
    return l;
  }
  l.text = "the BAN answered HTTP " + std::to_string(status);
  return l;
}

Lookup reverse_geocode(const Options& options, double lon, double lat, const std::string& type) {
  Options o = options;
  o.cache_size = 0;
  o.redis.clear();
  Geocoder g(std::move(o), &SystemClock::instance(), nullptr, "reverse");
  return g.reverse(lon, lat, type);
}

// ---------------------------------------------------------------------------------------------
// BulkGeocoder

namespace {

// The data object of one result row of /search/csv.
Match row_match(const std::vector<std::string>& row, const std::map<std::string, size_t>& col) {
  auto get = [&](const char* name) -> std::string {
    auto it = col.find(name);
    return it == col.end() || it->second >= row.size() ? "" : row[it->second];
  };
  Match m;
  std::string score = get("result_score");
  m.found = !get("result_label").empty() && !score.empty();
  if (!m.found) return m;
  m.score = std::strtod(score.c_str(), nullptr);
  m.type = get("result_type");
  nlohmann::json d = nlohmann::json::object();
  d["label"] = get("result_label");
  d["score"] = m.score;
  auto put = [&](const char* key, const char* column) {
    std::string v = get(column);
    if (!v.empty()) d[key] = v;
  };
  put("id", "result_id");
  put("type", "result_type");
  put("housenumber", "result_housenumber");
  put("street", "result_street");
  if (!d.contains("street") && m.type == "street") put("street", "result_name");
  put("postcode", "result_postcode");
  put("citycode", "result_citycode");
  put("city", "result_city");
  put("context", "result_context");
  std::string lon = get("longitude"), lat = get("latitude");
  if (!lon.empty() && !lat.empty()) {
    d["lon"] = std::strtod(lon.c_str(), nullptr);
    d["lat"] = std::strtod(lat.c_str(), nullptr);
  }
  m.data = std::move(d);
  return m;
}

}  // namespace

std::vector<BulkRow> BulkGeocoder::geocode(const std::vector<Address>& addresses,
                                           const Progress& progress) {
  std::vector<BulkRow> out(addresses.size());
  const size_t chunk = std::max<size_t>(1, settings_.chunk_size);
  CURL* h = thread_handle();
  for (size_t start = 0; start < addresses.size(); start += chunk) {
    size_t end = std::min(addresses.size(), start + chunk);
    bool any_postcode = false, any_citycode = false;
    std::string csv = "rid,numero,voie,code_postal,commune,code_insee\n";
    for (size_t i = start; i < end; ++i) {
      const Address& a = addresses[i];
      Query q = build_query(a, "", settings_.filter_postcode);
      any_postcode = any_postcode || !q.postcode.empty();
      any_citycode = any_citycode || !q.citycode.empty();
      csv += std::to_string(i - start) + "," + csv_escape(a.number) + "," + csv_escape(a.street) +
             "," + csv_escape(a.postcode) + "," + csv_escape(a.city) + "," +
             csv_escape(a.citycode) + "\n";
    }
    std::string error;
    for (int attempt = 0;; ++attempt) {
      CurlCapture cap(kMaxBody);
      common_options(h, settings_.csv_url,
                     CurlTransfer{settings_.timeout_ms, 10000, settings_.tls_verify,
                                  settings_.ca_file, settings_.tls},
                     settings_.user_agent, cap);
      curl_mime* mime = curl_mime_init(h);
      curl_mimepart* part = curl_mime_addpart(mime);
      curl_mime_name(part, "data");
      curl_mime_data(part, csv.data(), csv.size());
      curl_mime_filename(part, "adresses.csv");
      curl_mime_type(part, "text/csv");
      auto field = [&](const char* name, const char* value) {
        curl_mimepart* p = curl_mime_addpart(mime);
        curl_mime_name(p, name);
        curl_mime_data(p, value, CURL_ZERO_TERMINATED);
      };
      for (const char* c : {"numero", "voie", "code_postal", "commune"}) field("columns", c);
      if (settings_.filter_postcode && any_postcode) field("postcode", "code_postal");
      if (any_citycode) field("citycode", "code_insee");
      curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
      CURLcode rc = curl_easy_perform(h);
      long status = 0;
      if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
      curl_easy_setopt(h, CURLOPT_MIMEPOST, nullptr);
      curl_mime_free(mime);
      if (rc == CURLE_OK && status == 200) {
        auto rows = csv_parse(cap.body);
        if (rows.empty()) {
          error = "empty answer";
          break;
        }
        std::map<std::string, size_t> col;
        for (size_t i = 0; i < rows[0].size(); ++i) col[rows[0][i]] = i;
        if (!col.count("rid")) {
          error = "the answer has no rid column";
          break;
        }
        for (size_t r = 1; r < rows.size(); ++r) {
          const auto& row = rows[r];
          if (col["rid"] >= row.size()) continue;
          char* endp = nullptr;
          unsigned long rid = std::strtoul(row[col["rid"]].c_str(), &endp, 10);
          if (endp == row[col["rid"]].c_str() || start + rid >= end) continue;
          BulkRow& b = out[start + rid];
          b.ok = true;
          b.match = row_match(row, col);
        }
        for (size_t i = start; i < end; ++i) {
          if (!out[i].ok) out[i].error = "missing from the answer";
        }
        break;
      }
      bool transient = rc != CURLE_OK || status == 429 || status == 408 || status >= 500;
      error = rc != CURLE_OK ? std::string("unreachable: ") + curl_easy_strerror(rc)
                             : "HTTP " + std::to_string(status);
      if (!transient || attempt >= settings_.max_retries) break;
      int64_t wait =
          cap.header("retry-after").empty()
              ? -1
              : parse_retry_after_ms(cap.header("retry-after"), SystemClock::instance().now_ms());
      if (wait < 0) wait = 1000LL << std::min(attempt, 5);
      wait = std::min(wait, settings_.max_retry_wait_ms);
      log_info("ban", "bulk chunk at row " + std::to_string(start) + ": " + error + ", retry in " +
                          std::to_string(wait) + " ms");
      std::this_thread::sleep_for(std::chrono::milliseconds(wait));
    }
    for (size_t i = start; i < end; ++i) {
      if (!out[i].ok && out[i].error.empty()) out[i].error = error;
    }
    if (progress && !progress(end, addresses.size())) {
      for (size_t i = end; i < addresses.size(); ++i) out[i].error = "cancelled";
      break;
    }
  }
  return out;
}

}  // namespace relais::ban
