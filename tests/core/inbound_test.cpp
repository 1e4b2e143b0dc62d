// Inbound JSON bodies: every malformed body is a 400 with a reason, never an exception.

#include <gtest/gtest.h>

#include "core/json_reader.h"
#include "core/json_template.h"
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

// --- hostile bodies: depth, big integers, duplicate keys (core/json_reader.h) ---

std::string arrays(size_t n) {
  return std::string(n, '[') + std::string(n, ']');
}

TEST(JsonNestingDepth, CountsBracketsOutsideStringsOnly) {
  size_t over = 0;
  EXPECT_EQ(json_nesting_depth("1", 64, over), 0u);
  EXPECT_EQ(over, std::string_view::npos);
  EXPECT_EQ(json_nesting_depth("[[1],{\"a\":[2]}]", 64, over), 3u);
  // Brackets inside strings, escaped quotes and escaped backslashes do not count.
  EXPECT_EQ(json_nesting_depth(R"({"a":"[[[{{{","b":"\"[[[","c":"\\"})", 64, over), 1u);
  EXPECT_EQ(json_nesting_depth(R"(["\\\"[["])", 64, over), 1u);
  // The offset of the first bracket beyond the limit; the whole depth is still measured.
  EXPECT_EQ(json_nesting_depth(" [[[[]]]]", 2, over), 4u);
  EXPECT_EQ(over, 3u);
  // Linear and without recursion: a million levels.
  EXPECT_EQ(json_nesting_depth(arrays(1000000), 64, over), 1000000u);
  EXPECT_EQ(over, 64u);
  // Unbalanced text does not underflow.
  EXPECT_EQ(json_nesting_depth("]]][", 64, over), 1u);
}

TEST(ParseJsonBody, DepthIsRefusedAtTheDoorWithDepthLimitAndPosition) {
  nlohmann::json doc;
  AcceptResponse e;
  EXPECT_TRUE(parse_json_body(arrays(64), doc, e));
  ASSERT_FALSE(parse_json_body(arrays(65), doc, e));
  EXPECT_EQ(e.status, 422);
  EXPECT_EQ(e.error, "too deeply nested");
  EXPECT_EQ(e.extra["depth"], 65);
  EXPECT_EQ(e.extra["max_depth"], 64);
  EXPECT_EQ(e.extra["offset"], 64);
  EXPECT_EQ(e.extra["line"], 1);
  EXPECT_EQ(e.extra["column"], 65);
  EXPECT_NE(e.detail.find("nested 65 levels deep; the limit is 64"), std::string::npos);
  // 100,000 levels of objects: refused before any document is built (no stack overflow).
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  objects += '1';
  objects.append(100000, '}');
  AcceptResponse e2;
  ASSERT_FALSE(parse_json_body(objects, doc, e2));
  EXPECT_EQ(e2.status, 422);
  EXPECT_EQ(e2.extra["depth"], 100000);
  // The limit is a parameter (server.max_depth).
  AcceptResponse e3;
  EXPECT_FALSE(parse_json_body(arrays(3), doc, e3, 2));
  EXPECT_TRUE(parse_json_body(arrays(3), doc, e3, 3));
  // Too deep and malformed: the depth is what is reported.
  AcceptResponse e4;
  ASSERT_FALSE(parse_json_body(std::string(70, '['), doc, e4));
  EXPECT_EQ(e4.status, 422);
  // Also when the text is refused before the parse reaches the depth: a syntax error or a NUL
  // byte earlier in the text, a duplicate key, with the whole text's deepest nesting.
  for (const std::string& prefix :
       {std::string("[nul, "), std::string("[\"a\0\", ", 7), std::string("[{\"k\":1,\"k\":2}, ")}) {
    AcceptResponse e5;
    ASSERT_FALSE(parse_json_body(prefix + arrays(70) + "]", doc, e5)) << prefix;
    EXPECT_EQ(e5.status, 422) << prefix;
    EXPECT_EQ(e5.error, "too deeply nested") << prefix;
    EXPECT_EQ(e5.extra["depth"], 71) << prefix;
    EXPECT_EQ(e5.extra["offset"], prefix.size() + 63) << prefix;
  }
  // Refused while parsing: the document is left empty.
  AcceptResponse e6;
  nlohmann::json partial;
  ASSERT_FALSE(parse_json_body("{\"a\": 1, \"b\": " + arrays(80) + "}", partial, e6));
  EXPECT_EQ(e6.extra["depth"], 81);
  EXPECT_TRUE(partial.is_null());
}

TEST(ParseJsonBody, IntegersBeyond64BitsKeepTheirDigits) {
  nlohmann::json doc;
  AcceptResponse e;
  ASSERT_TRUE(parse_json_body(R"({"a": 18446744073709551616123, "b": 18446744073709551616456,
      "c": -9223372036854775809, "u": 18446744073709551615, "i": -9223372036854775808,
      "f": 1.5, "g": 2e30})",
                              doc, e));
  EXPECT_EQ(doc["a"], "18446744073709551616123");
  EXPECT_EQ(doc["b"], "18446744073709551616456");
  EXPECT_EQ(doc["c"], "-9223372036854775809");
  EXPECT_TRUE(doc["u"].is_number_unsigned());  // what fits stays a number
  EXPECT_EQ(doc["u"].get<uint64_t>(), 18446744073709551615ULL);
  EXPECT_TRUE(doc["i"].is_number_integer());
  EXPECT_TRUE(doc["f"].is_number_float());
  EXPECT_TRUE(doc["g"].is_number_float());  // not an integer lexeme: a double, as before
  // Keys and templates see the digits as written: two different messages, two keys.
  std::string ka, kb;
  ASSERT_TRUE(scalar_text(doc["a"], ka));
  ASSERT_TRUE(scalar_text(doc["b"], kb));
  EXPECT_NE(ka, kb);
  JsonTemplate t;
  std::string err, out;
  ASSERT_TRUE(JsonTemplate::parse("rdv:{$.a}", t, err)) << err;
  ASSERT_TRUE(t.render(doc, out, err)) << err;
  EXPECT_EQ(out, "rdv:18446744073709551616123");
}

TEST(ParseJsonBody, DuplicateKeysAreRefusedWithTheirPath) {
  nlohmann::json doc;
  AcceptResponse e;
  ASSERT_FALSE(parse_json_body(R"({"rdv": [{"id": 1}, {"id": 2, "id": 3}]})", doc, e));
  EXPECT_EQ(e.status, 422);
  EXPECT_EQ(e.error, "duplicate key");
  EXPECT_EQ(e.extra["path"], "$.rdv[1].id");
  EXPECT_NE(e.detail.find("'id' appears twice"), std::string::npos) << e.detail;
  // The same key in different objects is fine.
  EXPECT_TRUE(parse_json_body(R"({"a": {"id": 1}, "b": {"id": 1}, "id": 0})", doc, e));
}

TEST(ParseJsonBody, OtherHostileBodiesAreMalformedJson) {
  for (const std::string& text :
       {std::string(""), std::string("{\"a\":\"\xff\"}"), std::string("{\"a\":\"x\0y\"}", 11),
        std::string("{\"a\":1}\0", 8), std::string("{\"a\":1} x")}) {
    nlohmann::json doc;
    AcceptResponse e;
    EXPECT_FALSE(parse_json_body(text, doc, e)) << text;
    EXPECT_EQ(e.status, 400) << text;
    EXPECT_EQ(e.error, "malformed JSON") << text;
    EXPECT_TRUE(e.extra.contains("offset")) << text;
  }
}

TEST(ReadStoredJson, TooDeepIsDiscardedAndDuplicateKeysKeepTheLastValue) {
  EXPECT_TRUE(read_stored_json(arrays(100000)).is_discarded());
  EXPECT_FALSE(read_stored_json(arrays(64)).is_discarded());
  EXPECT_TRUE(read_stored_json("{").is_discarded());
  nlohmann::json j = read_stored_json(R"({"a": 1, "a": 2})");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["a"], 2);
}

}  // namespace
}  // namespace relais
