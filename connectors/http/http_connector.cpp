// The generic HTTP destination: method, URL template, headers, body, timeouts, TLS (verified by
// default), CA bundle and client certificate (the `tls` block, core/tls_client.h), basic or bearer
// auth, connection reuse (one libcurl handle per worker slot). A non-idempotent request
// (`idempotent`, default from the method) is never re-sent by libcurl (set_request); 429 and 503 +
// Retry-After pause the destination (retry_or_throttle); optional HMAC signature of each request
// (core/signature.h). See docs/connectors/http.md.

#include "connectors/http/http_connector.h"

#include "connectors/http/curl_capture.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "core/json_template.h"
#include "core/signature.h"

namespace relais {
namespace {

using F = FieldType;

const ConfigSpec& http_spec() {
  static const ConfigSpec s{
      "http",
      join_fields({
          {
              {"url", F::String, "", true,
               "target URL; {$.path} placeholders are filled from the message body (URL-encoded)"},
              {"method",
               F::String,
               "POST",
               false,
               "HTTP method",
               {"POST", "PUT", "PATCH", "DELETE", "GET"}},
              {"headers", F::StringMap, "", false, "extra request headers (values may use ${ENV})"},
              {"send_body", F::Bool, "true", false,
               "send the (mapped) payload as the request body"},
              {"idempotent", F::Bool, "", false,
               "whether sending the same request twice is harmless (default: true for GET, PUT and "
               "DELETE, false for POST and PATCH). A non-idempotent request is never re-sent "
               "silently by the transport; when it may have reached the destination without an "
               "answer, the attempt ends as unknown_outcome (see docs/connectors/http.md)"},
          },
          curl_transfer_fields("total time allowed for one attempt"),
          {
              {"basic_user", F::String, "", false, "user for HTTP basic authentication"},
              {"basic_password", F::Secret, "", false, "password for HTTP basic authentication"},
              {"bearer_token", F::Secret, "", false, "token sent as Authorization: Bearer"},
              {"reference_header", F::String, "Location", false,
               "response header kept as the external reference"},
              {"max_excerpt", F::Size, "1KiB", false, "bytes of the response kept in the history"},
              {"sign",
               F::Object,
               "",
               false,
               "sign every request for a partner that checks it: HMAC-SHA256 of TIMESTAMP.BODY "
               "(see docs/security.md)",
               {},
               &signature_sign_spec()},
          },
      })};
  return s;
}

// One configured HTTP destination. Thread-safe for distinct slots: each slot owns one curl
// handle (and so its own connection cache); slots are never shared between threads.
class HttpConnector final : public Connector {
 public:
  explicit HttpConnector(const ConnectorContext& ctx)
      : name_(ctx.name), clock_(ctx.clock), max_retry_after_ms_(ctx.max_retry_after_ms) {
    const auto& c = ctx.config;
    std::string err;
    if (!JsonTemplate::parse(c.str("url"), url_, err)) {
      throw std::runtime_error("connector " + name_ + ": url: " + err);
    }
    method_ = c.str("method");
    send_body_ = c.boolean("send_body");
    idempotent_ = c.has("idempotent") ? c.boolean("idempotent") : idempotent_method(method_);
    transfer_ = curl_transfer_from(c, "connector " + name_);
    basic_user_ = c.str("basic_user");
    basic_password_ = c.str("basic_password");
    bearer_ = c.str("bearer_token");
    reference_header_ = c.str("reference_header");
    for (auto& ch : reference_header_) {
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    max_excerpt_ = static_cast<size_t>(c.size("max_excerpt"));
    headers_ = c.string_map("headers");
    if (c.has("sign")) sign_ = signature_scheme_from(c.object("sign"));
    for (int i = 0; i < ctx.concurrency; ++i) {
      CURL* h = curl_easy_init();
      if (h == nullptr) throw std::runtime_error("connector " + name_ + ": curl_easy_init failed");
      handles_.push_back(h);
    }
  }

  ~HttpConnector() override {
    for (CURL* h : handles_) curl_easy_cleanup(h);
  }

  // Connects to the URL's host (TLS included) without sending a request. The URL template's
  // literal start must name the host (a host taken from the message cannot be tested).
  Status probe() override {
    const std::string& text = url_.text();
    std::string fixed = text.substr(0, text.find('{'));
    if (fixed.find("://") == std::string::npos ||
        fixed.find_first_not_of("/", fixed.find("://") + 3) == std::string::npos) {
      return Status::failure(501, "test non disponible",
                             "l'adresse de cette destination dépend du message");
    }
    return probe_connection(fixed, transfer_);
  }

  Outcome deliver(const DeliveryRequest& req) override {
    CURL* h = handles_.at(static_cast<size_t>(req.slot) % handles_.size());
    std::string url, err;
    if (!url_.render(*req.body, url, err, [h](const std::string& v) { return url_escape(h, v); })) {
      return Outcome::reject("config", 0, "cannot build the URL: " + err);
    }
    CurlCapture cap(max_excerpt_);
    prepare_curl(h, url, transfer_, cap);
    if (!basic_user_.empty()) {
      curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
      curl_easy_setopt(h, CURLOPT_USERNAME, basic_user_.c_str());
      curl_easy_setopt(h, CURLOPT_PASSWORD, basic_password_.c_str());
    }
    struct curl_slist* hdrs = nullptr;
    auto add = [&hdrs](const std::string& line) { hdrs = curl_slist_append(hdrs, line.c_str()); };
    // A Content-Type among the configured headers replaces the payload's own.
    bool custom_type = false;
    for (const auto& [k, v] : headers_) {
      std::string name = k;
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      custom_type = custom_type || name == "content-type";
    }
    if (!custom_type) {
      add("Content-Type: " +
          (req.content_type.empty() ? std::string("application/json") : req.content_type));
    }
    add("X-Relais-Message-Id: " + req.message->id);
    add("X-Relais-Delivery-Id: " + std::to_string(req.delivery_id));
    add("Expect:");
    if (!bearer_.empty()) add("Authorization: Bearer " + bearer_);
    for (const auto& [k, v] : headers_) add(k + ": " + v);
    // The bytes that go out, and that a signature covers: none for GET and HEAD, an empty body
    // for a POST, PUT, PATCH or DELETE without a payload.
    static const std::string kNone;
    const std::string& body =
        send_body_ && req.payload != nullptr && method_sends_body(method_) ? *req.payload : kNone;
    if (sign_) {
      // Signed at each attempt: a retry carries a fresh timestamp.
      std::string ts = std::to_string(clock_->now_ms() / 1000);
      add(sign_->timestamp_header + ": " + ts);
      add(sign_->header + ": " + signature_value(sign_->secret, ts, body));
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    set_request(h, cap, method_, body, idempotent_);
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) return curl_failure_outcome(rc, cap, idempotent_, "the destination");
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    Outcome o;
    std::string text = "HTTP " + std::to_string(status);
    switch (classify_http_status(status)) {
      case Outcome::Kind::Delivered:
        o = Outcome::delivered(cap.header(reference_header_), text);
        o.code = static_cast<int>(status);
        break;
      case Outcome::Kind::Retry:
        o = retry_or_throttle(status, cap.header("retry-after"), clock_->now_ms(),
                              max_retry_after_ms_, text + " from the destination");
        break;
      default:
        o = Outcome::reject("http", static_cast<int>(status),
                            text + " from the destination: the request was refused");
    }
    o.excerpt = std::move(cap.body);
    return o;
  }

 private:
  std::string name_;
  const Clock* clock_;
  int64_t max_retry_after_ms_;
  JsonTemplate url_;
  std::string method_;
  bool send_body_ = true;
  bool idempotent_ = false;
  CurlTransfer transfer_;  // timeouts, TLS verification, CA bundle, client certificate
  std::string basic_user_, basic_password_, bearer_, reference_header_;
  size_t max_excerpt_ = 1024;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::optional<SignatureScheme> sign_;  // set: every request is signed
  std::vector<CURL*> handles_;
};

}  // namespace

Outcome::Kind classify_http_status(long status) {
  if (status >= 200 && status < 300) return Outcome::Kind::Delivered;
  if (status == 408 || status == 425 || status == 429 || status >= 500) {
    return Outcome::Kind::Retry;
  }
  return Outcome::Kind::Reject;
}

Outcome retry_or_throttle(long status, const std::string& retry_after, int64_t now_ms,
                          int64_t max_retry_after_ms, const std::string& text,
                          const std::string& scope) {
  std::optional<int64_t> after;
  if (int64_t ms = parse_retry_after_ms(retry_after, now_ms); ms >= 0) {
    after = std::min(ms, std::max<int64_t>(0, max_retry_after_ms));
  }
  std::string when = after ? " after " + std::to_string((*after + 999) / 1000) + " s" : "";
  if (status == 429 || (status == 503 && after)) {
    return Outcome::throttle(scope, static_cast<int>(status),
                             text + ": the partner asks to slow down" + when, after);
  }
  return Outcome::retry("http", static_cast<int>(status), text + ": will try again" + when, after);
}

int64_t parse_retry_after_ms(const std::string& value, int64_t now_ms) {
  if (value.empty()) return -1;
  // delay-seconds, with the fraction Microsoft Graph sends ("2.128")
  size_t dot = value.find('.');
  std::string whole = value.substr(0, dot);
  std::string fraction = dot == std::string::npos ? "" : value.substr(dot + 1);
  auto digits = [](const std::string& t) {
    for (char c : t) {
      if (std::isdigit(static_cast<unsigned char>(c)) == 0) return false;
    }
    return true;
  };
  if (!whole.empty() && digits(whole) && digits(fraction) &&
      (dot == std::string::npos || !fraction.empty())) {
    if (whole.size() > 9) return -1;
    int64_t ms = std::stoll(whole) * 1000;
    fraction.resize(3, '0');  // milliseconds: the first three digits
    return ms + std::stoll(fraction);
  }
  time_t t = curl_getdate(value.c_str(), nullptr);
  if (t < 0) return -1;
  int64_t ms = static_cast<int64_t>(t) * 1000 - now_ms;
  return ms < 0 ? 0 : ms;
}

void register_http_connector(ConnectorRegistry& registry) {
  ConnectorKind k;
  k.name = "http";
  k.description = "Generic HTTP destination (JSON over HTTP/1.1 or HTTP/2, TLS verified)";
  k.spec = &http_spec();
  k.check = [](const ConfigView& c, const std::string& file, std::vector<ConfigError>& errors) {
    JsonTemplate t;
    std::string err;
    if (!JsonTemplate::parse(c.str("url"), t, err)) {
      errors.push_back(error_at(c.raw("url"), file, c.path() + ".url", err));
    }
    std::string url = c.str("url");
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
      errors.push_back(
          error_at(c.raw("url"), file, c.path() + ".url", "the URL must start with http(s)://"));
    }
    check_tls_client(c.object("tls"), file, errors);
    if (c.has("sign") && c.object("sign").str("secret").size() < 16) {
      errors.push_back(error_at(c.raw("sign"), file, c.path() + ".sign.secret",
                                "a signing secret must be at least 16 characters long"));
    }
    if (c.has("basic_user") && c.has("bearer_token")) {
      errors.push_back(error_at(c.node(), file, c.path(),
                                "choose basic_user/basic_password or bearer_token, not both"));
    }
  };
  k.create = [](const ConnectorContext& ctx) -> std::unique_ptr<Connector> {
    return std::make_unique<HttpConnector>(ctx);
  };
  registry.add(std::move(k));
}

}  // namespace relais
