// The shipped CMS76 mappings: they compile, keep health and social details out of calendar
// and SMS texts for every sample event, and apply() is safe from several threads.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "mappings/mapping.h"

namespace relais::mappings {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::shared_ptr<const CompiledMapping> load(const std::string& name) {
  std::vector<Diagnostic> diags;
  auto tables = TableSet::load_dir(RELAIS_SOURCE_DIR "/config/tables", diags);
  EXPECT_TRUE(diags.empty());
  const fs::path file = fs::path(RELAIS_SOURCE_DIR) / "config/mappings" / (name + ".yaml");
  auto m = compile(read(file), file.string(), tables, diags);
  EXPECT_NE(m, nullptr) << (diags.empty() ? "" : to_string(diags[0]));
  return m;
}

json fixture(const std::string& name) {
  return json::parse(read(fs::path(RELAIS_SHARED_DIR) / "fixtures/cms76" / name));
}

json meta_of(const json& body) {
  return {{"id", body["id"]},
          {"source", "cms76"},
          {"type", body["event"]},
          {"correlation_key", ""},
          {"received_at", body["occurred_at"]}};
}

TEST(ConfigMappings, AllCompile) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(fs::path(RELAIS_SOURCE_DIR) / "config/mappings")) {
    std::string f = e.path().filename().string();
    if (e.path().extension() != ".yaml" || f.find(".test.") != std::string::npos) continue;
    EXPECT_NE(load(e.path().stem().string()), nullptr) << f;
    EXPECT_TRUE(fs::exists(e.path().parent_path() / (e.path().stem().string() + ".test.yaml")))
        << f;
    ++n;
  }
  EXPECT_GE(n, 7);
}

// Calendar and SMS texts carry date, time, place and a phone number: never the request's
// libellé, motif, thématique or the cancellation reason.
TEST(ConfigMappings, NoHealthOrSocialDetailInCalendarAndSms) {
  const std::map<std::string, std::vector<std::string>> cases = {
      {"rdv-calendar", {"rdv-planned.json", "rdv-moved.json", "rdv-cancelled.json"}},
      {"rdv-sms-confirmation", {"rdv-planned.json"}},
      {"rdv-sms-moved", {"rdv-moved.json"}},
      {"rdv-sms-cancelled", {"rdv-cancelled.json", "rdv-planned.json"}},
      {"rdv-sms-reminder", {"rdv-planned.json", "rdv-moved.json", "rdv-cancelled.json"}}};
  for (const auto& [name, events] : cases) {
    auto m = load(name);
    ASSERT_NE(m, nullptr);
    for (const auto& ev : events) {
      json body = fixture(ev);
      auto r = m->apply(body, meta_of(body));
      ASSERT_NE(r.kind, MapResult::Kind::Error) << name << " " << ev << ": " << r.reason;
      for (const char* secret :
           {"Demande sociale", "Rendez-vous initial", "Annulé à la demande", "statut", "Budget"})
        EXPECT_EQ(r.text.find(secret), std::string::npos)
            << name << " " << ev << " leaks " << secret;
    }
  }
}

TEST(ConfigMappings, ConcurrentApplyGivesTheSameResult) {
  auto m = load("rdv-sms-confirmation");
  ASSERT_NE(m, nullptr);
  json body = fixture("rdv-planned.json");
  const std::string expected = m->apply(body, meta_of(body)).text;
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i)
        if (m->apply(body, meta_of(body)).text != expected) ++mismatches;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(ConfigMappings, FixturePathsResolveFromTheTestFiles) {
  const fs::path p = fs::path(RELAIS_SOURCE_DIR) / "config/mappings" /
                     "../../../shared/fixtures/cms76/rdv-planned.json";
  // The repository and shared/ are siblings; RELAIS_SHARED_DIR says where shared/ really is.
  EXPECT_EQ(fs::weakly_canonical(p),
            fs::weakly_canonical(fs::path(RELAIS_SHARED_DIR) / "fixtures/cms76/rdv-planned.json"));
}

}  // namespace
}  // namespace relais::mappings
