// Structured logging: one JSON object per line, written atomically to a FILE*
// (stderr by default), plus request ids. Public header of the telemetry layer.
//
//   log_info("model_loaded", {field("model", name), field("version", 3), field("ms", 12.5)});
//   -> {"ts":"2026-11-25T18:40:01.123456Z","level":"info","event":"model_loaded","model":"m","version":3,"ms":12.5}
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/status.h"

namespace hearth::telemetry {

enum class LogLevel { kDebug = 0, kInfo, kWarn, kError };

// "debug" | "info" | "warn" | "error" (case-insensitive; "warning" too).
Result<LogLevel> parse_log_level(const std::string& text);
// "debug" | "info" | "warn" | "error".
const char* log_level_name(LogLevel level);

struct LogField {
  std::string key;
  std::variant<std::string, int64_t, double, bool> value;
};

// Convenience constructors. Unsigned values above INT64_MAX are kept as double;
// a null const char* becomes "".
LogField field(std::string key, std::string value);
LogField field(std::string key, std::string_view value);
LogField field(std::string key, const char* value);
LogField field(std::string key, int value);
LogField field(std::string key, long value);
LogField field(std::string key, long long value);
LogField field(std::string key, unsigned value);
LogField field(std::string key, unsigned long value);
LogField field(std::string key, unsigned long long value);
LogField field(std::string key, double value);
LogField field(std::string key, bool value);

class Logger {
 public:
  // The process-wide logger (level info, sink stderr).
  static Logger& global();

  Logger() = default;
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  void set_level(LogLevel level) { level_.store(static_cast<int>(level), std::memory_order_relaxed); }
  LogLevel level() const { return static_cast<LogLevel>(level_.load(std::memory_order_relaxed)); }
  bool enabled(LogLevel level) const {
    return static_cast<int>(level) >= level_.load(std::memory_order_relaxed);
  }
  // Not owned; nullptr restores stderr.
  void set_sink(std::FILE* sink);

  // Writes one line {"ts":...,"level":...,"event":...,<fields in order>} when
  // `level` is enabled. Strings are JSON-escaped (control characters as \u00XX)
  // and invalid UTF-8 is replaced by U+FFFD; non-finite doubles become null.
  // Field keys are written as given (a key equal to "ts"/"level"/"event" is
  // not renamed). Each line goes out with one fwrite + fflush under a mutex.
  // Never throws; a line that cannot be built or written is dropped.
  void log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields = {});
  void log(LogLevel level, std::string_view event, const std::vector<LogField>& fields);

 private:
  void write(LogLevel level, std::string_view event, const LogField* fields, size_t count);

  std::atomic<int> level_{static_cast<int>(LogLevel::kInfo)};
  std::mutex mu_;
  std::FILE* sink_ = nullptr;  // nullptr means stderr
};

// Short helpers on Logger::global().
void log_debug(std::string_view event, std::initializer_list<LogField> fields = {});
void log_info(std::string_view event, std::initializer_list<LogField> fields = {});
void log_warn(std::string_view event, std::initializer_list<LogField> fields = {});
void log_error(std::string_view event, std::initializer_list<LogField> fields = {});

// A new request id: 16 lowercase hex chars from a thread-local PRNG seeded once
// per thread from std::random_device.
std::string new_request_id();

}  // namespace hearth::telemetry
