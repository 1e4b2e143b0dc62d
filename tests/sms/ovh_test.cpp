// The OVH driver through the relais binary against the OVH simulator (which checks the request
// signature): a confirmation becomes one signed job, OVH's delivery report updates the SMS
// record, and a wrong application secret is refused like OVH refuses it.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/sms/ovh_simulator.h"
#include "tests/support/relais_process.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;
using std::chrono::seconds;

constexpr const char* kToken = "ovh-callback-token-0123456789";

json event(const std::string& type, int rdv, const std::string& id) {
  json j =
      json::parse(read_file(std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/rdv-planned.json"));
  j["event"] = type;
  j["id"] = id;
  j["rdv"]["id"] = rdv;
  j["rdv"]["date"] = "2030-05-17";  // to come: nothing is sent for a past RDV
  return j;
}

std::string destination(const std::string& name, const OvhSimulator& ovh, const std::string& secret,
                        bool time_sync = true) {
  return "  " + name +
         ":\n"
         "    connector: sms\n"
         "    driver: ovh\n"
         "    url: " +
         ovh.endpoint() +
         "\n"
         "    ovh_service: sms-cd76-1\n"
         "    ovh_application_key: app-key-76\n"
         "    ovh_application_secret: " +
         secret +
         "\n"
         "    ovh_consumer_key: consumer-key-76\n"
         "    sender: CD76\n"
         "    inbound_token: " +
         kToken +
         "\n"
         "    window: false\n"
         "    ovh_time_sync: " +
         (time_sync ? "true" : "false") +
         "\n"
         "    retry: {initial: 200ms, max: 1s, max_attempts: 5}\n";
}

TEST(SmsOvh, SignedJobsAreAcceptedAndABadSignatureIsRefused) {
  // OVH's clock is 10 minutes ahead of ours: relais must sign with OVH's time.
  OvhSimulator ovh("sms-cd76-1", "app-key-76", "app-secret-76", "consumer-key-76", 600);
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  std::string src = RELAIS_SOURCE_DIR;
  o.body_yaml =
      "sources:\n  cms76:\n    type: $.event\n    correlation: [\"rdv:{$.rdv.id}\"]\n"
      "    idempotency: $.id\n"
      "mappings:\n  directory: " +
      src + "/config/mappings\n  tables: " + src +
      "/config/tables\n"
      "connectors:\n" +
      destination("ovh", ovh, "app-secret-76") +
      destination("ovh-wrong-secret", ovh, "not-the-secret") +
      destination("ovh-local-clock", ovh, "app-secret-76", false) +
      "routes:\n"
      "  - {name: ok, source: cms76, type: rdv.planned, to: [{destination: ovh, "
      "mapping: rdv-sms-confirmation}]}\n"
      "  - {name: bad, source: cms76, type: rdv.moved, to: [{destination: "
      "ovh-wrong-secret, mapping: rdv-sms-moved}]}\n"
      "  - {name: clock, source: cms76, type: rdv.cancelled, to: [{destination: "
      "ovh-local-clock, mapping: rdv-sms-cancelled}]}\n";
  RelaisProcess relais(o);
  relais.start();
  HttpClient admin = relais.client();
  HttpClient system(relais.base_url(), relais.system_token());
  auto first_delivery = [&](const std::string& id) {
    json m = admin.get("/api/v1/messages/" + id).json();
    return m.is_object() && m.contains("deliveries") && !m["deliveries"].empty()
               ? m["deliveries"][0]
               : json::object();
  };

  auto r = system.post_json("/api/v1/sources/cms76/messages", event("rdv.planned", 1, "e1").dump());
  ASSERT_EQ(r.status, 202) << r.body;
  std::string ok_id = r.json()["id"];
  ASSERT_TRUE(wait_until([&] { return first_delivery(ok_id).value("state", "") == "delivered"; },
                         seconds(30)))
      << first_delivery(ok_id).dump();
  auto jobs = ovh.jobs();
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].body["receivers"], json::array({"+33600000000"}));
  EXPECT_EQ(jobs[0].body["sender"], "CD76");
  EXPECT_EQ(jobs[0].body["noStopClause"], true);
  EXPECT_EQ(jobs[0].body["coding"], "7bit");
  json d = first_delivery(ok_id);
  EXPECT_EQ(jobs[0].body["tag"], d["payload"]["reference"]) << "the mapping's reference";
  EXPECT_EQ(jobs[0].body["tag"].get<std::string>().size(), 36u);
  EXPECT_EQ(d["external_ref"], std::to_string(jobs[0].id));

  // OVH's delivery report names its own id (as a form post, then as a GET).
  HttpClient callback(relais.base_url());
  auto form =
      callback.post("/api/v1/connectors/ovh/inbound/dlr",
                    "token=" + std::string(kToken) + "&id=" + std::to_string(jobs[0].id) + "&dlr=8",
                    "application/x-www-form-urlencoded");
  EXPECT_EQ(form.status, 200) << form.body;
  EXPECT_EQ(form.json()["state"], "smsc") << form.body;
  auto cb = callback.get("/api/v1/connectors/ovh/inbound/dlr?token=" + std::string(kToken) +
                         "&id=" + std::to_string(jobs[0].id) + "&dlr=1");
  EXPECT_EQ(cb.status, 200) << cb.body;
  json rec = admin.get("/api/v1/connectors/ovh/records/" + d["id"].get<std::string>()).json();
  EXPECT_EQ(rec["state"], "delivered") << rec.dump();
  EXPECT_EQ(rec["gateway_ref"], std::to_string(jobs[0].id));

  // A wrong secret: the simulator refuses the signature; the delivery is dead with OVH's reason.
  r = system.post_json("/api/v1/sources/cms76/messages", event("rdv.moved", 2, "e2").dump());
  ASSERT_EQ(r.status, 202) << r.body;
  std::string bad_id = r.json()["id"];
  ASSERT_TRUE(
      wait_until([&] { return first_delivery(bad_id).value("state", "") == "dead"; }, seconds(30)));
  std::string text = first_delivery(bad_id)["last_outcome"]["text"];
  EXPECT_NE(text.find("INVALID_SIGNATURE"), std::string::npos) << text;
  EXPECT_EQ(ovh.refused(), 1);
  EXPECT_EQ(ovh.jobs().size(), 1u);

  // Signed with our own clock, 10 minutes behind OVH's: refused as out of time.
  r = system.post_json("/api/v1/sources/cms76/messages", event("rdv.cancelled", 3, "e3").dump());
  ASSERT_EQ(r.status, 202) << r.body;
  std::string late_id = r.json()["id"];
  ASSERT_TRUE(
      wait_until([&] { return first_delivery(late_id).value("state", "") == "dead"; }, seconds(30)))
      << first_delivery(late_id).dump();
  text = first_delivery(late_id)["last_outcome"]["text"];
  EXPECT_NE(text.find("QUERY_TIME_OUT"), std::string::npos) << text;
  EXPECT_EQ(ovh.jobs().size(), 1u);
  EXPECT_EQ(relais.stop(), 0) << relais.stderr_text();
}

}  // namespace
}  // namespace relais::testing
