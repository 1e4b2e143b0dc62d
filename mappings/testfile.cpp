// Mapping tests as data: run a *.test.yaml file against a compiled mapping.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "mappings/mapping.h"
#include "mappings/yaml_json.h"

namespace relais::mappings {

namespace {

using json = nlohmann::json;
thread_local int g_last_count = 0;

std::string trim_ws(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string short_dump(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 600) s = s.substr(0, 600) + "...";
  return s;
}

// expected ⊆ actual (objects: every expected key matches; others: equal).
bool includes(const json& actual, const json& expected, const std::string& path, std::string& why) {
  if (expected.is_object() && actual.is_object()) {
    for (auto it = expected.begin(); it != expected.end(); ++it) {
      auto a = actual.find(it.key());
      std::string p = path + "." + it.key();
      if (a == actual.end()) {
        why = p + " is missing";
        return false;
      }
      if (!includes(*a, it.value(), p, why)) return false;
    }
    return true;
  }
  if (actual != expected) {
    why = path + " is " + short_dump(actual) + ", expected " + short_dump(expected);
    return false;
  }
  return true;
}

std::string describe(const MapResult& r) {
  switch (r.kind) {
    case MapResult::Kind::Ok:
      return "Ok: " + (r.text.size() > 600 ? r.text.substr(0, 600) + "..." : r.text);
    case MapResult::Kind::Skip:
      return "Skip: " + r.reason;
    case MapResult::Kind::Error:
      return "Error: " + r.reason;
  }
  return "";
}

bool load_input(const YAML::Node& n, const std::filesystem::path& dir, json& out,
                std::string& err) {
  if (n.IsScalar() && !is_plain_scalar(n) && !n.Scalar().empty() &&
      (n.Scalar()[0] == '{' || n.Scalar()[0] == '[')) {
    out = json::parse(n.Scalar(), nullptr, false);
    if (out.is_discarded()) {
      err = "inline input is not valid JSON";
      return false;
    }
    return true;
  }
  if (n.IsScalar()) {
    std::filesystem::path p = dir / n.Scalar();
    std::ifstream in(p, std::ios::binary);
    if (!in) {
      err = "cannot read input file " + p.string();
      return false;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    std::string ext = p.extension().string();
    if (ext == ".yaml" || ext == ".yml") {
      out = yaml_to_json(YAML::Load(ss.str()));
      return true;
    }
    out = json::parse(ss.str(), nullptr, false);
    if (out.is_discarded()) {
      err = "input file " + p.string() + " is not valid JSON";
      return false;
    }
    return true;
  }
  out = yaml_to_json(n);
  return true;
}

}  // namespace

int last_test_case_count() {
  return g_last_count;
}

std::vector<std::string> run_test_file(const std::string& test_path, const CompiledMapping& m,
                                       std::vector<Diagnostic>& diags) {
  std::vector<std::string> failures;
  g_last_count = 0;
  YAML::Node root;
  try {
    root = YAML::LoadFile(test_path);
  } catch (const YAML::Exception& e) {
    diags.push_back({test_path, e.mark.line + 1, e.mark.column + 1, e.msg});
    failures.push_back(test_path + ": cannot load the test file: " + e.msg);
    return failures;
  }
  const std::filesystem::path dir = std::filesystem::path(test_path).parent_path();
  YAML::Node cases = root["cases"];
  if (!cases || !cases.IsSequence() || cases.size() == 0) {
    diags.push_back({test_path, 1, 1, "a test file needs 'cases:' (a non-empty list)"});
    failures.push_back(test_path + ": no cases");
    return failures;
  }
  int index = 0;
  for (const auto& c : cases) {
    ++index;
    std::string name = c["name"] ? c["name"].Scalar() : "#" + std::to_string(index);
    const std::string where =
        test_path + ":" + std::to_string(c.Mark().line + 1) + ": case '" + name + "'";
    try {
      if (!c.IsMap() || !c["input"] || !c["expect"] || !c["expect"].IsMap()) {
        diags.push_back({test_path, c.Mark().line + 1, c.Mark().column + 1,
                         "case '" + name + "' needs 'input' and 'expect'"});
        failures.push_back(where + ": needs 'input' and 'expect'");
        continue;
      }
      json input;
      std::string err;
      if (!load_input(c["input"], dir, input, err)) {
        diags.push_back({test_path, c["input"].Mark().line + 1, c["input"].Mark().column + 1, err});
        failures.push_back(where + ": " + err);
        continue;
      }
      // Metadata defaults come from the CMS76 envelope; a case may override any of them.
      json meta = json::object();
      meta["id"] = input.is_object() && input.contains("id") ? input["id"] : json("test-" + name);
      meta["source"] = "test";
      meta["type"] = input.is_object() && input.contains("event") ? input["event"] : json("");
      meta["correlation_key"] = "";
      meta["received_at"] =
          input.is_object() && input.contains("occurred_at") ? input["occurred_at"] : json("");
      if (c["meta"]) {
        json extra = yaml_to_json(c["meta"]);
        if (extra.is_object())
          for (auto it = extra.begin(); it != extra.end(); ++it) meta[it.key()] = it.value();
      }
      ++g_last_count;
      MapResult r = m.apply(input, meta);
      const YAML::Node ex = c["expect"];
      auto expect_kind = [&](MapResult::Kind k, const char* label) {
        if (r.kind == k) return true;
        failures.push_back(where + ": expected " + label + ", got " + describe(r));
        return false;
      };
      if (ex["skip"]) {
        if (expect_kind(MapResult::Kind::Skip, "a skip") &&
            r.reason.find(ex["skip"].as<std::string>()) == std::string::npos)
          failures.push_back(where + ": skip reason '" + r.reason + "' does not contain '" +
                             ex["skip"].as<std::string>() + "'");
        continue;
      }
      if (ex["error"]) {
        if (expect_kind(MapResult::Kind::Error, "an error") &&
            r.reason.find(ex["error"].as<std::string>()) == std::string::npos)
          failures.push_back(where + ": error '" + r.reason + "' does not contain '" +
                             ex["error"].as<std::string>() + "'");
        continue;
      }
      if (!expect_kind(MapResult::Kind::Ok, "an output")) continue;
      bool checked = false;
      if (ex["output"]) {
        checked = true;
        json want = yaml_to_json(ex["output"]);
        if (r.value != want) {
          std::string diff = short_dump(json::diff(want, r.value));
          failures.push_back(where + ": output differs (JSON patch from expected to actual: " +
                             diff + ")\n  actual: " + short_dump(r.value));
        }
      }
      if (ex["output_includes"]) {
        checked = true;
        std::string why;
        if (!includes(r.value, yaml_to_json(ex["output_includes"]), "$", why))
          failures.push_back(where + ": " + why);
      }
      if (ex["output_text"]) {
        checked = true;
        if (trim_ws(r.text) != trim_ws(ex["output_text"].as<std::string>()))
          failures.push_back(where + ": output text differs\n  expected: " +
                             trim_ws(ex["output_text"].as<std::string>()) +
                             "\n  actual:   " + r.text);
      }
      if (ex["contains"]) {
        checked = true;
        for (const auto& s : ex["contains"])
          if (r.text.find(s.as<std::string>()) == std::string::npos)
            failures.push_back(where + ": output does not contain '" + s.as<std::string>() + "'");
      }
      if (ex["not_contains"]) {
        checked = true;
        for (const auto& s : ex["not_contains"])
          if (r.text.find(s.as<std::string>()) != std::string::npos)
            failures.push_back(where + ": output must not contain '" + s.as<std::string>() + "'");
      }
      if (ex["content_type"]) {
        checked = true;
        if (r.content_type != ex["content_type"].as<std::string>())
          failures.push_back(where + ": content type is '" + r.content_type + "'");
      }
      if (!checked)
        failures.push_back(where +
                           ": 'expect' needs output, output_includes, output_text, "
                           "contains, not_contains, skip or error");
    } catch (const std::exception& e) {
      failures.push_back(where + ": " + e.what());
    }
  }
  return failures;
}

}  // namespace relais::mappings
