#include "connectors/file/record_reader.h"

#include <Poco/Latin1Encoding.h>
#include <Poco/TextConverter.h>
#include <Poco/UTF8Encoding.h>
#include <Poco/Windows1252Encoding.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include <pugixml.hpp>

namespace relais::file {
namespace {

std::string lower_ascii(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Strict UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF).
bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n = 0;
    unsigned min = 0;
    unsigned cp = 0;
    if ((c & 0xE0) == 0xC0) {
      n = 1, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, min = 0x10000, cp = c & 0x07;
    } else {
      return false;
    }
    for (size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

std::string path_name(const JsonPath& p) {
  const std::string& t = p.text();
  return t.rfind("$.", 0) == 0 ? t.substr(2) : t;
}

std::string trim(std::string s) {
  auto sp = [](unsigned char c) { return c == ' ' || c == '\t'; };
  while (!s.empty() && sp(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t b = 0;
  while (b < s.size() && sp(static_cast<unsigned char>(s[b]))) ++b;
  return s.substr(b);
}

// One record split from the start of `buf`. NeedMore: the record may go on past `buf` (only
// when !at_end). Record: `used` bytes consumed (its line break included), `breaks` line
// breaks in them, `blank` for an empty line.
enum class Split { Record, NeedMore };

Split split_record(std::string_view buf, bool at_end, char delim, char quote, CsvRow& row,
                   size_t& used, int64_t& breaks, bool& blank) {
  row.fields.clear();
  row.error.clear();
  breaks = 0;
  std::string field;
  bool quoted = false;
  bool field_start = true;
  bool any_quote = false;
  for (size_t i = 0; i < buf.size(); ++i) {
    char c = buf[i];
    if (quoted) {
      if (c == quote) {
        if (i + 1 < buf.size()) {
          if (buf[i + 1] == quote) {
            field += quote;
            ++i;
          } else {
            quoted = false;
          }
        } else if (at_end) {
          quoted = false;
        } else {
          return Split::NeedMore;  // a doubled quote may follow
        }
      } else {
        if (c == '\n') ++breaks;
        field += c;
      }
      continue;
    }
    if (c == quote && field_start) {
      quoted = true;
      any_quote = true;
      field_start = false;
      continue;
    }
    if (c == delim) {
      row.fields.push_back(std::move(field));
      field.clear();
      field_start = true;
      continue;
    }
    if (c == '\r') {
      if (i + 1 < buf.size() && buf[i + 1] == '\n') continue;
      if (i + 1 == buf.size() && !at_end) return Split::NeedMore;
    }
    if (c == '\n') {
      blank = row.fields.empty() && field.empty() && !any_quote;
      row.fields.push_back(std::move(field));
      used = i + 1;
      ++breaks;
      return Split::Record;
    }
    field += c;
    field_start = false;
  }
  if (!at_end) return Split::NeedMore;
  if (quoted) row.error = "guillemet non fermé avant la fin du fichier";
  blank = row.fields.empty() && field.empty() && !any_quote;
  row.fields.push_back(std::move(field));
  used = buf.size();
  return Split::Record;
}

}  // namespace

bool parse_encoding(const std::string& text, Encoding& out) {
  std::string t = lower_ascii(text);
  if (t == "utf-8" || t == "utf8") {
    out = Encoding::Utf8;
  } else if (t == "windows-1252" || t == "cp1252") {
    out = Encoding::Windows1252;
  } else if (t == "iso-8859-1" || t == "latin1" || t == "latin-1") {
    out = Encoding::Latin1;
  } else {
    return false;
  }
  return true;
}

const char* to_string(Encoding e) {
  switch (e) {
    case Encoding::Utf8:
      return "utf-8";
    case Encoding::Windows1252:
      return "windows-1252";
    case Encoding::Latin1:
      return "iso-8859-1";
  }
  return "?";
}

bool to_utf8(std::string_view in, Encoding enc, std::string& out) {
  out.clear();
  if (enc == Encoding::Utf8 || std::all_of(in.begin(), in.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x80;
      })) {
    out.assign(in);
    return valid_utf8(in);
  }
  Poco::UTF8Encoding utf8;
  int errors = 0;
  if (enc == Encoding::Windows1252) {
    Poco::Windows1252Encoding cp1252;
    // Poco maps the five bytes Windows-1252 leaves undefined (81, 8D, 8F, 90, 9D) to U+FFFE
    // or -1: refused here, like any broken text.
    for (char c : in) {
      auto b = static_cast<unsigned char>(c);
      if (b == 0x81 || b == 0x8D || b == 0x8F || b == 0x90 || b == 0x9D) return false;
    }
    Poco::TextConverter conv(cp1252, utf8);
    errors = conv.convert(in.data(), int(in.size()), out);
  } else {
    Poco::Latin1Encoding latin1;
    Poco::TextConverter conv(latin1, utf8);
    errors = conv.convert(in.data(), int(in.size()), out);
  }
  return errors == 0;
}

JsonPath message_path(const std::string& text) {
  std::string t = trim(text);
  if (t.rfind("$", 0) != 0) t = "$." + t;
  JsonPath p;
  std::string error;
  if (t == "$" || t == "$." || !JsonPath::parse(t, p, error)) {
    throw std::invalid_argument("« " + text + " » n'est pas un chemin du message" +
                                (error.empty() ? "" : " (" + error + ")"));
  }
  return p;
}

bool RecordShape::complete(nlohmann::json& doc, std::string& reason) const {
  for (const auto& [path, value] : constants) {
    if (!path.set(doc, value)) {
      reason = "champ " + path_name(path) + " : chemin impossible dans le message";
      return false;
    }
  }
  for (const auto& path : required) {
    const nlohmann::json* v = path.find(doc);
    if (v == nullptr || v->is_null() || (v->is_string() && trim(v->get<std::string>()).empty())) {
      reason = "champ obligatoire absent : " + path_name(path);
      return false;
    }
  }
  return true;
}

Status read_csv(const ReadAt& read, int64_t size, const CsvFormat& format, int64_t& offset,
                int64_t& line, size_t max_records, std::vector<CsvRow>& rows) {
  std::string buf;
  int64_t buf_offset = offset;  // file offset of buf[0]
  size_t pos = 0;
  bool at_end = offset >= size;
  auto end_of_buf = [&] { return buf_offset + int64_t(buf.size()); };
  auto fill = [&]() -> Status {
    if (pos > 0) {  // what was taken is dropped: only the current record is kept
      buf.erase(0, pos);
      buf_offset += int64_t(pos);
      pos = 0;
    }
    size_t want = size_t(std::min<int64_t>(int64_t(format.chunk), size - end_of_buf()));
    std::string piece;
    Status s = read(end_of_buf(), want, piece);
    if (!s.ok) return s;
    if (piece.empty()) {
      return Status::failure(409, "fichier raccourci pendant sa lecture",
                             "le fichier est plus court que lorsqu'il a été repéré");
    }
    buf += piece;
    at_end = end_of_buf() >= size;
    return Status::success();
  };
  while (rows.size() < max_records) {
    if (pos == buf.size()) {
      if (at_end) break;
      Status s = fill();
      if (!s.ok) return s;
      continue;
    }
    CsvRow row;
    size_t used = 0;
    int64_t breaks = 0;
    bool blank = false;
    std::string_view rest(buf.data() + pos, buf.size() - pos);
    if (split_record(rest, at_end, format.delimiter, format.quote, row, used, breaks, blank) ==
        Split::NeedMore) {
      if (rest.size() <= format.max_record) {
        Status s = fill();
        if (!s.ok) return s;
        continue;
      }
      // Too long: unreadable, and skipped up to the end of the physical line it reached.
      row.fields.clear();
      row.line = line;
      row.error =
          "enregistrement trop long (plus de " + std::to_string(format.max_record) + " octets)";
      size_t scan = pos + format.max_record;
      for (;;) {
        size_t nl = buf.find('\n', scan);
        if (nl != std::string::npos) {
          line += std::count(buf.begin() + long(pos), buf.begin() + long(nl) + 1, '\n');
          pos = nl + 1;
          break;
        }
        line += std::count(buf.begin() + long(pos), buf.end(), '\n');
        pos = buf.size();
        if (at_end) break;
        Status s = fill();
        if (!s.ok) return s;
        scan = 0;
      }
      rows.push_back(std::move(row));
      continue;
    }
    row.line = line;
    line += breaks;
    pos += used;
    if (!blank) rows.push_back(std::move(row));
  }
  offset = buf_offset + int64_t(pos);
  return Status::success();
}

bool CsvMapper::set_header(const CsvRow& header, std::string& reason) {
  targets_.clear();
  flat_names_.clear();
  expected_fields_ = 0;
  const CsvFormat& f = *format_;
  if (!f.header) {
    for (const auto& [column, path] : f.columns) {
      targets_.emplace_back(size_t(std::stoul(column)) - 1, &path);
    }
    return true;
  }
  if (!header.error.empty()) {
    reason = "en-tête illisible : " + header.error;
    return false;
  }
  std::vector<std::string> names;
  for (const auto& raw : header.fields) {
    std::string name;
    if (!to_utf8(raw, f.encoding, name)) {
      reason = std::string("en-tête illisible : caractères invalides pour l'encodage ") +
               to_string(f.encoding);
      return false;
    }
    if (names.empty() && name.rfind("\xEF\xBB\xBF", 0) == 0) name.erase(0, 3);  // UTF-8 BOM
    names.push_back(trim(name));
  }
  expected_fields_ = names.size();
  if (f.columns.empty()) {
    flat_names_ = names;
    return true;
  }
  for (const auto& [column, path] : f.columns) {
    auto it = std::find(names.begin(), names.end(), column);
    if (it == names.end()) {
      reason = "colonne « " + column + " » absente de l'en-tête";
      return false;
    }
    targets_.emplace_back(size_t(it - names.begin()), &path);
  }
  return true;
}

void CsvMapper::map(const CsvRow& row, std::string& body, std::string& unreadable) const {
  body.clear();
  unreadable.clear();
  if (!row.error.empty()) {
    unreadable = row.error;
    return;
  }
  const CsvFormat& f = *format_;
  if (expected_fields_ != 0 && row.fields.size() != expected_fields_) {
    unreadable = "nombre de champs incorrect : " + std::to_string(row.fields.size()) +
                 " au lieu de " + std::to_string(expected_fields_);
    return;
  }
  nlohmann::json doc = nlohmann::json::object();
  std::string value;
  auto convert = [&](size_t index) {
    if (to_utf8(row.fields[index], f.encoding, value)) return true;
    unreadable = "colonne " + std::to_string(index + 1) +
                 " : caractères invalides pour l'encodage " + to_string(f.encoding);
    return false;
  };
  for (size_t i = 0; i < flat_names_.size(); ++i) {
    if (!convert(i)) return;
    doc[flat_names_[i]] = value;
  }
  for (const auto& [index, path] : targets_) {
    if (index >= row.fields.size()) {
      unreadable = "nombre de champs insuffisant : " + std::to_string(row.fields.size()) +
                   ", la colonne " + std::to_string(index + 1) + " est attendue";
      return;
    }
    if (!convert(index)) return;
    if (!path->set(doc, value)) {
      unreadable = "champ " + path_name(*path) + " : chemin impossible dans le message";
      return;
    }
  }
  if (!f.shape.complete(doc, unreadable)) return;
  body = doc.dump();
}

// ---- XML --------------------------------------------------------------------------------------

struct XmlRecords::Impl {
  pugi::xml_document doc;
  pugi::xpath_node_set records;
  std::vector<std::pair<const JsonPath*, pugi::xpath_query>> queries;
  const RecordShape* shape = nullptr;
};

namespace {

// "g:aide" → "aide"; xmlns declarations dropped: XPaths are written with local names.
void strip_namespaces(pugi::xml_node node) {
  for (pugi::xml_node n = node; n;) {
    if (n.type() == pugi::node_element) {
      std::string name = n.name();
      auto colon = name.find(':');
      if (colon != std::string::npos) n.set_name(name.substr(colon + 1).c_str());
      for (pugi::xml_attribute a = n.first_attribute(); a;) {
        pugi::xml_attribute next = a.next_attribute();
        std::string an = a.name();
        if (an == "xmlns" || an.rfind("xmlns:", 0) == 0) {
          n.remove_attribute(a);
        } else if (auto c = an.find(':'); c != std::string::npos) {
          a.set_name(an.substr(c + 1).c_str());
        }
        a = next;
      }
    }
    // Depth-first without recursion (a deep document cannot exhaust the stack).
    if (n.first_child()) {
      n = n.first_child();
      continue;
    }
    while (n && n != node && !n.next_sibling()) n = n.parent();
    if (!n || n == node) break;
    n = n.next_sibling();
  }
}

void compile(const std::string& xpath, pugi::xpath_query& out) {
  try {
    out = pugi::xpath_query(xpath.c_str());
  } catch (const pugi::xpath_exception& e) {
    throw std::invalid_argument("XPath « " + xpath + " » invalide : " + e.what());
  }
}

}  // namespace

std::string check_xpaths(const XmlFormat& format) {
  try {
    pugi::xpath_query q;
    compile(format.record, q);
    for (const auto& [path, xpath] : format.fields) compile(xpath, q);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

XmlRecords::XmlRecords(const XmlFormat& format, const std::string& content)
    : impl_(std::make_unique<Impl>()) {
  impl_->shape = &format.shape;
  pugi::xpath_query record;
  compile(format.record, record);
  for (const auto& [path, xpath] : format.fields) {
    impl_->queries.emplace_back(&path, pugi::xpath_query());
    compile(xpath, impl_->queries.back().second);
  }
  pugi::xml_parse_result r = impl_->doc.load_buffer(content.data(), content.size(),
                                                    pugi::parse_default, pugi::encoding_utf8);
  if (!r) {
    auto at = size_t(std::max<ptrdiff_t>(0, r.offset));
    auto line =
        1 + std::count(content.begin(), content.begin() + long(std::min(at, content.size())), '\n');
    error_ = "XML mal formé ligne " + std::to_string(line) + " : " + r.description();
    return;
  }
  strip_namespaces(impl_->doc);
  try {
    impl_->records = record.evaluate_node_set(impl_->doc);
  } catch (const pugi::xpath_exception& e) {
    error_ = std::string("sélection des enregistrements impossible : ") + e.what();
  }
}

XmlRecords::~XmlRecords() = default;

size_t XmlRecords::count() const {
  return impl_->records.size();
}

void XmlRecords::map(size_t index, std::string& body, std::string& unreadable) const {
  body.clear();
  unreadable.clear();
  pugi::xpath_node rec = impl_->records[index];
  nlohmann::json doc = nlohmann::json::object();
  for (const auto& [path, query] : impl_->queries) {
    if (query.return_type() == pugi::xpath_type_node_set && query.evaluate_node_set(rec).empty()) {
      continue;  // absent: left out (a required field then makes the record unreadable)
    }
    std::string value = query.evaluate_string(rec);
    if (!valid_utf8(value)) {
      unreadable = "champ " + path_name(*path) + " : caractères invalides pour l'encodage";
      return;
    }
    if (!path->set(doc, value)) {
      unreadable = "champ " + path_name(*path) + " : chemin impossible dans le message";
      return;
    }
  }
  if (!impl_->shape->complete(doc, unreadable)) return;
  body = doc.dump();
}

}  // namespace relais::file
