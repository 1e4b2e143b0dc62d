// Fuzz target: what an inbound message goes through before it is stored: JSON parsing with
// error positions, the type / correlation / idempotency expressions and route predicates.

#include "routing/hub.h"
#include "tests/fuzz/fuzz_targets.h"

namespace {

struct Fixture {
  relais::JsonTemplate type, correlation;
  relais::JsonPath idempotency;
  std::unique_ptr<relais::Predicate> when;
  Fixture() {
    std::string err;
    relais::JsonTemplate::parse("$.event", type, err);
    relais::JsonTemplate::parse("rdv:{$.rdv.id}/{$.rdv.cms.nom}", correlation, err);
    relais::JsonPath::parse("$.id", idempotency, err);
    std::vector<relais::ConfigError> errors;
    when = relais::Predicate::compile(
        YAML::Load("{any: [{path: $.rdv.emplacement, in: [CMS, VAD]}, {not: {path: "
                   "'$.rdv.demandeur.telephone_portable', exists: true}}, {path: $.event, "
                   "regex: '^rdv\\.(planned|moved)$'}]}"),
        "fuzz", "when", errors);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixture f;
  std::string text(reinterpret_cast<const char*>(data), size);
  nlohmann::json doc;
  relais::AcceptResponse error;
  if (!relais::parse_json_body(text, doc, error)) {
    // The position must be inside the text (or just past its end).
    size_t offset = error.extra.value("offset", size_t{0});
    if (offset > size) __builtin_trap();
    return 0;
  }
  std::string out, err;
  f.type.render(doc, out, err);
  f.correlation.render(doc, out, err, [](const std::string& v) { return v + "!"; });
  if (const auto* v = f.idempotency.find(doc)) relais::scalar_text(*v, out);
  if (f.when) (void)f.when->matches(doc);
  return 0;
}
