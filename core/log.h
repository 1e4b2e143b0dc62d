#pragma once
// Logging primitives. Log lines carry ids, names, counts and error classes; never message
// bodies, names, phone numbers or any other personal data. Thread-safe.

#include <string>

namespace relais {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };

void set_log_level(LogLevel level);
LogLevel log_level();
bool parse_log_level(const std::string& text, LogLevel& out);

void log_at(LogLevel level, const char* component, const std::string& text);
inline void log_debug(const char* c, const std::string& t) {
  log_at(LogLevel::Debug, c, t);
}
inline void log_info(const char* c, const std::string& t) {
  log_at(LogLevel::Info, c, t);
}
inline void log_warn(const char* c, const std::string& t) {
  log_at(LogLevel::Warn, c, t);
}
inline void log_error(const char* c, const std::string& t) {
  log_at(LogLevel::Error, c, t);
}

}  // namespace relais
