// The Capdémat connector's pure pieces (workflow, schemas through the local catalogue,
// extraction, SOAP readers), then the destination and the poller built the way the hub builds
// them, against the Capdémat simulator on loopback with the store's real cross-references and
// pairings.

#include <gtest/gtest.h>

#include <fstream>
#include <mutex>
#include <set>

#include "connectors/capdemat/capdemat.h"
#include "connectors/registry.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/pairing_store.h"
#include "core/store.h"
#include "core/xref_store.h"
#include "routing/hub_config.h"
#include "tests/capdemat/capdemat_simulator.h"
#include "tests/capdemat/capdemat_test_support.h"
#include "tests/core/test_support.h"
#include "tests/support/connector_harness.h"
#include "tests/support/deliver.h"

namespace relais::testing {
namespace {

using capdemat::SchemaSet;
using capdemat::Workflow;

Workflow shared_workflow() {
  Workflow w;
  std::string err;
  EXPECT_TRUE(Workflow::parse(slurp(capdemat_workflow()), w, err)) << err;
  return w;
}

SchemaSet& schemas() {
  static SchemaSet s(
      capdemat_fixtures(), {{"http://people.zenexity.fr/~bor/capdemat/latest/", "."}},
      {{"HomeFolderModificationRequest", "request/HomeFolderModificationRequest.xsd"},
       {"GetRequestsResponse", "external/GetRequests.xsd"}});
  return s;
}

TEST(CapdematWorkflow, ExternalServiceTransitionsOfTheSharedWorkflow) {
  Workflow w = shared_workflow();
  EXPECT_TRUE(w.external_may("Pending", "Extinprogress"));  // externalServiceContext
  EXPECT_TRUE(w.external_may("Pending", "Inprogress"));     // no context
  EXPECT_TRUE(w.external_may("Extinprogress", "Validated"));
  EXPECT_FALSE(w.external_may("Rejected", "Archived"));  // adminContext only
  EXPECT_FALSE(w.external_may("Validated", "Pending"));  // no such transition
  std::string why = w.refusal("Validated", "Pending");
  EXPECT_NE(why.find("n'autorise pas"), std::string::npos) << why;
  EXPECT_NE(why.find("Closed"), std::string::npos) << why;  // what is allowed from Validated
  EXPECT_NE(w.refusal("Rejected", "Archived").find("administration"), std::string::npos);
  Workflow bad;
  std::string err;
  EXPECT_FALSE(Workflow::parse("<workflow><transition from='A' to='B'/></workflow>", bad, err));
  EXPECT_FALSE(Workflow::parse("not xml", bad, err));
}

TEST(CapdematSchemas, AValidRequestPassesThroughTheLocalCatalogue) {
  capdemat::Validation v = schemas().validate(hfmr_request("4021"));
  EXPECT_TRUE(v.ok) << v.error;
  EXPECT_EQ(v.root, "HomeFolderModificationRequest");
}

TEST(CapdematSchemas, AnInvalidRequestIsRefusedWithItsPositionAndNoValue) {
  std::string x = hfmr_request("4021");
  const std::string email = "alice@example.org";
  x.replace(x.find(email), email.size(), "pas-une-adresse");
  capdemat::Validation v = schemas().validate(x);
  ASSERT_FALSE(v.ok);
  EXPECT_EQ(v.line, 21);
  EXPECT_NE(v.path.find("cvq:Requester/cvq:Email"), std::string::npos) << v.path;
  EXPECT_EQ(v.error.find("pas-une-adresse"), std::string::npos) << v.error;  // no value
  EXPECT_NE(v.error.find("ligne 21"), std::string::npos) << v.error;
  capdemat::Validation broken = schemas().validate("<a><b></a>");
  EXPECT_FALSE(broken.ok);
  EXPECT_EQ(broken.line, 1);
  capdemat::Validation unknown = schemas().validate("<Other/>");
  EXPECT_FALSE(unknown.ok);
  EXPECT_NE(unknown.error.find("aucun schéma"), std::string::npos);
}

TEST(CapdematSchemas, ADtdIsRefusedAndNothingComesFromTheNetwork) {
  capdemat::Validation v = schemas().validate(
      "<!DOCTYPE r [<!ENTITY e SYSTEM \"http://example.invalid/x\">]>"
      "<HomeFolderModificationRequest>&e;</HomeFolderModificationRequest>");
  EXPECT_FALSE(v.ok);
  // Without the rewrite, the remote import of GetRequests.xsd is refused, never fetched.
  try {
    SchemaSet s(capdemat_fixtures(), {}, {{"GetRequestsResponse", "external/GetRequests.xsd"}});
    FAIL() << "compiled without the catalogue";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("people.zenexity.fr"), std::string::npos) << e.what();
  }
}

capdemat::Extraction extraction() {
  capdemat::Extraction e;
  e.fields = {{"$.type", "'demande.capdemat'"},
              {"$.demande.capdemat_id", "cvq:Id"},
              {"$.demande.foyer_capdemat", "cvq:HomeFolder/cvq:Id"},
              {"$.demande.absent", "cvq:Nothing"}};
  e.required = {"$.demande.capdemat_id"};
  return e;
}

TEST(CapdematExtraction, FieldsByXPathFromTheRequestElement) {
  EXPECT_EQ(capdemat::check_extraction(extraction()), "");
  nlohmann::json body;
  std::string id, err;
  ASSERT_TRUE(capdemat::extract_request(hfmr_request("4021"), extraction(), body, id, err)) << err;
  EXPECT_EQ(id, "4021");
  EXPECT_EQ(body["type"], "demande.capdemat");
  EXPECT_EQ(body["demande"]["capdemat_id"], "4021");
  EXPECT_EQ(body["demande"]["foyer_capdemat"], "900");
  EXPECT_FALSE(body["demande"].contains("absent"));
  capdemat::Extraction bad = extraction();
  bad.fields.push_back({"$.x", "cvq:Id[["});
  EXPECT_NE(capdemat::check_extraction(bad), "");
  capdemat::Extraction req = extraction();
  req.required.push_back("$.demande.absent");
  EXPECT_FALSE(capdemat::extract_request(hfmr_request("4021"), req, body, id, err));
  EXPECT_NE(err.find("$.demande.absent"), std::string::npos);
}

TEST(CapdematSoap, ReadersTellBrokenFromEmpty) {
  auto g = capdemat::read_get_requests("garbage");
  EXPECT_FALSE(g.parsed);
  g = capdemat::read_get_requests(
      "<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body>"
      "<c:GetRequestsResponse xmlns:c='http://www.capwebct.fr/capdemat'/></s:Body></s:Envelope>");
  EXPECT_TRUE(g.parsed);
  EXPECT_TRUE(g.requests.empty());
  g = capdemat::read_get_requests(
      "<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body><s:Fault>"
      "<faultcode>wsse:FailedAuthentication</faultcode></s:Fault></s:Body></s:Envelope>");
  EXPECT_TRUE(g.fault);
  EXPECT_EQ(g.fault_code, "FailedAuthentication");
  EXPECT_FALSE(capdemat::read_ack_requests("<x/>").parsed);
  EXPECT_EQ(capdemat::read_state_answer("{\"state\":\"Pending\"}"), "Pending");
  EXPECT_EQ(capdemat::read_state_answer("<State>Complete</State>"), "Complete");
  EXPECT_EQ(capdemat::read_state_answer("{}"), "");
}

// A hub that records what the connector submitted. Thread-safe.
class SubmitHub final : public HubServices {
 public:
  Status post(const std::string&, const std::string&, const std::string&, const std::string&,
              std::string&) override {
    return Status::failure(501, "no");
  }
  void wake(const std::string& d, const std::string& k) override {
    std::lock_guard<std::mutex> lock(mu_);
    wakes.push_back(d + " " + k);
  }
  Status submit(const std::string& source, const std::string& body, const std::string& key,
                std::string& id, bool& duplicate) override {
    std::lock_guard<std::mutex> lock(mu_);
    duplicate = keys.count(key) > 0;
    if (!duplicate) {
      keys.insert(key);
      submitted.push_back({source, nlohmann::json::parse(body)});
    }
    id = "01SUB" + std::to_string(submitted.size());
    return Status::success();
  }
  std::vector<std::pair<std::string, nlohmann::json>> submitted;
  std::set<std::string> keys;
  std::vector<std::string> wakes;

 private:
  std::mutex mu_;
};

// One `capdemat` destination on a real store's cross-references and pairings, pointed at a
// simulator.
class Harness : public ConnectorStoreFixture {
 public:
  Harness() : sim_(capdemat_workflow()) {
    node_["connector"] = "capdemat";
    node_["url"] = sim_.url();
    node_["timeout"] = "3s";
    node_["workflow"] = capdemat_workflow();
    node_["states"]["externalise"] = "Extinprogress";
    node_["states"]["incomplet"] = "Uncomplete";
    node_["states"]["accorde"] = "Validated";
    node_["states"]["refuse"] = "Rejected";
    node_["states"]["en_cours"] = "Inprogress";
    node_["inbound"]["user"] = "capdemat";
    node_["inbound"]["password"] = "push-secret";
    node_["inbound"]["source"] = "capdemat";
    capdemat_reader(node_["inbound"]);
    build();
  }

  void build() {
    std::vector<std::string> errors;
    connector_ = build_connector("capdemat", "capdemat", node_, &hub_, errors);
    for (const auto& e : errors) ADD_FAILURE() << e;
  }

  Outcome state(const std::string& id, const std::string& cms_state) {
    nlohmann::json body = {{"demande", {{"capdemat_id", id}, {"statut", cms_state}}}};
    Message m;
    m.id = "01MSG" + std::to_string(++seq_);
    m.source = "cms76";
    m.type = "demande.statut";
    m.correlation = "demande:" + id;
    m.body = body.dump();
    return deliver_mapped(*connector_, m, body, body, seq_);
  }

  // Delivers until the outcome is not a retry (at most 5 attempts), as the dispatcher would.
  Outcome state_until_settled(const std::string& id, const std::string& cms_state) {
    Outcome o;
    for (int i = 0; i < 5; ++i) {
      o = state(id, cms_state);
      if (o.kind != Outcome::Kind::Retry) break;
    }
    return o;
  }

  InboundResponse push(const std::string& xml, const std::string& auth) {
    InboundRequest in;
    in.method = "POST";
    in.path = "inbound/request";
    in.body = xml;
    in.authorization = auth;
    return *connector_->inbound(in);
  }

  CapdematSimulator sim_;
  SubmitHub hub_;
  YAML::Node node_;
  std::unique_ptr<Connector> connector_;
  int seq_ = 0;
};

std::string basic(const std::string& user, const std::string& pw) {
  return "Basic " + base64_encode(user + ":" + pw);
}

TEST(CapdematConnector, EachStateChangeReachesCapdematOnceInOrderDespiteLostAnswers) {
  Harness h;
  h.sim_.add_request("4021", "Pending", hfmr_inner("4021"));
  h.sim_.lose_next_state_answers(1);
  EXPECT_EQ(h.state_until_settled("4021", "externalise").kind, Outcome::Kind::Delivered);
  h.sim_.lose_next_state_answers(1);
  EXPECT_EQ(h.state_until_settled("4021", "incomplet").kind, Outcome::Kind::Delivered);
  // The same state again (a message repeated after a crash): nothing is sent.
  EXPECT_EQ(h.state("4021", "incomplet").kind, Outcome::Kind::Delivered);
  EXPECT_EQ(h.sim_.applied(), (std::vector<std::string>{"4021:Pending>Extinprogress",
                                                        "4021:Extinprogress>Uncomplete"}));
  EXPECT_EQ(h.sim_.lost_answers(), 2);
  EXPECT_TRUE(h.sim_.violations().empty()) << h.sim_.violations().front();
  EXPECT_EQ(h.sim_.state("4021"), "Uncomplete");
}

TEST(CapdematConnector, AnAnswerLostThenTheConnectorRebuiltNeverAppliesTwice) {
  Harness h;
  h.sim_.add_request("77", "Pending", hfmr_inner("77"));
  h.sim_.lose_next_state_answers(1);
  Outcome first = h.state("77", "externalise");
  EXPECT_EQ(first.kind, Outcome::Kind::Retry);
  EXPECT_EQ(first.error_class, "unknown_outcome");
  h.build();         // relais restarted: only the cross-reference remembers
  h.sim_.restart();  // and Capdémat too
  EXPECT_EQ(h.state("77", "externalise").kind, Outcome::Kind::Delivered);
  EXPECT_EQ(h.sim_.applied(), (std::vector<std::string>{"77:Pending>Extinprogress"}));
  EXPECT_TRUE(h.sim_.violations().empty());
}

TEST(CapdematConnector, AnIllegalTransitionIsRefusedWithItsReasonAndNeverSent) {
  Harness h;
  h.sim_.add_request("5", "Pending", hfmr_inner("5"));
  Outcome o = h.state("5", "accorde");  // Pending → Validated: not for an external service
  ASSERT_EQ(o.kind, Outcome::Kind::Reject);
  EXPECT_EQ(o.error_class, "workflow");
  EXPECT_NE(o.text.find("n'autorise pas"), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("Extinprogress"), std::string::npos) << o.text;
  EXPECT_TRUE(h.sim_.applied().empty());
  EXPECT_TRUE(h.sim_.violations().empty());
  Outcome unknown = h.state("5", "etat_inconnu");
  EXPECT_EQ(unknown.kind, Outcome::Kind::Reject);
  EXPECT_EQ(h.state("999", "externalise").kind, Outcome::Kind::Reject);  // 404 at Capdémat
}

TEST(CapdematConnector, AStateChangedAtCapdematMeanwhileIsReadAgain) {
  Harness h;
  h.sim_.add_request("8", "Pending", hfmr_inner("8"));
  ASSERT_EQ(h.state("8", "externalise").kind, Outcome::Kind::Delivered);
  // An agent moved it at Capdémat (now Complete) while relais remembers Extinprogress: Capdémat
  // refuses the stale "from" (409), relais reads the state again and goes on from there.
  h.sim_.add_request("8", "Complete", hfmr_inner("8"));
  Outcome first = h.state("8", "incomplet");
  EXPECT_EQ(first.kind, Outcome::Kind::Retry);
  EXPECT_EQ(first.code, 409);
  EXPECT_EQ(h.state("8", "incomplet").kind, Outcome::Kind::Delivered);
  EXPECT_EQ(h.sim_.applied(),
            (std::vector<std::string>{"8:Pending>Extinprogress", "8:Complete>Uncomplete"}));
  Outcome o = h.state("8", "refuse");  // Uncomplete → Rejected: not in the workflow
  EXPECT_EQ(o.kind, Outcome::Kind::Reject);
  EXPECT_TRUE(h.sim_.violations().empty());
}

TEST(CapdematConnector, APushedRequestIsValidatedThenSubmittedOnce) {
  Harness h;
  EXPECT_EQ(h.push(hfmr_request("4021"), basic("capdemat", "wrong")).status, 401);
  EXPECT_EQ(h.push(hfmr_request("4021"), "").status, 401);
  InboundResponse ok = h.push(hfmr_request("4021"), basic("capdemat", "push-secret"));
  ASSERT_EQ(ok.status, 202) << ok.body.dump();
  ASSERT_EQ(h.hub_.submitted.size(), 1u);
  EXPECT_EQ(h.hub_.submitted[0].first, "capdemat");
  EXPECT_EQ(h.hub_.submitted[0].second["demande"]["capdemat_id"], "4021");
  EXPECT_EQ(h.push(hfmr_request("4021"), basic("capdemat", "push-secret")).status, 200);
  std::string bad = hfmr_request("4022");
  bad.replace(bad.find("<cvq:Id>4022</cvq:Id>"), 21, "<cvq:Id>quatre</cvq:Id>");
  InboundResponse refused = h.push(bad, basic("capdemat", "push-secret"));
  EXPECT_EQ(refused.status, 422);
  EXPECT_EQ(refused.body["line"], 6);
  EXPECT_EQ(refused.body["detail"].get<std::string>().find("quatre"), std::string::npos);
  EXPECT_EQ(h.hub_.submitted.size(), 1u);
}

TEST(CapdematConnector, AMappingMessageIsKeptAsAPairing) {
  Harness h;
  nlohmann::json body = {{"appariement", {{"personne", "foyer:12"}, {"capdemat_id", "900"}}}};
  Message m;
  m.id = "01PAIR";
  m.source = "cms76";
  m.type = "capdemat.appariement";
  m.correlation = "foyer:12";
  EXPECT_EQ(deliver_mapped(*h.connector_, m, body, body, 1).kind, Outcome::Kind::Delivered);
  Status s;
  auto p = h.pairings().get("capdemat", "foyer:12", s);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->external_id, "900");
  EXPECT_EQ(p->state, PairingState::Paired);
}

TEST(CapdematConnector, ACodeListReachesCapdematAsAValidLocalReferential) {
  Harness h;
  // The CMS of config/tables/cms.csv, as CMS76 (or an operator) posts them.
  nlohmann::json body = {{"referentiel",
                          {{"name", "CentreMedicoSocial"},
                           {"label", "Centre médico-social"},
                           {"entries",
                            {{{"key", "Barentin"}, {"label", "CMS de Barentin"}},
                             {{"key", "Rouen Nord"}, {"label", "CMS Rouen Nord"}}}}}}};
  Message m;
  m.id = "01REF";
  m.source = "cms76";
  m.type = "capdemat.referentiel";
  m.correlation = "referentiel:cms";
  Outcome o = deliver_mapped(*h.connector_, m, body, body, 1);
  ASSERT_EQ(o.kind, Outcome::Kind::Delivered) << o.text;
  auto refs = h.sim_.referentials();
  ASSERT_EQ(refs.count("CentreMedicoSocial"), 1u);
  SchemaSet s(capdemat_fixtures(), {}, {{"LocalReferential", "referential/ReferentialData.xsd"}});
  capdemat::Validation v = s.validate(refs["CentreMedicoSocial"]);
  EXPECT_TRUE(v.ok) << v.error;
  EXPECT_NE(refs["CentreMedicoSocial"].find("key=\"Rouen-Nord\""), std::string::npos);
  // The shared sample is valid against the same schema: the format is Capdémat's.
  EXPECT_TRUE(s.validate(slurp(capdemat_fixtures() + "/samples/local_referential_sgr.xml")).ok);
  nlohmann::json bad = {{"referentiel", {{"name", "X"}}}};
  EXPECT_EQ(deliver_mapped(*h.connector_, m, bad, bad, 2).kind, Outcome::Kind::Reject);
}

// The homeFolderMappingRequest is what Capdémat's schema describes: a home folder alone, and an
// individual with its home folder; ids with XML's special characters escaped.
TEST(CapdematXml, AHomeFolderMappingRequestIsValidAgainstTheServiceSchema) {
  SchemaSet s(capdemat_fixtures(), {},
              {{"homeFolderMappingRequest", "external/HomeFolderMappingService.xsd"}});
  const std::string alone =
      capdemat::home_folder_mapping_body("Seine-Maritime", {"HF-3", "12"}, {});
  capdemat::Validation v = s.validate(alone);
  EXPECT_TRUE(v.ok) << v.error << "\n" << alone;
  const std::string with = capdemat::home_folder_mapping_body(
      "Seine-Maritime", {"HF-3", "12"}, {{"IND-<7>", "58123"}, {"IND-8", "58124"}});
  v = s.validate(with);
  EXPECT_TRUE(v.ok) << v.error << "\n" << with;
  EXPECT_NE(with.find("<capdemat:ExternalCapDematId>IND-&lt;7&gt;</capdemat:ExternalCapDematId>"),
            std::string::npos)
      << with;
  EXPECT_LT(with.find("HomeFolderMapping>"), with.find("IndividualMapping>"));
  // The schema's order matters: an individual before the home folder is refused.
  std::string swapped = "<capdemat:homeFolderMappingRequest xmlns:capdemat=\"" +
                        std::string(capdemat::kCapdematNs) +
                        "\"><capdemat:LocalAuthority>X</capdemat:LocalAuthority>"
                        "<capdemat:IndividualMapping><capdemat:ExternalCapDematId>a</"
                        "capdemat:ExternalCapDematId><capdemat:ExternalId>b</capdemat:ExternalId>"
                        "</capdemat:IndividualMapping></capdemat:homeFolderMappingRequest>";
  EXPECT_FALSE(s.validate(swapped).ok);
}

// The poller, built the way the hub builds it.
std::unique_ptr<Poller> make_poller(CapdematSimulator& sim, TempDir& dir, const Clock& clock) {
  Registries reg;
  const PollerKind* kind = reg.pollers.find("capdemat");
  EXPECT_NE(kind, nullptr);
  YAML::Node n;
  n["kind"] = "capdemat";
  n["url"] = sim.soap_url();
  n["timeout"] = "3s";
  std::string pw = dir.file("capdemat.password");
  std::ofstream(pw) << "wss-secret\n";
  n["wss"]["username"] = "relais";
  n["wss"]["password_file"] = pw;
  n["wss"]["digest"] = true;
  n["state"] = "Pending";
  capdemat_reader(n);
  std::vector<ConfigError> errors;
  std::vector<const ConfigSpec*> specs{&poll_spec(), kind->spec};
  validate(n, specs, "sources.capdemat.poll", "test.yaml", errors);
  for (const auto& e : errors) ADD_FAILURE() << e.to_string();
  PollerContext ctx;
  ctx.name = "capdemat";
  ctx.config = ConfigView(n, {kind->spec}, "sources.capdemat.poll");
  ctx.clock = &clock;
  return kind->create(ctx);
}

TEST(CapdematPoller, RequestsAreAcknowledgedOnlyOnceCommittedAndErroneousComeBack) {
  TempDir dir;
  SystemClock clock;
  CapdematSimulator sim(capdemat_workflow());
  sim.set_account("relais", "wss-secret", true);
  sim.add_request("1", "Pending", hfmr_inner("1"));
  sim.add_request("2", "Pending", hfmr_inner("2"));
  auto poller = make_poller(sim, dir, clock);
  PollBatch b;
  ASSERT_TRUE(poller->poll("", b).ok);
  ASSERT_EQ(b.records.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(b.records[0].body)["demande"]["capdemat_id"], "1");
  EXPECT_FALSE(b.records[0].idempotency_key.empty());
  // Not stored: nothing acknowledged, both come again.
  ASSERT_TRUE(poller->committed(b, false, {{503}, {503}}).ok);
  EXPECT_TRUE(sim.acks().empty());
  PollBatch again;
  ASSERT_TRUE(poller->poll("", again).ok);
  ASSERT_EQ(again.records.size(), 2u);
  // Stored: the first taken, the second refused by the hub → Erroneous=true, it comes back.
  PolledOutcome taken{202, "01A"}, refused{422, "", "refused", "no route"};
  ASSERT_TRUE(poller->committed(again, true, {taken, refused}).ok);
  auto acks = sim.acks();
  EXPECT_EQ(acks["1"], std::vector<bool>{false});
  EXPECT_EQ(acks["2"], std::vector<bool>{true});
  PollBatch last;
  ASSERT_TRUE(poller->poll("", last).ok);
  ASSERT_EQ(last.records.size(), 1u);
  EXPECT_NE(last.records[0].position.find("2"), std::string::npos);
  EXPECT_TRUE(sim.violations().empty()) << sim.violations().front();
}

TEST(CapdematPoller, AnInvalidAnswerIsUnreadableAndAcknowledgedErroneous) {
  TempDir dir;
  SystemClock clock;
  CapdematSimulator sim(capdemat_workflow());
  sim.set_account("relais", "wss-secret", true);
  std::string inner = hfmr_inner("3");
  inner.replace(inner.find("<cvq:Step>Instruction</cvq:Step>"), 32, "<cvq:Step>Nulle</cvq:Step>");
  sim.add_request("3", "Pending", inner);
  auto poller = make_poller(sim, dir, clock);
  PollBatch b;
  ASSERT_TRUE(poller->poll("", b).ok);
  ASSERT_EQ(b.records.size(), 1u);
  EXPECT_NE(b.records[0].unreadable.find("non conforme"), std::string::npos)
      << b.records[0].unreadable;
  ASSERT_TRUE(poller->committed(b, true, {{422}}).ok);
  EXPECT_EQ(sim.acks()["3"], std::vector<bool>{true});
}

TEST(CapdematPoller, TheConfigurationCheckNamesAMissingPasswordAndABadUrl) {
  Registries reg;
  const PollerKind* kind = reg.pollers.find("capdemat");
  ASSERT_NE(kind, nullptr);
  YAML::Node n;
  n["kind"] = "capdemat";
  n["url"] = "ftp://capdemat.invalid";
  n["wss"]["username"] = "relais";
  capdemat_reader(n);
  n["fields"]["$.x"] = "cvq:Id[[";
  std::vector<ConfigError> errors;
  kind->check(ConfigView(n, {kind->spec}, "sources.capdemat.poll"), "test.yaml", errors);
  std::string all;
  for (const auto& e : errors) all += e.to_string() + "\n";
  EXPECT_NE(all.find("password_file"), std::string::npos) << all;
  EXPECT_NE(all.find("http(s)://"), std::string::npos) << all;
  EXPECT_NE(all.find("not an XPath"), std::string::npos) << all;
}

TEST(CapdematPoller, AWrongPasswordIsAPollFailure) {
  TempDir dir;
  SystemClock clock;
  CapdematSimulator sim(capdemat_workflow());
  sim.set_account("relais", "another", true);
  auto poller = make_poller(sim, dir, clock);
  PollBatch b;
  Status s = poller->poll("", b);
  EXPECT_FALSE(s.ok);
  EXPECT_NE(s.detail.find("FailedAuthentication"), std::string::npos) << s.detail;
}

}  // namespace
}  // namespace relais::testing
