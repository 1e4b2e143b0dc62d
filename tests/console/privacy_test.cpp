// Personal data in the console: every endpoint that returns a payload (or anything derived from
// one), for every role, on a message carrying known personal values — masked by declaration
// (source and mapping `personal:` paths), by the name and person rules, and in partners'
// response excerpts; dry runs on stored messages audited and masked for every role but admin.
// Erasure by correlation key: erasure_test.cpp.

#include <gtest/gtest.h>

#include "api/desk_text.h"
#include "api/endpoints.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;

// Values of the fixture's RDV (and of the mapped SMS) that only an admin may read.
const std::vector<std::string>& personal_values() {
  static const std::vector<std::string> v = {
      "DUPONT",                                 // the requester's name (name rule)
      "06.00.00.00.00",                         // the requester's mobile, as typed
      "+33600000000",                           // the same, mapped: the SMS mapping's `to`
      "lea.gosselin@example.org",               // the professional's e-mail (name rule)
      "Rendez-vous initial - Demande sociale",  // declared by the source ($.rdv.libelle)
  };
  return v;
}

class PrivacyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The partner refuses every SMS and echoes the request in its answer (as some do).
    sink_ = std::make_unique<tools::HttpSink>(0, true, 4);
    sink_->set_responder([](const tools::SinkRequest& r) {
      tools::SinkResponse out;
      out.status = 400;
      out.body = "{\"error\":\"refused\",\"request\":" + r.body + "}";
      return out;
    });
    RelaisOptions o;
    o.binary = RELAIS_BINARY;
    const std::string config = std::string(RELAIS_SOURCE_DIR) + "/config";
    o.body_yaml =
        "sources:\n  cms76:\n    type: $.event\n    correlation:\n"
        "      - \"rdv:{$.rdv.id}\"\n      - \"individu:{$.individu.id}\"\n"
        "    personal: [$.rdv.libelle]\n"
        "mappings:\n  directory: " +
        config + "/mappings\n  tables: " + config +
        "/tables\n"
        "connectors:\n  sms:\n    connector: http\n    url: http://127.0.0.1:" +
        std::to_string(sink_->port()) +
        "/sms\n    retry: {initial: 50ms, max: 100ms, max_attempts: 1}\n"
        "routes:\n  - name: rdv-sms\n    source: cms76\n    to:\n"
        "      - destination: sms\n        mapping: rdv-sms-confirmation\n";
    relais_ = std::make_unique<RelaisProcess>(o);
    relais_->start();
    admin_ = relais_->client();
  }

  std::string make_token(const std::string& name, const std::string& role) {
    auto r = admin_.post_json(
        "/api/v1/tokens", json{{"name", name}, {"role", role}, {"sources", json::array()}}.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return r.json().value("token", "");
  }

  // Posts the fixture's RDV with `rdv_id`; waits until its SMS delivery is dead (refused).
  // Returns {message id, delivery id}.
  std::pair<std::string, std::string> post_dead_rdv(int rdv_id) {
    json body =
        json::parse(read_file(std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/rdv-planned.json"));
    body["rdv"]["id"] = rdv_id;
    body["id"] = "evt-privacy-" + std::to_string(rdv_id);
    auto r = admin_.post_json("/api/v1/sources/cms76/messages", body.dump());
    EXPECT_EQ(r.status, 202) << r.body;
    std::string mid = r.json().value("id", ""), did;
    EXPECT_TRUE(wait_until(
        [&] {
          auto m = admin_.get("/api/v1/messages/" + mid).json();
          for (const auto& d : m.value("deliveries", json::array())) {
            if (d.value("state", "") == "dead") did = d.value("id", "");
          }
          return !did.empty();
        },
        std::chrono::seconds(15)))
        << "the refused SMS never became dead";
    return {mid, did};
  }

  std::unique_ptr<tools::HttpSink> sink_;
  std::unique_ptr<RelaisProcess> relais_;
  HttpClient admin_;
};

// A concrete request for each endpoint of the table that returns data (GET), with the ids of
// the test's message and delivery.
std::string concrete(const api::Endpoint& e, const std::string& mid, const std::string& did) {
  std::string out = e.path;
  auto put = [&](const std::string& k, const std::string& v) {
    for (size_t p = out.find(k); p != std::string::npos; p = out.find(k))
      out.replace(p, k.size(), v);
  };
  if (out.rfind("/api/v1/messages/", 0) == 0) put("{id}", mid);
  put("{id}", did);
  if (out.rfind("/api/v1/tables/", 0) == 0) put("{name}", "cms");
  if (out.rfind("/api/v1/destinations/", 0) == 0) put("{name}", "sms");
  put("{name}", "rdv-sms-confirmation");
  put("{version}", "1");
  put("{destination}", "sms");
  put("{hash}", "0");
  put("{source}", "cms76");
  put("{kind}", "report");
  return out;
}

TEST_F(PrivacyTest, NoEndpointShowsPersonalDataToRolesThatMustNotSeeIt) {
  auto [mid, did] = post_dead_rdv(91877);
  ASSERT_FALSE(did.empty());
  std::map<std::string, HttpClient> as;
  as.emplace("admin", relais_->client());
  for (const std::string role : {"support", "auditor", "system"}) {
    as.emplace(role, HttpClient(relais_->base_url(), make_token("privacy-" + role, role)));
  }
  // The admin's clear view, so that the test can fail: every value is really there.
  std::string clear = as.at("admin").get("/api/v1/messages/" + mid).body +
                      as.at("admin").get("/api/v1/deliveries/" + did).body;
  for (const auto& v : personal_values()) {
    EXPECT_NE(clear.find(v), std::string::npos) << "the admin sees " << v;
  }
  // Dry runs on the stored message: the active mapping, and a candidate copying the body.
  const std::string test_path = "/api/v1/mappings/rdv-sms-confirmation/test";
  const std::vector<json> dry_runs = {
      {{"message_id", mid}},
      {{"message_id", mid}, {"content", "name: rdv-sms-confirmation\nfields:\n  all: $\n"}},
      {{"message_id", mid},
       {"content", "name: rdv-sms-confirmation\nfields:\n  n: \"{$.rdv.demandeur.nom}!\"\n"}}};
  int runs = 0;
  for (auto& [role, client] : as) {
    std::string seen;
    int endpoints = 0;
    for (const auto& e : api::endpoints()) {
      if (e.method != "GET" || e.path.find("/inbound/") != std::string::npos) continue;
      auto r = client.get(concrete(e, mid, did));
      ++endpoints;
      seen += "\n" + e.path + " " + std::to_string(r.status) + " " + r.body;
    }
    EXPECT_GT(endpoints, 20);
    for (const auto& run : dry_runs) {
      auto r = client.post_json(test_path, run.dump());
      if (r.status == 200) ++runs;
      seen += "\ntest " + std::to_string(r.status) + " " + r.body;
    }
    auto check = client.post_json("/api/v1/mappings/rdv-sms-confirmation/replay-check",
                                  json{{"destination", "sms"}}.dump());
    seen += "\nreplay-check " + check.body;
    if (role == "admin") {
      EXPECT_NE(seen.find("+33600000000"), std::string::npos) << "the admin's dry run is clear";
      continue;
    }
    for (const auto& v : personal_values()) {
      EXPECT_EQ(seen.find(v), std::string::npos) << role << " sees " << v << " in:" << seen;
    }
    if (role == "support") {
      auto detail = client.get("/api/v1/deliveries/" + did).json();
      EXPECT_EQ(detail["payload_after"]["to"], "•••") << "declared by the mapping";
      EXPECT_EQ(detail["payload_before"]["rdv"]["id"], 91877) << "the rest stays readable";
      EXPECT_NE(detail["attempts"][0]["response_excerpt"].get<std::string>().find("masquée"),
                std::string::npos);
      EXPECT_FALSE(detail["attempts"][0]["explanation"].get<std::string>().empty());
    }
  }
  EXPECT_EQ(runs, 6) << "admin and support may run dry runs";
  // Every dry run on a stored message is audited, whoever ran it.
  auto audit = admin_.get("/api/v1/audit?action=mapping.test").json()["items"];
  std::map<std::string, int> by_role;
  for (const auto& a : audit) by_role[a.value("role", "")]++;
  EXPECT_EQ(by_role["admin"], 3);
  EXPECT_EQ(by_role["support"], 3);
}

}  // namespace
}  // namespace relais::testing

namespace relais::testing {
namespace {

TEST(DeclaredPaths, MaskWhatIsDeclaredUnderPersonsAndWhereValuesReappear) {
  PersonalPaths paths;
  std::string err;
  ASSERT_TRUE(PersonalPaths::parse({"$.to", "$.parts[*].ref", "$.list[1]"}, paths, err)) << err;
  EXPECT_FALSE(PersonalPaths::parse({"$.a[x]"}, paths, err));
  EXPECT_NE(err.find("$.a[x]"), std::string::npos);
  ASSERT_TRUE(
      PersonalPaths::parse({"$.to", "$.parts[*].ref", "$.list[1]", "$.rows.code"}, paths, err));
  json doc = {{"to", "+33611111111"},
              {"parts", {{{"ref", "ABCD-1"}, {"n", 1}}, {{"ref", "ABCD-2"}}}},
              {"list", {"keep", "hide"}},
              {"rows", {{{"code", "X123"}}, {{"code", "Y456"}}}},
              {"usager", {{"id", 5812345}, {"ville", "Rouen"}}},
              {"echo", "message pour Rouen"},
              {"visible", "reste lisible"}};
  api::MaskFindings f;
  json out = api::mask_payload(doc, paths, f);
  EXPECT_TRUE(f.found);
  EXPECT_EQ(out["to"], "•••");
  EXPECT_EQ(out["parts"][0]["ref"], "•••");
  EXPECT_EQ(out["parts"][0]["n"], 1);
  EXPECT_EQ(out["parts"][1]["ref"], "•••");
  EXPECT_EQ(out["list"][0], "keep");
  EXPECT_EQ(out["list"][1], "•••");
  EXPECT_EQ(out["rows"][1]["code"], "•••") << "an array the path does not index is crossed";
  EXPECT_EQ(out["usager"]["ville"], "•••") << "everything under a person";
  EXPECT_EQ(out["usager"]["id"], "•••");
  EXPECT_EQ(out["visible"], "reste lisible");
  EXPECT_EQ(out["echo"], "message pour Rouen") << "no taint given";
  api::MaskFindings g;
  json again = api::mask_payload(doc, paths, g, &f.values);
  EXPECT_EQ(again["echo"], "•••") << "a value of the person reappearing elsewhere";
  EXPECT_EQ(api::scrub_text("refusé : +33611111111 inconnu", f.values), "refusé : ••• inconnu");
  EXPECT_TRUE(api::is_person_key("Bénéficiaires"));
  EXPECT_FALSE(api::is_person_key("personnel_cms"));
}

}  // namespace
}  // namespace relais::testing
