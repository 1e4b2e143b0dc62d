#include "mappings/expr.h"

#include <cmath>
#include <cstdio>

namespace relais::mappings::detail {

// ---------------------------------------------------------------------------------------------
// Value helpers

bool truthy(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return false;
    case json::value_t::boolean:
      return v.get<bool>();
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return v.get<double>() != 0.0;
    case json::value_t::string:
      return !v.get_ref<const std::string&>().empty();
    case json::value_t::array:
    case json::value_t::object:
      return !v.empty();
    default:
      return false;
  }
}

bool is_empty(const json& v) {
  if (v.is_null()) return true;
  if (v.is_string()) return v.get_ref<const std::string&>().empty();
  if (v.is_array() || v.is_object()) return v.empty();
  return false;
}

void append_text(std::string& out, const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return;
    case json::value_t::string:
      out += v.get_ref<const std::string&>();
      return;
    case json::value_t::boolean:
      out += v.get<bool>() ? "true" : "false";
      return;
    case json::value_t::number_integer:
      out += std::to_string(v.get<int64_t>());
      return;
    case json::value_t::number_unsigned:
      out += std::to_string(v.get<uint64_t>());
      return;
    case json::value_t::number_float: {
      double d = v.get<double>();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) {
        out += std::to_string(static_cast<int64_t>(d));
      } else {
        out += v.dump();
      }
      return;
    }
    default:
      out += v.dump();
      return;
  }
}

std::string to_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  std::string s;
  append_text(s, v);
  return s;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Nodes

class PathExpr : public Expr {
 public:
  enum class Root { Body, Meta, Item, Var, Base };
  struct Step {
    enum class Kind { Key, Index, Star } kind;
    std::string key;
    long long index = 0;
  };
  Root root = Root::Body;
  size_t var = 0;
  ExprPtr base;
  std::vector<Step> steps;
  std::vector<bool> star_after;  // star_after[i]: a Star step exists at index >= i

  json eval(EvalContext& ctx) const override {
    switch (root) {
      case Root::Body:
        return walk(&ctx.body, 0);
      case Root::Meta:
        return walk(&ctx.meta, 0);
      case Root::Item:
        return ctx.items.empty() ? json() : walk(ctx.items.back(), 0);
      case Root::Var:
        return walk(&ctx.var(var), 0);
      case Root::Base: {
        json b = base->eval(ctx);
        return walk(&b, 0);
      }
    }
    return json();
  }

  json walk(const json* cur, size_t i) const {
    for (; i < steps.size(); ++i) {
      const Step& s = steps[i];
      switch (s.kind) {
        case Step::Kind::Key: {
          if (!cur->is_object()) return json();
          auto it = cur->find(s.key);
          if (it == cur->end()) return json();
          cur = &*it;
          break;
        }
        case Step::Kind::Index: {
          if (!cur->is_array()) return json();
          long long n = static_cast<long long>(cur->size());
          long long k = s.index < 0 ? n + s.index : s.index;
          if (k < 0 || k >= n) return json();
          cur = &(*cur)[static_cast<size_t>(k)];
          break;
        }
        case Step::Kind::Star: {
          json out = json::array();
          if (!cur->is_array() && !cur->is_object()) return out;
          const bool flatten = i + 1 < steps.size() && star_after[i + 1];
          for (const json& el : *cur) {
            json v = walk(&el, i + 1);
            if (v.is_null()) continue;
            if (flatten && v.is_array()) {
              for (json& x : v) out.push_back(std::move(x));
            } else {
              out.push_back(std::move(v));
            }
          }
          return out;
        }
      }
    }
    return *cur;
  }
};

class TemplateExpr : public Expr {
 public:
  struct Part {
    std::string literal;
    ExprPtr expr;
  };
  std::vector<Part> parts;
  size_t reserve = 0;
  json eval(EvalContext& ctx) const override {
    std::string out;
    out.reserve(reserve + 32);
    for (const Part& p : parts) {
      if (p.expr) {
        append_text(out, p.expr->eval(ctx));
      } else {
        out += p.literal;
      }
    }
    return json(std::move(out));
  }
};

class ArrayExpr : public Expr {
 public:
  std::vector<ExprPtr> items;
  json eval(EvalContext& ctx) const override {
    json out = json::array();
    for (const auto& e : items) out.push_back(e->eval(ctx));
    return out;
  }
};

class NotExpr : public Expr {
 public:
  ExprPtr operand;
  json eval(EvalContext& ctx) const override { return json(!truthy(operand->eval(ctx))); }
};

class NegExpr : public Expr {
 public:
  ExprPtr operand;
  json eval(EvalContext& ctx) const override {
    json v = operand->eval(ctx);
    if (v.is_null()) return v;
    if (v.is_number_integer()) return json(-v.get<int64_t>());
    if (v.is_number()) return json(-v.get<double>());
    ctx.fail("'-' needs a number, got '" + to_text(v) + "'", operand->text);
    return json();
  }
};

class LogicExpr : public Expr {
 public:
  bool is_and = true;
  ExprPtr lhs, rhs;
  json eval(EvalContext& ctx) const override {
    bool l = truthy(lhs->eval(ctx));
    if (is_and ? !l : l) return json(l);
    return json(truthy(rhs->eval(ctx)));
  }
};

enum class Op { Eq, Ne, Lt, Le, Gt, Ge, Add, Sub, Mul, Div, Mod };

bool values_equal(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  return a == b;
}

class BinaryExpr : public Expr {
 public:
  Op op;
  ExprPtr lhs, rhs;
  json eval(EvalContext& ctx) const override {
    json a = lhs->eval(ctx);
    json b = rhs->eval(ctx);
    switch (op) {
      case Op::Eq:
        return json(values_equal(a, b));
      case Op::Ne:
        return json(!values_equal(a, b));
      case Op::Lt:
      case Op::Le:
      case Op::Gt:
      case Op::Ge: {
        int c;
        if (a.is_number() && b.is_number()) {
          double x = a.get<double>(), y = b.get<double>();
          c = x < y ? -1 : x > y ? 1 : 0;
        } else if (a.is_string() && b.is_string()) {
          int r = a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
          c = r < 0 ? -1 : r > 0 ? 1 : 0;
        } else {
          return json(false);
        }
        switch (op) {
          case Op::Lt:
            return json(c < 0);
          case Op::Le:
            return json(c <= 0);
          case Op::Gt:
            return json(c > 0);
          default:
            return json(c >= 0);
        }
      }
      case Op::Add:
        if (a.is_number() && b.is_number()) {
          if (a.is_number_integer() && b.is_number_integer())
            return json(a.get<int64_t>() + b.get<int64_t>());
          return json(a.get<double>() + b.get<double>());
        } else {
          std::string s = to_text(a);
          append_text(s, b);
          return json(std::move(s));
        }
      default:
        break;
    }
    if (a.is_null() || b.is_null()) return json();
    if (!a.is_number() || !b.is_number()) {
      ctx.fail("arithmetic needs numbers, got '" + to_text(a) + "' and '" + to_text(b) + "'", text);
      return json();
    }
    const bool ints = a.is_number_integer() && b.is_number_integer();
    switch (op) {
      case Op::Sub:
        return ints ? json(a.get<int64_t>() - b.get<int64_t>())
                    : json(a.get<double>() - b.get<double>());
      case Op::Mul:
        return ints ? json(a.get<int64_t>() * b.get<int64_t>())
                    : json(a.get<double>() * b.get<double>());
      case Op::Div:
        if (b.get<double>() == 0.0) {
          ctx.fail("division by zero", text);
          return json();
        }
        if (ints && a.get<int64_t>() % b.get<int64_t>() == 0)
          return json(a.get<int64_t>() / b.get<int64_t>());
        return json(a.get<double>() / b.get<double>());
      case Op::Mod:
        if (b.get<double>() == 0.0) {
          ctx.fail("division by zero", text);
          return json();
        }
        if (ints) return json(a.get<int64_t>() % b.get<int64_t>());
        return json(std::fmod(a.get<double>(), b.get<double>()));
      default:
        return json();
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Parser

const char* const kMetaFields[] = {"id", "source", "type", "correlation_key", "received_at"};

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_ident_char(char c) {
  return is_ident_start(c) || (c >= '0' && c <= '9');
}

class Parser {
 public:
  Parser(std::string_view src, const CompileScope& scope) : src_(src), scope_(scope) {}

  ExprPtr parse_all() {
    skip_ws();
    if (pos_ >= src_.size()) throw ExprError(0, "empty expression");
    ExprPtr e = parse_or();
    skip_ws();
    if (pos_ < src_.size()) {
      if (src_[pos_] == ')') throw ExprError(pos_, "unexpected ')': no '(' to close");
      throw ExprError(pos_, "unexpected '" + std::string(token_preview()) +
                                "' after a complete expression (missing operator or comma?)");
    }
    return e;
  }

 private:
  std::string_view token_preview() const {
    size_t e = pos_ + 1;
    if (is_ident_char(src_[pos_]))
      while (e < src_.size() && is_ident_char(src_[e])) ++e;
    return src_.substr(pos_, e - pos_);
  }

  void skip_ws() {
    while (pos_ < src_.size() &&
           (src_[pos_] == ' ' || src_[pos_] == '\t' || src_[pos_] == '\n' || src_[pos_] == '\r'))
      ++pos_;
  }
  bool peek(std::string_view s) {
    skip_ws();
    return src_.substr(pos_, s.size()) == s;
  }
  bool accept(std::string_view s) {
    if (!peek(s)) return false;
    pos_ += s.size();
    return true;
  }
  bool accept_word(std::string_view w) {
    skip_ws();
    if (src_.substr(pos_, w.size()) != w) return false;
    if (pos_ + w.size() < src_.size() && is_ident_char(src_[pos_ + w.size()])) return false;
    pos_ += w.size();
    return true;
  }
  void expect(char c, const char* what) {
    skip_ws();
    if (pos_ >= src_.size() || src_[pos_] != c) {
      if (pos_ >= src_.size())
        throw ExprError(pos_, std::string("expected ") + what + " but the expression ended");
      throw ExprError(pos_, std::string("expected ") + what + " but found '" +
                                std::string(token_preview()) + "'");
    }
    ++pos_;
  }
  template <class T>
  std::unique_ptr<T> make(size_t start) {
    auto n = std::make_unique<T>();
    n->offset = start;
    return n;
  }
  void finish(Expr& e, size_t start) {
    size_t end = pos_;
    while (end > start && (src_[end - 1] == ' ' || src_[end - 1] == '\t')) --end;
    e.text = std::string(src_.substr(start, end - start));
  }

  ExprPtr parse_or() {
    skip_ws();
    size_t start = pos_;
    ExprPtr l = parse_and();
    while (accept_word("or") || accept("||")) {
      auto n = make<LogicExpr>(start);
      n->is_and = false;
      n->lhs = std::move(l);
      n->rhs = parse_and();
      finish(*n, start);
      l = std::move(n);
    }
    return l;
  }
  ExprPtr parse_and() {
    skip_ws();
    size_t start = pos_;
    ExprPtr l = parse_not();
    while (accept_word("and") || accept("&&")) {
      auto n = make<LogicExpr>(start);
      n->is_and = true;
      n->lhs = std::move(l);
      n->rhs = parse_not();
      finish(*n, start);
      l = std::move(n);
    }
    return l;
  }
  ExprPtr parse_not() {
    skip_ws();
    size_t start = pos_;
    if (accept_word("not") || (peek("!") && !peek("!=") && accept("!"))) {
      auto n = make<NotExpr>(start);
      n->operand = parse_not();
      finish(*n, start);
      return n;
    }
    return parse_cmp();
  }
  ExprPtr parse_cmp() {
    skip_ws();
    size_t start = pos_;
    ExprPtr l = parse_add();
    Op op;
    if (accept("=="))
      op = Op::Eq;
    else if (accept("!=") || accept("<>"))
      op = Op::Ne;
    else if (accept("<="))
      op = Op::Le;
    else if (accept(">="))
      op = Op::Ge;
    else if (accept("<"))
      op = Op::Lt;
    else if (accept(">"))
      op = Op::Gt;
    else if (accept("="))
      op = Op::Eq;
    else
      return l;
    auto n = make<BinaryExpr>(start);
    n->op = op;
    n->lhs = std::move(l);
    n->rhs = parse_add();
    finish(*n, start);
    skip_ws();
    if (pos_ < src_.size() && (src_[pos_] == '=' || src_[pos_] == '<' || src_[pos_] == '>'))
      throw ExprError(pos_, "comparisons cannot be chained: use 'and'");
    return n;
  }
  ExprPtr parse_add() {
    skip_ws();
    size_t start = pos_;
    ExprPtr l = parse_mul();
    while (true) {
      Op op;
      if (accept("+"))
        op = Op::Add;
      else if (accept("-"))
        op = Op::Sub;
      else
        return l;
      auto n = make<BinaryExpr>(start);
      n->op = op;
      n->lhs = std::move(l);
      n->rhs = parse_mul();
      finish(*n, start);
      l = std::move(n);
    }
  }
  ExprPtr parse_mul() {
    skip_ws();
    size_t start = pos_;
    ExprPtr l = parse_unary();
    while (true) {
      Op op;
      if (accept("*"))
        op = Op::Mul;
      else if (accept("/"))
        op = Op::Div;
      else if (accept("%"))
        op = Op::Mod;
      else
        return l;
      auto n = make<BinaryExpr>(start);
      n->op = op;
      n->lhs = std::move(l);
      n->rhs = parse_unary();
      finish(*n, start);
      l = std::move(n);
    }
  }
  ExprPtr parse_unary() {
    skip_ws();
    size_t start = pos_;
    if (accept("-")) {
      ExprPtr operand = parse_unary();
      if (const json* c = operand->constant(); c && c->is_number()) {
        auto lit = std::make_unique<Literal>(c->is_number_integer() ? json(-c->get<int64_t>())
                                                                    : json(-c->get<double>()));
        lit->offset = start;
        finish(*lit, start);
        return lit;
      }
      auto n = make<NegExpr>(start);
      n->operand = std::move(operand);
      finish(*n, start);
      return n;
    }
    return parse_postfix();
  }

  // .name, ['name'], [0], [*] after a primary.
  bool parse_steps(std::vector<PathExpr::Step>& steps) {
    bool any = false;
    while (pos_ < src_.size()) {
      if (src_[pos_] == '.' && pos_ + 1 < src_.size() && is_ident_start(src_[pos_ + 1])) {
        ++pos_;
        size_t b = pos_;
        while (pos_ < src_.size() && is_ident_char(src_[pos_])) ++pos_;
        steps.push_back({PathExpr::Step::Kind::Key, std::string(src_.substr(b, pos_ - b)), 0});
      } else if (src_[pos_] == '.') {
        throw ExprError(pos_ + 1,
                        "expected a field name after '.' (use ['name'] for names with "
                        "spaces or dashes)");
      } else if (src_[pos_] == '[') {
        size_t open = pos_;
        ++pos_;
        skip_ws();
        if (pos_ < src_.size() && src_[pos_] == '*') {
          ++pos_;
          steps.push_back({PathExpr::Step::Kind::Star, "", 0});
        } else if (pos_ < src_.size() && (src_[pos_] == '\'' || src_[pos_] == '"')) {
          steps.push_back({PathExpr::Step::Kind::Key, parse_string_raw(), 0});
        } else {
          size_t b = pos_;
          if (pos_ < src_.size() && src_[pos_] == '-') ++pos_;
          while (pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '9') ++pos_;
          if (pos_ == b || (pos_ == b + 1 && src_[b] == '-'))
            throw ExprError(b, "expected an index, '*' or a quoted name inside [ ]");
          steps.push_back(
              {PathExpr::Step::Kind::Index, "", std::stoll(std::string(src_.substr(b, pos_ - b)))});
        }
        skip_ws();
        if (pos_ >= src_.size() || src_[pos_] != ']')
          throw ExprError(open, "'[' is not closed by ']'");
        ++pos_;
      } else {
        break;
      }
      any = true;
    }
    return any;
  }

  static void finish_path(PathExpr& p) {
    p.star_after.assign(p.steps.size() + 1, false);
    for (size_t i = p.steps.size(); i-- > 0;)
      p.star_after[i] = p.star_after[i + 1] || p.steps[i].kind == PathExpr::Step::Kind::Star;
  }

  ExprPtr parse_postfix() {
    skip_ws();
    size_t start = pos_;
    ExprPtr base = parse_primary();
    if (dynamic_cast<PathExpr*>(base.get())) return base;  // paths consume their own steps
    std::vector<PathExpr::Step> steps;
    if (!parse_steps(steps)) return base;
    auto p = make<PathExpr>(start);
    p->root = PathExpr::Root::Base;
    p->base = std::move(base);
    p->steps = std::move(steps);
    finish_path(*p);
    finish(*p, start);
    return p;
  }

  std::string parse_string_raw() {
    char q = src_[pos_];
    size_t open = pos_;
    ++pos_;
    std::string out;
    while (true) {
      if (pos_ >= src_.size())
        throw ExprError(open, std::string("text started with ") + q + " is not closed");
      char c = src_[pos_++];
      if (c == q) {
        if (pos_ < src_.size() && src_[pos_] == q) {  // doubled quote: 'l''heure'
          out.push_back(q);
          ++pos_;
          continue;
        }
        break;
      }
      if (c == '\\' && pos_ < src_.size()) {
        char e = src_[pos_++];
        switch (e) {
          case 'n':
            out.push_back('\n');
            break;
          case 't':
            out.push_back('\t');
            break;
          default:
            out.push_back(e);
        }
        continue;
      }
      out.push_back(c);
    }
    return out;
  }

  ExprPtr parse_primary() {
    skip_ws();
    size_t start = pos_;
    if (pos_ >= src_.size()) throw ExprError(pos_, "the expression ended too early");
    char c = src_[pos_];
    if (c == '(') {
      ++pos_;
      ExprPtr e = parse_or();
      expect(')', "')'");
      return e;
    }
    if (c == '\'' || c == '"') {
      std::string s = parse_string_raw();
      ExprPtr e;
      if (s.find('{') != std::string::npos || s.find('}') != std::string::npos) {
        try {
          e = parse_template(s, scope_);
        } catch (const ExprError& err) {
          throw ExprError(start + 1 + err.offset, err.what());
        }
      } else {
        e = std::make_unique<Literal>(json(std::move(s)));
      }
      e->offset = start;
      finish(*e, start);
      return e;
    }
    if ((c >= '0' && c <= '9') ||
        (c == '.' && pos_ + 1 < src_.size() && src_[pos_ + 1] >= '0' && src_[pos_ + 1] <= '9')) {
      size_t b = pos_;
      bool is_float = false;
      while (pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '9') ++pos_;
      if (pos_ < src_.size() && src_[pos_] == '.' && pos_ + 1 < src_.size() &&
          src_[pos_ + 1] >= '0' && src_[pos_ + 1] <= '9') {
        is_float = true;
        ++pos_;
        while (pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '9') ++pos_;
      }
      if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
        size_t save = pos_;
        ++pos_;
        if (pos_ < src_.size() && (src_[pos_] == '+' || src_[pos_] == '-')) ++pos_;
        if (pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '9') {
          is_float = true;
          while (pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '9') ++pos_;
        } else {
          pos_ = save;
        }
      }
      if (pos_ < src_.size() && is_ident_start(src_[pos_]))
        throw ExprError(b, "'" + std::string(token_preview_from(b)) +
                               "' is neither a number nor a name (put text in quotes)");
      std::string num(src_.substr(b, pos_ - b));
      json v;
      if (is_float) {
        v = std::stod(num);
      } else {
        try {
          v = static_cast<int64_t>(std::stoll(num));
        } catch (const std::exception&) {
          v = std::stod(num);
        }
      }
      auto e = std::make_unique<Literal>(std::move(v));
      e->offset = start;
      finish(*e, start);
      return e;
    }
    if (c == '[') {
      ++pos_;
      auto a = make<ArrayExpr>(start);
      skip_ws();
      if (!accept("]")) {
        do {
          a->items.push_back(parse_or());
        } while (accept(","));
        expect(']', "',' or ']'");
      }
      finish(*a, start);
      return a;
    }
    if (c == '$') return parse_path(start);
    if (is_ident_start(c)) {
      size_t b = pos_;
      while (pos_ < src_.size() && is_ident_char(src_[pos_])) ++pos_;
      std::string name(src_.substr(b, pos_ - b));
      if (name == "true" || name == "false" || name == "null") {
        auto e = std::make_unique<Literal>(name == "null" ? json() : json(name == "true"));
        e->offset = start;
        finish(*e, start);
        return e;
      }
      if (name == "and" || name == "or")
        throw ExprError(b, "'" + name + "' needs a value on its left");
      size_t after_name = pos_;
      skip_ws();
      if (pos_ < src_.size() && src_[pos_] == '(') return parse_call(name, start, after_name);
      pos_ = after_name;
      auto it = scope_.vars.find(name);
      if (it == scope_.vars.end()) {
        if (find_function(name))
          throw ExprError(b, "'" + name + "' is a function: write " + name + "(...)");
        throw ExprError(b, "unknown name '" + name +
                               "': paths start with '$.', text goes in quotes, variables must "
                               "be declared under 'vars:' before they are used");
      }
      auto p = make<PathExpr>(start);
      p->root = PathExpr::Root::Var;
      p->var = it->second;
      parse_steps(p->steps);
      finish_path(*p);
      finish(*p, start);
      return p;
    }
    throw ExprError(pos_, "unexpected '" + std::string(token_preview()) + "'");
  }

  std::string_view token_preview_from(size_t b) const {
    size_t e = b;
    while (e < src_.size() && is_ident_char(src_[e])) ++e;
    return src_.substr(b, e - b);
  }

  ExprPtr parse_path(size_t start) {
    ++pos_;  // '$'
    auto p = make<PathExpr>(start);
    if (src_.substr(pos_, 4) == "meta" &&
        (pos_ + 4 >= src_.size() || !is_ident_char(src_[pos_ + 4]))) {
      pos_ += 4;
      p->root = PathExpr::Root::Meta;
      size_t field_pos = pos_ + 1;
      parse_steps(p->steps);
      if (!p->steps.empty()) {
        const auto& s = p->steps.front();
        bool ok = false;
        for (const char* f : kMetaFields)
          ok = ok || (s.kind == PathExpr::Step::Kind::Key && s.key == f);
        if (!ok)
          throw ExprError(field_pos, "unknown message metadata '" + s.key +
                                         "' (known: id, source, type, correlation_key, "
                                         "received_at)");
      }
    } else if (src_.substr(pos_, 4) == "item" &&
               (pos_ + 4 >= src_.size() || !is_ident_char(src_[pos_ + 4]))) {
      if (scope_.item_depth == 0)
        throw ExprError(start, "'$item' is only available inside a 'for_each' block");
      pos_ += 4;
      p->root = PathExpr::Root::Item;
      parse_steps(p->steps);
    } else {
      if (pos_ < src_.size() && is_ident_start(src_[pos_]))
        throw ExprError(start, "paths into the message start with '$.' (write $." +
                                   std::string(token_preview_from(pos_)) + ")");
      p->root = PathExpr::Root::Body;
      parse_steps(p->steps);
    }
    finish_path(*p);
    finish(*p, start);
    return p;
  }

  ExprPtr parse_call(const std::string& name, size_t start, size_t name_end) {
    const FunctionSpec* spec = find_function(name);
    if (!spec) {
      std::string best;
      size_t best_d = 3;
      for (const auto& f : all_functions()) {
        size_t d = edit_distance(name, f.name);
        if (d < best_d) {
          best_d = d;
          best = f.name;
        }
      }
      throw ExprError(start,
                      "unknown function '" + name + "'" +
                          (best.empty() ? std::string() : " (did you mean '" + best + "'?)"));
    }
    auto call = make<CallNode>(start);
    call->spec = spec;
    expect('(', "'('");
    skip_ws();
    if (!accept(")")) {
      do {
        skip_ws();
        call->arg_offsets.push_back(pos_);
        call->args.push_back(parse_or());
      } while (accept(","));
      expect(')', "',' or ')'");
    }
    finish(*call, start);
    const int n = static_cast<int>(call->args.size());
    if (n < spec->min_args || (spec->max_args >= 0 && n > spec->max_args)) {
      std::string expected;
      if (spec->max_args < 0)
        expected = "at least " + std::to_string(spec->min_args);
      else if (spec->min_args == spec->max_args)
        expected = std::to_string(spec->min_args);
      else
        expected = std::to_string(spec->min_args) + " to " + std::to_string(spec->max_args);
      throw ExprError(start, "function '" + name + "' takes " + expected + " argument" +
                                 (expected == "1" ? "" : "s") + ", got " + std::to_string(n) +
                                 " (usage: " + spec->signature + ")");
    }
    (void)name_end;
    if (spec->check) spec->check(*call, scope_);
    return call;
  }

  std::string_view src_;
  const CompileScope& scope_;
  size_t pos_ = 0;
};

}  // namespace

ExprPtr parse_expression(std::string_view src, const CompileScope& scope) {
  Parser p(src, scope);
  return p.parse_all();
}

ExprPtr parse_template(std::string_view src, const CompileScope& scope) {
  auto t = std::make_unique<TemplateExpr>();
  std::string lit;
  size_t i = 0;
  while (i < src.size()) {
    char c = src[i];
    if (c == '{' && i + 1 < src.size() && src[i + 1] == '{') {
      lit.push_back('{');
      i += 2;
      continue;
    }
    if (c == '}' && i + 1 < src.size() && src[i + 1] == '}') {
      lit.push_back('}');
      i += 2;
      continue;
    }
    if (c == '}') throw ExprError(i, "'}' without '{' (write '}}' for a literal brace)");
    if (c != '{') {
      lit.push_back(c);
      ++i;
      continue;
    }
    // find the matching '}' (skipping quoted text and nested brackets)
    size_t j = i + 1;
    int depth = 0;
    char quote = 0;
    for (; j < src.size(); ++j) {
      char d = src[j];
      if (quote) {
        if (d == quote) quote = 0;
        continue;
      }
      if (d == '\'' || d == '"')
        quote = d;
      else if (d == '(' || d == '[' || d == '{')
        ++depth;
      else if (d == ')' || d == ']')
        --depth;
      else if (d == '}') {
        if (depth == 0) break;
        --depth;
      }
    }
    if (j >= src.size())
      throw ExprError(i, "'{' is not closed by '}' (write '{{' for a literal brace)");
    if (!lit.empty()) {
      t->reserve += lit.size();
      t->parts.push_back({std::move(lit), nullptr});
      lit.clear();
    }
    std::string_view inner = src.substr(i + 1, j - i - 1);
    ExprPtr e;
    try {
      e = parse_expression(inner, scope);
    } catch (const ExprError& err) {
      throw ExprError(i + 1 + err.offset, err.what());
    }
    t->parts.push_back({std::string(), std::move(e)});
    i = j + 1;
  }
  if (t->parts.empty()) {
    auto l = std::make_unique<Literal>(json(std::move(lit)));
    l->text = std::string(src);
    return l;
  }
  if (!lit.empty()) {
    t->reserve += lit.size();
    t->parts.push_back({std::move(lit), nullptr});
  }
  t->text = std::string(src);
  return t;
}

}  // namespace relais::mappings::detail
