#pragma once
// Builds one `genesis` connector from a shipped default profile the way the hub does (the
// destination's keys validated with the kind's spec, the store's cross-references and pairings)
// pointed at a GenesisSimulator, with a recording HubServices; and the mapped payloads of the
// CMS76 samples (the shapes of config/mappings/individu-genesis.yaml and demande-genesis.yaml).

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "connectors/registry.h"
#include "core/clock.h"
#include "core/connector.h"
#include "core/pairing_store.h"
#include "core/store.h"
#include "core/xref_store.h"
#include "routing/hub_config.h"
#include "tests/core/test_support.h"
#include "tests/genesis/genesis_simulator.h"
#include "tests/support/connector_harness.h"
#include "tests/support/deliver.h"

namespace relais::testing {

// What a connector asked of the hub. Thread-safe.
class RecordingHub final : public HubServices {
 public:
  struct Post {
    std::string destination, type, correlation;
    nlohmann::json body;
  };
  Status post(const std::string& destination, const std::string& type,
              const std::string& correlation, const std::string& body, std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (fail_posts_ > 0) {
      --fail_posts_;
      return Status::failure(503, "not stored", "the store is failing");
    }
    posts_.push_back({destination, type, correlation, nlohmann::json::parse(body)});
    id = "01POST" + std::to_string(posts_.size());
    return Status::success();
  }
  void wake(const std::string& destination, const std::string& key) override {
    std::lock_guard<std::mutex> lock(mu_);
    wakes_.push_back(destination + " " + key);
  }
  std::vector<Post> posts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return posts_;
  }
  std::vector<std::string> wakes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return wakes_;
  }
  void fail_next_posts(int n) {
    std::lock_guard<std::mutex> lock(mu_);
    fail_posts_ = n;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Post> posts_;
  std::vector<std::string> wakes_;
  int fail_posts_ = 0;
};

inline std::string source_file(const std::string& rel) {
  return std::string(RELAIS_SOURCE_DIR) + "/" + rel;
}

// The `genesis` destination of a shipped file, as a YAML node (a copy).
inline YAML::Node shipped_profile(GenesisSimulator::Protocol p) {
  YAML::Node root = YAML::LoadFile(source_file(p == GenesisSimulator::Protocol::Soap
                                                   ? "config/cms76.yaml"
                                                   : "config/genesis/genesis-rest.yaml"));
  return YAML::Clone(root["connectors"]["genesis"]);
}

constexpr const char* kSimPassword = "mot-de-passe-genesis";

// Owns a store file, its cross-references and pairings, a manual clock (at the real time: the
// simulator checks WS-Security's Created against it), the simulator and one connector.
class GenesisHarness : public ConnectorStoreFixture {
 public:
  using Tweak = std::function<void(YAML::Node&)>;

  explicit GenesisHarness(GenesisSimulator::Protocol p, const Tweak& tweak = {}) : sim_(p) {
    sim_.set_clock([this] { return clock_.now_ms(); });
    sim_.set_account("relais", kSimPassword, true);
    sim_.set_token("genesis-token");
    node_ = shipped_profile(p);
    node_["url"] = sim_.url();
    if (p == GenesisSimulator::Protocol::Soap) {
      std::string pw = dir_.file("genesis.password");
      std::ofstream(pw) << kSimPassword << "\n";
      node_["wss"]["username"] = "relais";
      node_["wss"]["password_file"] = pw;
    } else {
      node_["bearer_token"] = "genesis-token";
    }
    node_["timeout"] = "3s";
    if (tweak) tweak(node_);
    build();
  }

  // (Re)builds the connector from the node (after a tweak of the configuration).
  void build() {
    connector_.reset();
    connector_ = build_connector("genesis", "genesis", node_, &hub_, config_errors_);
  }

  YAML::Node& node() { return node_; }
  const std::vector<std::string>& config_errors() const { return config_errors_; }
  Connector& connector() { return *connector_; }
  GenesisSimulator& sim() { return sim_; }
  RecordingHub& hub() { return hub_; }

  // Delivers a message of `type` with this body, its mapped payload and correlation key.
  Outcome send(const std::string& type, const std::string& key, const nlohmann::json& body,
               const nlohmann::json& mapped, const std::string& source = "cms76") {
    Message m;
    m.id = "01MSG" + std::to_string(++seq_);
    m.source = source;
    m.type = type;
    m.correlation = key;
    m.body = body.dump();
    return deliver_mapped(*connector_, m, body, mapped, seq_);
  }

 private:
  GenesisSimulator sim_;
  RecordingHub hub_;
  YAML::Node node_;
  std::vector<std::string> config_errors_;
  std::unique_ptr<Connector> connector_;
  int seq_ = 0;
};

// An individu message's body and the individu-genesis mapping's output for it.
struct IndividuSample {
  nlohmann::json body;
  nlohmann::json mapped;
};
inline IndividuSample individu(int id, const std::string& nom, const std::string& prenom,
                               const std::string& naissance, const std::string& sexe = "M",
                               const std::string& commune = "ROUEN",
                               const std::string& type = "individu.created") {
  IndividuSample s;
  s.body = {{"event", type},
            {"id", "evt-ind-" + std::to_string(id)},
            {"individu", {{"id", id}, {"nom_usage", nom}, {"prenom", prenom}}}};
  s.mapped = {{"idExterne", "CMS76-IND-" + std::to_string(id)},
              {"sexe", sexe},
              {"nomUsage", nom},
              {"nomNaissance", nom},
              {"prenom", prenom},
              {"dateNaissance", naissance},
              {"adresse", {{"codePostal", "76000"}, {"commune", commune}}},
              {"origine", {{"systeme", "CMS76"}, {"evenement", type}}}};
  return s;
}

// A demande message's body and the demande-genesis mapping's output for it.
inline IndividuSample demande(int numero, int individu_id, const std::string& type,
                              const std::string& statut) {
  IndividuSample s;
  s.body = {{"event", type},
            {"id", "evt-dem-" + std::to_string(numero) + "-" + type},
            {"demande", {{"numero", numero}, {"individu_id", individu_id}}}};
  s.mapped = {{"idExterne", "CMS76-DEM-" + std::to_string(numero)},
              {"individuExterne", "CMS76-IND-" + std::to_string(individu_id)},
              {"thematique", "BUD"},
              {"statut", statut}};
  return s;
}

inline nlohmann::json choice(const std::string& person, const std::string& genesis_id) {
  return {{"event", "appariement.choisi"},
          {"id", "evt-choix-" + person},
          {"appariement", {{"personne", person}, {"genesis_id", genesis_id}}}};
}

inline std::string outcome_text(const Outcome& o) {
  return std::string(to_string(o.kind)) + " [" + o.error_class + " " + std::to_string(o.code) +
         "] " + o.text;
}

}  // namespace relais::testing
