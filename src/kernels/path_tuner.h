// Choice by measurement among a layer's candidate paths (the engine's own
// kernel, oneDNN held to the graph's 8-channel layout, oneDNN in the layout it
// prefers on this CPU, ...).
//
// A kernel with several correct paths for a layer asks its session's PathTuner
// which one to take, once per input shape, when it builds its plan:
//   - a choice measured earlier on this machine comes from the tuning cache
//     (a JSON file keyed by the CPU model, oneDNN's version and ISA, the
//     thread count and the layer's shape and attributes, so that the same
//     layer in another model reuses it);
//   - otherwise, when the session measures (TuningMode::kMeasure, `hearth
//     tune`) and its time budget is not spent, every candidate runs on the
//     layer's real input a few times and the fastest is taken and recorded;
//   - otherwise the kernel's heuristic decides.
// Every decision is kept with its reason and timings for `hearth inspect --plan`.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace hearth {

enum class TuningMode {
  kHeuristic,  // the kernels' heuristics only; the cache is not read
  kCached,     // measured choices from the cache where it has them, else heuristics
  kMeasure,    // as kCached, and layers the cache lacks are measured (within the budget) and recorded
};

const char* tuning_mode_name(TuningMode m);
Result<TuningMode> parse_tuning_mode(const std::string& text);  // heuristic | cached | measure

// Measured choices, one JSON file per user (HEARTH_TUNING_CACHE, else
// $XDG_CACHE_HOME/hearth/tuning.json, else ~/.cache/hearth/tuning.json;
// HEARTH_TUNING_CACHE=off keeps none). Thread safe.
class TuningCache {
 public:
  struct Entry {
    std::string path;                      // the candidate chosen
    std::map<std::string, double> us;      // median microseconds per candidate
  };

  // The default file; "" when HEARTH_TUNING_CACHE=off or no home folder.
  static std::string default_path();
  // Reads `path` (a missing file is an empty cache; a malformed one is reported
  // in `warning` and treated as empty, never an error: it only costs speed).
  static std::shared_ptr<TuningCache> open(const std::string& path, std::string* warning = nullptr);
  // The process-wide cache at default_path(), opened on first use.
  static std::shared_ptr<TuningCache> shared();

  // This machine's prefix of every key: CPU vendor/family/model/brand, oneDNN
  // version and ISA, the engine's ISA level.
  static std::string machine_key();

  std::optional<Entry> lookup(const std::string& key) const;
  void record(const std::string& key, Entry entry);
  size_t size() const;
  // Writes the file (atomically: a temporary beside it, then rename), mode 0644.
  Status save() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // full key -> entry
};

// One decision, for reports.
struct PathChoice {
  std::string node;     // the node's description
  std::string layer;    // the layer key (shape and attributes)
  std::string path;     // the candidate taken
  std::string reason;   // "measured", "cached", "heuristic" or "only path"
  std::map<std::string, double> us;  // timings behind a measured or cached choice
  std::string detail;   // the kernel's note (e.g. oneDNN's implementation)
};

class PathTuner {
 public:
  struct Candidate {
    std::string name;
    std::function<Status()> run;  // one run of the layer on its real inputs (into scratch output)
  };

  PathTuner(TuningMode mode, std::shared_ptr<TuningCache> cache, double budget_ms);

  TuningMode mode() const { return mode_; }
  // The index of the candidate to use for `layer` (a key the kernel builds from
  // the shape, attributes and threads). `heuristic` is the kernel's own pick.
  // A candidate that fails while measured is skipped; the heuristic's must not be
  // the only one to fail.
  size_t choose(const std::string& node, const std::string& layer, const std::vector<Candidate>& candidates,
                size_t heuristic, const std::string& heuristic_detail = "");
  // Adds the kernel's note to its decision for `layer` (e.g. the implementation oneDNN took).
  void annotate(const std::string& node, const std::string& layer, const std::string& detail);
  std::vector<PathChoice> report() const;
  double spent_ms() const;

 private:
  TuningMode mode_;
  std::shared_ptr<TuningCache> cache_;
  double budget_ms_;
  mutable std::mutex mu_;
  double spent_ms_ = 0;
  std::vector<PathChoice> choices_;
};

}  // namespace hearth
