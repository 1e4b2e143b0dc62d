// The shipped CMS76 configuration works as shipped: config/cms76.yaml, its mappings and tables,
// unchanged but for the partners' addresses (the environment variables it names, and the Graph
// endpoints, which production takes from the tenant), runs in-process on a ManualClock set to
// the sample events' own days, and every CMS76 sample event of ../shared/fixtures/cms76 is
// delivered by each route through its connector to the partner's stand-in: the Genesis simulator
// (SOAP with WS-Security, strict; the person is paired as CMS76 would do it: the candidates
// reach CMS76's recorder, and CMS76's choice comes back as an appariement.choisi message), the
// portal endpoint (an HTTP recorder that checks the method, the path and the credentials), the
// Microsoft Graph simulator (strict about bodies and times), a real Kannel (bearerbox, smsbox,
// fake SMSC) and the BAN simulator. Every delivery must end delivered or skipped by its
// mapping's own rule: none dead, none left waiting.

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "core/clock.h"
#include "tests/ban/ban_simulator.h"
#include "tests/calendar/graph_simulator.h"
#include "tests/genesis/genesis_simulator.h"
#include "tests/sms/kannel_gateway.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais {
namespace {

using json = nlohmann::json;
using testing::TempDir;
using testing::wait_until;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Millis instant(const std::string& rfc3339) {
  Millis ms = 0;
  EXPECT_TRUE(parse_rfc3339(rfc3339, ms)) << rfc3339;
  return ms;
}

// A partner endpoint that records what it got and checks the credentials it must carry.
struct Recorder {
  std::string expected_auth;  // the whole Authorization header
  tools::HttpSink sink{0, true, 4};
  explicit Recorder(std::string auth) : expected_auth(std::move(auth)) {
    sink.set_responder([this](const tools::SinkRequest& r) {
      tools::SinkResponse out;
      auto it = r.headers.find("authorization");
      if (it == r.headers.end() || it->second != expected_auth) {
        out.status = 401;
        out.body = R"({"error":"unauthorized"})";
      }
      return out;
    });
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(sink.port()); }
};

TEST(ShippedConfig, EverySampleEventReachesEveryPartnerThroughTheShippedMappings) {
  TempDir dir("relais-shipped-");
  const std::string src = RELAIS_SOURCE_DIR;
  const std::string fixtures = std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/";

  // The partners' stand-ins.
  testing::GenesisSimulator genesis(testing::GenesisSimulator::Protocol::Soap);
  genesis.set_account("relais-genesis", "genesis-test-password", true);
  // Jean DUPONT of the samples, and a homonym born elsewhere: CMS76 has to choose.
  testing::SimPerson dupont{"", "DUPONT", "DUPONT", "Jean", "1962-09-22", "M", "ROUEN", "", 0};
  const std::string dupont_id = genesis.add_person(dupont);
  dupont.commune = "DIEPPE";
  genesis.add_person(dupont);
  Recorder portal("Basic " + std::string("cG9ydGFpbDpwb3J0YWlsLXNlY3JldA=="));  // portail:…
  // CMS76's own API: the Genesis candidates of a person to pair, and Genesis → CMS76.
  Recorder cms76("Bearer cms76-api-test-token");
  testing::GraphSimulator graph;
  graph.set_credentials("relais-client", "relais-secret");
  graph.add_mailbox("lea.gosselin@example.org");
  testing::BanSimulator ban;
  testing::KannelGateway kannel(testing::KannelOptions{});
  kannel.start();

  // The store's encryption key, as the shipped file's comment says to create it (0600).
  std::string key_file = dir.path() + "/store-1.key";
  {
    std::string key(32, '\0');
    for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<char>(0x5a ^ (i * 37));
    std::ofstream(key_file, std::ios::binary) << key;
    ASSERT_EQ(::chmod(key_file.c_str(), 0600), 0);
  }

  std::string genesis_password = dir.path() + "/genesis.password";
  std::ofstream(genesis_password) << "genesis-test-password\n";

  // The environment the shipped file names.
  std::map<std::string, std::string> env = {
      {"RELAIS_STORE", dir.path() + "/relais.db"},
      {"RELAIS_STORE_KEY_FILE", key_file},
      {"CMS76_TOKEN", "cms76-test-token-0123456789abcdef"},
      {"RELAIS_ADMIN_TOKEN", "admin-test-token-0123456789abcdef"},
      {"BAN_URL", ban.search_url()},
      {"GENESIS_URL", genesis.url()},
      {"GENESIS_USER", "relais-genesis"},
      {"GENESIS_PASSWORD_FILE", genesis_password},
      {"GENESIS_INBOUND_TOKEN", "genesis-inbound-test-token-0123456789"},
      {"CMS76_API_URL", cms76.url()},
      {"CMS76_API_TOKEN", "cms76-api-test-token"},
      {"PORTAIL_URL", portal.url()},
      {"PORTAIL_USER", "portail"},
      {"PORTAIL_PASSWORD", "portail-secret"},
      {"KANNEL_SENDSMS_URL", kannel.sendsms_url()},
      {"KANNEL_USER", "relais"},
      {"KANNEL_PASSWORD", "kannel-test-password"},
      {"RELAIS_PUBLIC_URL", "http://127.0.0.1:9"},  // reports are not part of this test
      {"SMS_INBOUND_TOKEN", "sms-inbound-test-token-0123456789"},
      {"CALENDAR_TENANT", "tenant-1"},
      {"CALENDAR_CLIENT_ID", "relais-client"},
      {"CALENDAR_CLIENT_SECRET", "relais-secret"},
      {"GENESIS_EXPORTS_DIR", dir.path() + "/genesis-exports"},
  };
  for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);

  // The shipped file; the Graph endpoints point at the simulator (production derives them from
  // the tenant, which a test cannot reach).
  std::string yaml = slurp(src + "/config/cms76.yaml");
  const std::string graph_line = "    driver: graph\n";
  auto at = yaml.find(graph_line);
  ASSERT_NE(at, std::string::npos) << "the agenda destination no longer uses the graph driver";
  yaml.insert(at + graph_line.size(),
              "    url: " + graph.url() + "\n    token_url: " + graph.token_url() + "\n");

  // The watched folder of Genesis's exports polls every 100 ms of real time (not 30 s), and
  // its settling time counts on the test's clock.
  for (const auto& [from, to] : {std::pair{"      interval: 30s\n", "      interval: 100ms\n"},
                                 std::pair{"      settle: 30s\n", "      settle: 0s\n"}}) {
    auto k = yaml.find(from);
    ASSERT_NE(k, std::string::npos) << from;
    yaml.replace(k, std::string(from).size(), to);
  }
  // An export of Genesis (Windows-1252, `;`, CRLF) already waiting in the folder.
  ::mkdir((dir.path() + "/genesis-exports").c_str(), 0700);
  std::ofstream(dir.path() + "/genesis-exports/aides-20261204.csv", std::ios::binary)
      << "Identifiant Genesis;Identifiant CMS76;N\xB0 processus;N\xB0 demande CMS76;Code aide;"
         "Libell\xE9 aide;Montant;Date d\xE9"
         "cision;Date d\xE9"
         "but;Date fin;\xC9tat\r\n"
         "G-000912;58123;P-2026-4410;547;APA;Allocation personnalis\xE9"
         "e d'autonomie;412,30;02/12/2026;01/01/2027;31/12/2027;Accord\xE9"
         "e\r\n"
         "G-000913;58124;P-2026-4411;;FSL;Fonds de solidarit\xE9 logement;80;03/12/2026;"
         "03/12/2026;;Suspendue\r\n";

  Registries registries;
  HubConfig cfg;
  std::vector<ConfigError> errors;
  ASSERT_TRUE(load_hub_config_text(yaml, src + "/config/cms76.yaml", src + "/config",
                                   registries.connectors, cfg, errors, &registries.enrichers,
                                   &registries.pollers))
      << (errors.empty() ? "" : errors[0].to_string());

  // The sample events, in the order they happened; the clock follows them.
  std::vector<json> events;
  for (const char* f : {"individu-created.json", "demande-created.json", "rdv-planned.json",
                        "rdv-moved.json", "rdv-cancelled.json", "demande-closed.json"}) {
    events.push_back(json::parse(slurp(fixtures + f)));
  }
  std::stable_sort(events.begin(), events.end(), [](const json& a, const json& b) {
    return instant(a["occurred_at"]) < instant(b["occurred_at"]);
  });
  ManualClock clock(instant(events.front()["occurred_at"]));
  genesis.set_clock([&clock] { return clock.now_ms(); });  // WS-Security's Created
  Runtime rt = make_runtime(cfg, registries, clock);
  Hub& hub = *rt.hub;
  hub.start();

  // Settled: nothing due now is waiting or in flight.
  auto settled_at = [&](Millis now, Millis& next) {
    hub.store().flush();
    bool settled = true;
    next = 0;
    for (const auto& q : hub.store().load_active()) {
      if (q.due <= now) settled = false;
      if (q.due > now && (next == 0 || q.due < next)) next = q.due;
    }
    for (const auto& s : hub.dispatcher().stats()) settled = settled && s.in_flight == 0;
    return settled;
  };
  std::vector<std::string> ids;
  std::vector<json> sent;  // the body of each message of `ids`
  for (const auto& e : events) {
    clock.set(std::max(clock.now_ms(), instant(e["occurred_at"])));
    AcceptRequest a;
    a.source = "cms76";
    a.body = e.dump();
    AcceptResponse r = hub.accept(a);
    ASSERT_EQ(r.status, 202) << e["id"] << ": " << r.detail;
    ids.push_back(r.id);
    sent.push_back(e);
    Millis next = 0;
    ASSERT_TRUE(
        wait_until([&] { return settled_at(clock.now_ms(), next); }, std::chrono::seconds(60)))
        << "not settled after " << e["id"];
    if (e["event"] == "individu.created") {
      // Genesis has two Jean DUPONT born the same day: the candidates went to CMS76, whose
      // person chooses; the choice comes back as a message.
      // (CMS76's API also receives Genesis's exports meanwhile: the candidates by their path.)
      std::vector<tools::SinkRequest> got;
      for (const auto& r : cms76.sink.requests()) {
        if (r.path == "/api/appariements/genesis") got.push_back(r);
      }
      ASSERT_EQ(got.size(), 1u) << "no candidates sent to CMS76";
      json candidates = json::parse(got[0].body);
      EXPECT_EQ(candidates["personne"], "individu:58123");
      ASSERT_EQ(candidates["candidats"].size(), 2u);
      json choice = {{"event", "appariement.choisi"},
                     {"id", "evt-choix-58123"},
                     {"appariement", {{"personne", "individu:58123"}, {"genesis_id", dupont_id}}}};
      AcceptRequest c;
      c.source = "cms76";
      c.body = choice.dump();
      AcceptResponse cr = hub.accept(c);
      ASSERT_EQ(cr.status, 202) << cr.detail;
      ids.push_back(cr.id);
      sent.push_back(choice);
      ASSERT_TRUE(
          wait_until([&] { return settled_at(clock.now_ms(), next); }, std::chrono::seconds(60)))
          << "not settled after the choice";
    }
  }
  // Genesis decides on the request: the decision goes back to the person's record in CMS76.
  {
    json decision = {
        {"evenement", "aide.accordee"},
        {"id", "GEN-2019-0001"},
        {"date", "2019-06-03T10:12:00+02:00"},
        {"personne", {{"id_genesis", "G-000123"}, {"id_cms76", 58123}}},
        {"processus", {{"id", "P-2019-778"}, {"etat", "Accordé"}, {"demande_cms76", 547}}},
        {"aide", {{"nature", "Secours d'urgence"}, {"montant", 150.0}}}};
    clock.set(std::max(clock.now_ms(), instant(decision["date"])));
    AcceptRequest a;
    a.source = "genesis";
    a.body = decision.dump();
    AcceptResponse r = hub.accept(a);
    ASSERT_EQ(r.status, 202) << r.detail;
    ids.push_back(r.id);
    sent.push_back(decision);
  }
  // Then the days go by until nothing is left to do (reminders wait for their day).
  for (int step = 0; step < 20; ++step) {
    Millis next = 0;
    ASSERT_TRUE(
        wait_until([&] { return settled_at(clock.now_ms(), next); }, std::chrono::seconds(60)));
    if (next == 0) break;
    clock.set(next);
  }

  // Every delivery of every sample event ended delivered or skipped by its mapping's rule.
  std::map<std::string, int> delivered;  // by destination
  for (size_t i = 0; i < ids.size(); ++i) {
    auto rec = hub.store().message(ids[i], true);
    ASSERT_TRUE(rec) << ids[i];
    EXPECT_FALSE(rec->deliveries.empty()) << "no route for " << sent[i].dump().substr(0, 60);
    for (const auto& d : rec->deliveries) {
      EXPECT_TRUE(d.state == DeliveryState::Delivered || d.state == DeliveryState::Skipped)
          << sent[i].value("event", sent[i].value("evenement", "")) << " → " << d.destination
          << " (" << d.mapping << "): " << to_string(d.state) << ", " << d.last_outcome << " "
          << d.last_text;
      if (d.state == DeliveryState::Delivered) ++delivered[d.destination];
    }
  }
  std::string summary;
  for (const auto& [k, n] : delivered) summary += " " + k + "=" + std::to_string(n);
  RecordProperty("delivered", summary);
  std::cout << "delivered:" << summary << "\n";
  // What each partner saw. Genesis: the person chosen updated, then the request created for
  // that person; the request that waited for the pairing went after the person.
  EXPECT_TRUE(genesis.violations().empty()) << genesis.violations().front();
  auto applied = genesis.applied();
  ASSERT_GE(applied.size(), 2u);
  EXPECT_EQ(applied[0], "mettreAJourPersonne " + dupont_id);
  EXPECT_EQ(applied[1].rfind("creerProcessus PR-", 0), 0u) << applied[1];
  ASSERT_EQ(genesis.processes().size(), 1u);
  EXPECT_EQ(genesis.processes()[0].personne, dupont_id);
  EXPECT_EQ(genesis.processes()[0].id_externe, "CMS76-DEM-547");
  EXPECT_EQ(genesis.person(dupont_id)->id_externe, "CMS76-IND-58123");
  ASSERT_EQ(applied.size(), 3u);  // the request's closure: the process's status
  EXPECT_EQ(applied[2], genesis.processes()[0].id.insert(0, "changerStatutProcessus ") + " clos");
  EXPECT_EQ(genesis.processes()[0].statut, "clos");
  EXPECT_EQ(delivered["genesis"], static_cast<int>(applied.size()) + 1);  // + the choice
  for (const auto& r : portal.sink.requests()) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/api/demandes/statut");
  }
  EXPECT_EQ(static_cast<int>(portal.sink.requests().size()), delivered["portail"]);
  EXPECT_GE(delivered["portail"], 1);
  // CMS76's API got the Genesis candidates of the person to pair, once (before the choice);
  // Genesis's decision reached the person's record in CMS76, once; so did the two lines of
  // Genesis's export (source genesis-exports, read from the watched folder), in the same shape.
  ASSERT_TRUE(
      wait_until([&] { return cms76.sink.requests().size() >= 4; }, std::chrono::seconds(20)));
  std::map<std::string, tools::SinkRequest> by_reference;
  int candidates_posts = 0;
  for (const auto& r : cms76.sink.requests()) {
    EXPECT_EQ(r.method, "POST");
    if (r.path == "/api/appariements/genesis") {
      ++candidates_posts;
      continue;
    }
    std::string ref = json::parse(r.body).value("reference", "");
    EXPECT_TRUE(by_reference.emplace(ref, r).second) << ref << " twice";
  }
  EXPECT_EQ(candidates_posts, 1);
  ASSERT_EQ(by_reference.size(), 3u);
  const tools::SinkRequest& posted = by_reference["GENESIS-P-2019-778"];
  EXPECT_EQ(posted.path, "/api/individus/58123/situation-genesis");
  EXPECT_EQ(json::parse(posted.body).value("etat", ""), "Accordé");
  json apa = json::parse(by_reference["GENESIS-P-2026-4410"].body);
  EXPECT_EQ(by_reference["GENESIS-P-2026-4410"].path, "/api/individus/58123/situation-genesis");
  EXPECT_EQ(apa["aide"]["montant"], 412.3);
  EXPECT_EQ(apa["aide"]["nature"], "Allocation personnalisée d'autonomie");
  EXPECT_EQ(apa["demande_numero"], 547);
  json fsl = json::parse(by_reference["GENESIS-P-2026-4411"].body);
  EXPECT_EQ(by_reference["GENESIS-P-2026-4411"].path, "/api/individus/58124/situation-genesis");
  EXPECT_EQ(fsl["etat"], "Suspendue");
  EXPECT_TRUE(wait_until(
      [&] {
        return std::ifstream(dir.path() + "/genesis-exports/done/aides-20261204.csv.rapport.csv")
            .good();
      },
      std::chrono::seconds(10)));
  // The RDV was planned, moved, then cancelled: it was in the calendar, and is gone.
  EXPECT_TRUE(graph.violations().empty()) << graph.violations().front();
  EXPECT_EQ(delivered["agenda"], 3);
  EXPECT_TRUE(graph.events("lea.gosselin@example.org").empty());
  // The SMS: confirmation, move and cancellation reached the gateway (the reminder was
  // replaced by the move, then dropped by the cancellation).
  EXPECT_EQ(delivered["sms"], 3);
  EXPECT_TRUE(wait_until([&] { return kannel.received() >= 3; }, std::chrono::seconds(20)))
      << kannel.fakesmsc_output();
  EXPECT_EQ(kannel.received(), 3) << kannel.fakesmsc_output();
  EXPECT_EQ(delivered["sms-rappels"], 0);
  // The address went through the BAN.
  EXPECT_GE(ban.hits().size(), 1u);

  hub.stop();
  kannel.stop();
  // The shipped file encrypts at rest: the store (database and WAL) holds none of the sample
  // person's names in clear, though every message was read back above.
  for (const char* file : {"/relais.db", "/relais.db-wal"}) {
    std::string bytes = slurp(dir.path() + file);
    for (const char* value : {"DUPONT", "06.00.00.00.00"}) {
      EXPECT_EQ(bytes.find(value), std::string::npos) << value << " in clear in " << file;
    }
  }
  for (const auto& [k, v] : env) unsetenv(k.c_str());
}

}  // namespace
}  // namespace relais
