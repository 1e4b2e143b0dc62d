// Online booking through the relais binary: the portal's token (role system) lists slots and
// books one over HTTP; the same slot again is 409 "créneau plus disponible" with fresh slots;
// a support token is refused; a calendar that cannot be read is a 503 naming the professional.
// Graph simulator and CMS76 API simulator on loopback.

#include <gtest/gtest.h>

#include "tests/calendar/graph_simulator.h"
#include "tests/cms76/cms76_simulator.h"
#include "tests/support/relais_process.h"

namespace relais::testing {
namespace {

// The booking configuration of these tests: Anne and Bruno receive accueil-social from 09:00 to
// 12:00; Claire's mailbox does not exist at the tenant. `extra` is appended (routes…).
RelaisOptions booking_options(const GraphSimulator& graph, const Cms76Simulator& cms76,
                              const std::string& extra = "") {
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.tokens_extra_yaml =
      "    - name: test-support\n      token: integration-support-token-0123456789\n"
      "      role: support\n";
  o.body_yaml =
      "sources:\n  cms76:\n    type: $.event\n    correlation: \"rdv:{$.rdv.id}\"\n"
      "connectors:\n  agenda:\n    connector: calendar\n    driver: graph\n    url: " +
      graph.url() + "\n    token_url: " + graph.token_url() +
      "\n    client_id: relais-client\n    client_secret: relais-secret\n"
      "  cms76-api:\n    connector: http\n    url: " +
      cms76.url() + "\n    timeout: 5s\n" + extra +
      "booking:\n  calendar: agenda\n  cms76: cms76-api\n  offers:\n"
      "    - cms: CMS-BARENTIN\n      motif: accueil-social\n      hours: ['09:00-12:00']\n"
      "      professionals:\n"
      "        - {id: as-anne, mailbox: anne.martin@cd76.fr}\n"
      "        - {id: as-bruno, mailbox: bruno.leroy@cd76.fr}\n"
      "    - cms: CMS-BARENTIN\n      motif: visite\n      professionals:\n"
      "        - {id: as-claire, mailbox: claire.dupont@cd76.fr}\n";
  return o;
}

// Monday 4 January 2027 (winter time: 09:00 Paris = 08:00Z).
const char* const kSlotsQuery =
    "/api/v1/booking/slots?cms=CMS-BARENTIN&motif=accueil-social&from=2027-01-04&to=2027-01-05";

std::string booking_body(const std::string& start) {
  return R"({"cms":"CMS-BARENTIN","motif":"accueil-social","professional":"as-anne","start":")" +
         start + R"(","citizen":{"person":"P-000123"}})";
}

TEST(BookingE2E, ThePortalListsBooksAndLosesARace) {
  GraphSimulator graph;
  graph.add_mailbox("anne.martin@cd76.fr");
  graph.add_mailbox("bruno.leroy@cd76.fr");
  Cms76Simulator cms76;
  RelaisOptions o = booking_options(graph, cms76);
  RelaisProcess relais(o);
  relais.start();
  HttpClient portal(relais.base_url(), relais.system_token());
  const std::string q = kSlotsQuery;
  HttpResponse slots = portal.get(q);
  ASSERT_EQ(slots.status, 200) << slots.body;
  ASSERT_EQ(slots.json()["slots"].size(), 12u) << slots.body;
  EXPECT_EQ(slots.json()["slots"][0], (nlohmann::json{{"professional", "as-anne"},
                                                      {"start", "2027-01-04T08:00:00Z"},
                                                      {"end", "2027-01-04T08:30:00Z"}}));
  const std::string body = booking_body("2027-01-04T09:00:00+01:00");
  HttpResponse booked = portal.post_json("/api/v1/booking", body);
  ASSERT_EQ(booked.status, 201) << booked.body;
  EXPECT_EQ(booked.json()["rdv_id"], "RDV-1");
  EXPECT_EQ(booked.json()["start"], "2027-01-04T08:00:00Z");
  HttpResponse again = portal.post_json("/api/v1/booking", body);
  ASSERT_EQ(again.status, 409) << again.body;
  EXPECT_EQ(again.json()["error"], "créneau plus disponible");
  EXPECT_EQ(again.json()["slots"].size(), 11u);  // the day's fresh slots, without the booked one
  EXPECT_EQ(portal.get(q).json()["slots"].size(), 11u);
  ASSERT_EQ(cms76.rdvs().size(), 1u);
  EXPECT_EQ(cms76.rdvs()[0].citizen, (nlohmann::json{{"person", "P-000123"}}));
  // Support's token does not book; no token at all neither.
  HttpClient support(relais.base_url(), "integration-support-token-0123456789");
  EXPECT_EQ(support.get(q).status, 403);
  EXPECT_EQ(HttpClient(relais.base_url()).get(q).status, 401);
  // Claire's mailbox does not exist at the tenant: 503, naming her, and no slot.
  HttpResponse down = portal.get(
      "/api/v1/booking/slots?cms=CMS-BARENTIN&motif=visite&from=2027-01-04&to=2027-01-05");
  ASSERT_EQ(down.status, 503) << down.body;
  EXPECT_NE(down.json()["detail"].get<std::string>().find("as-claire"), std::string::npos);
  EXPECT_FALSE(down.json().contains("slots"));
  EXPECT_FALSE(down.header("Retry-After").empty());
  EXPECT_EQ(relais.stop(), 0);
  EXPECT_TRUE(cms76.violations().empty());
}

// Issue 13, gap 1: an RDV booked online then cancelled (or moved) in CMS76 releases its slot's
// claim through the hub (a route to a destination of kind `booking`), durably: the slot is
// offered again, across restarts; a cancel of an RDV never booked online changes nothing; a move
// that keeps the slot keeps the claim.
TEST(BookingE2E, ACancelledOrMovedRdvReleasesItsSlot) {
  GraphSimulator graph;
  graph.add_mailbox("anne.martin@cd76.fr");
  graph.add_mailbox("bruno.leroy@cd76.fr");
  Cms76Simulator cms76;
  RelaisOptions o =
      booking_options(graph, cms76,
                      "  booking-claims:\n    connector: booking\n    mailbox: $.rdv.tms.email\n"
                      "    start: $.rdv.date\n    start_time: $.rdv.heure\n"
                      "routes:\n  - {name: rdv-claims, source: cms76, type: \"rdv.*\", to: "
                      "[{destination: booking-claims}]}\n");
  RelaisProcess relais(o);
  relais.start();
  HttpClient portal(relais.base_url(), relais.system_token());
  HttpClient admin = relais.client();
  auto offered = [&] {
    HttpResponse r = portal.get(kSlotsQuery);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.status == 200 ? r.json()["slots"].size() : 0u;
  };
  // A CMS76 event through the hub, delivered (its claim released or not) before it returns.
  auto event = [&](const std::string& type, const std::string& id, const std::string& rdv) {
    HttpResponse r =
        portal.post_json("/api/v1/sources/cms76/messages",
                         R"({"event":")" + type + R"(","id":")" + id + R"(","rdv":)" + rdv + "}");
    ASSERT_EQ(r.status, 202) << r.body;
    ASSERT_TRUE(wait_deliveries_state(admin, r.json()["id"], "delivered")) << r.body;
  };
  ASSERT_EQ(offered(), 12u);
  HttpResponse booked =
      portal.post_json("/api/v1/booking", booking_body("2027-01-04T09:00:00+01:00"));
  ASSERT_EQ(booked.status, 201) << booked.body;
  const std::string rdv1 = booked.json()["rdv_id"];
  HttpResponse second =
      portal.post_json("/api/v1/booking", booking_body("2027-01-04T09:30:00+01:00"));
  ASSERT_EQ(second.status, 201) << second.body;
  const std::string rdv2 = second.json()["rdv_id"];
  EXPECT_EQ(offered(), 10u);

  // The claims survive a restart.
  ASSERT_EQ(relais.stop(), 0);
  relais.restart();
  portal.set_base_url(relais.base_url());
  admin.set_base_url(relais.base_url());
  EXPECT_EQ(offered(), 10u);

  // A cancel of an RDV never booked online: nothing released.
  event("rdv.cancelled", "evt-1", R"({"id":"RDV-999","tms":{"email":"anne.martin@cd76.fr"}})");
  EXPECT_EQ(offered(), 10u);
  // A move that keeps the slot (another room, 09:30 local still): the claim stays.
  event("rdv.moved", "evt-2",
        R"({"id":")" + rdv2 +
            R"(","tms":{"email":"anne.martin@cd76.fr"},"date":"2027-01-04","heure":"09:30"})");
  EXPECT_EQ(offered(), 10u);
  // The booked RDV cancelled: its slot is offered again at once.
  event("rdv.cancelled", "evt-3",
        R"({"id":")" + rdv1 + R"(","tms":{"email":"anne.martin@cd76.fr"}})");
  EXPECT_EQ(offered(), 11u);
  // The other moved to another day: its old slot is offered again.
  event("rdv.moved", "evt-4",
        R"({"id":")" + rdv2 +
            R"(","tms":{"email":"anne.martin@cd76.fr"},"date":"2027-01-05","heure":"10:00"})");
  EXPECT_EQ(offered(), 12u);

  // Released for good: the same after a restart.
  ASSERT_EQ(relais.stop(), 0);
  relais.restart();
  portal.set_base_url(relais.base_url());
  EXPECT_EQ(offered(), 12u);
  EXPECT_EQ(relais.stop(), 0);
  EXPECT_TRUE(cms76.violations().empty());
}

}  // namespace
}  // namespace relais::testing
