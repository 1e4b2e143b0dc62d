// Inbound JSON bodies: every malformed body is a 400 with a reason, never an exception.

#include <gtest/gtest.h>

#include "routing/hub.h"

namespace relais {
namespace {

TEST(ParseJsonBody, SyntaxErrorsGiveTheirPosition) {
  nlohmann::json doc;
  AcceptResponse e;
  ASSERT_FALSE(parse_json_body("{\n  \"a\": tru\n}", doc, e));
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.error, "malformed JSON");
  EXPECT_EQ(e.extra["line"], 2);
  EXPECT_EQ(e.extra["column"], 11);
}

TEST(ParseJsonBody, NumbersTooLargeAreRefusedNotThrown) {
  nlohmann::json doc;
  AcceptResponse e;
  ASSERT_FALSE(parse_json_body("{\"n\": 1e999}", doc, e));
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.error, "malformed JSON");
  EXPECT_NE(e.detail.find("1e999"), std::string::npos) << e.detail;
}

TEST(ParseJsonBody, ValidBodiesParse) {
  nlohmann::json doc;
  AcceptResponse e;
  ASSERT_TRUE(parse_json_body("{\"event\": \"rdv.planned\", \"n\": 1.5e300}", doc, e));
  EXPECT_EQ(doc["event"], "rdv.planned");
}

}  // namespace
}  // namespace relais
