#pragma once
// PeriodicThread: one thread that runs a function every interval until stopped (the alert
// monitor's evaluations, the retention purge). Owns its thread; start() and stop() are called by
// its owner (one thread); stopping() may be read from any thread (e.g. to cut a long run short).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "core/clock.h"
#include "core/thread_name.h"

namespace relais {

class PeriodicThread {
 public:
  PeriodicThread() = default;
  ~PeriodicThread() { stop(); }
  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;

  // Runs `fn` after `first` ms, then every `every` ms. A second start() does nothing.
  void start(Millis first, Millis every, std::function<void()> fn) {
    if (thread_.joinable()) return;
    thread_ = std::thread([this, first, every, fn = std::move(fn)] {
      set_thread_name("periodic");
      std::unique_lock<std::mutex> lock(mu_);
      for (Millis wait = first; !stopping_;) {
        if (cv_.wait_for(lock, std::chrono::milliseconds(wait),
                         [this] { return stopping_.load(); })) {
          break;
        }
        lock.unlock();
        fn();
        lock.lock();
        wait = every;
      }
    });
  }
  // Wakes the thread and waits for it (a run in progress finishes first). Final.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  const std::atomic<bool>& stopping() const { return stopping_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace relais
