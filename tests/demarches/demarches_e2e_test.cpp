// démarches-simplifiées through the real relais binary, against the strict simulator
// (tests/demarches/ds_simulator.h): a dossier submitted becomes a CMS76 demande (webhook, or the
// catch-up when the webhook was missed — never both); decisions go back once each, in order,
// with lost answers and a kill -9; a webhook for a procedure not allowed is refused.
#include <gtest/gtest.h>

#include <string>

#include "tests/demarches/ds_simulator.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kToken = "ds-token-e2e-0123456789";
constexpr const char* kInstructeur = "SW5zdHJ1Y3RldXItNw==";

std::string config(const DsSimulator& sim, int cms76_port, const std::string& poll_interval) {
  const std::string src = RELAIS_SOURCE_DIR;
  const std::string api = "      url: " + sim.url() + "\n      token: " + kToken + "\n";
  return "sources:\n"
         "  fsl:\n"
         "    type: $.evenement\n"
         "    correlation: [\"dossier:{$.dossier.numero}\"]\n"
         "    personal: [$.dossier]\n"
         "    poll:\n"
         "      kind: demarches-simplifiees\n"
         "      interval: " +
         poll_interval + "\n" + api +
         "      procedures: [\"42\"]\n"
         "  instruction:\n"
         "    type: $.type\n"
         "    correlation: [\"dossier:{$.dossier}\"]\n"
         "    idempotency: $.id\n"
         "mappings:\n  directory: " +
         src + "/config/mappings\n  tables: " + src +
         "/config/tables\n"
         "connectors:\n" +
         http_connector_yaml("cms76-demandes", cms76_port) +
         "  ds:\n"
         "    connector: demarches-simplifiees\n"
         "    url: " +
         sim.url() + "\n    token: " + kToken + "\n    instructeur_id: \"" + kInstructeur +
         "\"\n"
         "    timeout: 2s\n"
         "    retry: {initial: 100ms, max: 500ms, max_attempts: 50}\n"
         "    webhook: {source: fsl, procedures: [\"42\"]}\n"
         "routes:\n"
         "  - {name: fsl-demandes, source: fsl, type: dossier.en_construction, to: "
         "[{destination: cms76-demandes, mapping: fsl-dossier-cms76}]}\n"
         "  - {name: decisions, source: instruction, type: \"decision.*\", to: [{destination: "
         "ds}]}\n";
}

RelaisOptions options(const std::string& body) {
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = body;
  return o;
}

const std::map<std::string, std::string> kChamps{{"Thématique", "Budget"},
                                                 {"Objet de la demande", "Aide au logement"},
                                                 {"Justificatif de domicile", "facture.pdf"}};

TEST(DemarchesEndToEnd, WebhookMakesOneCms76DemandeAndOtherProceduresAreRefused) {
  DsSimulator sim(kToken, kInstructeur);
  tools::HttpSink cms76(0, true, 4);
  RelaisProcess relais(options(config(sim, cms76.port(), "1h")));
  relais.start();
  const std::string hook = relais.base_url() + "/api/v1/connectors/ds/inbound/webhook";

  const int64_t n = sim.submit(42, kChamps);
  EXPECT_EQ(sim.send_webhook(hook, n), 200);
  ASSERT_TRUE(wait_until([&] { return cms76.count() >= 1; }, 20s)) << relais.stderr_text();
  json demande = json::parse(cms76.requests()[0].body);
  EXPECT_EQ(demande["origine"], "FSL");
  EXPECT_EQ(demande["reference"], "DS-" + std::to_string(n));
  EXPECT_EQ(demande["demandeur"]["nom"], "Martin");
  EXPECT_EQ(demande["instruction"]["objet"], "Aide au logement");
  ASSERT_EQ(demande["pieces_jointes"].size(), 1u);
  EXPECT_EQ(demande["pieces_jointes"][0]["nom"], "facture.pdf");
  EXPECT_EQ(demande["pieces_jointes"][0].dump().find("http"), std::string::npos);

  // The same webhook again (DS retries): the dossier is fetched again, nothing new.
  EXPECT_EQ(sim.send_webhook(hook, n), 200);
  // A procedure not allowed: refused before anything is fetched.
  const int fetched = sim.calls("getDossier");
  const int64_t other = sim.submit(77, kChamps);
  EXPECT_EQ(sim.send_webhook(hook, other), 403);
  // A webhook that lies about the procedure: the fetched dossier says otherwise.
  EXPECT_EQ(sim.send_webhook(hook, 42, other), 403);
  EXPECT_EQ(sim.calls("getDossier"), fetched + 1);
  // A form without a dossier number, a GET: refused, nothing fetched.
  HttpClient anyone;
  EXPECT_EQ(
      anyone
          .post(hook, "procedure_id=42&state=en_construction", "application/x-www-form-urlencoded")
          .status,
      400);
  EXPECT_EQ(anyone.get(hook).status, 405);
  EXPECT_EQ(sim.calls("getDossier"), fetched + 1);
  // A second dossier flows: the first was not sent twice meanwhile.
  const int64_t second = sim.submit(42, kChamps);
  EXPECT_EQ(sim.send_webhook(hook, second), 200);
  ASSERT_TRUE(wait_until([&] { return cms76.count() >= 2; }, 20s)) << relais.stderr_text();
  EXPECT_EQ(cms76.count(), 2u);
  EXPECT_EQ(json::parse(cms76.requests()[1].body)["reference"], "DS-" + std::to_string(second));
  // The console's "test the connection": the token must be allowed on the webhook's procedure.
  HttpClient admin = relais.client();
  json probe = admin.post_json("/api/v1/destinations/ds/probe", "{}").json();
  EXPECT_EQ(probe.value("ok", true), false) << probe.dump();
  EXPECT_NE(probe.value("detail", "").find("ne trouve pas"), std::string::npos) << probe.dump();
  sim.allow_procedure(42);
  probe = admin.post_json("/api/v1/destinations/ds/probe", "{}").json();
  EXPECT_EQ(probe.value("ok", false), true) << probe.dump();
  EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
  // The dossiers' personal data never reach the log.
  const std::string out = relais.stdout_text() + relais.stderr_text();
  for (const char* p : {"Martin", "Claire", "1984-03-02", "usager@example.invalid", "facture"}) {
    EXPECT_EQ(out.find(p), std::string::npos) << p;
  }
  EXPECT_EQ(relais.stop(), 0);
}

// The CMS76 stand-in's requests by relais message id (X-Relais-Message-Id), bodies parsed.
std::map<std::string, json> messages(const tools::HttpSink& sink) {
  std::map<std::string, json> out;
  for (const auto& r : sink.requests()) {
    auto it = r.headers.find("x-relais-message-id");
    if (it != r.headers.end()) out[it->second] = json::parse(r.body);
  }
  return out;
}

TEST(DemarchesEndToEnd, MissedWebhooksAreCaughtUpOnceAcrossPagesAndAKill9) {
  DsSimulator sim(kToken, kInstructeur);
  tools::HttpSink cms76(0, true, 4);
  std::string body = config(sim, cms76.port(), "300ms");
  // Two dossiers per page: the catch-up follows the cursor.
  body.replace(body.find("      procedures: [\"42\"]\n"), 0, "      page_size: 2\n");
  RelaisProcess relais(options(body));
  relais.start();
  std::string hook = relais.base_url() + "/api/v1/connectors/ds/inbound/webhook";
  // The API fails the first reads (503, then a GraphQL timeout): polls fail, then recover.
  sim.inject("getDemarcheDossiers", DsSimulator::Fault::Http503, 1);
  sim.inject("getDemarcheDossiers", DsSimulator::Fault::Timeout, 1);
  std::vector<int64_t> numbers;
  for (int i = 0; i < 5; ++i) numbers.push_back(sim.submit(42, kChamps));
  ASSERT_TRUE(wait_until([&] { return messages(cms76).size() >= 5; }, 20s)) << relais.stderr_text();
  // Killed and restarted: the catch-up goes on from its checkpoint, nothing read twice.
  relais.kill9();
  relais.restart();
  hook = relais.base_url() + "/api/v1/connectors/ds/inbound/webhook";
  // A late webhook for a dossier already caught up: taken once.
  EXPECT_EQ(sim.send_webhook(hook, numbers[2]), 200);
  // An edit moves the modification date: the change is a new message (the demande mapping's
  // idempotency key stays the dossier's, for CMS76).
  sim.edit(numbers[0], "Objet de la demande", "Aide alimentaire");
  ASSERT_TRUE(wait_until([&] { return messages(cms76).size() >= 6; }, 20s)) << relais.stderr_text();
  // A later dossier whose webhook finds the API down: 503 to démarches-simplifiées, and the
  // catch-up takes it; it also proves the catch-up went on without repeating anything.
  sim.inject("getDossier", DsSimulator::Fault::Http503, 1);
  const int64_t last = sim.submit(42, kChamps);
  EXPECT_EQ(sim.send_webhook(hook, last), 503);
  ASSERT_TRUE(wait_until([&] { return messages(cms76).size() >= 7; }, 20s)) << relais.stderr_text();
  // Per message (a delivery cut by the kill may reach the stand-in twice: at-least-once to an
  // HTTP destination, the same message id), the references.
  std::map<std::string, int> per_reference;
  for (const auto& [id, body] : messages(cms76)) ++per_reference[body["reference"]];
  EXPECT_EQ(per_reference.size(), 6u);
  EXPECT_EQ(per_reference["DS-" + std::to_string(numbers[0])], 2);
  EXPECT_EQ(per_reference["DS-" + std::to_string(last)], 1);
  int edited = 0;
  for (const auto& [id, body] : messages(cms76)) {
    edited += body["instruction"]["objet"] == "Aide alimentaire" ? 1 : 0;
  }
  EXPECT_EQ(edited, 1);
  EXPECT_EQ(messages(cms76).size(), 7u);
  EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
  EXPECT_EQ(relais.stop(), 0);
}

json delivery_of(HttpClient& c, const std::string& id) {
  json m = c.get("/api/v1/messages/" + id).json();
  if (!m.is_object() || !m.contains("deliveries") || m["deliveries"].empty()) return json();
  return m["deliveries"][0];
}

TEST(DemarchesEndToEnd, DecisionsGoBackOnceEachThroughLostAnswersAndAKill9) {
  DsSimulator sim(kToken, kInstructeur);
  tools::HttpSink cms76(0, true, 4);
  RelaisProcess relais(options(config(sim, cms76.port(), "1h")));
  relais.start();
  const int64_t n = sim.submit(42, kChamps);
  const int64_t other = sim.submit(42, kChamps);
  // Every decision's answer is lost once after it was applied; the state read fails twice (HTTP
  // 503, a GraphQL timeout); the refusal of a second decision on a closed dossier is explained.
  sim.inject("dossierPasserEnInstruction", DsSimulator::Fault::LostAfterApply, 2);
  sim.inject("dossierAccepter", DsSimulator::Fault::LostAfterApply, 1);
  sim.inject("getDossierEtat", DsSimulator::Fault::Http503, 1);
  sim.inject("getDossierEtat", DsSimulator::Fault::Timeout, 1);
  HttpClient c = relais.client();
  auto decide = [&](const std::string& id, int64_t dossier, const std::string& decision,
                    const std::string& motivation) {
    json m = {
        {"id", id}, {"type", "decision." + decision}, {"dossier", dossier}, {"decision", decision}};
    if (!motivation.empty()) m["motivation"] = motivation;
    HttpResponse r = c.post_json("/api/v1/sources/instruction/messages", m.dump());
    EXPECT_EQ(r.status, 202) << r.body;
    return r.json().value("id", "");
  };
  const std::string passer = decide("d-1", n, "passer_en_instruction", "");
  const std::string accepter = decide("d-2", n, "accepter", "Dossier complet");
  decide("d-3", other, "passer_en_instruction", "");
  // Kill relais as soon as the acceptance is applied and its answer lost.
  ASSERT_TRUE(wait_until([&] { return sim.dossier(n).state == "accepte"; }, 30s))
      << relais.stderr_text();
  relais.kill9();
  relais.restart();
  c = relais.client();
  ASSERT_TRUE(wait_until(
      [&] {
        return delivery_of(c, accepter).value("state", "") == "delivered" &&
               sim.dossier(other).state == "en_instruction";
      },
      30s))
      << relais.stderr_text();
  EXPECT_EQ(delivery_of(c, passer).value("state", ""), "delivered");
  EXPECT_EQ(sim.dossier(n).applied,
            (std::vector<std::string>{"dossierPasserEnInstruction", "dossierAccepter"}));
  EXPECT_EQ(sim.dossier(other).applied, (std::vector<std::string>{"dossierPasserEnInstruction"}));
  EXPECT_EQ(sim.dossier(n).motivation, "Dossier complet");
  // Exactly once on the wire too: after a lost answer the state was read, nothing re-sent.
  EXPECT_EQ(sim.calls("dossierPasserEnInstruction"), 2);
  EXPECT_EQ(sim.calls("dossierAccepter"), 1);
  // A refusal of an accepted dossier is rejected with a French explanation, never sent.
  const std::string refuser = decide("d-4", n, "refuser", "Hors délai");
  ASSERT_TRUE(
      wait_until([&] { return delivery_of(c, refuser).value("state", "") == "dead"; }, 20s));
  EXPECT_NE(delivery_of(c, refuser).dump().find("accepte"), std::string::npos);
  EXPECT_EQ(sim.calls("dossierRefuser"), 0);
  EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
  EXPECT_EQ(relais.stop(), 0);
}

}  // namespace
}  // namespace relais::testing
