#pragma once
// Builds one `calendar` connector the way the hub does (validated configuration, the store's
// cross-references) and delivers calendar events to it, for the calendar unit tests.

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "connectors/registry.h"
#include "core/clock.h"
#include "core/connector.h"
#include "core/store.h"
#include "core/xref_store.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/core/test_support.h"
#include "tests/support/deliver.h"

namespace relais::testing {

constexpr Millis kCalT0 = 1'763'900'000'000;

// The mapping's output for one RDV (config/mappings/rdv-calendar.yaml's shape).
inline nlohmann::json rdv_event(const std::string& mailbox, int rdv, const std::string& start,
                                const std::string& end,
                                const std::string& location =
                                    "CMS "
                                    "Barentin") {
  nlohmann::json e = {{"subject", "RDV CMS76 n° " + std::to_string(rdv)},
                      {"body", "Rendez-vous CMS76 n° " + std::to_string(rdv)},
                      {"start", start},
                      {"end", end},
                      {"time_zone", "Europe/Paris"},
                      {"categories", {"CMS76", "Rendez-vous"}},
                      {"reminder_minutes", 15},
                      {"show_as", "busy"}};
  if (!location.empty()) e["location"] = location;
  return {{"mailbox", mailbox}, {"event_key", "k-" + std::to_string(rdv)}, {"event", e}};
}

// Owns a store file, its cross-references, a manual clock and one connector. Single-threaded.
class CalendarHarness {
 public:
  explicit CalendarHarness(const std::string& yaml, const std::string& name = "agenda")
      : clock_(kCalT0), name_(name) {
    StoreOptions so;
    so.path = dir_.file("relais.db");
    store_ = open_sqlite_store(so);
    xrefs_ = open_sqlite_xref_store(so.path, clock_);
    const ConnectorKind* kind = registries_.connectors.find("calendar");
    if (kind == nullptr) throw std::runtime_error("calendar kind not registered");
    YAML::Node node = YAML::Load(yaml);
    std::vector<ConfigError> errors;
    validate(node, {kind->spec}, "connectors." + name, "test.yaml", errors);
    ConfigView view(node, {kind->spec}, "connectors." + name);
    if (errors.empty() && kind->check) kind->check(view, "test.yaml", errors);
    for (const auto& e : errors) config_errors_.push_back(e.to_string());
    if (!errors.empty()) return;
    config_ = view;
    ConnectorContext ctx;
    ctx.name = name;
    ctx.config = view;
    ctx.concurrency = 2;
    ctx.clock = &clock_;
    ctx.xrefs = xrefs_.get();
    connector_ = kind->create(ctx);
  }

  const std::vector<std::string>& config_errors() const { return config_errors_; }
  Connector& connector() { return *connector_; }
  XrefStore& xrefs() { return *xrefs_; }
  ManualClock& clock() { return clock_; }
  const ConfigView& config() const { return config_; }
  const std::string& name() const { return name_; }

  // Delivers `mapped` as a message of `type` with correlation "rdv:<rdv>".
  Outcome send(const std::string& type, int rdv, const nlohmann::json& mapped, int attempt = 1,
               int slot = 0) {
    Message m;
    m.id = "01MSG" + std::to_string(++seq_);
    m.type = type;
    m.correlation = "rdv:" + std::to_string(rdv);
    return deliver_mapped(*connector_, m, nlohmann::json::object(), mapped, seq_, attempt, slot);
  }

 private:
  TempDir dir_;
  ManualClock clock_;
  std::string name_;
  Registries registries_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<XrefStore> xrefs_;
  std::unique_ptr<Connector> connector_;
  ConfigView config_;
  std::vector<std::string> config_errors_;
  int seq_ = 0;
};

inline std::string outcome_text(const Outcome& o) {
  return std::string(to_string(o.kind)) + " [" + o.error_class + " " + std::to_string(o.code) +
         "] " + o.text;
}

}  // namespace relais::testing
