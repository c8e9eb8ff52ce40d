// Prometheus metrics: lock-free Counter / Gauge / Histogram series and a Registry
// that owns metric families and renders them in the text exposition format 0.0.4.
// Public header of the telemetry layer: serving, rollout and cli may include it.
//
// Hot path: Counter::add, Gauge::set/add and Histogram::observe never lock; keep
// the shared_ptr a Registry returns and update it directly. Only get-or-create,
// remove_series and render take the registry mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace hearth::telemetry {

// Label pairs of one series; rendered in the order given.
using Labels = std::vector<std::pair<std::string, std::string>>;

// A monotonic total. add() ignores negative and NaN increments.
class Counter {
 public:
  void add(double v = 1.0);
  // Mirrors a total kept elsewhere (e.g. CPU seconds read from /proc): sets the
  // value to `total` unless that would make it go down (then it is left alone).
  void set_total(double total);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down.
class Gauge {
 public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Counts observations into buckets `v <= upper_bound`; +Inf is implicit.
class Histogram {
 public:
  // Bounds are sorted; duplicates, NaN and infinities are dropped.
  explicit Histogram(std::vector<double> upper_bounds);

  // Lock-free: one atomic bucket increment and one atomic add to the sum.
  // NaN is counted in the +Inf bucket (and makes the sum NaN, as in Prometheus).
  void observe(double v);

  struct Snapshot {
    std::vector<double> upper_bounds;         // without +Inf
    std::vector<uint64_t> cumulative_counts;  // one per bound, then +Inf (== count)
    uint64_t count = 0;
    double sum = 0.0;
  };
  // Consistent per bucket; count is the sum of the bucket counts read.
  Snapshot snapshot() const;

  const std::vector<double>& upper_bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0.0};
};

// Default latency buckets in microseconds: 100 us .. 5 s.
std::vector<double> latency_buckets_us();
// Batch size buckets: powers of two 1 .. 256.
std::vector<double> batch_size_buckets();

// Owns metric families (name -> type, help, series) and renders them.
//
// Get-or-create rules (all thread safe, none throws, none logs):
// - The same (name, labels) returns the same object. Label order does not matter
//   for identity; the order of the first call is the order rendered.
// - A family's type and help are fixed by its first call (a histogram family's
//   bucket bounds too: later upper_bounds arguments are ignored).
// - A call that cannot be honoured returns a DETACHED object: usable, never null,
//   never rendered. That happens on a type conflict (same name, other type), an
//   invalid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), an invalid or duplicated
//   label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with "__"), or "le" as a
//   label of a histogram.
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  std::shared_ptr<Counter> counter(const std::string& name, const std::string& help,
                                   const Labels& labels = {});
  std::shared_ptr<Gauge> gauge(const std::string& name, const std::string& help,
                               const Labels& labels = {});
  std::shared_ptr<Histogram> histogram(const std::string& name, const std::string& help,
                                       const std::vector<double>& upper_bounds,
                                       const Labels& labels = {});

  // Drops every series (of any family) whose labels contain all pairs of `match`
  // (e.g. {{"model","m"},{"version","3"}} when that version unloads). Holders of
  // the shared_ptr keep a valid object that is no longer rendered. An empty
  // `match` removes nothing (guards against wiping the registry by accident).
  void remove_series(const Labels& match);

  // Runs `collect` at the start of every render(), outside the registry lock, so
  // it may call counter()/gauge()/... An exception from it is swallowed.
  void add_collector(std::function<void()> collect);

  // Prometheus text format 0.0.4; families sorted by name, series in creation
  // order; families without series are left out.
  std::string render();

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  using Metric = std::variant<std::shared_ptr<Counter>, std::shared_ptr<Gauge>,
                              std::shared_ptr<Histogram>>;
  struct Series {
    Labels labels;
    Metric metric;
  };
  struct Family {
    Type type;
    std::string help;
    std::vector<double> bounds;  // histograms only
    uint64_t next_seq = 0;
    std::map<uint64_t, Series> series;              // creation order
    std::unordered_map<std::string, uint64_t> index;  // identity key -> seq
  };

  // Finds or creates the series into *out; false when the call cannot be
  // honoured (the caller then hands out a detached object).
  bool get_or_create(const std::string& name, const std::string& help, Type type,
                     const Labels& labels, const std::vector<double>* bounds, Metric* out);
  static void render_family(const std::string& name, const Family& family, std::string* out);

  std::mutex mu_;
  std::map<std::string, Family> families_;
  std::mutex collectors_mu_;
  std::vector<std::function<void()>> collectors_;
};

// Formats a sample value as the exposition format wants it: integral values
// without exponent or decimal point, others shortest round-trip, and
// +Inf / -Inf / NaN. Exposed for tests and for other text renderers.
std::string format_metric_value(double v);

}  // namespace hearth::telemetry
