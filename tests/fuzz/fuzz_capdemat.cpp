// Fuzz target: every XML reader of the capdemat connector — a pushed request (validated against
// its schema through the local catalogue, then its fields read by XPath), a GetRequests and an
// AckRequests answer, a state answer and a workflow document. None may crash, throw or trip a
// sanitizer; a broken answer always says why.

#include <cstdlib>
#include <string>

#include "connectors/capdemat/capdemat.h"
#include "tests/fuzz/fuzz_targets.h"

namespace c = relais::capdemat;

namespace {

const c::SchemaSet* schemas() {
  // The shared fixtures when they are there (RELAIS_SHARED_DIR or ../shared next to the
  // sources); without them the validation is left out, the readers are still fuzzed.
  static const c::SchemaSet* s = []() -> const c::SchemaSet* {
    const char* env = std::getenv("RELAIS_SHARED_DIR");
    std::string dir = env ? env : std::string(RELAIS_SOURCE_DIR) + "/../shared";
    try {
      return new c::SchemaSet(
          dir + "/fixtures/capdemat", {{"http://people.zenexity.fr/~bor/capdemat/latest/", "."}},
          {{"HomeFolderModificationRequest", "request/HomeFolderModificationRequest.xsd"},
           {"GetRequestsResponse", "external/GetRequests.xsd"}});
    } catch (...) {
      return nullptr;
    }
  }();
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  if (const c::SchemaSet* s = schemas()) {
    c::Validation v = s->validate(text);
    if (!v.ok && v.error.empty()) __builtin_trap();
  }
  c::Extraction e;
  e.fields = {{"$.demande.capdemat_id", "cvq:Id"},
              {"$.type", "'demande.capdemat'"},
              {"$.demande.foyer", "cvq:HomeFolder/cvq:Id"}};
  nlohmann::json body;
  std::string id, err;
  if (c::extract_request(text, e, body, id, err) && id.empty()) __builtin_trap();
  c::GetRequestsAnswer g = c::read_get_requests(text);
  if (!g.parsed && g.broken.empty()) __builtin_trap();
  for (const auto& r : g.requests) {
    nlohmann::json b;
    std::string i, er;
    c::extract_request(r.xml, e, b, i, er);
  }
  c::AckAnswer a = c::read_ack_requests(text);
  if (!a.parsed && a.broken.empty()) __builtin_trap();
  (void)c::read_state_answer(text);
  c::Workflow w;
  if (c::Workflow::parse(text, w, err)) (void)w.refusal("Pending", "Complete");
  return 0;
}
