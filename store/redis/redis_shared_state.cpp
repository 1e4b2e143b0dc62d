#include "store/redis/redis_shared_state.h"

#include <hiredis/hiredis.h>
#include <poll.h>

#include <algorithm>
#include <stdexcept>

#include "core/crypto.h"
#include "core/log.h"
#include "core/thread_name.h"

namespace relais::redis {

namespace {

// KEYS[1] the session; ARGV: now, max_ms, idle_ms. The session's fields, its idle time restarted
// (never beyond created + max), or nil when there is none or it is too old.
const char* const kSessionGet = R"lua(
local v = redis.call('HMGET', KEYS[1], 'user', 'role', 'csrf', 'created')
if not v[1] then return false end
local left = tonumber(v[4]) + tonumber(ARGV[2]) - tonumber(ARGV[1])
if left <= 0 then
  redis.call('DEL', KEYS[1])
  return false
end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.min(tonumber(ARGV[3]), left)))
return v
)lua";

// KEYS[1] the user's set of session digests; ARGV[1] the prefix of a session key. Deletes them.
const char* const kSessionRemoveUser = R"lua(
local digests = redis.call('SMEMBERS', KEYS[1])
for _, d in ipairs(digests) do redis.call('DEL', ARGV[1] .. d) end
redis.call('DEL', KEYS[1])
return #digests
)lua";

// KEYS: the user's and the address's counters; ARGV[1] the window (ms). One more failure each;
// a counter's window starts with its first failure.
const char* const kLoginFailed = R"lua(
for _, k in ipairs(KEYS) do
  if redis.call('INCR', k) == 1 then redis.call('PEXPIRE', k, ARGV[1]) end
end
return 0
)lua";

// KEYS: the user's and the address's counters; ARGV: their thresholds. The wait (ms), 0 = none.
const char* const kLoginBlocked = R"lua(
local wait = 0
for i, k in ipairs(KEYS) do
  if tonumber(redis.call('GET', k) or '0') >= tonumber(ARGV[i]) then
    wait = math.max(wait, redis.call('PTTL', k))
  end
end
return wait
)lua";

std::string ms(Millis v) {
  return std::to_string(v);
}

// KEYS[1] the set of the nodes that reported on a topic; ARGV[1] the prefix of their reports'
// keys. Node, report, node, report… of the live reports; the nodes whose report expired leave
// the set.
const char* const kReportsGet = R"lua(
local out = {}
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('GET', ARGV[1] .. node)
  if v then
    out[#out + 1] = node
    out[#out + 1] = v
  else
    redis.call('SREM', KEYS[1], node)
  end
end
return out
)lua";

}  // namespace

// ---------------------------------------------------------------------------------------------
// RedisSessionStore

RedisSessionStore::RedisSessionStore(std::unique_ptr<RedisClient> client, std::string prefix,
                                     const Clock& clock, Millis idle_ms, Millis max_ms)
    : client_(std::move(client)),
      prefix_(std::move(prefix)),
      clock_(clock),
      idle_ms_(idle_ms),
      max_ms_(max_ms) {}

Status RedisSessionStore::put(const std::string& key, const SessionRecord& s) {
  const std::string session = prefix_ + "session:" + key;
  const std::string mine = prefix_ + "user-sessions:" + sha256_hex(s.user);
  std::vector<RedisReply> replies;
  return client_->pipeline(
      {{"MULTI"},
       {"HSET", session, "user", s.user, "role", s.role, "csrf", s.csrf, "created", ms(s.created)},
       {"PEXPIRE", session, ms(idle_ms_)},
       {"SADD", mine, key},
       {"PEXPIRE", mine, ms(max_ms_)},
       {"EXEC"}},
      replies);
}

Status RedisSessionStore::get(const std::string& key, std::optional<SessionRecord>& out) {
  out.reset();
  RedisReply r;
  Status st = client_->eval(kSessionGet, {prefix_ + "session:" + key},
                            {ms(clock_.now_ms()), ms(max_ms_), ms(idle_ms_)}, r);
  if (!st.ok || r.type != RedisReply::Type::Array) return st;
  if (r.elements.size() != 4) {
    return Status::failure(503, "shared state unavailable", "a session in Redis is malformed");
  }
  SessionRecord s{r.elements[0].str, r.elements[1].str, r.elements[2].str, 0};
  s.created = std::atoll(r.elements[3].str.c_str());
  out = std::move(s);
  return st;
}

Status RedisSessionStore::remove(const std::string& key) {
  RedisReply r;
  return client_->command({"DEL", prefix_ + "session:" + key}, r);
}

Status RedisSessionStore::remove_user(const std::string& user) {
  RedisReply r;
  return client_->eval(kSessionRemoveUser, {prefix_ + "user-sessions:" + sha256_hex(user)},
                       {prefix_ + "session:"}, r);
}

// ---------------------------------------------------------------------------------------------
// RedisLoginThrottle

RedisLoginThrottle::RedisLoginThrottle(std::unique_ptr<RedisClient> client, std::string prefix,
                                       int max_failures, Millis window_ms)
    : client_(std::move(client)),
      prefix_(std::move(prefix)),
      max_(max_failures),
      window_(window_ms) {}

std::string RedisLoginThrottle::user_key(const std::string& user) const {
  return prefix_ + "login:user:" + sha256_hex(user);
}

std::string RedisLoginThrottle::address_key(const std::string& address) const {
  return prefix_ + "login:addr:" + sha256_hex(address);
}

Status RedisLoginThrottle::blocked_for(const std::string& user, const std::string& address,
                                       Millis& wait) {
  wait = 0;
  RedisReply r;
  // An address gets more room than a user name (several people behind one proxy).
  Status st = client_->eval(kLoginBlocked, {user_key(user), address_key(address)},
                            {std::to_string(max_), std::to_string(max_ * 4)}, r);
  if (st.ok) wait = std::max<Millis>(0, r.integer);
  return st;
}

Status RedisLoginThrottle::failed(const std::string& user, const std::string& address) {
  RedisReply r;
  return client_->eval(kLoginFailed, {user_key(user), address_key(address)}, {ms(window_)}, r);
}

Status RedisLoginThrottle::succeeded(const std::string& user) {
  RedisReply r;
  return client_->command({"DEL", user_key(user)}, r);
}

// ---------------------------------------------------------------------------------------------
// RedisRateLimiter

RedisRateLimiter::RedisRateLimiter(std::unique_ptr<RedisClient> client, std::string prefix,
                                   std::function<RateLimit(const std::string&)> limit_of)
    : client_(std::move(client)), prefix_(std::move(prefix)), local_(std::move(limit_of)) {}

Micros RedisRateLimiter::take(const std::string& name) {
  RateLimit l = local_.limit(name);
  if (l.per_second <= 0) return 0;
  auto [interval, tolerance] = rate_bucket_parameters(l.per_second, l.burst);
  RedisReply r;
  Status st = client_->eval(kRateBucketScript, {prefix_ + "rate:" + sha256_hex(name)},
                            {std::to_string(interval), std::to_string(tolerance)}, r);
  if (!st.ok) return local_.take(name);  // the node's own bucket meanwhile
  return std::max<Micros>(0, r.integer);
}

// ---------------------------------------------------------------------------------------------
// RedisNodeReports

RedisNodeReports::RedisNodeReports(std::unique_ptr<RedisClient> client, std::string prefix)
    : client_(std::move(client)), prefix_(std::move(prefix)) {}

Status RedisNodeReports::put(const std::string& topic, const std::string& node,
                             const std::string& text, Millis ttl_ms) {
  std::vector<RedisReply> replies;
  return client_->pipeline(
      {{"SADD", prefix_ + "reports:" + topic, node},
       {"SET", prefix_ + "report:" + topic + ":" + node, text, "PX", std::to_string(ttl_ms)}},
      replies);
}

Status RedisNodeReports::get(const std::string& topic, std::map<std::string, std::string>& out) {
  out.clear();
  RedisReply r;
  Status st = client_->eval(kReportsGet, {prefix_ + "reports:" + topic},
                            {prefix_ + "report:" + topic + ":"}, r);
  if (!st.ok) return st;
  for (size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    out[r.elements[i].str] = r.elements[i + 1].str;
  }
  return st;
}

// ---------------------------------------------------------------------------------------------
// RedisChangeBus

RedisChangeBus::RedisChangeBus(std::unique_ptr<RedisClient> publisher, std::string prefix,
                               std::chrono::milliseconds timeout)
    : publisher_(std::move(publisher)), channel_(prefix + "changes"), timeout_(timeout) {
  thread_ = std::thread([this] {
    set_thread_name("redis-bus");
    run();
  });
}

RedisChangeBus::~RedisChangeBus() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RedisChangeBus::publish(const std::string& topic) {
  RedisReply r;
  Status st = publisher_->command({"PUBLISH", channel_, topic}, r);
  if (!st.ok) {
    log_warn("redis", "change '" + topic + "' not published (" + st.detail +
                          "); the other nodes see it when they poll the store");
  }
}

void RedisChangeBus::run() {
  std::chrono::milliseconds backoff(100);
  bool warned = false;
  while (!stop_) {
    std::string error;
    void* c = open_context(publisher_->address(), timeout_, error);
    if (c != nullptr) {
      backoff = std::chrono::milliseconds(100);
      warned = false;
      bool more = listen(c);
      redisFree(static_cast<redisContext*>(c));
      if (!more) return;
      error = "the subscription was lost";
    }
    if (!warned) {
      log_warn("redis", "changes: Redis " + publisher_->address().display() + ": " + error +
                            " (re-subscribing with back-off; the store is polled meanwhile)");
      warned = true;
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, backoff, [this] { return stop_.load(); });
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, std::chrono::seconds(5));
  }
}

bool RedisChangeBus::listen(void* context) {
  auto* c = static_cast<redisContext*>(context);
  const char* argv[] = {"SUBSCRIBE", channel_.c_str()};
  size_t lens[] = {9, channel_.size()};
  if (redisAppendCommandArgv(c, 2, argv, lens) != REDIS_OK) return true;
  using Clock = std::chrono::steady_clock;
  Clock::time_point heard = Clock::now(), pinged = heard;
  for (;;) {
    if (stop_) return false;
    int done = 0;
    while (!done) {
      if (redisBufferWrite(c, &done) != REDIS_OK) return true;
    }
    void* raw = nullptr;
    if (redisGetReplyFromReader(c, &raw) != REDIS_OK) return true;
    if (raw != nullptr) {
      heard = Clock::now();
      RedisReply r = copy_reply(raw);
      freeReplyObject(raw);
      if (r.type != RedisReply::Type::Array || r.elements.size() < 2) continue;
      const std::string& kind = r.elements[0].str;
      if (kind == "subscribe") {
        ++subscriptions_;
        handlers_.call(ChangeBus::kAll);  // what was published while we were away is lost
      } else if (kind == "message" && r.elements.size() == 3) {
        handlers_.call(r.elements[2].str);
      }
      continue;
    }
    pollfd p{c->fd, POLLIN, 0};
    int n = ::poll(&p, 1, 200);
    if (n < 0 && errno != EINTR) return true;
    if (n > 0) {
      if (redisBufferRead(c) != REDIS_OK) return true;
      continue;
    }
    auto now = Clock::now();
    if (now - heard > std::chrono::seconds(15)) return true;  // a dead connection
    if (now - heard > std::chrono::seconds(5) && now - pinged > std::chrono::seconds(5)) {
      const char* ping[] = {"PING"};
      size_t ping_len[] = {4};
      if (redisAppendCommandArgv(c, 1, ping, ping_len) != REDIS_OK) return true;
      pinged = now;
    }
  }
}

// ---------------------------------------------------------------------------------------------

std::string persistence_problem(RedisClient& client) {
  std::vector<RedisReply> r;
  Status st = client.pipeline({{"CONFIG", "GET", "appendonly"}, {"CONFIG", "GET", "save"}}, r);
  if (!st.ok) return "its persistence could not be read (" + st.detail + ")";
  auto value = [](const RedisReply& reply) {
    return reply.elements.size() == 2 ? reply.elements[1].str : std::string();
  };
  if (value(r[0]) == "yes" || !value(r[1]).empty()) return "";
  return "it keeps nothing on disk (appendonly no, save \"\")";
}

SharedState open_redis_shared_state(const RedisSettings& settings, const Clock& clock,
                                    std::function<RateLimit(const std::string&)> limit_of) {
  RedisAddress address;
  std::string error;
  if (!RedisAddress::parse(settings.uri, address, error)) {
    throw std::runtime_error("redis.uri: " + error);
  }
  if (!settings.password.empty()) address.password = settings.password;
  const std::chrono::milliseconds timeout(settings.timeout_ms);
  auto client = [&](const char* component) {
    return std::make_unique<RedisClient>(address, timeout, component);
  };
  SharedState s;
  auto sessions = client("sessions");
  std::string problem = persistence_problem(*sessions);
  if (!problem.empty()) {
    log_warn("redis", "Redis " + address.display() + " holds the console sessions but " + problem +
                          ": a restart of Redis logs every console user out");
  }
  s.sessions = std::make_unique<RedisSessionStore>(std::move(sessions), settings.prefix, clock,
                                                   kSessionIdleMs, kSessionMaxMs);
  s.logins = std::make_unique<RedisLoginThrottle>(client("logins"), settings.prefix,
                                                  kLoginMaxFailures, kLoginWindowMs);
  s.rates =
      std::make_unique<RedisRateLimiter>(client("rates"), settings.prefix, std::move(limit_of));
  s.changes = std::make_unique<RedisChangeBus>(client("changes"), settings.prefix, timeout);
  s.reports = std::make_unique<RedisNodeReports>(client("reports"), settings.prefix);
  s.where = "Redis " + address.display();
  return s;
}

}  // namespace relais::redis
