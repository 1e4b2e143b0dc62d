// The BAN enricher's cache (LRU with TTL), its Redis client (hiredis) and its rate limiter.

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "connectors/ban/ban.h"
#include "core/log.h"

namespace relais::ban {

// ---------------------------------------------------------------------------------------------
// LruCache

LruCache::LruCache(size_t capacity, int64_t ttl_ms) : capacity_(capacity), ttl_ms_(ttl_ms) {}

std::shared_ptr<const Match> LruCache::get(const std::string& key, Millis now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return nullptr;
  if (it->second->expires <= now) {
    order_.erase(it->second);
    index_.erase(it);
    return nullptr;
  }
  if (it->second != order_.begin()) order_.splice(order_.begin(), order_, it->second);
  return it->second->value;
}

void LruCache::put(const std::string& key, std::shared_ptr<const Match> value, Millis now) {
  if (capacity_ == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  if (it != index_.end()) {
    it->second->value = std::move(value);
    it->second->expires = now + ttl_ms_;
    order_.splice(order_.begin(), order_, it->second);
    return;
  }
  order_.push_front(Entry{key, std::move(value), now + ttl_ms_});
  index_.emplace(key, order_.begin());
  while (order_.size() > capacity_) {
    index_.erase(order_.back().key);
    order_.pop_back();
  }
}

size_t LruCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return order_.size();
}

void LruCache::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  order_.clear();
  index_.clear();
}

// ---------------------------------------------------------------------------------------------
// Redis

namespace {

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r) freeReplyObject(r);
  }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

timeval to_timeval(int64_t ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

}  // namespace

Redis::Redis(std::string host_port, int64_t timeout_ms) : timeout_ms_(timeout_ms) {
  auto colon = host_port.rfind(':');
  if (colon == std::string::npos) {
    host_ = host_port;
  } else {
    host_ = host_port.substr(0, colon);
    port_ = std::atoi(host_port.c_str() + colon + 1);
  }
}

Redis::~Redis() {
  if (ctx_) redisFree(static_cast<redisContext*>(ctx_));
}

bool Redis::connect_locked() {
  if (ctx_) return true;
  auto now = std::chrono::steady_clock::now();
  if (now < next_connect_) return false;
  next_connect_ = now + std::chrono::seconds(1);
  redisContext* c = redisConnectWithTimeout(host_.c_str(), port_, to_timeval(timeout_ms_));
  if (c == nullptr || c->err) {
    if (!warned_) {
      log_warn("ban", "redis " + host_ + ":" + std::to_string(port_) + " unreachable: " +
                          (c ? c->errstr : "out of memory") + " (local cache and limit only)");
      warned_ = true;
    }
    if (c) redisFree(c);
    return false;
  }
  redisSetTimeout(c, to_timeval(timeout_ms_));
  ctx_ = c;
  if (warned_) log_info("ban", "redis " + host_ + ":" + std::to_string(port_) + " reachable again");
  warned_ = false;
  return true;
}

void Redis::drop_locked(const char* what) {
  auto* c = static_cast<redisContext*>(ctx_);
  if (!warned_) {
    log_warn("ban", std::string("redis ") + what + " failed: " + (c && c->err ? c->errstr : "?") +
                        " (local cache and limit only until it is back)");
    warned_ = true;
  }
  if (c) redisFree(c);
  ctx_ = nullptr;
}

std::optional<std::string> Redis::get(const std::string& key, bool* error) {
  if (error) *error = false;
  std::lock_guard<std::mutex> lock(mu_);
  if (!connect_locked()) {
    if (error) *error = true;
    return std::nullopt;
  }
  auto* c = static_cast<redisContext*>(ctx_);
  Reply r(static_cast<redisReply*>(redisCommand(c, "GET %b", key.data(), key.size())));
  if (!r) {
    drop_locked("GET");
    if (error) *error = true;
    return std::nullopt;
  }
  if (r->type == REDIS_REPLY_STRING) return std::string(r->str, r->len);
  if (r->type != REDIS_REPLY_NIL && error) *error = true;
  return std::nullopt;
}

bool Redis::setex(const std::string& key, int64_t ttl_s, const std::string& value) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!connect_locked()) return false;
  auto* c = static_cast<redisContext*>(ctx_);
  std::string ttl = std::to_string(std::max<int64_t>(1, ttl_s));
  Reply r(static_cast<redisReply*>(redisCommand(c, "SETEX %b %s %b", key.data(), key.size(),
                                                ttl.c_str(), value.data(), value.size())));
  if (!r) {
    drop_locked("SETEX");
    return false;
  }
  return r->type == REDIS_REPLY_STATUS;
}

std::optional<long long> Redis::incr_expire(const std::string& key, int64_t ttl_s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!connect_locked()) return std::nullopt;
  auto* c = static_cast<redisContext*>(ctx_);
  // SET NX EX creates the counter with its expiry (so a crash between the two never leaves a
  // counter without one); INCR keeps the expiry. Pipelined: one round trip.
  std::string ttl = std::to_string(std::max<int64_t>(1, ttl_s));
  redisAppendCommand(c, "SET %b 0 EX %s NX", key.data(), key.size(), ttl.c_str());
  redisAppendCommand(c, "INCR %b", key.data(), key.size());
  void* raw = nullptr;
  if (redisGetReply(c, &raw) != REDIS_OK) {
    drop_locked("SET NX");
    return std::nullopt;
  }
  Reply first(static_cast<redisReply*>(raw));
  raw = nullptr;
  if (redisGetReply(c, &raw) != REDIS_OK) {
    drop_locked("INCR");
    return std::nullopt;
  }
  Reply second(static_cast<redisReply*>(raw));
  if (second->type != REDIS_REPLY_INTEGER) return std::nullopt;
  return second->integer;
}

bool Redis::ping() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!connect_locked()) return false;
  auto* c = static_cast<redisContext*>(ctx_);
  Reply r(static_cast<redisReply*>(redisCommand(c, "PING")));
  if (!r) {
    drop_locked("PING");
    return false;
  }
  return r->type == REDIS_REPLY_STATUS;
}

// ---------------------------------------------------------------------------------------------
// RateLimiter

RateLimiter::RateLimiter(double per_second, Redis* redis, std::string key_prefix)
    : per_second_(per_second > 0 ? per_second : 1),
      interval_(std::chrono::duration_cast<SteadyClock::duration>(
          std::chrono::duration<double>(1.0 / per_second_))),
      redis_(redis),
      key_prefix_(std::move(key_prefix)) {}

bool RateLimiter::acquire(int64_t max_wait_ms) {
  auto deadline = SteadyClock::now() + std::chrono::milliseconds(max_wait_ms);
  const long long shared_limit = std::max<long long>(1, std::llround(std::floor(per_second_)));
  for (;;) {
    SteadyClock::time_point slot;
    {
      std::lock_guard<std::mutex> lock(mu_);
      slot = std::max(SteadyClock::now(), next_slot_);
      if (slot > deadline) return false;
      next_slot_ = slot + interval_;
    }
    std::this_thread::sleep_until(slot);
    if (redis_ == nullptr) return true;
    // The shared budget of the current wall-clock second, across nodes.
    Millis wall = SystemClock::instance().now_ms();
    long long second = wall / 1000;
    auto n = redis_->incr_expire(key_prefix_ + "rl:" + std::to_string(second), 2);
    if (!n) return true;  // Redis down: the local limit still holds
    if (*n <= shared_limit) return true;
    auto wait = std::chrono::milliseconds((second + 1) * 1000 - wall);
    if (SteadyClock::now() + wait > deadline) return false;
    std::this_thread::sleep_for(wait);
  }
}

void RateLimiter::pause_for(int64_t ms) {
  std::lock_guard<std::mutex> lock(mu_);
  next_slot_ = std::max(next_slot_, SteadyClock::now() + std::chrono::milliseconds(ms));
}

}  // namespace relais::ban
