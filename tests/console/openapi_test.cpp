// The OpenAPI document served at /api/v1/openapi.json is true: every endpoint the server routes
// (its endpoint table) is described with the same method, path, path parameters and roles, and
// the document describes nothing the server does not serve. An endpoint added to the table
// without its description fails here.

#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "api/endpoints.h"
#include "tests/support/relais_process.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;

TEST(OpenApi, TheDocumentDescribesExactlyTheServedEndpoints) {
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = "sources:\n  cms76:\n    type: $.event\n";
  RelaisProcess relais(o);
  relais.start();
  HttpClient anonymous(relais.base_url());
  auto r = anonymous.get("/api/v1/openapi.json");
  ASSERT_EQ(r.status, 200) << "the document is public";
  json doc = r.json();
  ASSERT_TRUE(doc.is_object()) << r.body.substr(0, 200);
  EXPECT_EQ(doc.value("openapi", "").substr(0, 2), "3.");
  ASSERT_TRUE(doc["paths"].is_object());

  std::set<std::string> served, described;
  for (const auto& e : api::endpoints()) {
    std::string m = e.method;
    for (auto& c : m) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    served.insert(m + " " + e.path);
    ASSERT_TRUE(doc["paths"].contains(e.path)) << e.path << " is not described";
    ASSERT_TRUE(doc["paths"][e.path].contains(m)) << e.method << " " << e.path;
    const json& op = doc["paths"][e.path][m];
    EXPECT_EQ(op.value("x-relais-roles", json::array()), json(e.roles))
        << e.method << " " << e.path << ": roles differ from the server's";
    EXPECT_FALSE(op.value("summary", "").empty()) << e.path;
    ASSERT_TRUE(op.contains("responses")) << e.path;
    if (!e.is_public()) {
      EXPECT_TRUE(op["responses"].contains("401")) << e.path;
      EXPECT_TRUE(op["responses"].contains("403")) << e.path;
    } else {
      EXPECT_EQ(op.value("security", json()), json::array()) << e.path << " is public";
    }
    // Every {parameter} of the path is declared.
    std::regex param("\\{(\\w+)\\}");
    for (std::sregex_iterator it(e.path.begin(), e.path.end(), param), end; it != end; ++it) {
      bool declared = false;
      for (const auto& p : op.value("parameters", json::array())) {
        if (p.value("in", "") == "path" && p.value("name", "") == (*it)[1].str()) declared = true;
      }
      EXPECT_TRUE(declared) << e.path << ": {" << (*it)[1].str() << "} not declared";
    }
  }
  for (auto it = doc["paths"].begin(); it != doc["paths"].end(); ++it) {
    for (auto op = it.value().begin(); op != it.value().end(); ++op) {
      described.insert(op.key() + " " + it.key());
    }
  }
  for (const auto& d : described) {
    EXPECT_TRUE(served.count(d)) << d << " is described but not served";
  }
  EXPECT_EQ(served.size(), described.size());
}

}  // namespace
}  // namespace relais::testing
