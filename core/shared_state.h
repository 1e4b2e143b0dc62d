#pragma once
// What the nodes of one installation share: console sessions, login throttling, request rate
// limits, change notifications and what each node reports for the console's dashboard. Each is an
// interface with an in-process implementation (one node, the default: this file and
// shared_state.cpp) and a Redis one (store/redis/, chosen by the `redis:` section) so that several
// nodes behind one address behave as one.
//
// Every operation that may need the network answers a Status: an implementation that cannot
// reach its state says so (503) instead of guessing. What the callers do then is decided in
// docs/security.md ("Shared state"): no session is accepted unchecked, login attempts are
// refused, rate limits fall back to the node's own bucket, notifications to polling.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/rate_bucket.h"
#include "core/status.h"

namespace relais {

// One console session as stored: never its cookie value, only what the session grants.
struct SessionRecord {
  std::string user, role, csrf;
  Millis created = 0;  // login time (a session ends `max_ms` after it)
};

// Console sessions by key — the SHA-256 of the cookie value, never the value itself. A session
// ends after `idle_ms` without a request or `max_ms` after its creation. Implementations are
// thread-safe.
class SessionStore {
 public:
  virtual ~SessionStore() = default;
  // Stores a new session.
  virtual Status put(const std::string& key, const SessionRecord& session) = 0;
  // The live session under `key` (its idle time restarts), or nullopt when there is none or it
  // expired. !ok when the sessions cannot be read (the caller refuses the request: 503).
  virtual Status get(const std::string& key, std::optional<SessionRecord>& out) = 0;
  virtual Status remove(const std::string& key) = 0;
  // Ends every session of a user (disabled, role or password changed).
  virtual Status remove_user(const std::string& user) = 0;
};

// Failed logins counted per user name and per client address: after `max_failures` within
// `window_ms` a user name is refused until the window has passed; an address after four times
// as many (several people behind one proxy). Implementations are thread-safe.
class LoginThrottle {
 public:
  virtual ~LoginThrottle() = default;
  // `wait`: 0 when an attempt is allowed, else the milliseconds to wait. !ok when the counts
  // cannot be read (the caller refuses the attempt: a brute-force window never opens).
  virtual Status blocked_for(const std::string& user, const std::string& address, Millis& wait) = 0;
  virtual Status failed(const std::string& user, const std::string& address) = 0;
  virtual Status succeeded(const std::string& user) = 0;
};

// Request rate limits per caller name (one GCRA bucket each, core/rate_bucket.h). Thread-safe.
class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // Takes one request of `name`: 0 when admitted (or unlimited), else the microseconds to wait.
  // Never fails: an implementation that cannot reach its shared state applies its node's own
  // bucket.
  virtual Micros take(const std::string& name) = 0;
  // The limit applied to `name`.
  virtual RateLimit limit(const std::string& name) = 0;
};

// Change notifications between nodes: "a mapping or table was published or activated", "an API
// token was created or revoked". (A console user changed needs none: its sessions are ended in
// the SessionStore, which every node reads.) Subscribers re-read what the topic
// names from the store (the truth); a notification carries no data. Thread-safe.
class ChangeBus {
 public:
  // Topics.
  static constexpr const char* kMappings = "mappings";
  static constexpr const char* kTokens = "tokens";
  // Given to subscribers when notifications may have been lost (a reconnect): re-read all.
  static constexpr const char* kAll = "*";

  using Handler = std::function<void(const std::string& topic)>;
  virtual ~ChangeBus() = default;
  // Tells every node, this one included, that `topic` changed. Never blocks for long; a bus
  // that cannot publish logs it (the store's generation is still polled).
  virtual void publish(const std::string& topic) = 0;
  // `handler` is called for every topic published by any node (kAll after a reconnect), on the
  // bus's own thread or the publisher's, under the bus's lock: it must be quick and must not
  // publish. Returns an id for unsubscribe().
  virtual int subscribe(Handler handler) = 0;
  // After it returns, the handler is not running and will not be called again.
  virtual void unsubscribe(int id) = 0;
};

// What each node reports so that every node can show the installation as one (the console's
// dashboard behind a round-robin): one text (JSON) per topic and node, forgotten `ttl_ms` after
// it was put unless it is put again — a node that stops reporting drops out by itself. Topics:
// kAlerts, the alert monitor's state, and kSources, the polling sources' states, put by the node
// that runs them (the leader); kDispatch, a node's dispatcher figures per destination (its
// queues are its partitions' only).
// A report holds figures and names of rules and destinations, never a message's content.
// Implementations are thread-safe.
class NodeReports {
 public:
  static constexpr const char* kAlerts = "alerts";
  static constexpr const char* kDispatch = "dispatch";
  static constexpr const char* kSources = "sources";

  virtual ~NodeReports() = default;
  virtual Status put(const std::string& topic, const std::string& node, const std::string& text,
                     Millis ttl_ms) = 0;
  // The live reports on `topic`: node → text. !ok when they cannot be read (the caller shows
  // its own figures and says that they are partial).
  virtual Status get(const std::string& topic, std::map<std::string, std::string>& out) = 0;
};

// The console's fixed timings: a session ends after 30 minutes idle or 10 hours after login; a
// user name is refused after 5 failed logins within 15 minutes.
constexpr Millis kSessionIdleMs = 30 * 60000;
constexpr Millis kSessionMaxMs = 10 * 3600000;
constexpr int kLoginMaxFailures = 5;
constexpr Millis kLoginWindowMs = 15 * 60000;

// The shared state of one node, as the API server and the mapping repository use it. Plain
// owner of its parts; `where` names it for the logs ("in process", or the Redis address).
struct SharedState {
  std::unique_ptr<SessionStore> sessions;
  std::unique_ptr<LoginThrottle> logins;
  std::unique_ptr<RateLimiter> rates;
  std::unique_ptr<ChangeBus> changes;
  std::unique_ptr<NodeReports> reports;
  std::string where;
};

// The `redis:` section: where the shared state lives when there are several nodes. Plain value.
struct RedisSettings {
  std::string uri;                 // "redis://host:port/db"; "" = no Redis (one node, in process)
  std::string password;            // read from the variable `password_env` names ("" = no AUTH)
  std::string prefix = "relais:";  // of every key and channel
  int64_t timeout_ms = 2000;       // connect, read and write
  bool enabled() const { return !uri.empty(); }
};

// The in-process parts (one node). `limit_of` gives a caller's rate limit by name.
SharedState local_shared_state(const Clock& clock,
                               std::function<RateLimit(const std::string&)> limit_of);

// ---------------------------------------------------------------------------------------------
// In-process implementations (one node).

// Sessions in memory: a restart logs everybody out. One mutex, short critical sections.
class LocalSessionStore final : public SessionStore {
 public:
  LocalSessionStore(const Clock& clock, Millis idle_ms, Millis max_ms)
      : clock_(clock), idle_ms_(idle_ms), max_ms_(max_ms) {}
  Status put(const std::string& key, const SessionRecord& session) override;
  Status get(const std::string& key, std::optional<SessionRecord>& out) override;
  Status remove(const std::string& key) override;
  Status remove_user(const std::string& user) override;

 private:
  struct Entry {
    SessionRecord session;
    Millis seen = 0;
  };
  bool expired(const Entry& e, Millis now) const {
    return now - e.seen > idle_ms_ || now - e.session.created > max_ms_;
  }
  const Clock& clock_;
  Millis idle_ms_, max_ms_;
  std::mutex mu_;
  std::map<std::string, Entry> by_key_;
};

// Counts in memory, per process. Bounded: a flood of invented names forgets the counts whose
// window has passed.
class LocalLoginThrottle final : public LoginThrottle {
 public:
  LocalLoginThrottle(const Clock& clock, int max_failures, Millis window_ms)
      : clock_(clock), max_(max_failures), window_(window_ms) {}
  Status blocked_for(const std::string& user, const std::string& address, Millis& wait) override;
  Status failed(const std::string& user, const std::string& address) override;
  Status succeeded(const std::string& user) override;

 private:
  struct Count {
    int failures = 0;
    Millis first = 0;
  };
  Millis wait_of(Count& c, Millis now, int max) const;
  const Clock& clock_;
  int max_;
  Millis window_;
  std::mutex mu_;
  std::map<std::string, Count> users_, addresses_;
};

// The buckets of this process (RateBuckets on the steady clock).
class LocalRateLimiter final : public RateLimiter {
 public:
  explicit LocalRateLimiter(std::function<RateLimit(const std::string&)> limit_of)
      : buckets_(std::move(limit_of)) {}
  Micros take(const std::string& name) override { return buckets_.take(name, steady_micros()); }
  RateLimit limit(const std::string& name) override { return buckets_.limit(name); }

 private:
  RateBuckets buckets_;
};

// The subscribers of a bus: called under one mutex, so that remove() waits for a running call.
// Thread-safe.
class ChangeHandlers {
 public:
  int add(ChangeBus::Handler h);
  void remove(int id);
  void call(const std::string& topic);

 private:
  std::mutex mu_;
  int next_ = 1;
  std::map<int, ChangeBus::Handler> handlers_;
};

// Notifications within this process: publish() calls every handler on the publisher's thread.
class LocalChangeBus final : public ChangeBus {
 public:
  void publish(const std::string& topic) override { handlers_.call(topic); }
  int subscribe(Handler handler) override { return handlers_.add(std::move(handler)); }
  void unsubscribe(int id) override { handlers_.remove(id); }

 private:
  ChangeHandlers handlers_;
};

// The reports of this process (one node: its own only), kept until they expire.
class LocalNodeReports final : public NodeReports {
 public:
  explicit LocalNodeReports(const Clock& clock) : clock_(clock) {}
  Status put(const std::string& topic, const std::string& node, const std::string& text,
             Millis ttl_ms) override;
  Status get(const std::string& topic, std::map<std::string, std::string>& out) override;

 private:
  const Clock& clock_;
  std::mutex mu_;
  // topic → node → (expiry, text)
  std::map<std::string, std::map<std::string, std::pair<Millis, std::string>>> reports_;
};

}  // namespace relais
