#include "core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

#include "core/clock.h"

namespace relais {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};
std::mutex g_mu;
const char* name(LogLevel l) {
  switch (l) {
    case LogLevel::Debug:
      return "DEBUG";
    case LogLevel::Info:
      return "INFO";
    case LogLevel::Warn:
      return "WARN";
    case LogLevel::Error:
      return "ERROR";
  }
  return "?";
}
}  // namespace

void set_log_level(LogLevel level) {
  g_level = static_cast<int>(level);
}
LogLevel log_level() {
  return static_cast<LogLevel>(g_level.load());
}

bool parse_log_level(const std::string& text, LogLevel& out) {
  for (auto l : {LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error}) {
    std::string n = name(l);
    std::string lower;
    for (char c : n) lower += static_cast<char>(c - 'A' + 'a');
    if (text == n || text == lower) {
      out = l;
      return true;
    }
  }
  return false;
}

void log_at(LogLevel level, const char* component, const std::string& text) {
  if (static_cast<int>(level) < g_level.load()) return;
  std::string line = format_rfc3339(SystemClock::instance().now_ms()) + " " + name(level) + " [" +
                     component + "] " + text + "\n";
  std::lock_guard<std::mutex> lock(g_mu);
  std::fputs(line.c_str(), stderr);
}

}  // namespace relais
