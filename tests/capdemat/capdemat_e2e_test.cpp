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
  root["sources"]["cms76"]["correlation"] = "demande:{$.demande.capdemat_id}";
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
      " {name: etats, source: cms76, type: demande.statut, to: [{destination: capdemat}]}]");
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

}  // namespace
}  // namespace relais::testing
