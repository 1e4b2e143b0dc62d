#pragma once
// Route predicates on body fields: equals / in / exists / regex, combined with all / any / not.
//
// YAML forms:
//   {path: $.rdv.emplacement, equals: CMS}
//   {path: $.event, in: [rdv.planned, rdv.moved]}
//   {path: $.rdv.demandeur.telephone_portable, exists: true}
//   {path: $.rdv.cms.nom, regex: "^Bar"}
//   {all: [...]}, {any: [...]}, {not: {...}}

#include <memory>
#include <regex>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "core/config_spec.h"
#include "core/glob.h"
#include "core/json_template.h"

namespace relais {

// A compiled predicate tree. Immutable after compile; thread-safe const evaluation.
class Predicate {
 public:
  enum class Op { Equals, In, Exists, Regex, All, Any, Not };

  // Compiles `node`; on error appends to errors and returns nullptr.
  static std::unique_ptr<Predicate> compile(const YAML::Node& node, const std::string& file,
                                            const std::string& key,
                                            std::vector<ConfigError>& errors);
  bool matches(const nlohmann::json& body) const;

 private:
  Op op_ = Op::All;
  JsonPath path_;
  std::vector<nlohmann::json> values_;  // Equals (one) / In (several)
  bool exists_ = true;
  std::regex regex_;
  std::vector<std::unique_ptr<Predicate>> children_;
};

}  // namespace relais
