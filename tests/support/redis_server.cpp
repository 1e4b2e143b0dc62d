#include "tests/support/redis_server.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

namespace relais::testing {

namespace {

std::string find_redis_server() {
  for (const char* p :
       {"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "";
}

}  // namespace

RedisServer::RedisServer(bool persistent) : dir_("relais-redis-"), persistent_(persistent) {}

RedisServer::~RedisServer() {
  stop();
}

bool RedisServer::ping() const {
  timeval tv{0, 200000};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
  if (c == nullptr) return false;
  bool ok = false;
  if (!c->err) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
    ok = r != nullptr && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
  }
  redisFree(c);
  return ok;
}

std::string RedisServer::spawn() {
  std::string bin = find_redis_server();
  if (bin.empty()) return "redis-server is not installed (scripts/install-deps.sh installs it)";
  std::string port = std::to_string(port_);
  std::string log = dir_.path() + "/redis.log";
  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::execl(bin.c_str(), bin.c_str(), "--port", port.c_str(), "--bind", "127.0.0.1", "--dir",
            dir_.path().c_str(), "--save", "", "--appendonly", persistent_ ? "yes" : "no",
            "--appendfsync", "everysec", "--logfile", log.c_str(), "--daemonize", "no",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool up = wait_until([&] { return ping() || exited(); }, std::chrono::milliseconds(10000),
                       std::chrono::milliseconds(50));
  if (up && !exited()) return "";
  stop();
  std::string text;
  try {
    text = read_file(log);
  } catch (...) {
    text = "(no log)";
  }
  return "redis-server did not start: " + text;
}

std::string RedisServer::start() {
  if (pid_ > 0) return "";
  if (port_ != 0) return spawn();  // the same port again: the nodes reconnect to it
  std::string error;
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = free_port();
    error = spawn();
    if (error.empty()) return "";
  }
  return error;
}

void RedisServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

bool RedisServer::exited() {
  if (pid_ <= 0) return true;
  if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
    pid_ = -1;
    return true;
  }
  return false;
}

}  // namespace relais::testing
