// No personal data in logs or metrics (issue 16 item 7): CMS76 messages carrying known personal
// values go through the real binary at log level debug, to partners that refuse them (400 and
// 500 echoing the body, so dead letters), through a mapping that fails, and through one that
// works; then relais's whole output and GET /metrics must hold none of those values, in any
// common form.

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>

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
  o.body_yaml = std::string("mappings:\n  directory: ") + RELAIS_SOURCE_DIR +
                "/config/mappings\n  tables: " + RELAIS_SOURCE_DIR +
                "/config/tables\n"
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

}  // namespace
}  // namespace relais::testing
