#include "routing/predicate.h"

namespace relais {
namespace {

nlohmann::json yaml_scalar_to_json(const YAML::Node& n) {
  // Compare YAML scalars with JSON values by their textual form for numbers and booleans, so
  // "equals: 91877" matches a JSON number and "equals: CMS" a JSON string.
  return nlohmann::json(n.Scalar());
}

bool value_equals(const nlohmann::json& expected, const nlohmann::json& actual) {
  const std::string& want = expected.get_ref<const std::string&>();
  std::string got;
  if (!scalar_text(actual, got)) return false;
  return want == got;
}

}  // namespace

std::unique_ptr<Predicate> Predicate::compile(const YAML::Node& node, const std::string& file,
                                              const std::string& key,
                                              std::vector<ConfigError>& errors) {
  if (!node.IsMap()) {
    errors.push_back(error_at(node, file, key,
                              "a condition is a mapping (path + equals/in/exists/"
                              "regex, or all/any/not)"));
    return nullptr;
  }
  auto p = std::make_unique<Predicate>();
  size_t before = errors.size();
  auto children = [&](const YAML::Node& list, const std::string& k) {
    if (!list.IsSequence() || list.size() == 0) {
      errors.push_back(error_at(list, file, k, "expected a non-empty list of conditions"));
      return;
    }
    size_t i = 0;
    for (const auto& item : list) {
      auto c = compile(item, file, k + "[" + std::to_string(i++) + "]", errors);
      if (c) p->children_.push_back(std::move(c));
    }
  };
  if (node["all"]) {
    p->op_ = Op::All;
    children(node["all"], key + ".all");
  } else if (node["any"]) {
    p->op_ = Op::Any;
    children(node["any"], key + ".any");
  } else if (node["not"]) {
    p->op_ = Op::Not;
    auto c = compile(node["not"], file, key + ".not", errors);
    if (c) p->children_.push_back(std::move(c));
  } else {
    if (!node["path"] || !node["path"].IsScalar()) {
      errors.push_back(
          error_at(node, file, key + ".path", "a condition needs a path (e.g. $.event)"));
      return nullptr;
    }
    std::string err;
    if (!JsonPath::parse(node["path"].Scalar(), p->path_, err)) {
      errors.push_back(error_at(node["path"], file, key + ".path", err));
    }
    int ops = 0;
    if (node["equals"]) {
      ++ops;
      p->op_ = Op::Equals;
      if (!node["equals"].IsScalar()) {
        errors.push_back(error_at(node["equals"], file, key + ".equals", "expected a value"));
      } else {
        p->values_.push_back(yaml_scalar_to_json(node["equals"]));
      }
    }
    if (node["in"]) {
      ++ops;
      p->op_ = Op::In;
      if (!node["in"].IsSequence()) {
        errors.push_back(error_at(node["in"], file, key + ".in", "expected a list of values"));
      } else {
        for (const auto& v : node["in"]) p->values_.push_back(yaml_scalar_to_json(v));
      }
    }
    if (node["exists"]) {
      ++ops;
      p->op_ = Op::Exists;
      p->exists_ = node["exists"].Scalar() != "false";
    }
    if (node["regex"]) {
      ++ops;
      p->op_ = Op::Regex;
      try {
        p->regex_ = std::regex(node["regex"].Scalar(), std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        errors.push_back(error_at(node["regex"], file, key + ".regex",
                                  std::string("invalid regular expression: ") + e.what()));
      }
    }
    if (ops != 1) {
      errors.push_back(error_at(node, file, key,
                                "a condition on a path takes exactly one of equals, in, exists, "
                                "regex"));
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      std::string k = it->first.as<std::string>();
      if (k != "path" && k != "equals" && k != "in" && k != "exists" && k != "regex") {
        errors.push_back(error_at(it->first, file, key + "." + k, "unknown key in a condition"));
      }
    }
  }
  if (errors.size() != before) return nullptr;
  return p;
}

bool Predicate::matches(const nlohmann::json& body) const {
  switch (op_) {
    case Op::All:
      for (const auto& c : children_) {
        if (!c->matches(body)) return false;
      }
      return true;
    case Op::Any:
      for (const auto& c : children_) {
        if (c->matches(body)) return true;
      }
      return false;
    case Op::Not:
      return !children_.front()->matches(body);
    case Op::Exists: {
      const auto* v = path_.find(body);
      bool present = v != nullptr && !v->is_null();
      return present == exists_;
    }
    case Op::Equals:
    case Op::In: {
      const auto* v = path_.find(body);
      if (v == nullptr) return false;
      for (const auto& want : values_) {
        if (value_equals(want, *v)) return true;
      }
      return false;
    }
    case Op::Regex: {
      const auto* v = path_.find(body);
      std::string text;
      if (v == nullptr || !scalar_text(*v, text)) return false;
      return std::regex_search(text, regex_);
    }
  }
  return false;
}

}  // namespace relais
