#pragma once
// Outlook calendars: the `calendar` connector kind with two drivers, `ews` (Exchange Web
// Services, SOAP 1.1, Exchange Server SE and Exchange Online) and `graph` (Microsoft Graph),
// one behaviour. The operation follows the message type through configuration (planned →
// create, moved → update, cancelled → delete); cross-references (core/xref_store.h) link the
// correlation key to the remote event. Also the OAuth2 client-credentials token cache shared by
// both drivers, the search by correlation key (crash protection and reconciliation) and
// free/busy. See docs/connectors/calendar.md.
//
// Personal data: events carry only what the mapping put there; nothing here logs a subject, a
// body or a location. Failure texts name the mailbox (support needs it to fix rights).

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "connectors/http/curl_capture.h"
#include "core/clock.h"
#include "core/connector.h"
#include "core/status.h"
#include "core/store.h"
#include "core/throttle_gate.h"
#include "core/xref_store.h"

namespace relais {

// Registers the "calendar" connector kind.
void register_calendar_connector(ConnectorRegistry& registry);

namespace calendar {

// The calendar event the mapping produced (config/mappings/rdv-calendar.yaml). Plain value.
struct Event {
  std::string mailbox;  // the professional's SMTP address
  std::string key;      // the correlation key (carried by the extended property)
  std::string subject;
  std::string body;   // plain text
  std::string start;  // ISO 8601 with offset, e.g. 2019-05-17T10:00:00+02:00
  std::string end;
  std::string location;
  // The mapping's time zone (IANA "Europe/Paris" or a Windows id); "" = the configured one.
  // Graph states the event's times in it; it is not part of the field digests.
  std::string time_zone;
  std::vector<std::string> categories;
  int reminder_minutes = -1;     // -1 = no reminder
  std::string show_as = "busy";  // free | tentative | busy | oof | workingElsewhere
  // How many times Relais deleted this key's event before: part of the Graph transactionId, so
  // that an RDV planned again after a cancellation is a new create, not a replay.
  int generation = 0;
};

// The fields an update sets, as a bit mask.
enum FieldBits : unsigned {
  kSubject = 1,
  kBody = 2,
  kCategories = 4,
  kReminder = 8,
  kStart = 16,  // with the start time zone
  kEnd = 32,    // with the end time zone
  kShowAs = 64,
  kLocation = 128,
  kAllFields = 255,
};
// Short digests of every field of `e`, kept with the cross-reference so that an update sends
// only what changed (and leaves alone what the professional edited in Outlook).
std::string field_digests(const Event& e);
// The fields of `e` whose digest differs from `stored` (every field when `stored` is empty or
// not a digest list).
unsigned changed_fields(const Event& e, const std::string& stored);

// Reads `mapped` ({mailbox, event: {...}}); for a delete only the mailbox is needed.
// false with a readable error when something required is missing or malformed.
bool parse_event(const nlohmann::json& mapped, bool need_event, Event& out, std::string& error);

// "2019-05-17T10:00:00+02:00" → "2019-05-17T08:00:00Z"; false when it is not ISO 8601 with a
// Z or ±hh:mm offset.
bool to_utc(const std::string& iso, std::string& out);
// A deterministic UUID-shaped transaction id for a correlation key and its generation (Graph
// transactionId).
std::string transaction_id(const std::string& key, int generation = 0);

// What a remote system calls an event: its id and its version (EWS ChangeKey, Graph changeKey).
struct RemoteRef {
  std::string id;
  std::string version;
};

// An event found in a calendar (search by key, reconciliation).
struct RemoteEvent {
  RemoteRef ref;
  std::string key;    // the extended property's value
  std::string start;  // UTC, as the server gives it
  std::string end;
  std::string subject;
};

struct BusyPeriod {
  std::string start;  // UTC, ISO 8601
  std::string end;
  std::string status;  // busy | tentative | oof | workingElsewhere
};

// The result of one driver operation. Value type.
struct Result {
  enum class Kind { Ok, NotFound, Failed };
  Kind kind = Kind::Ok;
  RemoteRef ref;                   // Ok (create/update)
  Outcome failure;                 // Failed: a retry or a reject with its reason
  std::vector<RemoteEvent> found;  // Ok (find)
  std::vector<BusyPeriod> busy;    // Ok (free_busy)
  int requests = 0;                // HTTP requests it took

  static Result ok(RemoteRef r = {}) {
    Result x;
    x.ref = std::move(r);
    return x;
  }
  static Result not_found() {
    Result x;
    x.kind = Kind::NotFound;
    return x;
  }
  static Result failed(Outcome o) {
    Result x;
    x.kind = Kind::Failed;
    x.failure = std::move(o);
    return x;
  }
};

// The protocol side of the connector. Implementations are safe for concurrent calls with
// distinct slots (one curl handle per slot) and own their handles.
class Driver {
 public:
  virtual ~Driver() = default;
  virtual std::string name() const = 0;
  // Creates the event; the driver's own idempotency (Graph transactionId) applies.
  virtual Result create(const Event& e, int slot) = 0;
  // Sets the `fields` (FieldBits) of the event on the existing item; NotFound when it no longer
  // exists.
  virtual Result update(const Event& e, const RemoteRef& ref, unsigned fields, int slot) = 0;
  // Removes the item; NotFound when it no longer exists.
  virtual Result remove(const std::string& mailbox, const RemoteRef& ref, int slot) = 0;
  // The events of `mailbox` whose extended property equals `key`; with an empty key, every
  // event carrying the property that starts in [from_utc, to_utc).
  virtual Result find(const std::string& mailbox, const std::string& key,
                      const std::string& from_utc, const std::string& to_utc, int slot) = 0;
  // The busy periods of `mailbox` over [from_utc, to_utc).
  virtual Result free_busy(const std::string& mailbox, const std::string& from_utc,
                           const std::string& to_utc, int slot) = 0;
  // True when a repeated create cannot duplicate (Graph transactionId); false when the
  // connector must search by key first (EWS).
  virtual bool idempotent_create() const = 0;
  // "Test the connection": the OAuth2 token when the driver uses one (the credentials), then
  // a connection to the server (TLS included). Writes nothing to any calendar.
  virtual Status probe() = 0;
};

// Builds the driver a validated `calendar` configuration names. Throws at start-up. With a
// `gate` (owned by the caller, outliving the driver), every request first asks it whether its
// mailbox is paused, and a partner's "slow down" for a mailbox pauses it there.
std::unique_ptr<Driver> make_driver(const ConfigView& config, const std::string& destination,
                                    int slots, const Clock& clock, ThrottleGate* gate = nullptr);

// OAuth2 client-credentials settings.
struct TokenSettings {
  std::string token_url;
  std::string client_id;
  std::string client_secret;
  std::string scope;
  CurlTransfer transfer;
};

// A bearer token, or why there is none (retry on network trouble, reject on a refused grant).
struct TokenResult {
  bool ok = false;
  std::string token;
  Outcome failure;
};

// Reads a token endpoint's answer (any bytes): the token and when to refresh it (a fifth of its
// lifetime early, at most 5 minutes; lifetimes bounded to a day), or why it was refused (a
// retry for 429/5xx, else a configuration fault with the fix). Never throws.
TokenResult read_token_answer(long status, const std::string& body, Millis now, Millis& refresh_at);

// Responsibility: fetches client-credentials tokens and keeps them until shortly before they
// expire (refreshed when less than a fifth of their lifetime, at most 5 minutes, is left).
// One cache per process (shared_token_cache()) is shared by every driver, keyed by token URL,
// client id, scope and (a digest of) the secret.
// Thread-safety: all methods may be called from any thread. No lock is held during a token
// request: concurrent callers for the same credentials wait for the one fetch in flight
// (single flight) and take its result; callers for other credentials, and those whose token is
// cached, are never held up by a slow token endpoint.
// Ownership: owns its tokens; each fetch uses its own curl handle.
class TokenCache {
 public:
  TokenCache();
  ~TokenCache();
  TokenCache(const TokenCache&) = delete;
  TokenCache& operator=(const TokenCache&) = delete;

  // The cached token, or a fresh one. `force` fetches a new one whatever the cache holds.
  TokenResult get(const TokenSettings& s, const Clock& clock, bool force = false);
  // Forgets the token of `s` (after a 401).
  void invalidate(const TokenSettings& s);
  // Tokens fetched so far (for tests and metrics).
  int fetches() const;

 private:
  struct Entry {
    std::string token;
    Millis refresh_at = 0;
    bool fetching = false;    // a fetch is in flight (its caller holds no lock)
    uint64_t generation = 0;  // fetches completed for this key
    TokenResult last;         // the result of the last fetch, for those who waited for it
  };
  // Performs the token request (no lock held).
  TokenResult fetch(const TokenSettings& s, Millis now, Millis& refresh_at);
  mutable std::mutex mu_;
  std::condition_variable done_;
  std::map<std::string, Entry> entries_;
  int fetches_ = 0;
};
TokenCache& shared_token_cache();

// The drivers' probe: a token first when `oauth` (a refused grant names the fix), then
// probe_connection(url).
Status probe_server(bool oauth, const TokenSettings& token, const Clock& clock,
                    const std::string& url, const CurlTransfer& transfer);

// Busy periods of `mailbox` through the running calendar connector `connector` (EWS
// GetUserAvailability or Graph getSchedule), for the portal's online booking. It goes through
// the connector's per-mailbox gate: while the partner has paused the mailbox, nothing is sent
// and the result fails with a throttle outcome (retry_after_ms = the time left). A connector
// of another kind gives a reject. Callable from any thread, alongside deliveries.
Result free_busy(Connector& connector, const std::string& mailbox, const std::string& from_utc,
                 const std::string& to_utc);

// ---- reconciliation ----------------------------------------------------------------------

// One difference between what Relais believes and a calendar.
struct Finding {
  std::string kind;  // duplicate | missing | stale | leftover
  std::string mailbox;
  std::string key;
  std::string detail;  // for a person (ids, times); no subject or body
  // What --repair delivers through the normal queue (message type "calendar.repair"): the
  // last delivered state with action "repair" (the connector keeps one event with that state,
  // or none when the appointment was cancelled).
  nlohmann::json repair;
};

struct ReconcileReport {
  std::vector<Finding> findings;
  size_t keys_known = 0;            // keys with a last delivered state
  size_t remote_events = 0;         // events carrying the property in the period
  std::vector<std::string> errors;  // calendars that could not be read
};

// Compares the cross-references and the last delivered state of `destination` (from `store`)
// with the events carrying the key property in each known mailbox, over [from_utc, to_utc).
ReconcileReport reconcile(Driver& driver, XrefStore& xrefs, Store& store,
                          const std::string& destination, const std::string& from_utc,
                          const std::string& to_utc);

}  // namespace calendar
}  // namespace relais
