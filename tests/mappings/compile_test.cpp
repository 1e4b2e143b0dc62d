// Compile-time diagnostics (file:line:col: message) and document-level features.
#include "mappings/json_writer.h"
#include "test_util.h"

namespace relais::mappings::testing {
namespace {

TEST(CompileErrors, YamlSyntax) {
  EXPECT_EQ(compile_error("fields:\n  a: [1, 2\n"),
            "m.yaml:3:1: YAML syntax: end of sequence flow not found");
}

TEST(CompileErrors, ColonInPlainExpressionIsAYamlError) {
  // the classic trap: "a: b" inside an unquoted value; docs tell to use >- and '='
  EXPECT_EQ(compile_error("fields:\n  a: concat('RDV : ', $.x)\n"),
            "m.yaml:2:18: YAML syntax: illegal map value");
}

TEST(CompileErrors, UnknownFunctionWithSuggestion) {
  EXPECT_EQ(compile_error("fields:\n  a: uper($.x)\n"),
            "m.yaml:2:6: unknown function 'uper' (did you mean 'upper'?)");
  EXPECT_EQ(compile_error("fields:\n  a: frobnicate($.x)\n"),
            "m.yaml:2:6: unknown function 'frobnicate'");
}

TEST(CompileErrors, WrongArgumentCount) {
  EXPECT_EQ(compile_error("fields:\n  a: truncate($.x)\n"),
            "m.yaml:2:6: function 'truncate' takes 2 to 3 arguments, got 1 (usage: "
            "truncate(text, max, [suffix]))");
  EXPECT_EQ(compile_error("fields:\n  a: upper($.x, 1)\n"),
            "m.yaml:2:6: function 'upper' takes 1 argument, got 2 (usage: upper(text))");
  EXPECT_EQ(compile_error("fields:\n  a: coalesce()\n"),
            "m.yaml:2:6: function 'coalesce' takes at least 1 arguments, got 0 (usage: "
            "coalesce(a, b, ...))");
}

TEST(CompileErrors, UnknownTableAndField) {
  EXPECT_EQ(compile_error("fields:\n  a: lookup('nope', $.x)\n"),
            "m.yaml:2:13: unknown table 'nope' (known: cms, strict, thematique)");
  EXPECT_EQ(compile_error("fields:\n  a: lookup('cms', $.x, 'fax')\n"),
            "m.yaml:2:25: table 'cms' has no field 'fax' (fields: adresse, telephone)");
  EXPECT_EQ(compile_error("fields:\n  a: lookup('thematique', $.x, 'code')\n"),
            "m.yaml:2:32: table 'thematique' holds single values: call lookup('thematique', "
            "key) without a field");
  EXPECT_EQ(compile_error("fields:\n  a: lookup($.t, $.x)\n"),
            "m.yaml:2:13: the table name must be written as text, e.g. 'cms'");
}

TEST(CompileErrors, Syntax) {
  EXPECT_EQ(compile_error("fields:\n  a: upper($.x\n"),
            "m.yaml:2:15: expected ',' or ')' but the expression ended");
  EXPECT_EQ(compile_error("fields:\n  a: $.x $.y\n"),
            "m.yaml:2:10: unexpected '$' after a complete expression (missing operator or comma?)");
  EXPECT_EQ(compile_error("fields:\n  a: upper('abc)\n"),
            "m.yaml:2:12: text started with ' is not closed");
  EXPECT_EQ(compile_error("fields:\n  a: $rdv.date\n"),
            "m.yaml:2:6: paths into the message start with '$.' (write $.rdv)");
  EXPECT_EQ(compile_error("fields:\n  a: 1 < 2 < 3\n"),
            "m.yaml:2:12: comparisons cannot be chained: use 'and'");
  EXPECT_EQ(compile_error("fields:\n  a: $.x[\n"),
            "m.yaml:2:10: expected an index, '*' or a quoted name inside [ ]");
}

TEST(CompileErrors, UnknownNames) {
  EXPECT_EQ(compile_error("fields:\n  a: Barentin\n"),
            "m.yaml:2:6: unknown name 'Barentin': paths start with '$.', text goes in quotes, "
            "variables must be declared under 'vars:' before they are used");
  EXPECT_EQ(compile_error("fields:\n  a: upper\n"),
            "m.yaml:2:6: 'upper' is a function: write upper(...)");
  EXPECT_EQ(compile_error("fields:\n  a: $meta.kind\n"),
            "m.yaml:2:12: unknown message metadata 'kind' (known: id, source, type, "
            "correlation_key, received_at)");
  EXPECT_EQ(compile_error("fields:\n  a: $item.x\n"),
            "m.yaml:2:6: '$item' is only available inside a 'for_each' block");
  // variables are visible only after their declaration
  EXPECT_EQ(compile_error("vars:\n  a: b\n  b: 1\nfields:\n  x: a\n"),
            "m.yaml:2:6: unknown name 'b': paths start with '$.', text goes in quotes, variables "
            "must be declared under 'vars:' before they are used");
}

TEST(CompileErrors, LocationsInsideQuotedTemplates) {
  EXPECT_EQ(compile_error("fields:\n  a: \"RDV {uper($.x)}\"\n"),
            "m.yaml:2:12: unknown function 'uper' (did you mean 'upper'?)");
  EXPECT_EQ(compile_error("fields:\n  a: 'RDV {$.x'\n"),
            "m.yaml:2:11: '{' is not closed by '}' (write '{{' for a literal brace)");
  EXPECT_EQ(compile_error("fields:\n  a: >-\n    =upper($.x) + nope(1)\n"),
            "m.yaml:3:19: unknown function 'nope'");
  EXPECT_EQ(compile_error("fields:\n  a: |\n    Ligne 1\n    Ligne {uper($.x)}\n"),
            "m.yaml:4:12: unknown function 'uper' (did you mean 'upper'?)");
}

TEST(CompileErrors, ArgumentChecks) {
  EXPECT_EQ(compile_error("fields:\n  a: format_date($.d, '%Y', 'Europe/Pariss')\n"),
            "m.yaml:2:29: unknown time zone \"Europe/Pariss\" (use names like 'Europe/Paris' or "
            "'UTC')");
  EXPECT_EQ(compile_error("fields:\n  a: format_date($.d, '%Q')\n"),
            "m.yaml:2:23: unsupported directive '%Q' in date pattern");
  EXPECT_EQ(
      compile_error("fields:\n  a: add_duration($.d, '30 minutes')\n"),
      "m.yaml:2:24: invalid duration \"30 minutes\" (ISO 8601, e.g. 'PT30M', 'P1D', '-PT2H')");
  EXPECT_EQ(compile_error("fields:\n  a: phone_e164($.t, 'France')\n"),
            "m.yaml:2:22: unknown phone region \"France\" (use ISO codes like 'FR', 'RE')");
  EXPECT_EQ(compile_error("fields:\n  a: uuid_v5('nope', $.x)\n"),
            "m.yaml:2:14: the UUID namespace must be 'dns', 'url', 'oid', 'x500' or a UUID like "
            "'6ba7b810-9dad-11d1-80b4-00c04fd430c8'");
}

TEST(CompileErrors, DocumentStructure) {
  EXPECT_EQ(compile_error("name: x\n"),
            "m.yaml:1:1: the mapping has no 'fields:' (the document to build)");
  EXPECT_EQ(compile_error("- a\n"),
            "m.yaml:1:1: a mapping document must be a YAML map with at least 'fields:'");
  EXPECT_EQ(compile_error("fields: {a: 1}\nfeilds: {}\n"),
            "m.yaml:2:1: unknown key 'feilds' (expected name, description, output, namespaces, "
            "omit_null, vars, skip, fields, personal)");
  EXPECT_EQ(compile_error("output: csv\nfields: {a: 1}\n"),
            "m.yaml:1:9: 'output' must be json or xml");
  EXPECT_EQ(compile_error("skip:\n  - when: true\nfields: {a: 1}\n"),
            "m.yaml:2:5: each skip entry needs 'when' (or 'unless') and 'reason'");
  EXPECT_EQ(compile_error("vars:\n  upper: 1\nfields: {a: 1}\n"),
            "m.yaml:2:3: 'upper' is a reserved word or a function name");
  EXPECT_EQ(compile_error("fields:\n  a:\n    for_each: $.x\n"),
            "m.yaml:3:5: a for_each block needs 'value:' (what to build for each $item)");
  EXPECT_EQ(compile_error("output: xml\nfields:\n  x:Root: 1\n"),
            "m.yaml:3:3: namespace prefix 'x' is not declared under 'namespaces:'");
  EXPECT_EQ(compile_error("output: xml\nfields:\n  A: 1\n  B: 2\n"),
            "m.yaml:3:3: an XML document has exactly one root element: put everything under one "
            "key such as 'soap:Envelope'");
}

TEST(CompileErrors, AllErrorsAreReportedAndNothingIsReturned) {
  std::vector<Diagnostic> diags;
  auto m = compile("fields:\n  a: uper(1)\n  b: lookup('x', 1)\n  c: ok\n", "m.yaml", test_tables(),
                   diags);
  EXPECT_EQ(m, nullptr);
  ASSERT_EQ(diags.size(), 3u);
  EXPECT_EQ(diags[1].line, 3);
  EXPECT_EQ(diags[2].line, 4);
}

std::shared_ptr<const CompiledMapping> must_compile(const std::string& yaml) {
  std::vector<Diagnostic> diags;
  auto m = compile(yaml, "doc.yaml", test_tables(), diags);
  EXPECT_NE(m, nullptr) << (diags.empty() ? "" : to_string(diags[0]));
  return m;
}

TEST(Documents, NameDefaultsToFileStem) {
  EXPECT_EQ(must_compile("fields: {a: 1}\n")->name(), "doc");
  EXPECT_EQ(must_compile("name: rdv\nfields: {a: 1}\n")->name(), "rdv");
}

TEST(Documents, QuotedValuesAreTextPlainValuesAreExpressions) {
  auto m = must_compile(
      "fields:\n  a: $.x\n  b: '$.x'\n  c: \"n° {$.x}\"\n  d: 15\n  e: '15'\n  f:\n  g: \"=$.x + "
      "1\"\n");
  auto r = m->apply({{"x", 1}}, {});
  EXPECT_EQ(r.value, json::parse(R"({"a":1,"b":"$.x","c":"n° 1","d":15,"e":"15","f":null,"g":2})"));
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.text, r.value.dump());
}

TEST(Documents, NestedObjectsArraysWhenForEachOmitNull) {
  auto m = must_compile(R"(
omit_null: true
fields:
  event:
    subject: "RDV {$.id}"
    tags: ['a', $.tag]
    absent: $.nothing
  choice:
    when: $.n > 1
    then: 'many'
    else: 'one'
  only_if:
    when: $.n > 5
    then: 'big'
  emails:
    for_each: $.emails
    when: not $item.invalid
    value:
      address: lower($item.a)
      rank: $item.r
)");
  auto r = m->apply(
      json::parse(
          R"({"id":7,"tag":"t","n":2,"emails":[{"a":"A@X","r":1},{"a":"B","invalid":true}]})"),
      {});
  ASSERT_EQ(r.kind, MapResult::Kind::Ok) << r.reason;
  EXPECT_EQ(
      r.value,
      json::parse(
          R"({"event":{"subject":"RDV 7","tags":["a","t"]},"choice":"many","emails":[{"address":"a@x","rank":1}]})"));
}

TEST(Documents, SkipFirstWithTemplatedReason) {
  auto m = must_compile(R"(
vars:
  d: required($.date, 'date absente')
skip:
  - unless: $.consent
    reason: "pas de consentement pour {$.id}"
fields:
  a: d
)");
  auto r = m->apply({{"id", 3}}, {});
  EXPECT_EQ(r.kind, MapResult::Kind::Skip);
  EXPECT_EQ(r.reason, "pas de consentement pour 3");
  r = m->apply({{"id", 3}, {"consent", true}}, {});
  EXPECT_EQ(r.kind, MapResult::Kind::Error);
  EXPECT_EQ(r.reason, "mapping 'doc', rule 'a': date absente (value: $.date)");
}

TEST(Documents, RuntimeErrorsNameNestedRules) {
  auto m = must_compile(
      "fields:\n  event:\n    start: datetime($.d, $.h)\n  list:\n    - 1\n    - required($.z, 'z "
      "manquant')\n");
  auto r = m->apply({{"d", "2019-05-17"}, {"h", "25:00"}}, {});
  EXPECT_EQ(r.reason,
            "mapping 'doc', rule 'event.start': '25:00' is not a time of day (expected 10:00 or "
            "10h00) (value: $.h)");
  r = m->apply({{"d", "2019-05-17"}, {"h", "10:00"}}, {});
  EXPECT_EQ(r.reason, "mapping 'doc', rule 'list[1]': z manquant (value: $.z)");
  EXPECT_TRUE(r.text.empty());
}

TEST(Documents, XmlWithNamespacesAttributesAndText) {
  auto m = must_compile(R"(
output: xml
namespaces:
  soap: http://schemas.xmlsoap.org/soap/envelope/
  t: urn:t
fields:
  soap:Envelope:
    soap:Body/t:Item:
      '@Id': $.id
      t:Subject: "RDV & co <{$.id}>"
      t:Body:
        '@Type': 'Text'
        text(): 'corps'
      t:Tag: ['a', 'b']
      t:Absent: null
    soap:Body/t:Other: 1
)");
  auto r = m->apply({{"id", 5}}, {});
  ASSERT_EQ(r.kind, MapResult::Kind::Ok) << r.reason;
  EXPECT_EQ(r.content_type, "text/xml; charset=utf-8");
  EXPECT_EQ(r.text,
            "<?xml version=\"1.0\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/"
            "envelope/\" xmlns:t=\"urn:t\"><soap:Body><t:Item Id=\"5\"><t:Subject>RDV &amp; co "
            "&lt;5&gt;</t:Subject><t:Body Type=\"Text\">corps</t:Body><t:Tag>a</t:Tag><t:Tag>b</"
            "t:Tag></t:Item><t:Other>1</t:Other></soap:Body></soap:Envelope>");
  EXPECT_EQ(m->output_format(), "xml");
}

TEST(Documents, ApplyNeverThrowsOnOddInput) {
  auto m = must_compile("fields:\n  a: upper($.x)\n  b: $.x[0].y\n  c: $.x * 2\n");
  for (const json& body : {json(), json(1), json::array(), json({{"x", json::array()}}),
                           json({{"x", std::string("\xff\xfe")}})}) {
    auto r = m->apply(body, json());
    EXPECT_NE(r.kind, MapResult::Kind::Skip);
  }
}

}  // namespace
}  // namespace relais::mappings::testing

namespace relais::mappings::testing {
namespace {

TEST(JsonWriter, SameTextAsNlohmannDump) {
  const json docs[] = {
      json::parse(R"({"b":[1,-2,3.5,true,null],"a":{"x":"é\"\\/\n\t\u0001"},"c":""})"),
      json("\xff\xfeok"),
      json("a\xc3"),
      json(std::string("nul\0in", 6)),
      json(18446744073709551615u),
      json::array(),
      json::object()};
  for (const json& d : docs) {
    std::string s;
    write_json(s, d);
    EXPECT_EQ(s, d.dump(-1, ' ', false, json::error_handler_t::replace));
  }
}

}  // namespace
}  // namespace relais::mappings::testing
