// The calendar connector with the EWS driver against the EWS simulator: planned/moved/cancelled,
// cross-references, impersonation and delegate access, every error class of the issue, the
// crash-duplicate protection (search by key before create), OAuth2 tokens (cached, refreshed,
// refused) and free/busy.

#include <gtest/gtest.h>

#include <cstdio>
#include <set>

#include "connectors/calendar/calendar.h"
#include "connectors/calendar/calendar_http.h"
#include "tests/calendar/calendar_test_support.h"
#include "tests/calendar/ews_simulator.h"
#include "tests/support/saves_then_resets.h"

namespace relais::testing {
namespace {

const std::string kMb = "lea.gosselin@example.org";

std::string ews_yaml(const EwsSimulator& sim, const std::string& extra = "") {
  return "driver: ews\nurl: " + sim.url() + "\nauth: basic\nuser: svc-relais\npassword: secret\n" +
         extra;
}

nlohmann::json planned(int rdv = 91877) {
  return rdv_event(kMb, rdv, "2019-05-17T10:00:00+02:00", "2019-05-17T10:30:00+02:00");
}
nlohmann::json moved(int rdv = 91877) {
  return rdv_event(kMb, rdv, "2019-05-20T14:30:00+02:00", "2019-05-20T15:15:00+02:00",
                   "Visite à domicile (Rouen)");
}

class EwsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sim.add_mailbox(kMb);
    sim.use_basic("svc-relais", "secret");
  }
  void TearDown() override { EXPECT_TRUE(sim.violations().empty()) << sim.violations().front(); }
  EwsSimulator sim;
};

TEST_F(EwsTest, PlannedMovedCancelledFollowTheCalendar) {
  CalendarHarness h(ews_yaml(sim));
  ASSERT_TRUE(h.config_errors().empty()) << h.config_errors().front();
  Outcome o = h.send("rdv.planned", 91877, planned());
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  auto items = sim.items(kMb);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].start, "2019-05-17T08:00:00Z");
  EXPECT_EQ(items[0].end, "2019-05-17T08:30:00Z");
  EXPECT_EQ(items[0].key, "rdv:91877");
  EXPECT_EQ(items[0].start_tz, "Romance Standard Time");
  EXPECT_EQ(items[0].reminder, 15);
  EXPECT_EQ(items[0].categories, (std::vector<std::string>{"CMS76", "Rendez-vous"}));
  auto x = h.xrefs().get("agenda", "rdv:91877");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->external_id, items[0].id);
  EXPECT_EQ(x->version.rfind(items[0].change_key + "|", 0), 0u) << x->version;
  EXPECT_EQ(o.external_ref, items[0].id);

  o = h.send("rdv.moved", 91877, moved());
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  items = sim.items(kMb);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].start, "2019-05-20T12:30:00Z");
  EXPECT_EQ(items[0].location, "Visite à domicile (Rouen)");
  EXPECT_EQ(h.xrefs().get("agenda", "rdv:91877")->version.rfind(items[0].change_key + "|", 0), 0u);

  o = h.send("rdv.cancelled", 91877, nlohmann::json{{"mailbox", kMb}});
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_TRUE(sim.items(kMb).empty());
  EXPECT_EQ(h.xrefs().get("agenda", "rdv:91877")->external_id, "-");  // a tombstone

  // Impersonation: every request names the mailbox in the header and X-AnchorMailbox.
  for (const auto& r : sim.requests()) {
    EXPECT_EQ(r.mailbox, kMb) << r.op;
    EXPECT_EQ(r.anchor, kMb) << r.op;
  }
}

TEST_F(EwsTest, DelegateAccessNamesTheMailboxInTheFolder) {
  CalendarHarness h(ews_yaml(sim, "access: delegate\n"));
  ASSERT_EQ(h.send("rdv.planned", 1, planned(1)).kind, Outcome::Kind::Delivered);
  ASSERT_EQ(h.send("rdv.moved", 1, moved(1)).kind, Outcome::Kind::Delivered);
  ASSERT_EQ(sim.items(kMb).size(), 1u);
  for (const auto& r : sim.requests()) {
    EXPECT_EQ(r.mailbox, "") << r.op;  // no impersonation header
    EXPECT_EQ(r.body.find("ExchangeImpersonation"), std::string::npos);
  }
  EXPECT_NE(sim.requests().front().body.find("<t:Mailbox><t:EmailAddress>" + kMb),
            std::string::npos);
}

TEST_F(EwsTest, UpdateWithoutReferenceCreatesAndDeleteWithoutReferenceSaysSo) {
  CalendarHarness h(ews_yaml(sim));
  Outcome o = h.send("rdv.moved", 5, moved(5));
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_NE(o.text.find("no cross-reference: created"), std::string::npos) << o.text;
  EXPECT_EQ(sim.items(kMb).size(), 1u);
  EXPECT_TRUE(h.xrefs().get("agenda", "rdv:5"));

  o = h.send("rdv.cancelled", 6, nlohmann::json{{"mailbox", kMb}});
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_NE(o.text.find("nothing to remove"), std::string::npos) << o.text;
  EXPECT_EQ(sim.items(kMb).size(), 1u);
}

TEST_F(EwsTest, PlannedTwiceUpdatesInsteadOfDuplicating) {
  CalendarHarness h(ews_yaml(sim));
  ASSERT_EQ(h.send("rdv.planned", 7, planned(7)).kind, Outcome::Kind::Delivered);
  Outcome o = h.send("rdv.planned", 7, moved(7));
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_NE(o.text.find("updated instead"), std::string::npos);
  ASSERT_EQ(sim.items(kMb).size(), 1u);
  EXPECT_EQ(sim.items(kMb)[0].start, "2019-05-20T12:30:00Z");
}

TEST_F(EwsTest, UpdatesSendOnlyTheChangedFields) {
  CalendarHarness h(ews_yaml(sim));
  ASSERT_EQ(h.send("rdv.planned", 40, planned(40)).kind, Outcome::Kind::Delivered);
  sim.clear_requests();
  // Only the time moves: Start, End and their time zones are set, nothing else.
  auto later = planned(40);
  later["event"]["start"] = "2019-05-17T11:00:00+02:00";
  later["event"]["end"] = "2019-05-17T11:30:00+02:00";
  ASSERT_EQ(h.send("rdv.moved", 40, later).kind, Outcome::Kind::Delivered);
  ASSERT_EQ(sim.requests().size(), 1u);
  const std::string body = sim.requests()[0].body;
  EXPECT_NE(body.find("calendar:Start\""), std::string::npos);
  EXPECT_NE(body.find("calendar:EndTimeZone"), std::string::npos);
  EXPECT_EQ(body.find("item:Subject"), std::string::npos);
  EXPECT_EQ(body.find("calendar:Location"), std::string::npos);
  EXPECT_EQ(sim.items(kMb)[0].start, "2019-05-17T09:00:00Z");
  EXPECT_EQ(sim.items(kMb)[0].subject, "RDV CMS76 n° 40");
  // The same state again (a replay): nothing is sent.
  sim.clear_requests();
  Outcome o = h.send("rdv.moved", 40, later);
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_NE(o.text.find("unchanged"), std::string::npos) << o.text;
  EXPECT_TRUE(sim.requests().empty());
}

TEST_F(EwsTest, LostCreateResponseDoesNotDuplicate) {
  CalendarHarness h(ews_yaml(sim));
  sim.inject(EwsSimulator::Fault::LoseResponse, 1, "CreateItem");
  Outcome o = h.send("rdv.planned", 8, planned(8));
  ASSERT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
  ASSERT_EQ(sim.items(kMb).size(), 1u);  // created, but Relais did not hear of it
  EXPECT_FALSE(h.xrefs().get("agenda", "rdv:8"));
  // The same attempt number again (a crash replays the attempt): found by its key.
  o = h.send("rdv.planned", 8, planned(8), 1);
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_NE(o.text.find("no duplicate"), std::string::npos) << o.text;
  ASSERT_EQ(sim.items(kMb).size(), 1u);
  EXPECT_EQ(h.xrefs().get("agenda", "rdv:8")->external_id, sim.items(kMb)[0].id);
}

TEST_F(EwsTest, DuplicatesFoundByKeyAreRemovedOnCreate) {
  CalendarHarness h(ews_yaml(sim, "search_before_create: false\n"));
  sim.inject(EwsSimulator::Fault::LoseResponse, 1, "CreateItem");
  ASSERT_EQ(h.send("rdv.planned", 9, planned(9)).kind, Outcome::Kind::Retry);
  ASSERT_EQ(h.send("rdv.planned", 9, planned(9)).kind, Outcome::Kind::Delivered);
  EXPECT_EQ(sim.items(kMb).size(), 2u);  // without the search, a lost answer duplicates
  // A cancellation without reference would still clean both; with the reference it removes
  // the known one. Reconciliation reports the other (see reconcile tests).
}

// The answer to a CreateItem is lost on a reused keep-alive connection after Exchange saved
// the item: libcurl must not send it again by itself (that made a second event), the attempt
// ends "unknown outcome", and the next attempt searches by key before creating — even with
// search_before_create off — and adopts the event: one event, one CreateItem.
TEST_F(EwsTest, CreateLostOnAReusedConnectionIsNotSentTwiceAndIsFoundNext) {
  std::string base = sim.base();
  SavesThenResets net(std::stoi(base.substr(base.rfind(':') + 1)));
  CalendarHarness h("driver: ews\nurl: " + net.base() + "/EWS/Exchange.asmx" +
                    "\nauth: basic\nuser: svc-relais\npassword: secret\n"
                    "search_before_create: false\n");
  ASSERT_EQ(h.send("rdv.planned", 30, planned(30)).kind, Outcome::Kind::Delivered);
  auto create_of = [](int rdv) {
    return [rdv](const SavedRequest& r) {
      return r.header("soapaction").find("CreateItem") != std::string::npos &&
             r.body.find("rdv:" + std::to_string(rdv)) != std::string::npos;
    };
  };
  net.arm(create_of(31));
  Outcome o = h.send("rdv.planned", 31, planned(31));
  ASSERT_TRUE(net.fired());
  EXPECT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
  EXPECT_EQ(o.error_class, "unknown_outcome") << outcome_text(o);
  EXPECT_EQ(net.count(create_of(31)), 1u);
  ASSERT_EQ(sim.items(kMb).size(), 2u);  // Exchange saved it
  auto marker = h.xrefs().get("agenda", "rdv:31");
  ASSERT_TRUE(marker);
  EXPECT_EQ(marker->external_id, "?");

  o = h.send("rdv.planned", 31, planned(31));
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_NE(o.text.find("no duplicate"), std::string::npos) << o.text;
  EXPECT_EQ(net.count(create_of(31)), 1u);
  auto items = sim.items(kMb);
  ASSERT_EQ(items.size(), 2u);
  std::string id31;
  for (const auto& it : items) id31 = it.key == "rdv:31" ? it.id : id31;
  EXPECT_EQ(h.xrefs().get("agenda", "rdv:31")->external_id, id31);
  // Then the key lives on normally.
  ASSERT_EQ(h.send("rdv.cancelled", 31, nlohmann::json{{"mailbox", kMb}}).kind,
            Outcome::Kind::Delivered);
  EXPECT_EQ(sim.items(kMb).size(), 1u);
}

// Exchange throttles per mailbox: after an ErrorServerBusy, nothing more goes to that mailbox,
// from any slot nor from free/busy, until its BackOffMilliseconds has passed; the delivery is
// paused (not an attempt) and other mailboxes carry on.
TEST_F(EwsTest, ServerBusyPausesThatMailboxForEverySlotAndFreeBusy) {
  const std::string other = "marc.leroux@example.org";
  sim.add_mailbox(other);
  CalendarHarness h(ews_yaml(sim));
  sim.set_clock([&h] { return h.clock().now_ms(); });
  sim.set_backoff_ms(1234);
  sim.inject(EwsSimulator::Fault::ServerBusy);
  Outcome o = h.send("rdv.planned", 10, planned(10));
  ASSERT_EQ(o.kind, Outcome::Kind::Throttle) << outcome_text(o);
  EXPECT_EQ(o.throttle_scope, kMb);
  ASSERT_TRUE(o.retry_after_ms);
  EXPECT_EQ(*o.retry_after_ms, 1234);
  EXPECT_NE(o.text.find("ErrorServerBusy"), std::string::npos) << o.text;
  size_t sent = sim.request_count();

  h.clock().advance(234);
  o = h.send("rdv.planned", 11, planned(11), 1, 1);  // another slot, same mailbox
  ASSERT_EQ(o.kind, Outcome::Kind::Throttle) << outcome_text(o);
  ASSERT_TRUE(o.retry_after_ms);
  EXPECT_EQ(*o.retry_after_ms, 1000);  // the time left
  calendar::Result fb =
      calendar::free_busy(h.connector(), kMb, "2019-05-17T00:00:00Z", "2019-05-18T00:00:00Z");
  ASSERT_EQ(fb.kind, calendar::Result::Kind::Failed);
  EXPECT_EQ(fb.failure.kind, Outcome::Kind::Throttle);
  EXPECT_EQ(fb.failure.retry_after_ms, std::optional<int64_t>(1000));
  EXPECT_EQ(sim.request_count(), sent);  // nothing was sent for the paused mailbox

  nlohmann::json elsewhere = planned(12);
  elsewhere["mailbox"] = other;
  o = h.send("rdv.planned", 12, elsewhere, 1, 1);
  EXPECT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);

  h.clock().advance(1000);
  EXPECT_EQ(h.send("rdv.planned", 10, planned(10)).kind, Outcome::Kind::Delivered);
  EXPECT_EQ(h.send("rdv.planned", 11, planned(11), 1, 1).kind, Outcome::Kind::Delivered);
  EXPECT_EQ(sim.items(kMb).size(), 2u);
  EXPECT_EQ(
      calendar::free_busy(h.connector(), kMb, "2019-05-17T00:00:00Z", "2019-05-18T00:00:00Z").kind,
      calendar::Result::Kind::Ok);
}

// An absurd back-off is capped by the destination's retry.max_retry_after (15 min here).
TEST_F(EwsTest, ServerBusyPauseIsCapped) {
  CalendarHarness h(ews_yaml(sim));
  sim.set_clock([&h] { return h.clock().now_ms(); });
  sim.set_backoff_ms(48 * 3600 * 1000);
  sim.inject(EwsSimulator::Fault::ServerBusy);
  Outcome o = h.send("rdv.planned", 13, planned(13));
  ASSERT_EQ(o.kind, Outcome::Kind::Throttle) << outcome_text(o);
  EXPECT_EQ(o.retry_after_ms, std::optional<int64_t>(15 * 60 * 1000));
  size_t sent = sim.request_count();
  h.clock().advance(15 * 60 * 1000 - 1);
  EXPECT_EQ(h.send("rdv.planned", 13, planned(13)).kind, Outcome::Kind::Throttle);
  EXPECT_EQ(sim.request_count(), sent);
  // After the cap, relais asks again (and this strict server, still in its back-off, refuses).
  h.clock().advance(1);
  o = h.send("rdv.planned", 13, planned(13));
  EXPECT_EQ(o.kind, Outcome::Kind::Throttle) << outcome_text(o);
  EXPECT_EQ(sim.request_count(), sent + 1);
  EXPECT_EQ(sim.busy_answers(), 2u);
}

TEST_F(EwsTest, TransientErrorsRetry) {
  CalendarHarness h(ews_yaml(sim));
  for (auto f : {EwsSimulator::Fault::Http503, EwsSimulator::Fault::Transient,
                 EwsSimulator::Fault::MailboxMove}) {
    sim.inject(f, 1, "FindItem");
    Outcome o = h.send("rdv.planned", 11, planned(11));
    EXPECT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
    EXPECT_FALSE(o.retry_after_ms);
  }
  EXPECT_EQ(h.send("rdv.planned", 11, planned(11)).kind, Outcome::Kind::Delivered);
  EXPECT_EQ(sim.items(kMb).size(), 1u);
}

TEST_F(EwsTest, StaleChangeKeyIsRefreshedAndTheUpdateAppliedOnce) {
  CalendarHarness h(ews_yaml(sim, "conflict_resolution: NeverOverwrite\n"));
  ASSERT_EQ(h.send("rdv.planned", 12, planned(12)).kind, Outcome::Kind::Delivered);
  sim.touch(kMb, sim.items(kMb)[0].id);  // someone edited it: our ChangeKey is stale
  sim.clear_requests();
  Outcome o = h.send("rdv.moved", 12, moved(12));
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  std::vector<std::string> ops;
  for (const auto& r : sim.requests()) ops.push_back(r.op);
  EXPECT_EQ(ops, (std::vector<std::string>{"UpdateItem", "GetItem", "UpdateItem"}));
  EXPECT_EQ(sim.items(kMb)[0].start, "2019-05-20T12:30:00Z");
  // A conflict that persists after the re-read is a retry, not a loop.
  sim.inject(EwsSimulator::Fault::Conflict, 2, "UpdateItem");
  o = h.send("rdv.moved", 12, planned(12));
  EXPECT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
}

TEST_F(EwsTest, ItemRemovedFromTheCalendar) {
  CalendarHarness h(ews_yaml(sim));
  ASSERT_EQ(h.send("rdv.planned", 13, planned(13)).kind, Outcome::Kind::Delivered);
  std::string first = sim.items(kMb)[0].id;
  sim.erase(kMb, first);
  Outcome o = h.send("rdv.moved", 13, moved(13));  // update: recreated
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_NE(o.text.find("created again"), std::string::npos) << o.text;
  ASSERT_EQ(sim.items(kMb).size(), 1u);
  EXPECT_NE(sim.items(kMb)[0].id, first);
  sim.erase(kMb, sim.items(kMb)[0].id);
  o = h.send("rdv.cancelled", 13, nlohmann::json{{"mailbox", kMb}});  // delete: delivered
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_NE(o.text.find("already gone"), std::string::npos) << o.text;
  EXPECT_EQ(h.xrefs().get("agenda", "rdv:13")->external_id, "-");  // a tombstone
}

TEST_F(EwsTest, MailboxAndRightsErrorsAreRejectedWithTheFix) {
  CalendarHarness h(ews_yaml(sim));
  Outcome o = h.send("rdv.planned", 14,
                     rdv_event("inconnu@example.org", 14, "2019-05-17T10:00:00+02:00",
                               "2019-05-17T10:30:00+02:00"));
  ASSERT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_EQ(o.error_class, "config");
  EXPECT_NE(o.text.find("ErrorNonExistentMailbox"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("inconnu@example.org"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("correct the professional's e-mail address"), std::string::npos);

  sim.add_mailbox("protege@example.org", false);
  o = h.send("rdv.planned", 15,
             rdv_event("protege@example.org", 15, "2019-05-17T10:00:00+02:00",
                       "2019-05-17T10:30:00+02:00"));
  ASSERT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_NE(o.text.find("ErrorImpersonateUserDenied"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("ApplicationImpersonation"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("protege@example.org"), std::string::npos) << o.text;

  sim.inject(EwsSimulator::Fault::AccessDenied, 1, "FindItem");
  o = h.send("rdv.planned", 16, planned(16));
  ASSERT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_NE(o.text.find("ErrorAccessDenied"), std::string::npos) << o.text;
}

TEST_F(EwsTest, WrongPasswordIsRejected) {
  CalendarHarness h("driver: ews\nurl: " + sim.url() +
                    "\nauth: basic\nuser: svc-relais\npassword: wrong\n");
  Outcome o = h.send("rdv.planned", 17, planned(17));
  ASSERT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_EQ(o.code, 401);
  EXPECT_NE(o.text.find("check user and password"), std::string::npos) << o.text;
}

TEST_F(EwsTest, NtlmHandshakeThroughLibcurl) {
  sim.use_ntlm("svc-relais");
  CalendarHarness h("driver: ews\nurl: " + sim.url() +
                    "\nauth: ntlm\nuser: svc-relais\npassword: secret\n");
  Outcome o = h.send("rdv.planned", 18, planned(18));
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_EQ(sim.items(kMb).size(), 1u);
  EXPECT_GE(sim.ntlm_handshakes(), 2);  // FindItem, CreateItem
  CalendarHarness other("driver: ews\nurl: " + sim.url() +
                        "\nauth: ntlm\nuser: someone-else\npassword: secret\n");
  o = other.send("rdv.planned", 19, planned(19));
  ASSERT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_EQ(o.code, 401);
}

TEST_F(EwsTest, OAuthTokensAreCachedRefreshedAndRefusalsExplained) {
  sim.use_oauth("relais-client", "relais-secret", 3600);
  std::string yaml = "driver: ews\nurl: " + sim.url() +
                     "\nauth: oauth2\ntoken_url: " + sim.token_url() +
                     "\nclient_id: relais-client\nclient_secret: relais-secret\n";
  CalendarHarness h(yaml);
  ASSERT_TRUE(h.config_errors().empty()) << h.config_errors().front();
  ASSERT_EQ(h.send("rdv.planned", 20, planned(20)).kind, Outcome::Kind::Delivered);
  ASSERT_EQ(h.send("rdv.moved", 20, moved(20)).kind, Outcome::Kind::Delivered);
  EXPECT_EQ(sim.tokens_issued(), 1);  // cached
  for (const auto& r : sim.requests()) EXPECT_EQ(r.authorization, "Bearer ews-token-1");
  // Refreshed before it expires: 5 minutes before the end (or a fifth of a shorter life).
  h.clock().advance(3600 * 1000 - 310 * 1000);
  ASSERT_EQ(h.send("rdv.moved", 20, planned(20)).kind, Outcome::Kind::Delivered);
  EXPECT_EQ(sim.tokens_issued(), 1);
  h.clock().advance(20 * 1000);
  ASSERT_EQ(h.send("rdv.moved", 20, moved(20)).kind, Outcome::Kind::Delivered);
  EXPECT_EQ(sim.tokens_issued(), 2);
  // Revoked: one 401, a fresh token, success.
  sim.revoke_tokens();
  ASSERT_EQ(h.send("rdv.moved", 20, planned(20)).kind, Outcome::Kind::Delivered);
  EXPECT_EQ(sim.tokens_issued(), 3);

  CalendarHarness bad("driver: ews\nurl: " + sim.url() + "\nauth: oauth2\ntoken_url: " +
                      sim.token_url() + "\nclient_id: relais-client\nclient_secret: expired\n");
  Outcome o = bad.send("rdv.planned", 21, planned(21));
  ASSERT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_EQ(o.error_class, "config");
  EXPECT_NE(o.text.find("invalid_client"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("client_secret"), std::string::npos) << o.text;
}

TEST_F(EwsTest, ConfigurationErrorsAreNamed) {
  CalendarHarness a("driver: ews\nauth: basic\n");
  ASSERT_FALSE(a.config_errors().empty());
  std::string all;
  for (const auto& e : a.config_errors()) all += e + "\n";
  EXPECT_NE(all.find("url is required"), std::string::npos) << all;
  EXPECT_NE(all.find("user is required"), std::string::npos) << all;
  CalendarHarness b("driver: graph\nclient_id: x\n");
  all.clear();
  for (const auto& e : b.config_errors()) all += e + "\n";
  EXPECT_NE(all.find("client_secret is required"), std::string::npos) << all;
  EXPECT_NE(all.find("tenant"), std::string::npos) << all;
  CalendarHarness c(ews_yaml(sim, "operations: {rdv.planned: insert}\n"));
  ASSERT_FALSE(c.config_errors().empty());
}

TEST_F(EwsTest, MappingProblemsAreRejectedReadably) {
  CalendarHarness h(ews_yaml(sim));
  Outcome o = h.send("rdv.planned", 22, nlohmann::json{{"mailbox", kMb}});
  ASSERT_EQ(o.kind, Outcome::Kind::Reject);
  EXPECT_EQ(o.error_class, "mapping");
  EXPECT_NE(o.text.find("no 'event'"), std::string::npos);
  auto ev = planned(22);
  ev["event"]["start"] = "17/05/2019 10h";
  o = h.send("rdv.planned", 22, ev);
  ASSERT_EQ(o.kind, Outcome::Kind::Reject);
  EXPECT_NE(o.text.find("start is not an ISO 8601"), std::string::npos);
  o = h.send("rdv.other", 22, planned(22));
  ASSERT_EQ(o.kind, Outcome::Kind::Reject);
  EXPECT_NE(o.text.find("no calendar operation"), std::string::npos);
}

TEST_F(EwsTest, FreeBusyListsBusyPeriods) {
  CalendarHarness h(ews_yaml(sim));
  ASSERT_EQ(h.send("rdv.planned", 30, planned(30)).kind, Outcome::Kind::Delivered);
  ASSERT_EQ(h.send("rdv.planned", 31, moved(31)).kind, Outcome::Kind::Delivered);
  calendar::Result r =
      calendar::free_busy(h.connector(), kMb, "2019-05-17T00:00:00Z", "2019-05-18T00:00:00Z");
  ASSERT_EQ(r.kind, calendar::Result::Kind::Ok) << r.failure.text;
  ASSERT_EQ(r.busy.size(), 1u);
  EXPECT_EQ(r.busy[0].start, "2019-05-17T08:00:00Z");
  EXPECT_EQ(r.busy[0].end, "2019-05-17T08:30:00Z");
  EXPECT_EQ(r.busy[0].status, "busy");
}

TEST_F(EwsTest, SearchesPageThroughLargeCalendars) {
  CalendarHarness h(ews_yaml(sim));
  for (int i = 0; i < 130; ++i) {
    char start[32], end[32];
    std::snprintf(start, sizeof start, "2019-06-%02dT%02d:00:00+02:00", 1 + i % 28, 8 + i / 28);
    std::snprintf(end, sizeof end, "2019-06-%02dT%02d:30:00+02:00", 1 + i % 28, 8 + i / 28);
    ASSERT_EQ(h.send("rdv.planned", 1000 + i, rdv_event(kMb, 1000 + i, start, end)).kind,
              Outcome::Kind::Delivered);
  }
  sim.clear_requests();
  auto d = calendar::make_driver(h.config(), "agenda", 1, h.clock());
  auto r = d->find(kMb, "", "2019-06-01T00:00:00Z", "2019-07-01T00:00:00Z", 0);
  ASSERT_EQ(r.kind, calendar::Result::Kind::Ok) << r.failure.text;
  EXPECT_EQ(r.found.size(), 130u);
  EXPECT_EQ(sim.requests().size(), 2u);  // pages of 100
  std::set<std::string> keys;
  for (const auto& e : r.found) keys.insert(e.key);
  EXPECT_EQ(keys.size(), 130u);
}

TEST(CalendarTime, ConvertsOffsetsToUtc) {
  std::string out;
  ASSERT_TRUE(calendar::to_utc("2019-05-17T10:00:00+02:00", out));
  EXPECT_EQ(out, "2019-05-17T08:00:00Z");
  ASSERT_TRUE(calendar::to_utc("2019-03-31T01:30:00+01:00", out));
  EXPECT_EQ(out, "2019-03-31T00:30:00Z");
  ASSERT_TRUE(calendar::to_utc("2020-01-01T00:30:00.500+01:00", out));
  EXPECT_EQ(out, "2019-12-31T23:30:00Z");
  ASSERT_TRUE(calendar::to_utc("2019-05-17T10:00:00Z", out));
  EXPECT_EQ(out, "2019-05-17T10:00:00Z");
  EXPECT_FALSE(calendar::to_utc("2019-05-17T10:00:00", out));
  EXPECT_FALSE(calendar::to_utc("2019-05-17", out));
  EXPECT_EQ(calendar::transaction_id("rdv:1"), calendar::transaction_id("rdv:1"));
  EXPECT_NE(calendar::transaction_id("rdv:1"), calendar::transaction_id("rdv:2"));
  EXPECT_EQ(calendar::transaction_id("rdv:1").size(), 36u);
}

// Wall clocks in a named zone (Windows or IANA id), both ways, across summer time.
TEST(CalendarTime, ReadsAndWritesWallClocksInAZone) {
  std::string out;
  ASSERT_TRUE(calendar::utc_from_wall("2019-05-17T10:00:00.0000000", "Romance Standard Time", out));
  EXPECT_EQ(out, "2019-05-17T08:00:00Z");
  ASSERT_TRUE(calendar::utc_from_wall("2026-12-07T10:00:00", "Europe/Paris", out));
  EXPECT_EQ(out, "2026-12-07T09:00:00Z");
  ASSERT_TRUE(calendar::utc_from_wall("2026-12-07T10:00:00", "UTC", out));
  EXPECT_EQ(out, "2026-12-07T10:00:00Z");
  EXPECT_FALSE(calendar::utc_from_wall("2026-12-07T10:00:00", "Nowhere Standard Time", out));
  ASSERT_TRUE(calendar::wall_clock_in("2019-10-27T00:30:00Z", "Europe/Paris", out));
  EXPECT_EQ(out, "2019-10-27T02:30:00");  // still summer time
  ASSERT_TRUE(calendar::wall_clock_in("2019-10-27T01:30:00Z", "Europe/Paris", out));
  EXPECT_EQ(out, "2019-10-27T02:30:00");  // winter time again
  ASSERT_TRUE(calendar::wall_clock_in("2026-12-07T10:00:00+04:00", "Indian/Reunion", out));
  EXPECT_EQ(out, "2026-12-07T10:00:00");
  EXPECT_FALSE(calendar::wall_clock_in("2026-12-07T10:00:00+04:00", "", out));
  EXPECT_EQ(calendar::iana_zone("Europe/Paris"), "Europe/Paris");
  EXPECT_EQ(calendar::iana_zone("Nowhere Standard Time"), "");
}

}  // namespace
}  // namespace relais::testing
