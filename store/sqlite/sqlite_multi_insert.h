#pragma once
// MultiRowInsert: the rows of a group's accepts inserted by statements of several rows each
// (`INSERT … VALUES (…), (…), …`), prepared once per size class, instead of one statement per
// row (store/sqlite/sqlite_store.cpp's writer: messages, deliveries, idempotency keys).

#include <sqlite3.h>

#include <array>
#include <cstddef>
#include <memory>
#include <string>

#include "store/sqlite/sqlite_raw.h"

namespace relais {

// The SQL of an insert of `rows` rows: `head` is "INSERT INTO t(a, b, …) VALUES" and each row
// is `columns` placeholders.
std::string multi_row_insert_sql(const std::string& head, int columns, size_t rows);

// Responsibility: inserts n rows of one table with as few statements as the size classes allow
// (64, 8, then single rows): SQLite runs one program per statement, opening the table's and its
// indexes' cursors each time, so a statement of 64 rows costs far less than 64 statements.
// Thread-safety: none (the writer thread only, like RawStatement). Ownership: owns its
// statements; the connection outlives it. Bound texts must stay alive until run() returns.
class MultiRowInsert {
 public:
  static constexpr std::array<size_t, 3> kSizes = {64, 8, 1};

  MultiRowInsert(sqlite3* db, const std::string& head, int columns) : columns_(columns) {
    for (size_t i = 0; i < kSizes.size(); ++i) {
      std::string sql = multi_row_insert_sql(head, columns, kSizes[i]);
      st_[i] = std::make_unique<RawStatement>(db, sql.c_str());
    }
  }

  // Inserts rows 0..n-1: bind_row(statement, first, row) binds row `row` at parameters first,
  // first + 1, … (first + columns - 1). Throws what the statements throw.
  template <class BindRow>
  void run(size_t n, BindRow&& bind_row) {
    size_t row = 0;
    for (size_t i = 0; i < kSizes.size(); ++i) {
      const size_t size = kSizes[i];
      while (n - row >= size) {
        RawStatement& st = *st_[i];
        for (size_t k = 0; k < size; ++k) {
          bind_row(st, static_cast<int>(k) * columns_ + 1, row + k);
        }
        st.run();
        row += size;
      }
    }
  }

 private:
  int columns_;
  std::array<std::unique_ptr<RawStatement>, kSizes.size()> st_;
};

inline std::string multi_row_insert_sql(const std::string& head, int columns, size_t rows) {
  std::string one = "(";
  for (int c = 0; c < columns; ++c) one += c == 0 ? "?" : ",?";
  one += ")";
  std::string sql = head;
  for (size_t r = 0; r < rows; ++r) {
    if (r > 0) sql += ",";
    sql += one;
  }
  return sql;
}

}  // namespace relais
