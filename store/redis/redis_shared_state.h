#pragma once
// The shared state of core/shared_state.h kept in Redis, so that several nodes behind one
// address behave as one and a restart of relais logs nobody out. Each part owns its own
// connection (store/redis/redis_client.h). Keys start with the configured prefix and never hold
// a cookie value, a user name or an address in clear (their SHA-256 instead):
//   <prefix>session:<sha256(cookie)>        hash user/role/csrf/created, TTL = idle timeout
//   <prefix>user-sessions:<sha256(user)>    set of the user's session digests (remove_user)
//   <prefix>login:user:<sha256(name)>       failed logins, TTL = the window
//   <prefix>login:addr:<sha256(address)>    failed logins of an address, TTL = the window
//   <prefix>rate:<sha256(caller)>           the caller's bucket (its theoretical arrival time)
//   channel <prefix>changes                 change notifications (the topic as message)
//   <prefix>reports:<topic>                 set of the nodes that reported on the topic
//   <prefix>report:<topic>:<node>           a node's report (JSON figures), TTL = its ttl
// What each does when Redis is unreachable is in docs/security.md ("Shared state").

#include <atomic>
#include <condition_variable>
#include <memory>
#include <string>
#include <thread>

#include "core/shared_state.h"
#include "store/redis/redis_client.h"

namespace relais::redis {

// Sessions in Redis. Every operation is one atomic round trip (a Lua script or MULTI). Redis
// unreachable: !ok (the console answers 503). Thread-safe.
class RedisSessionStore final : public SessionStore {
 public:
  RedisSessionStore(std::unique_ptr<RedisClient> client, std::string prefix, const Clock& clock,
                    Millis idle_ms, Millis max_ms);
  Status put(const std::string& key, const SessionRecord& session) override;
  Status get(const std::string& key, std::optional<SessionRecord>& out) override;
  Status remove(const std::string& key) override;
  Status remove_user(const std::string& user) override;

 private:
  std::unique_ptr<RedisClient> client_;
  const std::string prefix_;
  const Clock& clock_;
  const Millis idle_ms_, max_ms_;
};

// Failed logins counted in Redis (INCR, the window as the key's TTL, set with the first
// failure, in one script). Redis unreachable: !ok — the login is refused (fail closed).
// Thread-safe.
class RedisLoginThrottle final : public LoginThrottle {
 public:
  RedisLoginThrottle(std::unique_ptr<RedisClient> client, std::string prefix, int max_failures,
                     Millis window_ms);
  Status blocked_for(const std::string& user, const std::string& address, Millis& wait) override;
  Status failed(const std::string& user, const std::string& address) override;
  Status succeeded(const std::string& user) override;

 private:
  std::string user_key(const std::string& user) const;
  std::string address_key(const std::string& address) const;
  std::unique_ptr<RedisClient> client_;
  const std::string prefix_;
  const int max_;
  const Millis window_;
};

// Rate limits in Redis: the GCRA bucket of core/rate_bucket.h as one Lua script on Redis's
// clock. Redis unreachable: the node's own bucket (LocalRateLimiter) decides, so the limit
// holds per node. Thread-safe.
class RedisRateLimiter final : public RateLimiter {
 public:
  RedisRateLimiter(std::unique_ptr<RedisClient> client, std::string prefix,
                   std::function<RateLimit(const std::string&)> limit_of);
  Micros take(const std::string& name) override;
  RateLimit limit(const std::string& name) override { return local_.limit(name); }

 private:
  std::unique_ptr<RedisClient> client_;
  const std::string prefix_;
  LocalRateLimiter local_;  // the limits by name (cached) and the fallback
};

// Change notifications by PUB/SUB on `<prefix>changes`. A thread of its own holds the
// subscription (its own connection: polled every 200 ms for stop, a PING after 5 s of silence,
// the connection given up when nothing came back for 15 s) and re-subscribes after a loss with
// back-off; after every subscription — the first and each one after a reconnect — it gives the
// handlers kAll, because PUB/SUB loses what was published meanwhile: the subscribers re-read
// the store (the mapping repository its generation). Publishing uses another connection.
// Thread-safe; the destructor stops and joins the thread.
class RedisChangeBus final : public ChangeBus {
 public:
  RedisChangeBus(std::unique_ptr<RedisClient> publisher, std::string prefix,
                 std::chrono::milliseconds timeout);
  ~RedisChangeBus() override;
  void publish(const std::string& topic) override;
  int subscribe(Handler handler) override { return handlers_.add(std::move(handler)); }
  void unsubscribe(int id) override { handlers_.remove(id); }
  // How many times the subscription was made (1 after the start; +1 per reconnect).
  int subscriptions() const { return subscriptions_.load(); }

 private:
  void run();
  bool listen(void* context);  // one connection's life; false when stopped
  std::unique_ptr<RedisClient> publisher_;
  const std::string channel_;
  const std::chrono::milliseconds timeout_;
  ChangeHandlers handlers_;
  std::atomic<int> subscriptions_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

// The nodes' reports in Redis: put is one round trip (SADD + SET with PX), get one script that
// reads every live report and forgets the nodes whose report expired. Redis unreachable: !ok.
// Thread-safe.
class RedisNodeReports final : public NodeReports {
 public:
  RedisNodeReports(std::unique_ptr<RedisClient> client, std::string prefix);
  Status put(const std::string& topic, const std::string& node, const std::string& text,
             Millis ttl_ms) override;
  Status get(const std::string& topic, std::map<std::string, std::string>& out) override;

 private:
  std::unique_ptr<RedisClient> client_;
  const std::string prefix_;
};

// The shared state in Redis: one connection per part. Throws std::runtime_error on a malformed
// URI (start-up). Warns (does not fail) when Redis is unreachable at start — the console answers
// 503 until it is — and when Redis keeps nothing on disk (no appendonly, no save): a restart of
// Redis would then log everybody out.
SharedState open_redis_shared_state(const RedisSettings& settings, const Clock& clock,
                                    std::function<RateLimit(const std::string&)> limit_of);

// Whether Redis persists its data (CONFIG GET appendonly / save): "" when it does, else why
// not (or why it could not be told).
std::string persistence_problem(RedisClient& client);

}  // namespace relais::redis
