// bench_sink: the quiet HTTP destination of the core benchmark (bench/run-core-bench.sh).
//
//   bench_sink [--port N] [--threads N] [--port-file PATH] [--hold-file PATH]
//
// Answers every request 200 {"ok":true} without keeping bodies (relais::tools::HttpSink with
// keep_bodies=false) and prints nothing per request. It prints "bench_sink listening on PORT"
// once ready (and writes PORT to --port-file if given). The run script reads the counters with
// `GET /count` (not counted as a delivery), which returns one line:
//   <deliveries> <ms since epoch of the first delivery> <ms since epoch of the last delivery>
// Every other request is a delivery. Poco's server holds one thread per keep-alive connection,
// so --threads (default 64) must exceed the number of connections the bench opens.
// --hold-file PATH: while PATH exists, each delivery waits (checked every 5 ms) before it is
// answered and counted — a destination that does not answer yet, so that relais's intake can be
// measured without its deliveries competing (bench/run-db-source-bench.sh, BENCH_DELIVERY=after).
// SIGTERM/SIGINT: prints the same line on stdout and exits 0.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "tools/sink/http_sink.h"

namespace {

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// First and last delivery times, written by the sink's handler threads (lock-free).
std::atomic<long long> g_first_ms{0};
std::atomic<long long> g_last_ms{0};

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  int threads = 64;
  std::string port_file;
  std::string hold_file;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--port" && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--port-file" && i + 1 < argc) {
      port_file = argv[++i];
    } else if (a == "--hold-file" && i + 1 < argc) {
      hold_file = argv[++i];
    } else {
      std::cerr << "usage: bench_sink [--port N] [--threads N] [--port-file PATH] "
                   "[--hold-file PATH]\n";
      return 2;
    }
  }

  // Block the stop signals before any thread starts, so only sigwait() below receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  // Counted here rather than with HttpSink::count(), which would also count GET /count.
  std::atomic<long long> delivered{0};
  relais::tools::HttpSink sink(port, /*keep_bodies=*/false, threads);
  sink.set_responder([&delivered, &hold_file](const relais::tools::SinkRequest& r) {
    relais::tools::SinkResponse out;
    if (r.method == "GET" && r.path == "/count") {
      out.body = std::to_string(delivered.load()) + " " + std::to_string(g_first_ms.load()) + " " +
                 std::to_string(g_last_ms.load()) + "\n";
      return out;
    }
    std::error_code ec;
    while (!hold_file.empty() && std::filesystem::exists(hold_file, ec)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    long long t = now_ms();
    long long zero = 0;
    g_first_ms.compare_exchange_strong(zero, t);
    long long last = g_last_ms.load();
    while (last < t && !g_last_ms.compare_exchange_weak(last, t)) {
    }
    delivered.fetch_add(1);
    return out;
  });
  std::cout << "bench_sink listening on " << sink.port() << std::endl;
  if (!port_file.empty()) {
    std::ofstream(port_file) << sink.port() << "\n";
  }
  int sig = 0;
  sigwait(&stop, &sig);
  std::cout << delivered.load() << " " << g_first_ms.load() << " " << g_last_ms.load() << std::endl;
  return 0;
}
