// core/thread_name.h: the names the benchmarks' per-thread CPU reads, on real threads.

#include "core/thread_name.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include "core/store.h"
#include "store/sqlite/sqlite_backend.h"
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

}  // namespace
}  // namespace relais
