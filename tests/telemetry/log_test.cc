// Tests of the JSON-lines logger (parsed back with RapidJSON) and request ids.
#include "telemetry/log.h"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <cmath>
#include <limits>
#include <regex>
#include <set>
#include <thread>

namespace hearth::telemetry {
namespace {

// A logger writing to a tmpfile whose lines can be read back.
class LogCapture {
 public:
  LogCapture() : file_(std::tmpfile()) { logger_.set_sink(file_); }
  ~LogCapture() {
    if (file_ != nullptr) std::fclose(file_);
  }
  Logger& logger() { return logger_; }
  std::FILE* file() { return file_; }

  std::string text() {
    std::rewind(file_);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), file_)) > 0) out.append(buf, n);
    return out;
  }
  std::vector<std::string> lines() {
    std::vector<std::string> out;
    std::string all = text();
    size_t start = 0;
    for (size_t nl; (nl = all.find('\n', start)) != std::string::npos; start = nl + 1) {
      out.push_back(all.substr(start, nl - start));
    }
    EXPECT_EQ(start, all.size()) << "text after the last newline";
    return out;
  }

 private:
  Logger logger_;
  std::FILE* file_;
};

rapidjson::Document parse(const std::string& line) {
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(line.c_str(), line.size());
  EXPECT_FALSE(doc.HasParseError()) << "not JSON: " << line;
  EXPECT_TRUE(doc.IsObject()) << line;
  return doc;
}

TEST(Log, writes_one_parseable_json_line_with_fields_in_order) {
  LogCapture cap;
  ASSERT_NE(cap.file(), nullptr);
  cap.logger().log(LogLevel::kInfo, "model_loaded",
                   {field("model", "resnet"), field("version", 3), field("ms", 12.5),
                    field("ready", true), field("bytes", size_t{1} << 40),
                    field("neg", int64_t{-7}), field("name", std::string("s"))});
  cap.logger().log(LogLevel::kError, "plain");
  std::vector<std::string> lines = cap.lines();
  ASSERT_EQ(lines.size(), 2u);
  rapidjson::Document doc = parse(lines[0]);
  std::vector<std::string> keys;
  for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) keys.emplace_back(it->name.GetString());
  EXPECT_EQ(keys, (std::vector<std::string>{"ts", "level", "event", "model", "version", "ms", "ready",
                                            "bytes", "neg", "name"}));
  EXPECT_STREQ(doc["level"].GetString(), "info");
  EXPECT_STREQ(doc["event"].GetString(), "model_loaded");
  EXPECT_STREQ(doc["model"].GetString(), "resnet");
  EXPECT_EQ(doc["version"].GetInt64(), 3);
  EXPECT_EQ(doc["ms"].GetDouble(), 12.5);
  EXPECT_TRUE(doc["ready"].GetBool());
  EXPECT_EQ(doc["bytes"].GetInt64(), int64_t{1} << 40);
  EXPECT_EQ(doc["neg"].GetInt64(), -7);
  EXPECT_STREQ(doc["name"].GetString(), "s");
  EXPECT_TRUE(std::regex_match(std::string(doc["ts"].GetString()),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")))
      << doc["ts"].GetString();
  rapidjson::Document plain = parse(lines[1]);
  EXPECT_STREQ(plain["level"].GetString(), "error");
  EXPECT_EQ(plain.MemberCount(), 3u);
}

TEST(Log, filters_by_level) {
  LogCapture cap;
  Logger& log = cap.logger();
  EXPECT_EQ(log.level(), LogLevel::kInfo);
  EXPECT_FALSE(log.enabled(LogLevel::kDebug));
  log.log(LogLevel::kDebug, "hidden");
  log.set_level(LogLevel::kWarn);
  EXPECT_FALSE(log.enabled(LogLevel::kInfo));
  EXPECT_TRUE(log.enabled(LogLevel::kError));
  log.log(LogLevel::kInfo, "hidden");
  log.log(LogLevel::kWarn, "shown_warn");
  log.log(LogLevel::kError, "shown_error", std::vector<LogField>{field("k", 1)});
  log.set_level(LogLevel::kDebug);
  log.log(LogLevel::kDebug, "shown_debug");
  std::vector<std::string> lines = cap.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_STREQ(parse(lines[0])["level"].GetString(), "warn");
  EXPECT_STREQ(parse(lines[1])["event"].GetString(), "shown_error");
  EXPECT_EQ(parse(lines[1])["k"].GetInt64(), 1);
  EXPECT_STREQ(parse(lines[2])["level"].GetString(), "debug");
}

TEST(Log, escapes_quotes_newlines_and_control_chars) {
  LogCapture cap;
  const std::string nasty = std::string("say \"hi\"\\ \n\r\t end") + '\x01' + '\x1f' + '\0' + "x \xE2\x82\xAC";
  cap.logger().log(LogLevel::kWarn, "ev\"\n", {field("msg", nasty), field("we\"ird\nkey", "v")});
  std::vector<std::string> lines = cap.lines();
  ASSERT_EQ(lines.size(), 1u);  // the newlines stayed escaped
  for (char c : lines[0]) EXPECT_GE(static_cast<unsigned char>(c), 0x20) << lines[0];
  rapidjson::Document doc = parse(lines[0]);
  EXPECT_EQ(std::string(doc["msg"].GetString(), doc["msg"].GetStringLength()), nasty);
  EXPECT_STREQ(doc["event"].GetString(), "ev\"\n");
  EXPECT_STREQ(doc["we\"ird\nkey"].GetString(), "v");
}

TEST(Log, replaces_invalid_utf8_and_non_finite_doubles) {
  LogCapture cap;
  cap.logger().log(LogLevel::kInfo, "e",
                   {field("bad", "a\xff" "b\xC3"), field("overlong", "\xC0\xAF"),
                    field("nan", std::nan("")), field("inf", std::numeric_limits<double>::infinity())});
  std::vector<std::string> lines = cap.lines();
  ASSERT_EQ(lines.size(), 1u);
  rapidjson::Document doc = parse(lines[0]);  // validates UTF-8
  EXPECT_STREQ(doc["bad"].GetString(), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
  EXPECT_STREQ(doc["overlong"].GetString(), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_TRUE(doc["nan"].IsNull());
  EXPECT_TRUE(doc["inf"].IsNull());
}

TEST(Log, concurrent_lines_never_interleave) {
  LogCapture cap;
  constexpr int kThreads = 6;
  constexpr int kLines = 300;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&cap, t] {
      std::string payload(200 + t * 50, static_cast<char>('a' + t));
      for (int i = 0; i < kLines; ++i) {
        cap.logger().log(LogLevel::kInfo, "tick", {field("thread", t), field("i", i), field("p", payload)});
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<std::string> lines = cap.lines();
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kLines));
  std::vector<int> per_thread(kThreads, 0);
  for (const std::string& line : lines) {
    rapidjson::Document doc = parse(line);
    ASSERT_TRUE(doc.IsObject());
    int t = static_cast<int>(doc["thread"].GetInt64());
    ASSERT_TRUE(t >= 0 && t < kThreads);
    EXPECT_EQ(doc["i"].GetInt64(), per_thread[static_cast<size_t>(t)]++);  // per-thread order kept
    EXPECT_EQ(doc["p"].GetStringLength(), static_cast<unsigned>(200 + t * 50));
  }
}

TEST(Log, global_helpers_use_the_global_logger) {
  LogCapture cap;
  Logger& global = Logger::global();
  LogLevel saved = global.level();
  global.set_sink(cap.file());
  global.set_level(LogLevel::kInfo);
  log_debug("d");
  log_info("i", {field("a", 1)});
  log_warn("w");
  log_error("e");
  global.set_sink(nullptr);
  global.set_level(saved);
  std::vector<std::string> lines = cap.lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_STREQ(parse(lines[0])["event"].GetString(), "i");
  EXPECT_STREQ(parse(lines[2])["level"].GetString(), "error");
}

TEST(Log, parses_levels) {
  EXPECT_EQ(*parse_log_level("debug"), LogLevel::kDebug);
  EXPECT_EQ(*parse_log_level("info"), LogLevel::kInfo);
  EXPECT_EQ(*parse_log_level("WARN"), LogLevel::kWarn);
  EXPECT_EQ(*parse_log_level("warning"), LogLevel::kWarn);
  EXPECT_EQ(*parse_log_level("error"), LogLevel::kError);
  auto bad = parse_log_level("verbose");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("verbose"), std::string::npos);
  EXPECT_STREQ(log_level_name(LogLevel::kWarn), "warn");
}

TEST(Log, request_ids_are_unique_16_hex_chars) {
  std::set<std::string> ids;
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      std::vector<std::string> local;
      for (int i = 0; i < 5000; ++i) local.push_back(new_request_id());
      std::lock_guard<std::mutex> lock(mu);
      ids.insert(local.begin(), local.end());
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ids.size(), 20000u);
  for (const std::string& id : ids) {
    ASSERT_EQ(id.size(), 16u);
    for (char c : id) ASSERT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << id;
  }
}

}  // namespace
}  // namespace hearth::telemetry
