// `relais backfill`: loads a large NDJSON file into a running relais through the batch endpoint
// (POST /api/v1/sources/{source}/messages:batch), resumably.
//
// One reader (the main thread) streams the file into batches of --batch lines; --parallel
// sender threads post them, each on its own keep-alive connection; the answers are settled in
// file order, and after each settled batch the state file records the byte offset and line
// number acknowledged so far (temporary file, fsync, rename). A restart continues from there.
// A batch in flight when the command stopped is sent again whole: the source's idempotency
// key makes the server answer "duplicate" for the lines it had already stored.

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "apps/api_client.h"
#include "apps/commands.h"
#include "core/thread_name.h"

namespace relais {
namespace {

using Steady = std::chrono::steady_clock;
using json = nlohmann::json;

const char* kUsage =
    "usage: relais backfill --input FILE.ndjson --source SOURCE --server URL --token TOKEN\n"
    "                       [--batch 1000] [--parallel 2] [--state FILE] [--report FILE]\n\n"
    "Sends every line of FILE.ndjson (one JSON message per line) to the running relais at URL "
    "through the batch endpoint of SOURCE, --batch lines per request (default 1000), "
    "--parallel requests in flight (default 2), with a token of role system or admin (default "
    "$RELAIS_TOKEN; --server defaults to $RELAIS_URL). The file is streamed, never loaded "
    "whole.\n\n"
    "Resumable: after each batch is answered, the byte offset and line number acknowledged "
    "are written to the state file (default FILE.ndjson.backfill-state); run the same command "
    "again to continue from there (delete the state file to start over). A batch that was in "
    "flight when the command stopped is sent again whole, so SOURCE must have an idempotency "
    "key (e.g. `idempotency: $.id`, as the shipped cms76 source has): the lines already stored "
    "are then answered as duplicates and counted apart. Without one, they would be stored "
    "twice.\n\n"
    "A line the server refuses (4xx) is written to the report file (default "
    "FILE.ndjson.backfill-errors.tsv: line number, status, error; never the line's content) and "
    "the run goes on. 503, 5xx and connection errors are retried with back-off (0.5 s doubling "
    "to 30 s). Progress goes to standard error (a bar on a terminal, else a line every 5 s), "
    "the summary to standard output. Exit 0 when every line was accepted or a duplicate, 1 when "
    "some were rejected (see the report), 2 when the server refused the run (token, source, "
    "size), 3 when interrupted (SIGINT/SIGTERM: the batches in flight are settled first; run "
    "again to resume), 64 on bad usage.\n";

std::atomic<bool> g_stop{false};
void on_stop_signal(int) {
  g_stop = true;
}

std::string arg(int argc, char** argv, const std::string& name) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == name) return argv[i + 1];
  }
  return {};
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// 1234567 → "1,234,567".
std::string grouped(uint64_t n) {
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

std::string duration_text(double seconds) {
  if (seconds < 0 || seconds > 1e7) return "?";
  auto s = static_cast<uint64_t>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%llu:%02llu:%02llu", static_cast<unsigned long long>(s / 3600),
                static_cast<unsigned long long>(s / 60 % 60),
                static_cast<unsigned long long>(s % 60));
  return buf;
}

// What is acknowledged: the prefix of the input whose every line was answered, and the counts
// for it (cumulative over the runs). Saved after each settled batch.
struct State {
  std::string input;
  uint64_t offset = 0;  // bytes of the input acknowledged
  uint64_t line = 0;    // lines acknowledged (blank ones included)
  uint64_t accepted = 0, duplicates = 0, rejected = 0, retried_batches = 0;
  uint64_t report_size = 0;  // bytes of the report written for the acknowledged prefix
};

bool load_state(const std::string& path, State& st, std::string& error) {
  std::ifstream in(path);
  if (!in) return true;  // no state: from the start
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, false);
  if (!j.is_object() || !j.contains("offset")) {
    error = "the state file " + path + " is not a backfill state (delete it to start over)";
    return false;
  }
  st.input = j.value("input", "");
  st.offset = j.value("offset", uint64_t{0});
  st.line = j.value("line", uint64_t{0});
  st.accepted = j.value("accepted", uint64_t{0});
  st.duplicates = j.value("duplicates", uint64_t{0});
  st.rejected = j.value("rejected", uint64_t{0});
  st.retried_batches = j.value("retried_batches", uint64_t{0});
  st.report_size = j.value("report_size", uint64_t{0});
  return true;
}

// Temporary file, fsync, rename, fsync of the folder: the state on disk is always a whole one.
bool save_state(const std::string& path, const State& st, std::string& error) {
  std::string text = json{{"input", st.input},
                          {"offset", st.offset},
                          {"line", st.line},
                          {"accepted", st.accepted},
                          {"duplicates", st.duplicates},
                          {"rejected", st.rejected},
                          {"retried_batches", st.retried_batches},
                          {"report_size", st.report_size}}
                         .dump() +
                     "\n";
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    error = "cannot write " + tmp + ": " + std::strerror(errno);
    return false;
  }
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    error = "cannot write " + path + ": " + std::strerror(errno);
    return false;
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

struct Batch {
  uint64_t index = 0;
  uint64_t end_offset = 0;  // input offset after the batch's last line
  uint64_t first_line = 0;  // file line number of the batch's first line (1-based)
  uint64_t lines = 0;       // lines in the batch (blank ones included)
  std::string body;
};

struct Settled {
  uint64_t end_offset = 0, end_line = 0;
  uint64_t accepted = 0, duplicates = 0, rejected = 0;
  bool retried = false;
  std::string report;  // lines for the report file
};

// The run: a bounded queue of batches from the reader to the senders, and the settling of
// the answers in file order (state file, report, counters). Thread-safe: every member shared
// between threads is guarded by mu_ or atomic.
class Backfill {
 public:
  struct Settings {
    std::string input, source, server, token, state_path, report_path;
    size_t batch = 1000;
    int parallel = 2;
  };

  explicit Backfill(Settings s) : s_(std::move(s)) {}

  int run() {
    std::string error;
    if (!load_state(s_.state_path, st_, error)) return fail(64, error);
    std::error_code ec;
    uint64_t size = std::filesystem::file_size(s_.input, ec);
    if (ec) return fail(64, "cannot read " + s_.input + ": " + ec.message());
    file_size_ = size;
    std::string input_abs = std::filesystem::absolute(s_.input).lexically_normal().string();
    if (!st_.input.empty() && st_.input != input_abs) {
      return fail(64, "the state file " + s_.state_path + " belongs to " + st_.input + ", not " +
                          input_abs + " (give another --state, or delete it)");
    }
    if (st_.offset > size) {
      return fail(64, "the state file says " + grouped(st_.offset) + " bytes were sent but " +
                          s_.input + " has " + grouped(size) +
                          ": not the same file (delete the state file to start over)");
    }
    st_.input = input_abs;
    // The report: keep what belongs to the acknowledged prefix (a batch sent again reports
    // its lines again).
    if (std::filesystem::exists(s_.report_path, ec) &&
        std::filesystem::file_size(s_.report_path, ec) > st_.report_size) {
      std::filesystem::resize_file(s_.report_path, st_.report_size, ec);
    }
    report_ = std::fopen(s_.report_path.c_str(), "ab");
    if (report_ == nullptr) return fail(64, "cannot write the report " + s_.report_path);
    std::ifstream in(s_.input, std::ios::binary);
    if (!in) return fail(64, "cannot read " + s_.input);
    in.seekg(static_cast<std::streamoff>(st_.offset));
    if (st_.offset > 0) {
      std::cerr << "backfill: resuming at line " << grouped(st_.line + 1) << " (byte "
                << grouped(st_.offset) << " of " << grouped(size)
                << "); the batch that was in flight is sent again: the source's idempotency key "
                   "makes its stored lines come back as duplicates\n";
    }
    if (st_.offset == size) {
      std::cerr << "backfill: nothing left to send (delete " << s_.state_path
                << " to start over)\n";
    }
    start_ = Steady::now();
    start_offset_ = st_.offset;
    start_records_ = st_.accepted + st_.duplicates + st_.rejected;
    next_settle_ = 0;
    std::vector<std::thread> senders;
    for (int i = 0; i < s_.parallel; ++i) {
      senders.emplace_back([this, i] {
        set_thread_name("send", i);
        send_loop();
      });
    }
    std::thread progress([this] {
      set_thread_name("progress");
      progress_loop();
    });

    read_loop(in);
    {
      std::lock_guard<std::mutex> lock(mu_);
      reading_done_ = true;
    }
    cv_.notify_all();
    for (auto& t : senders) t.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      finished_ = true;
    }
    cv_.notify_all();
    progress.join();
    std::fclose(report_);
    return summary();
  }

 private:
  int fail(int code, const std::string& why) {
    std::cerr << "relais backfill: " << why << "\n";
    return code;
  }

  void read_loop(std::ifstream& in) {
    uint64_t offset = st_.offset, line = st_.line, index = 0;
    std::string text;
    Batch b;
    auto flush = [&] {
      if (b.lines == 0) return;
      b.index = index++;
      b.end_offset = offset;
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock,
               [&] { return queue_.size() < static_cast<size_t>(s_.parallel) * 2 || stopping(); });
      if (stopping()) return;
      queue_.push_back(std::move(b));
      lock.unlock();
      cv_.notify_all();
      b = Batch{};
    };
    constexpr size_t kMaxBatchBytes = 32u << 20;  // the server allows 64 x max_body
    while (!stopping() && std::getline(in, text)) {
      bool newline = !in.eof();
      offset += text.size() + (newline ? 1 : 0);
      ++line;
      if (b.lines == 0) b.first_line = line;
      if (b.lines) b.body += '\n';
      b.body += text;
      ++b.lines;
      if (b.lines >= s_.batch || b.body.size() >= kMaxBatchBytes) flush();
    }
    if (!stopping()) flush();
  }

  bool stopping() const { return g_stop || fatal_; }

  void send_loop() {
    // Each sender has its own connection, kept alive. The batch is idempotent thanks to the
    // source's idempotency key: libcurl may send it again on a reused connection found dead
    // before any answer, and a batch without an answer is sent again.
    ApiClient api(s_.server, s_.token, 300000);
    std::string path = "/api/v1/sources/" + api.escape(s_.source) + "/messages:batch";
    std::mt19937 rng(std::random_device{}());
    for (;;) {
      Batch b;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty() || reading_done_ || stopping(); });
        if (queue_.empty() || fatal_) return;
        b = std::move(queue_.front());
        queue_.pop_front();
      }
      cv_.notify_all();
      Settled out;
      out.end_offset = b.end_offset;
      out.end_line = b.first_line + b.lines - 1;
      double backoff = 0.5;
      for (;;) {
        ApiAnswer a = api.send("POST", path, b.body, "application/x-ndjson", true);
        bool again = a.status == 0 || a.status == 429 || a.status >= 500;
        std::string why = a.describe();
        if (a.status == 200 && !settle_answer(a, b, out, why)) again = true;
        if (!again && a.status != 200) {
          std::lock_guard<std::mutex> lock(mu_);
          if (!fatal_) {
            fatal_ = true;
            fatal_error_ = "the server refused batch of lines " + grouped(b.first_line) + "–" +
                           grouped(out.end_line) + ": " + why +
                           (a.status == 413 ? " (lower --batch)" : "");
          }
          cv_.notify_all();
          return;
        }
        if (!again) break;
        out.retried = true;
        retries_++;
        if (g_stop || fatal_) return;  // not acknowledged: sent again by the next run
        {
          std::lock_guard<std::mutex> lock(mu_);
          last_retry_ = why;
        }
        std::uniform_real_distribution<double> jitter(0.5, 1.0);
        auto wait = std::chrono::duration<double>(backoff * jitter(rng));
        auto until = Steady::now() + std::chrono::duration_cast<Steady::duration>(wait);
        while (Steady::now() < until && !g_stop && !fatal_) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        backoff = std::min(backoff * 2, 30.0);
      }
      settle(b.index, std::move(out));
    }
  }

  // Reads a 200 answer into `out`; false (with why) when a line was not stored for a reason
  // that calls for sending the batch again (503 "not stored").
  bool settle_answer(const ApiAnswer& a, const Batch& b, Settled& out, std::string& why) {
    json j = a.json();
    if (!j.is_object() || !j.contains("results") || !j["results"].is_array()) {
      why = "unreadable answer to a batch";
      return false;
    }
    out.accepted = out.duplicates = out.rejected = 0;
    out.report.clear();
    for (const auto& r : j["results"]) {
      int status = r.value("status", 0);
      uint64_t line = b.first_line + r.value("line", uint64_t{1}) - 1;
      if (status == 202) {
        ++out.accepted;
      } else if (status == 200) {
        ++out.duplicates;
      } else if (status == 503 || status >= 500 || status == 0) {
        why = "line " + grouped(line) + " not stored (HTTP " + std::to_string(status) + ")";
        return false;
      } else {
        ++out.rejected;
        // Never the line's content nor the detail (a parser's detail may quote the line).
        out.report += std::to_string(line) + "\t" + std::to_string(status) + "\t" +
                      r.value("error", std::string()) + "\n";
      }
    }
    return true;
  }

  // Settles batches in file order; saves the state after each.
  void settle(uint64_t index, Settled s) {
    std::lock_guard<std::mutex> lock(settle_mu_);
    done_.emplace(index, std::move(s));
    while (!done_.empty() && done_.begin()->first == next_settle_) {
      Settled& d = done_.begin()->second;
      if (!d.report.empty()) {
        std::fwrite(d.report.data(), 1, d.report.size(), report_);
        std::fflush(report_);
        ::fsync(fileno(report_));
      }
      State st;
      {
        std::lock_guard<std::mutex> l(mu_);
        st_.offset = d.end_offset;
        st_.line = d.end_line;
        st_.accepted += d.accepted;
        st_.duplicates += d.duplicates;
        st_.rejected += d.rejected;
        st_.retried_batches += d.retried ? 1 : 0;
        st_.report_size += d.report.size();
        st = st_;
      }
      std::string error;
      if (!save_state(s_.state_path, st, error)) {
        std::lock_guard<std::mutex> l(mu_);
        if (!fatal_) {
          fatal_ = true;
          fatal_error_ = error;
        }
        cv_.notify_all();
      }
      done_.erase(done_.begin());
      ++next_settle_;
    }
  }

  void progress_loop() {
    bool tty = isatty(STDERR_FILENO) != 0;
    auto every = tty ? std::chrono::milliseconds(250) : std::chrono::milliseconds(5000);
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      bool end = cv_.wait_for(lock, every, [&] { return finished_; });
      State st = st_;
      std::string retry = last_retry_;
      last_retry_.clear();
      lock.unlock();
      print_progress(st, tty, end, retry);
      lock.lock();
      if (end) return;
    }
  }

  void print_progress(const State& st, bool tty, bool end, const std::string& retry) {
    double elapsed = std::chrono::duration<double>(Steady::now() - start_).count();
    uint64_t records = st.accepted + st.duplicates + st.rejected;
    double rate = elapsed > 0 ? static_cast<double>(records - start_records_) / elapsed : 0;
    double bytes_rate = elapsed > 0 ? static_cast<double>(st.offset - start_offset_) / elapsed : 0;
    double pct = file_size_
                     ? 100.0 * static_cast<double>(st.offset) / static_cast<double>(file_size_)
                     : 100.0;
    double eta = bytes_rate > 0 ? static_cast<double>(file_size_ - st.offset) / bytes_rate : -1;
    std::ostringstream line;
    line << grouped(records) << " records, " << grouped(static_cast<uint64_t>(rate)) << "/s, "
         << std::fixed << std::setprecision(1) << pct << " %, ETA " << duration_text(eta);
    if (retries_) line << ", " << retries_.load() << " retries";
    if (tty) {
      constexpr int kWidth = 30;
      int filled = static_cast<int>(pct / 100.0 * kWidth);
      std::string bar(static_cast<size_t>(filled), '#');
      bar.resize(kWidth, '.');
      if (!retry.empty())
        std::cerr << "\r\033[K"
                  << "backfill: retrying: " << retry << "\n";
      std::cerr << "\r\033[K[" << bar << "] " << line.str() << (end ? "\n" : "") << std::flush;
    } else {
      if (!retry.empty()) std::cerr << "backfill: retrying: " << retry << "\n";
      std::cerr << "backfill: " << line.str() << std::endl;
    }
  }

  int summary() {
    double elapsed = std::chrono::duration<double>(Steady::now() - start_).count();
    uint64_t records = st_.accepted + st_.duplicates + st_.rejected;
    uint64_t this_run = records - start_records_;
    std::cout << "backfill: " << grouped(st_.line) << " line(s) of " << s_.input
              << " acknowledged (" << grouped(st_.offset) << " of " << grouped(file_size_)
              << " bytes)\n"
              << "  accepted " << grouped(st_.accepted) << ", duplicates "
              << grouped(st_.duplicates) << ", rejected " << grouped(st_.rejected)
              << (st_.rejected ? " (see " + s_.report_path + ")" : "") << ", retried batches "
              << grouped(st_.retried_batches) << "\n"
              << "  this run: " << grouped(this_run) << " record(s) in " << std::fixed
              << std::setprecision(1) << elapsed << " s ("
              << grouped(static_cast<uint64_t>(elapsed > 0 ? this_run / elapsed : 0))
              << " records/s)\n";
    if (fatal_) {
      std::cerr << "relais backfill: " << fatal_error_ << "\n";
      return 2;
    }
    if (g_stop) {
      std::cerr << "relais backfill: interrupted; run the same command again to resume\n";
      return 3;
    }
    return st_.rejected ? 1 : 0;
  }

  Settings s_;
  State st_;
  uint64_t file_size_ = 0, start_offset_ = 0, start_records_ = 0;
  Steady::time_point start_;
  std::FILE* report_ = nullptr;

  std::mutex mu_;  // queue_, flags, st_, last_retry_
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  bool reading_done_ = false, finished_ = false;
  std::atomic<bool> fatal_{false};
  std::string fatal_error_, last_retry_;
  std::atomic<uint64_t> retries_{0};

  std::mutex settle_mu_;  // done_, next_settle_, the report file
  std::map<uint64_t, Settled> done_;
  uint64_t next_settle_ = 0;
};

}  // namespace

int backfill_command(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      std::cout << kUsage;
      return 0;
    }
  }
  Backfill::Settings s;
  s.input = arg(argc, argv, "--input");
  s.source = arg(argc, argv, "--source");
  s.server = arg(argc, argv, "--server");
  if (s.server.empty()) s.server = env("RELAIS_URL");
  s.token = arg(argc, argv, "--token");
  if (s.token.empty()) s.token = env("RELAIS_TOKEN");
  s.state_path = arg(argc, argv, "--state");
  if (s.state_path.empty()) s.state_path = s.input + ".backfill-state";
  s.report_path = arg(argc, argv, "--report");
  if (s.report_path.empty()) s.report_path = s.input + ".backfill-errors.tsv";
  long batch =
      arg(argc, argv, "--batch").empty() ? 1000 : std::atol(arg(argc, argv, "--batch").c_str());
  long parallel =
      arg(argc, argv, "--parallel").empty() ? 2 : std::atol(arg(argc, argv, "--parallel").c_str());
  if (s.input.empty() || s.source.empty() || s.server.empty() || s.token.empty() || batch < 1 ||
      batch > 10000 || parallel < 1 || parallel > 16) {
    std::cerr << kUsage;
    return 64;
  }
  s.batch = static_cast<size_t>(batch);
  s.parallel = static_cast<int>(parallel);
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  Backfill run(std::move(s));
  return run.run();
}

}  // namespace relais
