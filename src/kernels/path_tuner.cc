#include "kernels/path_tuner.h"

#include <dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/file_util.h"
#include "core/machine.h"
#include "kernels/cpu_paths.h"

namespace hearth {

namespace fs = std::filesystem;

namespace {

constexpr char kFormat[] = "hearth-tuning-1";
constexpr int kWarmupRuns = 1;
constexpr int kTimedRuns = 5;
constexpr size_t kMaxChoices = 4096;  // decisions a session keeps for its report

}  // namespace

const char* tuning_mode_name(TuningMode m) {
  switch (m) {
    case TuningMode::kHeuristic: return "heuristic";
    case TuningMode::kCached: return "cached";
    case TuningMode::kMeasure: return "measure";
  }
  return "?";
}

Result<TuningMode> parse_tuning_mode(const std::string& text) {
  if (text == "heuristic" || text == "off") return TuningMode::kHeuristic;
  if (text == "cached") return TuningMode::kCached;
  if (text == "measure") return TuningMode::kMeasure;
  return invalid_argument("unknown tuning mode '", text, "' (expected heuristic, cached or measure)");
}

std::string TuningCache::default_path() {
  if (const char* p = std::getenv("HEARTH_TUNING_CACHE"); p && *p) return std::string(p) == "off" ? "" : p;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return (fs::path(x) / "hearth" / "tuning.json").string();
  if (const char* h = std::getenv("HOME"); h && *h) return (fs::path(h) / ".cache" / "hearth" / "tuning.json").string();
  return "";
}

std::string TuningCache::machine_key() {
  static const std::string key = [] {
    const CpuInfo& c = cpu_info();
    const dnnl_version_t* v = dnnl_version();
    std::ostringstream out;
    out << c.vendor << ' ' << c.family << '/' << c.model << ' ' << c.brand << "|onednn " << v->major << '.'
        << v->minor << '.' << v->patch << ' ' << onednn_isa_name() << "|" << isa_name(isa_level());
    return out.str();
  }();
  return key;
}

std::shared_ptr<TuningCache> TuningCache::open(const std::string& path, std::string* warning) {
  auto cache = std::make_shared<TuningCache>();
  cache->path_ = path;
  if (path.empty()) return cache;
  std::ifstream f(path);
  if (!f) return cache;  // nothing measured yet
  auto fail = [&](const std::string& why) {
    if (warning) *warning = "tuning cache '" + path + "' ignored: " + why;
    cache->entries_.clear();
    return cache;
  };
  nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return fail("not valid JSON");
  if (!j.is_object() || j.value("format", "") != kFormat) return fail(std::string("format is not ") + kFormat);
  const auto entries = j.find("entries");
  if (entries == j.end() || !entries->is_object()) return fail("no 'entries' object");
  for (const auto& [key, e] : entries->items()) {
    if (!e.is_object() || !e.contains("path") || !e["path"].is_string()) return fail("entry '" + key + "' has no path");
    Entry entry;
    entry.path = e["path"].get<std::string>();
    if (const auto us = e.find("us"); us != e.end() && us->is_object())
      for (const auto& [name, t] : us->items())
        if (t.is_number()) entry.us[name] = t.get<double>();
    cache->entries_[key] = std::move(entry);
  }
  return cache;
}

std::shared_ptr<TuningCache> TuningCache::shared() {
  static const std::shared_ptr<TuningCache> cache = [] {
    std::string warning;
    auto c = open(default_path(), &warning);
    if (!warning.empty()) std::fprintf(stderr, "hearth: %s\n", warning.c_str());
    return c;
  }();
  return cache;
}

std::optional<TuningCache::Entry> TuningCache::lookup(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(machine_key() + "|" + key);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

void TuningCache::record(const std::string& key, Entry entry) {
  std::lock_guard<std::mutex> lock(mu_);
  entries_[machine_key() + "|" + key] = std::move(entry);
}

size_t TuningCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

Status TuningCache::save() const {
  if (path_.empty()) return invalid_argument("no tuning cache file (HEARTH_TUNING_CACHE=off or no home folder)");
  nlohmann::json j = {{"format", kFormat}, {"entries", nlohmann::json::object()}};
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, e] : entries_) j["entries"][key] = {{"path", e.path}, {"us", e.us}};
  }
  const std::string text = j.dump(1) + "\n";
  std::error_code ec;
  const fs::path target(path_);
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  return write_file_atomically(path_, text);
}

PathTuner::PathTuner(TuningMode mode, std::shared_ptr<TuningCache> cache, double budget_ms)
    : mode_(mode), cache_(std::move(cache)), budget_ms_(budget_ms) {}

size_t PathTuner::choose(const std::string& node, const std::string& layer, const std::vector<Candidate>& candidates,
                         size_t heuristic, const std::string& heuristic_detail) {
  PathChoice choice;
  choice.node = node, choice.layer = layer;
  auto decide = [&](size_t index, const char* reason) {
    choice.path = candidates[index].name;
    choice.reason = reason;
    std::lock_guard<std::mutex> lock(mu_);
    // One entry per node and shape: a session whose shapes vary (dynamic batch or
    // sequence length) must not grow its report without bound while it serves.
    for (auto& c : choices_)
      if (c.node == choice.node && c.layer == choice.layer) {
        c = choice;
        return index;
      }
    if (choices_.size() >= kMaxChoices) choices_.erase(choices_.begin());
    choices_.push_back(choice);
    return index;
  };
  if (candidates.size() <= 1) return decide(0, "only path");
  if (mode_ != TuningMode::kHeuristic && cache_) {
    if (auto hit = cache_->lookup(layer)) {
      for (size_t i = 0; i < candidates.size(); ++i)
        if (candidates[i].name == hit->path) {
          choice.us = hit->us;
          return decide(i, "cached");
        }
    }
  }
  bool over_budget;
  {
    std::lock_guard<std::mutex> lock(mu_);
    over_budget = spent_ms_ >= budget_ms_;
  }
  if (mode_ != TuningMode::kMeasure || over_budget) {
    choice.detail = heuristic_detail;
    return decide(heuristic, mode_ == TuningMode::kMeasure ? "heuristic (tuning budget spent)" : "heuristic");
  }
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  size_t best = heuristic;
  double best_us = -1;
  for (size_t i = 0; i < candidates.size(); ++i) {
    std::vector<double> us;
    bool failed = false;
    for (int r = 0; r < kWarmupRuns + kTimedRuns && !failed; ++r) {
      const auto t0 = clock::now();
      failed = !candidates[i].run().ok();
      if (r >= kWarmupRuns) us.push_back(std::chrono::duration<double, std::micro>(clock::now() - t0).count());
    }
    if (failed) continue;
    std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
    const double median = us[us.size() / 2];
    choice.us[candidates[i].name] = median;
    if (best_us < 0 || median < best_us) best = i, best_us = median;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    spent_ms_ += std::chrono::duration<double, std::milli>(clock::now() - start).count();
  }
  if (best_us < 0) return decide(heuristic, "heuristic (every candidate failed when measured)");
  if (cache_) cache_->record(layer, TuningCache::Entry{candidates[best].name, choice.us});
  return decide(best, "measured");
}

void PathTuner::annotate(const std::string& node, const std::string& layer, const std::string& detail) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = choices_.rbegin(); it != choices_.rend(); ++it)
    if (it->node == node && it->layer == layer) {
      it->detail = detail;
      return;
    }
}

std::vector<PathChoice> PathTuner::report() const {
  std::lock_guard<std::mutex> lock(mu_);
  return choices_;
}

double PathTuner::spent_ms() const {
  std::lock_guard<std::mutex> lock(mu_);
  return spent_ms_;
}

}  // namespace hearth
