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

TEST(BookingE2E, ThePortalListsBooksAndLosesARace) {
  GraphSimulator graph;
  graph.add_mailbox("anne.martin@cd76.fr");
  graph.add_mailbox("bruno.leroy@cd76.fr");
  Cms76Simulator cms76;
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
      cms76.url() +
      "\n    timeout: 5s\n"
      "booking:\n  calendar: agenda\n  cms76: cms76-api\n  offers:\n"
      "    - cms: CMS-BARENTIN\n      motif: accueil-social\n      hours: ['09:00-12:00']\n"
      "      professionals:\n"
      "        - {id: as-anne, mailbox: anne.martin@cd76.fr}\n"
      "        - {id: as-bruno, mailbox: bruno.leroy@cd76.fr}\n"
      "    - cms: CMS-BARENTIN\n      motif: visite\n      professionals:\n"
      "        - {id: as-claire, mailbox: claire.dupont@cd76.fr}\n";
  RelaisProcess relais(o);
  relais.start();
  HttpClient portal(relais.base_url(), relais.system_token());
  // Monday 4 January 2027 (winter time: 09:00 Paris = 08:00Z).
  const std::string q =
      "/api/v1/booking/slots?cms=CMS-BARENTIN&motif=accueil-social"
      "&from=2027-01-04&to=2027-01-05";
  HttpResponse slots = portal.get(q);
  ASSERT_EQ(slots.status, 200) << slots.body;
  ASSERT_EQ(slots.json()["slots"].size(), 12u) << slots.body;
  EXPECT_EQ(slots.json()["slots"][0], (nlohmann::json{{"professional", "as-anne"},
                                                      {"start", "2027-01-04T08:00:00Z"},
                                                      {"end", "2027-01-04T08:30:00Z"}}));
  const std::string body =
      R"({"cms":"CMS-BARENTIN","motif":"accueil-social","professional":"as-anne",)"
      R"("start":"2027-01-04T09:00:00+01:00","citizen":{"person":"P-000123"}})";
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

}  // namespace
}  // namespace relais::testing
