// Capdémat through the real relais binary and the simulator: a request pushed (HTTP Basic,
// validated) and one pulled (GetRequests / AckRequests with WS-Security) each become a CMS76
// demande at CMS76's stand-in; CMS76's state changes reach Capdémat exactly once each, in
// order, with lost answers and a `kill -9` of relais injected; an illegal transition goes dead
// with its reason in French.

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/capdemat/capdemat_simulator.h"
#include "tests/capdemat/capdemat_test_support.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using nlohmann::json;

// The capdemat destination (with its inbound block) and the capdemat-pull source's poll block,
// pointed at the simulator, as YAML text.
std::string config_yaml(const CapdematSimulator& sim, int cms76_port,
                        const std::string& password_file) {
  YAML::Node reader(YAML::NodeType::Map);
  capdemat_reader(reader);
  YAML::Node dest;
  dest["connector"] = "capdemat";
  dest["url"] = sim.url();
  dest["timeout"] = "3s";
  dest["retry"] = YAML::Load("{initial: 100ms, max: 500ms, max_attempts: 50}");
  dest["workflow"] = capdemat_workflow();
  dest["states"] = YAML::Load(
      "{externalise: Extinprogress, incomplet: Uncomplete, rectifie: Rectified, "
      "accorde: Validated, refuse: Rejected}");
  dest["inbound"] = YAML::Clone(reader);
  dest["inbound"]["user"] = "capdemat";
  dest["inbound"]["password"] = "push-secret";
  dest["inbound"]["source"] = "capdemat";
  dest["pairing"]["mapping"]["url"] = sim.soap_url();
  dest["pairing"]["mapping"]["local_authority"] = "Seine-Maritime";
  dest["pairing"]["mapping"]["wss"]["username"] = "relais";
  dest["pairing"]["mapping"]["wss"]["password_file"] = password_file;
  dest["pairing"]["mapping"]["wss"]["digest"] = true;
  dest["referentials"] = YAML::Load("{cms: {name: CMS, label: Centres médico-sociaux}}");
  YAML::Node poll = YAML::Clone(reader);
  poll["kind"] = "capdemat";
  poll["interval"] = "200ms";
  poll["url"] = sim.soap_url();
  poll["timeout"] = "3s";
  poll["wss"]["username"] = "relais";
  poll["wss"]["password_file"] = password_file;
  poll["wss"]["digest"] = true;
  YAML::Node root;
  root["sources"]["cms76"]["type"] = "$.event";
  root["sources"]["cms76"]["correlation"] =
      YAML::Load("['demande:{$.demande.capdemat_id}', 'appariement:{$.appariement.personne}']");
  root["sources"]["cms76"]["idempotency"] = "$.id";
  for (const char* s : {"capdemat", "capdemat-pull"}) {
    root["sources"][s]["type"] = "$.type";
    root["sources"][s]["correlation"] = "demande:{$.demande.capdemat_id}";
  }
  root["sources"]["capdemat-pull"]["poll"] = poll;
  root["connectors"]["capdemat"] = dest;
  root["connectors"]["cms76"]["connector"] = "http";
  root["connectors"]["cms76"]["url"] =
      "http://127.0.0.1:" + std::to_string(cms76_port) + "/demandes";
  root["routes"] = YAML::Load(
      "[{name: portail, source: capdemat, type: demande.capdemat, to: [{destination: cms76}]},"
      " {name: portail-pull, source: capdemat-pull, type: demande.capdemat, to: [{destination: "
      "cms76}]},"
      " {name: etats, source: cms76, type: demande.statut, to: [{destination: capdemat}]},"
      " {name: appariements, source: cms76, type: capdemat.appariement, to: [{destination: "
      "capdemat}]}]");
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

struct World {
  CapdematSimulator sim{capdemat_workflow()};
  tools::HttpSink cms76{0, true, 4};
  TempDir secrets{"relais-capdemat-e2e-"};
  std::unique_ptr<RelaisProcess> relais;

  World() {
    sim.set_account("relais", "wss-e2e", true);
    std::string pw = secrets.write("capdemat.password", "wss-e2e\n");
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    o.body_yaml = config_yaml(sim, cms76.port(), pw);
    relais = std::make_unique<RelaisProcess>(o);
    relais->start();
  }
  ~World() {
    if (relais) relais->stop();
  }
  std::string inbound_url() const {
    return relais->base_url() + "/api/v1/connectors/capdemat/inbound/request";
  }
};

TEST(CapdematEndToEnd, PushedAndPulledRequestsBecomeCms76Demandes) {
  World w;
  std::string answer;
  EXPECT_EQ(CapdematSimulator::push_request(w.inbound_url(), hfmr_request("4021"), "capdemat",
                                            "wrong", answer),
            401);
  ASSERT_EQ(CapdematSimulator::push_request(w.inbound_url(), hfmr_request("4021"), "capdemat",
                                            "push-secret", answer),
            202)
      << answer;
  std::string bad = hfmr_request("4022");
  bad.replace(bad.find("<cvq:Step>Instruction</cvq:Step>"), 32, "<cvq:Step>Nulle</cvq:Step>");
  EXPECT_EQ(
      CapdematSimulator::push_request(w.inbound_url(), bad, "capdemat", "push-secret", answer),
      422);
  json refused = json::parse(answer);
  EXPECT_EQ(refused["line"], 27) << answer;
  EXPECT_NE(refused["element"].get<std::string>().find("cvq:Step"), std::string::npos);

  w.sim.add_request("5001", "Validated", hfmr_inner("5001"));
  ASSERT_TRUE(wait_until([&] { return w.cms76.count() >= 2; }, std::chrono::seconds(20)))
      << w.relais->stderr_text();
  std::set<std::string> ids;
  for (const auto& r : w.cms76.requests()) {
    json b = json::parse(r.body);
    EXPECT_EQ(b["type"], "demande.capdemat");
    ids.insert(b["demande"]["capdemat_id"].get<std::string>());
  }
  EXPECT_EQ(ids, (std::set<std::string>{"4021", "5001"}));
  ASSERT_TRUE(wait_until([&] { return w.sim.acks().count("5001") > 0; }, std::chrono::seconds(10)));
  EXPECT_EQ(w.sim.acks()["5001"], std::vector<bool>{false});
  EXPECT_TRUE(w.sim.violations().empty()) << w.sim.violations().front();
}

json state_message(const std::string& id, const std::string& statut, int n) {
  return {{"event", "demande.statut"},
          {"id", "evt-" + id + "-" + std::to_string(n)},
          {"demande", {{"capdemat_id", id}, {"statut", statut}}}};
}

TEST(CapdematEndToEnd, StateChangesReachCapdematOnceInOrderThroughLostAnswersAndAKill9) {
  World w;
  w.sim.add_request("4021", "Pending", hfmr_inner("4021"));
  w.sim.lose_next_state_answers(2);
  HttpClient c = w.relais->client();
  const std::vector<std::string> states = {"externalise", "incomplet", "rectifie", "externalise",
                                           "accorde"};
  auto post_states = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      ASSERT_EQ(c.post_json("/api/v1/sources/cms76/messages",
                            state_message("4021", states[i], static_cast<int>(i)).dump())
                    .status,
                202);
    }
  };
  post_states(0, 3);
  ASSERT_TRUE(wait_until([&] { return w.sim.applied().size() >= 1; }, std::chrono::seconds(20)))
      << w.relais->stderr_text();
  w.relais->kill9();
  w.sim.lose_next_state_answers(1);
  w.relais->restart();
  c = w.relais->client();
  post_states(3, states.size());
  ASSERT_TRUE(wait_until([&] { return w.sim.applied().size() >= 5; }, std::chrono::seconds(30)))
      << w.relais->stderr_text();
  EXPECT_EQ(w.sim.applied(),
            (std::vector<std::string>{"4021:Pending>Extinprogress", "4021:Extinprogress>Uncomplete",
                                      "4021:Uncomplete>Rectified", "4021:Rectified>Extinprogress",
                                      "4021:Extinprogress>Validated"}));
  EXPECT_GE(w.sim.lost_answers(), 2);  // 2 or 3: the kill may come before the second
  EXPECT_TRUE(w.sim.violations().empty()) << w.sim.violations().front();

  // Validated → Rejected is not a transition of the workflow: dead, with the reason.
  auto r = c.post_json("/api/v1/sources/cms76/messages", state_message("4021", "refuse", 9).dump());
  ASSERT_EQ(r.status, 202);
  const std::string id = r.json()["id"];
  ASSERT_TRUE(wait_deliveries_state(c, id, "dead", std::chrono::seconds(15)))
      << c.get("/api/v1/messages/" + id).body;
  json m = c.get("/api/v1/messages/" + id).json();
  std::string text = m["deliveries"][0]["last_outcome"]["text"];
  EXPECT_NE(text.find("n'autorise pas"), std::string::npos) << text;
  EXPECT_EQ(w.sim.applied().size(), 5u);
  EXPECT_EQ(w.sim.state("4021"), "Validated");
}

// Issue 13, gap 3: pairings reach Capdémat's HomeFolderMappingService once each, as its schema
// describes them (the simulator validates), an individual with its home folder and after it,
// through lost answers and a kill -9; a home folder Capdémat does not know is refused, dead with
// its reason.
TEST(CapdematEndToEnd, PairingsReachTheMappingServiceOnceThroughLostAnswers) {
  World w;
  w.sim.add_home_folder("HF-3", {"IND-7", "IND-8"});
  w.sim.lose_next_mapping_answers(2);
  HttpClient c = w.relais->client();
  auto pairing = [&](const std::string& evt, const std::string& person, const std::string& id,
                     const std::string& folder) {
    json a = {{"personne", person}, {"capdemat_id", id}};
    if (!folder.empty()) a["foyer"] = folder;
    HttpResponse r = c.post_json(
        "/api/v1/sources/cms76/messages",
        json{{"event", "capdemat.appariement"}, {"id", evt}, {"appariement", a}}.dump());
    EXPECT_EQ(r.status, 202) << r.body;
    return r.status == 202 ? r.json()["id"].get<std::string>() : std::string();
  };
  // The individual first: it waits for its home folder's pairing.
  const std::string ind = pairing("evt-p1", "individu:58123", "IND-7", "foyer:12");
  ASSERT_TRUE(wait_until(
      [&] {
        json m = c.get("/api/v1/messages/" + ind).json();
        const json& last = m["deliveries"][0]["last_outcome"];
        return last.is_object() && last.value("outcome", "") == "defer";
      },
      std::chrono::seconds(10)))
      << c.get("/api/v1/messages/" + ind).body;
  EXPECT_EQ(w.sim.mapping_requests(), 0);
  const std::string home = pairing("evt-p2", "foyer:12", "HF-3", "");
  ASSERT_TRUE(wait_deliveries_state(c, home, "delivered", std::chrono::seconds(20)))
      << c.get("/api/v1/messages/" + home).body;
  ASSERT_TRUE(wait_deliveries_state(c, ind, "delivered", std::chrono::seconds(20)))
      << c.get("/api/v1/messages/" + ind).body;
  // Two requests (the home folder's; the individual's with its home folder's), each once,
  // though both answers were lost.
  EXPECT_EQ(w.sim.mapping_requests(), 2);
  EXPECT_EQ(w.sim.home_folder_mappings(), (std::map<std::string, std::string>{{"HF-3", "12"}}));
  EXPECT_EQ(w.sim.individual_mappings(), (std::map<std::string, std::string>{{"IND-7", "58123"}}));
  json m = c.get("/api/v1/messages/" + ind).json();
  EXPECT_NE(m["deliveries"][0]["last_outcome"]["text"].get<std::string>().find("non renvoyé"),
            std::string::npos)
      << m.dump();
  // The same pairing posted again (another event): already sent, nothing sent.
  const std::string again = pairing("evt-p3", "foyer:12", "HF-3", "");
  ASSERT_TRUE(wait_deliveries_state(c, again, "delivered", std::chrono::seconds(20)));
  EXPECT_EQ(w.sim.mapping_requests(), 2);
  // The guard is in the store: after a kill -9 and a restart, still nothing sent again.
  w.relais->kill9();
  w.relais->restart();
  c = w.relais->client();
  const std::string after = pairing("evt-p5", "individu:58123", "IND-7", "foyer:12");
  ASSERT_TRUE(wait_deliveries_state(c, after, "delivered", std::chrono::seconds(20)));
  EXPECT_EQ(w.sim.mapping_requests(), 2);
  // A home folder Capdémat does not know: a Fault, dead with the reason.
  const std::string unknown = pairing("evt-p4", "foyer:99", "HF-404", "");
  ASSERT_TRUE(wait_deliveries_state(c, unknown, "dead", std::chrono::seconds(20)))
      << c.get("/api/v1/messages/" + unknown).body;
  m = c.get("/api/v1/messages/" + unknown).json();
  EXPECT_NE(m["deliveries"][0]["last_outcome"]["text"].get<std::string>().find("refuse"),
            std::string::npos)
      << m.dump();
  EXPECT_TRUE(w.sim.violations().empty()) << w.sim.violations().front();
}

// Issue 13, gap 2: a table named in `referentials`, published by an admin through the API,
// reaches Capdémat as a local referential (valid against ReferentialData.xsd: the simulator
// checks), through a durable message of the destination.
TEST(CapdematEndToEnd, APublishedTableIsPushedAsALocalReferential) {
  World w;
  HttpClient c = w.relais->client();
  HttpResponse r = c.post_json(
      "/api/v1/tables/cms/versions",
      json{{"format", "csv"},
           {"content",
            "nom,adresse\n*,Quai Jean Moulin\nRouen Nord,12 rue du Nord\nBarentin,Place de la "
            "Libération\n"},
           {"comment", "CMS"}}
          .dump());
  ASSERT_EQ(r.status, 201) << r.body;
  ASSERT_TRUE(
      wait_until([&] { return w.sim.referentials().count("CMS") > 0; }, std::chrono::seconds(20)))
      << w.relais->stderr_text();
  const std::string doc = w.sim.referentials()["CMS"];
  EXPECT_NE(doc.find("<label>Centres médico-sociaux</label>"), std::string::npos) << doc;
  const auto barentin = doc.find("<entry key=\"Barentin\">");
  const auto rouen = doc.find("<entry key=\"Rouen-Nord\">");
  EXPECT_NE(barentin, std::string::npos) << doc;
  EXPECT_NE(rouen, std::string::npos) << doc;
  EXPECT_LT(barentin, rouen);                                  // sorted by key
  EXPECT_EQ(doc.find("Quai Jean Moulin"), std::string::npos);  // the default is no entry
  // A table that is not a referential: nothing sent.
  ASSERT_EQ(c.post_json("/api/v1/tables/autre/versions",
                        json{{"format", "csv"}, {"content", "k,v\na,b\n"}}.dump())
                .status,
            201);
  // The referential pushed again when the table changes (a PUT replaces the list).
  ASSERT_EQ(
      c.post_json("/api/v1/tables/cms/versions",
                  json{{"format", "csv"}, {"content", "nom,adresse\nElbeuf,3 place\n"}}.dump())
          .status,
      201);
  ASSERT_TRUE(
      wait_until([&] { return w.sim.referentials()["CMS"].find("Elbeuf") != std::string::npos; },
                 std::chrono::seconds(20)));
  EXPECT_EQ(w.sim.referentials().size(), 1u);
  EXPECT_TRUE(w.sim.violations().empty()) << w.sim.violations().front();
}

}  // namespace
}  // namespace relais::testing
