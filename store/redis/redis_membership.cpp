#include "store/redis/redis_membership.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <stdexcept>

#include "core/log.h"
#include "core/thread_name.h"

namespace relais::redis {
namespace {

// One tick. ARGV: prefix, node, lease_ms, partitions, seed, then three lists each given as a
// count and its items — the partitions to renew that count towards the node's share (held,
// waiting or active), those to renew that do not (being given up), those to release now —
// then the leadership: 1 to keep or claim it (and claim partitions), 0 to release it and
// leave (stopping: nothing is claimed).
// Answers {live nodes, share, {renewed…}, {claimed, clean, claimed, clean…}, leader} where
// leader is 0 (not leader), 1 (renewed), 2 (claimed), 3 (claimed after a clean release).
const char* const kTick = R"lua(
local prefix, node = ARGV[1], ARGV[2]
local lease, parts, seed = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nodes = prefix .. 'nodes'
redis.call('ZADD', nodes, now, node)
redis.call('ZREMRANGEBYSCORE', nodes, '-inf', now - lease)
local live = redis.call('ZCARD', nodes)
local share = math.ceil(parts / live)
local i = 6
local renewed, mine, kept = {}, {}, 0
for pass = 1, 2 do
  local n = tonumber(ARGV[i]); i = i + 1
  for j = 1, n do
    local p = ARGV[i]; i = i + 1
    local k = prefix .. 'part:' .. p
    mine[p] = true
    if redis.call('GET', k) == node then
      redis.call('PEXPIRE', k, lease)
      renewed[#renewed + 1] = tonumber(p)
      if pass == 1 then kept = kept + 1 end
    end
  end
end
local n = tonumber(ARGV[i]); i = i + 1
for j = 1, n do
  local p = ARGV[i]; i = i + 1
  local k = prefix .. 'part:' .. p
  mine[p] = true
  if redis.call('GET', k) == node then
    redis.call('DEL', k)
    redis.call('SET', k .. ':clean', node, 'PX', lease)
  end
end
local claimed = {}
local want = share - kept
local lead = tonumber(ARGV[i])
if lead ~= 0 then
  for j = 0, parts - 1 do
    if want <= 0 then break end
    local p = tostring((seed + j) % parts)
    if not mine[p] then
      local k = prefix .. 'part:' .. p
      if redis.call('SET', k, node, 'NX', 'PX', lease) then
        local clean = redis.call('GET', k .. ':clean')
        redis.call('DEL', k .. ':clean')
        claimed[#claimed + 1] = tonumber(p)
        claimed[#claimed + 1] = clean and 1 or 0
        want = want - 1
      end
    end
  end
end
local lk = prefix .. 'leader'
local leader = 0
if lead == 1 then
  if redis.call('GET', lk) == node then
    redis.call('PEXPIRE', lk, lease)
    leader = 1
  elseif redis.call('SET', lk, node, 'NX', 'PX', lease) then
    local clean = redis.call('GET', lk .. ':clean')
    redis.call('DEL', lk .. ':clean')
    leader = clean and 3 or 2
  end
else
  if redis.call('GET', lk) == node then
    redis.call('DEL', lk)
    redis.call('SET', lk .. ':clean', node, 'PX', lease)
  end
  redis.call('ZREM', nodes, node)
end
return {live, share, renewed, claimed, leader}
)lua";

}  // namespace

std::string default_node_name() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == 0) std::snprintf(host, 8, "node");
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof suffix, "%06x", static_cast<unsigned>(rd() & 0xffffff));
  std::string out = host;
  out += '-';
  out += suffix;
  return out;
}

std::unique_ptr<Membership> open_redis_membership(const RedisSettings& redis,
                                                  ClusterSettings cluster) {
  RedisAddress address;
  std::string error;
  if (!RedisAddress::parse(redis.uri, address, error))
    throw std::runtime_error("redis.uri: " + error);
  if (!redis.password.empty()) address.password = redis.password;
  if (cluster.node.empty()) cluster.node = default_node_name();
  auto client = std::make_unique<RedisClient>(address, std::chrono::milliseconds(redis.timeout_ms),
                                              "cluster");
  return std::make_unique<RedisMembership>(std::move(client), redis.prefix, std::move(cluster));
}

RedisMembership::RedisMembership(std::unique_ptr<RedisClient> client, std::string prefix,
                                 ClusterSettings settings)
    : client_(std::move(client)),
      prefix_(std::move(prefix)),
      settings_(std::move(settings)),
      margin_(std::max<Millis>(settings_.lease_ms / 10, 50)),
      seed_(std::random_device{}()) {
  if (settings_.partitions < 1 || settings_.lease_ms < 500) {
    throw std::runtime_error("cluster: partitions must be at least 1 and the lease 500ms");
  }
  for (int p = 0; p < settings_.partitions; ++p) leases_.push_back(std::make_unique<Lease>());
  // Every node must cut the keys the same way: the first one sets the count, the others check.
  RedisReply r;
  std::string key = prefix_ + "cluster:partitions";
  std::string count = std::to_string(settings_.partitions);
  if (Status st = client_->command({"SET", key, count, "NX"}, r); !st.ok) {
    log_warn("cluster", "Redis unreachable at start-up (" + st.detail +
                            "): no delivery is dispatched until it is");
    return;
  }
  if (Status st = client_->command({"GET", key}, r); st.ok && !r.nil() && r.str != count) {
    throw std::runtime_error("cluster.partitions is " + count + " here but " + r.str +
                             " on the other nodes (Redis " + client_->address().display() +
                             "): every node must use the same count");
  }
}

RedisMembership::~RedisMembership() {
  stop_ = true;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool RedisMembership::owns(int partition) const {
  if (partition < 0 || partition >= settings_.partitions) return false;
  const Lease& l = *leases_[static_cast<size_t>(partition)];
  return l.active.load(std::memory_order_acquire) &&
         monotonic_ms() < l.valid_until.load(std::memory_order_acquire);
}

bool RedisMembership::leader() const {
  return leader_.active.load(std::memory_order_acquire) &&
         monotonic_ms() < leader_.valid_until.load(std::memory_order_acquire);
}

std::vector<std::pair<int, bool>> RedisMembership::take_changes() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<int, bool>> out;
  out.swap(changes_);
  return out;
}

std::string RedisMembership::describe() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!reachable_) return "Redis injoignable : aucune livraison n'est lancée par ce nœud";
  int owned = 0;
  for (int p = 0; p < settings_.partitions; ++p) owned += owns(p) ? 1 : 0;
  return "nœud " + settings_.node + " : " + std::to_string(owned) + "/" +
         std::to_string(settings_.partitions) + " partitions, " + std::to_string(live_nodes_) +
         " nœud(s) vivant(s)" + (leader() ? ", meneur" : "");
}

void RedisMembership::start(std::function<bool(int)> idle) {
  idle_ = std::move(idle);
  if (thread_.joinable()) return;
  thread_ = std::thread([this] {
    set_thread_name("membership");
    run();
  });
}

void RedisMembership::run() {
  Millis every = std::max<Millis>(settings_.lease_ms / 5, 20);
  while (!stop_) {
    tick(false);
    std::unique_lock<std::mutex> lock(wait_mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(every), [this] { return stop_.load(); });
  }
}

void RedisMembership::stop(Millis grace_ms) {
  stop_ = true;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Give everything up: no new attempt from here; released in Redis once idle.
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int p = 0; p < settings_.partitions; ++p) {
      Lease& l = *leases_[static_cast<size_t>(p)];
      if (l.state == State::Active || l.state == State::Grace) {
        if (l.active) changes_.emplace_back(p, false);
        l.active = false;
        l.state = State::Releasing;
      }
    }
  }
  Millis until = monotonic_ms() + grace_ms;
  for (;;) {
    tick(true);
    bool left = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& l : leases_) left = left || l->state == State::Releasing;
    }
    if (!left || monotonic_ms() >= until || !reachable_) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void RedisMembership::lose(int p, Lease& l) {
  if (l.active) changes_.emplace_back(p, false);
  l.active = false;
  l.state = State::Free;
}

void RedisMembership::activate(int p, Lease& l) {
  l.state = State::Active;
  l.active = true;
  changes_.emplace_back(p, true);
}

void RedisMembership::tick(bool stopping) {
  const int parts = settings_.partitions;
  std::vector<std::string> args{prefix_, settings_.node, std::to_string(settings_.lease_ms),
                                std::to_string(parts), std::to_string(seed_ % parts)};
  std::vector<int> keep, giving, release;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int p = 0; p < parts; ++p) {
      Lease& l = *leases_[static_cast<size_t>(p)];
      if (l.state == State::Grace || l.state == State::Active) keep.push_back(p);
      if (l.state == State::Releasing) (idle_ && idle_(p) ? release : giving).push_back(p);
    }
  }
  for (const auto* list : {&keep, &giving, &release}) {
    args.push_back(std::to_string(list->size()));
    for (int p : *list) args.push_back(std::to_string(p));
  }
  args.push_back(stopping ? "0" : "1");
  Millis t0 = monotonic_ms();
  RedisReply r;
  Status st = client_->eval(kTick, {}, args, r);
  Millis t1 = monotonic_ms();
  std::lock_guard<std::mutex> lock(mu_);
  if (!st.ok || r.type != RedisReply::Type::Array || r.elements.size() != 5) {
    if (reachable_.exchange(false)) {
      log_warn("cluster",
               "Redis unreachable: the leases lapse and this node starts no delivery "
               "until it is back (" +
                   (st.ok ? std::string("unexpected answer") : st.detail) + ")");
    }
    // Whatever lapsed by now is lost for good (claimed again later, read again from the store).
    for (int p = 0; p < parts; ++p) {
      Lease& l = *leases_[static_cast<size_t>(p)];
      if (l.state != State::Free && l.valid_until <= t1) lose(p, l);
    }
    if (leader_.state != State::Free && leader_.valid_until <= t1) {
      leader_.active = false;
      leader_.state = State::Free;
    }
    return;
  }
  if (!reachable_.exchange(true)) log_info("cluster", "Redis reachable: node " + settings_.node);
  live_nodes_ = r.elements[0].integer;
  const long long share = r.elements[1].integer;
  std::vector<bool> renewed(static_cast<size_t>(parts), false);
  for (const auto& e : r.elements[2].elements) {
    if (e.integer >= 0 && e.integer < parts) renewed[static_cast<size_t>(e.integer)] = true;
  }
  const Millis valid = t0 + settings_.lease_ms - margin_;
  for (int p : keep) {
    Lease& l = *leases_[static_cast<size_t>(p)];
    // A renewal that comes back after the lease lapsed here does not revive it.
    if (renewed[static_cast<size_t>(p)] && l.valid_until > t1) {
      l.valid_until = valid;
    } else {
      lose(p, l);
    }
  }
  for (int p : giving) {
    Lease& l = *leases_[static_cast<size_t>(p)];
    if (renewed[static_cast<size_t>(p)] && l.valid_until > t1) {
      l.valid_until = valid;
    } else {
      l.state = State::Free;  // already reported lost when it was given up
    }
  }
  for (int p : release) leases_[static_cast<size_t>(p)]->state = State::Free;
  const auto& claimed = r.elements[3].elements;
  for (size_t i = 0; i + 1 < claimed.size(); i += 2) {
    int p = static_cast<int>(claimed[i].integer);
    if (p < 0 || p >= parts) continue;
    Lease& l = *leases_[static_cast<size_t>(p)];
    l.valid_until = valid;
    l.state = State::Grace;
    // The previous holder's lease has lapsed by its own clock one lease after this claim.
    l.grace_until = claimed[i + 1].integer == 1 ? t1 : t1 + settings_.lease_ms;
  }
  for (int p = 0; p < parts; ++p) {
    Lease& l = *leases_[static_cast<size_t>(p)];
    if (l.state == State::Grace && l.grace_until <= t1 && l.valid_until > t1) activate(p, l);
  }
  // More than the share (a node joined): give the excess up, newest partitions last kept.
  long long held = 0;
  for (const auto& l : leases_) held += (l->state == State::Active || l->state == State::Grace);
  for (int p = parts - 1; p >= 0 && held > share && !stopping; --p) {
    Lease& l = *leases_[static_cast<size_t>(p)];
    if (l.state != State::Active && l.state != State::Grace) continue;
    if (l.active) changes_.emplace_back(p, false);
    l.active = false;
    l.state = State::Releasing;
    --held;
  }
  // The leadership.
  long long lead = r.elements[4].integer;
  if (lead >= 1 && lead <= 3) {
    bool lapsed = leader_.state == State::Free || leader_.valid_until <= t1;
    if (lead == 1 && !lapsed) {
      leader_.valid_until = valid;
    } else {
      // Claimed now — or still ours in Redis but lapsed here: wait as after a claim.
      if (leader_.active) log_warn("cluster", "node " + settings_.node + " no longer leads");
      leader_.active = false;
      leader_.valid_until = valid;
      leader_.state = State::Grace;
      leader_.grace_until = lead == 3 ? t1 : t1 + settings_.lease_ms;
    }
    if (leader_.state == State::Grace && leader_.grace_until <= t1) {
      leader_.state = State::Active;
      leader_.active = true;
      log_info("cluster", "node " + settings_.node + " leads (polling sources, alerts, purge)");
    }
  } else {
    if (leader_.active) log_warn("cluster", "node " + settings_.node + " no longer leads");
    leader_.active = false;
    leader_.state = State::Free;
  }
}

}  // namespace relais::redis
