#pragma once
// What the tests of a partner's connector share: a store file with its cross-references and
// pairings, a manual clock at the real time (simulators check WS-Security's Created against
// it), and the building of one connector from its YAML node the way the hub does (the
// destination's keys and the kind's validated, then the kind's check, then its factory).
// Header-only; not thread-safe (a test's own fixture).

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "connectors/registry.h"
#include "core/clock.h"
#include "core/connector.h"
#include "core/pairing_store.h"
#include "core/store.h"
#include "core/xref_store.h"
#include "routing/hub_config.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/core/test_support.h"

namespace relais::testing {

class ConnectorStoreFixture {
 public:
  ConnectorStoreFixture()
      : clock_(std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count()) {
    StoreOptions so;
    so.path = dir_.file("relais.db");
    store_ = open_sqlite_store(so);
    xrefs_ = open_sqlite_xref_store(so.path, clock_);
    pairings_ = open_sqlite_pairing_store(so.path, clock_, nullptr);
  }

  // Builds a connector of `kind` named `name` from `node`; null with `errors` filled when the
  // configuration is refused. Throws when the kind is not registered.
  std::unique_ptr<Connector> build_connector(const std::string& kind, const std::string& name,
                                             const YAML::Node& node, HubServices* hub,
                                             std::vector<std::string>& errors) {
    errors.clear();
    const ConnectorKind* k = registries_.connectors.find(kind);
    if (k == nullptr) throw std::runtime_error(kind + " kind not registered");
    std::vector<ConfigError> found;
    std::vector<const ConfigSpec*> specs{&destination_spec(), k->spec};
    validate(node, specs, "connectors." + name, "test.yaml", found);
    ConfigView view(node, {k->spec}, "connectors." + name);
    if (found.empty() && k->check) k->check(view, "test.yaml", found);
    for (const auto& e : found) errors.push_back(e.to_string());
    if (!errors.empty()) return nullptr;
    ConnectorContext ctx;
    ctx.name = name;
    ctx.config = view;
    ctx.concurrency = 2;
    ctx.clock = &clock_;
    ctx.xrefs = xrefs_.get();
    ctx.pairings = pairings_.get();
    ctx.hub = hub;
    ctx.max_retry_after_ms = 60000;
    return k->create(ctx);
  }

  TempDir& dir() { return dir_; }
  ManualClock& clock() { return clock_; }
  XrefStore& xrefs() { return *xrefs_; }
  PairingStore& pairings() { return *pairings_; }

 protected:
  TempDir dir_;
  ManualClock clock_;
  Registries registries_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<XrefStore> xrefs_;
  std::unique_ptr<PairingStore> pairings_;
};

}  // namespace relais::testing
