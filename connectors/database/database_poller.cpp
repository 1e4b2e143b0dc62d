#include "connectors/database/database_poller.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "connectors/database/db_session.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/thread_name.h"
#include "mappings/tz.h"

namespace relais {
namespace {

using F = FieldType;
using db::Cell;
using db::CellKind;

const ConfigSpec& spec() {
  static const ConfigSpec s{
      "database poll",
      {
          {"driver", F::String, "", true, "the database's kind", {"postgresql", "mysql", "sqlite"}},
          {"connection", F::Secret, "", true,
           "connection string: libpq's (`host=… port=… dbname=… user=… password=…` or a "
           "postgresql:// URI), for MariaDB `host=…;port=…;db=…;user=…;password=…` (also "
           "`socket`, `character-set`, `ssl`, `ssl-ca`), or the SQLite file's path; give the "
           "password as ${ENV} or @file:PATH"},
          {"mode",
           F::String,
           "watermark",
           false,
           "watermark: rows after the last watermark tuple read; outbox: rows not yet done, "
           "marked done by mark_done after the commit",
           {"watermark", "outbox"}},
          {"query", F::String, "", true,
           "the SELECT, with named parameters: `:limit` (the batch size, required) and `:<column>` "
           "for each "
           "watermark column (the last tuple read, or `start`). Watermark mode: it must select "
           "the tuples strictly greater, in their order, e.g. `WHERE (date_modification, id) > "
           "(:date_modification, :id) ORDER BY date_modification, id LIMIT :limit`. Outbox: the "
           "rows not done, ORDER BY the id; add `AND id > :id` (with `start`) to skip the rows "
           "still being marked done"},
          {"watermark", F::StringList, "", true,
           "the columns whose tuple orders the rows (e.g. [date_modification, id]); the last "
           "one must make the tuple unique. Outbox: the increasing id"},
          {"start", F::StringList, "", false,
           "the tuple bound the first time (no checkpoint yet), one text per watermark column, "
           "e.g. [\"1970-01-01 00:00:00\", \"0\"]; required when the query names watermark "
           "parameters"},
          {"batch",
           F::Int,
           "1000",
           false,
           "rows per poll at most (`:limit`)",
           {},
           nullptr,
           1,
           100000},
          {"id_column", F::String, "id", false,
           "outbox: the column whose values `:ids` of mark_done receives"},
          {"mark_done", F::String, "", false,
           "outbox: the statement run after the commit, `:ids` being the rows' ids, e.g. "
           "`UPDATE relais_outbox SET traite_le = now() WHERE id IN (:ids)` (or a DELETE)"},
          {"body_column", F::String, "", false,
           "a column holding the message's JSON text (e.g. the outbox's payload); without it the "
           "body is an object of the row's columns"},
          {"time_zone", F::String, "Europe/Paris", false,
           "the zone of timestamps without time zone (their offset in the message)"},
          {"connect_timeout", F::Duration, "5s", false, "time allowed to connect"},
          {"query_timeout", F::Duration, "30s", false,
           "time allowed to one statement (PostgreSQL statement_timeout, MariaDB "
           "max_statement_time, SQLite busy timeout); a connection silent for this plus 10 s "
           "is cut"},
      }};
  return s;
}

// The configuration, read and checked once.
struct Settings {
  std::string driver;
  std::string connection;
  bool outbox = false;
  db::SqlTemplate query;
  db::SqlTemplate mark_done;
  std::vector<std::string> watermark;
  std::vector<std::string> start;
  int64_t batch = 1000;
  std::string id_column;
  std::string body_column;
  std::shared_ptr<const mappings::TimeZone> zone;
  db::Timeouts timeouts;
};

// Reads the settings; appends what is wrong to `problems` (key, message).
Settings read_settings(const ConfigView& c,
                       std::vector<std::pair<std::string, std::string>>& problems) {
  Settings s;
  s.driver = c.str("driver");
  s.connection = c.str("connection");
  s.outbox = c.str("mode") == "outbox";
  s.watermark = c.strings("watermark");
  s.start = c.strings("start");
  s.batch = c.integer("batch");
  s.id_column = c.str("id_column");
  s.body_column = c.str("body_column");
  s.timeouts.connect_ms = c.duration_ms("connect_timeout");
  s.timeouts.query_ms = c.duration_ms("query_timeout");
  std::string err;
  if (!db::SqlTemplate::parse(c.str("query"), s.query, err)) problems.emplace_back("query", err);
  if (s.watermark.empty()) problems.emplace_back("watermark", "name at least one column");
  bool names_watermark = false;
  for (const auto& n : s.query.names()) {
    bool known = n == "limit";
    for (const auto& w : s.watermark) {
      if (n == w) known = names_watermark = true;
    }
    if (!known) {
      problems.emplace_back("query", ":" + n +
                                         " is neither :limit nor a watermark column (the "
                                         "parameters are :limit and :<watermark column>)");
    }
  }
  if (!s.query.uses("limit")) {
    problems.emplace_back("query",
                          "the query must use :limit (LIMIT :limit): a poll reads one "
                          "batch at most");
  }
  if (!s.outbox && !names_watermark) {
    problems.emplace_back("query",
                          "watermark mode: the query must select the rows after the watermark "
                          "(e.g. WHERE (date_modification, id) > (:date_modification, :id))");
  }
  if (names_watermark && s.start.size() != s.watermark.size()) {
    problems.emplace_back("start", "give one starting value per watermark column (" +
                                       std::to_string(s.watermark.size()) + ")");
  }
  std::string done = c.str("mark_done");
  if (s.outbox) {
    if (done.empty()) {
      problems.emplace_back("mark_done", "outbox mode: give the statement that marks rows done");
    } else if (!db::SqlTemplate::parse(done, s.mark_done, err)) {
      problems.emplace_back("mark_done", err);
    } else {
      for (const auto& n : s.mark_done.names()) {
        if (n != "ids") problems.emplace_back("mark_done", ":" + n + " is unknown (use :ids)");
      }
      if (!s.mark_done.uses("ids")) problems.emplace_back("mark_done", "use :ids (IN (:ids))");
    }
  } else if (!done.empty()) {
    problems.emplace_back("mark_done", "only in outbox mode");
  }
  s.zone = mappings::TimeZone::get(c.str("time_zone"));
  if (!s.zone) problems.emplace_back("time_zone", "unknown time zone " + c.str("time_zone"));
  return s;
}

// ---------------------------------------------------------------------------------------------
// Values

bool numeric_kind(CellKind k) {
  return k == CellKind::Integer || k == CellKind::Number;
}

// Compares two watermark values read from the same column: numbers by value, the rest by
// their text (ISO dates and times order as text). <0, 0, >0.
int compare_value(const std::string& a, const std::string& b, CellKind kind) {
  if (numeric_kind(kind)) {
    long double x = std::strtold(a.c_str(), nullptr);
    long double y = std::strtold(b.c_str(), nullptr);
    if (kind == CellKind::Integer && a.size() < 19 && b.size() < 19) {
      long long i = std::atoll(a.c_str()), j = std::atoll(b.c_str());
      return i < j ? -1 : (i > j ? 1 : 0);
    }
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  return a.compare(b) < 0 ? -1 : (a == b ? 0 : 1);
}

int compare_tuple(const std::vector<std::string>& a, const std::vector<std::string>& b,
                  const std::vector<CellKind>& kinds) {
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    int c = compare_value(a[i], b[i], kinds[i]);
    if (c != 0) return c;
  }
  return 0;
}

bool valid_utf8(const std::string& s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t extra = c < 0x80             ? 0
                   : (c & 0xE0) == 0xC0 ? 1
                   : (c & 0xF0) == 0xE0 ? 2
                   : (c & 0xF8) == 0xF0 ? 3
                                        : 9;
    if (extra == 9 || i + extra >= n) return false;
    for (size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += extra + 1;
  }
  return true;
}

// "YYYY-MM-DD HH:MM:SS[.f]" → seconds since the epoch as if UTC; false when not that shape.
bool wall_seconds(const std::string& t, int64_t& out) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (t.size() < 19 ||
      std::sscanf(t.c_str(), "%4d-%2d-%2d %2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) != 6) {
    return false;
  }
  out = mappings::days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
        h * 3600 + mi * 60 + s;
  return true;
}

std::string offset_text(int64_t seconds) {
  char b[16];
  int64_t a = seconds < 0 ? -seconds : seconds;
  std::snprintf(b, sizeof b, "%c%02d:%02d", seconds < 0 ? '-' : '+', static_cast<int>(a / 3600),
                static_cast<int>((a % 3600) / 60));
  return b;
}

// ISO-8601 with an offset. A timestamp without zone takes the configured zone's offset at that
// wall-clock time; an instant keeps the offset the database gave (UTC: the session's zone).
std::string iso_timestamp(const Cell& c, const mappings::TimeZone& zone) {
  std::string t = c.text;
  if (t.size() < 19 || t[10] != ' ') return t;  // infinity, BC dates: as the database wrote them
  t[10] = 'T';
  if (c.kind == CellKind::Timestamp) {
    int64_t local = 0;
    if (!wall_seconds(c.text, local)) return t;
    int64_t utc = zone.local_to_utc(local);
    return t + offset_text(local - utc);
  }
  // "+00", "+05:30", "-03" → "+HH:MM"; none (MariaDB's TIMESTAMP, in the session's UTC) → +00:00
  size_t sign = t.find_last_of("+-");
  if (sign == std::string::npos || sign < 19) return t + "+00:00";
  std::string off = t.substr(sign);
  if (off.size() == 3) off += ":00";
  return t.substr(0, sign) + off;
}

nlohmann::json json_value(const Cell& c, const mappings::TimeZone& zone) {
  switch (c.kind) {
    case CellKind::Null:
      return nullptr;
    case CellKind::Bool:
      return c.text == "true";
    case CellKind::Integer: {
      errno = 0;
      char* end = nullptr;
      if (!c.text.empty() && c.text[0] == '-') {
        long long v = std::strtoll(c.text.c_str(), &end, 10);
        if (errno == 0 && *end == '\0') return v;
      } else {
        unsigned long long v = std::strtoull(c.text.c_str(), &end, 10);
        if (errno == 0 && *end == '\0') return v;
      }
      return c.text;
    }
    case CellKind::Number: {
      char* end = nullptr;
      double v = std::strtod(c.text.c_str(), &end);
      if (*end == '\0' && std::isfinite(v)) return v;
      return c.text;  // NaN, Infinity: as text
    }
    case CellKind::Json: {
      auto v = nlohmann::json::parse(c.text, nullptr, false);
      return v.is_discarded() ? nlohmann::json(c.text) : v;
    }
    case CellKind::Timestamp:
    case CellKind::TimestampTz:
      return iso_timestamp(c, zone);
    case CellKind::Bytes:
      return valid_utf8(c.text) ? c.text : base64_encode(c.text);
    default:
      return c.text;
  }
}

// ---------------------------------------------------------------------------------------------
// The poller

struct BatchContext {
  std::vector<std::string> ids;  // outbox: the rows to mark done after the commit
  // Outbox: rows found at or below the checkpoint the poll was given (committed by an earlier
  // batch; relais died or a marking failed before they were marked). That checkpoint may be
  // the one of a batch still being committed (pipelining): they are marked done only once this
  // batch is stored, which means every batch before it is too.
  std::vector<std::string> already_done;
};

std::string checkpoint_text(const std::vector<std::string>& tuple) {
  return nlohmann::json{{"watermark", tuple}}.dump();
}

bool parse_checkpoint(const std::string& text, size_t size, std::vector<std::string>& out) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("watermark") || !j["watermark"].is_array() ||
      j["watermark"].size() != size) {
    return false;
  }
  out.clear();
  for (const auto& v : j["watermark"]) {
    if (!v.is_string()) return false;
    out.push_back(v.get<std::string>());
  }
  return true;
}

// One connection of the poller, opened on first use and reopened after a failure. Not
// thread-safe: one per thread.
class Connection {
 public:
  Connection(const Settings& s, const std::vector<std::string>& quoted_ok)
      : s_(s), quoted_ok_(quoted_ok) {}

  // Runs `f` on the open session (opened first if needed). A session kept from an earlier call
  // may have died with a database restart since: when `f` then finds the connection lost, it
  // runs once more on a new one. Any failure drops the session (the next call reconnects).
  template <class F>
  Status run(F&& f) {
    for (int attempt = 0;; ++attempt) {
      bool reused = session_ != nullptr && session_->healthy();
      if (!reused) {
        session_.reset();
        Status st = db::connect(s_.driver, s_.connection, s_.timeouts, quoted_ok_, session_);
        if (!st.ok) return st;
      }
      Status st = f(*session_);
      if (st.ok) return st;
      session_.reset();
      if (!(reused && attempt == 0 && st.http_status == 503)) return st;
    }
  }
  void drop() { session_.reset(); }

  // Runs mark_done over `ids`, in slices so that a statement never carries more values than a
  // driver takes.
  Status mark_done(const std::vector<std::string>& ids) {
    if (ids.empty()) return Status::success();
    return run([&](db::Session& session) {
      const size_t slice = 1000;
      for (size_t from = 0; from < ids.size(); from += slice) {
        db::Param p{"ids", {}, false, true};
        p.values.assign(
            ids.begin() + static_cast<std::ptrdiff_t>(from),
            ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), from + slice)));
        int64_t affected = 0;
        Status st = session.execute(s_.mark_done, {p}, affected);
        if (!st.ok) return st;
      }
      return Status::success();
    });
  }

 private:
  const Settings& s_;
  const std::vector<std::string>& quoted_ok_;
  std::unique_ptr<db::Session> session_;
};

// Marks outbox rows done on a thread and connection of its own, so that the next poll reads
// while the previous batch is being marked (marking costs as much as the hub's commit: an UPDATE
// of a batch's rows and the database's own commit). A marking that fails is reported once by
// take_failure(); its rows stay undone in the database and are found again by the poller's
// recovery poll. Thread-safety: add() and take_failure() from the poller's thread; the worker
// thread is owned and joined by the destructor after the queued rows are marked.
class DoneMarker {
 public:
  DoneMarker(const Settings& s, const std::vector<std::string>& quoted_ok)
      : connection_(s, quoted_ok), thread_([this] {
          set_thread_name("db-done");
          loop();
        }) {}
  ~DoneMarker() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void add(const std::vector<std::string>& ids) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queued_.insert(queued_.end(), ids.begin(), ids.end());
    }
    cv_.notify_all();
  }
  // The first marking failure since the last call, if any.
  std::optional<Status> take_failure() {
    std::lock_guard<std::mutex> lock(mu_);
    std::optional<Status> f = std::move(failure_);
    failure_.reset();
    return f;
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stopping_ || !queued_.empty(); });
      if (queued_.empty()) return;  // stopping, nothing left
      std::vector<std::string> ids;
      ids.swap(queued_);
      lock.unlock();
      Status st;
      try {
        st = connection_.mark_done(ids);
      } catch (const std::exception& e) {
        st = Status::failure(500, "erreur interne de la source", e.what());
      }
      lock.lock();
      if (!st.ok && !failure_) failure_ = st;
    }
  }

  Connection connection_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> queued_;
  std::optional<Status> failure_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the rest is built
};

// One configured database source. poll() and committed() from the hub's thread of this source,
// on one connection; in outbox mode the rows are marked done by a DoneMarker (a second
// connection and thread). probe() from any thread, on a connection of its own. Owned by the Hub.
// Pipelined (core/poller.h): poll() may be given the checkpoint of a batch not stored yet, so
// that nothing is written to the database in poll(); every marking waits for committed().
//
// Outbox reading: the rows at or below the checkpoint are committed already (once the batch
// that found them is stored); found again they are only marked done, never a second message.
// When the query names the watermark (`AND id > :id`), polls bind the
// checkpoint and so skip the rows still being marked; a recovery poll (the first one of the
// process, and after a marking failed) binds `start` instead, to find the rows a crash or a
// failure left undone below the checkpoint, and stays in recovery while it finds some.
class DatabasePoller final : public Poller {
 public:
  DatabasePoller(std::string name, Settings s)
      : name_(std::move(name)),
        s_(std::move(s)),
        quoted_ok_{s_.query.text(), s_.mark_done.text()},
        connection_(s_, quoted_ok_) {
    if (s_.outbox) marker_ = std::make_unique<DoneMarker>(s_, quoted_ok_);
  }

  Status poll(const std::string& checkpoint, PollBatch& out) override {
    try {
      return poll_rows(checkpoint, out);
    } catch (const std::exception& e) {  // a broken contract: a failure, never the process
      connection_.drop();
      return Status::failure(500, "erreur interne de la source", e.what());
    }
  }

  bool pipelined() const override { return true; }

  Status committed(const PollBatch& batch, bool stored,
                   const std::vector<PolledOutcome>& outcomes) override {
    (void)outcomes;
    if (!marker_) return Status::success();
    if (stored && batch.context) {
      auto ctx = std::static_pointer_cast<BatchContext>(batch.context);
      if (!ctx->already_done.empty()) {
        // Here, not in poll(): the checkpoint that poll was given is now stored. Marked before
        // the next poll, so that a recovery poll does not find them again.
        Status st = connection_.mark_done(ctx->already_done);
        if (!st.ok) {
          recovery_ = true;
          return st;
        }
        log_info("database", "source " + name_ + ": " + std::to_string(ctx->already_done.size()) +
                                 " row(s) already taken marked done");
      }
      marker_->add(ctx->ids);
    }
    // A marking of an earlier batch that failed: said now, its rows found again by recovery.
    if (auto failure = marker_->take_failure()) {
      recovery_ = true;
      return *failure;
    }
    return Status::success();
  }

  Status probe() override {
    std::unique_ptr<db::Session> session;
    Status s = db::connect(s_.driver, s_.connection, s_.timeouts, quoted_ok_, session);
    if (!s.ok) return s;
    db::SqlTemplate one;
    std::string err;
    db::SqlTemplate::parse("SELECT 1", one, err);
    db::ResultSet rs;
    return session->query(one, {}, rs);
  }

 private:
  Status poll_rows(const std::string& checkpoint, PollBatch& out) {
    out = PollBatch{};
    std::vector<std::string> last;
    bool have_checkpoint = !checkpoint.empty();
    if (have_checkpoint && !parse_checkpoint(checkpoint, s_.watermark.size(), last)) {
      return Status::failure(500, "point de reprise illisible",
                             "the checkpoint does not hold " + std::to_string(s_.watermark.size()) +
                                 " watermark values");
    }
    bool recovering = s_.outbox && recovery_;
    std::vector<db::Param> params;
    params.push_back({"limit", {std::to_string(s_.batch)}, true, false});
    for (size_t i = 0; i < s_.watermark.size(); ++i) {
      std::string v =
          have_checkpoint && !recovering ? last[i] : (i < s_.start.size() ? s_.start[i] : "");
      params.push_back({s_.watermark[i], {v}, false, false});
    }
    db::ResultSet rs;
    Status st =
        connection_.run([&](db::Session& session) { return session.query(s_.query, params, rs); });
    if (!st.ok) return st;

    // Where the columns the poller needs are.
    std::vector<size_t> wm_at;
    for (const auto& w : s_.watermark) {
      size_t at = find_column(rs, w);
      if (at == npos) return missing_column(w, "watermark");
      wm_at.push_back(at);
    }
    size_t id_at = npos, body_at = npos;
    if (s_.outbox) {
      id_at = find_column(rs, s_.id_column);
      if (id_at == npos) return missing_column(s_.id_column, "id_column");
    }
    if (!s_.body_column.empty()) {
      body_at = find_column(rs, s_.body_column);
      if (body_at == npos) return missing_column(s_.body_column, "body_column");
    }

    auto ctx = std::make_shared<BatchContext>();
    std::vector<std::string>& already_done = ctx->already_done;
    std::vector<std::string> previous = last;
    bool have_previous = have_checkpoint;
    std::vector<std::string> newest = last;
    for (auto& row : rs.rows) {
      std::vector<std::string> tuple;
      std::vector<CellKind> kinds;
      bool null_watermark = false;
      for (size_t at : wm_at) {
        tuple.push_back(row[at].text);
        kinds.push_back(row[at].kind);
        if (row[at].kind == CellKind::Null) null_watermark = true;
      }
      if (null_watermark) {
        return Status::failure(502, "colonne de suivi vide",
                               "a row has an empty watermark column: the watermark columns "
                               "must be NOT NULL");
      }
      if (s_.outbox && have_checkpoint && compare_tuple(tuple, last, kinds) <= 0) {
        already_done.push_back(row[id_at].text);  // committed before: only marked done
        continue;
      }
      if (!s_.outbox && have_previous && ordered_kinds(kinds) &&
          compare_tuple(tuple, previous, kinds) <= 0) {
        return Status::failure(502, "requête mal ordonnée",
                               "the query returned a row whose watermark is not after the "
                               "previous one: it must select the tuples strictly after the "
                               "watermark, ORDER BY the watermark columns");
      }
      previous = tuple;
      have_previous = true;
      newest = tuple;
      if (s_.outbox) ctx->ids.push_back(row[id_at].text);
      out.records.push_back(record_of(rs, row, wm_at, body_at));
    }
    // Recovery ends with the first recovery poll that finds nothing left below the checkpoint.
    if (recovering && already_done.empty()) recovery_ = false;
    out.more = static_cast<int64_t>(rs.rows.size()) >= s_.batch;
    out.checkpoint = out.records.empty() ? checkpoint : checkpoint_text(newest);
    if (s_.outbox) out.context = ctx;
    return Status::success();
  }

  static bool ordered_kinds(const std::vector<CellKind>& kinds) {
    for (CellKind k : kinds) {
      if (k == CellKind::Text || k == CellKind::Bytes || k == CellKind::Json) return false;
    }
    return true;
  }

  // The row's record; the body column's text is moved out of the row (read last).
  PolledRecord record_of(const db::ResultSet& rs, std::vector<Cell>& row,
                         const std::vector<size_t>& wm_at, size_t body_at) const {
    PolledRecord r;
    for (size_t i = 0; i < wm_at.size(); ++i) {
      if (i > 0) r.position += ", ";
      r.position += s_.watermark[i] + " " + row[wm_at[i]].text;
    }
    if (body_at != npos) {
      Cell& c = row[body_at];
      if (c.kind == CellKind::Null) {
        r.unreadable = "la colonne " + s_.body_column + " est vide";
      } else {
        r.body = std::move(c.text);
      }
      return r;
    }
    nlohmann::ordered_json body = nlohmann::ordered_json::object();
    for (size_t c = 0; c < rs.columns.size(); ++c) {
      const std::string& name = rs.columns[c];
      nlohmann::ordered_json* node = &body;
      size_t from = 0;
      bool clash = false;
      while (true) {
        size_t dot = name.find('.', from);
        std::string part = name.substr(from, dot == std::string::npos ? dot : dot - from);
        if (dot == std::string::npos) {
          if (node->contains(part)) {
            clash = true;
          } else {
            (*node)[part] = json_value(row[c], *s_.zone);
          }
          break;
        }
        auto& child = (*node)[part];
        if (child.is_null()) child = nlohmann::ordered_json::object();
        if (!child.is_object()) {
          clash = true;
          break;
        }
        node = &child;
        from = dot + 1;
      }
      if (clash) {
        r.unreadable =
            "la colonne " + name + " entre en conflit avec une autre colonne du même nom";
        return r;
      }
    }
    r.body = body.dump();
    return r;
  }

  static constexpr size_t npos = static_cast<size_t>(-1);
  static size_t find_column(const db::ResultSet& rs, const std::string& name) {
    for (size_t i = 0; i < rs.columns.size(); ++i) {
      if (rs.columns[i] == name) return i;
    }
    return npos;
  }
  static Status missing_column(const std::string& column, const std::string& key) {
    return Status::failure(502, "colonne absente du résultat",
                           "the query returns no column " + column + " (named by " + key + ")");
  }

  std::string name_;
  Settings s_;
  std::vector<std::string> quoted_ok_;
  Connection connection_;
  bool recovery_ = true;                // outbox: the next poll looks below the checkpoint
  std::unique_ptr<DoneMarker> marker_;  // outbox only; destroyed first (joins its thread)
};

}  // namespace

const ConfigSpec& database_poller_spec() {
  return spec();
}

void register_database_poller(PollerRegistry& registry) {
  PollerKind k;
  k.name = "database";
  k.description =
      "Rows of a database table or view (PostgreSQL, MySQL/MariaDB, SQLite) read by a "
      "configured SELECT after a watermark, or from an outbox marked done after the commit";
  k.spec = &spec();
  k.check = [](const ConfigView& c, const std::string& file, std::vector<ConfigError>& errors) {
    std::vector<std::pair<std::string, std::string>> problems;
    read_settings(c, problems);
    for (const auto& [key, message] : problems) {
      errors.push_back(error_at(c.raw(key).IsDefined() ? c.raw(key) : c.node(), file,
                                c.path() + "." + key, message));
    }
  };
  k.create = [](const PollerContext& ctx) -> std::unique_ptr<Poller> {
    std::vector<std::pair<std::string, std::string>> problems;
    Settings s = read_settings(ctx.config, problems);
    if (!problems.empty()) {
      throw std::runtime_error("source " + ctx.name + ": poll." + problems[0].first + ": " +
                               problems[0].second);
    }
    if (s.driver == "sqlite" && !s.connection.empty() && s.connection[0] != '/' &&
        !ctx.base_dir.empty()) {
      s.connection = ctx.base_dir + "/" + s.connection;
    }
    return std::make_unique<DatabasePoller>(ctx.name, std::move(s));
  };
  registry.add(std::move(k));
}

}  // namespace relais
