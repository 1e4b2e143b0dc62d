#include "core/metrics.h"

#include <cmath>
#include <cstdio>

namespace relais {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i] = 0;
}

void Histogram::observe(double seconds) {
  size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<uint64_t>(std::llround(std::max(0.0, seconds) * 1e6)),
                    std::memory_order_relaxed);
}

void Histogram::render(const std::string& name, const std::string& labels, std::string& out) const {
  uint64_t cumulative = 0;
  std::string sep = labels.empty() ? "" : ",";
  char buf[64];
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    std::string le;
    if (i == bounds_.size()) {
      le = "+Inf";
    } else {
      std::snprintf(buf, sizeof buf, "%g", bounds_[i]);
      le = buf;
    }
    out += name + "_bucket{" + labels + sep + "le=\"" + le + "\"} " + std::to_string(cumulative) +
           "\n";
  }
  std::snprintf(buf, sizeof buf, "%.6f", static_cast<double>(sum_us_.load()) / 1e6);
  std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out += name + "_sum" + braces + " " + buf + "\n";
  out += name + "_count" + braces + " " + std::to_string(count_.load()) + "\n";
}

std::string Metrics::label_text(const Labels& labels) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (!out.empty()) out += ",";
    out += k + "=\"";
    for (char c : v) {
      if (c == '"' || c == '\\') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    out += "\"";
  }
  return out;
}

Counter& Metrics::counter(const std::string& name, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = counters_[name][label_text(labels)];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

Histogram& Metrics::histogram(const std::string& name, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = histograms_[name][label_text(labels)];
  if (!slot) {
    slot = std::make_unique<Histogram>(
        std::vector<double>{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300});
  }
  return *slot;
}

void Metrics::describe(const std::string& name, const std::string& type, const std::string& help) {
  std::lock_guard<std::mutex> lock(mu_);
  help_[name] = {type, help};
}

void Metrics::add_collector(std::function<void(std::string&)> fn) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.push_back(std::move(fn));
}

std::string Metrics::render() const {
  std::string out;
  std::vector<std::function<void(std::string&)>> collectors;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto header = [&](const std::string& name, const char* fallback_type) {
      auto it = help_.find(name);
      if (it != help_.end()) {
        out += "# HELP " + name + " " + it->second.second + "\n";
        out += "# TYPE " + name + " " + it->second.first + "\n";
      } else {
        out += "# TYPE " + name + " " + fallback_type + "\n";
      }
    };
    for (const auto& [name, series] : counters_) {
      header(name, "counter");
      for (const auto& [labels, c] : series) {
        out += name + (labels.empty() ? "" : "{" + labels + "}") + " " +
               std::to_string(c->value()) + "\n";
      }
    }
    for (const auto& [name, series] : histograms_) {
      header(name, "histogram");
      for (const auto& [labels, h] : series) h->render(name, labels, out);
    }
    collectors = collectors_;
  }
  for (const auto& fn : collectors) fn(out);
  return out;
}

}  // namespace relais
