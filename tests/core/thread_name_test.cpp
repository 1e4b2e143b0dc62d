// core/thread_name.h on real threads: the names the benchmarks' per-thread CPU reads, and a
// destination's `nice` taken by its delivery workers.

#include "core/thread_name.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include "connectors/registry.h"
#include "core/clock.h"
#include "core/config_spec.h"
#include "core/store.h"
#include "routing/hub.h"
#include "routing/hub_config.h"
#include "store/sqlite/sqlite_backend.h"
#include "tests/core/test_hub.h"
#include "tests/core/test_support.h"

namespace relais {
namespace {

// The name a thread has, as `top -H` and /proc show it.
std::string name_in_thread(const std::function<void()>& name_it) {
  std::string seen;
  std::thread t([&] {
    name_it();
    char buf[32] = {};
    pthread_getname_np(pthread_self(), buf, sizeof buf);
    seen = buf;
  });
  t.join();
  return seen;
}

// Every thread name of this process (/proc/self/task/*/comm).
std::multiset<std::string> thread_names() {
  std::multiset<std::string> out;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "comm");
    std::string name;
    std::getline(in, name);
    out.insert(name);
  }
  return out;
}

TEST(ThreadName, NamesTheCallingThreadOnly) {
  char before[32] = {};
  pthread_getname_np(pthread_self(), before, sizeof before);
  EXPECT_EQ(name_in_thread([] { set_thread_name("writer"); }), "writer");
  char after[32] = {};
  pthread_getname_np(pthread_self(), after, sizeof after);
  EXPECT_STREQ(before, after);
}

TEST(ThreadName, LongNamesAreCutToFifteenCharacters) {
  // pthread_setname_np refuses more than 15 (ERANGE): the name would be lost, not cut.
  EXPECT_EQ(name_in_thread([] { set_thread_name("dlv-cms76-appariement", 1); }), "dlv-cms76-appar");
  EXPECT_EQ(name_in_thread([] { set_thread_name("http", 12); }), "http-12");
}

TEST(ThreadName, TheStoreWriterAndCompletionThreadsAreNamed) {
  testing::TempDir dir;
  StoreOptions o;
  o.path = dir.file("relais.db");
  auto store = open_sqlite_store(o);
  // Each thread names itself once it runs: polled, not assumed at the return of the opening.
  EXPECT_TRUE(testing::wait_until([] {
    auto names = thread_names();
    return names.count("writer") == 1 && names.count("completion") == 1;
  })) << "no thread named writer and completion";
  store->close();
  store.reset();
  EXPECT_EQ(thread_names().count("writer"), 0u);
}

// Records the CPU niceness of the thread that delivers (-100: not called yet).
std::atomic<int> g_nice_slow{-100};
std::atomic<int> g_nice_plain{-100};

class NiceProbe final : public Connector {
 public:
  explicit NiceProbe(std::atomic<int>& seen) : seen_(seen) {}
  Outcome deliver(const DeliveryRequest&) override {
    seen_ = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
    return Outcome::delivered();
  }

 private:
  std::atomic<int>& seen_;
};

TEST(ThreadNice, ADestinationsWorkersTakeItsNiceAndTheOthersKeepTheProcesss) {
  const int process_nice = getpriority(PRIO_PROCESS, 0);
  ASSERT_LE(process_nice, 7) << "the test process is already niced beyond the value tried";
  g_nice_slow = -100;
  g_nice_plain = -100;
  testing::TempDir dir;
  Registries registries;
  testing::add_test_connector(registries, "probe", [](const ConnectorContext& ctx) {
    return std::make_unique<NiceProbe>(ctx.name == "slow" ? g_nice_slow : g_nice_plain);
  });
  std::string yaml =
      "store:\n  path: relais.db\n  synchronous: normal\n"
      "sources:\n  app:\n    type: $.type\n    correlation: \"{$.key}\"\n"
      "connectors:\n  slow:\n    connector: probe\n    nice: 7\n"
      "  plain:\n    connector: probe\n"
      "routes:\n  - name: r\n    source: app\n    to:\n      - destination: slow\n"
      "      - destination: plain\n";
  HubConfig cfg;
  std::string error;
  ASSERT_TRUE(testing::load_test_hub_config(yaml, dir.path(), registries, cfg, error)) << error;
  Hub hub(cfg, registries.connectors, SystemClock::instance());
  hub.start();
  AcceptResponse a = hub.accept(AcceptRequest{"app", R"({"type":"t","key":"k"})", "", {}});
  ASSERT_EQ(a.status, 202) << a.detail;
  ASSERT_TRUE(testing::wait_until([] { return g_nice_slow != -100 && g_nice_plain != -100; }));
  EXPECT_EQ(g_nice_slow.load(), 7);
  EXPECT_EQ(g_nice_plain.load(), process_nice);
  EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(gettid())), process_nice);
  hub.stop();
}

TEST(ThreadNice, ANiceBeyondNineteenIsRefused) {
  testing::TempDir dir;
  Registries registries;
  std::string yaml =
      "store:\n  path: relais.db\n"
      "sources:\n  app:\n    type: $.type\n"
      "connectors:\n  partner:\n    connector: http\n    url: http://127.0.0.1:1/\n"
      "    nice: 20\n";
  HubConfig cfg;
  std::string error;
  EXPECT_FALSE(testing::load_test_hub_config(yaml, dir.path(), registries, cfg, error));
  EXPECT_NE(error.find("nice"), std::string::npos) << error;
}

}  // namespace
}  // namespace relais
