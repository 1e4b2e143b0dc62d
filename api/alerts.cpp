#include "api/alerts.h"

#include <Poco/Net/MailMessage.h>
#include <Poco/Net/MailRecipient.h>
#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "connectors/http/curl_capture.h"
#include "core/log.h"

namespace relais {
namespace {

using json = nlohmann::json;

std::string minutes(Millis ms) {
  return std::to_string(ms / 60000) + " min";
}

}  // namespace

AlertMonitor::AlertMonitor(Hub& hub, ConsoleStore& store, const HubConfig& config)
    : hub_(hub), store_(store) {
  YAML::Node node = config.root["alerts"];
  if (!node || !node.IsMap()) return;
  ConfigView v(node, {&alerts_spec()}, "alerts");
  check_every_ms_ = std::max<Millis>(v.duration_ms("check_every"), 100);
  quiet_ms_ = v.duration_ms("quiet_period");
  backoff_.initial_ms = std::max<Millis>(v.duration_ms("retry_initial"), 1);
  backoff_.max_ms = std::max(v.duration_ms("retry_max"), backoff_.initial_ms);
  if (v.has("webhook")) {
    auto w = v.object("webhook");
    channels_.webhook_url = w.str("url");
    channels_.webhook_headers = w.string_map("headers");
    channels_.webhook_tls = read_tls_client(w.object("tls"), "alerts.webhook");
  }
  if (v.has("smtp")) {
    auto m = v.object("smtp");
    channels_.smtp_host = m.str("host");
    channels_.smtp_port = static_cast<int>(m.integer("port"));
    channels_.smtp_from = m.str("from");
    channels_.smtp_to = m.strings("to");
    channels_.smtp_user = m.str("username");
    channels_.smtp_password = m.str("password");
    channels_.smtp_tls = m.str("tls");
    channels_.smtp_tls_verify = m.boolean("tls_verify");
    channels_.smtp_ca_file = m.str("ca_file");
    channels_.timeout_ms = m.duration_ms("timeout");
  }
  for (const auto& r : v.objects("rules")) {
    AlertRule rule;
    rule.name = r.str("name");
    rule.kind = r.str("kind");
    rule.destination = r.str("destination");
    rule.threshold = r.integer("threshold");
    rule.window_ms = r.duration_ms("window");
    rule.max_age_ms = r.duration_ms("max_age");
    if (!rule.destination.empty() && !config.destinations.count(rule.destination)) {
      throw std::runtime_error("alerts: rule '" + rule.name + "' names an unknown destination '" +
                               rule.destination + "'");
    }
    rules_.push_back(rule);
    states_.push_back(RuleState{rule});
  }
  if (!rules_.empty() && channels_.webhook_url.empty() && channels_.smtp_host.empty()) {
    throw std::runtime_error("alerts: rules are configured but no channel (webhook or smtp)");
  }
}

AlertMonitor::~AlertMonitor() {
  stop();
}

void AlertMonitor::start(std::function<bool()> runs_here) {
  if (rules_.empty()) return;
  thread_.start(check_every_ms_, check_every_ms_, [this, runs_here = std::move(runs_here)] {
    if (!runs_here || runs_here()) evaluate();
  });
}

void AlertMonitor::stop() {
  thread_.stop();
}

bool AlertMonitor::measure(const AlertRule& r, int64_t& value, std::string& text,
                           std::string& dest) {
  Millis now = hub_.clock().now_ms();
  dest = r.destination;
  std::string where = r.destination.empty() ? "" : " (" + r.destination + ")";
  if (r.kind == "dead_deliveries") {
    DeskFilter f;
    f.states = {"dead"};
    f.destination = r.destination;
    f.from = now - r.window_ms;
    value = store_.desk_count(f);
    text = std::to_string(value) + " livraison(s) bloquée(s) en " + minutes(r.window_ms) + where +
           " (seuil " + std::to_string(r.threshold) + ")";
    return value > r.threshold;
  }
  if (r.kind == "oldest_pending") {
    value = 0;
    for (const auto& s : queue_figures_ ? queue_figures_() : hub_.dispatcher().stats()) {
      if (!r.destination.empty() && s.name != r.destination) continue;
      if (s.oldest_received == 0) continue;
      int64_t age = (now - s.oldest_received) / 1000;
      if (age > value) {
        value = age;
        dest = s.name;
      }
    }
    text = "la plus ancienne livraison en attente" + (dest.empty() ? "" : " (" + dest + ")") +
           " attend depuis " + std::to_string(value / 60) + " min (seuil " + minutes(r.max_age_ms) +
           ")";
    return value * 1000 > r.max_age_ms;
  }
  // connector_failing: the latest outcome of the destination is a failure, within the window.
  value = 0;
  std::string failing;
  for (const auto& f : store_.figures(now - r.window_ms, now)) {
    if (!r.destination.empty() && f.destination != r.destination) continue;
    if (f.last_failure > f.last_success && f.last_failure >= now - r.window_ms) {
      ++value;
      failing += (failing.empty() ? "" : ", ") + f.destination;
    }
  }
  if (value == 1) dest = failing;
  text = "connecteur en échec : " + (failing.empty() ? std::string("aucun") : failing);
  return value > 0;
}

namespace {

json alert_json(const Alert& a) {
  json body = {{"rule", a.rule},
               {"kind", a.kind},
               {"text", a.text},
               {"value", a.value},
               {"at", format_rfc3339(a.at)},
               {"suppressed_since_last", a.suppressed}};
  if (!a.destination.empty()) body["destination"] = a.destination;
  return body;
}

// The mail as RFC 5322 text (Poco builds the headers and the quoted-printable body).
std::string mail_text(const Alert& a, const AlertChannels& ch) {
  Poco::Net::MailMessage m;
  m.setSender(ch.smtp_from);
  for (const auto& to : ch.smtp_to) {
    m.addRecipient(Poco::Net::MailRecipient(Poco::Net::MailRecipient::PRIMARY_RECIPIENT, to));
  }
  m.setSubject(
      Poco::Net::MailMessage::encodeWord("[Relais] alerte " + a.rule + " : " + a.text, "UTF-8"));
  std::string content = "Alerte Relais « " + a.rule + " » (" + a.kind + ")\r\n\r\n" + a.text +
                        "\r\n\r\nLe " + format_rfc3339(a.at) + ".\r\n";
  if (a.suppressed > 0) {
    content += std::to_string(a.suppressed) +
               " déclenchement(s) pendant la période de silence précédente.\r\n";
  }
  content += "Voir la console : /console/\r\n";
  m.setContentType("text/plain; charset=UTF-8");
  m.setContent(content, Poco::Net::MailMessage::ENCODING_QUOTED_PRINTABLE);
  std::ostringstream out;
  m.write(out);
  return out.str();
}

}  // namespace

std::string AlertMonitor::send_webhook(const Alert& a) {
  CURL* h = curl_easy_init();
  if (h == nullptr) return "webhook: curl_easy_init failed";
  CurlCapture capture(4096);
  CurlTransfer transfer;
  transfer.timeout_ms = channels_.timeout_ms;
  transfer.tls = channels_.webhook_tls;
  prepare_curl(h, channels_.webhook_url, transfer, capture);
  std::string payload = alert_json(a).dump();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  for (const auto& [k, v] : channels_.webhook_headers) {
    headers = curl_slist_append(headers, (k + ": " + v).c_str());
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload.c_str());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(payload.size()));
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK) return std::string("webhook: ") + curl_easy_strerror(rc);
  if (status < 200 || status >= 300) return "webhook: HTTP " + std::to_string(status);
  return "";
}

// Through libcurl's SMTP: STARTTLS required (CURLUSESSL_ALL: no clear-text fallback) or
// implicit TLS (smtps://), the certificate verified, authentication with the server's offered
// mechanism. Succeeds only when the server answered 250 to the message.
std::string AlertMonitor::send_mail(const Alert& a) {
  const AlertChannels& ch = channels_;
  std::string text;
  try {
    text = mail_text(a, ch);
  } catch (const std::exception& e) {
    return std::string("smtp: cannot build the mail: ") + e.what();
  }
  CURL* h = curl_easy_init();
  if (h == nullptr) return "smtp: curl_easy_init failed";
  std::string url = (ch.smtp_tls == "tls" ? "smtps://" : "smtp://") + ch.smtp_host + ":" +
                    std::to_string(ch.smtp_port);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(ch.timeout_ms));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(ch.timeout_ms));
  if (ch.smtp_tls != "none") {
    curl_easy_setopt(h, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, ch.smtp_tls_verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, ch.smtp_tls_verify ? 2L : 0L);
    if (!ch.smtp_ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, ch.smtp_ca_file.c_str());
  }
  if (!ch.smtp_user.empty()) {
    curl_easy_setopt(h, CURLOPT_USERNAME, ch.smtp_user.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, ch.smtp_password.c_str());
  }
  std::string from = "<" + ch.smtp_from + ">";
  curl_easy_setopt(h, CURLOPT_MAIL_FROM, from.c_str());
  curl_slist* rcpt = nullptr;
  for (const auto& to : ch.smtp_to) rcpt = curl_slist_append(rcpt, ("<" + to + ">").c_str());
  curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
  CurlUpload src{&text};
  curl_easy_setopt(h, CURLOPT_READFUNCTION, curl_upload_read);
  curl_easy_setopt(h, CURLOPT_READDATA, &src);
  curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(rcpt);
  curl_easy_cleanup(h);
  if (rc != CURLE_OK) return std::string("smtp: ") + curl_easy_strerror(rc);
  return "";
}

void AlertMonitor::evaluate() {
  Millis now = hub_.clock().now_ms();
  for (size_t i = 0; i < rules_.size(); ++i) {
    const AlertRule& r = rules_[i];
    int64_t value = 0;
    std::string text, dest;
    bool fires = false;
    try {
      fires = measure(r, value, text, dest);
    } catch (const std::exception& e) {
      log_error("alerts", "rule " + r.name + ": cannot evaluate: " + e.what());
      continue;
    }
    Alert alert;
    bool webhook = false, mail = false, accepted_before = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      RuleState& s = states_[i];
      s.firing = fires;
      s.last_value = value;
      if (s.pending) {
        // An alert a channel has not accepted yet: its turn comes with the back-off.
        if (now < s.next_try) continue;
        alert = *s.pending;
        webhook = s.webhook_due;
        mail = s.smtp_due;
        accepted_before = s.accepted;
      } else {
        if (!fires) continue;
        if (s.last_sent != 0 && now - s.last_sent < quiet_ms_) {
          ++s.suppressed;
          continue;
        }
        alert = Alert{r.name, r.kind, dest, text, value, s.suppressed, now};
        s.suppressed = 0;
        webhook = !channels_.webhook_url.empty();
        mail = !channels_.smtp_host.empty();
      }
    }
    std::string errors;
    bool took = false;  // a channel accepted the alert in this round
    if (webhook) {
      std::string e = send_webhook(alert);
      webhook = !e.empty();
      took = took || e.empty();
      errors += e.empty() ? "" : e + "; ";
    }
    if (mail) {
      std::string e = send_mail(alert);
      mail = !e.empty();
      took = took || e.empty();
      errors += e.empty() ? "" : e + "; ";
    }
    int failures = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      RuleState& s = states_[i];
      if (took && !accepted_before) {
        s.last_sent = now;  // the quiet period starts at the first accepted send
        ++s.sent;
      }
      if (webhook || mail) {
        s.pending = alert;
        s.webhook_due = webhook;
        s.smtp_due = mail;
        s.accepted = accepted_before || took;
        failures = ++s.failures;
        s.next_try = now + backoff_.ceiling(s.failures);
      } else {
        s.pending.reset();
        s.failures = 0;
      }
      s.last_error = errors;
    }
    if (took) {
      log_info("alerts", "rule " + r.name + ": " + alert.text);
      store_.audit(AuditEntry{0, 0, "relais", "system", "alert.sent", "alert:" + r.name,
                              alert.text + (errors.empty() ? "" : " — " + errors), "local"});
    }
    if (!errors.empty()) {
      log_warn("alerts", "rule " + r.name + ": not accepted (try " + std::to_string(failures) +
                             "), will try again: " + errors);
      store_.audit(
          AuditEntry{0, 0, "relais", "system", "alert.failed", "alert:" + r.name, errors, "local"});
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++evaluations_;
}

json AlertMonitor::status() {
  std::lock_guard<std::mutex> lock(mu_);
  json rules = json::array();
  for (const auto& s : states_) {
    json j = {{"name", s.rule.name},       {"kind", s.rule.kind}, {"firing", s.firing},
              {"value", s.last_value},     {"sent", s.sent},      {"suppressed", s.suppressed},
              {"last_error", s.last_error}};
    if (!s.rule.destination.empty()) j["destination"] = s.rule.destination;
    j["last_sent"] = s.last_sent ? json(format_rfc3339(s.last_sent)) : json();
    j["pending"] = s.pending.has_value();
    j["failures"] = s.failures;
    if (s.pending) j["next_try"] = format_rfc3339(s.next_try);
    rules.push_back(std::move(j));
  }
  json channels = json::array();
  if (!channels_.webhook_url.empty()) channels.push_back("webhook");
  if (!channels_.smtp_host.empty()) channels.push_back("smtp");
  return {{"evaluations", evaluations_},
          {"check_every_ms", check_every_ms_},
          {"quiet_period_ms", quiet_ms_},
          {"channels", channels},
          {"rules", rules}};
}

}  // namespace relais
