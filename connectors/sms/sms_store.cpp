#include "connectors/sms/sms_store.h"

#include <Poco/Data/RecordSet.h>
#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>

#include <filesystem>
#include <map>
#include <stdexcept>

#include "core/log.h"
#include "core/sqlite_session.h"

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

}  // namespace

int state_rank(const std::string& state) {
  static const std::map<std::string, int> ranks = {
      {"submitting", 0}, {"retry", 0},     {"queued", 1}, {"accepted", 2},
      {"smsc", 3},       {"delivered", 4}, {"failed", 4}};
  auto it = ranks.find(state);
  return it == ranks.end() ? 0 : it->second;
}

SmsStore::SmsStore(const std::string& path, const Clock& clock)
    : clock_(clock), s_(open_store_session(path, "sms_records", "sms_records")) {}

SmsStore::~SmsStore() = default;

std::shared_ptr<SmsStore> SmsStore::shared(const std::string& path, const Clock& clock) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<SmsStore>> stores;
  std::lock_guard<std::mutex> lock(mu);
  auto& w = stores[path];
  if (auto s = w.lock()) return s;
  auto s = std::make_shared<SmsStore>(path, clock);
  w = s;
  return s;
}

bool SmsStore::put(const SmsRecord& in) {
  std::lock_guard<std::mutex> lock(mu_);
  SmsRecord r = in;
  Millis t = clock_.now_ms();
  if (r.created_at == 0) r.created_at = t;
  r.updated_at = t;
  try {
    *s_ << "INSERT OR REPLACE INTO sms_records(" << kColumns
        << ") VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        use(r.delivery_id), use(r.destination), use(r.driver), use(r.reference), use(r.gateway_ref),
        use(r.number_hash), use(r.encoding), use(r.segments), use(r.cost_cents), use(r.state),
        use(r.dlr_status), use(r.detail), use(r.created_at), use(r.updated_at), now;
    return true;
  } catch (const Poco::Exception&) {
    return false;
  }
}

std::optional<SmsRecord> SmsStore::by_delivery(int64_t delivery_id) {
  std::lock_guard<std::mutex> lock(mu_);
  try {
    Statement st(*s_);
    st << "SELECT " << kColumns << " FROM sms_records WHERE delivery_id = ?", use(delivery_id), now;
    RecordSet rs(st);
    if (rs.rowCount() == 0) return std::nullopt;
    return row(rs, 0);
  } catch (const Poco::Exception&) {
    return std::nullopt;
  }
}

std::optional<SmsRecord> SmsStore::report(const std::string& reference,
                                          const std::string& gateway_ref, const std::string& state,
                                          int dlr_status, const std::string& detail) {
  std::lock_guard<std::mutex> lock(mu_);
  try {
    Statement st(*s_);
    std::string key = reference.empty() ? gateway_ref : reference;
    if (key.empty()) return std::nullopt;
    st << "SELECT " << kColumns << " FROM sms_records WHERE "
       << (reference.empty() ? "gateway_ref" : "reference")
       << " = ? ORDER BY delivery_id DESC LIMIT 1",
        use(key), now;
    RecordSet rs(st);
    if (rs.rowCount() == 0) return std::nullopt;
    SmsRecord r = row(rs, 0);
    Millis t = clock_.now_ms();
    // Reports may arrive out of order: never move a record back (smsc after delivered).
    if (state_rank(state) < state_rank(r.state) || state_rank(r.state) == 4) return r;
    r.state = state;
    r.dlr_status = dlr_status;
    r.detail = detail;
    r.updated_at = t;
    *s_ << "UPDATE sms_records SET state = ?, dlr_status = ?, detail = ?, updated_at = ? "
           "WHERE delivery_id = ?",
        use(r.state), use(r.dlr_status), use(r.detail), use(r.updated_at), use(r.delivery_id), now;
    return r;
  } catch (const Poco::Exception&) {
    return std::nullopt;
  }
}

bool SmsStore::add_optout(const OptOut& in) {
  std::lock_guard<std::mutex> lock(mu_);
  try {
    return add_optout_locked(in);
  } catch (const Poco::Exception& e) {
    log_error("sms", "opt-out list: cannot add an entry: " + e.displayText());
    return false;
  }
}

bool SmsStore::add_optout_locked(const OptOut& in) {
  OptOut o = in;
  if (o.created_at == 0) o.created_at = clock_.now_ms();
  *s_ << "INSERT OR IGNORE INTO sms_optouts(number_hash, created_at, source, keyword) "
         "VALUES(?,?,?,?)",
      use(o.number_hash), use(o.created_at), use(o.source), use(o.keyword), now;
  int changed = 0;
  *s_ << "SELECT changes()", into(changed), now;
  return changed > 0;
}

std::optional<OptOut> SmsStore::optout(const std::string& number_hash) {
  std::lock_guard<std::mutex> lock(mu_);
  try {
    return optout_locked(number_hash);
  } catch (const Poco::Exception& e) {
    // Unknown is not "not opted out": the caller retries rather than send.
    log_error("sms", "opt-out list: cannot read: " + e.displayText());
    throw std::runtime_error("the opt-out list cannot be read");
  }
}

std::optional<OptOut> SmsStore::optout_locked(const std::string& number_hash) {
  Statement st(*s_);
  std::string h = number_hash;
  st << "SELECT number_hash, created_at, source, keyword FROM sms_optouts WHERE number_hash = ?",
      use(h), now;
  RecordSet rs(st);
  if (rs.rowCount() == 0) return std::nullopt;
  return OptOut{rs.value(0, 0).convert<std::string>(), rs.value(1, 0).convert<int64_t>(),
                rs.value(2, 0).convert<std::string>(), rs.value(3, 0).convert<std::string>()};
}

std::vector<OptOut> SmsStore::optouts(int limit, const std::string& after_hash) {
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

bool SmsStore::remove_optout(const std::string& number_hash) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string h = number_hash;
  *s_ << "DELETE FROM sms_optouts WHERE number_hash = ?", use(h), now;
  int changed = 0;
  *s_ << "SELECT changes()", into(changed), now;
  return changed > 0;
}

}  // namespace relais::sms
