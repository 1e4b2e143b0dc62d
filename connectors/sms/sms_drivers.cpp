#include "connectors/sms/sms_drivers.h"

#include <openssl/evp.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <functional>
#include <map>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "connectors/http/http_connector.h"
#include "core/crypto.h"
#include "core/json_template.h"

namespace relais::sms {
namespace {

using F = FieldType;

std::string excerpt(const std::string& body) {
  std::string s = body.substr(0, 200);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// Kannel smsbox, /cgi-bin/sendsms (Kannel User Guide, "Sending SMS via HTTP"): GET with
// username, password, to, text, from, charset, coding, dlr-mask, dlr-url and smsc.
class KannelDriver final : public SmsDriver {
 public:
  explicit KannelDriver(const ConfigView& c)
      : url_(c.str("url")),
        user_(c.str("username")),
        password_(c.str("password")),
        smsc_(c.str("smsc")),
        dlr_url_(c.str("dlr_url")),
        dlr_mask_(c.integer("dlr_mask")) {}
  const char* name() const override { return "kannel"; }

  HttpCall build(const SmsToSend& sms, Millis) const override {
    HttpCall call;
    std::string q = "username=" + url_encode(user_) + "&password=" + url_encode(password_) +
                    "&to=" + url_encode(sms.to) + "&text=" + url_encode(sms.text) +
                    "&charset=UTF-8&coding=" + (sms.ucs2 ? "2" : "0");
    if (!sms.sender.empty()) q += "&from=" + url_encode(sms.sender);
    if (!smsc_.empty()) q += "&smsc=" + url_encode(smsc_);
    if (!dlr_url_.empty() && dlr_mask_ > 0) {
      // Kannel replaces %d in the dlr-url by the report type when it calls it back.
      std::string dlr = dlr_url_ + (dlr_url_.find('?') == std::string::npos ? "?" : "&") +
                        "ref=" + url_encode(sms.reference) + "&status=%d";
      q += "&dlr-mask=" + std::to_string(dlr_mask_) + "&dlr-url=" + url_encode(dlr);
    }
    call.url = url_ + (url_.find('?') == std::string::npos ? "?" : "&") + q;
    return call;
  }

  GatewayAnswer classify(long status, const std::string& body) const override {
    GatewayAnswer a;
    std::string b = excerpt(body);
    if (status == 202 || status == 200) {
      if (b.rfind("3:", 0) == 0) {
        a.state = "queued";
        a.text = "Kannel: " + b + " (the SMSC is not connected; Kannel sends it later)";
      } else {
        a.state = "accepted";
        a.text = "Kannel: " + (b.empty() ? std::string("accepted") : b);
      }
      return a;
    }
    if (status == 503) {
      a.kind = Outcome::Kind::Retry;
      a.text = "Kannel HTTP 503: " + b + " (temporary failure, will try again)";
      return a;
    }
    a.kind = classify_http_status(status) == Outcome::Kind::Retry ? Outcome::Kind::Retry
                                                                  : Outcome::Kind::Reject;
    a.text = "Kannel HTTP " + std::to_string(status) + ": " + b;
    return a;
  }

 private:
  std::string url_, user_, password_, smsc_, dlr_url_;
  int64_t dlr_mask_;
};

// OVH: POST {endpoint}/sms/{service}/jobs with a JSON body, signed with the application
// secret and consumer key (X-Ovh-Application, X-Ovh-Consumer, X-Ovh-Timestamp,
// X-Ovh-Signature).
class OvhDriver final : public SmsDriver {
 public:
  explicit OvhDriver(const ConfigView& c)
      : endpoint_(c.str("url")),
        service_(c.str("ovh_service")),
        ak_(c.str("ovh_application_key")),
        as_(c.str("ovh_application_secret")),
        ck_(c.str("ovh_consumer_key")),
        clock_skew_s_(c.duration_ms("ovh_clock_skew") / 1000),
        sync_(c.boolean("ovh_time_sync")) {
    while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  }
  const char* name() const override { return "ovh"; }

  HttpCall build(const SmsToSend& sms, Millis now) const override {
    HttpCall call;
    call.method = "POST";
    call.url = endpoint_ + "/sms/" + url_encode(service_) + "/jobs";
    nlohmann::json body = {{"charset", "UTF-8"},
                           {"coding", sms.ucs2 ? "8bit" : "7bit"},
                           {"message", sms.text},
                           {"receivers", {sms.to}},
                           {"noStopClause", true},
                           {"priority", "high"},
                           {"senderForResponse", sms.sender.empty()},
                           {"tag", sms.client_ref.substr(0, 128)}};
    if (!sms.sender.empty()) body["sender"] = sms.sender;
    call.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    int64_t ts = now / 1000 + clock_skew_s_ + offset_s_.load();
    call.headers = {"Content-Type: application/json; charset=utf-8", "X-Ovh-Application: " + ak_,
                    "X-Ovh-Consumer: " + ck_, "X-Ovh-Timestamp: " + std::to_string(ts),
                    "X-Ovh-Signature: " + ovh_signature(as_, ck_, "POST", call.url, call.body, ts)};
    return call;
  }

  GatewayAnswer classify(long status, const std::string& body) const override {
    GatewayAnswer a;
    nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
    std::string message = j.is_object() && j.contains("message") && j["message"].is_string()
                              ? j["message"].get<std::string>()
                              : excerpt(body);
    if (status == 200) {
      if (!j.is_object() || !j.contains("ids") || !j["ids"].is_array() || j["ids"].empty()) {
        bool invalid = j.is_object() && j.contains("invalidReceivers") &&
                       j["invalidReceivers"].is_array() && !j["invalidReceivers"].empty();
        a.kind = Outcome::Kind::Reject;
        a.text = invalid ? "OVH: the receiver was refused (invalidReceivers)"
                         : "OVH: answer without an SMS id: " + excerpt(body);
        return a;
      }
      const auto& id = j["ids"][0];
      a.gateway_ref = id.is_number_integer()
                          ? std::to_string(id.get<int64_t>())
                          : id.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      a.state = "accepted";
      a.text = "OVH: job " + a.gateway_ref + " created";
      return a;
    }
    a.kind = classify_http_status(status);
    if (a.kind == Outcome::Kind::Delivered) a.kind = Outcome::Kind::Reject;  // other 2xx
    std::string code = j.is_object() && j.contains("errorCode") && j["errorCode"].is_string()
                           ? " [" + j["errorCode"].get<std::string>() + "]"
                           : "";
    a.text = "OVH HTTP " + std::to_string(status) + code + ": " + message;
    return a;
  }

 private:
  // OVH signs with its own clock: ask /auth/time once an hour and keep the difference.
  std::optional<HttpCall> time_call(Millis now) const override {
    if (!sync_ || (synced_at_.load() != 0 && now - synced_at_.load() < 3600 * 1000LL)) {
      return std::nullopt;
    }
    HttpCall call;
    call.url = endpoint_ + "/auth/time";
    return call;
  }
  void on_time_answer(long status, const std::string& body, Millis now) const override {
    synced_at_ = now;  // an unusable answer is not asked again before the hour
    if (status != 200) return;
    nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_number_integer()) return;
    offset_s_ = j.get<int64_t>() - now / 1000;
  }

  std::string endpoint_, service_, ak_, as_, ck_;
  int64_t clock_skew_s_;
  bool sync_;
  mutable std::atomic<int64_t> offset_s_{0};
  mutable std::atomic<int64_t> synced_at_{0};
};

// Fills {{name}} placeholders (to, text, sender, reference, client_ref, coding) with
// encode(value); false with the unknown name in `error`.
bool fill(const std::string& tpl, const std::map<std::string, std::string>& values,
          const std::function<std::string(const std::string&)>& encode, std::string& out,
          std::string& error) {
  out.clear();
  size_t pos = 0;
  while (true) {
    size_t b = tpl.find("{{", pos);
    if (b == std::string::npos) break;
    size_t e = tpl.find("}}", b + 2);
    if (e == std::string::npos) {
      error = "'{{' without '}}'";
      return false;
    }
    out += tpl.substr(pos, b - pos);
    std::string name = tpl.substr(b + 2, e - b - 2);
    auto it = values.find(name);
    if (it == values.end()) {
      error = "unknown placeholder {{" + name +
              "}} (to, text, sender, reference, client_ref, "
              "coding)";
      return false;
    }
    out += encode ? encode(it->second) : it->second;
    pos = e + 2;
  }
  out += tpl.substr(pos);
  return true;
}

std::map<std::string, std::string> placeholder_values(const SmsToSend& sms) {
  return {{"to", sms.to},
          {"text", sms.text},
          {"sender", sms.sender},
          {"reference", sms.reference},
          {"client_ref", sms.client_ref},
          {"coding", sms.ucs2 ? "ucs2" : "gsm7"}};
}

// Any provider with an HTTP API: URL, headers and body are templates with {{to}} {{text}}
// {{sender}} {{reference}} {{client_ref}} {{coding}}.
class TemplateDriver final : public SmsDriver {
 public:
  explicit TemplateDriver(const ConfigView& c)
      : url_(c.str("url")),
        body_(c.str("http_body")),
        method_(c.str("http_method")),
        content_type_(c.str("http_content_type")),
        headers_(c.string_map("http_headers")),
        dedup_(c.boolean("http_deduplicates")) {
    std::string err;
    if (c.has("http_ref_path") && !JsonPath::parse(c.str("http_ref_path"), ref_path_, err)) {
      throw std::runtime_error("http_ref_path: " + err);
    }
    has_ref_path_ = c.has("http_ref_path");
  }
  const char* name() const override { return "http"; }
  bool deduplicates() const override { return dedup_; }

  HttpCall build(const SmsToSend& sms, Millis) const override {
    auto values = placeholder_values(sms);
    HttpCall call;
    call.method = method_;
    std::string err;
    fill(
        url_, values, [](const std::string& v) { return url_encode(v); }, call.url, err);
    bool json = content_type_.find("json") != std::string::npos;
    fill(
        body_, values,
        [json](const std::string& v) {
          if (!json) return url_encode(v);
          std::string q =
              nlohmann::json(v).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
          return q.substr(1, q.size() - 2);
        },
        call.body, err);
    call.headers.push_back("Content-Type: " + content_type_);
    for (const auto& [k, v] : headers_) {
      std::string value;
      if (fill(v, values, {}, value, err)) call.headers.push_back(k + ": " + value);
    }
    return call;
  }

  GatewayAnswer classify(long status, const std::string& body) const override {
    GatewayAnswer a;
    a.kind = classify_http_status(status);
    a.text = "HTTP " + std::to_string(status) + ": " + excerpt(body);
    if (a.kind == Outcome::Kind::Delivered) {
      a.state = "accepted";
      if (has_ref_path_) {
        nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
        const nlohmann::json* v = j.is_discarded() ? nullptr : ref_path_.find(j);
        if (v != nullptr) {
          a.gateway_ref = v->is_string()
                              ? v->get<std::string>()
                              : v->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        }
      }
    }
    return a;
  }

 private:
  std::string url_, body_, method_, content_type_;
  std::vector<std::pair<std::string, std::string>> headers_;
  JsonPath ref_path_;
  bool has_ref_path_ = false;
  bool dedup_ = false;
};

}  // namespace

std::string url_encode(const std::string& s) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

Submission submit_sms(CURL* h, const SmsDriver& driver, const SmsToSend& sms,
                      const CurlTransfer& transfer, const Clock& clock,
                      int64_t max_retry_after_ms) {
  if (auto tc = driver.time_call(clock.now_ms())) {
    CurlCapture tcap(256);
    prepare_curl(h, tc->url, transfer, tcap);
    long tstatus = 0;
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &tstatus);
    driver.on_time_answer(tstatus, tcap.body, clock.now_ms());
  }
  HttpCall call = driver.build(sms, clock.now_ms());
  // A gateway that refuses a second SMS with the same client reference makes a re-send
  // harmless; any other submission goes at most once.
  bool idempotent = driver.deduplicates();
  CurlCapture cap(4096);
  prepare_curl(h, call.url, transfer, cap);
  struct curl_slist* hdrs = nullptr;
  for (const auto& line : call.headers) hdrs = curl_slist_append(hdrs, line.c_str());
  hdrs = curl_slist_append(hdrs, "Expect:");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  set_request(h, cap, call.method, call.body, idempotent);
  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(hdrs);
  Submission s;
  if (rc != CURLE_OK) {
    CurlFailure f = classify_curl_failure(rc, cap, idempotent);
    s.not_sent = f == CurlFailure::NotSent;
    s.outcome = curl_failure_outcome(rc, f, "the SMS gateway");
    return s;
  }
  s.answered = true;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &s.status);
  s.body = std::move(cap.body);
  s.answer = driver.classify(s.status, s.body);
  int code = static_cast<int>(s.status);
  switch (s.answer.kind) {
    case Outcome::Kind::Delivered:
      s.outcome = Outcome::delivered(s.answer.gateway_ref, s.answer.text);
      break;
    case Outcome::Kind::Retry:
      s.outcome = retry_or_throttle(s.status, cap.header("retry-after"), clock.now_ms(),
                                    max_retry_after_ms, s.answer.text);
      break;
    default:
      s.outcome = Outcome::reject("http", code, s.answer.text);
  }
  s.outcome.code = code;
  s.outcome.excerpt = s.body.substr(0, 1024);
  return s;
}

std::string ovh_signature(const std::string& application_secret, const std::string& consumer_key,
                          const std::string& method, const std::string& url,
                          const std::string& body, int64_t timestamp) {
  std::string clear = application_secret + "+" + consumer_key + "+" + method + "+" + url + "+" +
                      body + "+" + std::to_string(timestamp);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(clear.data(), clear.size(), md, &len, EVP_sha1(), nullptr);
  return "$1$" + to_hex(md, len);
}

const ConfigSpec& sms_driver_spec() {
  static const ConfigSpec s{
      "sms driver",
      {
          {"driver",
           F::String,
           "",
           true,
           "the gateway: kannel, ovh or http",
           {"kannel", "ovh", "http"}},
          {"url", F::String, "", true,
           "kannel: smsbox's sendsms URL (http://host:13013/cgi-bin/sendsms); ovh: the API "
           "endpoint (https://eu.api.ovh.com/1.0); http: URL template ({{to}} {{text}} "
           "{{sender}} {{reference}} {{client_ref}} {{coding}}, URL-encoded)"},
          {"username", F::String, "", false, "kannel: sendsms user"},
          {"password", F::Secret, "", false, "kannel: sendsms password"},
          {"smsc", F::String, "", false, "kannel: route to this SMSC id"},
          {"dlr_url", F::String, "", false,
           "kannel: relais's delivery-report URL as Kannel reaches it "
           "(…/api/v1/connectors/NAME/inbound/dlr?token=…); ref and status are appended"},
          {"dlr_mask",
           F::Int,
           "31",
           false,
           "kannel: report types wanted (1 delivered, 2 failed, 4 queued, 8 SMSC, 16 SMSC "
           "rejected)",
           {},
           nullptr,
           0,
           63},
          {"ovh_service", F::String, "", false, "ovh: the SMS account (sms-xx11111-1)"},
          {"ovh_application_key", F::String, "", false, "ovh: application key (AK)"},
          {"ovh_application_secret", F::Secret, "", false, "ovh: application secret (AS)"},
          {"ovh_consumer_key", F::Secret, "", false, "ovh: consumer key (CK)"},
          {"ovh_clock_skew", F::Duration, "0s", false,
           "ovh: added to the local time in X-Ovh-Timestamp (with ovh_time_sync off)"},
          {"ovh_time_sync", F::Bool, "true", false,
           "ovh: read OVH's clock (GET /auth/time, once an hour) and sign with it"},
          {"http_method", F::String, "POST", false, "http: method", {"POST", "PUT", "GET"}},
          {"http_body", F::String, "", false,
           "http: body template (values JSON-escaped or URL-encoded after http_content_type)"},
          {"http_content_type", F::String, "application/json", false, "http: body type"},
          {"http_headers", F::StringMap, "", false, "http: extra headers (templates allowed)"},
          {"http_ref_path", F::String, "", false,
           "http: JSON path of the provider's message id in its answer"},
          {"http_deduplicates", F::Bool, "false", false,
           "http: the provider refuses a second SMS with the same {{client_ref}} (set only "
           "when its documentation says so)"},
      }};
  return s;
}

std::unique_ptr<SmsDriver> make_sms_driver(const ConfigView& c) {
  std::string d = c.str("driver");
  if (d == "kannel") return std::make_unique<KannelDriver>(c);
  if (d == "ovh") return std::make_unique<OvhDriver>(c);
  return std::make_unique<TemplateDriver>(c);
}

void check_sms_driver(const ConfigView& c, const std::string& file,
                      std::vector<ConfigError>& errors) {
  std::string d = c.str("driver");
  auto need = [&](const char* key) {
    if (!c.has(key) || c.str(key).empty()) {
      errors.push_back(error_at(c.node(), file, c.path() + "." + key,
                                std::string("the ") + d + " driver needs " + key));
    }
  };
  std::string url = c.str("url");
  if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    errors.push_back(
        error_at(c.raw("url"), file, c.path() + ".url", "the URL must start with http(s)://"));
  }
  if (d == "kannel") {
    need("username");
    need("password");
  } else if (d == "ovh") {
    need("ovh_service");
    need("ovh_application_key");
    need("ovh_application_secret");
    need("ovh_consumer_key");
  } else if (d == "http") {
    need("http_body");
    SmsToSend probe;
    auto values = placeholder_values(probe);
    std::string out, err;
    for (const char* key : {"url", "http_body"}) {
      if (!fill(c.str(key), values, {}, out, err)) {
        errors.push_back(error_at(c.raw(key), file, c.path() + "." + key, err));
      }
    }
    for (const auto& [k, v] : c.string_map("http_headers")) {
      if (!fill(v, values, {}, out, err)) {
        errors.push_back(
            error_at(c.raw("http_headers"), file, c.path() + ".http_headers." + k, err));
      }
    }
  }
}

}  // namespace relais::sms
