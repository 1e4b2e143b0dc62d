// The genesis connector against the Genesis simulator: both drivers on the shipped default
// profile, WS-Security, extraction, every error class, a lost create answer, and the
// connector's side of appariement (auto, homonyms, candidates → choice → the person's waiting
// messages in order).

#include <gtest/gtest.h>

#include <curl/curl.h>

#include <algorithm>
#include <fstream>

#include "api/desk_text.h"
#include "connectors/genesis/genesis.h"
#include "tests/genesis/genesis_test_support.h"

namespace relais::testing {
namespace {

using P = GenesisSimulator::Protocol;
using Fault = GenesisSimulator::Fault;
using json = nlohmann::json;

std::string proto_name(const ::testing::TestParamInfo<P>& i) {
  return i.param == P::Soap ? "Soap" : "Rest";
}

SimPerson person(const std::string& nom, const std::string& prenom, const std::string& naissance,
                 const std::string& sexe = "M", const std::string& commune = "ROUEN") {
  SimPerson p;
  p.nom_naissance = nom;
  p.nom_usage = nom;
  p.prenoms = prenom;
  p.date_naissance = naissance;
  p.sexe = sexe;
  p.commune = commune;
  return p;
}

// How many requests of Genesis operation `op` the simulator received.
long times(const GenesisSimulator& sim, const std::string& op) {
  auto r = sim.received();
  return std::count(r.begin(), r.end(), op);
}

// ---- the pure readers ------------------------------------------------------------------------

TEST(GenesisAnswer, SoapNamespacesAreResolvedNotMatchedByPrefix) {
  genesis::AnswerSpec spec;
  spec.namespaces = {{"gen", "urn:worldline:genesis:1.0"}};
  spec.extract = {{"id", "//gen:creerPersonneReponse/gen:identifiant"}};
  // The server's own prefix (x), and a default namespace: both read with the profile's "gen".
  auto a = genesis::read_soap_answer(
      R"(<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>)"
      R"(<x:creerPersonneReponse xmlns:x="urn:worldline:genesis:1.0"><x:identifiant> GP-7 )"
      R"(</x:identifiant></x:creerPersonneReponse></e:Body></e:Envelope>)",
      spec);
  EXPECT_TRUE(a.parsed);
  EXPECT_EQ(a.value("id"), "GP-7");
  auto b = genesis::read_soap_answer(
      R"(<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body>)"
      R"(<creerPersonneReponse xmlns="urn:worldline:genesis:1.0"><identifiant>GP-8</identifiant>)"
      R"(</creerPersonneReponse></Body></Envelope>)",
      spec);
  EXPECT_EQ(b.value("id"), "GP-8");
  // Another namespace with the same local names is not Genesis's.
  auto c = genesis::read_soap_answer(
      R"(<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>)"
      R"(<gen:creerPersonneReponse xmlns:gen="urn:other"><gen:identifiant>GP-9</gen:identifiant>)"
      R"(</gen:creerPersonneReponse></e:Body></e:Envelope>)",
      spec);
  EXPECT_TRUE(c.parsed);
  EXPECT_EQ(c.values.count("id"), 0u);
}

TEST(GenesisAnswer, BrokenIsToldFromEmpty) {
  genesis::AnswerSpec spec;
  spec.candidates = "$.candidats";
  spec.candidate = {{"id", "$.identifiant"}, {"score", "$.score"}};
  auto empty = genesis::read_json_answer(R"({"candidats": []})", spec);
  EXPECT_TRUE(empty.parsed);
  EXPECT_TRUE(empty.candidates_valid);
  EXPECT_TRUE(empty.candidates.empty());
  auto other = genesis::read_json_answer(R"({"resultat": "ok"})", spec);
  EXPECT_TRUE(other.parsed);
  EXPECT_FALSE(other.candidates_valid);
  auto broken = genesis::read_json_answer(R"({"candidats": [)", spec);
  EXPECT_FALSE(broken.parsed);
  EXPECT_FALSE(broken.broken.empty());
  auto none = genesis::read_json_answer("", spec);
  EXPECT_TRUE(none.parsed);  // a 204
  genesis::AnswerSpec soap;
  auto truncated = genesis::read_soap_answer("<S:Envelope xmlns:S=\"x\"><S:Bo", soap);
  EXPECT_FALSE(truncated.parsed);
  auto not_soap = genesis::read_soap_answer("<html><body>502</body></html>", soap);
  EXPECT_FALSE(not_soap.parsed);
}

TEST(GenesisAnswer, CandidatesNeedAnIdAndAScore) {
  genesis::AnswerSpec spec;
  spec.candidates = "$.candidats";
  spec.candidate = {{"id", "$.identifiant"}, {"score", "$.score"}, {"nom", "$.nomUsage"}};
  auto a = genesis::read_json_answer(
      R"({"candidats":[{"identifiant":"GP-1","score":0.97,"nomUsage":"MARTIN"},)"
      R"({"identifiant":"GP-2","score":"85"},{"score":0.9},{"identifiant":"GP-3","score":"x"},7]})",
      spec);
  ASSERT_EQ(a.candidates.size(), 2u);
  EXPECT_EQ(a.candidates[0].external_id, "GP-1");
  EXPECT_DOUBLE_EQ(a.candidates[0].score, 0.97);
  EXPECT_EQ(a.candidates[0].summary["nom"], "MARTIN");
  EXPECT_DOUBLE_EQ(a.candidates[1].score, 0.85);  // a percentage
}

TEST(GenesisAnswer, SoapFaultCodeAndDetail) {
  genesis::AnswerSpec spec;
  spec.namespaces = {{"gen", "urn:worldline:genesis:1.0"}};
  spec.extract = {{"error_code", "//gen:erreur/gen:code"}};
  auto a = genesis::read_soap_answer(
      R"(<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><S:Fault>)"
      R"(<faultcode>S:Client</faultcode><faultstring>processus déjà clos</faultstring><detail>)"
      R"(<g:erreur xmlns:g="urn:worldline:genesis:1.0"><g:code>PROC-CLOS</g:code></g:erreur>)"
      R"(</detail></S:Fault></S:Body></S:Envelope>)",
      spec);
  EXPECT_TRUE(a.fault);
  EXPECT_EQ(a.fault_code, "Client");
  EXPECT_EQ(a.value("error_code"), "PROC-CLOS");
}

TEST(GenesisWsse, DigestIsBase64OfSha1OfNonceCreatedPassword) {
  // The OASIS profile's formula on a fixed input, checked against openssl's own command.
  std::string d = genesis::wsse_digest("0123456789abcdef", "2026-12-07T08:00:00Z", "secret");
  EXPECT_EQ(d, "FiRSrG5lZlT4xFqqgBN/3olP0eU=");
  std::string h =
      genesis::wsse_header({"relais", "secret", true}, "0123456789abcdef", "2026-12-07T08:00:00Z");
  EXPECT_NE(h.find(genesis::kPasswordDigest), std::string::npos);
  EXPECT_NE(h.find(genesis::kWsseNs), std::string::npos);
  EXPECT_NE(h.find(genesis::kWsuNs), std::string::npos);
  EXPECT_EQ(h.find("secret"), std::string::npos);  // a digest, never the password
  std::string t =
      genesis::wsse_header({"relais", "secret", false}, "0123456789abcdef", "2026-12-07T08:00:00Z");
  EXPECT_NE(t.find(genesis::kPasswordText), std::string::npos);
}

// The support desk's plain-French reading of the connector's outcomes.
TEST(GenesisDesk, OutcomesAreExplainedToTheDesk) {
  auto waiting = api::explain("scheduled", 0, "en attente d'appariement Genesis");
  EXPECT_NE(waiting.title.find("pas encore rattachée"), std::string::npos) << waiting.title;
  auto refused =
      api::explain("genesis", 0, "appariement refusé : identifiant Genesis inconnu de Genesis");
  EXPECT_NE(refused.title.find("choix d'appariement a été refusé"), std::string::npos);
  auto business = api::explain("genesis", 409, "Genesis : processus déjà clos (code PROC-CLOS)");
  EXPECT_NE(business.title.find("Genesis a refusé"), std::string::npos) << business.title;
}

// ---- configuration ---------------------------------------------------------------------------

TEST(GenesisConfig, ShippedProfilesAreValid) {
  GenesisHarness soap(P::Soap);
  EXPECT_TRUE(soap.config_errors().empty()) << soap.config_errors().front();
  GenesisHarness rest(P::Rest);
  EXPECT_TRUE(rest.config_errors().empty()) << rest.config_errors().front();
}

TEST(GenesisConfig, MistakesAreNamed) {
  GenesisHarness h(P::Soap, [](YAML::Node& n) {
    n["types"]["rdv.*"] = "nulle_part";
    n["operations"]["personne_maj"].remove("soap_action");
    n["operations"]["personne_recherche"]["candidate"].remove("score");
    n["operations"]["personne_creation"]["extract"]["id"] = "//gen:[";
    n["appariement"]["verify"] = "absente";
  });
  std::string all;
  for (const auto& e : h.config_errors()) all += e + "\n";
  EXPECT_NE(all.find("types.rdv.*: no operation named 'nulle_part'"), std::string::npos) << all;
  EXPECT_NE(all.find("personne_maj.soap_action: required"), std::string::npos) << all;
  EXPECT_NE(all.find("needs id and score"), std::string::npos) << all;
  EXPECT_NE(all.find("not an XPath"), std::string::npos) << all;
  EXPECT_NE(all.find("appariement.verify: no operation named 'absente'"), std::string::npos) << all;
}

// ---- both drivers ----------------------------------------------------------------------------

class GenesisDriver : public ::testing::TestWithParam<P> {};
INSTANTIATE_TEST_SUITE_P(Drivers, GenesisDriver, ::testing::Values(P::Soap, P::Rest), proto_name);

// A person seen for the first time: Genesis is searched, the candidates go to CMS76, the
// delivery waits (no new search, no new post when it looks again).
TEST_P(GenesisDriver, UnknownPersonIsSearchedAndCandidatesGoBackToCms76) {
  GenesisHarness h(GetParam());
  std::string id = h.sim().add_person(person("DUPONT", "Jean", "1962-09-22"));
  auto ind = individu(58123, "DUPONT", "Jean", "1962-09-22");
  Outcome o = h.send("individu.created", "individu:58123", ind.body, ind.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Defer) << outcome_text(o);
  EXPECT_EQ(o.text, "en attente d'appariement Genesis");
  EXPECT_EQ(o.not_before, h.clock().now_ms() + 3600 * 1000);
  auto posts = h.hub().posts();
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].destination, "cms76-appariement");
  EXPECT_EQ(posts[0].type, "appariement.candidats");
  EXPECT_EQ(posts[0].body["personne"], "individu:58123");
  ASSERT_EQ(posts[0].body["candidats"].size(), 1u);
  EXPECT_EQ(posts[0].body["candidats"][0]["genesis_id"], id);
  EXPECT_DOUBLE_EQ(posts[0].body["candidats"][0]["score"].get<double>(), 1.0);
  EXPECT_EQ(posts[0].body["candidats"][0]["dateNaissance"], "1962-09-22");
  Status st;
  auto p = h.pairings().get("genesis", "individu:58123", st);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->state, PairingState::Waiting);
  EXPECT_EQ(posts[0].body["appariement"], p->id);
  // Looking again: still waiting, nothing asked of Genesis nor sent to CMS76.
  h.clock().advance(3600 * 1000);
  o = h.send("individu.created", "individu:58123", ind.body, ind.mapped);
  EXPECT_EQ(o.kind, Outcome::Kind::Defer) << outcome_text(o);
  EXPECT_EQ(h.hub().posts().size(), 1u);
  EXPECT_EQ(times(h.sim(), "rechercherPersonne"), 1);
  EXPECT_TRUE(h.sim().violations().empty()) << h.sim().violations().front();
}

TEST_P(GenesisDriver, AutoPairingWithOneStrongCandidateThenUpdate) {
  GenesisHarness h(GetParam(), [](YAML::Node& n) { n["appariement"]["auto_pair"] = true; });
  std::string id = h.sim().add_person(person("MARTIN", "Elodie", "1990-01-31", "F"));
  h.sim().add_person(person("MARTIN", "Elodie", "1991-03-02", "F"));  // weaker: another birth
  auto ind = individu(7, "MARTIN", "Elodie", "1990-01-31", "F");
  Outcome o = h.send("individu.created", "individu:7", ind.body, ind.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_EQ(o.external_ref, id);
  Status st;
  auto p = h.pairings().get("genesis", "individu:7", st);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->state, PairingState::Paired);
  EXPECT_EQ(p->how, "auto");
  EXPECT_EQ(h.sim().applied(), std::vector<std::string>{"mettreAJourPersonne " + id});
  EXPECT_EQ(h.sim().person(id)->id_externe, "CMS76-IND-7");
  EXPECT_TRUE(h.hub().posts().empty());
  // A paired person is never searched again.
  auto upd = individu(7, "MARTIN", "Elodie", "1990-01-31", "F", "ROUEN", "individu.updated");
  o = h.send("individu.updated", "individu:7", upd.body, upd.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_EQ(times(h.sim(), "rechercherPersonne"), 1);
  EXPECT_EQ(h.sim().person(id)->updates, 2);
  EXPECT_TRUE(h.sim().violations().empty()) << h.sim().violations().front();
}

TEST_P(GenesisDriver, HomonymsAreNeverAutoPaired) {
  GenesisHarness h(GetParam(), [](YAML::Node& n) { n["appariement"]["auto_pair"] = true; });
  std::string a = h.sim().add_person(person("LEROY", "Paul", "1975-06-01"));
  std::string b = h.sim().add_person(person("LEROY", "Paul", "1975-06-01", "M", "DIEPPE"));
  auto ind = individu(9, "LEROY", "Paul", "1975-06-01", "M", "LE HAVRE");
  Outcome o = h.send("individu.created", "individu:9", ind.body, ind.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Defer) << outcome_text(o);
  auto posts = h.hub().posts();
  ASSERT_EQ(posts.size(), 1u);
  ASSERT_EQ(posts[0].body["candidats"].size(), 2u);
  std::set<std::string> ids;
  for (const auto& c : posts[0].body["candidats"]) {
    ids.insert(c["genesis_id"].get<std::string>());
    EXPECT_GE(c["score"].get<double>(), 0.95);
    EXPECT_EQ(c["nomUsage"], "LEROY");
  }
  EXPECT_EQ(ids, (std::set<std::string>{a, b}));
  Status st;
  EXPECT_EQ(h.pairings().get("genesis", "individu:9", st)->state, PairingState::Waiting);
  EXPECT_TRUE(h.sim().applied().empty());
}

// Candidates → the person's choice as a message → the person's messages, then its request.
TEST_P(GenesisDriver, ChoiceWakesThePersonFirstThenItsRequests) {
  GenesisHarness h(GetParam());
  std::string id = h.sim().add_person(person("DUPONT", "Jean", "1962-09-22"));
  h.sim().add_person(person("DUPONT", "Jean", "1962-09-22", "M", "ELBEUF"));  // a homonym
  auto ind = individu(58123, "DUPONT", "Jean", "1962-09-22");
  auto dem = demande(547, 58123, "demande.created", "ouvert");
  ASSERT_EQ(h.send("individu.created", "individu:58123", ind.body, ind.mapped).kind,
            Outcome::Kind::Defer);
  // The request of a person not paired yet waits too (no search: it is not an individu).
  Outcome o = h.send("demande.created", "demande:547", dem.body, dem.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Defer) << outcome_text(o);
  EXPECT_EQ(times(h.sim(), "rechercherPersonne"), 1);
  EXPECT_TRUE(h.sim().applied().empty());
  // The choice comes back from CMS76.
  o = h.send("appariement.choisi", "appariement:individu:58123", choice("individu:58123", id),
             json::object());
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  Status st;
  auto p = h.pairings().get("genesis", "individu:58123", st);
  EXPECT_EQ(p->state, PairingState::Paired);
  EXPECT_EQ(p->how, "message");
  EXPECT_EQ(p->by, "cms76");
  // Only the person's own delivery is woken now…
  EXPECT_EQ(h.hub().wakes(), std::vector<std::string>{"genesis individu:58123"});
  o = h.send("individu.created", "individu:58123", ind.body, ind.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  // …its request once the person has gone to Genesis.
  EXPECT_EQ(h.hub().wakes(),
            (std::vector<std::string>{"genesis individu:58123", "genesis demande:547"}));
  o = h.send("demande.created", "demande:547", dem.body, dem.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  auto applied = h.sim().applied();
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[0], "mettreAJourPersonne " + id);
  EXPECT_EQ(applied[1].rfind("creerProcessus PR-", 0), 0u) << applied[1];
  EXPECT_EQ(h.sim().processes().at(0).personne, id);
  // The process's id is the request's cross-reference: its next state updates it.
  auto x = h.xrefs().get("genesis", "demande:547");
  ASSERT_TRUE(x);
  EXPECT_EQ(x->external_id, h.sim().processes().at(0).id);
  auto closed = demande(547, 58123, "demande.closed", "clos");
  o = h.send("demande.closed", "demande:547", closed.body, closed.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_EQ(h.sim().processes().at(0).statut, "clos");
  EXPECT_TRUE(h.sim().violations().empty()) << h.sim().violations().front();
}

// A pairing made in the console (the pairing store directly, as the API does) wakes the
// deliveries in the same order through Connector::wake_paired.
TEST_P(GenesisDriver, ConsoleChoiceWakesThePersonFirstToo) {
  GenesisHarness h(GetParam());
  std::string id = h.sim().add_person(person("DUPONT", "Jean", "1962-09-22"));
  auto ind = individu(58123, "DUPONT", "Jean", "1962-09-22");
  auto dem = demande(547, 58123, "demande.created", "ouvert");
  ASSERT_EQ(h.send("demande.created", "demande:547", dem.body, dem.mapped).kind,
            Outcome::Kind::Defer);
  ASSERT_EQ(h.send("individu.created", "individu:58123", ind.body, ind.mapped).kind,
            Outcome::Kind::Defer);
  EXPECT_EQ(times(h.sim(), "rechercherPersonne"), 1);  // the request's wait did not stop it
  std::vector<PairingWaiter> woken;
  ASSERT_TRUE(h.pairings().pair("genesis", "individu:58123", id, "console", "agent", woken).ok);
  ASSERT_EQ(woken.size(), 2u);
  ASSERT_TRUE(h.connector().wake_paired("individu:58123", woken));
  EXPECT_EQ(h.hub().wakes(), std::vector<std::string>{"genesis individu:58123"});
  ASSERT_EQ(h.send("individu.created", "individu:58123", ind.body, ind.mapped).kind,
            Outcome::Kind::Delivered);
  EXPECT_EQ(h.hub().wakes(),
            (std::vector<std::string>{"genesis individu:58123", "genesis demande:547"}));
  ASSERT_EQ(h.send("demande.created", "demande:547", dem.body, dem.mapped).kind,
            Outcome::Kind::Delivered);
  auto applied = h.sim().applied();
  ASSERT_EQ(applied.size(), 2u);
  EXPECT_EQ(applied[0], "mettreAJourPersonne " + id);
  // Another kind of destination is left to the caller.
  Registries registries;
  YAML::Node http = YAML::Load("url: http://127.0.0.1:9/x\n");
  ConnectorContext ctx;
  ctx.name = "autre";
  ctx.config = ConfigView(http, {registries.connectors.find("http")->spec}, "connectors.autre");
  ctx.clock = &h.clock();
  auto other = registries.connectors.find("http")->create(ctx);
  EXPECT_FALSE(other->wake_paired("individu:58123", woken));
}

// An undone pairing makes the person's next messages wait again: a person's message searches
// anew, a request waits.
TEST_P(GenesisDriver, UndoneAppariementHoldsTheNextMessagesAgain) {
  GenesisHarness h(GetParam(), [](YAML::Node& n) { n["appariement"]["auto_pair"] = true; });
  h.sim().add_person(person("MARTIN", "Elodie", "1990-01-31", "F"));
  auto ind = individu(7, "MARTIN", "Elodie", "1990-01-31", "F");
  ASSERT_EQ(h.send("individu.created", "individu:7", ind.body, ind.mapped).kind,
            Outcome::Kind::Delivered);
  ASSERT_TRUE(h.pairings().undo("genesis", "individu:7", "agent", "mauvaise fiche").ok);
  h.sim().add_person(person("MARTIN", "Elodie", "1990-01-31", "F", "DIEPPE"));  // now two
  auto dem = demande(8, 7, "demande.created", "ouvert");
  Outcome o = h.send("demande.created", "demande:8", dem.body, dem.mapped);
  EXPECT_EQ(o.kind, Outcome::Kind::Defer) << outcome_text(o);
  o = h.send("individu.updated", "individu:7", ind.body, ind.mapped);
  EXPECT_EQ(o.kind, Outcome::Kind::Defer) << outcome_text(o);
  EXPECT_EQ(times(h.sim(), "rechercherPersonne"), 2);
  ASSERT_EQ(h.hub().posts().size(), 1u);
  EXPECT_EQ(h.hub().posts()[0].body["candidats"].size(), 2u);
  Status st;
  auto p = h.pairings().get("genesis", "individu:7", st);
  EXPECT_EQ(p->state, PairingState::Waiting);
  EXPECT_EQ(p->waiters.size(), 2u);
  EXPECT_TRUE(h.sim().processes().empty());
}

TEST_P(GenesisDriver, ChoiceOfAnUnknownGenesisIdIsRefused) {
  GenesisHarness h(GetParam());
  h.sim().add_person(person("DUPONT", "Jean", "1962-09-22"));
  std::string other = h.sim().add_person(person("DURAND", "Luc", "1950-02-02"));
  auto ind = individu(58123, "DUPONT", "Jean", "1962-09-22");
  ASSERT_EQ(h.send("individu.created", "individu:58123", ind.body, ind.mapped).kind,
            Outcome::Kind::Defer);
  Outcome o = h.send("appariement.choisi", "appariement:individu:58123",
                     choice("individu:58123", "GP-999"), json::object());
  ASSERT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_NE(o.text.find("identifiant Genesis inconnu"), std::string::npos) << o.text;
  Status st;
  EXPECT_EQ(h.pairings().get("genesis", "individu:58123", st)->state, PairingState::Waiting);
  EXPECT_TRUE(h.hub().wakes().empty());
  // A record the search did not propose but that Genesis knows (checked with lirePersonne).
  o = h.send("appariement.choisi", "appariement:individu:58123", choice("individu:58123", other),
             json::object());
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_EQ(h.pairings().get("genesis", "individu:58123", st)->external_id, other);
}

// A business error comes back explained in French (the configured text), with its code; the
// partner's own words (which may name the person) stay in the excerpt only.
TEST_P(GenesisDriver, BusinessErrorIsExplainedInFrench) {
  GenesisHarness h(GetParam(), [](YAML::Node& n) { n["appariement"]["auto_pair"] = true; });
  h.sim().add_person(person("MARTIN", "Elodie", "1990-01-31", "F"));
  auto ind = individu(7, "MARTIN", "Elodie", "1990-01-31", "F");
  ASSERT_EQ(h.send("individu.created", "individu:7", ind.body, ind.mapped).kind,
            Outcome::Kind::Delivered);
  auto dem = demande(12, 7, "demande.created", "ouvert");
  ASSERT_EQ(h.send("demande.created", "demande:12", dem.body, dem.mapped).kind,
            Outcome::Kind::Delivered);
  h.sim().close_process(h.sim().processes().at(0).id);
  auto upd = demande(12, 7, "demande.updated", "en_cours");
  Outcome o = h.send("demande.updated", "demande:12", upd.body, upd.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_EQ(o.error_class, "genesis");
  EXPECT_EQ(o.text,
            "Genesis : processus déjà clos dans Genesis : la demande ne peut plus y être modifiée "
            "(code PROC-CLOS)");
  EXPECT_NE(o.excerpt.find("processus déjà clos"), std::string::npos);
  // An unknown code gets the default explanation; a person Genesis no longer knows is named.
  Status st;
  std::vector<PairingWaiter> woken;
  ASSERT_TRUE(h.pairings().undo("genesis", "individu:7", "test", "test").ok);
  ASSERT_TRUE(h.pairings().pair("genesis", "individu:7", "GP-404", "console", "test", woken).ok);
  o = h.send("individu.updated", "individu:7", ind.body, ind.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_NE(o.text.find("personne inconnue de Genesis"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("(code PERS-INCONNUE)"), std::string::npos) << o.text;
  EXPECT_EQ(o.text.find("GP-404"), std::string::npos) << "Genesis's own words in the text";
}

TEST_P(GenesisDriver, TransientFaultsAreRetriesAndThrottles) {
  GenesisHarness h(GetParam(), [](YAML::Node& n) { n["appariement"]["auto_pair"] = true; });
  h.sim().add_person(person("MARTIN", "Elodie", "1990-01-31", "F"));
  auto ind = individu(7, "MARTIN", "Elodie", "1990-01-31", "F");
  ASSERT_EQ(h.send("individu.created", "individu:7", ind.body, ind.mapped).kind,
            Outcome::Kind::Delivered);
  auto again = [&] { return h.send("individu.updated", "individu:7", ind.body, ind.mapped); };
  h.sim().inject(Fault::Http500, "mettreAJourPersonne");
  Outcome o = again();
  EXPECT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
  EXPECT_EQ(o.error_class, "http");
  EXPECT_EQ(o.code, 500);
  h.sim().set_retry_after("7");
  h.sim().inject(Fault::Http503, "mettreAJourPersonne");
  o = again();
  EXPECT_EQ(o.kind, Outcome::Kind::Throttle) << outcome_text(o);
  EXPECT_EQ(o.retry_after_ms, 7000);
  h.sim().inject(Fault::SoapServerFault, "mettreAJourPersonne");
  o = again();
  EXPECT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
  EXPECT_EQ(o.error_class, GetParam() == P::Soap ? "genesis" : "http");
  // An update is idempotent: over REST libcurl sends it again on a fresh connection by itself;
  // over SOAP the same bytes would replay the WS-Security nonce (refused), so the connection
  // reset is a plain retry that builds a new request.
  h.sim().inject(Fault::Reset, "mettreAJourPersonne");
  o = again();
  if (GetParam() == P::Rest) {
    EXPECT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  } else {
    EXPECT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
    EXPECT_EQ(o.error_class, "network");
  }
  EXPECT_TRUE(h.sim().violations().empty()) << h.sim().violations().front();
  // Genesis's own technical error code: a retry, explained.
  h.sim().inject(Fault::TechnicalError, "mettreAJourPersonne");
  o = again();
  EXPECT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
  EXPECT_EQ(o.error_class, "genesis");
  EXPECT_NE(o.text.find("incident technique Genesis"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("(code TECH-INDISPONIBLE)"), std::string::npos) << o.text;
  // A code the profile does not list: the default explanation, rejected.
  h.sim().inject(Fault::UnknownCode, "mettreAJourPersonne");
  o = again();
  EXPECT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_EQ(o.text,
            "Genesis : demande refusée par Genesis : voir le code avec l'équipe Genesis (code "
            "XYZ-42)");
  // Slower than the timeout.
  h.node()["timeout"] = "1s";
  h.build();
  h.sim().inject(Fault::Slow, "mettreAJourPersonne", 1, 2500);
  o = again();
  EXPECT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
  EXPECT_EQ(o.error_class, "timeout");
  // A slow answer within the timeout is just slow.
  h.node()["timeout"] = "5s";
  h.build();
  h.sim().inject(Fault::Slow, "mettreAJourPersonne", 1, 300);
  o = again();
  EXPECT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  // Nobody listening: not sent, a plain retry.
  h.node()["url"] = "http://127.0.0.1:9/genesis";
  h.build();
  o = again();
  EXPECT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
  EXPECT_EQ(o.error_class, "network");
  EXPECT_NE(o.text.find("cannot reach Genesis"), std::string::npos) << o.text;
}

// A create whose answer is lost after Genesis applied it: the next attempt finds it, no
// duplicate. A create lost before it was applied is created once.
TEST_P(GenesisDriver, LostCreateAnswerIsNotDuplicated) {
  GenesisHarness h(GetParam(), [](YAML::Node& n) { n["appariement"]["auto_pair"] = true; });
  h.sim().add_person(person("MARTIN", "Elodie", "1990-01-31", "F"));
  auto ind = individu(7, "MARTIN", "Elodie", "1990-01-31", "F");
  ASSERT_EQ(h.send("individu.created", "individu:7", ind.body, ind.mapped).kind,
            Outcome::Kind::Delivered);
  auto dem = demande(30, 7, "demande.created", "ouvert");
  h.sim().inject(Fault::LostAfterApply, "creerProcessus");
  Outcome o = h.send("demande.created", "demande:30", dem.body, dem.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
  EXPECT_EQ(o.error_class, "unknown_outcome");
  EXPECT_EQ(h.xrefs().get("genesis", "demande:30")->external_id, "?");
  o = h.send("demande.created", "demande:30", dem.body, dem.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  ASSERT_EQ(h.sim().processes().size(), 1u);
  EXPECT_EQ(o.external_ref, h.sim().processes()[0].id);
  EXPECT_NE(o.text.find("not created again"), std::string::npos) << o.text;
  EXPECT_EQ(h.xrefs().get("genesis", "demande:30")->external_id, h.sim().processes()[0].id);

  auto dem2 = demande(31, 7, "demande.created", "ouvert");
  h.sim().inject(Fault::Reset, "creerProcessus");
  o = h.send("demande.created", "demande:31", dem2.body, dem2.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
  EXPECT_EQ(o.error_class, "unknown_outcome");
  o = h.send("demande.created", "demande:31", dem2.body, dem2.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << outcome_text(o);
  EXPECT_EQ(h.sim().processes().size(), 2u);
  auto received = h.sim().received();
  EXPECT_EQ(std::count(received.begin(), received.end(), "trouverProcessus"), 2);
  EXPECT_TRUE(h.sim().violations().empty()) << h.sim().violations().front();
}

// A status for a request whose creation never reached Genesis (skipped by the mapping: no
// instruction) has nothing to update: skipped, said so.
TEST_P(GenesisDriver, StatusOfARequestGenesisNeverHadIsSkipped) {
  GenesisHarness h(GetParam());
  auto closed = demande(99, 7, "demande.closed", "clos");
  Outcome o = h.send("demande.closed", "demande:99", closed.body, closed.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Skip) << outcome_text(o);
  EXPECT_NE(o.text.find("aucun dossier Genesis connu pour demande:99"), std::string::npos);
  EXPECT_TRUE(h.sim().received().empty());
  h.node()["operations"]["processus_statut"]["unknown_ref"] = "reject";
  h.build();
  o = h.send("demande.closed", "demande:99", closed.body, closed.mapped);
  EXPECT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
}

TEST_P(GenesisDriver, CandidatesNotPostedAreTriedAgain) {
  GenesisHarness h(GetParam());
  h.sim().add_person(person("DUPONT", "Jean", "1962-09-22"));
  auto ind = individu(58123, "DUPONT", "Jean", "1962-09-22");
  h.hub().fail_next_posts(1);
  Outcome o = h.send("individu.created", "individu:58123", ind.body, ind.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
  EXPECT_EQ(o.error_class, "hub");
  o = h.send("individu.created", "individu:58123", ind.body, ind.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Defer) << outcome_text(o);
  EXPECT_EQ(h.hub().posts().size(), 1u);
  EXPECT_EQ(times(h.sim(), "rechercherPersonne"), 1);
}

// ---- credentials -----------------------------------------------------------------------------

TEST(GenesisSecurity, WrongPasswordOrTokenIsAConfigurationFault) {
  GenesisHarness soap(P::Soap);
  soap.sim().set_account("relais", "un-autre-mot-de-passe", true);
  auto ind = individu(1, "A", "B", "2000-01-01");
  Outcome o = soap.send("individu.created", "individu:1", ind.body, ind.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_EQ(o.error_class, "config");
  EXPECT_NE(o.text.find("authentification"), std::string::npos);
  GenesisHarness rest(P::Rest);
  rest.sim().set_token("autre-jeton");
  o = rest.send("individu.created", "individu:1", ind.body, ind.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);
  EXPECT_EQ(o.error_class, "config");
  EXPECT_EQ(o.code, 401);
}

TEST(GenesisSecurity, PasswordTextWhenThePeerWantsItAndNotWhenItWantsADigest) {
  GenesisHarness h(P::Soap, [](YAML::Node& n) { n["wss"]["digest"] = false; });
  auto ind = individu(1, "A", "B", "2000-01-01");
  Outcome o = h.send("individu.created", "individu:1", ind.body, ind.mapped);
  EXPECT_EQ(o.kind, Outcome::Kind::Reject) << outcome_text(o);  // the peer wants a digest
  h.sim().set_account("relais", kSimPassword, false);
  o = h.send("individu.created", "individu:1", ind.body, ind.mapped);
  EXPECT_EQ(o.kind, Outcome::Kind::Defer) << outcome_text(o);
}

TEST(GenesisSecurity, StaleCreatedIsAClockProblemAndEveryNonceIsFresh) {
  GenesisHarness h(P::Soap, [](YAML::Node& n) { n["appariement"]["auto_pair"] = true; });
  h.sim().add_person(person("MARTIN", "Elodie", "1990-01-31", "F"));
  auto ind = individu(7, "MARTIN", "Elodie", "1990-01-31", "F");
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(h.send("individu.updated", "individu:7", ind.body, ind.mapped).kind,
              Outcome::Kind::Delivered);
  }
  // 1 search + 3 updates: four requests, four nonces.
  EXPECT_EQ(h.sim().nonces_seen(), 4u);
  // Relais's clock ten minutes behind Genesis's.
  h.sim().set_clock([&h] { return h.clock().now_ms() + 10 * 60 * 1000; });
  Outcome o = h.send("individu.updated", "individu:7", ind.body, ind.mapped);
  ASSERT_EQ(o.kind, Outcome::Kind::Retry) << outcome_text(o);
  EXPECT_EQ(o.error_class, "clock");
}

// The simulator refuses a replayed request (same nonce): what a real peer does, and what makes
// the test above meaningful.
TEST(GenesisSecurity, SimulatorRefusesAReplayedNonce) {
  GenesisSimulator sim(P::Soap);
  sim.set_account("relais", "pw", true);
  std::string created = format_rfc3339(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::system_clock::now().time_since_epoch())
                                           .count());
  std::string env = genesis::soap_envelope(
      genesis::wsse_header({"relais", "pw", true}, "0123456789abcdef", created),
      R"(<g:rechercherPersonne xmlns:g="urn:worldline:genesis:1.0"><g:nomUsage>X</g:nomUsage>)"
      R"(</g:rechercherPersonne>)");
  auto post = [&] {
    CURL* c = curl_easy_init();
    struct curl_slist* hs = nullptr;
    hs = curl_slist_append(hs, "Content-Type: text/xml; charset=utf-8");
    hs = curl_slist_append(hs, "SOAPAction: \"urn:genesis:rechercherPersonne\"");
    std::string out;
    curl_easy_setopt(c, CURLOPT_URL, sim.url().c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, env.c_str());
    curl_easy_setopt(
        c, CURLOPT_WRITEFUNCTION, +[](char* d, size_t s, size_t n, void* u) {
          static_cast<std::string*>(u)->append(d, s * n);
          return s * n;
        });
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hs);
    curl_easy_cleanup(c);
    return std::make_pair(status, out);
  };
  auto first = post();
  EXPECT_EQ(first.first, 200) << first.second;
  auto second = post();
  EXPECT_EQ(second.first, 500);
  EXPECT_NE(second.second.find("FailedAuthentication"), std::string::npos) << second.second;
  EXPECT_EQ(sim.violations(), std::vector<std::string>{"nonce used twice"});
}

}  // namespace
}  // namespace relais::testing
