// Fuzz target: what the demarches-simplifiees connector and poller read from the GraphQL API — a
// dossier, a page of dossiers, a mutation's answer — and the errors' classification. None may
// crash, throw or trip a sanitizer; a broken answer always says why; a dossier read always has a
// number, an id, a state and a modification date.

#include <string>

#include "connectors/demarches/demarches.h"
#include "tests/fuzz/fuzz_targets.h"

namespace d = relais::demarches;

namespace {

void check(const d::Dossier& x) {
  if (x.number <= 0 || x.id.empty() || x.state.empty() || x.updated.empty()) __builtin_trap();
  if (!x.body.is_object() || !x.body.contains("dossier")) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  d::DossierAnswer a = d::read_dossier_answer(text);
  if (!a.parsed && a.broken.empty()) __builtin_trap();
  if (a.found) check(a.dossier);
  if (a.errors.present && d::classify_errors(a.errors).text.empty()) __builtin_trap();
  d::PageAnswer p = d::read_page_answer(text);
  if (!p.parsed && p.broken.empty()) __builtin_trap();
  for (const auto& x : p.dossiers) check(x);
  if (p.parsed && p.has_next && p.end_cursor.empty()) __builtin_trap();
  d::MutationAnswer m = d::read_mutation_answer(text, "dossierAccepter");
  if (!m.parsed && m.broken.empty()) __builtin_trap();
  if (m.applied && m.refusals > 0) __builtin_trap();
  std::string why;
  if (!d::read_demarche_answer(text, why) && why.empty()) __builtin_trap();
  (void)d::champ_key(text);
  return 0;
}
