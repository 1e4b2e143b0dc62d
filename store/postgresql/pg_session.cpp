// PgSession (store/postgresql/pg_session.h).

#include "store/postgresql/pg_session.h"

#include <stdexcept>

#include "store/postgresql/pg_stores.h"

namespace relais {

namespace {
constexpr const char* kLock = "SELECT pg_advisory_xact_lock($1::integer, hashtext($2))";
}  // namespace

PgSession::PgSession(std::string uri, std::string password, std::string what)
    : uri_(std::move(uri)),
      password_(std::move(password)),
      what_(std::move(what) + " " + pg::masked_uri(uri_)) {
  locked([&]() { check_other_store_schema(connection(), what_); });
}

pg::Connection& PgSession::connection() {
  if (c_ && c_->ok()) return *c_;
  if (in_transaction_) throw std::runtime_error(what_ + ": the connection was lost");
  c_.reset();
  must(pg::Connection::open(uri_, 5, c_, password_));
  return *c_;
}

void PgSession::must(const Status& s) const {
  if (!s.ok) throw std::runtime_error(what_ + ": " + s.detail);
}

pg::Result PgSession::query(const char* sql, const pg::Params& params) {
  pg::Result r;
  must(connection().run(sql, params, r));
  return r;
}

pg::Result PgSession::query_text(const std::string& sql, const pg::Params& params) {
  pg::Result r;
  must(connection().run_text(sql, params, r));
  return r;
}

void PgSession::transaction(int space, const std::string& key, const std::function<bool()>& fn) {
  pg::Connection& c = connection();
  must(c.exec("BEGIN"));
  in_transaction_ = true;
  try {
    query(kLock, pg::Params().num(space).ref(key));
    bool commit = fn();
    in_transaction_ = false;
    must(c.exec(commit ? "COMMIT" : "ROLLBACK"));
  } catch (...) {
    in_transaction_ = false;
    if (c_) c_->exec("ROLLBACK");
    throw;
  }
}

}  // namespace relais
