// Alerts on a running relais: a storm of dead deliveries sends one alert by webhook and one
// e-mail through a real SMTP exchange (a test listener), then stays quiet during the quiet
// period while the rule keeps firing; a failing connector fires its own rule (one alert too);
// a delivery pending too long fires the oldest-pending rule once.

#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tests/console/smtp_listener.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;

json rule_status(HttpClient& c, const std::string& name) {
  for (const auto& r : c.get("/api/v1/alerts").json().value("rules", json::array())) {
    if (r.value("name", "") == name) return r;
  }
  return json::object();
}

TEST(Alerts, AStormSendsOneAlertByWebhookAndMail) {
  tools::HttpSink destination(0, true, 4);
  destination.set_responder([](const tools::SinkRequest&) {
    tools::SinkResponse r;
    r.status = 422;
    r.body = "{\"error\":\"invalid\"}";
    return r;
  });
  tools::HttpSink webhook(0, true, 2);
  SmtpListener smtp;
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml =
      "sources:\n  cms76:\n    type: $.event\n    correlation: \"rdv:{$.rdv.id}\"\n"
      "connectors:\n  agenda:\n    connector: http\n    url: http://127.0.0.1:" +
      std::to_string(destination.port()) +
      "/agenda\n    on_dead: release\n    retry: {initial: 50ms, max: 100ms, max_attempts: 1}\n"
      "routes:\n  - name: r\n    source: cms76\n    to:\n      - destination: agenda\n"
      "alerts:\n  check_every: 200ms\n  quiet_period: 1h\n"
      "  webhook:\n    url: http://127.0.0.1:" +
      std::to_string(webhook.port()) +
      "/alerts\n    headers:\n      X-Relais: alert\n"
      "  smtp:\n    host: 127.0.0.1\n    port: " +
      std::to_string(smtp.port()) +
      "\n    tls: none\n    from: relais@example.org\n    to: [support@example.org]\n"
      "  rules:\n"
      "    - {name: morts, kind: dead_deliveries, threshold: 3, window: 10m}\n"
      "    - {name: agenda-en-echec, kind: connector_failing, destination: agenda}\n";
  RelaisProcess relais(o);
  relais.start();
  HttpClient c = relais.client();
  EXPECT_FALSE(rule_status(c, "morts")["firing"].get<bool>());
  for (int i = 0; i < 10; ++i) {
    json m = {{"event", "rdv.planned"}, {"rdv", {{"id", 1000 + i}}}};
    ASSERT_EQ(c.post_json("/api/v1/sources/cms76/messages", m.dump()).status, 202);
  }
  // One alert per rule arrives…
  ASSERT_TRUE(wait_until([&] { return webhook.count() >= 2 && smtp.messages().size() >= 2; },
                         std::chrono::seconds(60)))
      << webhook.count() << " webhook(s), " << smtp.messages().size() << " mail(s)";
  // …then the storm goes on and the rules keep firing, silently.
  for (int i = 10; i < 20; ++i) {
    json m = {{"event", "rdv.planned"}, {"rdv", {{"id", 1000 + i}}}};
    ASSERT_EQ(c.post_json("/api/v1/sources/cms76/messages", m.dump()).status, 202);
  }
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = rule_status(c, "morts");
        return s.value("value", 0) == 20 && s.value("suppressed", 0) >= 2;
      },
      std::chrono::seconds(60)))
      << c.get("/api/v1/alerts").body;
  EXPECT_EQ(webhook.count(), 2u);
  EXPECT_EQ(smtp.messages().size(), 2u);
  EXPECT_EQ(rule_status(c, "morts")["sent"], 1);

  json dead_alert;
  for (const auto& r : webhook.requests()) {
    EXPECT_EQ(r.headers.at("x-relais"), "alert");
    json j = json::parse(r.body);
    if (j["rule"] == "morts") dead_alert = j;
  }
  ASSERT_FALSE(dead_alert.is_null());
  EXPECT_EQ(dead_alert["kind"], "dead_deliveries");
  EXPECT_GT(dead_alert["value"].get<int>(), 3);
  bool mail_seen = false;
  for (const auto& m : smtp.messages()) {
    EXPECT_NE(m.from.find("relais@example.org"), std::string::npos);
    ASSERT_EQ(m.to.size(), 1u);
    if (m.data.find("morts") != std::string::npos) mail_seen = true;
  }
  EXPECT_TRUE(mail_seen);
  auto audit = c.get("/api/v1/audit?action=alert.sent").json()["items"];
  EXPECT_EQ(audit.size(), 2u);
}

}  // namespace
}  // namespace relais::testing

namespace relais::testing {
namespace {

// A relais whose one delivery waits an hour (its destination answers 503), so that an
// oldest_pending rule "attente" (max_age 1s) fires. `alerts_yaml`: the other keys of `alerts:`
// (timings, channels), each line indented by two spaces. Owns the destination and the process.
struct PendingDelivery {
  explicit PendingDelivery(const std::string& alerts_yaml) {
    destination.set_responder([](const tools::SinkRequest&) {
      tools::SinkResponse r;
      r.status = 503;  // transient: the delivery waits an hour for its next attempt
      return r;
    });
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.body_yaml =
        "sources:\n  cms76:\n    type: $.event\n"
        "connectors:\n  agenda:\n    connector: http\n    url: http://127.0.0.1:" +
        std::to_string(destination.port()) +
        "/agenda\n    retry: {initial: 1h, max: 1h, max_attempts: 5}\n"
        "routes:\n  - name: r\n    source: cms76\n    to:\n"
        "      - destination: agenda\n"
        "alerts:\n" +
        alerts_yaml + "  rules:\n    - {name: attente, kind: oldest_pending, max_age: 1s}\n";
    relais = std::make_unique<RelaisProcess>(o);
    relais->start();
    HttpClient c = relais->client();
    EXPECT_EQ(c.post_json("/api/v1/sources/cms76/messages", "{\"event\":\"rdv.planned\"}").status,
              202);
  }
  tools::HttpSink destination{0, true, 2};
  std::unique_ptr<RelaisProcess> relais;
};

TEST(Alerts, AnOldPendingDeliveryFiresItsRuleOnce) {
  tools::HttpSink webhook(0, true, 2);
  PendingDelivery p(
      "  check_every: 200ms\n  quiet_period: 1h\n  webhook:\n    url: http://127.0.0.1:" +
      std::to_string(webhook.port()) + "/alerts\n");
  HttpClient c = p.relais->client();
  ASSERT_TRUE(wait_until([&] { return webhook.count() >= 1; }, std::chrono::seconds(60)));
  ASSERT_TRUE(wait_until([&] { return rule_status(c, "attente").value("suppressed", 0) >= 2; },
                         std::chrono::seconds(60)));
  EXPECT_EQ(webhook.count(), 1u);
  json alert = json::parse(webhook.requests()[0].body);
  EXPECT_EQ(alert["kind"], "oldest_pending");
  EXPECT_EQ(alert["destination"], "agenda");
  EXPECT_GE(alert["value"].get<int>(), 1);
}

}  // namespace
}  // namespace relais::testing

namespace relais::testing {
namespace {

// A webhook that fails twice then accepts: the alert is not swallowed by the quiet period; it
// is sent again with back-off, counted as sent once accepted, and the quiet period starts then.
TEST(Alerts, AChannelThatFailsFirstGetsTheAlertAgainUntilItAcceptsIt) {
  tools::HttpSink webhook(0, true, 2);
  std::mutex mu;
  std::vector<std::string> bodies;  // every try, refused or not
  webhook.set_responder([&](const tools::SinkRequest& req) {
    std::lock_guard<std::mutex> lock(mu);
    bodies.push_back(req.body);
    tools::SinkResponse r;
    if (bodies.size() <= 2) r.status = 500;  // the first two tries fail
    return r;
  });
  PendingDelivery p(
      "  check_every: 100ms\n  quiet_period: 1h\n  retry_initial: 1s\n"
      "  webhook:\n    url: http://127.0.0.1:" +
      std::to_string(webhook.port()) + "/alerts\n");
  HttpClient c = p.relais->client();
  // The first refusal: pending, not sent, the error shown.
  ASSERT_TRUE(wait_until([&] { return webhook.total() >= 1; }, std::chrono::seconds(60)));
  ASSERT_TRUE(wait_until([&] { return rule_status(c, "attente").value("failures", 0) >= 1; },
                         std::chrono::seconds(10)));
  json s = rule_status(c, "attente");
  EXPECT_EQ(s["sent"], 0) << s;
  EXPECT_TRUE(s["last_sent"].is_null()) << s;
  EXPECT_NE(s.value("last_error", "").find("HTTP 500"), std::string::npos) << s;
  // Accepted at the third try; then silent for the quiet period.
  ASSERT_TRUE(wait_until([&] { return webhook.count() >= 1; }, std::chrono::seconds(60)));
  ASSERT_TRUE(wait_until([&] { return rule_status(c, "attente").value("suppressed", 0) >= 3; },
                         std::chrono::seconds(30)));
  s = rule_status(c, "attente");
  EXPECT_EQ(webhook.total(), 3u);
  EXPECT_EQ(webhook.count(), 1u);
  EXPECT_EQ(s["sent"], 1) << s;
  EXPECT_FALSE(s["pending"].get<bool>()) << s;
  EXPECT_FALSE(s["last_sent"].is_null()) << s;
  // The three tries carry the same alert.
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(bodies.size(), 3u);
    EXPECT_EQ(json::parse(bodies[0])["at"], json::parse(bodies[2])["at"]);
  }
  EXPECT_EQ(c.get("/api/v1/audit?action=alert.failed").json()["items"].size(), 2u);
  EXPECT_EQ(c.get("/api/v1/audit?action=alert.sent").json()["items"].size(), 1u);
}

// STARTTLS is required by default: a server that does not offer it never receives the alert in
// clear text; the alert stays pending (retried) and the error says why.
TEST(Alerts, MailIsNeverSentInClearWhenStartTlsIsRequired) {
  SmtpListener smtp;  // offers no STARTTLS
  PendingDelivery p(
      "  check_every: 100ms\n  quiet_period: 1h\n  retry_initial: 100ms\n"
      "  smtp:\n    host: 127.0.0.1\n    port: " +
      std::to_string(smtp.port()) +
      "\n    from: relais@example.org\n    to: [support@example.org]\n"
      "    username: relais\n    password: not-to-be-sent-in-clear\n");
  HttpClient c = p.relais->client();
  ASSERT_TRUE(wait_until([&] { return rule_status(c, "attente").value("failures", 0) >= 2; },
                         std::chrono::seconds(60)))
      << c.get("/api/v1/alerts").body;
  json s = rule_status(c, "attente");
  EXPECT_EQ(smtp.messages().size(), 0u);
  EXPECT_EQ(s["sent"], 0) << s;
  EXPECT_TRUE(s["pending"].get<bool>()) << s;
  EXPECT_NE(s.value("last_error", "").find("smtp: "), std::string::npos) << s;
}

}  // namespace
}  // namespace relais::testing
