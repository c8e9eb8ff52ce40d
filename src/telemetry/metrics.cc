// Metric series, the Registry and the Prometheus text exposition renderer.
#include "telemetry/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <exception>

namespace hearth::telemetry {

// ---- series ------------------------------------------------------------------

void Counter::add(double v) {
  if (!(v > 0.0)) return;  // negative, zero and NaN increments are ignored
  value_.fetch_add(v, std::memory_order_relaxed);
}

void Counter::set_total(double total) {
  double current = value_.load(std::memory_order_relaxed);
  while (total > current &&
         !value_.compare_exchange_weak(current, total, std::memory_order_relaxed)) {
  }
}

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  bounds_.erase(std::remove_if(bounds_.begin(), bounds_.end(),
                               [](double b) { return !std::isfinite(b); }),
                bounds_.end());
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  buckets_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) {
  size_t bucket = bounds_.size();  // +Inf, also for NaN
  if (!std::isnan(v)) {
    bucket = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  }
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.upper_bounds = bounds_;
  s.cumulative_counts.reserve(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative_counts.push_back(running);
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> latency_buckets_us() {
  return {100,    250,    500,     1000,    2500,    5000,    10000,  25000,
          50000,  100000, 250000,  500000,  1000000, 2500000, 5000000};
}

std::vector<double> batch_size_buckets() { return {1, 2, 4, 8, 16, 32, 64, 128, 256}; }

// ---- text format helpers -----------------------------------------------------

std::string format_metric_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == 0.0) return "0";  // also -0
  char buf[400];  // fixed notation of the largest double needs ~310 chars
  std::to_chars_result r = (v == std::trunc(v))
                               ? std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed)
                               : std::to_chars(buf, buf + sizeof(buf), v);
  if (r.ec != std::errc()) return "NaN";  // cannot happen with this buffer size
  return std::string(buf, r.ptr);
}

namespace {

bool valid_metric_name(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool valid_label_name(const std::string& name) {
  if (name.empty() || name.rfind("__", 0) == 0) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

// Label names valid, unique, and no "le" on histograms.
bool valid_labels(const Labels& labels, bool histogram) {
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::string& k = labels[i].first;
    if (!valid_label_name(k) || (histogram && k == "le")) return false;
    for (size_t j = 0; j < i; ++j) {
      if (labels[j].first == k) return false;
    }
  }
  return true;
}

// Order-insensitive, unambiguous identity of a label set.
std::string series_key(const Labels& labels) {
  Labels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  std::string key;
  for (const auto& [k, v] : sorted) {
    key += std::to_string(k.size()) + ':' + k + std::to_string(v.size()) + ':' + v;
  }
  return key;
}

void append_escaped(const std::string& text, bool escape_quote, std::string* out) {
  for (char c : text) {
    switch (c) {
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '"':
        if (escape_quote) {
          *out += "\\\"";
        } else {
          *out += c;
        }
        break;
      default: *out += c;
    }
  }
}

// `{k="v",...,le="x"}` or nothing when there are no labels.
void append_labels(const Labels& labels, const char* le, std::string* out) {
  if (labels.empty() && le == nullptr) return;
  *out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) *out += ',';
    first = false;
    *out += k;
    *out += "=\"";
    append_escaped(v, true, out);
    *out += '"';
  }
  if (le != nullptr) {
    if (!first) *out += ',';
    *out += "le=\"";
    *out += le;
    *out += '"';
  }
  *out += '}';
}

void append_sample(const std::string& name, const char* suffix, const Labels& labels,
                   const char* le, double value, std::string* out) {
  *out += name;
  *out += suffix;
  append_labels(labels, le, out);
  *out += ' ';
  *out += format_metric_value(value);
  *out += '\n';
}

}  // namespace

// ---- Registry ----------------------------------------------------------------

bool Registry::get_or_create(const std::string& name, const std::string& help, Type type,
                             const Labels& labels, const std::vector<double>* bounds,
                             Metric* out) {
  if (!valid_metric_name(name) || !valid_labels(labels, type == Type::kHistogram)) return false;
  std::string key = series_key(labels);
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = families_.try_emplace(name);
  Family& family = it->second;
  if (inserted) {
    family.type = type;
    family.help = help;
    if (bounds != nullptr) family.bounds = *bounds;
  } else if (family.type != type) {
    return false;
  }
  if (auto found = family.index.find(key); found != family.index.end()) {
    *out = family.series.at(found->second).metric;
    return true;
  }
  Metric metric;
  switch (type) {
    case Type::kCounter: metric = std::make_shared<Counter>(); break;
    case Type::kGauge: metric = std::make_shared<Gauge>(); break;
    case Type::kHistogram: metric = std::make_shared<Histogram>(family.bounds); break;
  }
  uint64_t seq = family.next_seq++;
  family.series.emplace(seq, Series{labels, metric});
  family.index.emplace(std::move(key), seq);
  *out = std::move(metric);
  return true;
}

std::shared_ptr<Counter> Registry::counter(const std::string& name, const std::string& help,
                                           const Labels& labels) {
  try {
    Metric m;
    if (get_or_create(name, help, Type::kCounter, labels, nullptr, &m)) {
      return std::get<std::shared_ptr<Counter>>(m);
    }
    return std::make_shared<Counter>();  // detached
  } catch (...) {
    return std::make_shared<Counter>();  // out of memory: best effort
  }
}

std::shared_ptr<Gauge> Registry::gauge(const std::string& name, const std::string& help,
                                       const Labels& labels) {
  try {
    Metric m;
    if (get_or_create(name, help, Type::kGauge, labels, nullptr, &m)) {
      return std::get<std::shared_ptr<Gauge>>(m);
    }
    return std::make_shared<Gauge>();
  } catch (...) {
    return std::make_shared<Gauge>();
  }
}

std::shared_ptr<Histogram> Registry::histogram(const std::string& name, const std::string& help,
                                               const std::vector<double>& upper_bounds,
                                               const Labels& labels) {
  try {
    Metric m;
    if (get_or_create(name, help, Type::kHistogram, labels, &upper_bounds, &m)) {
      return std::get<std::shared_ptr<Histogram>>(m);
    }
    return std::make_shared<Histogram>(upper_bounds);
  } catch (...) {
    return std::make_shared<Histogram>(std::vector<double>{});
  }
}

void Registry::remove_series(const Labels& match) {
  if (match.empty()) return;
  auto contains_all = [&match](const Labels& labels) {
    return std::all_of(match.begin(), match.end(), [&labels](const auto& pair) {
      return std::find(labels.begin(), labels.end(), pair) != labels.end();
    });
  };
  try {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [name, family] : families_) {
      for (auto it = family.index.begin(); it != family.index.end();) {
        if (contains_all(family.series.at(it->second).labels)) {
          family.series.erase(it->second);
          it = family.index.erase(it);
        } else {
          ++it;
        }
      }
    }
  } catch (...) {
    // .at() cannot miss (index and series are kept in step); nothing to report.
  }
}

void Registry::add_collector(std::function<void()> collect) {
  if (!collect) return;
  try {
    std::lock_guard<std::mutex> lock(collectors_mu_);
    collectors_.push_back(std::move(collect));
  } catch (...) {
  }
}

void Registry::render_family(const std::string& name, const Family& family, std::string* out) {
  *out += "# HELP " + name + ' ';
  append_escaped(family.help, false, out);
  const char* type = family.type == Type::kCounter ? "counter"
                     : family.type == Type::kGauge ? "gauge"
                                                   : "histogram";
  *out += "\n# TYPE " + name + ' ' + type + '\n';
  for (const auto& [seq, series] : family.series) {
    if (auto* c = std::get_if<std::shared_ptr<Counter>>(&series.metric)) {
      append_sample(name, "", series.labels, nullptr, (*c)->value(), out);
    } else if (auto* g = std::get_if<std::shared_ptr<Gauge>>(&series.metric)) {
      append_sample(name, "", series.labels, nullptr, (*g)->value(), out);
    } else if (auto* h = std::get_if<std::shared_ptr<Histogram>>(&series.metric)) {
      Histogram::Snapshot snap = (*h)->snapshot();
      for (size_t i = 0; i < snap.upper_bounds.size(); ++i) {
        std::string le = format_metric_value(snap.upper_bounds[i]);
        append_sample(name, "_bucket", series.labels, le.c_str(),
                      static_cast<double>(snap.cumulative_counts[i]), out);
      }
      append_sample(name, "_bucket", series.labels, "+Inf", static_cast<double>(snap.count), out);
      append_sample(name, "_sum", series.labels, nullptr, snap.sum, out);
      append_sample(name, "_count", series.labels, nullptr, static_cast<double>(snap.count), out);
    }
  }
}

std::string Registry::render() {
  try {
    std::vector<std::function<void()>> collectors;
    {
      std::lock_guard<std::mutex> lock(collectors_mu_);
      collectors = collectors_;
    }
    for (auto& collect : collectors) {
      try {
        collect();
      } catch (...) {
        // A failing collector only leaves its metrics stale.
      }
    }
    std::string out;
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, family] : families_) {
      if (!family.series.empty()) render_family(name, family, &out);
    }
    return out;
  } catch (...) {
    return std::string();  // out of memory
  }
}

}  // namespace hearth::telemetry
