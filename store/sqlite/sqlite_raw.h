#pragma once
// RawStatement: a statement compiled once on a connection's raw handle (the SQLite store's
// writer thread: store/sqlite/sqlite_store.cpp, store/sqlite/sqlite_retention.cpp).

#include <sqlite3.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace relais {

// A statement of the writer's hot path (also the reads of `relais store migrate`,
// store/store_migration.cpp), compiled once on the connection's raw handle and
// reused: Poco::Data 1.11 compiles a Statement again at every execute (measured: 1,000
// executions, 1,006 sqlite3_prepare_v2 calls), which made SQL parsing a large share of the
// single writer's time. Bound texts must stay alive until run() returns (SQLITE_STATIC).
// Not thread-safe: the writer thread only. Owns its sqlite3_stmt.
class RawStatement {
 public:
  RawStatement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st_, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string("cannot prepare: ") + sqlite3_errmsg(db) + " (" + sql +
                               ")");
    }
  }
  ~RawStatement() { sqlite3_finalize(st_); }
  RawStatement(const RawStatement&) = delete;
  RawStatement& operator=(const RawStatement&) = delete;

  RawStatement& bind(int i, int64_t v) {
    check(sqlite3_bind_int64(st_, i, v));
    return *this;
  }
  RawStatement& bind(int i, const std::string& v) {
    check(sqlite3_bind_text(st_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC));
    return *this;
  }
  RawStatement& bind_null(int i) {
    check(sqlite3_bind_null(st_, i));
    return *this;
  }
  // Runs a statement that returns no row; returns the rows it changed.
  int64_t run() {
    int rc = sqlite3_step(st_);
    sqlite3_reset(st_);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) fail(rc);
    return sqlite3_changes64(db_);
  }
  // Steps a query: true while there is a row (read it with int64()/text()); reset() after.
  bool row() {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    sqlite3_reset(st_);
    if (rc != SQLITE_DONE) fail(rc);
    return false;
  }
  int64_t int64(int col) const { return sqlite3_column_int64(st_, col); }
  double real(int col) const { return sqlite3_column_double(st_, col); }
  // SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB or SQLITE_NULL (SQLite's columns
  // take any kind of value whatever their declared type).
  int type(int col) const { return sqlite3_column_type(st_, col); }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(st_, col);
    return p ? std::string(reinterpret_cast<const char*>(p),
                           static_cast<size_t>(sqlite3_column_bytes(st_, col)))
             : std::string();
  }
  void reset() { sqlite3_reset(st_); }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail(rc);
  }
  [[noreturn]] void fail(int rc) {
    throw std::runtime_error(std::string(sqlite3_errstr(rc)) + ": " + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

}  // namespace relais
