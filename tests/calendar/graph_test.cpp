// The calendar connector with the Graph driver against the Graph simulator: planned/moved/
// cancelled, the transactionId that makes a repeated create idempotent, the extended property,
// 429 + Retry-After, token failures as configuration errors naming the fix, 401 refresh, rights
// and mailbox errors, free/busy.

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "connectors/calendar/calendar.h"
#include "tests/calendar/calendar_test_support.h"
#include "tests/calendar/graph_simulator.h"
#include "tests/support/saves_then_resets.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

const std::string kMb = "lea.gosselin@example.org";

std::string graph_yaml(const GraphSimulator& sim, const std::string& secret = "relais-secret",
                       const std::string& extra = "") {
  return "driver: graph\nurl: " + sim.url() + "\ntoken_url: " + sim.token_url() +
         "\nclient_id: relais-client\nclient_secret: " + secret + "\n" + extra;
}

nlohmann::json planned(int rdv = 91877) {
  return rdv_event(kMb, rdv, "2019-05-17T10:00:00+02:00", "2019-05-17T10:30:00+02:00");
}
nlohmann::json moved(int rdv = 91877) {
  return rdv_event(kMb, rdv, "2019-05-20T14:30:00+02:00", "2019-05-20T15:15:00+02:00",
                   "Visite à domicile (Rouen)");
}

class GraphTest : public ::testing::Test {
 protected:
  void SetUp() override { sim.add_mailbox(kMb); }
  void TearDown() override { EXPECT_TRUE(sim.violations().empty()) << sim.violations().front(); }
  GraphSimulator sim;
};

TEST_F(GraphTest, PlannedMovedCancelledFollowTheCalendar) {
  CalendarHarness h(graph_yaml(sim));
  ASSERT_TRUE(h.config_errors().empty()) << h.config_errors().front();
  Outcome o = h.send("rdv.planned", 1, planned(1));
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  auto evs = sim.events(kMb);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].key, "rdv:1");
  EXPECT_EQ(evs[0].transaction_id, calendar::transaction_id("rdv:1"));
  EXPECT_EQ(evs[0].body["start"]["dateTime"], "2019-05-17T10:00:00");
  EXPECT_EQ(evs[0].body["start"]["timeZone"], "Romance Standard Time");
  EXPECT_EQ(evs[0].body["body"]["contentType"], "text");
  EXPECT_EQ(evs[0].body["reminderMinutesBeforeStart"], 15);
  auto x = h.xrefs().get("agenda", "rdv:1");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->external_id, evs[0].id);
  EXPECT_EQ(x->version.rfind(evs[0].change_key + "|", 0), 0u) << x->version;

  o = h.send("rdv.moved", 1, moved(1));
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  evs = sim.events(kMb);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].body["start"]["dateTime"], "2019-05-20T14:30:00");
  EXPECT_EQ(evs[0].body["location"]["displayName"], "Visite à domicile (Rouen)");
  bool patched = false;
  for (const auto& r : sim.requests()) patched = patched || r.method == "PATCH";
  EXPECT_TRUE(patched);

  o = h.send("rdv.cancelled", 1, nlohmann::json{{"mailbox", kMb}});
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_TRUE(sim.events(kMb).empty());
  EXPECT_EQ(h.xrefs().get("agenda", "rdv:1")->external_id, "-");  // a tombstone
  EXPECT_EQ(sim.tokens_issued(), 1);
}

// The answer to POST /events is lost on a reused keep-alive connection after Graph saved the
// event: not sent again by libcurl, "unknown outcome", and the next attempt searches by key
// (not only the transactionId) and adopts the event: one event, one POST.
TEST_F(GraphTest, CreateLostOnAReusedConnectionIsNotSentTwiceAndIsFoundNext) {
  std::string base = sim.base();
  SavesThenResets net(std::stoi(base.substr(base.rfind(':') + 1)));
  std::string api = net.base() + sim.url().substr(base.size());
  CalendarHarness h("driver: graph\nurl: " + api + "\ntoken_url: " + sim.token_url() +
                    "\nclient_id: relais-client\nclient_secret: relais-secret\n");
  ASSERT_EQ(h.send("rdv.planned", 40, planned(40)).kind, Outcome::Kind::Delivered);
  auto create_of = [](int rdv) {
    return [rdv](const SavedRequest& r) {
      return r.method == "POST" && r.body.find("rdv:" + std::to_string(rdv)) != std::string::npos;
    };
  };
  net.arm(create_of(41));
  Outcome o = h.send("rdv.planned", 41, planned(41));
  ASSERT_TRUE(net.fired());
  EXPECT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
  EXPECT_EQ(o.error_class, "unknown_outcome") << outcome_text(o);
  EXPECT_EQ(net.count(create_of(41)), 1u);
  ASSERT_EQ(sim.events(kMb).size(), 2u);
  EXPECT_EQ(h.xrefs().get("agenda", "rdv:41")->external_id, "?");

  o = h.send("rdv.planned", 41, planned(41));
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_NE(o.text.find("no duplicate"), std::string::npos) << o.text;
  EXPECT_EQ(net.count(create_of(41)), 1u);
  auto evs = sim.events(kMb);
  ASSERT_EQ(evs.size(), 2u);
  std::string id41;
  for (const auto& e : evs) id41 = e.key == "rdv:41" ? e.id : id41;
  EXPECT_EQ(h.xrefs().get("agenda", "rdv:41")->external_id, id41);
}

TEST_F(GraphTest, RepeatedCreateWithTheSameTransactionIdDoesNotDuplicate) {
  CalendarHarness h(graph_yaml(sim));
  ASSERT_EQ(h.send("rdv.planned", 2, planned(2)).kind, Outcome::Kind::Delivered);
  // The cross-reference is lost (relais killed before writing it): the create is replayed.
  ASSERT_TRUE(h.xrefs().remove("agenda", "rdv:2"));
  Outcome o = h.send("rdv.planned", 2, planned(2));
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  ASSERT_EQ(sim.events(kMb).size(), 1u);
  EXPECT_EQ(h.xrefs().get("agenda", "rdv:2")->external_id, sim.events(kMb)[0].id);
  // A lost response: the event exists, Relais retries, still one event.
  sim.periodic(0, 0, 1);
  ASSERT_EQ(h.send("rdv.planned", 3, planned(3)).kind, Outcome::Kind::Retry);
  sim.periodic(0, 0, 0);
  ASSERT_EQ(h.send("rdv.planned", 3, planned(3), 2).kind, Outcome::Kind::Delivered);
  EXPECT_EQ(sim.events(kMb).size(), 2u);
}

TEST_F(GraphTest, PatchCarriesOnlyTheChangedFields) {
  CalendarHarness h(graph_yaml(sim));
  ASSERT_EQ(h.send("rdv.planned", 14, planned(14)).kind, Outcome::Kind::Delivered);
  auto other_place = planned(14);
  other_place["event"]["location"] = "Visite à domicile (Rouen)";
  ASSERT_EQ(h.send("rdv.moved", 14, other_place).kind, Outcome::Kind::Delivered);
  nlohmann::json patch;
  for (const auto& r : sim.requests()) {
    if (r.method == "PATCH") patch = nlohmann::json::parse(r.body);
  }
  ASSERT_TRUE(patch.is_object());
  EXPECT_EQ(patch.size(), 1u) << patch.dump();
  EXPECT_EQ(patch["location"]["displayName"], "Visite à domicile (Rouen)");
}

TEST_F(GraphTest, AnRdvPlannedAgainAfterItsCancellationIsANewEvent) {
  CalendarHarness h(graph_yaml(sim));
  ASSERT_EQ(h.send("rdv.planned", 30, planned(30)).kind, Outcome::Kind::Delivered);
  ASSERT_EQ(h.send("rdv.cancelled", 30, nlohmann::json{{"mailbox", kMb}}).kind,
            Outcome::Kind::Delivered);
  EXPECT_EQ(h.xrefs().get("agenda", "rdv:30")->version, "deleted|1");
  // The simulator remembers the first transactionId even though its event is deleted: the new
  // create must use another one, or the RDV would silently stay out of the calendar.
  Outcome o = h.send("rdv.planned", 30, moved(30));
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  auto evs = sim.events(kMb);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].transaction_id, calendar::transaction_id("rdv:30", 1));
  EXPECT_NE(evs[0].transaction_id, calendar::transaction_id("rdv:30"));
  EXPECT_EQ(h.xrefs().get("agenda", "rdv:30")->external_id, evs[0].id);
  EXPECT_EQ(evs[0].body["start"]["dateTime"], "2019-05-20T14:30:00");
  // Cancelled and planned once more: generation 2.
  ASSERT_EQ(h.send("rdv.cancelled", 30, nlohmann::json{{"mailbox", kMb}}).kind,
            Outcome::Kind::Delivered);
  ASSERT_EQ(h.send("rdv.planned", 30, planned(30)).kind, Outcome::Kind::Delivered);
  evs = sim.events(kMb);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].transaction_id, calendar::transaction_id("rdv:30", 2));
  // Deleted in Outlook, then moved: created again as a new generation, not the deleted one.
  sim.erase(kMb, evs[0].id);
  Outcome again = h.send("rdv.moved", 30, moved(30));
  ASSERT_EQ(again.kind, Outcome::Kind::Delivered) << outcome_text(again);
  evs = sim.events(kMb);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].transaction_id, calendar::transaction_id("rdv:30", 3));
  EXPECT_EQ(h.xrefs().get("agenda", "rdv:30")->external_id, evs[0].id);
}

// A 429 pauses that mailbox (every slot, free/busy too) for its Retry-After; a 503 without
// Retry-After is an ordinary transient failure.
TEST_F(GraphTest, ThrottlingPausesTheMailboxForItsRetryAfter) {
  CalendarHarness h(graph_yaml(sim));
  sim.set_clock([&h] { return h.clock().now_ms(); });
  sim.inject(GraphSimulator::Fault::Throttle);
  Outcome o = h.send("rdv.planned", 4, planned(4));
  ASSERT_EQ(o.kind, Outcome::Kind::Throttle) << outcome_text(o);
  EXPECT_EQ(o.code, 429);
  EXPECT_EQ(o.throttle_scope, kMb);
  ASSERT_TRUE(o.retry_after_ms);
  EXPECT_EQ(*o.retry_after_ms, 2128);  // the sample's "Retry-After: 2.128"
  size_t sent = sim.total();
  o = h.send("rdv.planned", 5, planned(5), 1, 1);
  EXPECT_EQ(o.kind, Outcome::Kind::Throttle) << outcome_text(o);
  calendar::Result fb =
      calendar::free_busy(h.connector(), kMb, "2019-05-17T00:00:00Z", "2019-05-18T00:00:00Z");
  EXPECT_EQ(fb.failure.kind, Outcome::Kind::Throttle);
  EXPECT_EQ(sim.total(), sent);
  h.clock().advance(2128);
  sim.inject(GraphSimulator::Fault::Http503);
  o = h.send("rdv.planned", 4, planned(4));
  EXPECT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
  EXPECT_EQ(h.send("rdv.planned", 4, planned(4)).kind, Outcome::Kind::Delivered);
}

// Times follow the instant the mapping gave, whatever its offset: Graph gets the wall clock of
// that instant in the event's zone (summer and winter time of Paris).
TEST_F(GraphTest, TimesFollowTheInstantInTheEventsZone) {
  CalendarHarness h(graph_yaml(sim));
  // 08:00Z in May is 10:00 in Paris; 09:00+00:00 in December is 10:00 in Paris.
  nlohmann::json summer = rdv_event(kMb, 40, "2019-05-17T08:00:00Z", "2019-05-17T12:30:00+04:00");
  nlohmann::json winter =
      rdv_event(kMb, 41, "2026-12-07T09:00:00+00:00", "2026-12-07T05:30:00-04:00");
  winter["event"].erase("time_zone");  // the configured zone applies
  ASSERT_EQ(h.send("rdv.planned", 40, summer).kind, Outcome::Kind::Delivered);
  ASSERT_EQ(h.send("rdv.planned", 41, winter).kind, Outcome::Kind::Delivered);
  std::map<std::string, nlohmann::json> by_key;
  for (const auto& e : sim.events(kMb)) by_key[e.key] = e.body;
  EXPECT_EQ(by_key["rdv:40"]["start"]["dateTime"], "2019-05-17T10:00:00");
  EXPECT_EQ(by_key["rdv:40"]["end"]["dateTime"], "2019-05-17T10:30:00");
  EXPECT_EQ(by_key["rdv:40"]["start"]["timeZone"], "Romance Standard Time");
  EXPECT_EQ(by_key["rdv:41"]["start"]["dateTime"], "2026-12-07T10:00:00");
  EXPECT_EQ(by_key["rdv:41"]["end"]["dateTime"], "2026-12-07T10:30:00");
  // A zone of the mapping other than the configured one is kept, with its own wall clock.
  nlohmann::json reunion =
      rdv_event(kMb, 42, "2026-12-07T10:00:00+04:00", "2026-12-07T10:30:00+04:00");
  reunion["event"]["time_zone"] = "Indian/Reunion";
  CalendarHarness r(graph_yaml(sim));
  sim.allow_time_zone("Indian/Reunion");
  ASSERT_EQ(r.send("rdv.planned", 42, reunion).kind, Outcome::Kind::Delivered);
  for (const auto& e : sim.events(kMb)) by_key[e.key] = e.body;
  EXPECT_EQ(by_key["rdv:42"]["start"]["dateTime"], "2026-12-07T10:00:00");
  EXPECT_EQ(by_key["rdv:42"]["start"]["timeZone"], "Indian/Reunion");
  EXPECT_EQ(calendar::iana_zone("Romance Standard Time"), "Europe/Paris");
}

// A transactionId hit returns the event as an earlier attempt made it: the connector compares
// it with what is asked now and PATCHes what differs (here a move whose cross-reference was
// lost with the create's).
TEST_F(GraphTest, TransactionIdHitIsComparedAndPatched) {
  CalendarHarness h(graph_yaml(sim));
  ASSERT_EQ(h.send("rdv.planned", 43, planned(43)).kind, Outcome::Kind::Delivered);
  ASSERT_TRUE(h.xrefs().remove("agenda", "rdv:43"));
  Outcome o = h.send("rdv.moved", 43, moved(43));
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  auto evs = sim.events(kMb);
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_EQ(evs[0].body["start"]["dateTime"], "2019-05-20T14:30:00");
  EXPECT_EQ(evs[0].body["location"]["displayName"], "Visite à domicile (Rouen)");
  int patches = 0;
  for (const auto& r : sim.requests()) patches += r.method == "PATCH" ? 1 : 0;
  EXPECT_EQ(patches, 1);
  // The same create again: the hit equals the request, nothing is patched.
  ASSERT_TRUE(h.xrefs().remove("agenda", "rdv:43"));
  ASSERT_EQ(h.send("rdv.moved", 43, moved(43)).kind, Outcome::Kind::Delivered);
  patches = 0;
  for (const auto& r : sim.requests()) patches += r.method == "PATCH" ? 1 : 0;
  EXPECT_EQ(patches, 1);
  EXPECT_EQ(sim.events(kMb).size(), 1u);
}

TEST_F(GraphTest, TokenFailuresAreConfigurationErrorsNamingTheFix) {
  CalendarHarness bad_secret(graph_yaml(sim, "expired-secret"));
  Outcome o = bad_secret.send("rdv.planned", 5, planned(5));
  ASSERT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_EQ(o.error_class, "config");
  EXPECT_NE(o.text.find("client_secret"), std::string::npos) << o.text;

  CalendarHarness bad_scope(
      graph_yaml(sim, "relais-secret", "scope: https://foo.microsoft.com/.default\n"));
  o = bad_scope.send("rdv.planned", 5, planned(5));
  ASSERT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_EQ(o.error_class, "config");
  EXPECT_NE(o.text.find("invalid_scope"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("https://graph.microsoft.com/.default"), std::string::npos) << o.text;
  EXPECT_TRUE(sim.events(kMb).empty());
}

TEST_F(GraphTest, ExpiredTokenIsRefreshedOnce) {
  CalendarHarness h(graph_yaml(sim));
  ASSERT_EQ(h.send("rdv.planned", 6, planned(6)).kind, Outcome::Kind::Delivered);
  sim.revoke_tokens();
  Outcome o = h.send("rdv.moved", 6, moved(6));
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_EQ(sim.tokens_issued(), 2);
}

TEST_F(GraphTest, RightsAndMailboxErrorsAreRejectedWithTheFix) {
  CalendarHarness h(graph_yaml(sim));
  sim.inject(GraphSimulator::Fault::Forbidden);
  Outcome o = h.send("rdv.planned", 7, planned(7));
  ASSERT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_NE(o.text.find("Calendars.ReadWrite"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find(kMb), std::string::npos) << o.text;
  o = h.send("rdv.planned", 8,
             rdv_event("inconnu@example.org", 8, "2019-05-17T10:00:00+02:00",
                       "2019-05-17T10:30:00+02:00"));
  ASSERT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_NE(o.text.find("inconnu@example.org"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("ErrorInvalidUser"), std::string::npos) << o.text;
}

TEST_F(GraphTest, EventRemovedFromTheCalendar) {
  CalendarHarness h(graph_yaml(sim));
  ASSERT_EQ(h.send("rdv.planned", 9, planned(9)).kind, Outcome::Kind::Delivered);
  sim.erase(kMb, sim.events(kMb)[0].id);
  Outcome o = h.send("rdv.cancelled", 9, nlohmann::json{{"mailbox", kMb}});
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_NE(o.text.find("already gone"), std::string::npos) << o.text;
  o = h.send("rdv.cancelled", 10, nlohmann::json{{"mailbox", kMb}});
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_NE(o.text.find("nothing to remove"), std::string::npos) << o.text;
}

TEST_F(GraphTest, FindsByKeyAndListsThePeriod) {
  CalendarHarness h(graph_yaml(sim));
  ASSERT_EQ(h.send("rdv.planned", 11, planned(11)).kind, Outcome::Kind::Delivered);
  ASSERT_EQ(h.send("rdv.planned", 12, moved(12)).kind, Outcome::Kind::Delivered);
  auto d = calendar::make_driver(h.config(), "agenda", 1, h.clock());
  auto r = d->find(kMb, "rdv:12", "", "", 0);
  ASSERT_EQ(r.kind, calendar::Result::Kind::Ok) << r.failure.text;
  ASSERT_EQ(r.found.size(), 1u);
  EXPECT_EQ(r.found[0].key, "rdv:12");
  r = d->find(kMb, "", "2019-05-01T00:00:00Z", "2019-06-01T00:00:00Z", 0);
  ASSERT_EQ(r.kind, calendar::Result::Kind::Ok) << r.failure.text;
  EXPECT_EQ(r.found.size(), 2u);
}

TEST_F(GraphTest, FreeBusyListsBusyPeriods) {
  CalendarHarness h(graph_yaml(sim));
  ASSERT_EQ(h.send("rdv.planned", 13, planned(13)).kind, Outcome::Kind::Delivered);
  calendar::Result r =
      calendar::free_busy(h.connector(), kMb, "2019-05-17T00:00:00Z", "2019-05-18T00:00:00Z");
  ASSERT_EQ(r.kind, calendar::Result::Kind::Ok) << r.failure.text;
  ASSERT_EQ(r.busy.size(), 1u);
  EXPECT_EQ(r.busy[0].status, "busy");
  bool schedule = false;
  for (const auto& q : sim.requests()) {
    schedule = schedule || q.path.find("/calendar/getSchedule") != std::string::npos;
  }
  EXPECT_TRUE(schedule);
}

// The token cache holds no lock during a token request: while one app's token endpoint is slow,
// another app's token comes at once; callers for the same credentials share the one request.
TEST(CalendarTokenCache, ASlowTokenRequestHoldsNoLockAndIsShared) {
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  int arrived = 0;
  tools::HttpSink slow(0, true, 4);
  slow.set_responder([&](const tools::SinkRequest&) {
    std::unique_lock<std::mutex> lock(m);
    ++arrived;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    tools::SinkResponse out;
    out.body = "{\"access_token\":\"slow\",\"expires_in\":3599}";
    return out;
  });
  tools::HttpSink fast(0, true, 4);
  fast.set_responder([](const tools::SinkRequest&) {
    tools::SinkResponse out;
    out.body = "{\"access_token\":\"fast\",\"expires_in\":3599}";
    return out;
  });
  calendar::TokenCache cache;
  ManualClock clock(kCalT0);
  calendar::TokenSettings a, b;
  a.token_url = "http://127.0.0.1:" + std::to_string(slow.port()) + "/token";
  b.token_url = "http://127.0.0.1:" + std::to_string(fast.port()) + "/token";
  a.client_id = b.client_id = "relais";
  a.client_secret = b.client_secret = "s";
  a.scope = b.scope = "https://graph.microsoft.com/.default";
  std::vector<calendar::TokenResult> results(3);
  std::vector<std::thread> callers;
  for (size_t i = 0; i < results.size(); ++i) {
    callers.emplace_back([&, i] { results[i] = cache.get(a, clock); });
  }
  {
    std::unique_lock<std::mutex> lock(m);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return arrived == 1; }));
  }
  // Another app's token while the first request is still waiting for its answer.
  auto other = std::async(std::launch::async, [&] { return cache.get(b, clock); });
  bool quick = other.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  {
    std::lock_guard<std::mutex> lock(m);
    release = true;
  }
  cv.notify_all();
  EXPECT_TRUE(quick) << "held up by the slow token request";
  calendar::TokenResult o = other.get();
  EXPECT_TRUE(o.ok);
  EXPECT_EQ(o.token, "fast");
  for (auto& t : callers) t.join();
  for (const auto& r : results) {
    EXPECT_TRUE(r.ok) << r.failure.text;
    EXPECT_EQ(r.token, "slow");
  }
  EXPECT_EQ(arrived, 1);  // one request for the three callers
  EXPECT_EQ(cache.fetches(), 2);
}

// Answers of an unexpected shape end as outcomes with a reason, never as exceptions.
TEST(CalendarOddAnswers, AreOutcomesNotExceptions) {
  tools::HttpSink sink(0, true, 4);
  std::string answer = "[1, 2]";
  sink.set_responder([&answer](const tools::SinkRequest& r) {
    tools::SinkResponse out;
    out.headers["Content-Type"] = "application/json";
    out.body = r.path.find("/token") != std::string::npos
                   ? "{\"access_token\":\"t\",\"expires_in\":\"3599\"}"
                   : answer;
    return out;
  });
  std::string base = "http://127.0.0.1:" + std::to_string(sink.port());
  CalendarHarness graph("driver: graph\nurl: " + base + "/v1.0\ntoken_url: " + base +
                        "/token\nclient_id: a\nclient_secret: b\n");
  Outcome o = graph.send("rdv.planned", 1, planned(1));
  EXPECT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
  EXPECT_NE(o.text.find("no event id"), std::string::npos) << o.text;
  answer = "{\"value\": 3}";
  o = graph.send("rdv.cancelled", 2, nlohmann::json{{"mailbox", kMb}});
  EXPECT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
  EXPECT_NE(o.text.find("unexpected answer"), std::string::npos) << o.text;

  answer = "<html>proxy login</html>";
  CalendarHarness ews("driver: ews\nurl: " + base +
                      "/EWS/Exchange.asmx\nauth: basic\nuser: u\npassword: p\n");
  o = ews.send("rdv.planned", 3, planned(3));
  EXPECT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_NE(o.text.find("no response code"), std::string::npos) << o.text;
}

TEST_F(GraphTest, TestingTheConnectionChecksTheCredentialsAndTheServer) {
  {
    CalendarHarness h(graph_yaml(sim));
    Status s = h.connector().probe();
    EXPECT_TRUE(s.ok) << s.error << ": " << s.detail;
    EXPECT_TRUE(sim.events(kMb).empty());  // nothing written
  }
  {
    CalendarHarness h(graph_yaml(sim, "wrong-secret"));
    Status s = h.connector().probe();
    EXPECT_FALSE(s.ok);
    EXPECT_EQ(s.error, "jeton refusé");
    EXPECT_NE(s.detail.find("secret"), std::string::npos) << s.detail;  // names the fix
  }
  {
    // A server that is not there: the token endpoint answers, the Graph address does not.
    CalendarHarness h("driver: graph\nurl: http://127.0.0.1:9/v1.0\ntoken_url: " + sim.token_url() +
                      "\nclient_id: relais-client\nclient_secret: relais-secret\n");
    Status s = h.connector().probe();
    EXPECT_FALSE(s.ok);
    EXPECT_EQ(s.error, "connexion impossible");
    EXPECT_NE(s.detail.find("127.0.0.1:9"), std::string::npos) << s.detail;
  }
}

}  // namespace
}  // namespace relais::testing
