// The function library of the mapping language. Each function evaluates its own arguments
// (so if/coalesce/default are lazy) and reports run-time failures through EvalContext::fail.
#include <openssl/evp.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <unordered_map>

#include <phonenumbers/phonenumberutil.h>

#include "core/crypto.h"
#include "core/pseudonym.h"
#include "mappings/datetime.h"
#include "mappings/expr.h"
#include "mappings/text.h"

namespace relais::mappings::detail {

namespace {

using Impl = json (*)(const CallNode&, EvalContext&);

const char kDefaultZone[] = "Europe/Paris";

const std::string* str(const json& v) {
  return v.is_string() ? &v.get_ref<const std::string&>() : nullptr;
}

// ---- compile-time checks --------------------------------------------------------------------

const json* const_arg(const CallNode& n, size_t i) {
  return i < n.args.size() ? n.args[i]->constant() : nullptr;
}

std::shared_ptr<const TimeZone> default_zone(const CallNode& n) {
  auto z = TimeZone::get(kDefaultZone);
  if (!z)
    throw ExprError(n.offset, std::string("time-zone data for ") + kDefaultZone +
                                  " not found (is the tzdata package installed?)");
  return z;
}

// The zone argument at index K: resolved now when literal or absent (Europe/Paris).
template <size_t K>
void check_zone(CallNode& n, const CompileScope&) {
  if (n.args.size() <= K) {
    n.zone = default_zone(n);
    return;
  }
  if (const json* c = const_arg(n, K)) {
    if (!c->is_string() || !(n.zone = TimeZone::get(c->get<std::string>())))
      throw ExprError(n.arg_offsets[K], "unknown time zone " + c->dump() +
                                            " (use names like 'Europe/Paris' or 'UTC')");
  }
}

template <size_t K, bool Parse>
void check_pattern(CallNode& n, const CompileScope& s) {
  check_zone<K + 1>(n, s);
  if (const json* c = const_arg(n, K)) {
    std::string err;
    if (!c->is_string()) throw ExprError(n.arg_offsets[K], "the date pattern must be text");
    if (!validate_pattern(c->get<std::string>(), Parse, err))
      throw ExprError(n.arg_offsets[K], err);
    n.pattern = c->get<std::string>();
  }
}

void check_lookup(CallNode& n, const CompileScope& s) {
  const json* c = const_arg(n, 0);
  if (!c || !c->is_string())
    throw ExprError(n.arg_offsets[0], "the table name must be written as text, e.g. 'cms'");
  const std::string& name = c->get_ref<const std::string&>();
  n.table = s.tables ? s.tables->table(name) : nullptr;
  if (!n.table) {
    std::string known;
    if (s.tables)
      for (const auto& t : s.tables->names()) known += (known.empty() ? "" : ", ") + t;
    throw ExprError(n.arg_offsets[0],
                    "unknown table '" + name + "'" +
                        (known.empty() ? " (no tables loaded)" : " (known: " + known + ")"));
  }
  if (n.args.size() > 2) {
    if (const json* f = const_arg(n, 2)) {
      if (!f->is_string()) throw ExprError(n.arg_offsets[2], "the field name must be text");
      n.field = f->get<std::string>();
      const auto& cols = n.table->columns;
      if (cols.empty())
        throw ExprError(n.arg_offsets[2], "table '" + name +
                                              "' holds single values: call lookup('" + name +
                                              "', key) without a field");
      if (std::find(cols.begin(), cols.end(), n.field) == cols.end()) {
        std::string known;
        for (const auto& col : cols) known += (known.empty() ? "" : ", ") + col;
        throw ExprError(n.arg_offsets[2], "table '" + name + "' has no field '" + n.field +
                                              "' (fields: " + known + ")");
      }
    }
  }
}

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

void check_region(CallNode& n, const CompileScope&) {
  if (const json* c = const_arg(n, 1)) {
    if (!c->is_string() ||
        PhoneNumberUtil::GetInstance()->GetCountryCodeForRegion(c->get<std::string>()) == 0)
      throw ExprError(n.arg_offsets[1],
                      "unknown phone region " + c->dump() + " (use ISO codes like 'FR', 'RE')");
  }
}

bool parse_uuid(const std::string& s, unsigned char out[16]) {
  std::string hex;
  for (char c : s)
    if (c != '-') hex.push_back(c);
  if (hex.size() != 32) return false;
  for (size_t i = 0; i < 16; ++i) {
    unsigned v = 0;
    if (std::sscanf(hex.c_str() + 2 * i, "%2x", &v) != 1) return false;
    out[i] = static_cast<unsigned char>(v);
  }
  return true;
}

bool uuid_namespace(const std::string& s, unsigned char out[16]) {
  // RFC 4122 appendix C
  if (s == "dns") return parse_uuid("6ba7b810-9dad-11d1-80b4-00c04fd430c8", out);
  if (s == "url") return parse_uuid("6ba7b811-9dad-11d1-80b4-00c04fd430c8", out);
  if (s == "oid") return parse_uuid("6ba7b812-9dad-11d1-80b4-00c04fd430c8", out);
  if (s == "x500") return parse_uuid("6ba7b814-9dad-11d1-80b4-00c04fd430c8", out);
  return parse_uuid(s, out);
}

void check_uuid(CallNode& n, const CompileScope&) {
  if (const json* c = const_arg(n, 0)) {
    unsigned char b[16];
    if (!c->is_string() || !uuid_namespace(c->get<std::string>(), b))
      throw ExprError(n.arg_offsets[0],
                      "the UUID namespace must be 'dns', 'url', 'oid', 'x500' "
                      "or a UUID like '6ba7b810-9dad-11d1-80b4-00c04fd430c8'");
    n.pattern.assign(reinterpret_cast<const char*>(b), 16);
  }
}

// ---- shared helpers -------------------------------------------------------------------------

// Evaluates the zone argument K (already resolved when literal or absent).
const TimeZone* zone_of(const CallNode& n, EvalContext& ctx, size_t k,
                        std::shared_ptr<const TimeZone>& hold) {
  if (n.zone) return n.zone.get();
  json v = n.arg(k, ctx);
  if (v.is_string()) hold = TimeZone::get(v.get<std::string>());
  if (!hold) {
    ctx.fail("unknown time zone '" + to_text(v) + "'", n.args[k]->text);
    return nullptr;
  }
  return hold.get();
}

struct Instant {
  int64_t utc = 0;
  bool date_only = false;
  int64_t local_days = 0;  // for date_only values
};

bool read_instant(const CallNode& n, EvalContext& ctx, const json& v, const TimeZone& tz,
                  Instant& out, size_t arg = 0) {
  ParsedTime p;
  const std::string* s = str(v);
  if (!s || !parse_iso(*s, p)) {
    ctx.fail("'" + to_text(v) +
                 "' is not a date (expected ISO like 2019-05-17 or "
                 "2019-05-17T10:00:00+02:00)",
             arg < n.args.size() ? std::string_view(n.args[arg]->text) : n.value_path());
    return false;
  }
  out.date_only = !p.has_time;
  out.local_days = p.local / 86400;
  out.utc = to_utc(p, tz);
  return true;
}

std::string iso_in(int64_t utc, const TimeZone& tz) {
  return format_iso(utc, tz.offset_at_utc(utc), false);
}

std::string iso_date(int64_t days) {
  CivilDate c = civil_from_days(days);
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u", static_cast<long long>(c.year), c.month,
                c.day);
  return buf;
}

bool to_number(const json& v, double& out) {
  if (v.is_number()) {
    out = v.get<double>();
    return true;
  }
  if (const std::string* s = str(v)) {
    std::string t = text::trim(*s);
    for (char& c : t)
      if (c == ',') c = '.';
    if (t.empty()) return false;
    char* end = nullptr;
    out = std::strtod(t.c_str(), &end);
    return end && *end == '\0';
  }
  if (v.is_boolean()) {
    out = v.get<bool>() ? 1 : 0;
    return true;
  }
  return false;
}

json number_json(double d) {
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15)
    return json(static_cast<int64_t>(d));
  return json(d);
}

long long int_arg(const CallNode& n, EvalContext& ctx, size_t i, long long def) {
  if (i >= n.args.size()) return def;
  json v = n.arg(i, ctx);
  double d;
  if (!to_number(v, d)) {
    ctx.fail("'" + to_text(v) + "' is not a number", n.args[i]->text);
    return def;
  }
  return static_cast<long long>(d);
}

std::string str_arg(const CallNode& n, EvalContext& ctx, size_t i, const char* def) {
  if (i >= n.args.size()) return def;
  return to_text(n.arg(i, ctx));
}

// Applies a string -> string function; null stays null.
template <std::string (*F)(std::string_view)>
json text1(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (v.is_null()) return v;
  if (const std::string* s = str(v)) return json(F(*s));
  return json(F(to_text(v)));
}

std::string trim_sv(std::string_view s) {
  return text::trim(s);
}

// ---- phone numbers --------------------------------------------------------------------------

struct PhoneInfo {
  bool valid = false;
  bool mobile = false;
  std::string e164;
  std::string national;
};

// libphonenumber parsing is costly (regular expressions), so results are memoised per thread.
const PhoneInfo& phone_info(const std::string& raw, const std::string& region) {
  thread_local std::unordered_map<std::string, PhoneInfo> cache;
  std::string key = region;
  key.push_back('\0');
  key += raw;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (cache.size() >= 4096) cache.clear();
  PhoneInfo info;
  const PhoneNumberUtil* u = PhoneNumberUtil::GetInstance();
  PhoneNumber pn;
  if (u->Parse(raw, region, &pn) == PhoneNumberUtil::NO_PARSING_ERROR && u->IsValidNumber(pn)) {
    info.valid = true;
    auto type = u->GetNumberType(pn);
    info.mobile = type == PhoneNumberUtil::MOBILE || type == PhoneNumberUtil::FIXED_LINE_OR_MOBILE;
    u->Format(pn, PhoneNumberUtil::E164, &info.e164);
    u->Format(pn, PhoneNumberUtil::NATIONAL, &info.national);
  }
  return cache.emplace(std::move(key), std::move(info)).first->second;
}

// nullptr when the value is empty (result null) or on failure (ctx failed when strict).
const PhoneInfo* phone_of(const CallNode& n, EvalContext& ctx, bool strict) {
  json v = n.arg(0, ctx);
  if (is_empty(v)) return nullptr;
  std::string region = n.args.size() > 1 ? to_text(n.arg(1, ctx)) : "FR";
  const PhoneInfo& info = phone_info(to_text(v), region);
  if (!info.valid && strict) {
    ctx.fail("invalid phone number '" + to_text(v) + "' for region " + region, n.value_path());
    return nullptr;
  }
  return &info;
}

// ---- hashing --------------------------------------------------------------------------------

const EVP_MD* md(const char* name) {
  static EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  static EVP_MD* sha1 = EVP_MD_fetch(nullptr, "SHA1", nullptr);
  return std::strcmp(name, "SHA256") == 0 ? sha256 : sha1;
}

// One digest context per thread, reused (EVP_Digest allocates one per call).
bool digest(const char* alg, const std::string& data, unsigned char* out, unsigned int* len) {
  struct Ctx {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Ctx c;
  return c.ctx && EVP_DigestInit_ex2(c.ctx, md(alg), nullptr) &&
         EVP_DigestUpdate(c.ctx, data.data(), data.size()) && EVP_DigestFinal_ex(c.ctx, out, len);
}

// ---- implementations ------------------------------------------------------------------------

json f_if(const CallNode& n, EvalContext& ctx) {
  if (truthy(n.arg(0, ctx))) return n.arg(1, ctx);
  return n.args.size() > 2 ? n.arg(2, ctx) : json();
}

json f_coalesce(const CallNode& n, EvalContext& ctx) {
  for (size_t i = 0; i < n.args.size(); ++i) {
    json v = n.arg(i, ctx);
    if (!is_empty(v)) return v;
  }
  return json();
}

json f_default(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  return is_empty(v) ? n.arg(1, ctx) : v;
}

json f_required(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (is_empty(v))
    ctx.fail(
        n.args.size() > 1 ? to_text(n.arg(1, ctx)) : std::string("a required value is missing"),
        n.value_path());
  return v;
}

json f_is_empty(const CallNode& n, EvalContext& ctx) {
  return json(is_empty(n.arg(0, ctx)));
}
json f_present(const CallNode& n, EvalContext& ctx) {
  return json(!is_empty(n.arg(0, ctx)));
}

json f_case(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  size_t i = 1;
  for (; i + 1 < n.args.size(); i += 2) {
    json k = n.arg(i, ctx);
    if (v == k || (v.is_number() && k.is_number() && v.get<double>() == k.get<double>()))
      return n.arg(i + 1, ctx);
  }
  return i < n.args.size() ? n.arg(i, ctx) : json();
}

json f_one_of(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  for (size_t i = 1; i < n.args.size(); ++i)
    if (v == n.arg(i, ctx)) return json(true);
  return json(false);
}

json f_string(const CallNode& n, EvalContext& ctx) {
  return json(to_text(n.arg(0, ctx)));
}

json f_number(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (is_empty(v)) return json();
  double d;
  if (!to_number(v, d)) {
    ctx.fail("'" + to_text(v) + "' is not a number", n.value_path());
    return json();
  }
  return number_json(d);
}

json f_integer(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (is_empty(v)) return json();
  double d;
  if (!to_number(v, d)) {
    ctx.fail("'" + to_text(v) + "' is not a number", n.value_path());
    return json();
  }
  return json(static_cast<int64_t>(std::trunc(d)));
}

json f_length(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (v.is_null()) return json(0);
  if (v.is_array() || v.is_object()) return json(v.size());
  return json(text::length(to_text(v)));
}

json f_first(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (!v.is_array()) return v;
  return v.empty() ? json() : v.front();
}

json f_last(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (!v.is_array()) return v;
  return v.empty() ? json() : v.back();
}

json f_find(const CallNode& n, EvalContext& ctx) {
  json arr = n.arg(0, ctx);
  std::string field = to_text(n.arg(1, ctx));
  json want = n.arg(2, ctx);
  if (!arr.is_array()) return json();
  for (json& el : arr) {
    if (!el.is_object()) continue;
    auto it = el.find(field);
    if (it != el.end() && *it == want) return std::move(el);
  }
  return json();
}

json f_contains(const CallNode& n, EvalContext& ctx) {
  json h = n.arg(0, ctx);
  json x = n.arg(1, ctx);
  if (h.is_array()) {
    for (const json& e : h)
      if (e == x) return json(true);
    return json(false);
  }
  if (h.is_null()) return json(false);
  return json(to_text(h).find(to_text(x)) != std::string::npos);
}

json f_starts_with(const CallNode& n, EvalContext& ctx) {
  std::string h = to_text(n.arg(0, ctx)), x = to_text(n.arg(1, ctx));
  return json(h.compare(0, x.size(), x) == 0);
}

json f_ends_with(const CallNode& n, EvalContext& ctx) {
  std::string h = to_text(n.arg(0, ctx)), x = to_text(n.arg(1, ctx));
  return json(h.size() >= x.size() && h.compare(h.size() - x.size(), x.size(), x) == 0);
}

json f_truncate(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (v.is_null()) return v;
  long long max = int_arg(n, ctx, 1, 0);
  return json(text::truncate(to_text(v), max, str_arg(n, ctx, 2, "")));
}

json f_replace(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (v.is_null()) return v;
  return json(text::replace_all(to_text(v), to_text(n.arg(1, ctx)), to_text(n.arg(2, ctx))));
}

json f_concat(const CallNode& n, EvalContext& ctx) {
  std::string out;
  for (size_t i = 0; i < n.args.size(); ++i) append_text(out, n.arg(i, ctx));
  return json(std::move(out));
}

json f_join(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  std::string sep = str_arg(n, ctx, 1, "");
  if (v.is_null()) return json("");
  if (!v.is_array()) return json(to_text(v));
  std::string out;
  bool first = true;
  for (const json& e : v) {
    if (is_empty(e)) continue;
    if (!first) out += sep;
    append_text(out, e);
    first = false;
  }
  return json(std::move(out));
}

json f_split(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  json out = json::array();
  if (is_empty(v)) return out;
  std::string s = to_text(v), sep = str_arg(n, ctx, 1, ",");
  if (sep.empty()) {
    out.push_back(s);
    return out;
  }
  size_t pos = 0;
  while (true) {
    size_t f = s.find(sep, pos);
    out.push_back(s.substr(pos, f == std::string::npos ? std::string::npos : f - pos));
    if (f == std::string::npos) break;
    pos = f + sep.size();
  }
  return out;
}

template <bool Left>
json f_pad(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (v.is_null()) return v;
  long long w = int_arg(n, ctx, 1, 0);
  return json(text::pad(to_text(v), w, str_arg(n, ctx, 2, " "), Left));
}

json f_substring(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (v.is_null()) return v;
  long long start = int_arg(n, ctx, 1, 0);
  long long count = int_arg(n, ctx, 2, -1);
  return json(text::substring(to_text(v), start, count));
}

// -- dates

json f_datetime(const CallNode& n, EvalContext& ctx) {
  json d = n.arg(0, ctx);
  json t = n.arg(1, ctx);
  if (is_empty(d) || is_empty(t)) return json();
  std::shared_ptr<const TimeZone> hold;
  const TimeZone* tz = zone_of(n, ctx, 2, hold);
  if (!tz) return json();
  ParsedTime pd;
  const std::string ds = to_text(d);
  if (!parse_iso(ds.substr(0, 10), pd)) {
    ctx.fail("'" + ds + "' is not a date (expected 2019-05-17)", n.args[0]->text);
    return json();
  }
  std::string ts = to_text(t);
  // "10:00", "9:05", "10:00:30", "10h00", "10H00"
  int h = 0, m = 0, s = 0;
  size_t i = 0;
  auto num = [&](int& out) {
    size_t b = i;
    while (i < ts.size() && i - b < 2 && ts[i] >= '0' && ts[i] <= '9')
      out = out * 10 + (ts[i++] - '0');
    return i > b;
  };
  bool ok = num(h) && i < ts.size() && (ts[i] == ':' || ts[i] == 'h' || ts[i] == 'H');
  if (ok) {
    ++i;
    ok = num(m);
    if (ok && i < ts.size() && ts[i] == ':') {
      ++i;
      ok = num(s);
    }
    ok = ok && i == ts.size();
  }
  if (!ok || h > 23 || m > 59 || s > 59) {
    ctx.fail("'" + ts + "' is not a time of day (expected 10:00 or 10h00)", n.args[1]->text);
    return json();
  }
  int64_t local = pd.local + h * 3600 + m * 60 + s;
  return json(iso_in(tz->local_to_utc(local), *tz));
}

json f_parse_date(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (is_empty(v)) return json();
  std::string pattern = n.pattern.empty() ? to_text(n.arg(1, ctx)) : n.pattern;
  std::shared_ptr<const TimeZone> hold;
  const TimeZone* tz = zone_of(n, ctx, 2, hold);
  if (!tz) return json();
  ParsedTime p;
  std::string err;
  if (!parse_pattern(to_text(v), pattern, p, err)) {
    ctx.fail(err, n.value_path());
    return json();
  }
  if (!p.has_time && !p.has_offset) return json(iso_date(p.local / 86400));
  int64_t utc = to_utc(p, *tz);
  return json(iso_in(utc, *tz));
}

json f_format_date(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (is_empty(v)) return json();
  std::string pattern = n.pattern.empty() ? to_text(n.arg(1, ctx)) : n.pattern;
  std::shared_ptr<const TimeZone> hold;
  const TimeZone* tz = zone_of(n, ctx, 2, hold);
  if (!tz) return json();
  Instant in;
  if (!read_instant(n, ctx, v, *tz, in)) return json();
  if (in.date_only) in.utc = tz->local_to_utc(in.local_days * 86400);
  std::string out, err;
  if (!format_pattern(in.utc, *tz, pattern, out, err)) {
    ctx.fail(err, n.args[1]->text);
    return json();
  }
  return json(std::move(out));
}

// Absolute shift by seconds.
template <int64_t Unit>
json f_add_seconds(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (is_empty(v)) return json();
  long long k = int_arg(n, ctx, 1, 0);
  std::shared_ptr<const TimeZone> hold;
  const TimeZone* tz = zone_of(n, ctx, 2, hold);
  if (!tz || ctx.failed) return json();
  Instant in;
  if (!read_instant(n, ctx, v, *tz, in)) return json();
  return json(iso_in(in.utc + k * Unit, *tz));
}

// Calendar shift: the wall-clock time is kept across DST changes.
int64_t shift_local(int64_t local, long long months, long long days) {
  int64_t d = local / 86400;
  int64_t secs = local % 86400;
  if (secs < 0) {
    secs += 86400;
    --d;
  }
  if (months) {
    CivilDate c = civil_from_days(d);
    int64_t m0 = c.year * 12 + (c.month - 1) + months;
    int64_t y = m0 >= 0 ? m0 / 12 : (m0 - 11) / 12;
    unsigned m = static_cast<unsigned>(m0 - y * 12) + 1;
    unsigned day = std::min(c.day, days_in_month(y, m));
    d = days_from_civil(y, m, day);
  }
  return (d + days) * 86400 + secs;
}

json add_calendar(const CallNode& n, EvalContext& ctx, long long months, long long days,
                  int64_t seconds) {
  json v = n.arg(0, ctx);
  if (is_empty(v)) return json();
  std::shared_ptr<const TimeZone> hold;
  const TimeZone* tz = zone_of(n, ctx, 2, hold);
  if (!tz || ctx.failed) return json();
  Instant in;
  if (!read_instant(n, ctx, v, *tz, in)) return json();
  if (in.date_only && seconds == 0)
    return json(iso_date(shift_local(in.local_days * 86400, months, days) / 86400));
  if (in.date_only) in.utc = tz->local_to_utc(in.local_days * 86400);
  int64_t local = in.utc + tz->offset_at_utc(in.utc);
  int64_t utc = tz->local_to_utc(shift_local(local, months, days)) + seconds;
  return json(iso_in(utc, *tz));
}

json f_add_days(const CallNode& n, EvalContext& ctx) {
  long long k = int_arg(n, ctx, 1, 0);
  return ctx.failed ? json() : add_calendar(n, ctx, 0, k, 0);
}

json f_add_months(const CallNode& n, EvalContext& ctx) {
  long long k = int_arg(n, ctx, 1, 0);
  return ctx.failed ? json() : add_calendar(n, ctx, k, 0, 0);
}

// ISO-8601 durations: P1Y2M3W4DT5H6M7S, optionally negative ("-PT15M").
bool parse_duration(const std::string& s, long long& months, long long& days, int64_t& secs) {
  months = days = 0;
  secs = 0;
  size_t i = 0;
  int sign = 1;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) sign = s[i++] == '-' ? -1 : 1;
  if (i >= s.size() || (s[i] != 'P' && s[i] != 'p')) return false;
  ++i;
  bool in_time = false, any = false;
  while (i < s.size()) {
    if (s[i] == 'T' || s[i] == 't') {
      in_time = true;
      ++i;
      continue;
    }
    size_t b = i;
    long long v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0');
    if (i == b || i >= s.size()) return false;
    char u = static_cast<char>(std::toupper(static_cast<unsigned char>(s[i++])));
    any = true;
    if (!in_time && u == 'Y')
      months += 12 * v;
    else if (!in_time && u == 'M')
      months += v;
    else if (!in_time && u == 'W')
      days += 7 * v;
    else if (!in_time && u == 'D')
      days += v;
    else if (in_time && u == 'H')
      secs += 3600 * v;
    else if (in_time && u == 'M')
      secs += 60 * v;
    else if (in_time && u == 'S')
      secs += v;
    else
      return false;
  }
  months *= sign;
  days *= sign;
  secs *= sign;
  return any;
}

void check_duration(CallNode& n, const CompileScope& s) {
  check_zone<2>(n, s);
  if (const json* c = const_arg(n, 1)) {
    long long m, d;
    int64_t sec;
    if (!c->is_string() || !parse_duration(c->get<std::string>(), m, d, sec))
      throw ExprError(n.arg_offsets[1], "invalid duration " + c->dump() +
                                            " (ISO 8601, e.g. 'PT30M', 'P1D', '-PT2H')");
  }
}

json f_add_duration(const CallNode& n, EvalContext& ctx) {
  json d = n.arg(1, ctx);
  long long months, days;
  int64_t secs;
  if (!parse_duration(to_text(d), months, days, secs)) {
    ctx.fail("invalid duration '" + to_text(d) + "'", n.args[1]->text);
    return json();
  }
  return add_calendar(n, ctx, months, days, secs);
}

json f_to_timezone(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (is_empty(v)) return json();
  std::shared_ptr<const TimeZone> hold;
  const TimeZone* tz = zone_of(n, ctx, 1, hold);
  if (!tz) return json();
  auto paris = TimeZone::get(kDefaultZone);
  Instant in;
  if (!read_instant(n, ctx, v, paris ? *paris : *tz, in)) return json();
  return json(iso_in(in.utc, *tz));
}

json f_to_utc(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (is_empty(v)) return json();
  Instant in;
  if (!read_instant(n, ctx, v, *n.zone, in)) return json();
  return json(format_iso(in.utc, 0, true));
}

json f_local_datetime(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (is_empty(v)) return json();
  std::shared_ptr<const TimeZone> hold;
  const TimeZone* tz = zone_of(n, ctx, 1, hold);
  if (!tz) return json();
  Instant in;
  if (!read_instant(n, ctx, v, *tz, in)) return json();
  return json(format_local(in.utc, tz->offset_at_utc(in.utc)));
}

json f_minutes_between(const CallNode& n, EvalContext& ctx) {
  json a = n.arg(0, ctx), b = n.arg(1, ctx);
  if (is_empty(a) || is_empty(b)) return json();
  Instant x, y;
  if (!read_instant(n, ctx, a, *n.zone, x, 0) || !read_instant(n, ctx, b, *n.zone, y, 1))
    return json();
  return json((y.utc - x.utc) / 60);
}

// -- numbers

json number_or_fail(const CallNode& n, EvalContext& ctx, size_t i, bool& ok) {
  json v = n.arg(i, ctx);
  ok = false;
  if (is_empty(v)) return json();
  double d;
  if (!to_number(v, d)) {
    ctx.fail("'" + to_text(v) + "' is not a number", n.args[i]->text);
    return json();
  }
  ok = true;
  return json(d);
}

template <double (*F)(double)>
json f_math1(const CallNode& n, EvalContext& ctx) {
  bool ok;
  json v = number_or_fail(n, ctx, 0, ok);
  return ok ? number_json(F(v.get<double>())) : json();
}

json f_round(const CallNode& n, EvalContext& ctx) {
  bool ok;
  json v = number_or_fail(n, ctx, 0, ok);
  if (!ok) return json();
  long long digits = int_arg(n, ctx, 1, 0);
  double p = std::pow(10.0, static_cast<double>(digits));
  return number_json(std::round(v.get<double>() * p) / p);
}

template <bool Max>
json f_minmax(const CallNode& n, EvalContext& ctx) {
  bool have = false;
  double best = 0;
  for (size_t i = 0; i < n.args.size(); ++i) {
    json v = n.arg(i, ctx);
    std::vector<json> vals;
    if (v.is_array())
      vals.assign(v.begin(), v.end());
    else
      vals.push_back(std::move(v));
    for (const json& x : vals) {
      double d;
      if (is_empty(x) || !to_number(x, d)) continue;
      if (!have || (Max ? d > best : d < best)) best = d;
      have = true;
    }
  }
  return have ? number_json(best) : json();
}

json f_format_number(const CallNode& n, EvalContext& ctx) {
  bool ok;
  json v = number_or_fail(n, ctx, 0, ok);
  if (!ok) return json();
  long long decimals = std::clamp(int_arg(n, ctx, 1, 0), 0LL, 15LL);
  std::string dec = str_arg(n, ctx, 2, ","), thousands = str_arg(n, ctx, 3, "");
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(decimals), v.get<double>());
  std::string s = buf;
  size_t dot = s.find('.');
  std::string ip = s.substr(0, dot), fp = dot == std::string::npos ? "" : s.substr(dot + 1);
  std::string sign;
  if (!ip.empty() && ip[0] == '-') {
    sign = "-";
    ip.erase(0, 1);
  }
  std::string grouped;
  for (size_t i = 0; i < ip.size(); ++i) {
    if (i > 0 && (ip.size() - i) % 3 == 0) grouped += thousands;
    grouped.push_back(ip[i]);
  }
  return json(sign + grouped + (fp.empty() ? "" : dec + fp));
}

// -- phones

json f_phone_e164(const CallNode& n, EvalContext& ctx) {
  const PhoneInfo* p = phone_of(n, ctx, true);
  return p ? json(p->e164) : json();
}
json f_phone_national(const CallNode& n, EvalContext& ctx) {
  const PhoneInfo* p = phone_of(n, ctx, true);
  return p ? json(p->national) : json();
}
json f_phone_is_mobile(const CallNode& n, EvalContext& ctx) {
  const PhoneInfo* p = phone_of(n, ctx, false);
  return json(p && p->valid && p->mobile);
}
json f_phone_is_valid(const CallNode& n, EvalContext& ctx) {
  const PhoneInfo* p = phone_of(n, ctx, false);
  return json(p && p->valid);
}

// -- tables

json f_lookup(const CallNode& n, EvalContext& ctx) {
  json k = n.arg(1, ctx);
  std::string key = to_text(k);
  const json* row = n.table->find(key);
  if (!row) {
    ctx.fail("no entry '" + key + "' in table '" + n.table->name + "' and the table has no default",
             n.args[1]->text);
    return json();
  }
  if (n.args.size() < 3) return *row;
  std::string field = n.field.empty() ? to_text(n.arg(2, ctx)) : n.field;
  if (!row->is_object()) return json();
  auto it = row->find(field);
  return it == row->end() ? json() : *it;
}

json f_has_key(const CallNode& n, EvalContext& ctx) {
  std::string key = to_text(n.arg(1, ctx));
  return json(n.table->rows.count(key) > 0);
}

// -- hashes, ids

json f_sha256(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (v.is_null()) return v;
  std::string s = to_text(v);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!digest("SHA256", s, out, &len)) {
    ctx.fail("sha256 failed", n.value_path());
    return json();
  }
  return json(to_hex(out, len));
}

// A keyed pseudonym (core/pseudonym.h): HMAC-SHA256 under the installation's pseudonym key,
// plain SHA-256 when none is configured.
json f_pseudonym(const CallNode& n, EvalContext& ctx) {
  json v = n.arg(0, ctx);
  if (v.is_null()) return v;
  std::string out = pseudonym_hex(to_text(v));
  if (out.empty()) ctx.fail("pseudonym failed", n.value_path());
  return out.empty() ? json() : json(out);
}

json f_uuid_v5(const CallNode& n, EvalContext& ctx) {
  unsigned char ns[16];
  if (n.pattern.size() == 16) {
    std::memcpy(ns, n.pattern.data(), 16);
  } else {
    json v = n.arg(0, ctx);
    if (!uuid_namespace(to_text(v), ns)) {
      ctx.fail("'" + to_text(v) + "' is not a UUID namespace", n.value_path());
      return json();
    }
  }
  json name = n.arg(1, ctx);
  std::string data(reinterpret_cast<const char*>(ns), 16);
  append_text(data, name);
  unsigned char h[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!digest("SHA1", data, h, &len)) {
    ctx.fail("uuid_v5 failed", n.value_path());
    return json();
  }
  h[6] = static_cast<unsigned char>((h[6] & 0x0F) | 0x50);
  h[8] = static_cast<unsigned char>((h[8] & 0x3F) | 0x80);
  std::string x = to_hex(h, 16);
  return json(x.substr(0, 8) + "-" + x.substr(8, 4) + "-" + x.substr(12, 4) + "-" +
              x.substr(16, 4) + "-" + x.substr(20, 12));
}

std::vector<FunctionSpec> build_registry() {
  return {
      // logic and values
      {"if", 2, 3, f_if, nullptr, "if(condition, then, else)"},
      {"coalesce", 1, -1, f_coalesce, nullptr, "coalesce(a, b, ...)"},
      {"default", 2, 2, f_default, nullptr, "default(value, fallback)"},
      {"required", 1, 2, f_required, nullptr, "required(value, 'message')"},
      {"is_empty", 1, 1, f_is_empty, nullptr, "is_empty(value)"},
      {"present", 1, 1, f_present, nullptr, "present(value)"},
      {"case", 3, -1, f_case, nullptr, "case(value, key1, result1, ..., [otherwise])"},
      {"one_of", 2, -1, f_one_of, nullptr, "one_of(value, a, b, ...)"},
      {"string", 1, 1, f_string, nullptr, "string(value)"},
      {"length", 1, 1, f_length, nullptr, "length(text or list)"},
      {"first", 1, 1, f_first, nullptr, "first(list)"},
      {"last", 1, 1, f_last, nullptr, "last(list)"},
      {"find", 3, 3, f_find, nullptr, "find(list, 'field', value)"},
      {"contains", 2, 2, f_contains, nullptr, "contains(text or list, part)"},
      {"starts_with", 2, 2, f_starts_with, nullptr, "starts_with(text, prefix)"},
      {"ends_with", 2, 2, f_ends_with, nullptr, "ends_with(text, suffix)"},
      // text
      {"upper", 1, 1, text1<text::upper>, nullptr, "upper(text)"},
      {"lower", 1, 1, text1<text::lower>, nullptr, "lower(text)"},
      {"trim", 1, 1, text1<trim_sv>, nullptr, "trim(text)"},
      {"capitalize", 1, 1, text1<text::capitalize>, nullptr, "capitalize(text)"},
      {"capitalise", 1, 1, text1<text::capitalize>, nullptr, "capitalise(text)"},
      {"strip_accents", 1, 1, text1<text::strip_accents>, nullptr, "strip_accents(text)"},
      {"gsm7", 1, 1, text1<text::gsm7>, nullptr, "gsm7(text)"},
      {"truncate", 2, 3, f_truncate, nullptr, "truncate(text, max, [suffix])"},
      {"replace", 3, 3, f_replace, nullptr, "replace(text, search, replacement)"},
      {"concat", 1, -1, f_concat, nullptr, "concat(a, b, ...)"},
      {"join", 1, 2, f_join, nullptr, "join(list, [separator])"},
      {"split", 1, 2, f_split, nullptr, "split(text, [separator])"},
      {"pad_left", 2, 3, f_pad<true>, nullptr, "pad_left(text, width, [fill])"},
      {"pad_right", 2, 3, f_pad<false>, nullptr, "pad_right(text, width, [fill])"},
      {"substring", 2, 3, f_substring, nullptr, "substring(text, start, [count])"},
      // dates
      {"datetime", 2, 3, f_datetime, check_zone<2>, "datetime(date, time, [zone])"},
      {"parse_date", 2, 3, f_parse_date, check_pattern<1, true>,
       "parse_date(text, 'pattern', [zone])"},
      {"format_date", 2, 3, f_format_date, check_pattern<1, false>,
       "format_date(date, 'pattern', [zone])"},
      {"add_minutes", 2, 3, f_add_seconds<60>, check_zone<2>, "add_minutes(date, n, [zone])"},
      {"add_hours", 2, 3, f_add_seconds<3600>, check_zone<2>, "add_hours(date, n, [zone])"},
      {"add_days", 2, 3, f_add_days, check_zone<2>, "add_days(date, n, [zone])"},
      {"add_months", 2, 3, f_add_months, check_zone<2>, "add_months(date, n, [zone])"},
      {"add_duration", 2, 3, f_add_duration, check_duration, "add_duration(date, 'PT30M', [zone])"},
      {"to_timezone", 2, 2, f_to_timezone, check_zone<1>, "to_timezone(date, 'zone')"},
      {"to_utc", 1, 1, f_to_utc, check_zone<1>, "to_utc(date)"},
      {"local_datetime", 1, 2, f_local_datetime, check_zone<1>, "local_datetime(date, [zone])"},
      {"minutes_between", 2, 2, f_minutes_between, check_zone<2>, "minutes_between(start, end)"},
      // numbers
      {"number", 1, 1, f_number, nullptr, "number(value)"},
      {"integer", 1, 1, f_integer, nullptr, "integer(value)"},
      {"round", 1, 2, f_round, nullptr, "round(number, [decimals])"},
      {"floor", 1, 1, f_math1<std::floor>, nullptr, "floor(number)"},
      {"ceil", 1, 1, f_math1<std::ceil>, nullptr, "ceil(number)"},
      {"abs", 1, 1, f_math1<std::fabs>, nullptr, "abs(number)"},
      {"min", 1, -1, f_minmax<false>, nullptr, "min(a, b, ...)"},
      {"max", 1, -1, f_minmax<true>, nullptr, "max(a, b, ...)"},
      {"format_number", 2, 4, f_format_number, nullptr,
       "format_number(number, decimals, [decimal separator], [thousands separator])"},
      // phones
      {"phone_e164", 1, 2, f_phone_e164, check_region, "phone_e164(number, ['FR'])"},
      {"phone_national", 1, 2, f_phone_national, check_region, "phone_national(number, ['FR'])"},
      {"phone_is_mobile", 1, 2, f_phone_is_mobile, check_region, "phone_is_mobile(number, ['FR'])"},
      {"phone_is_valid", 1, 2, f_phone_is_valid, check_region, "phone_is_valid(number, ['FR'])"},
      // tables
      {"lookup", 2, 3, f_lookup, check_lookup, "lookup('table', key, ['field'])"},
      {"has_key", 2, 2, f_has_key, check_lookup, "has_key('table', key)"},
      // ids
      {"sha256", 1, 1, f_sha256, nullptr, "sha256(text)"},
      {"pseudonym", 1, 1, f_pseudonym, nullptr, "pseudonym(text)"},
      {"uuid_v5", 2, 2, f_uuid_v5, check_uuid, "uuid_v5('namespace', name)"},
  };
}

}  // namespace

const std::vector<FunctionSpec>& all_functions() {
  static const std::vector<FunctionSpec> registry = build_registry();
  return registry;
}

const FunctionSpec* find_function(std::string_view name) {
  static const std::unordered_map<std::string_view, const FunctionSpec*> index = [] {
    std::unordered_map<std::string_view, const FunctionSpec*> m;
    for (const auto& f : all_functions()) m.emplace(f.name, &f);
    return m;
  }();
  auto it = index.find(name);
  return it == index.end() ? nullptr : it->second;
}

}  // namespace relais::mappings::detail
