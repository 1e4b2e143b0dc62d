#include "core/json_template.h"

namespace relais {

bool JsonPath::parse(const std::string& text, JsonPath& out, std::string& error) {
  out = JsonPath();
  out.text_ = text;
  if (text.empty() || text[0] != '$') {
    error = "a path starts with '$' (e.g. $.rdv.id)";
    return false;
  }
  size_t i = 1;
  while (i < text.size()) {
    if (text[i] == '.') {
      size_t start = ++i;
      while (i < text.size() && text[i] != '.' && text[i] != '[') ++i;
      if (i == start) {
        error = "empty field name at position " + std::to_string(start + 1) + " in '" + text + "'";
        return false;
      }
      std::string name = text.substr(start, i - start);
      for (size_t k = 0; k < name.size(); ++k) {
        unsigned char c = static_cast<unsigned char>(name[k]);
        if (c == ']' || c == '{' || c == '}' || c == '$') {
          error = "unexpected '" + std::string(1, name[k]) + "' at position " +
                  std::to_string(start + k + 1) + " in '" + text + "'";
          return false;
        }
      }
      out.steps_.emplace_back(std::move(name));
    } else if (text[i] == '[') {
      size_t start = ++i;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
      if (i == start || i >= text.size() || text[i] != ']') {
        error = "expected an array index like [0] at position " + std::to_string(start) + " in '" +
                text + "'";
        return false;
      }
      if (i - start > 9) {  // std::stoul would throw past its range
        error = "array index too large at position " + std::to_string(start) + " in '" + text + "'";
        return false;
      }
      out.steps_.emplace_back(static_cast<size_t>(std::stoul(text.substr(start, i - start))));
      ++i;
    } else {
      error = "unexpected '" + std::string(1, text[i]) + "' at position " + std::to_string(i + 1) +
              " in '" + text + "'";
      return false;
    }
  }
  return true;
}

const nlohmann::json* JsonPath::find(const nlohmann::json& doc) const {
  const nlohmann::json* cur = &doc;
  for (const auto& step : steps_) {
    if (const auto* name = std::get_if<std::string>(&step)) {
      if (!cur->is_object()) return nullptr;
      auto it = cur->find(*name);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    } else {
      size_t idx = std::get<size_t>(step);
      if (!cur->is_array() || idx >= cur->size()) return nullptr;
      cur = &(*cur)[idx];
    }
  }
  return cur;
}

bool JsonPath::set(nlohmann::json& doc, nlohmann::json value) const {
  nlohmann::json* cur = &doc;
  for (const auto& step : steps_) {
    if (const auto* name = std::get_if<std::string>(&step)) {
      if (cur->is_null()) *cur = nlohmann::json::object();
      if (!cur->is_object()) return false;
      cur = &(*cur)[*name];
    } else {
      size_t idx = std::get<size_t>(step);
      if (!cur->is_array() || idx >= cur->size()) return false;
      cur = &(*cur)[idx];
    }
  }
  *cur = std::move(value);
  return true;
}

bool scalar_text(const nlohmann::json& v, std::string& out) {
  if (v.is_string()) {
    out = v.get_ref<const std::string&>();
    return true;
  }
  if (v.is_number() || v.is_boolean()) {
    out = v.dump();
    return true;
  }
  return false;
}

bool JsonTemplate::parse(const std::string& text, JsonTemplate& out, std::string& error) {
  out = JsonTemplate();
  out.text_ = text;
  if (!text.empty() && text[0] == '$') {
    JsonPath p;
    if (!JsonPath::parse(text, p, error)) return false;
    out.parts_.emplace_back(std::move(p));
    return true;
  }
  std::string literal;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '{') {
      size_t close = text.find('}', i);
      if (close == std::string::npos) {
        error = "unclosed '{' at position " + std::to_string(i + 1) + " in '" + text + "'";
        return false;
      }
      if (!literal.empty()) out.parts_.emplace_back(std::move(literal));
      literal.clear();
      JsonPath p;
      if (!JsonPath::parse(text.substr(i + 1, close - i - 1), p, error)) return false;
      out.parts_.emplace_back(std::move(p));
      i = close;
    } else if (c == '}') {
      error = "unexpected '}' at position " + std::to_string(i + 1) + " in '" + text + "'";
      return false;
    } else {
      literal += c;
    }
  }
  if (!literal.empty()) out.parts_.emplace_back(std::move(literal));
  return true;
}

bool JsonTemplate::render(const nlohmann::json& doc, std::string& out, std::string& error,
                          const std::function<std::string(const std::string&)>& encode) const {
  out.clear();
  std::string value;
  for (const auto& part : parts_) {
    if (const auto* lit = std::get_if<std::string>(&part)) {
      out += *lit;
      continue;
    }
    const auto& path = std::get<JsonPath>(part);
    const nlohmann::json* v = path.find(doc);
    if (v == nullptr) {
      error = "no value at " + path.text();
      return false;
    }
    if (!scalar_text(*v, value)) {
      error = "value at " + path.text() + " is not text or a number";
      return false;
    }
    out += encode ? encode(value) : value;
  }
  return true;
}

}  // namespace relais
