// The per-layer path choice (kernels/path_tuner.h): heuristic, measured and
// cached decisions, the time budget, failing candidates, and the cache file.
#include "kernels/path_tuner.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

namespace hearth {
namespace {

namespace fs = std::filesystem;

struct Counted {
  std::vector<int> runs;
  std::vector<PathTuner::Candidate> candidates(const std::vector<int>& sleep_us, int failing = -1) {
    runs.assign(sleep_us.size(), 0);
    std::vector<PathTuner::Candidate> c;
    for (size_t i = 0; i < sleep_us.size(); ++i)
      c.push_back({"path" + std::to_string(i), [this, i, us = sleep_us[i], failing]() -> Status {
                     ++runs[i];
                     if (static_cast<int>(i) == failing) return internal_error("refused");
                     std::this_thread::sleep_for(std::chrono::microseconds(us));
                     return ok_status();
                   }});
    return c;
  }
  int total() const {
    int t = 0;
    for (int r : runs) t += r;
    return t;
  }
};

TEST(PathTuner, HeuristicModeRunsNothing) {
  PathTuner t(TuningMode::kHeuristic, TuningCache::open(""), 1e9);
  Counted c;
  EXPECT_EQ(t.choose("n", "layer", c.candidates({3000, 0}), 0), 0u);
  EXPECT_EQ(c.total(), 0);
  ASSERT_EQ(t.report().size(), 1u);
  EXPECT_EQ(t.report()[0].reason, "heuristic");
  EXPECT_EQ(t.report()[0].path, "path0");
}

TEST(PathTuner, MeasuresPicksTheFastestAndCachesIt) {
  auto cache = TuningCache::open("");
  PathTuner measure(TuningMode::kMeasure, cache, 1e9);
  Counted c;
  // The heuristic's pick (0) is the slow one: the measurement overrules it.
  EXPECT_EQ(measure.choose("n", "layer A", c.candidates({3000, 100}), 0), 1u);
  EXPECT_GT(c.runs[0], 1);
  EXPECT_GT(c.runs[1], 1);
  const PathChoice r = measure.report().at(0);
  EXPECT_EQ(r.reason, "measured");
  EXPECT_EQ(r.path, "path1");
  ASSERT_EQ(r.us.size(), 2u);
  EXPECT_GT(r.us.at("path0"), r.us.at("path1"));
  ASSERT_TRUE(cache->lookup("layer A").has_value());
  EXPECT_EQ(cache->lookup("layer A")->path, "path1");
  EXPECT_FALSE(cache->lookup("layer B").has_value());

  // A cached session takes it without running anything.
  PathTuner cached(TuningMode::kCached, cache, 1e9);
  Counted again;
  EXPECT_EQ(cached.choose("n", "layer A", again.candidates({3000, 100}), 0), 1u);
  EXPECT_EQ(again.total(), 0);
  EXPECT_EQ(cached.report().at(0).reason, "cached");
  // And a layer it lacks gets the heuristic, unmeasured.
  EXPECT_EQ(cached.choose("n", "layer B", again.candidates({3000, 100}), 0), 0u);
  EXPECT_EQ(again.total(), 0);
  EXPECT_EQ(cached.report().at(1).reason, "heuristic");
}

TEST(PathTuner, ACachedPathThisBuildLacksFallsBack) {
  auto cache = TuningCache::open("");
  cache->record("layer", TuningCache::Entry{"a path from another build", {}});
  PathTuner t(TuningMode::kCached, cache, 1e9);
  Counted c;
  EXPECT_EQ(t.choose("n", "layer", c.candidates({0, 0}), 1), 1u);
  EXPECT_EQ(t.report().at(0).reason, "heuristic");
}

TEST(PathTuner, BudgetStopsMeasuring) {
  PathTuner t(TuningMode::kMeasure, TuningCache::open(""), 1.0);  // 1 ms in all
  Counted c;
  t.choose("n", "layer 1", c.candidates({2000, 2000}), 0);  // spends ~24 ms
  EXPECT_EQ(t.report().at(0).reason, "measured");
  EXPECT_GE(t.spent_ms(), 1.0);
  Counted d;
  EXPECT_EQ(t.choose("n", "layer 2", d.candidates({3000, 0}), 0), 0u);
  EXPECT_EQ(d.total(), 0);
  EXPECT_EQ(t.report().at(1).reason, "heuristic (tuning budget spent)");
}

TEST(PathTuner, FailingCandidatesAreSkipped) {
  PathTuner t(TuningMode::kMeasure, TuningCache::open(""), 1e9);
  Counted c;
  EXPECT_EQ(t.choose("n", "layer", c.candidates({0, 3000}, /*failing=*/0), 0), 1u);
  EXPECT_EQ(t.report().at(0).us.count("path0"), 0u);
  Counted all_fail;
  auto cands = all_fail.candidates({0});
  cands.push_back(cands[0]);
  cands[0].run = cands[1].run = [] { return internal_error("no"); };
  EXPECT_EQ(t.choose("n", "other", cands, 1), 1u);
  EXPECT_EQ(t.report().at(1).reason, "heuristic (every candidate failed when measured)");
}

TEST(PathTuner, OneCandidateIsNotMeasured) {
  PathTuner t(TuningMode::kMeasure, TuningCache::open(""), 1e9);
  Counted c;
  EXPECT_EQ(t.choose("n", "layer", c.candidates({0}), 0), 0u);
  EXPECT_EQ(c.total(), 0);
  EXPECT_EQ(t.report().at(0).reason, "only path");
}

// A serving session whose shapes vary decides again per shape: the report
// keeps one entry per node and shape, and a bounded number in all.
TEST(PathTuner, TheReportStaysBounded) {
  PathTuner t(TuningMode::kHeuristic, TuningCache::open(""), 1e9);
  Counted c;
  auto cands = c.candidates({0, 0});
  for (int i = 0; i < 3; ++i) t.choose("n", "layer 1", cands, 1);
  EXPECT_EQ(t.report().size(), 1u);
  t.annotate("n", "layer 1", "impl");
  EXPECT_EQ(t.report().at(0).detail, "impl");
  for (int i = 0; i < 10000; ++i) t.choose("n", "seq " + std::to_string(i), cands, 0);
  EXPECT_LE(t.report().size(), 4096u);
  EXPECT_EQ(t.report().back().layer, "seq 9999");
}

class TuningCacheFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("hearth_tuning_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(TuningCacheFile, RoundTripsThroughItsFile) {
  const std::string path = (dir_ / "sub" / "tuning.json").string();
  auto cache = TuningCache::open(path);
  EXPECT_EQ(cache->size(), 0u);  // no file yet
  cache->record("Conv n1 c64>64", TuningCache::Entry{"winograd", {{"winograd", 10.5}, {"onednn", 20.0}}});
  ASSERT_TRUE(cache->save().ok());
  EXPECT_TRUE(fs::exists(path));
  for (const auto& e : fs::directory_iterator(dir_ / "sub")) EXPECT_EQ(e.path().filename(), "tuning.json");
  std::string warning;
  auto back = TuningCache::open(path, &warning);
  EXPECT_EQ(warning, "");
  auto hit = back->lookup("Conv n1 c64>64");
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->path, "winograd");
  EXPECT_DOUBLE_EQ(hit->us.at("onednn"), 20.0);
  // Keys carry the machine: the file holds the full key.
  std::ifstream f(path);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find(TuningCache::machine_key()), std::string::npos);
}

TEST_F(TuningCacheFile, MalformedFilesAreIgnoredWithAWarning) {
  fs::create_directories(dir_);
  const std::pair<const char*, const char*> cases[] = {
      {"{not json", "not valid JSON"},
      {R"({"format": "other", "entries": {}})", "format is not hearth-tuning-1"},
      {R"({"format": "hearth-tuning-1"})", "no 'entries' object"},
      {R"({"format": "hearth-tuning-1", "entries": {"k": {"us": {}}}})", "entry 'k' has no path"},
  };
  for (const auto& [text, why] : cases) {
    const std::string path = (dir_ / "bad.json").string();
    std::ofstream(path) << text;
    std::string warning;
    auto cache = TuningCache::open(path, &warning);
    EXPECT_EQ(cache->size(), 0u) << text;
    EXPECT_NE(warning.find(why), std::string::npos) << warning;
  }
}

TEST(TuningModes, ParseAndName) {
  for (TuningMode m : {TuningMode::kHeuristic, TuningMode::kCached, TuningMode::kMeasure})
    EXPECT_EQ(*parse_tuning_mode(tuning_mode_name(m)), m);
  EXPECT_FALSE(parse_tuning_mode("fast").ok());
}

}  // namespace
}  // namespace hearth
