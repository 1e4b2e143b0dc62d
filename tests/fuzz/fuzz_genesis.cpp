// Fuzz target: what the genesis destination reads from Genesis — a SOAP answer (namespaces
// resolved to the profile's prefixes, a Fault, the extracted id and error code, a search's
// candidates) and a JSON answer (the same through JSON paths). None may crash, throw or trip a
// sanitizer; a candidate always has an id and a score in 0..1.

#include <string>

#include "connectors/genesis/genesis.h"
#include "tests/fuzz/fuzz_targets.h"

namespace g = relais::genesis;

namespace {

void check(const g::Answer& a) {
  if (!a.parsed && !a.values.empty()) __builtin_trap();
  if (!a.parsed && a.broken.empty()) __builtin_trap();
  for (const auto& c : a.candidates) {
    if (c.external_id.empty() || c.score < 0 || c.score > 1) __builtin_trap();
  }
  if (a.candidates.size() > 50) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);

  // The default profile's paths (config/cms76.yaml, config/genesis/genesis-rest.yaml).
  g::AnswerSpec soap;
  soap.namespaces = {{"gen", "urn:worldline:genesis:1.0"}};
  soap.extract = {{"id", "//gen:creerPersonneReponse/gen:identifiant"},
                  {"error_code", "//gen:erreur/gen:code"},
                  {"error_text", "//gen:erreur/gen:message"}};
  soap.success_path = "//gen:mettreAJourPersonneReponse";
  soap.candidates = "//gen:rechercherPersonneReponse/gen:candidat";
  soap.candidate = {{"id", "gen:identifiant"}, {"score", "gen:score"}, {"nom", "gen:nomUsage"}};
  check(g::read_soap_answer(text, soap));

  g::AnswerSpec rest;
  rest.extract = {{"id", "$.resultats[0].identifiant"},
                  {"error_code", "$.erreur.code"},
                  {"error_text", "$.erreur.message"}};
  rest.success_path = "$.personne";
  rest.candidates = "$.candidats";
  rest.candidate = {{"id", "$.identifiant"}, {"score", "$.score"}, {"nom", "$.nomUsage"}};
  check(g::read_json_answer(text, rest));
  return 0;
}
