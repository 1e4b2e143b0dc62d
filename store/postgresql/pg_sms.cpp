// The SMS records and the opt-out list on PostgreSQL (tables of migration 105,
// store/postgresql/pg_tables.cpp), the same contract as store/sqlite/sqlite_sms.cpp: every
// change is one statement guarded by the record's state rank (store/sms_rules.h), so the nodes'
// connectors and the gateways' delivery reports, whichever node receives them, can come in any
// order and a record never moves back. One PgSession.

#include <stdexcept>

#include "core/log.h"
#include "core/sms_store.h"
#include "store/postgresql/pg_session.h"
#include "store/postgresql/pg_stores.h"
#include "store/sms_rules.h"

namespace relais::sms {
namespace {

#define SMS_COLUMNS                                                                             \
  "delivery_id, destination, driver, reference, gateway_ref, number_hash, encoding, segments, " \
  "cost_cents, state, dlr_status, detail, created_at, updated_at"

constexpr const char* kCreate =
    "INSERT INTO sms_records(" SMS_COLUMNS
    ") VALUES($1, $2, $3, $4, '', $5, $6, $7, $8, 'submitting', 0, '', $9, $9) "
    "ON CONFLICT (delivery_id) DO NOTHING";
constexpr const char* kRestart =
    "UPDATE sms_records SET state = 'submitting', reference = $1, gateway_ref = '', driver = $2, "
    "number_hash = $3, encoding = $4, segments = $5, cost_cents = $6, dlr_status = 0, "
    "detail = '', updated_at = $7 WHERE delivery_id = $8 AND state = $9";
constexpr const char* kUnknown =
    "UPDATE sms_records SET state = 'unknown', detail = $1, updated_at = $2 "
    "WHERE delivery_id = $3 AND reference = $4 AND state = 'submitting'";
constexpr const char* kByDelivery =
    "SELECT " SMS_COLUMNS " FROM sms_records WHERE delivery_id = $1";
constexpr const char* kByGatewayRef =
    "SELECT " SMS_COLUMNS
    " FROM sms_records WHERE gateway_ref = $1 ORDER BY delivery_id DESC LIMIT 1";
constexpr const char* kAddOptout =
    "INSERT INTO sms_optouts(number_hash, created_at, source, keyword) VALUES($1, $2, $3, $4) "
    "ON CONFLICT (number_hash) DO NOTHING";
constexpr const char* kOptout =
    "SELECT number_hash, created_at, source, keyword FROM sms_optouts WHERE number_hash = $1";
// A legacy entry moved under its keyed hash (kept as is when another node did it first).
constexpr const char* kRekeyOptout =
    "INSERT INTO sms_optouts(number_hash, created_at, source, keyword) SELECT $1, created_at, "
    "source, keyword FROM sms_optouts WHERE number_hash = $2 ON CONFLICT (number_hash) DO NOTHING";
constexpr const char* kRemoveOptout = "DELETE FROM sms_optouts WHERE number_hash = $1";
constexpr const char* kOptouts =
    "SELECT number_hash, created_at, source, keyword FROM sms_optouts WHERE number_hash > $1 "
    "ORDER BY number_hash LIMIT $2";

// Out of submitting to anything; otherwise forward only (a report may have come first).
const std::string& answer_sql() {
  static const std::string sql = [] {
    std::string moves = "(state = 'submitting' OR " + rank_sql() + " < $1)";
    return "UPDATE sms_records SET gateway_ref = CASE WHEN $2 <> '' THEN $2 ELSE gateway_ref END, "
           "detail = CASE WHEN " +
           moves + " THEN $3 ELSE detail END, state = CASE WHEN " + moves +
           " THEN $4 ELSE state END, updated_at = $5 WHERE delivery_id = $6 AND reference = $7";
  }();
  return sql;
}
// Reports may arrive out of order: never move a record back (smsc after delivered).
const std::string& report_sql() {
  static const std::string sql =
      "UPDATE sms_records SET state = $1, dlr_status = $2, detail = $3, updated_at = $4 "
      "WHERE delivery_id = $5 AND " +
      rank_sql() + " <= $6 AND " + rank_sql() + " < 4";
  return sql;
}

SmsRecord record(const pg::Result& r, int i) {
  SmsRecord x;
  x.delivery_id = r.int64(i, 0);
  x.destination = r.text(i, 1);
  x.driver = r.text(i, 2);
  x.reference = r.text(i, 3);
  x.gateway_ref = r.text(i, 4);
  x.number_hash = r.text(i, 5);
  x.encoding = r.text(i, 6);
  x.segments = static_cast<int>(r.int64(i, 7));
  x.cost_cents = std::stod(r.text(i, 8).empty() ? "0" : r.text(i, 8));
  x.state = r.text(i, 9);
  x.dlr_status = static_cast<int>(r.int64(i, 10));
  x.detail = r.text(i, 11);
  x.created_at = r.int64(i, 12);
  x.updated_at = r.int64(i, 13);
  return x;
}

OptOut optout_row(const pg::Result& r, int i) {
  return OptOut{r.text(i, 0), r.int64(i, 1), r.text(i, 2), r.text(i, 3)};
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

class PgSmsStore final : public SmsStore {
 public:
  PgSmsStore(const std::string& uri, const std::string& password, const Clock& clock)
      : clock_(clock), s_(uri, password, "PostgreSQL SMS records") {}

  Begin begin_attempt(SmsRecord& r, const std::string& from_state) override {
    before_write("begin_attempt", r.delivery_id);
    Millis t = clock_.now_ms();
    try {
      std::string reference = next_reference(r, from_state);
      int64_t changed = s_.locked([&]() {
        if (from_state.empty()) {
          return s_
              .query(kCreate, pg::Params()
                                  .num(r.delivery_id)
                                  .ref(r.destination)
                                  .ref(r.driver)
                                  .ref(reference)
                                  .ref(r.number_hash)
                                  .ref(r.encoding)
                                  .num(r.segments)
                                  .text(number(r.cost_cents))
                                  .num(t))
              .affected();
        }
        return s_
            .query(kRestart, pg::Params()
                                 .ref(reference)
                                 .ref(r.driver)
                                 .ref(r.number_hash)
                                 .ref(r.encoding)
                                 .num(r.segments)
                                 .text(number(r.cost_cents))
                                 .num(t)
                                 .num(r.delivery_id)
                                 .ref(from_state))
            .affected();
      });
      r.reference = reference;
      if (from_state.empty()) r.gateway_ref.clear();
      if (changed == 0) return Begin::Changed;
      r.state = "submitting";
      r.updated_at = t;
      return Begin::Started;
    } catch (const std::exception& e) {
      log_error("sms", std::string("SMS record: cannot start a send: ") + e.what());
      return Begin::Failed;
    }
  }

  bool answer(int64_t delivery_id, const std::string& reference, const std::string& state,
              const std::string& gateway_ref, const std::string& detail) override {
    before_write("answer", delivery_id);
    try {
      return s_.locked([&]() {
        return s_.query(answer_sql().c_str(), pg::Params()
                                                  .num(state_rank(state))
                                                  .ref(gateway_ref)
                                                  .ref(detail)
                                                  .ref(state)
                                                  .num(clock_.now_ms())
                                                  .num(delivery_id)
                                                  .ref(reference))
                   .affected() > 0;
      });
    } catch (const std::exception& e) {
      log_error("sms", std::string("SMS record: cannot save the gateway's answer: ") + e.what());
      return false;
    }
  }

  bool mark_unknown(int64_t delivery_id, const std::string& reference,
                    const std::string& detail) override {
    before_write("mark_unknown", delivery_id);
    try {
      return s_.locked([&]() {
        return s_.query(
                     kUnknown,
                     pg::Params().ref(detail).num(clock_.now_ms()).num(delivery_id).ref(reference))
                   .affected() > 0;
      });
    } catch (const std::exception& e) {
      log_error("sms", std::string("SMS record: cannot mark a send unknown: ") + e.what());
      return false;
    }
  }

  std::optional<SmsRecord> by_delivery(int64_t delivery_id) override {
    try {
      return s_.locked([&]() { return by_delivery_locked(delivery_id); });
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }

  std::optional<SmsRecord> report(const std::string& reference, const std::string& gateway_ref,
                                  const std::string& state, int dlr_status,
                                  const std::string& detail) override {
    try {
      return s_.locked([&]() -> std::optional<SmsRecord> {
        auto found = report_target(
            reference, gateway_ref, [&](int64_t id) { return by_delivery_locked(id); },
            [&](const std::string& ref) -> std::optional<SmsRecord> {
              pg::Result r = s_.query(kByGatewayRef, pg::Params().ref(ref));
              if (r.rows() == 0) return std::nullopt;
              return record(r, 0);
            });
        if (!found || !report_counts(*found, reference, state)) return found;
        s_.query(report_sql().c_str(), pg::Params()
                                           .ref(state)
                                           .num(dlr_status)
                                           .ref(detail)
                                           .num(clock_.now_ms())
                                           .num(found->delivery_id)
                                           .num(state_rank(state)));
        return by_delivery_locked(found->delivery_id);
      });
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }

  bool add_optout(const OptOut& o) override {
    try {
      return s_.locked([&]() {
        return s_.query(kAddOptout, pg::Params()
                                        .ref(o.number_hash)
                                        .num(o.created_at ? o.created_at : clock_.now_ms())
                                        .ref(o.source)
                                        .ref(o.keyword))
                   .affected() > 0;
      });
    } catch (const std::exception& e) {
      log_error("sms", std::string("opt-out list: cannot add an entry: ") + e.what());
      return false;
    }
  }

  std::optional<OptOut> optout(const std::string& number_hash) override {
    try {
      return s_.locked([&]() { return optout_locked(number_hash); });
    } catch (const std::exception& e) {
      // Unknown is not "not opted out": the caller retries rather than send.
      log_error("sms", std::string("opt-out list: cannot read: ") + e.what());
      throw std::runtime_error("the opt-out list cannot be read");
    }
  }

  std::optional<OptOut> find_optout(const std::string& keyed_hash,
                                    const std::string& legacy_hash) override {
    try {
      return s_.locked([&]() -> std::optional<OptOut> {
        if (auto o = optout_locked(keyed_hash)) return o;
        if (legacy_hash == keyed_hash) return std::nullopt;
        std::optional<OptOut> legacy;
        s_.transaction(kOptoutLocks, legacy_hash, [&]() {
          legacy = optout_locked(legacy_hash);
          if (!legacy) return false;
          s_.query(kRekeyOptout, pg::Params().ref(keyed_hash).ref(legacy_hash));
          s_.query(kRemoveOptout, pg::Params().ref(legacy_hash));
          return true;
        });
        if (!legacy) return std::nullopt;
        legacy->number_hash = keyed_hash;
        log_info("sms", "opt-out list: a legacy entry was rewritten under the keyed pseudonym");
        return legacy;
      });
    } catch (const std::exception& e) {
      log_error("sms", std::string("opt-out list: cannot read: ") + e.what());
      throw std::runtime_error("the opt-out list cannot be read");
    }
  }

  std::vector<OptOut> optouts(int limit, const std::string& after_hash) override {
    return s_.locked([&]() {
      pg::Result r = s_.query(kOptouts, pg::Params().ref(after_hash).num(limit));
      std::vector<OptOut> out;
      for (int i = 0; i < r.rows(); ++i) out.push_back(optout_row(r, i));
      return out;
    });
  }

  bool remove_optout(const std::string& number_hash) override {
    return s_.locked(
        [&]() { return s_.query(kRemoveOptout, pg::Params().ref(number_hash)).affected() > 0; });
  }

 private:
  static constexpr int kOptoutLocks = 105;

  std::optional<SmsRecord> by_delivery_locked(int64_t delivery_id) {
    pg::Result r = s_.query(kByDelivery, pg::Params().num(delivery_id));
    if (r.rows() == 0) return std::nullopt;
    return record(r, 0);
  }

  std::optional<OptOut> optout_locked(const std::string& number_hash) {
    pg::Result r = s_.query(kOptout, pg::Params().ref(number_hash));
    if (r.rows() == 0) return std::nullopt;
    return optout_row(r, 0);
  }

  const Clock& clock_;
  PgSession s_;
};

}  // namespace

}  // namespace relais::sms

namespace relais {
std::vector<PgHotStatement> postgresql_sms_hot_statements() {
  using namespace sms;
  return {{"SMS record by delivery", kByDelivery, "1"},
          {"SMS record by gateway id", kByGatewayRef, "'ovh-1'"},
          {"SMS answer", answer_sql(), "2, 'ovh-1', '', 'accepted', 1, 1, 'd1'"},
          {"SMS report", report_sql(), "'delivered', 1, '', 1, 1, 4"},
          {"SMS mark unknown", kUnknown, "'', 1, 1, 'd1'"},
          {"SMS opt-out", kOptout, "'h'"}};
}
}  // namespace relais

namespace relais::sms {
std::shared_ptr<SmsStore> open_postgresql_sms_store(const std::string& uri,
                                                    const std::string& password,
                                                    const Clock& clock) {
  return std::make_shared<PgSmsStore>(uri, password, clock);
}

}  // namespace relais::sms
