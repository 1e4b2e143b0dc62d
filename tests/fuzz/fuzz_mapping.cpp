// Fuzz target: the mapping language. Input starting with '{': a message body given to the
// shipped calendar, SMS and Genesis mappings. Anything else: a mapping document compiled
// against the shipped lookup tables and, if it compiles, applied to the sample RDV.

#include <fstream>
#include <sstream>

#include "mappings/mapping.h"
#include "tests/fuzz/fuzz_targets.h"

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream b;
  b << in.rdbuf();
  return b.str();
}

struct Fixture {
  std::shared_ptr<const relais::mappings::TableSet> tables;
  std::vector<std::shared_ptr<const relais::mappings::CompiledMapping>> shipped;
  nlohmann::json sample;
  nlohmann::json meta = {{"id", "fuzz"},
                         {"source", "cms76"},
                         {"type", "rdv.planned"},
                         {"correlation_key", "rdv:1"},
                         {"received_at", "2019-05-15T13:58:03Z"}};
  Fixture() {
    std::vector<relais::mappings::Diagnostic> diags;
    std::string dir = RELAIS_SOURCE_DIR "/config";
    tables = relais::mappings::TableSet::load_dir(dir + "/tables", diags);
    for (const char* name :
         {"rdv-calendar", "rdv-sms-confirmation", "rdv-sms-reminder", "individu-genesis"}) {
      auto m = relais::mappings::compile(slurp(dir + "/mappings/" + name + ".yaml"), name, tables,
                                         diags);
      if (!m) __builtin_trap();  // the shipped mappings compile
      shipped.push_back(m);
    }
    sample = nlohmann::json::parse(slurp(RELAIS_SHARED_DIR "/fixtures/cms76/rdv-planned.json"));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixture f;
  std::string text(reinterpret_cast<const char*>(data), size);
  if (text.empty() || text[0] != '{') {
    std::vector<relais::mappings::Diagnostic> diags;
    auto m = relais::mappings::compile(text, "fuzz.yaml", f.tables, diags);
    if (m) (void)m->apply(f.sample, f.meta);
    for (const auto& d : diags) (void)relais::mappings::to_string(d);
  } else {
    nlohmann::json body = nlohmann::json::parse(text, nullptr, false);
    if (body.is_discarded()) return 0;
    for (const auto& m : f.shipped) (void)m->apply(body, f.meta);
  }
  return 0;
}
