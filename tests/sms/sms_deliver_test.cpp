// The SMS destination's decisions, in-process, on a ManualClock, with the generic HTTP driver
// towards a recording gateway: numbers, opt-out, length, the reminder's time, the sending
// window, the appointment's start, no second SMS once the gateway took one, the gateway's
// answers, the rate limit (a burst waits, nothing is dropped), and the inbound endpoints.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "connectors/registry.h"
#include "connectors/sms/sms_phone.h"
#include "core/pseudonym.h"
#include "core/sms_store.h"
#include "core/store.h"
#include "core/store_backend.h"
#include "routing/hub_config.h"
#include "store/sqlite/sqlite_backend.h"
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
    stores_ = open_store_backend(StoreLocation{"sqlite", so.path, "", "", ""});
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
    ctx.stores = stores_.get();
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

  // A delivery report from the gateway (Kannel's callback: ref and status).
  InboundResponse dlr(Connector& c, const std::string& ref, int status) {
    return call(c, "GET", "inbound/dlr",
                {{"token", "tok-0123456789"}, {"ref", ref}, {"status", std::to_string(status)}});
  }

  testing::TempDir dir_{"relais-sms-deliver-"};
  std::string store_path_;
  std::unique_ptr<StoreBackend> stores_;  // the connectors' SMS records: one per backend
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

// The opt-out list written before the pseudonym key (unkeyed SHA-256) is still honoured once a
// key is installed, and each legacy entry is rewritten under the keyed hash when it is found.
TEST_F(SmsDeliver, LegacyOptOutHashesAreHonouredAndRewrittenUnderTheKey) {
  struct KeyGuard {
    ~KeyGuard() { set_pseudonym_key(""); }
  } guard;
  const std::string number = "+33600000000";
  auto store = stores_->sms(clock_);
  ASSERT_TRUE(store->add_optout(sms::OptOut{sms::optout_hash(number), 0, "mo:old", "STOP"}));
  const std::string legacy = sms::legacy_optout_hash(number);
  ASSERT_EQ(sms::optout_hash(number), legacy);  // no key yet: the same SHA-256 as before
  set_pseudonym_key(std::string(32, 'k'));
  const std::string keyed = sms::optout_hash(number);
  EXPECT_NE(keyed, legacy);
  EXPECT_EQ(keyed.size(), 64u);
  auto c = make();
  Outcome o = send(*c, sms("06.00.00.00.00"));
  EXPECT_EQ(o.kind, Outcome::Kind::Skip) << o.text;
  EXPECT_EQ(gateway_.total(), 0u);
  EXPECT_TRUE(store->optout(keyed).has_value());
  EXPECT_FALSE(store->optout(legacy).has_value());
  // Another number's legacy entry, removed by number: both forms go.
  const std::string other = "+33611111111";
  ASSERT_TRUE(store->add_optout(sms::OptOut{sms::legacy_optout_hash(other), 0, "mo:old", "STOP"}));
  EXPECT_EQ(call(*c, "GET", "optouts", {{"number", "0611111111"}}, "admin").body["hash"],
            sms::optout_hash(other));
  EXPECT_EQ(call(*c, "DELETE", "optouts", {{"number", "0611111111"}}, "admin").status, 200);
  EXPECT_EQ(call(*c, "GET", "optouts", {{"number", "0611111111"}}, "admin").status, 404);
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

// The gateway took the SMS but its answer never came (timeout after the request went out):
// the result is unknown, so the delivery waits — deferred, not an attempt — for the SMS's
// delivery report, looking again every unknown_outcome_check, and sends again only when no
// report came within unknown_outcome_wait.
TEST_F(SmsDeliver, AnAnswerThatNeverCameWaitsForItsReportThenIsSentAgain) {
  auto c = make("timeout: 300ms\n");
  status_ = 0;  // the gateway takes it but answers after the timeout
  Millis start = clock_.now_ms();
  Outcome o = send(*c, sms(), 11);
  ASSERT_EQ(o.kind, Outcome::Kind::Defer) << o.text;
  EXPECT_EQ(o.error_class, "unknown_outcome");
  EXPECT_EQ(o.not_before, start + 15000);  // unknown_outcome_check
  EXPECT_NE(o.text.find("la passerelle a peut-être reçu le SMS"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("jusqu'à 2026-12-01 10:05"), std::string::npos) << o.text;
  auto rec = call(*c, "GET", "records/11", {}, "admin");
  EXPECT_EQ(rec.body["state"], "unknown");
  EXPECT_EQ(rec.body["reference"], "d11");
  status_ = 201;
  clock_.advance(15000);
  Outcome still = send(*c, sms(), 11);
  ASSERT_EQ(still.kind, Outcome::Kind::Defer) << still.text;
  EXPECT_EQ(still.not_before, start + 30000);
  ASSERT_EQ(gateway_.wait_for(1, 5000), 1u);
  clock_.set(start + 4 * 60000 + 55000);
  EXPECT_EQ(send(*c, sms(), 11).not_before, start + 5 * 60000);  // never past the wait
  clock_.set(start + 5 * 60000);
  Outcome again = send(*c, sms(), 11);
  ASSERT_EQ(again.kind, Outcome::Kind::Delivered) << again.text;
  EXPECT_NE(again.text.find("no delivery report within 5 min of an unknown result: sent again"),
            std::string::npos)
      << again.text;
  EXPECT_EQ(gateway_.total(), 2u);
  rec = call(*c, "GET", "records/11", {}, "admin");
  EXPECT_EQ(rec.body["state"], "accepted");
  EXPECT_EQ(rec.body["reference"], "d11.2");  // the second send has its own reference
  // A late report about the first send: "not delivered" says nothing of the second one...
  std::map<std::string, std::string> q = {
      {"token", "tok-0123456789"}, {"ref", "d11"}, {"status", "2"}};
  EXPECT_EQ(call(*c, "GET", "inbound/dlr", q).body["state"], "accepted");
  // ... "delivered" means the phone has the SMS.
  q["status"] = "1";
  EXPECT_EQ(call(*c, "GET", "inbound/dlr", q).body["state"], "delivered");
}

TEST_F(SmsDeliver, ADeliveryReportWhileWaitingSettlesItWithoutASecondSms) {
  auto c = make("timeout: 300ms\nunknown_outcome_wait: 2m\nunknown_outcome_check: 5s\n");
  status_ = 0;
  Outcome o = send(*c, sms(), 12);
  ASSERT_EQ(o.kind, Outcome::Kind::Defer) << o.text;
  EXPECT_EQ(o.not_before, clock_.now_ms() + 5000);
  // The report for that send arrives (Kannel: ref=d12): the gateway had taken it.
  auto r = dlr(*c, "d12", 1);
  EXPECT_EQ(r.body["state"], "delivered");
  clock_.advance(5000);
  Outcome done = send(*c, sms(), 12);
  ASSERT_EQ(done.kind, Outcome::Kind::Delivered) << done.text;
  EXPECT_NE(done.text.find("(delivered): not sent again"), std::string::npos) << done.text;
  ASSERT_EQ(gateway_.wait_for(1, 5000), 1u);
  EXPECT_EQ(gateway_.total(), 1u);
}

TEST_F(SmsDeliver, AFailedReportWhileWaitingSendsAgainAtOnce) {
  auto c = make("timeout: 300ms\n");
  status_ = 0;
  ASSERT_EQ(send(*c, sms(), 13).kind, Outcome::Kind::Defer);
  auto r = dlr(*c, "d13", 16);
  EXPECT_EQ(r.body["state"], "failed");
  status_ = 201;
  clock_.advance(15000);
  Outcome again = send(*c, sms(), 13);
  ASSERT_EQ(again.kind, Outcome::Kind::Delivered) << again.text;
  EXPECT_NE(again.text.find("(the previous send was reported not delivered: sent again)"),
            std::string::npos)
      << again.text;
  EXPECT_EQ(gateway_.wait_for(2, 5000), 2u);  // the first one answers late
  EXPECT_EQ(call(*c, "GET", "records/13", {}, "admin").body["reference"], "d13.2");
}

// relais was killed after the request went out, before it saved the gateway's answer: the
// record says submitting at restart. The delivery waits for the report like any unknown
// result; the report that comes after the restart settles it.
TEST_F(SmsDeliver, ASubmittingRecordFoundAtRestartWaitsForItsReport) {
  auto store = stores_->sms(clock_);
  sms::SmsRecord crashed;
  crashed.delivery_id = 14;
  crashed.destination = "sms-test-1";
  crashed.driver = "http";
  crashed.number_hash = "h";
  crashed.encoding = "GSM-7";
  crashed.segments = 1;
  ASSERT_EQ(store->begin_attempt(crashed, ""), sms::SmsStore::Begin::Started);
  clock_.advance(60000);  // the restart
  auto c = make();
  Outcome o = send(*c, sms(), 14);
  ASSERT_EQ(o.kind, Outcome::Kind::Defer) << o.text;
  EXPECT_EQ(o.error_class, "unknown_outcome");
  EXPECT_EQ(call(*c, "GET", "records/14", {}, "admin").body["state"], "unknown");
  // The wait counts from the restart, not from the lost send.
  clock_.advance(4 * 60000);
  EXPECT_EQ(send(*c, sms(), 14).kind, Outcome::Kind::Defer);
  auto r = dlr(*c, "d14", 8);
  EXPECT_EQ(r.body["state"], "smsc");
  clock_.advance(15000);
  Outcome done = send(*c, sms(), 14);
  EXPECT_EQ(done.kind, Outcome::Kind::Delivered) << done.text;
  EXPECT_EQ(gateway_.total(), 0u);
}

// The gateway's delivery report and the connector's own save of the gateway's answer, in the
// three orders, on the real store: the record never goes back and created_at never changes.
TEST_F(SmsDeliver, AReportBeforeTheConnectorSavesItsAnswerIsKept) {
  auto c = make();
  auto store = stores_->sms(clock_);
  Millis created = clock_.now_ms();
  store->set_before_write_for_test([&](const std::string& op, int64_t id) {
    if (op != "answer") return;
    clock_.advance(2000);
    EXPECT_EQ(dlr(*c, "d" + std::to_string(id), 1).body["state"], "delivered");
  });
  ASSERT_EQ(send(*c, sms(), 21).kind, Outcome::Kind::Delivered);
  store->set_before_write_for_test(nullptr);
  auto rec = call(*c, "GET", "records/21", {}, "admin");
  EXPECT_EQ(rec.body["state"], "delivered");
  EXPECT_EQ(rec.body["dlr_status"], 1);
  EXPECT_EQ(rec.body["gateway_ref"], "gw-1");  // the answer's id is saved all the same
  EXPECT_EQ(rec.body["created_at"], format_rfc3339(created));
  EXPECT_EQ(rec.body["updated_at"], format_rfc3339(created + 2000));
}

TEST_F(SmsDeliver, AReportDuringTheConnectorsSaveIsKept) {
  auto c = make();
  auto store = stores_->sms(clock_);
  std::vector<std::thread> reports;
  std::mutex mu;
  // The report runs on its own thread, started just as the connector writes its answer: the
  // two writes race on the store (either may win the lock), many times over.
  store->set_before_write_for_test([&](const std::string& op, int64_t id) {
    if (op != "answer") return;
    std::lock_guard<std::mutex> lock(mu);
    reports.emplace_back([&, id] {
      auto r = dlr(*c, "d" + std::to_string(id), 1);
      EXPECT_EQ(r.status, 200);
    });
  });
  constexpr int kSms = 40;
  for (int i = 0; i < kSms; ++i) {
    ASSERT_EQ(send(*c, sms(), 100 + i).kind, Outcome::Kind::Delivered);
  }
  for (auto& t : reports) t.join();
  store->set_before_write_for_test(nullptr);
  for (int i = 0; i < kSms; ++i) {
    auto rec = call(*c, "GET", "records/" + std::to_string(100 + i), {}, "admin");
    EXPECT_EQ(rec.body["state"], "delivered") << i;
    EXPECT_EQ(rec.body["gateway_ref"], "gw-1") << i;
  }
}

TEST_F(SmsDeliver, AReportAfterTheConnectorsSaveMovesItForward) {
  auto c = make();
  auto store = stores_->sms(clock_);
  std::vector<std::string> writes;
  store->set_before_write_for_test([&](const std::string& op, int64_t) { writes.push_back(op); });
  Millis created = clock_.now_ms();
  ASSERT_EQ(send(*c, sms(), 22).kind, Outcome::Kind::Delivered);
  store->set_before_write_for_test(nullptr);
  EXPECT_EQ(writes, (std::vector<std::string>{"begin_attempt", "answer"}));
  EXPECT_EQ(call(*c, "GET", "records/22", {}, "admin").body["state"], "accepted");
  clock_.advance(3000);
  auto r = dlr(*c, "d22", 1);
  EXPECT_EQ(r.body["state"], "delivered");
  auto rec = call(*c, "GET", "records/22", {}, "admin");
  EXPECT_EQ(rec.body["created_at"], format_rfc3339(created));
  // A person's retry of the delivered SMS sends nothing and changes nothing.
  EXPECT_NE(send(*c, sms(), 22).text.find("not sent again"), std::string::npos);
  EXPECT_EQ(call(*c, "GET", "records/22", {}, "admin").body["state"], "delivered");
  EXPECT_EQ(gateway_.total(), 1u);
}

// A mapping that gives the region reads a national overseas number with it.
TEST_F(SmsDeliver, TheMappingsRegionReadsANationalOverseasNumber) {
  auto c = make();
  json re = sms("0692 12 34 56");
  re["region"] = "RE";
  ASSERT_EQ(send(*c, re, 31).kind, Outcome::Kind::Delivered);
  ASSERT_EQ(gateway_.requests().size(), 1u);
  EXPECT_EQ(json::parse(gateway_.requests()[0].body)["to"], "+262692123456");
  // Without it, the same number is not a French mobile.
  Outcome fr = send(*c, sms("0692 12 34 56"), 32);
  EXPECT_EQ(fr.kind, Outcome::Kind::Skip);
  EXPECT_NE(fr.text.find("région FR"), std::string::npos) << fr.text;
  // The region wins over the postcode; an unknown region is the mapping's mistake.
  re["postcode"] = "76000";
  EXPECT_EQ(send(*c, re, 33).kind, Outcome::Kind::Delivered);
  re["region"] = "XX";
  Outcome bad = send(*c, re, 34);
  EXPECT_EQ(bad.kind, Outcome::Kind::Reject);
  EXPECT_EQ(bad.error_class, "mapping");
  EXPECT_EQ(gateway_.total(), 2u);
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
