// Lookup tables: CSV (first column = key; a row whose key is "*" is the default) and YAML
// ({default: ..., entries: {key: value}} or a plain key: value map).
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "mappings/expr.h"
#include "mappings/yaml_json.h"

namespace relais::mappings {

using detail::json;
using detail::Table;

namespace {

// Splits CSV text into rows of fields (RFC 4180 quoting), recording each row's line.
bool parse_csv(const std::string& text, char sep, std::vector<std::vector<std::string>>& rows,
               std::vector<int>& lines, int& err_line) {
  size_t i = 0;
  if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;
  int line = 1;
  while (i < text.size()) {
    std::vector<std::string> row;
    int row_line = line;
    std::string field;
    bool in_quotes = false, quoted = false;
    for (;;) {
      if (i >= text.size()) {
        if (in_quotes) {
          err_line = row_line;
          return false;
        }
        row.push_back(field);
        break;
      }
      char c = text[i++];
      if (in_quotes) {
        if (c == '"') {
          if (i < text.size() && text[i] == '"') {
            field.push_back('"');
            ++i;
          } else {
            in_quotes = false;
          }
        } else {
          if (c == '\n') ++line;
          field.push_back(c);
        }
      } else if (c == '"' && field.empty() && !quoted) {
        in_quotes = quoted = true;
      } else if (c == sep) {
        row.push_back(field);
        field.clear();
        quoted = false;
      } else if (c == '\r') {
        continue;
      } else if (c == '\n') {
        ++line;
        row.push_back(field);
        break;
      } else {
        field.push_back(c);
      }
    }
    bool blank = row.size() == 1 && row[0].empty();
    if (!blank) {
      rows.push_back(std::move(row));
      lines.push_back(row_line);
    }
  }
  return true;
}

std::unique_ptr<Table> load_csv(const std::string& name, const std::string& text,
                                const std::string& file, std::vector<Diagnostic>& diags) {
  size_t eol = text.find('\n');
  std::string header = text.substr(0, eol);
  char sep =
      header.find(';') != std::string::npos && header.find(',') == std::string::npos ? ';' : ',';
  std::vector<std::vector<std::string>> rows;
  std::vector<int> lines;
  int err_line = 0;
  if (!parse_csv(text, sep, rows, lines, err_line)) {
    diags.push_back({file, err_line, 1, "quoted field is not closed"});
    return nullptr;
  }
  if (rows.empty() || rows[0].size() < 2) {
    diags.push_back({file, 1, 1,
                     "a CSV table needs a header line with at least two columns "
                     "(key, value...)"});
    return nullptr;
  }
  auto t = std::make_unique<Table>();
  t->name = name;
  const auto& head = rows[0];
  const bool record = head.size() > 2;
  if (record) t->columns.assign(head.begin() + 1, head.end());
  bool ok = true;
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto& row = rows[r];
    if (row.size() != head.size()) {
      diags.push_back({file, lines[r], 1,
                       "row has " + std::to_string(row.size()) + " fields, the header has " +
                           std::to_string(head.size())});
      ok = false;
      continue;
    }
    json value;
    if (record) {
      value = json::object();
      for (size_t c = 1; c < row.size(); ++c)
        value[head[c]] = row[c].empty() ? json() : json(row[c]);
    } else {
      value = row[1].empty() ? json() : json(row[1]);
    }
    if (row[0] == "*") {
      t->has_default = true;
      t->default_value = std::move(value);
    } else if (!t->rows.emplace(row[0], std::move(value)).second) {
      diags.push_back({file, lines[r], 1, "duplicate key '" + row[0] + "'"});
      ok = false;
    }
  }
  return ok ? std::move(t) : nullptr;
}

std::unique_ptr<Table> load_yaml(const std::string& name, const std::string& text,
                                 const std::string& file, std::vector<Diagnostic>& diags) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    diags.push_back({file, e.mark.line + 1, e.mark.column + 1, e.msg});
    return nullptr;
  }
  if (!root.IsMap()) {
    diags.push_back(
        {file, 1, 1, "a YAML table must be a map (entries: {key: value}, default: ...)"});
    return nullptr;
  }
  auto t = std::make_unique<Table>();
  t->name = name;
  // (a yaml-cpp Node must not be reassigned: assignment writes through to the referenced node)
  const YAML::Node entries = root["entries"] ? root["entries"] : root;
  if (root["entries"]) {
    for (const auto& kv : root) {
      std::string k = kv.first.as<std::string>();
      if (k != "entries" && k != "default" && k != "description") {
        diags.push_back({file, kv.first.Mark().line + 1, kv.first.Mark().column + 1,
                         "unknown key '" + k + "' (expected entries, default, description)"});
        return nullptr;
      }
    }
    if (root["default"]) {
      t->has_default = true;
      t->default_value = yaml_to_json(root["default"]);
    }
    if (!entries.IsMap()) {
      diags.push_back({file, entries.Mark().line + 1, entries.Mark().column + 1,
                       "'entries' must be a map of key: value"});
      return nullptr;
    }
  }
  std::vector<std::string> cols;
  bool all_objects = true;
  for (const auto& kv : entries) {
    std::string key = kv.first.as<std::string>();
    json v = yaml_to_json(kv.second);
    if (v.is_object()) {
      for (auto it = v.begin(); it != v.end(); ++it)
        if (std::find(cols.begin(), cols.end(), it.key()) == cols.end()) cols.push_back(it.key());
    } else {
      all_objects = false;
    }
    if (!t->rows.emplace(key, std::move(v)).second) {
      diags.push_back({file, kv.first.Mark().line + 1, kv.first.Mark().column + 1,
                       "duplicate key '" + key + "'"});
      return nullptr;
    }
  }
  if (all_objects && !t->rows.empty()) t->columns = std::move(cols);
  return t;
}

}  // namespace

struct TableLoader {
  static void add(TableSet& set, const std::string& name, const std::string& format,
                  const std::string& text, const std::string& file,
                  std::vector<Diagnostic>& diags) {
    std::unique_ptr<Table> t;
    if (format == "csv") {
      t = load_csv(name, text, file, diags);
    } else if (format == "yaml" || format == "yml") {
      t = load_yaml(name, text, file, diags);
    } else {
      diags.push_back({file, 0, 0, "unknown table format '" + format + "' (csv or yaml)"});
    }
    if (!t) return;
    if (set.tables_.count(name)) {
      diags.push_back({file, 0, 0, "table '" + name + "' is defined twice"});
      return;
    }
    set.tables_.emplace(name, std::move(t));
  }
};

TableSet::TableSet() = default;
TableSet::~TableSet() = default;

std::shared_ptr<const TableSet> TableSet::empty() {
  return std::make_shared<TableSet>();
}

std::shared_ptr<const TableSet> TableSet::load_dir(const std::string& dir,
                                                   std::vector<Diagnostic>& diags) {
  auto set = std::make_shared<TableSet>();
  try {
    std::vector<std::filesystem::path> files;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& p : files) {
      std::string ext = p.extension().string();
      if (ext != ".csv" && ext != ".yaml" && ext != ".yml") continue;
      std::ifstream in(p, std::ios::binary);
      std::ostringstream ss;
      ss << in.rdbuf();
      TableLoader::add(*set, p.stem().string(), ext.substr(1), ss.str(), p.string(), diags);
    }
  } catch (const std::exception& e) {
    diags.push_back({dir, 0, 0, std::string("cannot read the table directory: ") + e.what()});
  }
  return set;
}

std::shared_ptr<const TableSet> TableSet::from_documents(
    const std::map<std::string, std::pair<std::string, std::string>>& docs,
    std::vector<Diagnostic>& diags) {
  auto set = std::make_shared<TableSet>();
  for (const auto& [name, doc] : docs) {
    try {
      TableLoader::add(*set, name, doc.first, doc.second, name + "." + doc.first, diags);
    } catch (const std::exception& e) {
      diags.push_back({name + "." + doc.first, 0, 0, e.what()});
    }
  }
  return set;
}

bool TableSet::has(const std::string& table) const {
  return tables_.count(table) > 0;
}

std::vector<std::string> TableSet::names() const {
  std::vector<std::string> out;
  for (const auto& [n, t] : tables_) out.push_back(n);
  return out;
}

std::vector<std::pair<std::string, json>> TableSet::rows(const std::string& table) const {
  std::vector<std::pair<std::string, json>> out;
  if (const Table* t = this->table(table)) out.assign(t->rows.begin(), t->rows.end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

const json* TableSet::find(const std::string& table, const std::string& key) const {
  const Table* t = this->table(table);
  return t ? t->find(key) : nullptr;
}

const detail::Table* TableSet::table(const std::string& name) const {
  auto it = tables_.find(name);
  return it == tables_.end() ? nullptr : it->second.get();
}

}  // namespace relais::mappings
