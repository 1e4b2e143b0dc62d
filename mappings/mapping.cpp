// The mapping compiler (YAML document -> target tree of compiled expressions) and apply().
#include "mappings/mapping.h"

#include <filesystem>
#include <sstream>

#include <yaml-cpp/yaml.h>
#include <pugixml.hpp>

#include "mappings/expr.h"
#include "mappings/json_writer.h"
#include "mappings/yaml_json.h"

namespace relais::mappings {

std::string to_string(const Diagnostic& d) {
  std::string s = d.file;
  if (d.line > 0) {
    s.push_back(':');
    s.append(std::to_string(d.line));
    if (d.column > 0) {
      s.push_back(':');
      s.append(std::to_string(d.column));
    }
  }
  s.append(": ");
  s.append(d.message);
  return s;
}

namespace detail {

// ---- target tree ----------------------------------------------------------------------------

// One node of the document to build. Immutable after compilation; evaluation is const.
class TargetNode {
 public:
  virtual ~TargetNode() = default;
  // Produces the JSON value; false when the node yields nothing (a when without else).
  virtual bool to_json(EvalContext& ctx, json& out) const = 0;
  // Appends the element(s) called name under parent.
  virtual void to_xml(EvalContext& ctx, pugi::xml_node parent, const std::string& name) const = 0;
  std::string rule;  // target path, named in error messages
};

void json_to_xml(pugi::xml_node parent, const std::string& name, const json& v) {
  if (v.is_null()) return;
  if (v.is_array()) {
    for (const json& e : v) json_to_xml(parent, name, e);
    return;
  }
  pugi::xml_node el = parent.append_child(name.c_str());
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!it.key().empty() && it.key()[0] == '@') {
        if (!it.value().is_null())
          el.append_attribute(it.key().c_str() + 1).set_value(to_text(it.value()).c_str());
      } else {
        json_to_xml(el, it.key(), it.value());
      }
    }
    return;
  }
  el.text().set(to_text(v).c_str());
}

class ValueNode : public TargetNode {
 public:
  ExprPtr expr;
  bool to_json(EvalContext& ctx, json& out) const override {
    ctx.rule = &rule;
    out = expr->eval(ctx);
    return true;
  }
  void to_xml(EvalContext& ctx, pugi::xml_node parent, const std::string& name) const override {
    ctx.rule = &rule;
    json v = expr->eval(ctx);
    if (!ctx.failed) json_to_xml(parent, name, v);
  }
};

class ObjectNode : public TargetNode {
 public:
  struct Entry {
    std::string key;
    std::vector<std::string> path;  // xml: element names; last may be "@attr" or "text()"
    std::unique_ptr<TargetNode> node;
  };
  std::vector<Entry> entries;
  bool omit_null = false;

  bool to_json(EvalContext& ctx, json& out) const override {
    out = json::object();
    for (const Entry& e : entries) {
      json v;
      bool produced = e.node->to_json(ctx, v);
      if (ctx.failed) return false;
      if (!produced || (omit_null && v.is_null())) continue;
      out[e.key] = std::move(v);
    }
    return true;
  }
  void fill_xml(EvalContext& ctx, pugi::xml_node el) const {
    for (const Entry& e : entries) {
      pugi::xml_node target = el;
      for (size_t i = 0; i + 1 < e.path.size(); ++i) {
        pugi::xml_node found;
        for (pugi::xml_node c = target.last_child(); c; c = c.previous_sibling())
          if (e.path[i] == c.name()) {
            found = c;
            break;
          }
        target = found ? found : target.append_child(e.path[i].c_str());
      }
      const std::string& last = e.path.back();
      if (last[0] == '@' || last == "text()") {
        json v;
        if (!e.node->to_json(ctx, v) || ctx.failed || v.is_null()) {
          if (ctx.failed) return;
          continue;
        }
        if (last[0] == '@')
          target.append_attribute(last.c_str() + 1).set_value(to_text(v).c_str());
        else
          target.text().set(to_text(v).c_str());
      } else {
        e.node->to_xml(ctx, target, last);
      }
      if (ctx.failed) return;
    }
  }
  void to_xml(EvalContext& ctx, pugi::xml_node parent, const std::string& name) const override {
    fill_xml(ctx, parent.append_child(name.c_str()));
  }
};

class ArrayNode : public TargetNode {
 public:
  std::vector<std::unique_ptr<TargetNode>> items;
  bool to_json(EvalContext& ctx, json& out) const override {
    out = json::array();
    for (const auto& i : items) {
      json v;
      if (i->to_json(ctx, v)) out.push_back(std::move(v));
      if (ctx.failed) return false;
    }
    return true;
  }
  void to_xml(EvalContext& ctx, pugi::xml_node parent, const std::string& name) const override {
    for (const auto& i : items) {
      i->to_xml(ctx, parent, name);
      if (ctx.failed) return;
    }
  }
};

class WhenNode : public TargetNode {
 public:
  ExprPtr cond;
  std::unique_ptr<TargetNode> then, otherwise;
  const TargetNode* choose(EvalContext& ctx) const {
    ctx.rule = &rule;
    bool c = truthy(cond->eval(ctx));
    if (ctx.failed) return nullptr;
    return c ? then.get() : otherwise.get();
  }
  bool to_json(EvalContext& ctx, json& out) const override {
    const TargetNode* n = choose(ctx);
    return n ? n->to_json(ctx, out) : false;
  }
  void to_xml(EvalContext& ctx, pugi::xml_node parent, const std::string& name) const override {
    if (const TargetNode* n = choose(ctx)) n->to_xml(ctx, parent, name);
  }
};

class ForEachNode : public TargetNode {
 public:
  ExprPtr source, filter;
  std::unique_ptr<TargetNode> value;
  template <class F>
  void each(EvalContext& ctx, F&& f) const {
    ctx.rule = &rule;
    json src = source->eval(ctx);
    if (ctx.failed || src.is_null()) return;
    if (!src.is_array()) src = json::array({std::move(src)});
    for (const json& item : src) {
      ctx.items.push_back(&item);
      bool keep = true;
      if (filter) {
        ctx.rule = &rule;
        keep = truthy(filter->eval(ctx));
      }
      if (keep && !ctx.failed) f();
      ctx.items.pop_back();
      if (ctx.failed) return;
    }
  }
  bool to_json(EvalContext& ctx, json& out) const override {
    out = json::array();
    each(ctx, [&] {
      json v;
      if (value->to_json(ctx, v)) out.push_back(std::move(v));
    });
    return !ctx.failed;
  }
  void to_xml(EvalContext& ctx, pugi::xml_node parent, const std::string& name) const override {
    each(ctx, [&] { value->to_xml(ctx, parent, name); });
  }
};

// ---- the compiled mapping -------------------------------------------------------------------

class MappingImpl {
 public:
  std::string name;
  std::string file;
  std::string format = "json";
  std::string content_type;
  bool xml_declaration = true;
  std::vector<std::pair<std::string, std::string>> namespaces;
  std::vector<std::string> personal;  // declared personal paths of the output
  std::vector<std::string> var_names;
  std::vector<ExprPtr> vars;
  struct SkipRule {
    std::string rule;
    ExprPtr cond;
    bool unless = false;
    ExprPtr reason;
  };
  std::vector<SkipRule> skips;
  std::unique_ptr<ObjectNode> root;
  std::shared_ptr<const TableSet> tables;

  MapResult apply(const json& body, const json& meta) const;
};

EvalContext::EvalContext(const json& b, const json& m, const MappingImpl& map)
    : body(b), meta(m), mapping(map), vars(map.vars.size()), var_done(map.vars.size(), 0) {}

void EvalContext::fail(std::string_view message, std::string_view value_path) {
  if (failed) return;
  failed = true;
  error = "mapping '" + mapping.name + "'";
  if (rule) error += ", rule '" + *rule + "'";
  error += ": ";
  error += message;
  if (!value_path.empty()) {
    error += " (value: ";
    error += value_path;
    error += ")";
  }
}

const json& EvalContext::var(size_t index) {
  if (!var_done[index]) {
    var_done[index] = 1;
    vars[index] = mapping.vars[index]->eval(*this);
  }
  return vars[index];
}

namespace {
struct StringWriter : pugi::xml_writer {
  std::string out;
  void write(const void* data, size_t size) override {
    out.append(static_cast<const char*>(data), size);
  }
};
}  // namespace

MapResult MappingImpl::apply(const json& body, const json& meta) const {
  MapResult r;
  try {
    EvalContext ctx(body, meta, *this);
    auto error = [&]() {
      r.kind = MapResult::Kind::Error;
      r.reason = ctx.error;
      r.value = json();
      r.text.clear();
      return r;
    };
    for (const SkipRule& s : skips) {
      ctx.rule = &s.rule;
      bool c = truthy(s.cond->eval(ctx));
      if (ctx.failed) return error();
      if (c != s.unless) {
        json reason = s.reason->eval(ctx);
        if (ctx.failed) return error();
        r.kind = MapResult::Kind::Skip;
        r.reason = to_text(reason);
        return r;
      }
    }
    if (format == "xml") {
      pugi::xml_document doc;
      root->fill_xml(ctx, doc);
      if (ctx.failed) return error();
      pugi::xml_node top = doc.first_child();
      for (auto it = namespaces.rbegin(); it != namespaces.rend(); ++it) {
        std::string attr = it->first.empty() ? "xmlns" : "xmlns:" + it->first;
        top.prepend_attribute(attr.c_str()).set_value(it->second.c_str());
      }
      StringWriter w;
      doc.save(w, "", pugi::format_raw | (xml_declaration ? 0u : pugi::format_no_declaration),
               pugi::encoding_utf8);
      r.text = std::move(w.out);
      r.content_type = content_type.empty() ? "text/xml; charset=utf-8" : content_type;
    } else {
      if (!root->to_json(ctx, r.value) || ctx.failed) return error();
      r.text.reserve(512);
      write_json(r.text, r.value);
      r.content_type = content_type.empty() ? "application/json" : content_type;
    }
  } catch (const std::exception& e) {
    r = MapResult{};
    r.kind = MapResult::Kind::Error;
    r.reason = "mapping '" + name + "': internal error: " + e.what();
  }
  return r;
}

// ---- compiler -------------------------------------------------------------------------------

namespace {

struct CompileFailed {};

class Compiler {
 public:
  Compiler(const std::string& text, const std::string& file, std::vector<Diagnostic>& diags)
      : text_(text), file_(file), diags_(diags) {}

  std::unique_ptr<MappingImpl> run(std::shared_ptr<const TableSet> tables) {
    YAML::Node root;
    try {
      root = YAML::Load(text_);
    } catch (const YAML::Exception& e) {
      diags_.push_back({file_, e.mark.line + 1, e.mark.column + 1, "YAML syntax: " + e.msg});
      return nullptr;
    }
    if (!root.IsMap()) {
      error(root, "a mapping document must be a YAML map with at least 'fields:'");
      return nullptr;
    }
    auto m = std::make_unique<MappingImpl>();
    m->file = file_;
    m->tables = tables ? tables : TableSet::empty();
    scope_.tables = m->tables.get();
    m->name = std::filesystem::path(file_).stem().string();
    if (m->name.size() > 5 && m->name.compare(m->name.size() - 5, 5, ".test") == 0)
      m->name.resize(m->name.size() - 5);

    static const char* const kKeys[] = {
        "name", "description", "output",          "content_type", "namespaces", "omit_null", "vars",
        "skip", "fields",      "xml_declaration", "version",      "tags",       "personal"};
    for (const auto& kv : root) {
      std::string k = kv.first.Scalar();
      bool known = false;
      for (const char* x : kKeys) known = known || k == x;
      if (!known)
        error(kv.first, "unknown key '" + k +
                            "' (expected name, description, output, namespaces, omit_null, "
                            "vars, skip, fields, personal)");
    }
    if (auto n = root["name"]) {
      if (!n.IsScalar() || n.Scalar().empty())
        error(n, "'name' must be text");
      else
        m->name = n.Scalar();
    }
    if (auto n = root["output"]) {
      if (!n.IsScalar() || (n.Scalar() != "json" && n.Scalar() != "xml"))
        error(n, "'output' must be json or xml");
      else
        m->format = n.Scalar();
    }
    if (auto n = root["content_type"]) m->content_type = n.Scalar();
    if (auto n = root["personal"]) {
      // Paths of the output holding personal data ($.to, $.participants[*].email); the console
      // masks them for every role but admin (the full syntax is checked by the core's
      // PersonalPaths, which the hub applies).
      if (!n.IsSequence()) {
        error(n, "'personal' must be a list of paths like $.to");
      } else {
        for (const auto& p : n) {
          if (!p.IsScalar() || p.Scalar().empty() || p.Scalar()[0] != '$' ||
              p.Scalar().find_first_of(" {}") != std::string::npos) {
            error(p, "a personal path looks like $.to or $.participants[*].email");
          } else {
            m->personal.push_back(p.Scalar());
          }
        }
      }
    }
    bool omit_null = false;
    if (auto n = root["omit_null"]) omit_null = bool_value(n, "omit_null");
    if (auto n = root["xml_declaration"]) m->xml_declaration = bool_value(n, "xml_declaration");
    xml_ = m->format == "xml";
    if (auto n = root["namespaces"]) {
      if (!xml_) error(n, "'namespaces' only applies to 'output: xml'");
      if (!n.IsMap()) {
        error(n, "'namespaces' must be a map of prefix: URI");
      } else {
        for (const auto& kv : n) {
          std::string p = kv.first.IsNull() ? "" : kv.first.Scalar();
          if (!kv.second.IsScalar() || kv.second.Scalar().empty()) {
            error(kv.second, "namespace '" + p + "' needs a URI");
            continue;
          }
          m->namespaces.emplace_back(p, kv.second.Scalar());
          prefixes_.push_back(p);
        }
      }
    }
    if (auto n = root["vars"]) {
      if (!n.IsMap()) {
        error(n, "'vars' must be a map of name: expression");
      } else {
        for (const auto& kv : n) {
          std::string vn = kv.first.Scalar();
          bool ok =
              !vn.empty() && (std::isalpha(static_cast<unsigned char>(vn[0])) || vn[0] == '_');
          for (char c : vn) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
          if (!ok) {
            error(kv.first, "variable name '" + vn + "' must be letters, digits and _");
            continue;
          }
          if (find_function(vn) || vn == "true" || vn == "false" || vn == "null" || vn == "and" ||
              vn == "or" || vn == "not") {
            error(kv.first, "'" + vn + "' is a reserved word or a function name");
            continue;
          }
          if (scope_.vars.count(vn)) {
            error(kv.first, "variable '" + vn + "' is declared twice");
            continue;
          }
          ExprPtr e = compile_value(kv.second);
          m->var_names.push_back(vn);
          m->vars.push_back(e ? std::move(e) : std::make_unique<Literal>(json()));
          scope_.vars.emplace(vn, m->vars.size() - 1);
        }
      }
    }
    if (auto n = root["skip"]) {
      if (!n.IsSequence()) {
        error(n, "'skip' must be a list of {when: condition, reason: 'text'}");
      } else {
        size_t i = 0;
        for (const auto& s : n) {
          ++i;
          if (!s.IsMap() || (!s["when"] == !s["unless"]) || !s["reason"]) {
            error(s, "each skip entry needs 'when' (or 'unless') and 'reason'");
            continue;
          }
          for (const auto& kv : s) {
            std::string k = kv.first.Scalar();
            if (k != "when" && k != "unless" && k != "reason")
              error(kv.first, "unknown key '" + k + "' in skip entry (when, unless, reason)");
          }
          MappingImpl::SkipRule rule;
          rule.rule = "skip[" + std::to_string(i) + "]";
          rule.unless = !s["when"];
          rule.cond = compile_value(s[rule.unless ? "unless" : "when"]);
          rule.reason = compile_value(s["reason"]);
          if (rule.cond && rule.reason) m->skips.push_back(std::move(rule));
        }
      }
    }
    omit_null_ = omit_null;
    auto fields = root["fields"];
    if (!fields) {
      error(root, "the mapping has no 'fields:' (the document to build)");
    } else if (!fields.IsMap()) {
      error(fields, "'fields' must be a map of target field: expression");
    } else {
      auto obj = build_object(fields, "");
      if (xml_ && obj) {
        std::vector<std::string> tops;
        for (const auto& e : obj->entries)
          if (std::find(tops.begin(), tops.end(), e.path.front()) == tops.end())
            tops.push_back(e.path.front());
        if (tops.size() != 1 || tops[0][0] == '@' || tops[0] == "text()")
          error(fields,
                "an XML document has exactly one root element: put everything under "
                "one key such as 'soap:Envelope'");
      }
      m->root = std::move(obj);
    }
    if (failed_) return nullptr;
    return m;
  }

 private:
  void error(const YAML::Node& n, const std::string& msg) {
    YAML::Mark mk = n.Mark();
    diags_.push_back({file_, mk.line + 1, mk.column + 1, msg});
    failed_ = true;
  }

  bool bool_value(const YAML::Node& n, const char* key) {
    json v = yaml_to_json(n);
    if (!v.is_boolean()) {
      error(n, std::string("'") + key + "' must be true or false");
      return false;
    }
    return v.get<bool>();
  }

  // Location of offset inside the scalar's expression text (start = raw offset of the text).
  void expr_error(const YAML::Node& n, size_t start_in_scalar, const ExprError& e) {
    YAML::Mark mk = n.Mark();
    int line = mk.line + 1, col = mk.column + 1;
    size_t pos = mk.pos >= 0 ? static_cast<size_t>(mk.pos) : 0;
    if (pos < text_.size() && (text_[pos] == '"' || text_[pos] == '\'')) {
      ++pos;
      ++col;
    } else if (pos < text_.size() && (text_[pos] == '|' || text_[pos] == '>')) {
      // block scalar: the text starts on the next line, after its indentation
      while (pos < text_.size() && text_[pos] != '\n') ++pos;
      ++pos;
      ++line;
      col = 1;
      while (pos < text_.size() && text_[pos] == ' ') {
        ++pos;
        ++col;
      }
    }
    size_t target = start_in_scalar + e.offset;
    for (size_t i = 0; i < target && pos < text_.size(); ++i, ++pos) {
      if (text_[pos] == '\n') {
        ++line;
        col = 1;
        while (pos + 1 < text_.size() && text_[pos + 1] == ' ') {
          ++pos;
          ++col;
        }
      } else {
        ++col;
      }
    }
    diags_.push_back({file_, line, col, e.what()});
    failed_ = true;
  }

  // A rule value: plain scalar = expression; quoted/block scalar = text with {expressions},
  // or an expression when it starts with '='.
  ExprPtr compile_value(const YAML::Node& n) {
    if (!n || n.IsNull()) return std::make_unique<Literal>(json());
    if (!n.IsScalar()) {
      error(n, "expected an expression or a text here, not a list or a map");
      return nullptr;
    }
    const std::string& s = n.Scalar();
    try {
      if (is_plain_scalar(n)) return parse_expression(s, scope_);
      if (!s.empty() && s[0] == '=') {
        try {
          return parse_expression(std::string_view(s).substr(1), scope_);
        } catch (const ExprError& e) {
          expr_error(n, 1, e);
          return nullptr;
        }
      }
      return parse_template(s, scope_);
    } catch (const ExprError& e) {
      expr_error(n, 0, e);
      return nullptr;
    }
  }

  bool valid_xml_name(const std::string& s, const YAML::Node& key) {
    std::string local = s;
    size_t colon = s.find(':');
    if (colon != std::string::npos) {
      std::string prefix = s.substr(0, colon);
      local = s.substr(colon + 1);
      if (std::find(prefixes_.begin(), prefixes_.end(), prefix) == prefixes_.end() &&
          prefix != "xml") {
        error(key, "namespace prefix '" + prefix + "' is not declared under 'namespaces:'");
        return false;
      }
    }
    bool ok =
        !local.empty() && (std::isalpha(static_cast<unsigned char>(local[0])) || local[0] == '_');
    for (char c : local)
      ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
                  static_cast<unsigned char>(c) >= 0x80);
    if (!ok) error(key, "'" + s + "' is not a valid XML name");
    return ok;
  }

  std::unique_ptr<ObjectNode> build_object(const YAML::Node& n, const std::string& rule) {
    auto obj = std::make_unique<ObjectNode>();
    obj->rule = rule;
    obj->omit_null = omit_null_;
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) {
        error(kv.first, "field names must be text");
        continue;
      }
      ObjectNode::Entry e;
      e.key = kv.first.Scalar();
      if (xml_) {
        std::stringstream ss(e.key);
        std::string seg;
        bool ok = true;
        while (std::getline(ss, seg, '/')) e.path.push_back(seg);
        if (e.path.empty()) ok = false;
        for (size_t i = 0; ok && i < e.path.size(); ++i) {
          const std::string& s = e.path[i];
          const bool last = i + 1 == e.path.size();
          if (s == "text()" || (!s.empty() && s[0] == '@')) {
            if (!last) {
              error(kv.first, "'" + s + "' must be the last part of '" + e.key + "'");
              ok = false;
            } else if (s[0] == '@') {
              ok = valid_xml_name(s.substr(1), kv.first);
            }
          } else {
            ok = valid_xml_name(s, kv.first);
          }
        }
        if (!ok) continue;
        const std::string& last = e.path.back();
        if ((last[0] == '@' || last == "text()") && !kv.second.IsScalar() && !kv.second.IsNull() &&
            !(kv.second.IsMap() && kv.second["when"])) {
          error(kv.second, "an attribute or text() takes a single value");
          continue;
        }
      } else {
        e.path.push_back(e.key);
      }
      e.node = build(kv.second, rule.empty() ? e.key : rule + "." + e.key);
      if (e.node) obj->entries.push_back(std::move(e));
    }
    return obj;
  }

  std::unique_ptr<TargetNode> build(const YAML::Node& n, const std::string& rule) {
    if (n.IsMap()) {
      bool has_when = static_cast<bool>(n["when"]), has_then = static_cast<bool>(n["then"]);
      if (n["for_each"]) {
        auto f = std::make_unique<ForEachNode>();
        f->rule = rule;
        for (const auto& kv : n) {
          std::string k = kv.first.Scalar();
          if (k != "for_each" && k != "value" && k != "when")
            error(kv.first, "unknown key '" + k + "' in a for_each block (for_each, when, value)");
        }
        if (!n["value"]) {
          error(n, "a for_each block needs 'value:' (what to build for each $item)");
          return nullptr;
        }
        f->source = compile_value(n["for_each"]);
        ++scope_.item_depth;
        if (n["when"]) f->filter = compile_value(n["when"]);
        f->value = build(n["value"], rule + "[]");
        --scope_.item_depth;
        if (!f->source || !f->value || (n["when"] && !f->filter)) return nullptr;
        return f;
      }
      if (has_when && has_then) {
        bool only = true;
        for (const auto& kv : n) {
          std::string k = kv.first.Scalar();
          only = only && (k == "when" || k == "then" || k == "else");
        }
        if (only) {
          auto w = std::make_unique<WhenNode>();
          w->rule = rule;
          w->cond = compile_value(n["when"]);
          w->then = build(n["then"], rule);
          if (n["else"]) w->otherwise = build(n["else"], rule);
          if (!w->cond || !w->then || (n["else"] && !w->otherwise)) return nullptr;
          return w;
        }
      }
      return build_object(n, rule);
    }
    if (n.IsSequence()) {
      auto a = std::make_unique<ArrayNode>();
      a->rule = rule;
      size_t i = 0;
      for (const auto& el : n) {
        auto item = build(el, rule + "[" + std::to_string(i++) + "]");
        if (item) a->items.push_back(std::move(item));
      }
      return a;
    }
    auto v = std::make_unique<ValueNode>();
    v->rule = rule;
    v->expr = compile_value(n);
    if (!v->expr) return nullptr;
    return v;
  }

  const std::string& text_;
  const std::string& file_;
  std::vector<Diagnostic>& diags_;
  CompileScope scope_;
  bool failed_ = false;
  bool xml_ = false;
  bool omit_null_ = false;
  std::vector<std::string> prefixes_;
};

}  // namespace
}  // namespace detail

CompiledMapping::CompiledMapping(std::unique_ptr<detail::MappingImpl> impl)
    : impl_(std::move(impl)) {}
CompiledMapping::~CompiledMapping() = default;
const std::string& CompiledMapping::name() const {
  return impl_->name;
}
const std::string& CompiledMapping::output_format() const {
  return impl_->format;
}
const std::vector<std::string>& CompiledMapping::personal_paths() const {
  return impl_->personal;
}
MapResult CompiledMapping::apply(const nlohmann::json& body, const nlohmann::json& meta) const {
  return impl_->apply(body, meta);
}

std::shared_ptr<const CompiledMapping> compile(const std::string& yaml_text,
                                               const std::string& file_name,
                                               std::shared_ptr<const TableSet> tables,
                                               std::vector<Diagnostic>& diags) {
  try {
    detail::Compiler c(yaml_text, file_name, diags);
    auto impl = c.run(std::move(tables));
    if (!impl) {
      if (diags.empty()) diags.push_back({file_name, 0, 0, "the mapping could not be compiled"});
      return nullptr;
    }
    return std::make_shared<const CompiledMapping>(std::move(impl));
  } catch (const std::exception& e) {
    diags.push_back({file_name, 0, 0, std::string("cannot compile: ") + e.what()});
    return nullptr;
  }
}

}  // namespace relais::mappings
