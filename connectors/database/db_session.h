#pragma once
// The database side of the `database` polling source: a connection to PostgreSQL, MySQL/MariaDB
// or SQLite that runs the admin's statements with named parameters and gives every value back
// as its kind plus the database's own text, so that nothing is lost on the way (a watermark read
// is bound back exactly as it was read; numbers stay numbers, timestamps keep their fraction).
//
// PostgreSQL goes through libpq and MySQL/MariaDB through MariaDB Connector/C, SQLite through
// Poco::Data: Poco 1.11's PostgreSQL connector drops the fraction of timestamps, cannot tell a
// timestamp from a timestamptz and reads NUMERIC as a double; its MySQL connector crashes the
// process on a LONGTEXT or JSON column and refuses TIMESTAMP ones (docs/dependencies.md).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace relais::db {

enum class CellKind {
  Null,
  Bool,
  Integer,  // text: the digits ("-12")
  Number,   // text: a decimal number ("1234.50", "1.5e-3") or NaN/Infinity
  Text,
  Json,         // text: a JSON document (PostgreSQL json/jsonb)
  Date,         // "YYYY-MM-DD"
  Time,         // "HH:MM:SS[.ffffff]"
  Timestamp,    // without time zone: "YYYY-MM-DD HH:MM:SS[.ffffff]"
  TimestampTz,  // an instant: "YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]" (no offset: UTC, the
                // session's zone — MariaDB writes none)
  Bytes,        // text: the raw bytes
};

struct Cell {
  CellKind kind = CellKind::Null;
  std::string text;
};

struct ResultSet {
  std::vector<std::string> columns;
  std::vector<std::vector<Cell>> rows;
};

// A statement written with named parameters (`:name`), parsed once. A parameter is a colon
// followed by a letter or underscore then letters, digits, underscores; it is not one inside
// '…' or "…" literals, -- and /* */ comments, nor PostgreSQL's `::type` casts. Immutable.
class SqlTemplate {
 public:
  // False (with why) on an unterminated literal or comment.
  static bool parse(const std::string& sql, SqlTemplate& out, std::string& error);
  // The parameter names in order of appearance (repeated as they appear).
  const std::vector<std::string>& names() const { return names_; }
  bool uses(const std::string& name) const;
  const std::string& text() const { return text_; }

 private:
  friend class Session;
  std::string text_;
  std::vector<std::string> pieces_;  // pieces_.size() == names_.size() + 1
  std::vector<std::string> names_;
};

// A value bound to a parameter: text (the database converts it to the column's type) or an
// integer (LIMIT needs one in MySQL), or a list (each element its own placeholder: `IN (:ids)`).
struct Param {
  std::string name;
  std::vector<std::string> values;  // one value, or the list
  bool integer = false;
  bool list = false;
};

struct Timeouts {
  int64_t connect_ms = 5000;
  int64_t query_ms = 30000;
};

// One open connection. Not thread-safe: one thread at a time. Owns its connection (closed by the
// destructor). Failures come back as a Status whose detail is the database's own words with the
// values it quotes masked (never the password, never a row's data).
class Session {
 public:
  virtual ~Session() = default;
  // Runs a SELECT; the rows in `out`.
  virtual Status query(const SqlTemplate& sql, const std::vector<Param>& params,
                       ResultSet& out) = 0;
  // Runs a statement that returns no rows; `affected` rows changed.
  virtual Status execute(const SqlTemplate& sql, const std::vector<Param>& params,
                         int64_t& affected) = 0;
  // Still usable after a failure (false: drop it and reconnect).
  virtual bool healthy() const = 0;

 protected:
  Session(std::string password, std::vector<std::string> quoted_ok)
      : password_(std::move(password)), quoted_ok_(std::move(quoted_ok)) {}
  // A failure with the database's own `words` masked (mask_error_text) and `suffix` (an error
  // code) after them; the session is unhealthy from then on.
  Status failed(int status, std::string title, const std::string& words,
                const std::string& suffix = "");
  bool healthy_ = true;

  enum class Placeholders {
    Numbered,  // PostgreSQL's $1, $2…
    Question,  // ?
    Inline,    // the values themselves: integers as digits, texts through `literal`
  };
  // The statement text with the driver's placeholders and the flat list of values bound in
  // order.
  static std::string render(const SqlTemplate& sql, const std::vector<Param>& params,
                            Placeholders style, std::vector<const Param*>& bound_params,
                            std::vector<std::string>& bound, Status& status,
                            const std::function<std::string(const std::string&)>& literal = {});

 private:
  std::string password_;
  std::vector<std::string> quoted_ok_;
};

// Connects (driver: "postgresql", "mysql", "sqlite"). `quoted_ok`: texts the driver's error
// messages may quote without masking (the admin's own statements: their identifiers and
// literals are not data). On failure `out` is empty and the status says why.
Status connect(const std::string& driver, const std::string& connection, const Timeouts& t,
               const std::vector<std::string>& quoted_ok, std::unique_ptr<Session>& out);

// A database's error text made safe to show: the password (when it appears) and every quoted
// value that is not part of `quoted_ok` are replaced by «…»; only the first line is kept.
std::string mask_error_text(const std::string& text, const std::string& password,
                            const std::vector<std::string>& quoted_ok);

}  // namespace relais::db
