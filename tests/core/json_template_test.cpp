// JsonPath and JsonTemplate: parsing, lookup, rendering, errors with positions, and the
// per-value encoding callback.

#include <gtest/gtest.h>

#include "core/json_template.h"

namespace relais {
namespace {

using nlohmann::json;

const json& doc() {
  static const json d = json::parse(R"({
    "event": "rdv.planned",
    "rdv": {"id": 91877, "ok": true, "ratio": 0.5, "none": null, "lieu": "Le Havre/Nord & co"},
    "items": [{"code": "A1"}, {"code": "B2"}, 7],
    "matrix": [[1, 2], [3, 4]],
    "a.b": "dotted"
  })");
  return d;
}

JsonPath path(const std::string& text) {
  JsonPath p;
  std::string err;
  EXPECT_TRUE(JsonPath::parse(text, p, err)) << text << ": " << err;
  return p;
}

std::string parse_error(const std::string& text) {
  JsonPath p;
  std::string err;
  EXPECT_FALSE(JsonPath::parse(text, p, err)) << text;
  return err;
}

TEST(JsonPath, FindsFieldsAndIndexes) {
  EXPECT_EQ(*path("$.event").find(doc()), "rdv.planned");
  EXPECT_EQ(*path("$.rdv.id").find(doc()), 91877);
  EXPECT_EQ(*path("$.items[0].code").find(doc()), "A1");
  EXPECT_EQ(*path("$.items[1].code").find(doc()), "B2");
  EXPECT_EQ(*path("$.items[2]").find(doc()), 7);
  EXPECT_EQ(*path("$.matrix[1][0]").find(doc()), 3);
  EXPECT_EQ(path("$").find(doc()), &doc());  // the root
  EXPECT_EQ(path("$.rdv.none").find(doc())->is_null(), true);
  EXPECT_EQ(path("$.rdv.id").text(), "$.rdv.id");
  json top = json::array({"x", "y"});
  EXPECT_EQ(*path("$[1]").find(top), "y");
}

TEST(JsonPath, MissingStepsGiveNull) {
  EXPECT_EQ(path("$.nope").find(doc()), nullptr);
  EXPECT_EQ(path("$.rdv.id.deeper").find(doc()), nullptr);  // field of a number
  EXPECT_EQ(path("$.items[3]").find(doc()), nullptr);       // out of range
  EXPECT_EQ(path("$.rdv[0]").find(doc()), nullptr);         // index into an object
  EXPECT_EQ(path("$.items.code").find(doc()), nullptr);     // field of an array
  EXPECT_EQ(path("$.a.b").find(doc()), nullptr);            // dots always separate fields
}

TEST(JsonPath, ErrorsNameThePosition) {
  EXPECT_NE(parse_error("").find("starts with '$'"), std::string::npos);
  EXPECT_NE(parse_error("rdv.id").find("starts with '$'"), std::string::npos);
  std::string e = parse_error("$..a");
  EXPECT_NE(e.find("empty field name at position 3"), std::string::npos) << e;
  e = parse_error("$.a.");
  EXPECT_NE(e.find("empty field name at position 5"), std::string::npos) << e;
  e = parse_error("$a");
  EXPECT_NE(e.find("unexpected 'a' at position 2"), std::string::npos) << e;
  e = parse_error("$.a[x]");
  EXPECT_NE(e.find("array index"), std::string::npos) << e;
  EXPECT_NE(e.find("position 4"), std::string::npos) << e;  // the '['
  EXPECT_NE(e.find("'$.a[x]'"), std::string::npos) << e;    // quotes the text
  EXPECT_NE(parse_error("$.a[0").find("array index"), std::string::npos);
  EXPECT_NE(parse_error("$.a[]").find("array index"), std::string::npos);
  EXPECT_NE(parse_error("$.a[-1]").find("array index"), std::string::npos);
  // A field name runs to the next '.' or '[': keys with spaces are fine.
  EXPECT_EQ(*path("$.with space").find(nlohmann::json{{"with space", 1}}), 1);
}

TEST(JsonPath, StrayCharactersInAFieldNameAreErrors) {
  JsonPath p;
  std::string err;
  EXPECT_FALSE(JsonPath::parse("$.a]", p, err));
  EXPECT_NE(err.find("unexpected ']' at position 4"), std::string::npos) << err;
  EXPECT_FALSE(JsonPath::parse("$.a{b", p, err));
  EXPECT_NE(err.find("unexpected '{' at position 4"), std::string::npos) << err;
  EXPECT_TRUE(JsonPath::parse("$.nom_usage.x-y", p, err)) << err;
}

TEST(JsonPath, HugeIndexIsAnErrorNotACrash) {
  JsonPath p;
  std::string err;
  bool ok = true;
  EXPECT_NO_THROW(ok = JsonPath::parse("$.items[99999999999999999999999999]", p, err));
  EXPECT_FALSE(ok);
  EXPECT_NE(err.find("index"), std::string::npos) << err;
}

TEST(JsonTemplate, ScalarText) {
  std::string out;
  EXPECT_TRUE(scalar_text(json("abc"), out));
  EXPECT_EQ(out, "abc");
  EXPECT_TRUE(scalar_text(json(42), out));
  EXPECT_EQ(out, "42");
  EXPECT_TRUE(scalar_text(json(-3), out));
  EXPECT_EQ(out, "-3");
  EXPECT_TRUE(scalar_text(json(true), out));
  EXPECT_EQ(out, "true");
  EXPECT_TRUE(scalar_text(json(0.5), out));
  EXPECT_EQ(out, "0.5");
  EXPECT_FALSE(scalar_text(json(nullptr), out));
  EXPECT_FALSE(scalar_text(json::object(), out));
  EXPECT_FALSE(scalar_text(json::array(), out));
}

std::string render(const std::string& tmpl, const json& d = doc(),
                   const std::function<std::string(const std::string&)>& enc = {}) {
  JsonTemplate t;
  std::string err, out;
  EXPECT_TRUE(JsonTemplate::parse(tmpl, t, err)) << tmpl << ": " << err;
  EXPECT_TRUE(t.render(d, out, err, enc)) << tmpl << ": " << err;
  return out;
}

TEST(JsonTemplate, RendersPlaceholdersAndBarePaths) {
  EXPECT_EQ(render("rdv:{$.rdv.id}"), "rdv:91877");
  EXPECT_EQ(render("$.event"), "rdv.planned");
  EXPECT_EQ(render("$.rdv.id"), "91877");
  EXPECT_EQ(render("{$.event}/{$.items[1].code}/x"), "rdv.planned/B2/x");
  EXPECT_EQ(render("{$.rdv.ok}-{$.rdv.ratio}"), "true-0.5");
  EXPECT_EQ(render("static text"), "static text");
  EXPECT_EQ(render("{$.event}{$.event}"), "rdv.plannedrdv.planned");
  JsonTemplate t;
  std::string err;
  ASSERT_TRUE(JsonTemplate::parse("rdv:{$.rdv.id}", t, err));
  EXPECT_EQ(t.text(), "rdv:{$.rdv.id}");
  EXPECT_FALSE(t.empty());
  ASSERT_TRUE(JsonTemplate::parse("", t, err));
  EXPECT_TRUE(t.empty());
}

TEST(JsonTemplate, RenderFailsOnMissingOrNonScalarValues) {
  JsonTemplate t;
  std::string err, out;
  ASSERT_TRUE(JsonTemplate::parse("rdv:{$.rdv.missing}", t, err));
  EXPECT_FALSE(t.render(doc(), out, err));
  EXPECT_NE(err.find("$.rdv.missing"), std::string::npos) << err;
  ASSERT_TRUE(JsonTemplate::parse("x{$.rdv}", t, err));
  EXPECT_FALSE(t.render(doc(), out, err));
  EXPECT_NE(err.find("$.rdv"), std::string::npos) << err;
  EXPECT_NE(err.find("not text"), std::string::npos) << err;
  ASSERT_TRUE(JsonTemplate::parse("$.rdv.none", t, err));
  EXPECT_FALSE(t.render(doc(), out, err));  // null is not a value
  ASSERT_TRUE(JsonTemplate::parse("{$.items}", t, err));
  EXPECT_FALSE(t.render(doc(), out, err));
}

TEST(JsonTemplate, ParseErrorsNameThePosition) {
  JsonTemplate t;
  std::string err;
  EXPECT_FALSE(JsonTemplate::parse("rdv:{$.rdv.id", t, err));
  EXPECT_NE(err.find("unclosed '{' at position 5"), std::string::npos) << err;
  EXPECT_FALSE(JsonTemplate::parse("a}b", t, err));
  EXPECT_NE(err.find("unexpected '}' at position 2"), std::string::npos) << err;
  EXPECT_FALSE(JsonTemplate::parse("x{rdv.id}", t, err));
  EXPECT_NE(err.find("starts with '$'"), std::string::npos) << err;
  EXPECT_FALSE(JsonTemplate::parse("x{$..id}", t, err));
  EXPECT_NE(err.find("empty field name"), std::string::npos) << err;
  EXPECT_FALSE(JsonTemplate::parse("{}", t, err));
}

TEST(JsonTemplate, EncodeAppliesToSubstitutedValuesOnly) {
  auto enc = [](const std::string& v) { return "<" + v + ">"; };
  EXPECT_EQ(render("/a/{$.event}/b?x={$.rdv.id}", doc(), enc), "/a/<rdv.planned>/b?x=<91877>");
  EXPECT_EQ(render("$.event", doc(), enc), "<rdv.planned>");
  EXPECT_EQ(render("plain/text", doc(), enc), "plain/text");
  // A realistic URL encoder.
  auto url = [](const std::string& v) {
    std::string out;
    const char* hex = "0123456789ABCDEF";
    for (unsigned char c : v) {
      if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
      }
    }
    return out;
  };
  EXPECT_EQ(render("http://h/lieu/{$.rdv.lieu}", doc(), url),
            "http://h/lieu/Le%20Havre%2FNord%20%26%20co");
}

}  // namespace
}  // namespace relais
