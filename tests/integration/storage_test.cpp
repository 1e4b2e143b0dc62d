// Storage faults through the real binary:
// - the store on a small filesystem (a size-limited tmpfs mounted by the test) that fills up:
//   accepts answer 503 with Retry-After, /readyz turns false, nothing answered 503 is stored,
//   and when space comes back everything resumes without a restart; filled up again, relais is
//   killed, space comes back, relais restarts: nothing acknowledged is lost and, per key, the
//   last state the partner sees is the key's last message;
// - another process (the sqlite3 command-line tool) holding the store's write lock longer
//   than store.busy_timeout: 503 with Retry-After, then 202 once it lets go.
// Mounting needs root (the tests run as root, as CI does); a failed mount fails the test.

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/relais_process.h"
#include "tools/sink/http_sink.h"

namespace relais::testing {
namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
namespace fs = std::filesystem;

constexpr int kKeys = 10;

std::string body_yaml(int sink_port) {
  return "sources:\n"
         "  app:\n"
         "    type: $.type\n"
         "    correlation: \"{$.key}\"\n"
         "    idempotency: $.id\n"
         "connectors:\n"
         "  sink:\n"
         "    connector: http\n"
         "    url: http://127.0.0.1:" +
         std::to_string(sink_port) +
         "/in\n"
         "    concurrency: 4\n"
         "    timeout: 5s\n"
         "    retry:\n"
         "      initial: 50ms\n"
         "      max: 500ms\n"
         "      max_attempts: 1000\n"
         "routes:\n"
         "  - name: all\n"
         "    source: app\n"
         "    to:\n"
         "      - destination: sink\n";
}

// A tmpfs of a given size, mounted for the test's lifetime.
class SmallDisk {
 public:
  SmallDisk(const std::string& path, const std::string& size) : path_(path) {
    fs::create_directories(path_);
    std::string opts = "size=" + size;
    if (::mount("tmpfs", path_.c_str(), "tmpfs", 0, opts.c_str()) != 0) {
      throw std::runtime_error("cannot mount a tmpfs on " + path_ + " (" + std::strerror(errno) +
                               "): this test needs root");
    }
  }
  ~SmallDisk() { ::umount2(path_.c_str(), MNT_DETACH); }
  void resize(const std::string& size) {
    std::string opts = "size=" + size;
    if (::mount("tmpfs", path_.c_str(), "tmpfs", MS_REMOUNT, opts.c_str()) != 0) {
      throw std::runtime_error(std::string("remount failed: ") + std::strerror(errno));
    }
  }

 private:
  std::string path_;
};

struct Arrivals {
  std::mutex mu;
  std::vector<int> n;  // message numbers in arrival order
};

std::string message(int n, const std::string& padding) {
  return json{{"type", "fill"},
              {"id", "m-" + std::to_string(n)},
              {"key", "k" + std::to_string(n % kKeys)},
              {"n", n},
              {"padding", padding}}
      .dump();
}

TEST(StorageFaults, DiskFullRefusesThenResumesAndKeepsTheLastStateLast) {
  auto arrivals = std::make_shared<Arrivals>();
  relais::tools::HttpSink sink(0, false, 8);
  sink.set_responder([arrivals](const relais::tools::SinkRequest& req) {
    json j = json::parse(req.body, nullptr, false);
    std::lock_guard<std::mutex> lock(arrivals->mu);
    arrivals->n.push_back(j.value("n", -1));
    return relais::tools::SinkResponse{};
  });
  TempDir root("relais-disk-");
  std::string disk_dir = root.path() + "/disk";
  SmallDisk disk(disk_dir, "3m");
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = body_yaml(sink.port());
  o.store_path = disk_dir + "/relais.db";
  o.log_level = "warn";
  RelaisProcess relais(o);
  relais.start();

  const std::string padding(6000, 'x');
  std::set<int> acked;
  std::vector<int> refused;
  int next = 0;
  // Sends until the disk is full (bounded); returns the first 503 seen.
  auto fill = [&](HttpResponse& first_503) {
    HttpClient http(relais.base_url(), relais.system_token());
    for (int tries = 0; tries < 5000; ++tries, ++next) {
      HttpResponse r = http.post_json("/api/v1/sources/app/messages", message(next, padding));
      if (r.status == 202) {
        acked.insert(next);
      } else if (r.status == 503) {
        first_503 = r;
        refused.push_back(next++);
        return true;
      } else {
        ADD_FAILURE() << "unexpected answer " << r.status << " " << r.body;
        return false;
      }
    }
    return false;
  };
  HttpResponse full;
  ASSERT_TRUE(fill(full)) << "the disk never filled up";
  EXPECT_FALSE(full.header("Retry-After").empty()) << full.body;
  EXPECT_EQ(full.json().value("error", ""), "not stored") << full.body;
  // /readyz is not asserted here: the writer's probe (one small page) may commit on a disk
  // that has no room for a whole message, and then the store is rightly writable again; the
  // promise is about messages: each is answered 503 (not stored) or 202 (stored), never lost.
  HttpClient api(relais.base_url(), relais.token());
  {
    HttpClient http(relais.base_url(), relais.system_token());
    for (int i = 0; i < 5; ++i) {
      HttpResponse r = http.post_json("/api/v1/sources/app/messages", message(next, padding));
      ASSERT_TRUE(r.status == 503 || r.status == 202) << r.status << " " << r.body;
      if (r.status == 202) {
        acked.insert(next++);
      } else {
        refused.push_back(next++);
      }
    }
  }

  // Space comes back: no restart needed.
  disk.resize("64m");
  ASSERT_TRUE(wait_until([&] { return api.get("/readyz").status == 200; }, std::chrono::seconds(20),
                         milliseconds(100)))
      << "relais did not become ready again";
  // The refused messages are sent again, as a client does after Retry-After.
  {
    HttpClient http(relais.base_url(), relais.system_token());
    for (int n : refused) {
      HttpResponse r = http.post_json("/api/v1/sources/app/messages", message(n, padding));
      ASSERT_EQ(r.status, 202) << r.body;
      acked.insert(n);
    }
    refused.clear();
  }

  // Full again; relais is killed while full; space comes back; relais restarts.
  disk.resize("8m");
  HttpResponse full2;
  ASSERT_TRUE(fill(full2));
  relais.kill9();
  disk.resize("64m");
  relais.restart();
  {
    HttpClient http(relais.base_url(), relais.system_token());
    for (int n : refused) {
      HttpResponse r = http.post_json("/api/v1/sources/app/messages", message(n, padding));
      ASSERT_TRUE(r.status == 202 || r.status == 200) << r.body;
      acked.insert(n);
    }
  }

  // Everything acknowledged reaches the partner; per key, never an older message after a newer
  // one, and the key's last message last.
  auto delivered = [&] {
    std::lock_guard<std::mutex> lock(arrivals->mu);
    return std::set<int>(arrivals->n.begin(), arrivals->n.end());
  };
  ASSERT_TRUE(wait_until(
      [&] {
        auto d = delivered();
        return std::includes(d.begin(), d.end(), acked.begin(), acked.end());
      },
      std::chrono::seconds(60), milliseconds(100)))
      << "acknowledged messages were not all delivered";
  std::vector<int> seen;
  {
    std::lock_guard<std::mutex> lock(arrivals->mu);
    seen = arrivals->n;
  }
  std::map<int, int> newest, last;
  for (int n : seen) {
    int k = n % kKeys;
    auto it = newest.find(k);
    EXPECT_FALSE(it != newest.end() && n < it->second)
        << "key k" << k << ": " << n << " delivered after " << it->second;
    if (it == newest.end() || n > it->second) newest[k] = n;
    last[k] = n;
  }
  for (int k = 0; k < kKeys; ++k) {
    int want = -1;
    for (int n : acked) {
      if (n % kKeys == k) want = std::max(want, n);
    }
    if (want >= 0) {
      EXPECT_EQ(last[k], want) << "key k" << k;
    }
  }
  EXPECT_EQ(relais.stop(std::chrono::seconds(20)), 0);
  // The store holds exactly what was acknowledged: nothing answered 503 was kept.
  std::string cmd = "sqlite3 " + relais.store_path() + " 'SELECT COUNT(*) FROM messages'";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[64] = {0};
  ASSERT_NE(std::fgets(buf, sizeof buf, p), nullptr);
  ::pclose(p);
  EXPECT_EQ(std::atol(buf), static_cast<long>(acked.size()));
}

TEST(StorageFaults, WriteLockHeldByAnotherProcessAnswers503ThenResumes) {
  relais::tools::HttpSink sink(0, false, 4);
  RelaisOptions o;
  o.binary = RELAIS_BINARY;
  o.body_yaml = body_yaml(sink.port());
  o.store_extra_yaml = "  busy_timeout: 300ms\n";
  o.log_level = "warn";
  RelaisProcess relais(o);
  relais.start();
  HttpClient http(relais.base_url(), relais.system_token());
  ASSERT_EQ(http.post_json("/api/v1/sources/app/messages", message(1, "")).status, 202);
  ASSERT_EQ(sink.wait_for(1, 10000), 1u);
  // The sqlite3 tool takes the write lock (waiting for relais's own writes to end, as another
  // process would), says so through a marker file, and keeps it for 4 s.
  const std::string marker = relais.store_path() + ".locked";
  std::string cmd = "sqlite3 " + relais.store_path() +
                    " '.timeout 10000' 'BEGIN IMMEDIATE;' '.shell touch " + marker +
                    "' '.shell sleep 4' 'COMMIT;' >/dev/null 2>&1 &";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  ASSERT_TRUE(wait_until([&] { return ::access(marker.c_str(), F_OK) == 0; },
                         std::chrono::seconds(10), milliseconds(10)))
      << "the sqlite3 tool never took the write lock";
  HttpResponse r = http.post_json("/api/v1/sources/app/messages", message(2, ""));
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_FALSE(r.header("Retry-After").empty());
  HttpClient api(relais.base_url(), relais.token());
  EXPECT_EQ(api.get("/readyz").status, 503);
  ASSERT_TRUE(wait_until([&] { return api.get("/readyz").status == 200; }, std::chrono::seconds(20),
                         milliseconds(100)));
  HttpResponse again = http.post_json("/api/v1/sources/app/messages", message(2, ""));
  EXPECT_EQ(again.status, 202) << again.body;
  EXPECT_EQ(sink.wait_for(2, 10000), 2u);
  EXPECT_EQ(relais.stop(std::chrono::seconds(20)), 0);
}

}  // namespace
}  // namespace relais::testing
