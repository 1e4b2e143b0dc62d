// What the calendar drivers share: reading the mapped event, time conversions, the
// transaction id, the HTTP exchange and the OAuth2 client-credentials token cache.

#include <cctype>
#include <cstdio>
#include <map>
#include <memory>

#include "connectors/calendar/calendar.h"
#include "connectors/calendar/calendar_http.h"
#include "connectors/http/http_connector.h"
#include "core/crypto.h"
#include "mappings/tz.h"

namespace relais::calendar {
namespace {

std::string str_at(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

}  // namespace

bool parse_event(const nlohmann::json& mapped, bool need_event, Event& out, std::string& error) {
  if (!mapped.is_object()) {
    error = "the mapping's output is not a JSON object";
    return false;
  }
  out.mailbox = str_at(mapped, "mailbox");
  if (out.mailbox.empty() || out.mailbox.find('@') == std::string::npos) {
    error = "the mapping gave no mailbox (an SMTP address is expected in 'mailbox')";
    return false;
  }
  if (!need_event) return true;
  auto it = mapped.find("event");
  if (it == mapped.end() || !it->is_object()) {
    error = "the mapping gave no 'event' object";
    return false;
  }
  const auto& e = *it;
  out.subject = str_at(e, "subject");
  out.body = str_at(e, "body");
  out.start = str_at(e, "start");
  out.end = str_at(e, "end");
  out.location = str_at(e, "location");
  out.time_zone = str_at(e, "time_zone");
  if (auto s = str_at(e, "show_as"); !s.empty()) out.show_as = s;
  out.categories.clear();
  if (auto c = e.find("categories"); c != e.end() && c->is_array()) {
    for (const auto& v : *c) {
      if (v.is_string()) out.categories.push_back(v.get<std::string>());
    }
  }
  out.reminder_minutes = -1;
  if (auto r = e.find("reminder_minutes"); r != e.end() && r->is_number_integer()) {
    out.reminder_minutes = r->get<int>();
  }
  std::string tmp;
  if (out.subject.empty()) {
    error = "the event has no subject";
    return false;
  }
  if (!to_utc(out.start, tmp)) {
    error = "the event's start is not an ISO 8601 time with an offset";
    return false;
  }
  if (!to_utc(out.end, tmp)) {
    error = "the event's end is not an ISO 8601 time with an offset";
    return false;
  }
  return true;
}

namespace {
// The text of each field, in FieldBits order.
std::vector<std::string> field_texts(const Event& e) {
  std::string cats;
  for (const auto& c : e.categories) cats += c + "\n";
  return {e.subject, e.body, cats,      std::to_string(e.reminder_minutes),
          e.start,   e.end,  e.show_as, e.location};
}
}  // namespace

std::string field_digests(const Event& e) {
  std::string out;
  for (const auto& t : field_texts(e)) {
    // Appended piece by piece: "," + std::string&& trips GCC 12's false -Wrestrict at -O3.
    if (!out.empty()) out += ',';
    out += sha256_hex(t).substr(0, 8);
  }
  return out;
}

unsigned changed_fields(const Event& e, const std::string& stored) {
  std::vector<std::string> old;
  size_t start = 0;
  while (start <= stored.size() && !stored.empty()) {
    size_t comma = stored.find(',', start);
    if (comma == std::string::npos) comma = stored.size();
    old.push_back(stored.substr(start, comma - start));
    start = comma + 1;
  }
  auto now = field_texts(e);
  if (old.size() != now.size()) return kAllFields;
  unsigned changed = 0;
  for (size_t i = 0; i < now.size(); ++i) {
    if (sha256_hex(now[i]).substr(0, 8) != old[i]) changed |= 1u << i;
  }
  return changed;
}

namespace {

// Seconds since the epoch of an ISO 8601 time with a Z or ±hh:mm offset (fractions ignored).
bool epoch_of(const std::string& iso, int64_t& t) {
  int y, mo, d, h, mi, s, n = 0;
  if (std::sscanf(iso.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6 ||
      n != 19) {
    return false;
  }
  size_t pos = 19;
  if (pos < iso.size() && iso[pos] == '.') {
    ++pos;
    while (pos < iso.size() && std::isdigit(static_cast<unsigned char>(iso[pos]))) ++pos;
  }
  int offset_min = 0;
  std::string rest = iso.substr(pos);
  if (rest == "Z") {
    offset_min = 0;
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    int oh = 0, om = 0;
    if (std::sscanf(rest.c_str() + 1, "%2d:%2d", &oh, &om) != 2) return false;
    offset_min = (rest[0] == '-' ? -1 : 1) * (oh * 60 + om);
  } else {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return false;
  t = mappings::days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
      h * 3600 + mi * 60 + s - offset_min * 60;
  return true;
}

// "2019-05-17T08:00:00" for seconds since the epoch, with a "Z" when `z`.
std::string iso_of(int64_t t, bool z) {
  int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
  int64_t secs = t - days * 86400;
  mappings::CivilDate c = mappings::civil_from_days(days);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d%s", static_cast<int>(c.year),
                static_cast<int>(c.month), static_cast<int>(c.day), static_cast<int>(secs / 3600),
                static_cast<int>(secs / 60 % 60), static_cast<int>(secs % 60), z ? "Z" : "");
  return buf;
}

}  // namespace

bool to_utc(const std::string& iso, std::string& out) {
  int64_t t = 0;
  if (!epoch_of(iso, t)) return false;
  out = iso_of(t, true);
  return true;
}

std::string transaction_id(const std::string& key, int generation) {
  std::string h = sha256_hex("relais-calendar:" + key +
                             (generation > 0 ? "#" + std::to_string(generation) : std::string()));
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

CurlHandles::CurlHandles(int slots) {
  for (int i = 0; i < std::max(1, slots); ++i) {
    CURL* h = curl_easy_init();
    if (h == nullptr) throw std::runtime_error("curl_easy_init failed");
    handles_.push_back(h);
  }
}

CurlHandles::~CurlHandles() {
  for (CURL* h : handles_) curl_easy_cleanup(h);
}

HttpAnswer http_exchange(CURL* h, const std::string& method, const std::string& url,
                         const std::vector<std::string>& headers, const std::string& body,
                         const CurlTransfer& transfer, const HttpAuth& auth, Send send,
                         size_t max_body) {
  CurlCapture cap(max_body);
  prepare_curl(h, url, transfer, cap);
  struct curl_slist* list = nullptr;
  for (const auto& line : headers) list = curl_slist_append(list, line.c_str());
  list = curl_slist_append(list, "Expect:");
  if (auth.mode == HttpAuth::Mode::Bearer) {
    list = curl_slist_append(list, ("Authorization: Bearer " + auth.bearer).c_str());
  } else if (auth.mode == HttpAuth::Mode::Basic || auth.mode == HttpAuth::Mode::Ntlm) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH,
                     auth.mode == HttpAuth::Mode::Basic ? CURLAUTH_BASIC : CURLAUTH_NTLM);
    curl_easy_setopt(h, CURLOPT_USERNAME, auth.user.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, auth.password.c_str());
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
  bool idempotent = send != Send::Once;
  set_request(h, cap, method, body, send == Send::Idempotent);
  HttpAnswer a;
  a.rc = curl_easy_perform(h);
  if (a.rc != CURLE_OK) a.failure = classify_curl_failure(a.rc, cap, idempotent);
  curl_slist_free_all(list);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  if (a.rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a.status);
  a.body = std::move(cap.body);
  a.headers = std::move(cap.headers);
  return a;
}

Outcome network_failure(CURLcode rc, const std::string& what) {
  return curl_failure_outcome(rc, CurlFailure::NotSent, what);
}

Outcome network_failure(const HttpAnswer& answer, const std::string& what) {
  return curl_failure_outcome(answer.rc, answer.failure, what);
}

std::optional<int64_t> retry_after_ms(const std::string& value, Millis now_ms) {
  int64_t ms = parse_retry_after_ms(value, now_ms);
  if (ms < 0) return std::nullopt;
  return ms;
}

std::string mailbox_scope(const std::string& mailbox) {
  std::string out = mailbox;
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::optional<Outcome> MailboxGate::closed(const std::string& mailbox) const {
  if (gate_ == nullptr) return std::nullopt;
  Millis now = clock_.now_ms();
  std::optional<Millis> until = gate_->paused_until(mailbox_scope(mailbox), now);
  if (!until) return std::nullopt;
  return Outcome::throttle(mailbox_scope(mailbox), 0,
                           "mailbox " + mailbox +
                               " paused at the server's request: nothing sent for another " +
                               std::to_string((*until - now + 999) / 1000) + " s",
                           *until - now);
}

Outcome MailboxGate::pause(const std::string& mailbox, int code, const std::string& text,
                           std::optional<int64_t> after_ms) const {
  int64_t after = after_ms.value_or(kDefaultThrottleMs);
  if (gate_ != nullptr) {
    Millis now = clock_.now_ms();
    after = gate_->pause(mailbox_scope(mailbox), now, after) - now;
  }
  return Outcome::throttle(mailbox_scope(mailbox), code,
                           text + " for mailbox " + mailbox + ": paused for " +
                               std::to_string((after + 999) / 1000) + " s",
                           after);
}

std::string iana_zone(const std::string& zone) {
  if (zone.find('/') != std::string::npos || zone == "UTC") return zone;
  // The Windows ids of France (metropolitan and overseas) and its neighbours (CLDR
  // windowsZones.xml, territory of the département where it differs from "001").
  static const std::map<std::string, std::string> windows{
      {"Romance Standard Time", "Europe/Paris"},
      {"W. Europe Standard Time", "Europe/Berlin"},
      {"Central Europe Standard Time", "Europe/Budapest"},
      {"Central European Standard Time", "Europe/Warsaw"},
      {"GMT Standard Time", "Europe/London"},
      {"Greenwich Standard Time", "Atlantic/Reykjavik"},
      {"UTC", "UTC"},
      {"Coordinated Universal Time", "UTC"},
      {"SA Western Standard Time", "America/Guadeloupe"},
      {"SA Eastern Standard Time", "America/Cayenne"},
      {"Mauritius Standard Time", "Indian/Reunion"},
      {"E. Africa Standard Time", "Indian/Mayotte"},
      {"Saint Pierre Standard Time", "America/Miquelon"},
      {"New Caledonia Standard Time", "Pacific/Noumea"},
      {"Hawaiian Standard Time", "Pacific/Tahiti"},
  };
  auto it = windows.find(zone);
  return it == windows.end() ? std::string() : it->second;
}

bool wall_clock_in(const std::string& iso, const std::string& iana, std::string& out) {
  int64_t t = 0;
  if (iana.empty() || !epoch_of(iso, t)) return false;
  std::shared_ptr<const mappings::TimeZone> tz = mappings::TimeZone::get(iana);
  if (!tz) return false;
  out = iso_of(t + tz->offset_at_utc(t), false);
  return true;
}

bool utc_from_wall(const std::string& wall, const std::string& zone, std::string& out) {
  int64_t local = 0;
  if (wall.size() < 19 || !epoch_of(wall.substr(0, 19) + "Z", local)) return false;
  if (zone.empty() || zone == "UTC") {
    out = iso_of(local, true);
    return true;
  }
  std::shared_ptr<const mappings::TimeZone> tz = mappings::TimeZone::get(iana_zone(zone));
  if (!tz) return false;
  out = iso_of(tz->local_to_utc(local), true);
  return true;
}

std::string excerpt(const std::string& body, size_t max) {
  return body.size() <= max ? body : body.substr(0, max);
}

// ---- token cache -------------------------------------------------------------------------

TokenCache::TokenCache() = default;
TokenCache::~TokenCache() = default;

int TokenCache::fetches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fetches_;
}

namespace {
// A changed secret (rotated in the configuration) must not be served the old secret's token.
std::string cache_key(const TokenSettings& s) {
  return s.token_url + "\n" + s.client_id + "\n" + s.scope + "\n" + sha256_hex(s.client_secret);
}
}  // namespace

void TokenCache::invalidate(const TokenSettings& s) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(cache_key(s));
  if (it != entries_.end()) it->second.refresh_at = 0;
}

TokenResult TokenCache::get(const TokenSettings& s, const Clock& clock, bool force) {
  const std::string k = cache_key(s);
  std::unique_lock<std::mutex> lock(mu_);
  Entry& e = entries_[k];  // std::map: the reference stays valid while other keys come and go
  if (e.fetching) {
    // Another caller is asking for this token: take its result rather than ask again.
    uint64_t seen = e.generation;
    done_.wait(lock, [&] { return e.generation != seen; });
    return e.last;
  }
  if (!force && clock.now_ms() < e.refresh_at) return TokenResult{true, e.token, {}};
  e.fetching = true;
  ++fetches_;
  lock.unlock();
  Millis refresh_at = 0;
  TokenResult r = fetch(s, clock.now_ms(), refresh_at);
  lock.lock();
  if (r.ok) {
    e.token = r.token;
    e.refresh_at = refresh_at;
  }
  e.last = r;
  e.fetching = false;
  ++e.generation;
  lock.unlock();
  done_.notify_all();
  return r;
}

TokenResult TokenCache::fetch(const TokenSettings& s, Millis now, Millis& refresh_at) {
  CURL* h = curl_easy_init();
  if (h == nullptr) {
    return TokenResult{false, {}, Outcome::retry("oauth2", 0, "curl_easy_init failed")};
  }
  std::string form =
      "client_id=" + url_escape(h, s.client_id) + "&scope=" + url_escape(h, s.scope) +
      "&client_secret=" + url_escape(h, s.client_secret) + "&grant_type=client_credentials";
  HttpAnswer a =
      http_exchange(h, "POST", s.token_url,
                    {"Content-Type: application/x-www-form-urlencoded", "Accept: application/json"},
                    form, s.transfer, HttpAuth{}, Send::Idempotent, 64 * 1024);
  curl_easy_cleanup(h);
  if (a.rc != CURLE_OK) {
    return TokenResult{false, {}, network_failure(a.rc, "the token endpoint " + s.token_url)};
  }
  return read_token_answer(a.status, a.body, now, refresh_at);
}

TokenResult read_token_answer(long status, const std::string& body, Millis now,
                              Millis& refresh_at) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (status == 200 && j.is_object() && j.contains("access_token") &&
      j["access_token"].is_string()) {
    // A lifetime in seconds, a number or its text; anything else (or absurd) is an hour, a
    // non-positive one a minute: bounded to a day so no hostile answer overflows the clock.
    int64_t life_s = 3600;
    const nlohmann::json& in = j["expires_in"];
    if (in.is_number_integer()) {
      life_s = in.is_number_unsigned() && in.get<uint64_t>() > 86400 ? 86400 : in.get<int64_t>();
    } else if (in.is_number_float()) {
      double d = in.get<double>();
      life_s = d > 0 && d < 86400 ? static_cast<int64_t>(d) : (d >= 86400 ? 86400 : 0);
    } else if (in.is_string()) {
      const std::string& t = in.get_ref<const std::string&>();
      if (!t.empty() && t.size() <= 9 && t.find_first_not_of("0123456789") == std::string::npos) {
        life_s = std::stoll(t);
      }
    }
    life_s = std::min<int64_t>(life_s, 86400);
    if (life_s <= 0) life_s = 60;
    int64_t margin_ms = std::min<int64_t>(life_s * 1000 / 5, 300000);
    refresh_at = now + life_s * 1000 - margin_ms;
    return TokenResult{true, j["access_token"].get<std::string>(), {}};
  }
  if (status == 429 || status >= 500) {
    Outcome o = Outcome::retry(
        "oauth2", static_cast<int>(status),
        "the token endpoint answered HTTP " + std::to_string(status) + ": will try again");
    o.excerpt = excerpt(body);
    return TokenResult{false, {}, o};
  }
  std::string err = j.is_object() && j.contains("error") && j["error"].is_string()
                        ? j["error"].get<std::string>()
                        : std::string();
  std::string fix;
  if (err == "invalid_client" || err == "unauthorized_client") {
    fix =
        "check client_id and client_secret (the secret may have expired: create a new one in "
        "the app registration and update the configuration)";
  } else if (err == "invalid_scope") {
    fix =
        "check scope: it must be the resource's .default scope (Graph: "
        "https://graph.microsoft.com/.default, Exchange Online EWS: "
        "https://outlook.office365.com/.default)";
  } else if (err == "invalid_request" || err == "invalid_tenant" || status == 404) {
    fix = "check tenant / token_url (the tenant id or domain may be wrong)";
  } else {
    fix = "check the app registration (client id, secret, tenant) and its admin consent";
  }
  Outcome o = Outcome::reject("config", static_cast<int>(status),
                              "the token endpoint refused the client credentials (HTTP " +
                                  std::to_string(status) +
                                  (err.empty() ? std::string() : ", " + err) + "): " + fix);
  o.excerpt = excerpt(body);
  return TokenResult{false, {}, o};
}

TokenCache& shared_token_cache() {
  static TokenCache cache;
  return cache;
}

Status probe_server(bool oauth, const TokenSettings& token, const Clock& clock,
                    const std::string& url, const CurlTransfer& transfer) {
  if (oauth) {
    TokenResult t = shared_token_cache().get(token, clock, true);
    if (!t.ok) return Status::failure(502, "jeton refusé", t.failure.text);
  }
  return probe_connection(url, transfer);
}

}  // namespace relais::calendar
