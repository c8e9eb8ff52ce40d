// JSON-lines logger (RapidJSON Writer) and request ids.
#include "telemetry/log.h"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <random>
#include <thread>

namespace hearth::telemetry {

// ---- levels and fields -------------------------------------------------------

Result<LogLevel> parse_log_level(const std::string& text) {
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "debug") return LogLevel::kDebug;
  if (lower == "info") return LogLevel::kInfo;
  if (lower == "warn" || lower == "warning") return LogLevel::kWarn;
  if (lower == "error") return LogLevel::kError;
  return invalid_argument("unknown log level '", text, "' (expected debug, info, warn or error)");
}

const char* log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

LogField field(std::string key, std::string value) { return {std::move(key), std::move(value)}; }
LogField field(std::string key, std::string_view value) { return {std::move(key), std::string(value)}; }
LogField field(std::string key, const char* value) {
  return {std::move(key), std::string(value != nullptr ? value : "")};
}
LogField field(std::string key, int value) { return {std::move(key), static_cast<int64_t>(value)}; }
LogField field(std::string key, long value) { return {std::move(key), static_cast<int64_t>(value)}; }
LogField field(std::string key, long long value) { return {std::move(key), static_cast<int64_t>(value)}; }
LogField field(std::string key, unsigned value) { return {std::move(key), static_cast<int64_t>(value)}; }
LogField field(std::string key, unsigned long value) {
  return field(std::move(key), static_cast<unsigned long long>(value));
}
LogField field(std::string key, unsigned long long value) {
  if (value > static_cast<unsigned long long>(std::numeric_limits<int64_t>::max())) {
    return {std::move(key), static_cast<double>(value)};
  }
  return {std::move(key), static_cast<int64_t>(value)};
}
LogField field(std::string key, double value) { return {std::move(key), value}; }
LogField field(std::string key, bool value) { return {std::move(key), value}; }

// ---- JSON line ---------------------------------------------------------------

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 when it is invalid.
size_t utf8_sequence_length(std::string_view s, size_t i) {
  auto byte = [&s](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // no overlong forms
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;  // <= U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

// Writes `text` as a JSON string, replacing invalid UTF-8 bytes with U+FFFD.
template <typename Writer>
void write_string(Writer& w, std::string_view text) {
  size_t i = 0;
  size_t n = 0;
  while (i < text.size() && (n = utf8_sequence_length(text, i)) > 0) i += n;
  if (i == text.size()) {
    w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
    return;
  }
  std::string clean(text.substr(0, i));
  while (i < text.size()) {
    n = utf8_sequence_length(text, i);
    if (n == 0) {
      clean += "\xEF\xBF\xBD";
      ++i;
    } else {
      clean.append(text.substr(i, n));
      i += n;
    }
  }
  w.String(clean.data(), static_cast<rapidjson::SizeType>(clean.size()));
}

// "2026-11-25T18:40:01.123456Z" (UTC, microseconds).
std::string utc_timestamp() {
  auto now = std::chrono::system_clock::now();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(us / 1000000);
  long frac = static_cast<long>(us % 1000000);
  if (frac < 0) {  // before 1970: keep the fraction positive
    frac += 1000000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

template <typename Writer>
void write_value(Writer& w, const LogField& f) {
  if (const auto* s = std::get_if<std::string>(&f.value)) {
    write_string(w, *s);
  } else if (const auto* i = std::get_if<int64_t>(&f.value)) {
    w.Int64(*i);
  } else if (const auto* d = std::get_if<double>(&f.value)) {
    if (std::isfinite(*d)) {
      w.Double(*d);
    } else {
      w.Null();
    }
  } else if (const auto* b = std::get_if<bool>(&f.value)) {
    w.Bool(*b);
  }
}

}  // namespace

// ---- Logger ------------------------------------------------------------------

Logger& Logger::global() {
  static Logger* logger = new Logger();  // never destroyed: usable during static teardown
  return *logger;
}

void Logger::set_sink(std::FILE* sink) {
  std::lock_guard<std::mutex> lock(mu_);
  sink_ = sink;
}

void Logger::log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
  if (!enabled(level)) return;
  write(level, event, fields.begin(), fields.size());
}

void Logger::log(LogLevel level, std::string_view event, const std::vector<LogField>& fields) {
  if (!enabled(level)) return;
  write(level, event, fields.data(), fields.size());
}

void Logger::write(LogLevel level, std::string_view event, const LogField* fields, size_t count) {
  try {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    w.StartObject();
    w.Key("ts");
    std::string ts = utc_timestamp();
    w.String(ts.data(), static_cast<rapidjson::SizeType>(ts.size()));
    w.Key("level");
    w.String(log_level_name(level));
    w.Key("event");
    write_string(w, event);
    for (size_t i = 0; i < count; ++i) {
      write_string(w, fields[i].key);  // a key is a string in the Writer's state machine
      write_value(w, fields[i]);
    }
    w.EndObject();
    buffer.Put('\n');
    std::lock_guard<std::mutex> lock(mu_);
    std::FILE* out = sink_ != nullptr ? sink_ : stderr;
    std::fwrite(buffer.GetString(), 1, buffer.GetSize(), out);
    std::fflush(out);
  } catch (...) {
    // Out of memory while formatting: the line is dropped.
  }
}

void log_debug(std::string_view event, std::initializer_list<LogField> fields) {
  Logger::global().log(LogLevel::kDebug, event, fields);
}
void log_info(std::string_view event, std::initializer_list<LogField> fields) {
  Logger::global().log(LogLevel::kInfo, event, fields);
}
void log_warn(std::string_view event, std::initializer_list<LogField> fields) {
  Logger::global().log(LogLevel::kWarn, event, fields);
}
void log_error(std::string_view event, std::initializer_list<LogField> fields) {
  Logger::global().log(LogLevel::kError, event, fields);
}

// ---- request ids -------------------------------------------------------------

namespace {

uint64_t random_seed() {
  try {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  } catch (...) {
    // No entropy source: mix the clock and the thread id.
    auto t = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    return t ^ (std::hash<std::thread::id>()(std::this_thread::get_id()) * 0x9E3779B97F4A7C15ULL);
  }
}

}  // namespace

std::string new_request_id() {
  thread_local std::mt19937_64 rng(random_seed());
  uint64_t v = rng();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(16, '0');
  for (int i = 15; i >= 0; --i) {
    id[static_cast<size_t>(i)] = kHex[v & 0xF];
    v >>= 4;
  }
  return id;
}

}  // namespace hearth::telemetry
