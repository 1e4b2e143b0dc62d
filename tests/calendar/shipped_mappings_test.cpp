// Every shipped calendar mapping works as shipped: its output for the CMS76 samples (planned,
// moved, cancelled) is delivered through the calendar connector to the EWS and the Graph
// simulators, and the calendars end as the samples say. The calendar mappings are those the
// shipped configurations route to a calendar destination, and every mapping named *calendar*.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>

#include "mappings/mapping.h"
#include "tests/calendar/calendar_test_support.h"
#include "tests/calendar/ews_simulator.h"
#include "tests/calendar/graph_simulator.h"

namespace relais::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::set<std::string> shipped_calendar_mappings() {
  std::set<std::string> out;
  const fs::path root = fs::path(RELAIS_SOURCE_DIR) / "config";
  for (const auto& f : fs::directory_iterator(root / "mappings")) {
    std::string stem = f.path().stem().string();
    if (f.path().extension() == ".yaml" && stem.find(".test") == std::string::npos &&
        stem.find("calendar") != std::string::npos) {
      out.insert(stem);
    }
  }
  for (const auto& f : fs::directory_iterator(root)) {
    if (f.path().extension() != ".yaml") continue;
    YAML::Node doc = YAML::LoadFile(f.path().string());
    std::set<std::string> calendars;
    for (const auto& c : doc["connectors"]) {
      if (c.second["connector"] && c.second["connector"].as<std::string>() == "calendar") {
        calendars.insert(c.first.as<std::string>());
      }
    }
    for (const auto& route : doc["routes"]) {
      for (const auto& to : route["to"]) {
        if (to["destination"] && to["mapping"] &&
            calendars.count(to["destination"].as<std::string>()) > 0) {
          out.insert(to["mapping"].as<std::string>());
        }
      }
    }
  }
  return out;
}

std::shared_ptr<const mappings::CompiledMapping> compile_shipped(const std::string& name) {
  std::vector<mappings::Diagnostic> diags;
  auto tables = mappings::TableSet::load_dir(RELAIS_SOURCE_DIR "/config/tables", diags);
  fs::path file = fs::path(RELAIS_SOURCE_DIR) / "config/mappings" / (name + ".yaml");
  auto m = mappings::compile(read_text(file.string()), file.string(), tables, diags);
  EXPECT_NE(m, nullptr) << name << ": " << (diags.empty() ? "" : to_string(diags[0]));
  return m;
}

json sample(const std::string& name) {
  return json::parse(read_text(std::string(RELAIS_SHARED_DIR) + "/fixtures/cms76/" + name));
}

// Delivers the samples through `h`; `events()` counts the mailbox's events after each step.
void deliver_samples(const std::string& mapping, CalendarHarness& h,
                     const std::function<size_t()>& events) {
  auto m = compile_shipped(mapping);
  ASSERT_NE(m, nullptr);
  const std::vector<std::pair<std::string, size_t>> steps{
      {"rdv-planned.json", 1}, {"rdv-moved.json", 1}, {"rdv-cancelled.json", 0}};
  for (const auto& [file, expected] : steps) {
    json body = sample(file);
    json meta = {{"id", body["id"]},
                 {"source", "cms76"},
                 {"type", body["event"]},
                 {"correlation_key", "rdv:" + body["rdv"]["id"].dump()},
                 {"received_at", body["occurred_at"]}};
    mappings::MapResult r = m->apply(body, meta);
    ASSERT_EQ(r.kind, mappings::MapResult::Kind::Ok) << mapping << " " << file << ": " << r.reason;
    Outcome o = h.send(body["event"].get<std::string>(), body["rdv"]["id"].get<int>(), r.value);
    ASSERT_EQ(o.kind, Outcome::Kind::Delivered)
        << mapping << " " << file << ": " << outcome_text(o);
    EXPECT_EQ(events(), expected) << mapping << " after " << file;
  }
}

TEST(ShippedCalendarMappings, DeliverThroughBothDriversAsShipped) {
  std::set<std::string> names = shipped_calendar_mappings();
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names.count("rdv-calendar"), 1u);
  const std::string mb = sample("rdv-planned.json")["rdv"]["tms"]["email"].get<std::string>();
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    EwsSimulator ews;
    ews.use_basic("svc-relais", "secret");
    ews.add_mailbox(mb);
    CalendarHarness he("driver: ews\nurl: " + ews.url() +
                       "\nauth: basic\nuser: svc-relais\npassword: secret\n");
    deliver_samples(name, he, [&] { return ews.items(mb).size(); });
    EXPECT_TRUE(ews.violations().empty()) << ews.violations().front();

    GraphSimulator graph;
    graph.add_mailbox(mb);
    CalendarHarness hg("driver: graph\nurl: " + graph.url() + "\ntoken_url: " + graph.token_url() +
                       "\nclient_id: relais-client\nclient_secret: relais-secret\n");
    deliver_samples(name, hg, [&] { return graph.events(mb).size(); });
    EXPECT_TRUE(graph.violations().empty()) << graph.violations().front();
  }
}

}  // namespace
}  // namespace relais::testing
