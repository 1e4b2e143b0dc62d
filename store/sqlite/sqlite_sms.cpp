#include "core/sms_store.h"

#include <Poco/Data/RecordSet.h>
#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "core/log.h"
#include "store/sms_rules.h"
#include "store/sqlite/sqlite_session.h"

using namespace Poco::Data::Keywords;
using Poco::Data::RecordSet;
using Poco::Data::Session;
using Poco::Data::Statement;

namespace relais::sms {
namespace {

constexpr const char* kColumns =
    "delivery_id, destination, driver, reference, gateway_ref, number_hash, encoding, segments, "
    "cost_cents, state, dlr_status, detail, created_at, updated_at";

SmsRecord row(RecordSet& rs, size_t i) {
  SmsRecord r;
  r.delivery_id = rs.value(0, i).convert<int64_t>();
  r.destination = rs.value(1, i).convert<std::string>();
  r.driver = rs.value(2, i).convert<std::string>();
  r.reference = rs.value(3, i).convert<std::string>();
  r.gateway_ref = rs.value(4, i).convert<std::string>();
  r.number_hash = rs.value(5, i).convert<std::string>();
  r.encoding = rs.value(6, i).convert<std::string>();
  r.segments = rs.value(7, i).convert<int>();
  r.cost_cents = rs.value(8, i).convert<double>();
  r.state = rs.value(9, i).convert<std::string>();
  r.dlr_status = rs.value(10, i).convert<int>();
  r.detail = rs.value(11, i).convert<std::string>();
  r.created_at = rs.value(12, i).convert<int64_t>();
  r.updated_at = rs.value(13, i).convert<int64_t>();
  return r;
}

// The SQLite engine of the SMS records and the opt-out list (tables of migration 5 in
// sqlite_store.cpp). One connection, serialised by a mutex; every write one guarded statement.
class SqliteSmsStore : public SmsStore {
 public:
  // Opens the store file (which relais has migrated). Throws at start-up when it cannot.
  SqliteSmsStore(const std::string& path, const Clock& clock);
  ~SqliteSmsStore() override;

  Begin begin_attempt(SmsRecord& r, const std::string& from_state) override;
  bool answer(int64_t delivery_id, const std::string& reference, const std::string& state,
              const std::string& gateway_ref, const std::string& detail) override;
  bool mark_unknown(int64_t delivery_id, const std::string& reference,
                    const std::string& detail) override;
  std::optional<SmsRecord> by_delivery(int64_t delivery_id) override;
  std::optional<SmsRecord> report(const std::string& reference, const std::string& gateway_ref,
                                  const std::string& state, int dlr_status,
                                  const std::string& detail) override;
  bool add_optout(const OptOut& o) override;
  std::optional<OptOut> optout(const std::string& number_hash) override;
  std::optional<OptOut> find_optout(const std::string& keyed_hash,
                                    const std::string& legacy_hash) override;
  std::vector<OptOut> optouts(int limit, const std::string& after_hash) override;
  bool remove_optout(const std::string& number_hash) override;

 private:
  int changes_locked();
  std::optional<SmsRecord> by_delivery_locked(int64_t delivery_id);
  bool add_optout_locked(const OptOut& o);
  std::optional<OptOut> optout_locked(const std::string& number_hash);
  const Clock& clock_;
  std::mutex mu_;
  std::unique_ptr<Poco::Data::Session> s_;
};

}  // namespace

SqliteSmsStore::SqliteSmsStore(const std::string& path, const Clock& clock)
    : clock_(clock), s_(open_store_session(path, "sms_records", "sms_records")) {}

SqliteSmsStore::~SqliteSmsStore() = default;

int SqliteSmsStore::changes_locked() {
  int changed = 0;
  *s_ << "SELECT changes()", into(changed), now;
  return changed;
}

SmsStore::Begin SqliteSmsStore::begin_attempt(SmsRecord& r, const std::string& from_state) {
  before_write("begin_attempt", r.delivery_id);
  std::lock_guard<std::mutex> lock(mu_);
  Millis t = clock_.now_ms();
  try {
    r.reference = next_reference(r, from_state);
    if (from_state.empty()) {
      r.state = "submitting";
      r.gateway_ref.clear();
      *s_ << "INSERT OR IGNORE INTO sms_records(" << kColumns
          << ") VALUES(?,?,?,?,'',?,?,?,?,'submitting',0,'',?,?)",
          use(r.delivery_id), use(r.destination), use(r.driver), use(r.reference),
          use(r.number_hash), use(r.encoding), use(r.segments), use(r.cost_cents), use(t), use(t),
          now;
    } else {
      std::string from = from_state;
      *s_ << "UPDATE sms_records SET state = 'submitting', reference = ?, gateway_ref = '', "
             "driver = ?, number_hash = ?, encoding = ?, segments = ?, cost_cents = ?, "
             "dlr_status = 0, detail = '', updated_at = ? WHERE delivery_id = ? AND state = ?",
          use(r.reference), use(r.driver), use(r.number_hash), use(r.encoding), use(r.segments),
          use(r.cost_cents), use(t), use(r.delivery_id), use(from), now;
    }
    if (changes_locked() == 0) return Begin::Changed;
    r.state = "submitting";
    r.updated_at = t;
    return Begin::Started;
  } catch (const Poco::Exception& e) {
    log_error("sms", "SMS record: cannot start a send: " + e.displayText());
    return Begin::Failed;
  }
}

bool SqliteSmsStore::answer(int64_t delivery_id, const std::string& reference,
                            const std::string& state, const std::string& gateway_ref,
                            const std::string& detail) {
  before_write("answer", delivery_id);
  std::lock_guard<std::mutex> lock(mu_);
  Millis t = clock_.now_ms();
  int64_t id = delivery_id;
  std::string ref = reference, st = state, gw = gateway_ref, det = detail;
  int rank = state_rank(state);
  // Out of submitting to anything; otherwise forward only (a report may have come first).
  std::string moves = "(state = 'submitting' OR " + rank_sql() + " < ?)";
  try {
    *s_ << "UPDATE sms_records SET gateway_ref = CASE WHEN ? <> '' THEN ? ELSE gateway_ref END, "
           "detail = CASE WHEN "
        << moves << " THEN ? ELSE detail END, state = CASE WHEN " << moves
        << " THEN ? ELSE state END, updated_at = ? WHERE delivery_id = ? AND reference = ?",
        use(gw), use(gw), use(rank), use(det), use(rank), use(st), use(t), use(id), use(ref), now;
    return changes_locked() > 0;
  } catch (const Poco::Exception& e) {
    log_error("sms", "SMS record: cannot save the gateway's answer: " + e.displayText());
    return false;
  }
}

bool SqliteSmsStore::mark_unknown(int64_t delivery_id, const std::string& reference,
                                  const std::string& detail) {
  before_write("mark_unknown", delivery_id);
  std::lock_guard<std::mutex> lock(mu_);
  Millis t = clock_.now_ms();
  int64_t id = delivery_id;
  std::string ref = reference, det = detail;
  try {
    *s_ << "UPDATE sms_records SET state = 'unknown', detail = ?, updated_at = ? "
           "WHERE delivery_id = ? AND reference = ? AND state = 'submitting'",
        use(det), use(t), use(id), use(ref), now;
    return changes_locked() > 0;
  } catch (const Poco::Exception& e) {
    log_error("sms", "SMS record: cannot mark a send unknown: " + e.displayText());
    return false;
  }
}

std::optional<SmsRecord> SqliteSmsStore::by_delivery_locked(int64_t delivery_id) {
  Statement st(*s_);
  st << "SELECT " << kColumns << " FROM sms_records WHERE delivery_id = ?", use(delivery_id), now;
  RecordSet rs(st);
  if (rs.rowCount() == 0) return std::nullopt;
  return row(rs, 0);
}

std::optional<SmsRecord> SqliteSmsStore::by_delivery(int64_t delivery_id) {
  std::lock_guard<std::mutex> lock(mu_);
  try {
    return by_delivery_locked(delivery_id);
  } catch (const Poco::Exception&) {
    return std::nullopt;
  }
}

std::optional<SmsRecord> SqliteSmsStore::report(const std::string& reference,
                                                const std::string& gateway_ref,
                                                const std::string& state, int dlr_status,
                                                const std::string& detail) {
  std::lock_guard<std::mutex> lock(mu_);
  try {
    auto found = report_target(
        reference, gateway_ref, [&](int64_t id) { return by_delivery_locked(id); },
        [&](const std::string& ref) -> std::optional<SmsRecord> {
          Statement st(*s_);
          std::string key = ref;
          st << "SELECT " << kColumns
             << " FROM sms_records WHERE gateway_ref = ? ORDER BY delivery_id DESC LIMIT 1",
              use(key), now;
          RecordSet rs(st);
          if (rs.rowCount() == 0) return std::nullopt;
          return row(rs, 0);
        });
    if (!found || !report_counts(*found, reference, state)) return found;
    SmsRecord r = *found;
    // Reports may arrive out of order: never move a record back (smsc after delivered).
    int rank = state_rank(state);
    std::string st = state, det = detail;
    int code = dlr_status;
    Millis t = clock_.now_ms();
    *s_ << "UPDATE sms_records SET state = ?, dlr_status = ?, detail = ?, updated_at = ? "
           "WHERE delivery_id = ? AND "
        << rank_sql() << " <= ? AND " << rank_sql() << " < 4",
        use(st), use(code), use(det), use(t), use(r.delivery_id), use(rank), now;
    return by_delivery_locked(r.delivery_id);
  } catch (const Poco::Exception&) {
    return std::nullopt;
  }
}

bool SqliteSmsStore::add_optout(const OptOut& in) {
  std::lock_guard<std::mutex> lock(mu_);
  try {
    return add_optout_locked(in);
  } catch (const Poco::Exception& e) {
    log_error("sms", "opt-out list: cannot add an entry: " + e.displayText());
    return false;
  }
}

bool SqliteSmsStore::add_optout_locked(const OptOut& in) {
  OptOut o = in;
  if (o.created_at == 0) o.created_at = clock_.now_ms();
  *s_ << "INSERT OR IGNORE INTO sms_optouts(number_hash, created_at, source, keyword) "
         "VALUES(?,?,?,?)",
      use(o.number_hash), use(o.created_at), use(o.source), use(o.keyword), now;
  return changes_locked() > 0;
}

std::optional<OptOut> SqliteSmsStore::optout(const std::string& number_hash) {
  std::lock_guard<std::mutex> lock(mu_);
  try {
    return optout_locked(number_hash);
  } catch (const Poco::Exception& e) {
    // Unknown is not "not opted out": the caller retries rather than send.
    log_error("sms", "opt-out list: cannot read: " + e.displayText());
    throw std::runtime_error("the opt-out list cannot be read");
  }
}

std::optional<OptOut> SqliteSmsStore::find_optout(const std::string& keyed_hash,
                                                  const std::string& legacy_hash) {
  std::lock_guard<std::mutex> lock(mu_);
  try {
    if (auto o = optout_locked(keyed_hash)) return o;
    if (legacy_hash == keyed_hash) return std::nullopt;
    auto legacy = optout_locked(legacy_hash);
    if (!legacy) return std::nullopt;
    std::string from = legacy_hash, to = keyed_hash;
    *s_ << "UPDATE sms_optouts SET number_hash = ? WHERE number_hash = ?", use(to), use(from), now;
    legacy->number_hash = keyed_hash;
    log_info("sms", "opt-out list: a legacy entry was rewritten under the keyed pseudonym");
    return legacy;
  } catch (const Poco::Exception& e) {
    log_error("sms", "opt-out list: cannot read: " + e.displayText());
    throw std::runtime_error("the opt-out list cannot be read");
  }
}

std::optional<OptOut> SqliteSmsStore::optout_locked(const std::string& number_hash) {
  Statement st(*s_);
  std::string h = number_hash;
  st << "SELECT number_hash, created_at, source, keyword FROM sms_optouts WHERE number_hash = ?",
      use(h), now;
  RecordSet rs(st);
  if (rs.rowCount() == 0) return std::nullopt;
  return OptOut{rs.value(0, 0).convert<std::string>(), rs.value(1, 0).convert<int64_t>(),
                rs.value(2, 0).convert<std::string>(), rs.value(3, 0).convert<std::string>()};
}

std::vector<OptOut> SqliteSmsStore::optouts(int limit, const std::string& after_hash) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement st(*s_);
  std::string after = after_hash;
  st << "SELECT number_hash, created_at, source, keyword FROM sms_optouts WHERE number_hash > ? "
        "ORDER BY number_hash LIMIT ?",
      use(after), use(limit), now;
  RecordSet rs(st);
  std::vector<OptOut> out;
  for (size_t i = 0; i < rs.rowCount(); ++i) {
    out.push_back(OptOut{rs.value(0, i).convert<std::string>(), rs.value(1, i).convert<int64_t>(),
                         rs.value(2, i).convert<std::string>(),
                         rs.value(3, i).convert<std::string>()});
  }
  return out;
}

bool SqliteSmsStore::remove_optout(const std::string& number_hash) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string h = number_hash;
  *s_ << "DELETE FROM sms_optouts WHERE number_hash = ?", use(h), now;
  return changes_locked() > 0;
}

std::shared_ptr<SmsStore> open_sqlite_sms_store(const std::string& path, const Clock& clock) {
  return std::make_shared<SqliteSmsStore>(path, clock);
}

}  // namespace relais::sms
