#pragma once
// Metrics primitives rendered in the Prometheus text format. Counters and histograms are
// registered once and then updated lock-free; gauges come from collectors run at scrape time.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace relais {

using Labels = std::vector<std::pair<std::string, std::string>>;

// A monotonically increasing count. Thread-safe (atomic).
class Counter {
 public:
  void inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// A histogram with fixed bucket bounds (seconds). Thread-safe (atomics).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double seconds);
  void render(const std::string& name, const std::string& labels, std::string& out) const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_us_{0};
};

// Owns every metric. Thread-safe: registration takes a mutex; returned references stay valid
// for the registry's lifetime, so hot paths look a metric up once and keep the reference.
class Metrics {
 public:
  Counter& counter(const std::string& name, const Labels& labels);
  Histogram& histogram(const std::string& name, const Labels& labels);
  void describe(const std::string& name, const std::string& type, const std::string& help);
  // A collector appends gauge lines (with their HELP/TYPE) at scrape time.
  void add_collector(std::function<void(std::string&)> fn);
  std::string render() const;

  static std::string label_text(const Labels& labels);

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> help_;  // name → (type, help)
  std::map<std::string, std::map<std::string, std::unique_ptr<Counter>>> counters_;
  std::map<std::string, std::map<std::string, std::unique_ptr<Histogram>>> histograms_;
  std::vector<std::function<void(std::string&)>> collectors_;
};

}  // namespace relais
