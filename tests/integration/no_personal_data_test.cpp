// No personal data in logs or metrics (issue 16 item 7): CMS76 messages carrying known personal
// values go through the real binary at log level debug, to partners that refuse them (400 and
// 500 echoing the body, so dead letters), through a mapping that fails, and through one that
// works; then relais's whole output and GET /metrics must hold none of those values, in any
// common form. The second test does the same for the RDV connectors: the calendar (Graph and
// EWS drivers, refused with the body echoed) and the SMS destination (refused, then accepted).

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <map>

#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// Every form a personal value is searched in.
std::vector<std::string> forms(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const auto& v : values) {
    out.push_back(lower(v));
    std::string digits;
    for (char c : v)
      if (std::isdigit(static_cast<unsigned char>(c))) digits += c;
    if (digits.size() >= 8) out.push_back(digits);
  }
  return out;
}

// The `mappings:` section that loads the shipped mappings and tables.
std::string shipped_mappings() {
  return std::string("mappings:\n  directory: ") + RELAIS_SOURCE_DIR +
         "/config/mappings\n  tables: " + RELAIS_SOURCE_DIR + "/config/tables\n";
}

// relais's whole output and its metrics, in lower case, must hold none of `personal`'s forms.
void expect_no_personal_data(RelaisProcess& relais, const std::string& metrics,
                             const std::vector<std::string>& personal) {
  const std::string out = lower(relais.stdout_text() + "\n" + relais.stderr_text());
  const std::string m = lower(metrics);
  ASSERT_NE(out.find("listening"), std::string::npos) << "the log is captured";
  for (const auto& f : forms(personal)) {
    size_t at = out.find(f);
    EXPECT_EQ(at, std::string::npos)
        << "'" << f << "' in the log: "
        << out.substr(at == std::string::npos ? 0 : at - std::min<size_t>(at, 200), 400);
    EXPECT_EQ(m.find(f), std::string::npos) << "'" << f << "' in the metrics";
  }
}

TEST(NoPersonalData, NoneInLogsOrMetricsWhateverHappensToTheMessage) {
  tools::HttpSink refuses{0, true, 4};
  refuses.set_responder([](const tools::SinkRequest& r) {
    tools::SinkResponse out;
    out.status = 400;
    out.body = "{\"error\":\"refused\",\"echo\":" + json(r.body).dump() + "}";
    return out;
  });
  tools::HttpSink fails{0, true, 4};
  fails.set_responder([](const tools::SinkRequest& r) {
    tools::SinkResponse out;
    out.status = 500;
    out.body = "internal error while handling " + r.body;
    return out;
  });
  auto url = [](const tools::HttpSink& s) {
    return "http://127.0.0.1:" + std::to_string(s.port()) + "/in";
  };
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.log_level = "debug";
  o.body_yaml = shipped_mappings() +
                "sources:\n  cms76:\n    type: $.event\n"
                "connectors:\n"
                "  refuses:\n    connector: http\n    url: " +
                url(refuses) +
                "\n    retry: {initial: 20ms, max: 50ms, max_attempts: 2}\n"
                "  fails:\n    connector: http\n    url: " +
                url(fails) +
                "\n    retry: {initial: 20ms, max: 50ms, max_attempts: 2}\n"
                "routes:\n"
                "  - name: raw\n    source: cms76\n    to:\n      - destination: refuses\n"
                "  - name: mapped\n    source: cms76\n    type: \"individu.*\"\n    to:\n"
                "      - {destination: fails, mapping: individu-genesis}\n";
  RelaisProcess relais(o);
  relais.start();

  const std::vector<std::string> personal = {"ZORGLUBINE",
                                             "Zorglubine",
                                             "Pétronille",
                                             "06 98 76 54 32",
                                             "+33698765432",
                                             "zorglubine.petronille@example.org",
                                             "17 rue des Capucines Bleues",
                                             "Capucines Bleues",
                                             "1971-03-14",
                                             "14/03/1971"};
  auto individu = [](const std::string& id, const std::string& birth, bool with_name) {
    json ind = {{"id", std::stoi(id)},
                {"civilite", "Madame"},
                {"sexe", "Féminin"},
                {"prenom", "Pétronille"},
                {"nom_naissance", "ZORGLUBINE"},
                {"date_naissance", birth},
                {"telephone_portable", "06 98 76 54 32"},
                {"emails",
                 {{{"adresse", "zorglubine.petronille@example.org"},
                   {"principal", true},
                   {"invalide", false}}}},
                {"ne_veut_pas_emails", false},
                {"adresse",
                 {{"numero", "17"},
                  {"voie", "rue des Capucines Bleues"},
                  {"code_postal", "76000"},
                  {"localite", "Rouen"}}},
                {"genesis_id", nullptr}};
    if (with_name) ind["nom_usage"] = "ZORGLUBINE";
    return json{{"event", "individu.created"},
                {"id", "evt-" + id},
                {"occurred_at", "2019-05-15T15:50:12+02:00"},
                {"individu", ind}};
  };
  HttpClient system(relais.base_url(), relais.system_token());
  // Mapped, then refused (500) until dead; raw copy refused (400).
  ASSERT_EQ(
      system
          .post_json("/api/v1/sources/cms76/messages", individu("90001", "1971-03-14", true).dump())
          .status,
      202);
  // Mapping errors: a missing name, a birth date in the wrong form.
  ASSERT_EQ(system
                .post_json("/api/v1/sources/cms76/messages",
                           individu("90002", "1971-03-14", false).dump())
                .status,
            202);
  ASSERT_EQ(
      system
          .post_json("/api/v1/sources/cms76/messages", individu("90003", "14/03/1971", true).dump())
          .status,
      202);
  // A body that is not JSON, and one of the wrong shape: refused at the door.
  EXPECT_EQ(system.post_json("/api/v1/sources/cms76/messages", "{\"nom\":\"ZORGLUBINE\"").status,
            400);
  system.post_json("/api/v1/sources/cms76/messages", "[\"ZORGLUBINE\", \"06 98 76 54 32\"]");

  // Every delivery ends: 3 raw copies refused (400 → dead), 1 mapped delivery refused twice
  // (500 → dead), 2 mapping errors (dead).
  HttpClient admin = relais.client();
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = admin.get("/api/v1/messages?source=cms76&state=dead");
        return r.status == 200 && r.json().value("items", json::array()).size() == 3;
      },
      std::chrono::milliseconds(20000), std::chrono::milliseconds(100)));
  EXPECT_TRUE(wait_until([&] { return refuses.total() >= 3 && fails.total() >= 2; },
                         std::chrono::milliseconds(20000)))
      << refuses.total() << " refused, " << fails.total() << " failed";
  std::string metrics = admin.get("/metrics").body;
  relais.stop();
  expect_no_personal_data(relais, metrics, personal);
}

TEST(NoPersonalData, NoneFromTheCalendarAndSmsConnectors) {
  // Graph: a token, then every event refused with the request echoed in the error message.
  tools::HttpSink graph{0, true, 4};
  graph.set_responder([](const tools::SinkRequest& r) {
    tools::SinkResponse out;
    out.headers["Content-Type"] = "application/json";
    if (r.path.find("/token") != std::string::npos) {
      out.body = R"({"token_type":"Bearer","expires_in":3599,"access_token":"t"})";
      return out;
    }
    out.status = 400;
    out.body =
        json{{"error", {{"code", "ErrorInvalidRequest"}, {"message", r.path + " " + r.body}}}}
            .dump();
    return out;
  });
  // EWS: a SOAP fault whose faultstring echoes the request.
  tools::HttpSink ews{0, true, 4};
  ews.set_responder([](const tools::SinkRequest& r) {
    tools::SinkResponse out;
    out.status = 500;
    out.headers["Content-Type"] = "text/xml; charset=utf-8";
    std::string echoed;
    for (char c : r.body)
      echoed += c == '<' ? std::string("&lt;") : c == '&' ? "&amp;" : std::string(1, c);
    out.body =
        "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">"
        "<s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>" +
        echoed + "</faultstring></s:Fault></s:Body></s:Envelope>";
    return out;
  });
  // The SMS gateway: fails the first request of each SMS (500, the body echoed), then accepts.
  std::atomic<int> sms_calls{0};
  tools::HttpSink sms{0, true, 4};
  sms.set_responder([&sms_calls](const tools::SinkRequest& r) {
    tools::SinkResponse out;
    out.headers["Content-Type"] = "application/json";
    if (sms_calls++ % 2 == 0) {
      out.status = 500;
      out.body = json{{"error", "internal"}, {"request", r.body}}.dump();
    } else {
      out.body = R"({"id":"sms-1"})";
    }
    return out;
  });
  auto base = [](const tools::HttpSink& s) {
    return "http://127.0.0.1:" + std::to_string(s.port());
  };
  const std::string retry = "    retry: {initial: 20ms, max: 50ms, max_attempts: 2}\n";
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.log_level = "debug";
  o.body_yaml = shipped_mappings() +
                "sources:\n  cms76:\n    type: $.event\n    correlation: [\"rdv:{$.rdv.id}\"]\n"
                "connectors:\n"
                "  agenda-graph:\n    connector: calendar\n    driver: graph\n    url: " +
                base(graph) + "/v1.0\n    token_url: " + base(graph) +
                "/token\n    client_id: a\n    client_secret: b\n" + retry +
                "  agenda-ews:\n    connector: calendar\n    driver: ews\n    url: " + base(ews) +
                "/EWS/Exchange.asmx\n    auth: basic\n    user: u\n    password: p\n" + retry +
                "  sms:\n    connector: sms\n    driver: http\n    url: " + base(sms) +
                "/send\n    http_body: '{\"to\":\"{{to}}\",\"text\":\"{{text}}\"}'\n"
                "    http_ref_path: $.id\n    window: false\n    rate_limit: 0\n"
                "    inbound_token: tok-0123456789abcdef\n"
                "    retry: {initial: 20ms, max: 50ms, max_attempts: 3}\n"
                "routes:\n"
                "  - name: agenda\n    source: cms76\n    type: \"rdv.*\"\n    to:\n"
                "      - {destination: agenda-graph, mapping: rdv-calendar}\n"
                "      - {destination: agenda-ews, mapping: rdv-calendar}\n"
                "  - name: sms\n    source: cms76\n    type: rdv.planned\n    to:\n"
                "      - {destination: sms, mapping: rdv-sms-confirmation}\n";
  RelaisProcess relais(o);
  relais.start();

  const std::vector<std::string> personal = {
      "ZORGLUBINE",   "Pétronille",           "06 98 76 54 32",
      "+33698765432", "Zorglubville-en-Caux", "lea.gosselinz@example.org",
      "GOSSELINZ"};
  json rdv = json::parse(R"({
    "event": "rdv.planned", "id": "evt-rdv-90010", "occurred_at": "2026-12-07T10:00:00+01:00",
    "rdv": {"id": 90010, "demande_numero": 547, "libelle": "Rendez-vous initial",
            "individu_id": 58123,
            "demandeur": {"prenom": "Pétronille", "nom": "ZORGLUBINE",
                          "telephone_portable": "06 98 76 54 32", "consent_sms": true},
            "tms": {"nom": "Léa GOSSELINZ", "email": "lea.gosselinz@example.org"},
            "emplacement": "VAD", "commune_residence": "Zorglubville-en-Caux",
            "cms": {"nom": "Barentin", "adresse": "Place de la Libération, 76360 Barentin",
                    "telephone": "02.35.00.00.00"},
            "date": "2027-01-12", "heure": "10:00", "duree_minutes": 30,
            "statut": "Rendez-vous initial posé"}})");
  HttpClient system(relais.base_url(), relais.system_token());
  ASSERT_EQ(system.post_json("/api/v1/sources/cms76/messages", rdv.dump()).status, 202);
  // A move of another RDV (its own key: the first one's key is held by its dead deliveries).
  json moved = rdv;
  moved["event"] = "rdv.moved";
  moved["id"] = "evt-rdv-90011-2";
  moved["rdv"]["id"] = 90011;
  moved["rdv"]["heure"] = "11:00";
  ASSERT_EQ(system.post_json("/api/v1/sources/cms76/messages", moved.dump()).status, 202);

  // Every calendar delivery ends dead (refused with the body echoed); the SMS is delivered on
  // its second attempt.
  HttpClient admin = relais.client();
  std::map<std::string, int> ended;  // "destination state" → count
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = admin.get("/api/v1/messages?source=cms76");
        if (r.status != 200) return false;
        ended.clear();
        for (const auto& m : r.json().value("items", json::array())) {
          for (const auto& d : m.value("deliveries", json::array())) {
            ++ended[d.value("destination", "") + " " + d.value("state", "")];
          }
        }
        return ended["agenda-graph dead"] == 2 && ended["agenda-ews dead"] == 2 &&
               ended["sms delivered"] == 1;
      },
      std::chrono::milliseconds(30000), std::chrono::milliseconds(100)))
      << [&] {
           std::string seen;
           for (const auto& [k, n] : ended) seen += k + " ×" + std::to_string(n) + "; ";
           return seen;
         }();
  EXPECT_GE(sms_calls, 2);
  EXPECT_GE(graph.total(), 2u);
  EXPECT_GE(ews.total(), 2u);
  std::string metrics = admin.get("/metrics").body;
  relais.stop();
  expect_no_personal_data(relais, metrics, personal);
}

}  // namespace
}  // namespace relais::testing
