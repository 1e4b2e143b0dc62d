// The shipped CMS76 configuration works as shipped: config/cms76.yaml, its mappings and tables,
// unchanged but for the partners' addresses (the environment variables it names, and the Graph
// endpoints, which production takes from the tenant), runs in-process on a ManualClock set to
// the sample events' own days, and every CMS76 sample event of ../shared/fixtures/cms76 is
// delivered by each route through its connector to the partner's stand-in: the Genesis and
// portal endpoints (HTTP recorders that check the method, the path and the credentials), the
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
  Recorder genesis("Bearer genesis-test-token");
  Recorder portal("Basic " + std::string("cG9ydGFpbDpwb3J0YWlsLXNlY3JldA=="));  // portail:…
  Recorder cms76("Bearer cms76-api-test-token");  // CMS76's own API (Genesis → CMS76)
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

  // The environment the shipped file names.
  std::map<std::string, std::string> env = {
      {"RELAIS_STORE", dir.path() + "/relais.db"},
      {"RELAIS_STORE_KEY_FILE", key_file},
      {"CMS76_TOKEN", "cms76-test-token-0123456789abcdef"},
      {"RELAIS_ADMIN_TOKEN", "admin-test-token-0123456789abcdef"},
      {"BAN_URL", ban.search_url()},
      {"GENESIS_URL", genesis.url()},
      {"GENESIS_TOKEN", "genesis-test-token"},
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
  for (const auto& e : events) {
    clock.set(std::max(clock.now_ms(), instant(e["occurred_at"])));
    AcceptRequest a;
    a.source = "cms76";
    a.body = e.dump();
    AcceptResponse r = hub.accept(a);
    ASSERT_EQ(r.status, 202) << e["id"] << ": " << r.detail;
    ids.push_back(r.id);
    Millis next = 0;
    ASSERT_TRUE(
        wait_until([&] { return settled_at(clock.now_ms(), next); }, std::chrono::seconds(60)))
        << "not settled after " << e["id"];
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
    events.push_back(decision);
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
    EXPECT_FALSE(rec->deliveries.empty()) << "no route for " << events[i].dump().substr(0, 60);
    for (const auto& d : rec->deliveries) {
      EXPECT_TRUE(d.state == DeliveryState::Delivered || d.state == DeliveryState::Skipped)
          << events[i]["event"] << " → " << d.destination << " (" << d.mapping
          << "): " << to_string(d.state) << ", " << d.last_outcome << " " << d.last_text;
      if (d.state == DeliveryState::Delivered) ++delivered[d.destination];
    }
  }
  std::string summary;
  for (const auto& [k, n] : delivered) summary += " " + k + "=" + std::to_string(n);
  RecordProperty("delivered", summary);
  std::cout << "delivered:" << summary << "\n";
  // What each partner saw.
  auto genesis_paths = genesis.sink.requests();
  int personnes = 0, demandes = 0;
  for (const auto& r : genesis_paths) {
    EXPECT_EQ(r.method, "PUT") << r.path;
    EXPECT_TRUE(json::accept(r.body)) << r.path;
    if (r.path == "/api/personnes/58123") ++personnes;
    if (r.path.rfind("/api/demandes/", 0) == 0) ++demandes;
  }
  EXPECT_EQ(personnes, 1);
  EXPECT_EQ(demandes, delivered["genesis-demandes"]);
  EXPECT_GE(demandes, 1);
  for (const auto& r : portal.sink.requests()) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.path, "/api/demandes/statut");
  }
  EXPECT_EQ(static_cast<int>(portal.sink.requests().size()), delivered["portail"]);
  EXPECT_GE(delivered["portail"], 1);
  // Genesis's decision reached the person's record in CMS76, once; so did the two lines of
  // Genesis's export (source genesis-exports, read from the watched folder), in the same shape.
  ASSERT_TRUE(
      wait_until([&] { return cms76.sink.requests().size() >= 3; }, std::chrono::seconds(20)));
  std::map<std::string, tools::SinkRequest> by_reference;
  for (const auto& r : cms76.sink.requests()) {
    EXPECT_EQ(r.method, "POST");
    std::string ref = json::parse(r.body).value("reference", "");
    EXPECT_TRUE(by_reference.emplace(ref, r).second) << ref << " twice";
  }
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
