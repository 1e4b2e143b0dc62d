// Faults injected at the transport seam (issue 16 item 8), against the real binary: a partner
// that accepts connections and never answers, and one that answers one byte a second. Each
// attempt must end at the destination's timeout with a reason a person can read, the workers
// must be free again (the same destination delivers as soon as the partner answers, another
// destination is never held up), and the API keeps answering meanwhile.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/raw_http.h"
#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// A partner on loopback that misbehaves on purpose. Modes (switchable while it runs):
//   silent  — accepts, reads everything, never writes a byte;
//   trickle — reads the request, then writes a 200 answer one byte a second;
//   healthy — answers 200 with a small JSON body at once.
// One thread polls every socket (no thread per connection). Owns its sockets and its thread;
// mode() may be set from any thread.
class MisbehavingPartner {
 public:
  enum class Mode { Silent, Trickle, Healthy };

  explicit MisbehavingPartner(Mode mode) : mode_(mode) {
    listen_fd_ = listen_on_loopback(128, port_);
    if (listen_fd_ < 0) throw std::runtime_error("MisbehavingPartner: cannot listen");
    thread_ = std::thread([this] { run(); });
  }
  ~MisbehavingPartner() {
    stop_ = true;
    thread_.join();
    for (auto& c : conns_) ::close(c.fd);
    ::close(listen_fd_);
  }
  MisbehavingPartner(const MisbehavingPartner&) = delete;
  MisbehavingPartner& operator=(const MisbehavingPartner&) = delete;

  int port() const { return port_; }
  void set_mode(Mode m) { mode_ = m; }
  int accepted() const { return accepted_; }
  int answered() const { return answered_; }  // complete answers written

 private:
  struct Conn {
    int fd;
    std::string in;
    std::string out;  // what is left to write (trickle and healthy)
    SteadyClock::time_point next_byte{};
  };

  static std::string answer() {
    std::string body = "{\"ok\":true}";
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  }

  // A request is complete at the end of its head plus Content-Length bytes.
  static bool complete(const std::string& in) {
    size_t end = in.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    size_t cl = in.find("Content-Length:");
    if (cl == std::string::npos) cl = in.find("content-length:");
    size_t length = cl == std::string::npos || cl > end ? 0 : std::stoul(in.substr(cl + 15));
    return in.size() >= end + 4 + length;
  }

  void run() {
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (const auto& c : conns_) fds.push_back({c.fd, POLLIN, 0});
      ::poll(fds.data(), fds.size(), 50);
      if (fds[0].revents & POLLIN) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
          conns_.push_back(Conn{fd, {}, {}, {}});
          ++accepted_;
        }
      }
      auto now = SteadyClock::now();
      for (size_t i = 0; i < conns_.size();) {
        Conn& c = conns_[i];
        bool gone = false;
        char buf[4096];
        for (;;) {
          ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
          if (n > 0) {
            c.in.append(buf, static_cast<size_t>(n));
            continue;
          }
          if (n == 0) gone = true;
          break;
        }
        if (!gone && c.out.empty() && complete(c.in)) {
          Mode m = mode_;
          if (m != Mode::Silent) {
            c.out = answer();
            c.in.clear();
            c.next_byte = now;
          }
          if (m == Mode::Healthy) {
            ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
            if (n == static_cast<ssize_t>(c.out.size())) ++answered_;
            gone = true;
          }
        }
        if (!gone && !c.out.empty() && now >= c.next_byte) {
          if (::send(c.fd, c.out.data(), 1, MSG_NOSIGNAL) != 1) {
            gone = true;
          } else {
            c.out.erase(0, 1);
            c.next_byte = now + std::chrono::seconds(1);
            if (c.out.empty()) {
              ++answered_;
              gone = true;
            }
          }
        }
        if (gone) {
          ::close(c.fd);
          conns_.erase(conns_.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          ++i;
        }
      }
    }
  }

  std::atomic<Mode> mode_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::vector<Conn> conns_;  // the thread's own
  std::atomic<int> accepted_{0}, answered_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// relais with two destinations: `partner` (the misbehaving one: 1 s timeout, 2 workers,
// retries every 300 ms, at most `max_attempts`) and `healthy` (a well-behaved sink), each fed
// by its own source so that one never waits for the other.
RelaisOptions options(const MisbehavingPartner& partner, const tools::HttpSink& healthy,
                      int max_attempts) {
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml =
      "sources:\n"
      "  app:\n    type: $.type\n    correlation: \"{$.key}\"\n"
      "  other:\n    type: $.type\n    correlation: \"{$.key}\"\n"
      "connectors:\n" +
      http_connector_yaml("partner", partner.port(),
                          "    method: PUT\n    timeout: 1s\n    connect_timeout: 1s\n"
                          "    concurrency: 2\n"
                          "    retry: {initial: 300ms, max: 300ms, max_attempts: " +
                              std::to_string(max_attempts) + "}\n") +
      http_connector_yaml("healthy", healthy.port(), "    method: POST\n") +
      "routes:\n"
      "  - {name: to-partner, source: app, to: [{destination: partner}]}\n"
      "  - {name: to-healthy, source: other, to: [{destination: healthy}]}\n";
  return o;
}

std::string post(HttpClient& system, const std::string& source, const std::string& key) {
  HttpResponse r = system.post_json("/api/v1/sources/" + source + "/messages",
                                    json{{"type", "rdv.planned"}, {"key", key}}.dump());
  EXPECT_EQ(r.status, 202) << r.body << r.error;
  return r.json().value("id", std::string());
}

// The message's only delivery (GET /api/v1/messages/{id}).
json delivery_of(HttpClient& admin, const std::string& id) {
  json m = admin.get("/api/v1/messages/" + id).json();
  if (!m.is_object() || !m.contains("deliveries") || m["deliveries"].empty()) return json();
  return m["deliveries"][0];
}

TEST(FaultInjection, APartnerThatNeverAnswersTimesOutAndHoldsNoWorker) {
  MisbehavingPartner partner(MisbehavingPartner::Mode::Silent);
  tools::HttpSink healthy;
  RelaisProcess relais(options(partner, healthy, 0));  // 0: no limit on attempts
  relais.start();
  HttpClient system(relais.base_url(), relais.system_token());
  HttpClient admin = relais.client();
  admin.set_timeout_ms(5000);

  // Six messages on six keys for two workers: every attempt waits for the timeout.
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(post(system, "app", "k-" + std::to_string(i)));

  // Each attempt ends at the timeout with a readable reason, and the next ones go on.
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& id : ids) {
          json d = delivery_of(admin, id);
          if (d.is_null() || d.value("attempt_count", 0) < 1) return false;
        }
        return true;
      },
      milliseconds(20000), milliseconds(200)))
      << "every message had an attempt: the two workers were not held by the first two";
  for (const auto& id : ids) {
    json d = delivery_of(admin, id);
    std::string state = d.value("state", "");
    EXPECT_TRUE(state == "retrying" || state == "in_flight") << d.dump();
    const json& attempt = d["attempts"][0];
    EXPECT_EQ(attempt.value("class", ""), "timeout") << attempt.dump();
    EXPECT_GE(attempt.value("duration_ms", 0), 900) << attempt.dump();
    EXPECT_LT(attempt.value("duration_ms", 0), 4000) << "bounded by the 1 s timeout";
    EXPECT_NE(attempt.value("text", "").find("no complete answer from the destination"),
              std::string::npos)
        << attempt.dump();
  }

  // Meanwhile the API answers at once, and another destination delivers without waiting.
  auto t0 = SteadyClock::now();
  EXPECT_EQ(admin.get("/healthz").status, 200);
  EXPECT_LT(SteadyClock::now() - t0, milliseconds(1000));
  t0 = SteadyClock::now();
  post(system, "other", "o-1");
  EXPECT_EQ(healthy.wait_for(1, 3000), 1u);
  EXPECT_LT(SteadyClock::now() - t0, milliseconds(3000));

  // The partner comes back: every message is delivered by the same workers, none stuck.
  partner.set_mode(MisbehavingPartner::Mode::Healthy);
  EXPECT_TRUE(wait_until(
      [&] {
        for (const auto& id : ids) {
          if (delivery_of(admin, id).value("state", "") != "delivered") return false;
        }
        return true;
      },
      milliseconds(20000), milliseconds(200)));
  EXPECT_GE(partner.answered(), 6);
  EXPECT_EQ(relais.stop(), 0);
}

TEST(FaultInjection, APartnerAnsweringOneByteASecondIsCutAtTheTimeout) {
  MisbehavingPartner partner(MisbehavingPartner::Mode::Trickle);
  tools::HttpSink healthy;
  RelaisProcess relais(options(partner, healthy, 2));
  relais.start();
  HttpClient system(relais.base_url(), relais.system_token());
  HttpClient admin = relais.client();

  std::string id = post(system, "app", "slow-1");
  // Two attempts of at most the timeout each, then dead with the reason.
  ASSERT_TRUE(wait_until([&] { return delivery_of(admin, id).value("state", "") == "dead"; },
                         milliseconds(15000), milliseconds(200)));
  json d = delivery_of(admin, id);
  ASSERT_EQ(d["attempts"].size(), 2u) << d.dump();
  for (const auto& attempt : d["attempts"]) {
    EXPECT_EQ(attempt.value("class", ""), "timeout") << attempt.dump();
    EXPECT_LT(attempt.value("duration_ms", 0), 4000) << "the trickle is cut, not waited for";
    EXPECT_NE(attempt.value("text", "").find("no complete answer"), std::string::npos)
        << attempt.dump();
  }
  // The partner had started answering (it sent bytes), yet nothing was taken as delivered.
  EXPECT_EQ(partner.answered(), 0);
  EXPECT_GE(partner.accepted(), 2);
  EXPECT_EQ(admin.get("/healthz").status, 200);
  EXPECT_EQ(relais.stop(), 0);
}

}  // namespace
}  // namespace relais::testing
