// The `calendar` connector kind: one behaviour over the ews and graph drivers. The message type
// picks the operation (configurable); cross-references link the correlation key to the remote
// event. Crash protection: a create whose cross-reference was not written (relais killed
// between the remote create and the write) must not duplicate the event — Graph's
// transactionId makes the create idempotent; for EWS the connector searches the calendar for the
// key before every create (see docs/connectors/calendar.md). A create sent without an answer
// (unknown_outcome: never re-sent by the transport) leaves a marker cross-reference so that the
// next attempt searches first, for both drivers.

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>

#include "connectors/calendar/calendar.h"
#include "connectors/calendar/calendar_http.h"
#include "core/xref_store.h"

namespace relais {
namespace calendar {
namespace {

using F = FieldType;

const ConfigSpec& calendar_spec() {
  static const ConfigSpec s{
      "calendar",
      {
          {"driver",
           F::String,
           "",
           true,
           "ews (Exchange Server SE or Exchange Online through EWS) or graph (Exchange Online "
           "through Microsoft Graph)",
           {"ews", "graph"}},
          {"operations", F::StringMap, "", false,
           "message type → create | update | delete | repair (default rdv.planned: create, "
           "rdv.moved: update, rdv.cancelled: delete, calendar.repair: repair); other types use "
           "the mapping's 'action' field"},
          {"url", F::String, "", false,
           "ews: the EWS endpoint (https://mail.example.org/EWS/Exchange.asmx); graph: the API "
           "root (default https://graph.microsoft.com/v1.0)"},
          {"auth",
           F::String,
           "oauth2",
           false,
           "ews: basic, ntlm or oauth2 (client credentials); graph always uses oauth2",
           {"basic", "ntlm", "oauth2"}},
          {"user", F::String, "", false,
           "ews basic/ntlm: the service account (DOMAIN\\user or UPN)"},
          {"password", F::Secret, "", false, "ews basic/ntlm: the service account's password"},
          {"tenant", F::String, "", false,
           "oauth2: the Entra ID tenant (id or domain); gives the default token_url"},
          {"token_url", F::String, "", false,
           "oauth2: the token endpoint (default "
           "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token)"},
          {"client_id", F::String, "", false, "oauth2: the app registration's client id"},
          {"client_secret", F::Secret, "", false, "oauth2: the app registration's client secret"},
          {"scope", F::String, "", false,
           "oauth2: the scope (default https://outlook.office365.com/.default for ews, "
           "https://graph.microsoft.com/.default for graph)"},
          {"access",
           F::String,
           "impersonation",
           false,
           "ews: impersonation (ExchangeImpersonation header, X-AnchorMailbox) or delegate "
           "(DistinguishedFolderId with Mailbox; the account needs rights on each calendar)",
           {"impersonation", "delegate"}},
          {"server_version",
           F::String,
           "Exchange2013_SP1",
           false,
           "ews: RequestServerVersion",
           {"Exchange2010", "Exchange2010_SP1", "Exchange2010_SP2", "Exchange2013",
            "Exchange2013_SP1", "Exchange2015", "Exchange2016", "V2015_10_05", "V2016_01_06"}},
          {"time_zone", F::String, "Romance Standard Time", false,
           "Windows time zone of the events (EWS StartTimeZone/EndTimeZone, Graph timeZone)"},
          {"conflict_resolution",
           F::String,
           "AlwaysOverwrite",
           false,
           "ews: UpdateItem ConflictResolution",
           {"NeverOverwrite", "AutoResolve", "AlwaysOverwrite"}},
          {"property_set_id", F::String, "f3a6c1d0-76cd-4c5e-9b1a-2c0d7e6f7601", false,
           "GUID of the extended property carrying the correlation key (same for both drivers)"},
          {"property_name", F::String, "RelaisKey", false, "name of that extended property"},
          {"search_before_create", F::Bool, "true", false,
           "ews: search the calendar for the key before creating (protects against duplicates "
           "after a crash); graph relies on transactionId"},
          {"timeout", F::Duration, "30s", false, "total time allowed for one HTTP request"},
          {"connect_timeout", F::Duration, "5s", false, "time allowed to connect"},
          {"tls_verify", F::Bool, "true", false,
           "verify the server certificate and host name (never turn off in production)"},
          {"ca_file", F::String, "", false,
           "CA bundle to verify the servers with (PEM); superseded by tls.ca_file"},
          tls_client_field(),
      }};
  return s;
}

enum class Op { Create, Update, Delete, Repair };

// The external id of a cross-reference whose event Relais deleted (a tombstone).
const char* const kDeleted = "-";
// The external id of a cross-reference whose create went out without an answer (the server may
// have created the event): the next attempt searches the calendar for the key before creating.
const char* const kUnknown = "?";

// What the connector keeps in a cross-reference's version: "<remote version>|<field
// digests>|<generation>" for a live event, "deleted|<generation>" for a tombstone. The
// generation counts the events of the key that are gone; it is part of the Graph transactionId.
struct Stored {
  std::string remote;   // EWS ChangeKey, Graph changeKey
  std::string digests;  // field_digests() of the state delivered
  int generation = 0;
};

Stored read_version(const CrossReference& x) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t bar; (bar = x.version.find('|', start)) != std::string::npos; start = bar + 1) {
    parts.push_back(x.version.substr(start, bar - start));
  }
  parts.push_back(x.version.substr(start));
  Stored s;
  if (x.external_id == kDeleted) {
    s.generation = parts.size() == 2 ? std::atoi(parts[1].c_str()) : 1;
    return s;
  }
  s.remote = parts[0];
  if (parts.size() >= 2) s.digests = parts[1];
  if (parts.size() >= 3) s.generation = std::atoi(parts[2].c_str());
  return s;
}

bool parse_op(const std::string& s, Op& op) {
  static const std::map<std::string, Op> ops{{"create", Op::Create},
                                             {"update", Op::Update},
                                             {"delete", Op::Delete},
                                             {"repair", Op::Repair}};
  auto it = ops.find(s);
  if (it == ops.end()) return false;
  op = it->second;
  return true;
}

// Worker slots kept for free/busy requests (API threads), beyond the delivery slots.
constexpr int kFreeBusySlots = 2;

}  // namespace

// One configured calendar destination. Thread-safe for distinct slots (the driver keeps one
// curl handle per slot; the xref store serialises itself); free_busy() may be called from any
// thread (it borrows one of kFreeBusySlots slots of its own). Owns its driver and the
// per-mailbox ThrottleGate every request goes through (a partner's "slow down" for a mailbox
// holds back every slot and free/busy); the xref store is the hub's.
class CalendarConnector final : public Connector {
 public:
  explicit CalendarConnector(const ConnectorContext& ctx)
      : name_(ctx.name),
        xrefs_(ctx.xrefs),
        gate_(ctx.max_retry_after_ms),
        delivery_slots_(std::max(1, ctx.concurrency)) {
    if (xrefs_ == nullptr) {
      throw std::runtime_error("connector " + name_ +
                               ": the calendar connector needs the store's "
                               "cross-references");
    }
    driver_ =
        make_driver(ctx.config, ctx.name, delivery_slots_ + kFreeBusySlots, *ctx.clock, &gate_);
    for (int i = 0; i < kFreeBusySlots; ++i) free_slots_.push_back(delivery_slots_ + i);
    search_before_create_ = ctx.config.boolean("search_before_create");
    operations_ = {{"rdv.planned", "create"},
                   {"rdv.moved", "update"},
                   {"rdv.cancelled", "delete"},
                   {"calendar.repair", "repair"}};
    for (const auto& [type, op] : ctx.config.string_map("operations")) operations_[type] = op;
  }

  Status probe() override { return driver_->probe(); }

  // Busy periods through the driver, on a slot of its own (see calendar::free_busy).
  Result free_busy(const std::string& mailbox, const std::string& from, const std::string& to) {
    int slot = -1;
    {
      std::unique_lock<std::mutex> lock(fb_mu_);
      if (!fb_free_.wait_for(lock, std::chrono::seconds(30),
                             [&] { return !free_slots_.empty(); })) {
        return Result::failed(Outcome::retry(
            driver_->name(), 0, "free/busy: every connection is busy, try again shortly", 1000));
      }
      slot = free_slots_.back();
      free_slots_.pop_back();
    }
    Result r;
    try {
      r = driver_->free_busy(mailbox, from, to, slot);
    } catch (const std::exception& e) {
      r = Result::failed(
          Outcome::retry(driver_->name(), 0,
                         std::string("unexpected answer from the calendar server: ") + e.what()));
    }
    {
      std::lock_guard<std::mutex> lock(fb_mu_);
      free_slots_.push_back(slot);
    }
    fb_free_.notify_one();
    return r;
  }

  Outcome deliver(const DeliveryRequest& req) override {
    // The drivers read answers with nlohmann-json and pugixml; an answer of an unexpected shape
    // must end as an outcome, never as an exception through the dispatcher.
    try {
      return deliver_checked(req);
    } catch (const std::exception& e) {
      return Outcome::retry(driver_->name(), 0,
                            std::string("unexpected answer from the calendar server: ") + e.what());
    }
  }

 private:
  Outcome deliver_checked(const DeliveryRequest& req_in) {
    DeliveryRequest req = req_in;
    req.slot %= delivery_slots_;  // the slots above belong to free/busy
    if (req.mapped == nullptr || !req.mapped->is_object()) {
      return Outcome::reject("mapping", 0,
                             "the calendar connector needs a mapping that gives a JSON object "
                             "(see config/mappings/rdv-calendar.yaml)");
    }
    const nlohmann::json& mapped = *req.mapped;
    std::string op_text;
    if (auto it = operations_.find(req.message->type); it != operations_.end()) {
      op_text = it->second;
    } else if (mapped.contains("action") && mapped["action"].is_string()) {
      op_text = mapped["action"].get<std::string>();
    }
    Op op;
    if (!parse_op(op_text, op)) {
      return Outcome::reject("config", 0,
                             "no calendar operation for message type '" + req.message->type +
                                 "': add it to operations (create, update, delete or repair)");
    }
    Event e;
    e.key = req.message->correlation;
    if (e.key.empty() && mapped.contains("event_key") && mapped["event_key"].is_string()) {
      e.key = mapped["event_key"].get<std::string>();
    }
    if (e.key.empty()) {
      return Outcome::reject("config", 0,
                             "the message has no correlation key: the source must define one so "
                             "that moves and cancellations find the event again");
    }
    std::string err;
    bool need_event =
        op == Op::Create || op == Op::Update || (op == Op::Repair && mapped.contains("event"));
    if (!parse_event(mapped, need_event, e, err)) return Outcome::reject("mapping", 0, err);
    std::optional<CrossReference> xref;
    try {
      xref = xrefs_->get(name_, e.key);
    } catch (const std::exception& ex) {
      return Outcome::retry("store", 0,
                            std::string("cannot read the cross-reference: ") + ex.what());
    }
    if (xref) e.generation = read_version(*xref).generation;
    // A create whose outcome is unknown: whatever the settings, search before creating.
    bool unsure = xref && xref->external_id == kUnknown;
    // A tombstone: Relais deleted this key's event; nothing to update or delete.
    if (xref && (xref->external_id == kDeleted || unsure)) xref.reset();
    switch (op) {
      case Op::Create:
        if (xref) return update(e, *xref, req, "already created: updated instead");
        return create(e, req, "created", unsure);
      case Op::Update:
        if (!xref) return create(e, req, "no cross-reference: created", unsure);
        return update(e, *xref, req, "updated");
      case Op::Delete:
        return remove(e, xref, req);
      case Op::Repair:
        return repair(e, need_event, xref, req);
    }
    return Outcome::reject("config", 0, "unknown operation");
  }

  Outcome failed(const Result& r) { return r.failure; }

  // A create that went out without an answer (Result failed with "unknown_outcome"): the
  // server may have created the event. The marker cross-reference (external id "?") makes the
  // next attempt search by key before creating, whatever search_before_create says.
  Outcome create_failed(const Event& e, const Result& r, const DeliveryRequest& req) {
    if (r.failure.error_class != "unknown_outcome") return r.failure;
    CrossReference x;
    x.destination = name_;
    x.key = e.key;
    x.external_id = kUnknown;
    x.version = "||" + std::to_string(e.generation);
    x.message_id = req.message->id;
    try {
      xrefs_->put(x);
    } catch (const std::exception&) {
      // Without the marker the next attempt searches only where search_before_create holds.
    }
    return r.failure;
  }

  // After Relais deleted the key's event: the cross-reference becomes a tombstone
  // (external id "-", version "deleted|<generation>") so that a later create of the same key
  // gets a new Graph transactionId. False (with `o` a retry) when the store fails.
  bool bury(const Event& e, const DeliveryRequest& req, Outcome& o) {
    CrossReference x;
    x.destination = name_;
    x.key = e.key;
    x.external_id = kDeleted;
    x.version = "deleted|" + std::to_string(e.generation + 1);
    x.message_id = req.message->id;
    try {
      xrefs_->put(x);
    } catch (const std::exception& ex) {
      o = Outcome::retry(
          "store", 0,
          std::string("event removed but the cross-reference could not be updated: ") + ex.what());
      return false;
    }
    return true;
  }

  Outcome record(const Event& e, const RemoteRef& ref, const DeliveryRequest& req,
                 const std::string& text) {
    CrossReference x;
    x.destination = name_;
    x.key = e.key;
    x.external_id = ref.id;
    // The remote version, then the digests of the fields delivered (see changed_fields).
    x.version = ref.version + "|" + field_digests(e) + "|" + std::to_string(e.generation);
    x.message_id = req.message->id;
    try {
      xrefs_->put(x);
    } catch (const std::exception& ex) {
      // The event exists remotely; the next attempt finds it again (search or transactionId).
      return Outcome::retry(
          "store", 0,
          std::string("event written but the cross-reference could not be: ") + ex.what());
    }
    return Outcome::delivered(ref.id, driver_->name() + ": " + text);
  }

  Outcome create(const Event& e, const DeliveryRequest& req, const std::string& text,
                 bool unsure = false) {
    if (unsure || (!driver_->idempotent_create() && search_before_create_)) {
      Result f = driver_->find(e.mailbox, e.key, "", "", req.slot);
      if (f.kind == Result::Kind::Failed) return failed(f);
      if (!f.found.empty()) {
        // Created by an attempt whose cross-reference was lost: adopt the first, remove the
        // others, and bring it up to date.
        for (size_t i = 1; i < f.found.size(); ++i) {
          Result d = driver_->remove(e.mailbox, f.found[i].ref, req.slot);
          if (d.kind == Result::Kind::Failed) return failed(d);
        }
        Result u = driver_->update(e, f.found[0].ref, kAllFields, req.slot);
        if (u.kind == Result::Kind::Ok) {
          return record(e, u.ref, req,
                        text + " (found in the calendar by its key: " +
                            std::to_string(f.found.size()) + ", no duplicate created)");
        }
        if (u.kind == Result::Kind::Failed) return failed(u);
      }
    }
    Result r = driver_->create(e, req.slot);
    if (r.kind != Result::Kind::Ok) {
      return r.kind == Result::Kind::Failed
                 ? create_failed(e, r, req)
                 : Outcome::retry(driver_->name(), 0, "create answered not found");
    }
    if (r.ref.id.empty()) {
      return Outcome::retry(driver_->name(), 0,
                            "the server accepted the create but gave no event id: will look "
                            "again");
    }
    return record(e, r.ref, req, text);
  }

  Outcome update(const Event& e, const CrossReference& x, const DeliveryRequest& req,
                 const std::string& text) {
    Stored stored = read_version(x);
    std::string version = stored.remote;
    unsigned fields = changed_fields(e, stored.digests);
    if (fields == 0) {
      return Outcome::delivered(x.external_id,
                                driver_->name() + ": unchanged since the last delivery");
    }
    Result r = driver_->update(e, RemoteRef{x.external_id, version}, fields, req.slot);
    if (r.kind == Result::Kind::NotFound) {
      // Removed from the calendar by someone else: create it again, as a new generation.
      Event again = e;
      ++again.generation;
      return create(again, req, "the event was no longer in the calendar: created again");
    }
    if (r.kind == Result::Kind::Failed) return failed(r);
    return record(e, r.ref, req, text);
  }

  Outcome remove(const Event& e, const std::optional<CrossReference>& x,
                 const DeliveryRequest& req) {
    std::vector<RemoteRef> targets;
    std::string text;
    if (x) {
      targets.push_back(RemoteRef{x->external_id, x->version});
    } else {
      // No cross-reference: whatever carries the key (an event whose reference was lost) goes.
      Result f = driver_->find(e.mailbox, e.key, "", "", req.slot);
      if (f.kind == Result::Kind::Failed) return failed(f);
      for (const auto& ev : f.found) targets.push_back(ev.ref);
      if (targets.empty()) {
        return Outcome::delivered("", driver_->name() +
                                          ": no cross-reference and no event with this key in the "
                                          "calendar: nothing to remove");
      }
      text = "no cross-reference; ";
    }
    int gone = 0;
    for (const auto& t : targets) {
      Result r = driver_->remove(e.mailbox, t, req.slot);
      if (r.kind == Result::Kind::Failed) return failed(r);
      if (r.kind == Result::Kind::NotFound) ++gone;
    }
    if (Outcome o; !bury(e, req, o)) return o;
    if (gone == static_cast<int>(targets.size())) {
      return Outcome::delivered(
          targets.front().id,
          driver_->name() + ": " + text + "the event was already gone from the calendar");
    }
    return Outcome::delivered(targets.front().id,
                              driver_->name() + ": " + text + "removed " +
                                  std::to_string(targets.size() - static_cast<size_t>(gone)) +
                                  " event(s)");
  }

  // Reconciliation's repair: exactly one event with the last delivered state (the referenced
  // one when it is still there), or none when the appointment was cancelled.
  Outcome repair(const Event& e, bool keep, const std::optional<CrossReference>& x,
                 const DeliveryRequest& req) {
    Result f = driver_->find(e.mailbox, e.key, "", "", req.slot);
    if (f.kind == Result::Kind::Failed) return failed(f);
    size_t kept = f.found.size();
    if (keep && x) {
      for (size_t i = 0; i < f.found.size(); ++i) {
        if (f.found[i].ref.id == x->external_id) kept = i;
      }
    }
    if (keep && kept == f.found.size() && !f.found.empty()) kept = 0;
    int removed = 0;
    for (size_t i = 0; i < f.found.size(); ++i) {
      if (i == kept) continue;
      Result d = driver_->remove(e.mailbox, f.found[i].ref, req.slot);
      if (d.kind == Result::Kind::Failed) return failed(d);
      ++removed;
    }
    std::string text = "repair: removed " + std::to_string(removed) + " event(s)";
    if (!keep) {
      if (Outcome o; !bury(e, req, o)) return o;
      return Outcome::delivered("", driver_->name() + ": " + text);
    }
    if (kept < f.found.size()) {
      Result u = driver_->update(e, f.found[kept].ref, kAllFields, req.slot);
      if (u.kind == Result::Kind::Failed) return failed(u);
      if (u.kind == Result::Kind::Ok) return record(e, u.ref, req, text + ", updated the one kept");
    }
    // Nothing left with the key: a new generation (Graph may remember the transactionId of an
    // event deleted in Outlook).
    Event again = e;
    ++again.generation;
    Result c = driver_->create(again, req.slot);
    if (c.kind != Result::Kind::Ok) {
      return c.kind == Result::Kind::Failed ? create_failed(again, c, req)
                                            : Outcome::retry(driver_->name(), 0, "create failed");
    }
    return record(again, c.ref, req, text + ", created it again");
  }

  std::string name_;
  XrefStore* xrefs_;
  ThrottleGate gate_;  // before driver_: the driver keeps a pointer to it
  int delivery_slots_;
  std::unique_ptr<Driver> driver_;
  bool search_before_create_ = true;
  std::map<std::string, std::string> operations_;
  std::mutex fb_mu_;
  std::condition_variable fb_free_;
  std::vector<int> free_slots_;  // free/busy slots not in use (guarded by fb_mu_)
};

namespace {

void check(const ConfigView& c, const std::string& file, std::vector<ConfigError>& errors) {
  check_tls_client(c.object("tls"), file, errors);
  auto need = [&](const char* key, const std::string& why) {
    if (c.str(key).empty()) {
      errors.push_back(
          error_at(c.node(), file, c.path() + "." + key, key + (" is required " + why)));
    }
  };
  std::string driver = c.str("driver");
  std::string url = c.str("url");
  if (!url.empty() && url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
    errors.push_back(
        error_at(c.raw("url"), file, c.path() + ".url", "the URL must start with http(s)://"));
  }
  bool oauth = driver == "graph" || c.str("auth") == "oauth2";
  if (driver == "ews") need("url", "with the ews driver (the EWS endpoint)");
  if (driver == "ews" && !oauth) {
    need("user", "with auth " + c.str("auth"));
    need("password", "with auth " + c.str("auth"));
  }
  if (oauth) {
    need("client_id", "for OAuth2 client credentials");
    need("client_secret", "for OAuth2 client credentials");
    if (c.str("tenant").empty() && c.str("token_url").empty()) {
      errors.push_back(
          error_at(c.node(), file, c.path(), "OAuth2 needs tenant (or token_url) to fetch tokens"));
    }
  }
  for (const auto& [type, op] : c.string_map("operations")) {
    Op o;
    if (!parse_op(op, o)) {
      errors.push_back(error_at(c.raw("operations"), file, c.path() + ".operations." + type,
                                "the operation must be create, update, delete or repair"));
    }
  }
}

}  // namespace

TokenSettings token_settings(const ConfigView& c, const std::string& default_scope) {
  TokenSettings t;
  t.token_url = c.str("token_url");
  if (t.token_url.empty() && !c.str("tenant").empty()) {
    t.token_url = "https://login.microsoftonline.com/" + c.str("tenant") + "/oauth2/v2.0/token";
  }
  t.client_id = c.str("client_id");
  t.client_secret = c.str("client_secret");
  t.scope = c.str("scope").empty() ? default_scope : c.str("scope");
  t.transfer = curl_transfer_from(c, c.path());
  return t;
}

std::unique_ptr<Driver> make_driver(const ConfigView& config, const std::string& destination,
                                    int slots, const Clock& clock, ThrottleGate* gate) {
  if (config.str("driver") == "graph") {
    return make_graph_driver(config, destination, slots, clock, gate);
  }
  return make_ews_driver(config, destination, slots, clock, gate);
}

Result free_busy(Connector& connector, const std::string& mailbox, const std::string& from_utc,
                 const std::string& to_utc) {
  auto* c = dynamic_cast<CalendarConnector*>(&connector);
  if (c == nullptr) {
    return Result::failed(Outcome::reject("config", 0, "this destination is not a calendar"));
  }
  return c->free_busy(mailbox, from_utc, to_utc);
}

}  // namespace calendar

void register_calendar_connector(ConnectorRegistry& registry) {
  ConnectorKind k;
  k.name = "calendar";
  k.description =
      "Outlook calendars: Exchange (EWS) or Exchange Online (Microsoft Graph); planned, moved "
      "and cancelled appointments become created, updated and deleted events";
  k.spec = &calendar::calendar_spec();
  k.check = calendar::check;
  k.create = [](const ConnectorContext& ctx) -> std::unique_ptr<Connector> {
    return std::make_unique<calendar::CalendarConnector>(ctx);
  };
  registry.add(std::move(k));
}

}  // namespace relais
