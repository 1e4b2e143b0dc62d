// The `ban` enricher kind: configuration, reading the address, quality rules.

#include <cstdio>

#include "connectors/ban/ban.h"
#include "core/log.h"

namespace relais {
namespace ban {
namespace {

using F = FieldType;

const ConfigSpec& fields_spec() {
  static const ConfigSpec s{
      "ban.fields",
      {
          {"number", F::String, "", false, "JSON path of the house number (e.g. $.adresse.numero)"},
          {"street", F::String, "", false, "JSON path of the street (e.g. $.adresse.voie)"},
          {"postcode", F::String, "", false, "JSON path of the postcode (also a filter)"},
          {"city", F::String, "", false, "JSON path of the city"},
          {"citycode", F::String, "", false, "JSON path of the INSEE code (a filter only)"},
      }};
  return s;
}

const ConfigSpec& cache_spec() {
  static const ConfigSpec s{
      "ban.cache",
      {
          {"size",
           F::Int,
           "10000",
           false,
           "entries kept in memory (0 = no in-memory cache)",
           {},
           nullptr,
           0,
           10000000},
          {"ttl", F::Duration, "7d", false, "how long an answer is reused (memory and Redis)"},
      }};
  return s;
}

const ConfigSpec& ban_spec() {
  static const ConfigSpec s{
      "ban",
      {
          {"base_url", F::String, "https://data.geopf.fr/geocodage/search", false,
           "the /search endpoint"},
          {"reverse_url", F::String, "https://data.geopf.fr/geocodage/reverse", false,
           "the /reverse endpoint (reverse geocoding, for the portal)"},
          {"csv_url", F::String, "https://data.geopf.fr/geocodage/search/csv", false,
           "the /search/csv endpoint (bulk geocoding)"},
          {"fields",
           F::Object,
           "",
           true,
           "where the address is read in the message body",
           {},
           &fields_spec()},
          {"type",
           F::String,
           "housenumber",
           false,
           "type filter of the query (any = no filter)",
           {"housenumber", "street", "locality", "municipality", "any"}},
          {"filter_postcode", F::Bool, "true", false,
           "send the postcode (when it is 5 digits) as a filter, not only in the text"},
          {"autocomplete", F::Bool, "false", false, "ask for autocompletion (for typed prefixes)"},
          {"accept_score",
           F::Float,
           "0.8",
           false,
           "score from which an answer is accepted",
           {},
           nullptr,
           0,
           1},
          {"review_score",
           F::Float,
           "0.5",
           false,
           "score from which an answer is added with a 'to check' flag",
           {},
           nullptr,
           0,
           1},
          {"below_review",
           F::String,
           "pass",
           false,
           "below review_score or no answer: pass un-enriched with a flag, or reject",
           {"pass", "reject"}},
          {"timeout", F::Duration, "5s", false, "total time allowed for one request"},
          {"connect_timeout", F::Duration, "2s", false, "time allowed to connect"},
          {"cache", F::Object, "", false, "in-memory LRU cache", {}, &cache_spec()},
          {"redis", F::String, "", false,
           "host:port of a Redis shared by the nodes (cache and rate limit); empty = none"},
          {"redis_prefix", F::String, "relais:ban:", false, "prefix of the Redis keys"},
          {"rate_limit",
           F::Float,
           "50",
           false,
           "requests per second overall (the BAN allows 50)",
           {},
           nullptr,
           0.1,
           10000},
          {"tls_verify", F::Bool, "true", false,
           "verify the server certificate (never turn off in production)"},
          {"ca_file", F::String, "", false,
           "CA bundle to verify the server with (PEM); superseded by tls.ca_file"},
          tls_client_field(),
      }};
  return s;
}

std::string score_text(double s) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%.2f", s);
  return buf;
}

bool text_at(const std::optional<JsonPath>& path, const nlohmann::json& body, std::string& out) {
  out.clear();
  if (!path) return false;
  const nlohmann::json* v = path->find(body);
  return v != nullptr && scalar_text(*v, out);
}

std::optional<JsonPath> path_of(const ConfigView& c, const std::string& key,
                                const std::string& who) {
  if (!c.has(key)) return std::nullopt;
  JsonPath p;
  std::string err;
  if (!JsonPath::parse(c.str(key), p, err)) {
    throw std::runtime_error(who + ": fields." + key + ": " + err);
  }
  return p;
}

bool url_ok(const std::string& u) {
  return u.rfind("http://", 0) == 0 || u.rfind("https://", 0) == 0;
}

}  // namespace

Address Fields::read(const nlohmann::json& body) const {
  Address a;
  text_at(number, body, a.number);
  text_at(street, body, a.street);
  text_at(postcode, body, a.postcode);
  text_at(city, body, a.city);
  text_at(citycode, body, a.citycode);
  return a;
}

BanEnricher::BanEnricher(Options options, Fields fields, const Clock* clock, Metrics* metrics,
                         std::string name)
    : options_(options), fields_(std::move(fields)), geocoder_(options, clock, metrics, name) {}

Enrichment BanEnricher::enrich(const Message& message, const nlohmann::json& body) {
  Address a = fields_.read(body);
  if (a.empty()) return Enrichment{};  // nothing to geocode: nothing added, nothing flagged
  Lookup l = geocoder_.search(a);
  Enrichment e = decide(l);
  // A number was given but the answer is only a street, a place or a commune: to check.
  if (e.kind == Enrichment::Kind::Ok && !a.number.empty() && l.match &&
      l.match->type != "housenumber") {
    e.kind = Enrichment::Kind::Flagged;
    e.flag = "adresse à vérifier (numéro non trouvé, niveau " + l.match->type + ", score " +
             score_text(l.match->score) + ")";
  }
  if (e.kind != Enrichment::Kind::Ok) {
    log_debug("ban", "message " + message.id + ": " + (e.flag.empty() ? e.text : e.flag));
  }
  return e;
}

Enrichment BanEnricher::decide(const Lookup& l) const {
  Enrichment e;
  auto low = [&](const std::string& why) {
    if (options_.reject_below_review) {
      e.kind = Enrichment::Kind::Reject;
      e.error_class = "ban";
      e.text = why;
    } else {
      e.kind = Enrichment::Kind::Flagged;
      e.flag = why;
    }
    e.data = nullptr;
  };
  switch (l.kind) {
    case Lookup::Kind::Unavailable:
      e.kind = Enrichment::Kind::Retry;
      e.error_class = "ban";
      e.code = l.code;
      e.text = l.text;
      e.retry_after_ms = l.retry_after_ms;
      return e;
    case Lookup::Kind::Invalid:
      low("adresse non géocodable (requête refusée par la BAN)");
      return e;
    case Lookup::Kind::NotFound:
      low("adresse introuvable dans la BAN");
      return e;
    case Lookup::Kind::Found:
      break;
  }
  const Match& m = *l.match;
  if (m.score >= options_.accept_score) {
    e.kind = Enrichment::Kind::Ok;
    e.data = m.data;
  } else if (m.score >= options_.review_score) {
    e.kind = Enrichment::Kind::Flagged;
    e.flag = "adresse à vérifier (score " + score_text(m.score) + ")";
    e.data = m.data;
  } else {
    low("adresse non reconnue (score " + score_text(m.score) + ")");
  }
  return e;
}

std::unique_ptr<BanEnricher> make_ban_enricher(const EnricherContext& ctx) {
  const ConfigView& c = ctx.config;
  const std::string who = "enricher " + ctx.name;
  Options o;
  o.base_url = c.str("base_url");
  o.reverse_url = c.str("reverse_url");
  o.csv_url = c.str("csv_url");
  o.type = c.str("type") == "any" ? "" : c.str("type");
  o.filter_postcode = c.boolean("filter_postcode");
  o.autocomplete = c.boolean("autocomplete");
  o.accept_score = c.number("accept_score");
  o.review_score = c.number("review_score");
  o.reject_below_review = c.str("below_review") == "reject";
  o.timeout_ms = c.duration_ms("timeout");
  o.connect_timeout_ms = c.duration_ms("connect_timeout");
  ConfigView cache = c.object("cache");
  o.cache_size = static_cast<size_t>(std::max<int64_t>(0, cache.integer("size")));
  o.cache_ttl_ms = cache.duration_ms("ttl");
  o.redis = c.str("redis");
  o.redis_prefix = c.str("redis_prefix");
  o.rate_limit = c.number("rate_limit");
  o.tls_verify = c.boolean("tls_verify");
  o.ca_file = c.str("ca_file");
  o.tls = read_tls_client(c.object("tls"), who);
  if (o.review_score > o.accept_score) {
    throw std::runtime_error(who + ": review_score is above accept_score");
  }
  ConfigView f = c.object("fields");
  Fields fields;
  fields.number = path_of(f, "number", who);
  fields.street = path_of(f, "street", who);
  fields.postcode = path_of(f, "postcode", who);
  fields.city = path_of(f, "city", who);
  fields.citycode = path_of(f, "citycode", who);
  return std::make_unique<BanEnricher>(std::move(o), std::move(fields), ctx.clock, ctx.metrics,
                                       ctx.name);
}

}  // namespace ban

void register_ban_enricher(EnricherRegistry& registry) {
  EnricherKind k;
  k.name = "ban";
  k.description =
      "geocodes an address with the Base Adresse Nationale (IGN Géoplateforme) and adds the "
      "normalised address, its INSEE code and coordinates";
  k.spec = &ban::ban_spec();
  k.check = [](const ConfigView& c, const std::string& file, std::vector<ConfigError>& errors) {
    for (const char* key : {"base_url", "reverse_url", "csv_url"}) {
      if (c.has(key) && !ban::url_ok(c.str(key))) {
        errors.push_back(
            error_at(c.raw(key), file, c.path() + "." + key, "the URL must start with http(s)://"));
      }
    }
    if (c.number("review_score") > c.number("accept_score")) {
      errors.push_back(error_at(c.has("review_score") ? c.raw("review_score") : c.node(), file,
                                c.path() + ".review_score",
                                "review_score must not be above accept_score"));
    }
    check_tls_client(c.object("tls"), file, errors);
    ConfigView f = c.object("fields");
    if (!f.has("street") && !f.has("city")) {
      errors.push_back(error_at(c.has("fields") ? c.raw("fields") : c.node(), file,
                                c.path() + ".fields", "give at least street or city"));
    }
    for (const char* key : {"number", "street", "postcode", "city", "citycode"}) {
      if (!f.has(key)) continue;
      JsonPath p;
      std::string err;
      if (!JsonPath::parse(f.str(key), p, err)) {
        errors.push_back(error_at(f.raw(key), file, f.path() + "." + key, err));
      }
    }
    if (c.has("redis")) {
      std::string r = c.str("redis");
      auto colon = r.rfind(':');
      if (!r.empty() && (colon == std::string::npos || colon == 0 || colon + 1 == r.size())) {
        errors.push_back(error_at(c.raw("redis"), file, c.path() + ".redis", "expected host:port"));
      }
    }
  };
  k.create = [](const EnricherContext& ctx) -> std::unique_ptr<Enricher> {
    return ban::make_ban_enricher(ctx);
  };
  registry.add(std::move(k));
}

}  // namespace relais
