// The SMS destination's decisions, in-process, on a ManualClock, with the generic HTTP driver
// towards a recording gateway: numbers, opt-out, length, the reminder's time, the sending
// window, the appointment's start, no second SMS once the gateway took one, the gateway's
// answers, the rate limit (a burst waits, nothing is dropped), and the inbound endpoints.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "connectors/registry.h"
#include "core/store.h"
#include "routing/hub_config.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais {
namespace {

using json = nlohmann::json;

// Paris is UTC+1 in winter.
Millis paris(int y, int mo, int d, int h, int mi) {
  std::tm t{};
  t.tm_year = y - 1900;
  t.tm_mon = mo - 1;
  t.tm_mday = d;
  t.tm_hour = h;
  t.tm_min = mi;
  return static_cast<Millis>(timegm(&t)) * 1000 - 3600 * 1000LL;
}

class SmsDeliver : public ::testing::Test {
 protected:
  void SetUp() override {
    gateway_.set_responder([this](const tools::SinkRequest&) {
      tools::SinkResponse r;
      r.status = status_.load();
      if (r.status == 0) {  // takes the SMS but answers too late
        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
        r.status = 201;
      }
      r.body = R"({"id":"gw-1"})";
      return r;
    });
    StoreOptions so;
    so.path = dir_.path() + "/relais.db";
    so.synchronous_full = false;
    open_sqlite_store(so)->close();  // creates the tables (migration 5)
    store_path_ = so.path;
  }

  std::unique_ptr<Connector> make(const std::string& extra = "", int concurrency = 1) {
    std::string yaml =
        "connector: sms\ndriver: http\nurl: http://127.0.0.1:" + std::to_string(gateway_.port()) +
        "/send\nhttp_body: '{\"to\":\"{{to}}\",\"text\":\"{{text}}\"}'\n"
        "http_ref_path: $.id\ninbound_token: tok-0123456789\n" +
        (extra.find("rate_limit:") == std::string::npos ? "rate_limit: 0\n" : "") + extra;
    const ConnectorKind* kind = registries_.connectors.find("sms");
    YAML::Node node = YAML::Load(yaml);
    std::vector<ConfigError> errors;
    validate(node, {&destination_spec(), kind->spec}, "connectors.sms", "test.yaml", errors);
    ConfigView view(node, {&destination_spec(), kind->spec}, "connectors.sms");
    kind->check(view, "test.yaml", errors);
    EXPECT_TRUE(errors.empty()) << (errors.empty() ? "" : errors[0].to_string());
    ConnectorContext ctx;
    ctx.name = "sms-test-" + std::to_string(++instances_);
    ctx.config = view;
    ctx.concurrency = concurrency;
    ctx.metrics = &metrics_;
    ctx.clock = &clock_;
    ctx.store_path = store_path_;
    return kind->create(ctx);
  }

  Outcome send(Connector& c, const json& mapped, int64_t delivery_id = 1, int slot = 0) {
    Message m;
    m.id = "01TEST";
    std::string payload = mapped.dump();
    json body = json::object();
    DeliveryRequest req;
    req.delivery_id = delivery_id;
    req.message = &m;
    req.body = &body;
    req.mapped = &mapped;
    req.payload = &payload;
    req.slot = slot;
    return c.deliver(req);
  }

  InboundResponse call(Connector& c, const std::string& method, const std::string& path,
                       std::map<std::string, std::string> query, const std::string& role = "") {
    InboundRequest in;
    in.method = method;
    in.path = path;
    in.query = std::move(query);
    in.role = role;
    in.actor = role.empty() ? "" : "test-" + role;
    auto r = c.inbound(in);
    EXPECT_TRUE(r.has_value()) << path;
    return r ? *r : InboundResponse{};
  }

  testing::TempDir dir_{"relais-sms-deliver-"};
  std::string store_path_;
  Registries registries_;
  Metrics metrics_;
  ManualClock clock_{paris(2026, 12, 1, 10, 0)};  // a Tuesday, 10:00
  tools::HttpSink gateway_;
  std::atomic<int> status_{201};
  int instances_ = 0;
};

json sms(const std::string& to = "06 00 00 00 00", const std::string& text = "Bonjour") {
  return json{{"to", to}, {"text", text}};
}

TEST_F(SmsDeliver, MobileNumberGoesOutAsE164AndIsRecorded) {
  auto c = make();
  Outcome o = send(*c, sms());
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << o.text;
  EXPECT_EQ(o.external_ref, "gw-1");
  EXPECT_NE(o.text.find("1 segment(s) GSM-7"), std::string::npos) << o.text;
  auto reqs = gateway_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(json::parse(reqs[0].body)["to"], "+33600000000");
  auto rec = call(*c, "GET", "records/1", {}, "support");
  EXPECT_EQ(rec.status, 200);
  EXPECT_EQ(rec.body["state"], "accepted");
  EXPECT_EQ(rec.body["gateway_ref"], "gw-1");
  EXPECT_EQ(rec.body["segments"], 1);
  EXPECT_DOUBLE_EQ(rec.body["cost_cents"].get<double>(), 5.0);
}

TEST_F(SmsDeliver, BadNumbersAreSkippedWithTheReasonAndNeverSent) {
  auto c = make();
  Outcome fixed = send(*c, sms("02 35 00 00 00"));
  EXPECT_EQ(fixed.kind, Outcome::Kind::Skip);
  EXPECT_EQ(fixed.text, "SMS non envoyé : pas un numéro de portable");
  EXPECT_EQ(send(*c, sms("")).kind, Outcome::Kind::Skip);
  EXPECT_EQ(send(*c, sms("06 12")).kind, Outcome::Kind::Skip);
  // A Réunion mobile written nationally goes out with the region of its postcode.
  json re = sms("0692 12 34 56");
  re["postcode"] = "97400";
  EXPECT_EQ(send(*c, re, 7).kind, Outcome::Kind::Delivered);
  ASSERT_EQ(gateway_.requests().size(), 1u);
  EXPECT_EQ(json::parse(gateway_.requests()[0].body)["to"], "+262692123456");
}

TEST_F(SmsDeliver, TooLongIsRejectedWithTheCount) {
  auto c = make("max_segments: 2\n");
  Outcome o = send(*c, sms("0600000000", std::string(400, 'a')));
  EXPECT_EQ(o.kind, Outcome::Kind::Reject);
  EXPECT_NE(o.text.find("3 segments"), std::string::npos) << o.text;
  EXPECT_EQ(gateway_.total(), 0u);
}

TEST_F(SmsDeliver, ReminderWaitsForItsTimeWithoutAnAttempt) {
  auto c = make();
  json r = sms();
  r["send_at"] = "2026-12-01T14:30:00+01:00";
  r["rdv_start"] = "2026-12-02T14:30:00+01:00";
  Outcome o = send(*c, r);
  ASSERT_EQ(o.kind, Outcome::Kind::Defer) << o.text;
  EXPECT_EQ(o.not_before, paris(2026, 12, 1, 14, 30));
  EXPECT_EQ(o.text, "SMS programmé pour 2026-12-01 14:30 Europe/Paris");
  EXPECT_EQ(gateway_.total(), 0u);
  clock_.set(paris(2026, 12, 1, 14, 30));
  EXPECT_EQ(send(*c, r).kind, Outcome::Kind::Delivered);
  EXPECT_EQ(gateway_.total(), 1u);
}

TEST_F(SmsDeliver, ReminderWithoutSendAtIsDueTheOffsetBeforeTheRdv) {
  auto c = make("reminder_offset: 2h\n");
  json r = sms();
  r["reminder"] = true;
  r["rdv_start"] = "2026-12-01T16:00:00+01:00";
  Outcome o = send(*c, r);
  ASSERT_EQ(o.kind, Outcome::Kind::Defer) << o.text;
  EXPECT_EQ(o.not_before, paris(2026, 12, 1, 14, 0));
}

TEST_F(SmsDeliver, OutsideTheWindowWaitsForTheNextOpeningOrIsSkipped) {
  auto c = make();
  clock_.set(paris(2026, 12, 5, 21, 0));  // Saturday 21:00: next opening Monday 08:00
  Outcome o = send(*c, sms());
  ASSERT_EQ(o.kind, Outcome::Kind::Defer) << o.text;
  EXPECT_EQ(o.not_before, paris(2026, 12, 7, 8, 0));
  EXPECT_NE(o.text.find("(plage d'envoi)"), std::string::npos);
  json r = sms();
  r["rdv_start"] = "2026-12-07T07:45:00+01:00";  // before that opening
  Outcome skip = send(*c, r, 2);
  EXPECT_EQ(skip.kind, Outcome::Kind::Skip);
  EXPECT_NE(skip.text.find("après le rendez-vous"), std::string::npos) << skip.text;
  // Christmas is closed too.
  clock_.set(paris(2026, 12, 25, 10, 0));
  EXPECT_EQ(send(*c, sms(), 3).not_before, paris(2026, 12, 26, 8, 0));
  EXPECT_EQ(gateway_.total(), 0u);
}

TEST_F(SmsDeliver, NothingIsSentOnceTheRdvHasStarted) {
  auto c = make("window: false\n");
  json r = sms();
  r["send_at"] = "2026-12-01T09:00:00+01:00";
  r["rdv_start"] = "2026-12-01T10:00:00+01:00";  // now
  Outcome o = send(*c, r);
  EXPECT_EQ(o.kind, Outcome::Kind::Skip);
  EXPECT_NE(o.text.find("le rendez-vous a commencé"), std::string::npos) << o.text;
  EXPECT_EQ(gateway_.total(), 0u);
}

TEST_F(SmsDeliver, OptedOutNumbersAreSkippedUntilAnAdminRemovesThem) {
  auto c = make();
  EXPECT_EQ(call(*c, "POST", "inbound/mo", {{"from", "+33600000000"}, {"text", "STOP"}}).status,
            401);  // no token
  auto mo = call(*c, "POST", "inbound/mo",
                 {{"token", "tok-0123456789"}, {"from", "+33600000000"}, {"text", "Arrêt."}});
  EXPECT_EQ(mo.body["optout"], true);
  EXPECT_EQ(call(*c, "GET", "inbound/mo",
                 {{"token", "tok-0123456789"}, {"from", "+33600000000"}, {"text", "merci"}})
                .body["optout"],
            false);
  Outcome o = send(*c, sms("06.00.00.00.00"));
  EXPECT_EQ(o.kind, Outcome::Kind::Skip);
  EXPECT_NE(o.text.find("(ARRET, "), std::string::npos) << o.text;
  EXPECT_EQ(gateway_.total(), 0u);
  EXPECT_EQ(call(*c, "GET", "optouts", {}, "support").status, 403);
  auto list = call(*c, "GET", "optouts", {}, "admin");
  ASSERT_EQ(list.body["items"].size(), 1u);
  EXPECT_EQ(list.body["items"][0]["source"], "mo:" + std::string("sms-test-1"));
  EXPECT_EQ(call(*c, "DELETE", "optouts", {{"number", "0600000000"}}, "admin").status, 200);
  EXPECT_EQ(call(*c, "DELETE", "optouts", {{"number", "0600000000"}}, "admin").status, 404);
  EXPECT_EQ(send(*c, sms(), 2).kind, Outcome::Kind::Delivered);
  // An admin adds a number by hand.
  EXPECT_EQ(call(*c, "POST", "optouts", {{"number", "06 00 00 00 00"}}, "admin").status, 201);
  EXPECT_EQ(send(*c, sms(), 3).kind, Outcome::Kind::Skip);
}

TEST_F(SmsDeliver, NoSecondSmsOnceTheGatewayTookIt) {
  auto c = make();
  ASSERT_EQ(send(*c, sms(), 5).kind, Outcome::Kind::Delivered);
  // The same delivery again (its outcome was lost in a crash, or a person retried it).
  Outcome again = send(*c, sms(), 5);
  EXPECT_EQ(again.kind, Outcome::Kind::Delivered);
  EXPECT_NE(again.text.find("not sent again"), std::string::npos) << again.text;
  EXPECT_EQ(gateway_.total(), 1u);
}

TEST_F(SmsDeliver, GatewayAnswersAreRetriedOrRejected) {
  auto c = make();
  status_ = 503;
  EXPECT_EQ(send(*c, sms(), 8).kind, Outcome::Kind::Retry);
  status_ = 400;
  Outcome o = send(*c, sms(), 8);
  EXPECT_EQ(o.kind, Outcome::Kind::Reject);
  EXPECT_EQ(call(*c, "GET", "records/8", {}, "auditor").body["state"], "failed");
  status_ = 201;
  Outcome ok = send(*c, sms(), 8);  // a person's retry after the fix
  EXPECT_EQ(ok.kind, Outcome::Kind::Delivered);
  EXPECT_EQ(ok.text.find("sent again"), std::string::npos) << ok.text;
  EXPECT_EQ(gateway_.total(), 3u);
}

// The gateway's "slow down" pauses the destination (not an attempt); it did not take the SMS.
TEST_F(SmsDeliver, TooManyRequestsPausesTheDestination) {
  auto c = make();
  status_ = 429;
  Outcome o = send(*c, sms(), 12);
  EXPECT_EQ(o.kind, Outcome::Kind::Throttle);
  EXPECT_EQ(o.code, 429);
  EXPECT_EQ(call(*c, "GET", "records/12", {}, "admin").body["state"], "retry");
}

TEST_F(SmsDeliver, AnAnswerThatNeverCameIsSentAgainAndSaysSo) {
  auto c = make("timeout: 300ms\n");
  status_ = 0;  // the gateway takes it but answers after the timeout
  Outcome lost = send(*c, sms(), 11);
  EXPECT_EQ(lost.kind, Outcome::Kind::Retry);
  EXPECT_EQ(lost.error_class, "unknown_outcome");
  EXPECT_EQ(call(*c, "GET", "records/11", {}, "admin").body["state"], "submitting");
  status_ = 201;
  Outcome o = send(*c, sms(), 11);
  EXPECT_EQ(o.kind, Outcome::Kind::Delivered);
  EXPECT_NE(o.text.find("the previous attempt's result is unknown: sent again"), std::string::npos)
      << o.text;
}

TEST_F(SmsDeliver, ReportsMoveTheRecordForwardOnly) {
  auto c = make();
  ASSERT_EQ(send(*c, sms(), 9).kind, Outcome::Kind::Delivered);
  std::map<std::string, std::string> q = {{"token", "tok-0123456789"}, {"ref", "d9"}};
  q["status"] = "8";
  EXPECT_EQ(call(*c, "GET", "inbound/dlr", q).body["state"], "smsc");
  q["status"] = "1";
  EXPECT_EQ(call(*c, "GET", "inbound/dlr", q).body["state"], "delivered");
  q["status"] = "8";  // late
  EXPECT_EQ(call(*c, "GET", "inbound/dlr", q).body["state"], "delivered");
  q["ref"] = "d404";
  EXPECT_EQ(call(*c, "GET", "inbound/dlr", q).status, 404);
  q["token"] = "wrong";
  EXPECT_EQ(call(*c, "GET", "inbound/dlr", q).status, 401);
  EXPECT_NE(metrics_.render().find(
                "relais_sms_dlr_total{destination=\"sms-test-1\",state=\"delivered\"} 1"),
            std::string::npos);
}

TEST_F(SmsDeliver, ABurstWaitsForTheRateLimitAndNothingIsDropped) {
  constexpr int kWorkers = 4, kEach = 6;
  auto c = make("rate_limit: 20\nconcurrency: 4\n", kWorkers);
  auto start = std::chrono::steady_clock::now();
  std::atomic<int> delivered{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kEach; ++i) {
        if (send(*c, sms(), 100 + w * kEach + i, w).kind == Outcome::Kind::Delivered) ++delivered;
      }
    });
  }
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(delivered.load(), kWorkers * kEach);
  EXPECT_EQ(gateway_.total(), static_cast<size_t>(kWorkers * kEach));
  // 24 messages at 20 per second cannot take less than 23 intervals of 50 ms.
  EXPECT_GE(elapsed, 23 * 0.05 - 0.01);
}

TEST(SmsConfig, MistakesAreReportedWithTheirKey) {
  Registries registries;
  auto errors_of = [&](const std::string& yaml) {
    HubConfig cfg;
    std::vector<ConfigError> errors;
    load_hub_config_text(
        "store: {path: /nonexistent/relais.db}\nsources:\n  s: {type: $.t}\n"
        "connectors:\n  sms:\n    connector: sms\n" +
            yaml + "routes: []\n",
        "t.yaml", "/tmp", registries.connectors, cfg, errors, &registries.enrichers);
    std::string all;
    for (const auto& e : errors) all += e.to_string() + "\n";
    return all;
  };
  std::string kannel = errors_of("    driver: kannel\n    url: kannel:13013/cgi-bin/sendsms\n");
  EXPECT_NE(kannel.find("connectors.sms.url: the URL must start with http(s)://"),
            std::string::npos)
      << kannel;
  EXPECT_NE(kannel.find("connectors.sms.username: the kannel driver needs username"),
            std::string::npos)
      << kannel;
  std::string ovh = errors_of("    driver: ovh\n    url: https://eu.api.ovh.com/1.0\n");
  EXPECT_NE(ovh.find("the ovh driver needs ovh_application_secret"), std::string::npos) << ovh;
  std::string http = errors_of(
      "    driver: http\n    url: https://p/{{numero}}\n    http_body: '{\"t\":\"{{text}}\"}'\n");
  EXPECT_NE(http.find("connectors.sms.url: unknown placeholder {{numero}}"), std::string::npos)
      << http;
  std::string window = errors_of(
      "    driver: http\n    url: https://p/\n    http_body: x\n    window_close: 8h61\n");
  EXPECT_NE(window.find("window_close: expected HH:MM"), std::string::npos) << window;
  std::string price =
      errors_of("    driver: http\n    url: https://p/\n    http_body: x\n    max_segments: 0\n");
  EXPECT_NE(price.find("connectors.sms.max_segments: value 0 is out of range"), std::string::npos)
      << price;
}

TEST_F(SmsDeliver, TestingTheConnectionReachesTheGatewayAndSendsNothing) {
  auto c = make();
  Status s = c->probe();
  EXPECT_TRUE(s.ok) << s.error << ": " << s.detail;
  EXPECT_TRUE(gateway_.requests().empty());  // a connection, not an SMS
}

}  // namespace
}  // namespace relais
