// The SMS destination against a real Kannel (bearerbox + smsbox + the fake SMSC): a
// confirmation reaches the fake SMSC, Kannel's delivery reports update the SMS record, a STOP
// sent from the phone opts the number out, and a gateway outage (fake SMSC gone, then smsbox
// stopped) loses nothing.

#include <gtest/gtest.h>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "tests/sms/kannel_gateway.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;
using std::chrono::seconds;

constexpr const char* kInboundToken = "kannel-callback-token-0123456789";
#ifdef RELAIS_SMS_BENCH_BUILD
constexpr bool kBenchBuild = true;  // bench_sms_kannel: measures without a rate limit
#else
constexpr bool kBenchBuild = false;
#endif

json planned(int rdv, const std::string& event_id, const std::string& heure = "10:00") {
  json j =
      json::parse(read_file(std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/rdv-planned.json"));
  j["id"] = event_id;
  j["rdv"]["id"] = rdv;
  j["rdv"]["heure"] = heure;
  j["rdv"]["date"] = "2030-05-17";  // a Friday to come: nothing is sent for a past RDV
  return j;
}

// relais on a fixed port (Kannel's callbacks name it) with one Kannel SMS destination.
class KannelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    relais_port_ = free_port();
    std::string base =
        "http://127.0.0.1:" + std::to_string(relais_port_) + "/api/v1/connectors/sms/inbound/";
    KannelOptions ko;
    ko.mo_url = base + "mo?token=" + kInboundToken + "&from=%p&text=%a";
    kannel_ = std::make_unique<KannelGateway>(ko);
    kannel_->start();

    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.port = relais_port_;
    std::string src = RELAIS_SOURCE_DIR;
    // The shipped confirmation, and a mapping that passes to, text and send_at through.
    maps_.write("rdv-sms-confirmation.yaml",
                read_file(src + "/config/mappings/rdv-sms-confirmation.yaml"));
    maps_.write("sms-direct.yaml",
                "name: sms-direct\ndescription: test\nfields:\n  to: $.to\n  text: $.text\n"
                "  send_at: $.send_at\n");
    o.body_yaml =
        "sources:\n"
        "  cms76:\n"
        "    type: $.event\n"
        "    correlation: [\"rdv:{$.rdv.id}\"]\n"
        "    idempotency: $.id\n"
        "mappings:\n"
        "  directory: " +
        maps_.path() +
        "\n"
        "  tables: " +
        src +
        "/config/tables\n"
        "connectors:\n"
        "  sms:\n"
        "    connector: sms\n"
        "    driver: kannel\n"
        "    url: " +
        gateway_url() +
        "\n"
        "    username: relais\n"
        "    password: kannel-test-password\n"
        "    sender: CD76\n"
        "    dlr_url: " +
        base + "dlr?token=" + kInboundToken +
        "\n"
        "    inbound_token: " +
        kInboundToken + "\n" + sms_extra_yaml() +
        "    window: false\n"  // the tests run at any hour; the window has its own tests
        "    concurrency: 4\n"
        "    rate_limit: " +
        std::string(kBenchBuild ? "0" : "10") +
        "\n"
        "    retry: {initial: 200ms, max: 1s, max_attempts: 1000, max_age: 1h}\n"
        "routes:\n"
        "  - name: rdv-sms\n"
        "    source: cms76\n"
        "    type: rdv.planned\n"
        "    to: [{destination: sms, mapping: rdv-sms-confirmation}]\n"
        "  - name: direct\n"
        "    source: cms76\n"
        "    type: sms.direct\n"
        "    to: [{destination: sms, mapping: sms-direct}]\n";
    relais_ = std::make_unique<RelaisProcess>(o);
    relais_->start();
    admin_ = std::make_unique<HttpClient>(relais_->client());
    system_ = std::make_unique<HttpClient>(relais_->base_url(), relais_->system_token());
  }

  // Where relais sends its sendsms requests, and more keys of the SMS destination.
  virtual std::string gateway_url() { return kannel_->sendsms_url(); }
  virtual std::string sms_extra_yaml() { return ""; }

  void TearDown() override {
    // A clean exit (0): under the sanitizers a leak or an error would change it.
    if (relais_) {
      EXPECT_EQ(relais_->stop(), 0) << relais_->stderr_text();
    }
    if (kannel_) kannel_->stop();
  }

  // Posts an event; returns its message id.
  std::string post(const json& event) {
    auto r = system_->post_json("/api/v1/sources/cms76/messages", event.dump());
    EXPECT_EQ(r.status, 202) << r.body;
    return r.json().value("id", "");
  }

  json delivery(const std::string& message_id) {
    auto r = admin_->get("/api/v1/messages/" + message_id);
    json d = r.json();
    if (!d.is_object() || !d.contains("deliveries") || d["deliveries"].empty()) return json();
    return d["deliveries"][0];
  }

  bool wait_state(const std::string& message_id, const std::string& state, int timeout_s = 30) {
    return wait_until([&] { return delivery(message_id).value("state", "") == state; },
                      seconds(timeout_s), std::chrono::milliseconds(50));
  }

  // Waits until the SMS record of a delivery reaches `state`; `rec` is the last one read.
  bool wait_record_state(const std::string& delivery_id, const std::string& state, json& rec) {
    return wait_until(
        [&] {
          rec = admin_->get("/api/v1/connectors/sms/records/" + delivery_id).json();
          return rec.value("state", "") == state;
        },
        seconds(30));
  }

  TempDir maps_{"relais-sms-maps-"};
  int relais_port_ = 0;
  std::unique_ptr<KannelGateway> kannel_;
  std::unique_ptr<RelaisProcess> relais_;
  std::unique_ptr<HttpClient> admin_, system_;
};

TEST_F(KannelTest, ConfirmationReachesThePhoneAndReportsUpdateTheRecord) {
  std::string id = post(planned(91877, "evt-k-1"));
  ASSERT_TRUE(wait_state(id, "delivered")) << delivery(id).dump();
  ASSERT_TRUE(wait_until([&] { return kannel_->received() >= 1; }, seconds(30)));
  std::string seen = kannel_->fakesmsc_output();
  EXPECT_NE(seen.find("<CD76 +33600000000 "), std::string::npos) << seen;
  ASSERT_EQ(kannel_->messages().size(), 1u);
  EXPECT_EQ(kannel_->messages()[0],
            "Département 76 : votre rendez-vous est fixé le vendredi 17 mai à 10h00 au CMS de "
            "Barentin, Place de la Libération, 76360 Barentin. Pour le modifier, appelez le 02 35 "
            "00 00 00.");
  json d = delivery(id);
  EXPECT_NE(d["last_outcome"]["text"].get<std::string>().find("0: Accepted for delivery"),
            std::string::npos)
      << d.dump();
  std::string ref = d.value("external_ref", "");
  ASSERT_EQ(ref, "d" + d["id"].get<std::string>());
  // Kannel reports 8 (SMSC took it) then 1 (delivered to the phone).
  json rec;
  ASSERT_TRUE(wait_record_state(d["id"].get<std::string>(), "delivered", rec)) << rec.dump();
  EXPECT_EQ(rec["dlr_status"], 1);
  EXPECT_EQ(rec["segments"], 2);  // 170 GSM-7 characters
  EXPECT_EQ(rec["encoding"], "GSM-7");
  EXPECT_GT(rec["cost_cents"].get<double>(), 0);
  std::string metrics = admin_->get("/metrics").body;
  EXPECT_NE(metrics.find("relais_sms_dlr_total{destination=\"sms\",state=\"delivered\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics.find("relais_sms_sent_total{destination=\"sms\",encoding=\"GSM-7\"} 1"),
            std::string::npos);
  // A report without the token is refused.
  HttpClient anonymous(relais_->base_url());
  EXPECT_EQ(anonymous.get("/api/v1/connectors/sms/inbound/dlr?ref=" + ref + "&status=2").status,
            401);
}

TEST_F(KannelTest, StopFromThePhoneOptsTheNumberOut) {
  kannel_->stop_fakesmsc();
  kannel_->start_fakesmsc("+33600000000 12345 text Stop SMS");
  json entry;
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = admin_->get("/api/v1/connectors/sms/optouts?number=06.00.00.00.00");
        entry = r.json();
        return r.status == 200;
      },
      seconds(30)));
  EXPECT_EQ(entry["keyword"], "STOP");
  EXPECT_EQ(entry["source"], "mo:sms");
  EXPECT_EQ(entry["hash"].get<std::string>().size(), 64u);
  // Only admins see and change the list.
  EXPECT_EQ(system_->get("/api/v1/connectors/sms/optouts").status, 403);
  auto list = admin_->get("/api/v1/connectors/sms/optouts").json();
  ASSERT_EQ(list["items"].size(), 1u);

  std::string skipped = post(planned(1, "evt-k-stop-1"));
  ASSERT_TRUE(wait_state(skipped, "skipped"));
  EXPECT_NE(delivery(skipped)["last_outcome"]["text"].get<std::string>().find(
                "a demandé l'arrêt des SMS"),
            std::string::npos);
  EXPECT_EQ(kannel_->received(), 0);

  auto del = admin_->request(
      "DELETE", "/api/v1/connectors/sms/optouts/" + entry["hash"].get<std::string>(), "", "", {});
  EXPECT_EQ(del.status, 200) << del.body;
  std::string sent = post(planned(2, "evt-k-stop-2"));
  ASSERT_TRUE(wait_state(sent, "delivered"));
  EXPECT_TRUE(wait_until([&] { return kannel_->received() == 1; }, seconds(30)));
}

TEST_F(KannelTest, GatewayOutageLosesNothing) {
  // 1. The SMSC link is down: Kannel queues ("3: Queued for later delivery").
  kannel_->stop_fakesmsc();
  std::vector<std::string> queued, retried;
  for (int i = 0; i < 5; ++i) {
    queued.push_back(
        post(planned(100 + i, "evt-q-" + std::to_string(i), "09:0" + std::to_string(i))));
  }
  for (const auto& id : queued) {
    ASSERT_TRUE(wait_state(id, "delivered"));
    EXPECT_NE(delivery(id)["last_outcome"]["text"].get<std::string>().find("3: Queued"),
              std::string::npos);
  }
  // 2. smsbox is down too: relais cannot reach the gateway and keeps retrying.
  kannel_->stop_smsbox();
  for (int i = 0; i < 5; ++i) {
    retried.push_back(
        post(planned(200 + i, "evt-r-" + std::to_string(i), "11:0" + std::to_string(i))));
  }
  for (const auto& id : retried) ASSERT_TRUE(wait_state(id, "retrying"));
  // 3. Back up: Kannel delivers what it queued, relais sends what it held.
  kannel_->start_fakesmsc();
  kannel_->start_smsbox();
  for (const auto& id : retried) ASSERT_TRUE(wait_state(id, "delivered", 60));
  ASSERT_TRUE(wait_until([&] { return kannel_->received() >= 10; }, seconds(60)))
      << kannel_->fakesmsc_output();
  std::string seen;
  for (const auto& m : kannel_->messages()) seen += m + "\n";
  for (int i = 0; i < 5; ++i) {
    EXPECT_NE(seen.find("à 09h0" + std::to_string(i)), std::string::npos) << i;
    EXPECT_NE(seen.find("à 11h0" + std::to_string(i)), std::string::npos) << i;
  }
  EXPECT_EQ(kannel_->received(), 10);  // each exactly once
}

TEST_F(KannelTest, AScheduledSmsSurvivesAKillAndGoesAtItsTime) {
  using std::chrono::system_clock;
  auto send_at = system_clock::now() + seconds(15);  // room for a loaded machine
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(send_at.time_since_epoch());
  std::string at = format_rfc3339(ms.count());
  json e = {{"event", "sms.direct"}, {"id", "direct-1"},           {"rdv", {{"id", 5}}},
            {"to", "+33611111111"},  {"text", "Rappel programmé"}, {"send_at", at}};
  std::string id = post(e);
  ASSERT_TRUE(wait_until(
      [&] {
        json d = delivery(id);
        return d.contains("last_outcome") && d["last_outcome"]["outcome"] == "defer";
      },
      seconds(30)))
      << delivery(id).dump();
  json d = delivery(id);
  EXPECT_EQ(d["state"], "pending");
  EXPECT_EQ(d["attempt_count"], 0);
  EXPECT_TRUE(d.contains("scheduled_at")) << d.dump();
  EXPECT_EQ(kannel_->received(), 0);
  relais_->kill9();
  relais_->restart();
  admin_ = std::make_unique<HttpClient>(relais_->client());
  system_ = std::make_unique<HttpClient>(relais_->base_url(), relais_->system_token());
  ASSERT_TRUE(wait_state(id, "delivered", 60)) << delivery(id).dump();
  ASSERT_TRUE(wait_until([&] { return kannel_->received() == 1; }, seconds(30)));
  EXPECT_EQ(kannel_->messages()[0], "Rappel programmé");
  // Sent at or after its time (the attempt's start, from the history).
  json full = admin_->get("/api/v1/messages/" + id).json()["deliveries"][0];
  Millis sent = 0;
  for (const auto& a : full["attempts"]) {
    if (a["outcome"] == "delivered") parse_rfc3339(a["at"].get<std::string>(), sent);
  }
  EXPECT_GE(sent, ms.count() - 1) << full.dump();
}

// Between relais and Kannel: holds each sendsms request until released, then hands it to
// Kannel and answers what Kannel answered. Thread-safe (the sink's handler threads wait on it).
class HoldingProxy {
 public:
  explicit HoldingProxy(std::string kannel_base) : kannel_base_(std::move(kannel_base)) {
    sink_.set_responder([this](const tools::SinkRequest& r) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        ++arrived_;
        cv_.notify_all();
        cv_.wait_for(lock, seconds(120), [&] { return released_; });
      }
      HttpClient kannel;
      auto a = kannel.get(kannel_base_ + r.path);
      tools::SinkResponse out;
      out.status = a.status == 0 ? 502 : static_cast<int>(a.status);
      out.body = a.body;
      return out;
    });
  }
  ~HoldingProxy() { release(); }
  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  // Waits until n requests arrived (held or not).
  bool wait_arrived(int n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return arrived_ >= n; });
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(sink_.port()) + "/cgi-bin/sendsms";
  }
  tools::HttpSink& sink() { return sink_; }

 private:
  std::string kannel_base_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  int arrived_ = 0;
  tools::HttpSink sink_;
};

// relais sends through the holding proxy, and waits up to 2 minutes for the report of an SMS
// whose result is unknown, looking every second.
class KannelKillTest : public KannelTest {
 protected:
  std::string gateway_url() override {
    std::string base = kannel_->sendsms_url();
    proxy_ = std::make_unique<HoldingProxy>(base.substr(0, base.find("/cgi-bin/")));
    return proxy_->url();
  }
  std::string sms_extra_yaml() override {
    return "    unknown_outcome_wait: 2m\n    unknown_outcome_check: 1s\n";
  }
  void TearDown() override {
    if (proxy_) proxy_->release();
    KannelTest::TearDown();
  }
  std::unique_ptr<HoldingProxy> proxy_;
};

// relais is killed after its sendsms request reached Kannel and before it saved Kannel's
// answer. Kannel sends the SMS and calls back with its delivery reports while relais is down:
// smsbox retries them (http-request-retry). After the restart the record says submitting:
// the delivery waits for the report, which settles it — the SMS is not sent a second time.
TEST_F(KannelKillTest, TheSmsSubmittedJustBeforeAKillIsNotSentTwiceWhenItsReportComesAfter) {
  json e = {{"event", "sms.direct"},
            {"id", "direct-kill-1"},
            {"rdv", {{"id", 6}}},
            {"to", "+33622222222"},
            {"text", "Rappel : vous avez rendez-vous demain à 10h00."}};
  std::string id = post(e);
  // relais's request is at the gateway's door, relais waits for the answer: kill it.
  ASSERT_TRUE(proxy_->wait_arrived(1, seconds(30)));
  relais_->kill9();
  size_t log_before = kannel_->smsbox_log().size();
  proxy_->release();  // Kannel takes the SMS; its answer goes nowhere
  ASSERT_TRUE(wait_until([&] { return kannel_->received() == 1; }, seconds(30)))
      << kannel_->fakesmsc_output();
  // Kannel's report could not reach relais ("Couldn't fetch <…/inbound/dlr…>"): smsbox will
  // try again (http-request-retry).
  ASSERT_TRUE(wait_until(
      [&] {
        std::string log = kannel_->smsbox_log();
        size_t at = log.find("Couldn't fetch <", log_before);
        return at != std::string::npos && log.find("/inbound/dlr", at) != std::string::npos;
      },
      seconds(30)))
      << kannel_->smsbox_log().substr(log_before);
  relais_->restart();
  admin_ = std::make_unique<HttpClient>(relais_->client());
  system_ = std::make_unique<HttpClient>(relais_->base_url(), relais_->system_token());
  ASSERT_TRUE(wait_state(id, "delivered", 90)) << delivery(id).dump();
  json d = admin_->get("/api/v1/messages/" + id).json()["deliveries"][0];
  EXPECT_NE(d["last_outcome"]["text"].get<std::string>().find("not sent again"), std::string::npos)
      << d.dump();
  // After the restart the delivery first waited for the report (the restarted hub attempts it
  // before its API listens, so before any report can arrive).
  int waited = 0;
  for (const auto& a : d["attempts"]) {
    if (a["outcome"] == "defer" && a["class"] == "unknown_outcome") ++waited;
  }
  EXPECT_GE(waited, 1) << d.dump();
  json rec;
  ASSERT_TRUE(wait_record_state(d["id"].get<std::string>(), "delivered", rec)) << rec.dump();
  EXPECT_EQ(rec["reference"], "d" + d["id"].get<std::string>());  // the first send's report
  EXPECT_EQ(proxy_->sink().total(), 1u);
  EXPECT_EQ(kannel_->received(), 1) << kannel_->fakesmsc_output();
  std::printf("after the restart: %s\n", d["last_outcome"]["text"].get<std::string>().c_str());
}

#ifdef RELAIS_SMS_BENCH_BUILD
// A measurement, not a check, so it is compiled only into the benchmark binary
// (`bench_sms_kannel --gtest_filter='*Throughput*'`, built with RELAIS_BENCH=ON), never into
// the test suite, and without a rate limit.
TEST_F(KannelTest, Throughput) {
  constexpr int kCount = 300;
  std::string ndjson;
  for (int i = 0; i < kCount; ++i) {
    ndjson += planned(1000 + i, "bench-" + std::to_string(i)).dump() + "\n";
  }
  auto start = std::chrono::steady_clock::now();
  auto r = system_->post_ndjson("/api/v1/sources/cms76/messages:batch", ndjson);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_TRUE(wait_until([&] { return kannel_->received() >= kCount; }, seconds(300),
                         std::chrono::milliseconds(100)));
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "%d confirmations (2 segments each) through relais and Kannel to the fake SMSC in "
      "%.2f s: %.0f SMS/s\n",
      kCount, s, kCount / s);
}

#endif  // RELAIS_SMS_BENCH_BUILD

}  // namespace
}  // namespace relais::testing
