// Route predicates (equals / in / exists / regex, all / any / not), their compile errors, and
// glob matching of types.

#include <gtest/gtest.h>

#include "routing/predicate.h"

namespace relais {
namespace {

using nlohmann::json;

const json& body() {
  static const json b = json::parse(R"({
    "event": "rdv.planned",
    "rdv": {"id": 91877, "emplacement": "CMS", "urgent": true, "note": null,
            "cms": {"nom": "Barentin"}, "tags": ["a", "b"]},
    "n": 3.5
  })");
  return b;
}

std::unique_ptr<Predicate> compile_ok(const std::string& yaml) {
  std::vector<ConfigError> errors;
  auto p = Predicate::compile(YAML::Load(yaml), "routes.yaml", "routes[0].when", errors);
  EXPECT_TRUE(errors.empty()) << yaml << ": " << (errors.empty() ? "" : errors[0].to_string());
  EXPECT_NE(p, nullptr) << yaml;
  return p;
}

bool matches(const std::string& yaml, const json& b = body()) {
  auto p = compile_ok(yaml);
  return p && p->matches(b);
}

std::vector<ConfigError> compile_errors(const std::string& yaml) {
  std::vector<ConfigError> errors;
  auto p = Predicate::compile(YAML::Load(yaml), "routes.yaml", "routes[0].when", errors);
  EXPECT_EQ(p, nullptr) << yaml;
  EXPECT_FALSE(errors.empty()) << yaml;
  return errors;
}

TEST(Predicate, Equals) {
  EXPECT_TRUE(matches("{path: $.rdv.emplacement, equals: CMS}"));
  EXPECT_FALSE(matches("{path: $.rdv.emplacement, equals: cms}"));  // case matters
  EXPECT_TRUE(matches("{path: $.rdv.id, equals: 91877}"));          // YAML text vs JSON number
  EXPECT_TRUE(matches("{path: $.rdv.id, equals: '91877'}"));
  EXPECT_FALSE(matches("{path: $.rdv.id, equals: 91878}"));
  EXPECT_TRUE(matches("{path: $.rdv.urgent, equals: true}"));
  EXPECT_TRUE(matches("{path: $.n, equals: 3.5}"));
  EXPECT_FALSE(matches("{path: $.missing, equals: CMS}"));
  EXPECT_FALSE(matches("{path: $.rdv.cms, equals: CMS}"));      // objects never equal text
  EXPECT_FALSE(matches("{path: $.rdv.note, equals: 'null'}"));  // JSON null is no value
  EXPECT_TRUE(matches("{path: $.rdv.emplacement, equals: 91877}",
                      json::parse(R"({"rdv":{"emplacement":"91877"}})")));
}

TEST(Predicate, In) {
  EXPECT_TRUE(matches("{path: $.event, in: [rdv.planned, rdv.moved]}"));
  EXPECT_TRUE(matches("{path: $.event, in: [rdv.moved, rdv.planned]}"));
  EXPECT_FALSE(matches("{path: $.event, in: [rdv.moved, rdv.cancelled]}"));
  EXPECT_TRUE(matches("{path: $.rdv.id, in: [1, 91877]}"));
  EXPECT_FALSE(matches("{path: $.event, in: []}"));
  EXPECT_FALSE(matches("{path: $.missing, in: [x]}"));
}

TEST(Predicate, Exists) {
  EXPECT_TRUE(matches("{path: $.rdv.cms.nom, exists: true}"));
  EXPECT_FALSE(matches("{path: $.rdv.cms.tel, exists: true}"));
  EXPECT_TRUE(matches("{path: $.rdv.cms.tel, exists: false}"));
  EXPECT_FALSE(matches("{path: $.rdv.cms.nom, exists: false}"));
  EXPECT_FALSE(matches("{path: $.rdv.note, exists: true}"));  // null counts as absent
  EXPECT_TRUE(matches("{path: $.rdv.note, exists: false}"));
  EXPECT_TRUE(matches("{path: '$.rdv.tags[1]', exists: true}"));
  EXPECT_FALSE(matches("{path: '$.rdv.tags[2]', exists: true}"));
}

TEST(Predicate, Regex) {
  EXPECT_TRUE(matches("{path: $.rdv.cms.nom, regex: '^Bar'}"));
  EXPECT_TRUE(matches("{path: $.rdv.cms.nom, regex: 'ent'}"));  // search, not full match
  EXPECT_FALSE(matches("{path: $.rdv.cms.nom, regex: '^ent'}"));
  EXPECT_TRUE(matches("{path: $.rdv.id, regex: '^918'}"));  // numbers as text
  EXPECT_FALSE(matches("{path: $.rdv.cms, regex: '.*'}"));  // not a scalar
  EXPECT_FALSE(matches("{path: $.missing, regex: '.*'}"));
}

TEST(Predicate, Combinators) {
  EXPECT_TRUE(matches(R"({all: [{path: $.event, equals: rdv.planned},
                               {path: $.rdv.emplacement, equals: CMS}]})"));
  EXPECT_FALSE(matches(R"({all: [{path: $.event, equals: rdv.planned},
                                {path: $.rdv.emplacement, equals: MSA}]})"));
  EXPECT_TRUE(matches(R"({any: [{path: $.event, equals: nope},
                               {path: $.rdv.emplacement, equals: CMS}]})"));
  EXPECT_FALSE(matches(R"({any: [{path: $.event, equals: nope},
                                {path: $.rdv.emplacement, equals: MSA}]})"));
  EXPECT_FALSE(matches("{not: {path: $.rdv.emplacement, equals: CMS}}"));
  EXPECT_TRUE(matches("{not: {path: $.rdv.emplacement, equals: MSA}}"));
  EXPECT_TRUE(matches(R"({all: [{not: {path: $.rdv.note, exists: true}},
                               {any: [{path: $.n, equals: 1}, {path: $.rdv.id, in: [91877]}]}]})"));
}

TEST(Predicate, CompileErrorsCarryKeyAndPosition) {
  auto e = compile_errors("[1, 2]");
  EXPECT_EQ(e[0].key, "routes[0].when");
  EXPECT_EQ(e[0].file, "routes.yaml");

  e = compile_errors("{equals: CMS}");
  EXPECT_EQ(e[0].key, "routes[0].when.path");

  e = compile_errors("{path: rdv.id, equals: 1}");
  EXPECT_EQ(e[0].key, "routes[0].when.path");
  EXPECT_NE(e[0].message.find("'$'"), std::string::npos) << e[0].message;

  e = compile_errors("{path: $.a, equals: 1, in: [1]}");
  EXPECT_NE(e[0].message.find("exactly one"), std::string::npos) << e[0].message;
  e = compile_errors("{path: $.a}");
  EXPECT_NE(e[0].message.find("exactly one"), std::string::npos) << e[0].message;

  e = compile_errors("path: $.a\nregex: '([a-z'\n");
  EXPECT_EQ(e[0].key, "routes[0].when.regex");
  EXPECT_NE(e[0].message.find("invalid regular expression"), std::string::npos);
  EXPECT_EQ(e[0].line, 2);
  EXPECT_EQ(e[0].column, 8);

  e = compile_errors("path: $.a\nequals: 1\nbogus: 2\n");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].key, "routes[0].when.bogus");
  EXPECT_EQ(e[0].line, 3);
  EXPECT_EQ(e[0].column, 1);

  e = compile_errors("{path: $.a, equals: [1, 2]}");
  EXPECT_EQ(e[0].key, "routes[0].when.equals");
  e = compile_errors("{path: $.a, in: x}");
  EXPECT_EQ(e[0].key, "routes[0].when.in");

  e = compile_errors("{all: []}");
  EXPECT_EQ(e[0].key, "routes[0].when.all");
  e = compile_errors("{any: x}");
  EXPECT_EQ(e[0].key, "routes[0].when.any");
  // Errors deep inside are reported with their full key.
  e = compile_errors("all:\n  - {path: $.a, equals: 1}\n  - {path: $.b, regex: '('}\n");
  EXPECT_EQ(e[0].key, "routes[0].when.all[1].regex");
  EXPECT_EQ(e[0].line, 3);
  e = compile_errors("{not: {path: $.a}}");
  EXPECT_EQ(e[0].key, "routes[0].when.not");
}

TEST(Glob, Matching) {
  EXPECT_TRUE(glob_match("rdv.*", "rdv.planned"));
  EXPECT_TRUE(glob_match("rdv.*", "rdv."));
  EXPECT_FALSE(glob_match("rdv.*", "rdv"));
  EXPECT_FALSE(glob_match("rdv.*", "rdvXplanned"));  // '.' is literal
  EXPECT_FALSE(glob_match("rdv.*", "demande.created"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("*", "anything"));
  EXPECT_TRUE(glob_match("", ""));
  EXPECT_FALSE(glob_match("", "x"));
  EXPECT_TRUE(glob_match("rdv.planned", "rdv.planned"));
  EXPECT_FALSE(glob_match("rdv.planned", "rdv.planned2"));
  EXPECT_FALSE(glob_match("rdv.planned", "rdv.plan"));
  EXPECT_TRUE(glob_match("?dv.*", "rdv.x"));
  EXPECT_FALSE(glob_match("?dv", "dv"));
  EXPECT_TRUE(glob_match("*.planned", "rdv.planned"));
  EXPECT_TRUE(glob_match("a*b*c", "aXbYbZc"));
  EXPECT_FALSE(glob_match("a*b*c", "aXbYbZ"));
  EXPECT_TRUE(glob_match("*ab", "aab"));  // needs backtracking
  EXPECT_TRUE(glob_match("*a*a*a*", "banana a"));
  EXPECT_TRUE(glob_match("**x", "x"));
  EXPECT_TRUE(glob_match("x**", "x"));
  EXPECT_FALSE(glob_match("*x*", "abc"));
  EXPECT_TRUE(glob_match("??", "ab"));
  EXPECT_FALSE(glob_match("??", "abc"));
}

}  // namespace
}  // namespace relais
