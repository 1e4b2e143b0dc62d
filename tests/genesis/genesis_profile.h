#pragma once
// The shipped `genesis` destination (config/cms76.yaml) as a `connectors:` entry of a test's
// configuration, pointed at a GenesisSimulator: for the tests that run the real binary
// (tests/genesis/genesis_e2e_test.cpp, the console's browser test of appariement).

#include <string>

#include <yaml-cpp/yaml.h>

#include "tests/genesis/genesis_simulator.h"
#include "tests/support/relais_process.h"

namespace relais::testing {

// The shipped `genesis` destination, with the simulator's address and credentials.
inline std::string genesis_yaml(const GenesisSimulator& sim, const std::string& password_file) {
  YAML::Node root = YAML::LoadFile(std::string(RELAIS_SOURCE_DIR) + "/config/cms76.yaml");
  YAML::Node g = YAML::Clone(root["connectors"]["genesis"]);
  g["url"] = sim.url();
  g["wss"]["username"] = "relais";
  g["wss"]["password_file"] = password_file;
  g["timeout"] = "5s";
  g["retry"] = YAML::Load("{initial: 100ms, max: 1s, max_attempts: 50}");
  YAML::Node connectors;
  connectors["genesis"] = g;
  YAML::Emitter out;
  out << connectors;
  std::string text = out.c_str();
  std::string indented;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    indented += "  " + text.substr(start, end - start) + "\n";
    start = end + 1;
  }
  return indented;
}

// A relais body for appariement: source cms76 (the shipped correlation keys), the shipped
// mappings, the shipped `genesis` destination against `sim`, the candidates' callback
// `cms76-appariement` to an HTTP sink on `callback_port`, and the routes of individus, demandes
// and choices.
inline std::string appariement_yaml(const GenesisSimulator& sim, const std::string& password_file,
                                    int callback_port) {
  const std::string src = RELAIS_SOURCE_DIR;
  return "sources:\n"
         "  cms76:\n"
         "    type: $.event\n"
         "    correlation:\n"
         "      - \"demande:{$.demande.numero}\"\n"
         "      - \"individu:{$.individu.id}\"\n"
         "      - \"appariement:{$.appariement.personne}\"\n"
         "    idempotency: $.id\n"
         "mappings:\n  directory: " +
         src + "/config/mappings\n  tables: " + src +
         "/config/tables\n"
         "connectors:\n" +
         genesis_yaml(sim, password_file) +
         http_connector_yaml("cms76-appariement", callback_port) +
         "routes:\n"
         "  - {name: individus, source: cms76, type: \"individu.*\", to: [{destination: "
         "genesis, mapping: individu-genesis}]}\n"
         "  - {name: demandes, source: cms76, type: \"demande.*\", to: [{destination: "
         "genesis, mapping: demande-genesis}]}\n"
         "  - {name: choix, source: cms76, type: appariement.choisi, to: [{destination: "
         "genesis}]}\n";
}

}  // namespace relais::testing
