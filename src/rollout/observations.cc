// Windows of observations, answer comparison and the feedback ledger (see observations.h).
#include "rollout/observations.h"

#include <algorithm>
#include <cmath>

namespace hearth::rollout {

namespace {

uint64_t next_random(uint64_t& state) {  // xorshift64*
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return state * 0x2545f4914f6cdd1dull;
}

// Adds one latency to a reservoir of at most kMaxLatencySamples (Vitter's algorithm R).
void add_latency(WindowSnapshot& w, double ms, uint64_t& rng) {
  ++w.latency_seen;
  if (w.latency_ms.size() < kMaxLatencySamples) {
    w.latency_ms.push_back(ms);
    return;
  }
  const uint64_t slot = next_random(rng) % w.latency_seen;
  if (slot < kMaxLatencySamples) w.latency_ms[slot] = ms;
}

// Types value_at reads.
bool numeric(const Tensor& t) {
  switch (t.dtype()) {
    case DataType::kFloat:
    case DataType::kDouble:
    case DataType::kInt32:
    case DataType::kInt64:
    case DataType::kUInt8:
    case DataType::kInt8:
      return true;
    default:
      return false;
  }
}

// Element `i` of a numeric tensor as a double.
double value_at(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DataType::kFloat: return t.data<float>()[i];
    case DataType::kDouble: return t.data<double>()[i];
    case DataType::kInt32: return t.data<int32_t>()[i];
    case DataType::kInt64: return static_cast<double>(t.data<int64_t>()[i]);
    case DataType::kUInt8: return t.data<uint8_t>()[i];
    case DataType::kInt8: return t.data<int8_t>()[i];
    default: return 0;
  }
}

// `k` of `v`'s values chosen uniformly (a partial Fisher-Yates shuffle of a copy).
std::vector<double> random_subset(std::vector<double> v, size_t k) {
  thread_local uint64_t rng = 0x853c49e6748fea9bull;
  k = std::min(k, v.size());
  for (size_t i = 0; i < k; ++i) std::swap(v[i], v[i + next_random(rng) % (v.size() - i)]);
  v.resize(k);
  return v;
}

const serving::InferOutput* find_output(const serving::InferResponse& r, const std::string& name) {
  if (r.outputs.empty()) return nullptr;
  if (name.empty()) return &r.outputs.front();
  for (const auto& o : r.outputs)
    if (o.name == name) return &o;
  return nullptr;
}

}  // namespace

void WindowSnapshot::merge(const WindowSnapshot& o) {
  requests += o.requests;
  errors += o.errors;
  client_errors += o.client_errors;
  retried += o.retried;
  spilled += o.spilled;
  shadow_compared += o.shadow_compared;
  shadow_agreed += o.shadow_agreed;
  shadow_dropped += o.shadow_dropped;
  shadow_max_abs_diff = std::max(shadow_max_abs_diff, o.shadow_max_abs_diff);
  shadow_mean_abs_diff_sum += o.shadow_mean_abs_diff_sum;
  labelled += o.labelled;
  correct += o.correct;
  pairs += o.pairs;
  pair_worse += o.pair_worse;
  pair_better += o.pair_better;
  // Keep a uniform sample of both: take each side in proportion to what it saw.
  const uint64_t seen = latency_seen + o.latency_seen;
  if (latency_ms.size() + o.latency_ms.size() <= kMaxLatencySamples) {
    latency_ms.insert(latency_ms.end(), o.latency_ms.begin(), o.latency_ms.end());
  } else if (seen > 0) {
    const size_t keep_mine = static_cast<size_t>(static_cast<double>(kMaxLatencySamples) *
                                                 static_cast<double>(latency_seen) / static_cast<double>(seen));
    const size_t mine = std::min(keep_mine, latency_ms.size());
    const size_t theirs = std::min(kMaxLatencySamples - mine, o.latency_ms.size());
    // A uniform subset of each side (a reservoir that never filled is in arrival order).
    std::vector<double> merged = random_subset(latency_ms, mine);
    const std::vector<double> other = random_subset(o.latency_ms, theirs);
    merged.insert(merged.end(), other.begin(), other.end());
    latency_ms = std::move(merged);
  }
  latency_seen = seen;
}

bool is_client_error(const Status& status) {
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kUnimplemented:
    case StatusCode::kCancelled:
    case StatusCode::kOutOfRange:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kUnauthenticated:
    case StatusCode::kPermissionDenied:
      return true;
    default:
      return false;
  }
}

void VersionWindow::record_answer(const Status& status, double latency_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (status.ok()) {
    ++w_.requests;
    add_latency(w_, latency_ms, rng_);
  } else if (is_client_error(status)) {
    ++w_.client_errors;
  } else {
    ++w_.requests;
    ++w_.errors;
  }
}

void VersionWindow::record_retry() {
  std::lock_guard<std::mutex> lock(mu_);
  ++w_.requests;
  ++w_.errors;
  ++w_.retried;
}

void VersionWindow::record_spill() {
  std::lock_guard<std::mutex> lock(mu_);
  ++w_.spilled;
}

void VersionWindow::record_shadow(const AnswerComparison& c) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t rows = std::max<int64_t>(c.rows, 1);
  w_.shadow_compared += rows;
  if (!c.comparable) {
    w_.shadow_max_abs_diff = std::max(w_.shadow_max_abs_diff, HUGE_VAL);
    return;
  }
  w_.shadow_agreed += c.agreed_rows;
  w_.shadow_max_abs_diff = std::max(w_.shadow_max_abs_diff, c.max_abs_diff);
  w_.shadow_mean_abs_diff_sum += c.mean_abs_diff;
}

void VersionWindow::record_shadow_dropped() {
  std::lock_guard<std::mutex> lock(mu_);
  ++w_.shadow_dropped;
}

void VersionWindow::record_label(bool correct) {
  std::lock_guard<std::mutex> lock(mu_);
  ++w_.labelled;
  if (correct) ++w_.correct;
}

void VersionWindow::record_pair(bool champion_correct, bool correct) {
  std::lock_guard<std::mutex> lock(mu_);
  ++w_.pairs;
  if (champion_correct && !correct) ++w_.pair_worse;
  if (!champion_correct && correct) ++w_.pair_better;
}

WindowSnapshot VersionWindow::take() {
  std::lock_guard<std::mutex> lock(mu_);
  WindowSnapshot out = std::move(w_);
  w_ = WindowSnapshot{};
  return out;
}

WindowSnapshot VersionWindow::peek() const {
  std::lock_guard<std::mutex> lock(mu_);
  return w_;
}

Result<std::vector<int64_t>> top1(const serving::InferResponse& response, const std::string& output) {
  const serving::InferOutput* o = find_output(response, output);
  if (o == nullptr) return invalid_argument("the answer has no output '", output, "'");
  const Tensor& t = o->data;
  if (!numeric(t)) return invalid_argument("output '", o->name, "' is not numeric");
  std::vector<int64_t> rows;
  const bool floating = t.dtype() == DataType::kFloat || t.dtype() == DataType::kDouble;
  if (!floating) {
    for (int64_t i = 0; i < t.numel(); ++i) rows.push_back(static_cast<int64_t>(value_at(t, i)));
    return rows;
  }
  const int64_t width = t.rank() == 0 ? 1 : std::max<int64_t>(t.shape().back(), 1);
  for (int64_t start = 0; start + width <= t.numel(); start += width) {
    int64_t best = 0;
    for (int64_t k = 1; k < width; ++k)
      if (value_at(t, start + k) > value_at(t, start + best)) best = k;
    rows.push_back(best);
  }
  return rows;
}

AnswerComparison compare_answers(const serving::InferResponse& champion, const serving::InferResponse& candidate,
                                 const std::string& output) {
  AnswerComparison c;
  double abs_sum = 0;
  int64_t values = 0;
  for (const auto& a : champion.outputs) {
    const serving::InferOutput* b = find_output(candidate, a.name);
    if (b == nullptr || a.data.shape() != b->data.shape() || !numeric(a.data) || !numeric(b->data)) return c;
    for (int64_t i = 0; i < a.data.numel(); ++i) {
      const double d = std::fabs(value_at(a.data, i) - value_at(b->data, i));
      c.max_abs_diff = std::max(c.max_abs_diff, std::isnan(d) ? HUGE_VAL : d);
      abs_sum += d;
    }
    values += a.data.numel();
  }
  auto ta = top1(champion, output);
  auto tb = top1(candidate, output);
  if (!ta.ok() || !tb.ok() || ta->size() != tb->size()) return c;
  c.rows = static_cast<int64_t>(ta->size());
  for (size_t i = 0; i < ta->size(); ++i)
    if ((*ta)[i] == (*tb)[i]) ++c.agreed_rows;
  c.mean_abs_diff = values > 0 ? abs_sum / static_cast<double>(values) : 0;
  c.comparable = true;
  return c;
}

void FeedbackLedger::record(const std::string& id, int64_t version, std::vector<int64_t> top) {
  if (id.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = entries_.try_emplace(id);
  Entry& e = it->second;
  if (!e.answers.emplace(version, std::move(top)).second) e.ambiguous = true;  // another request, the same id
  if (!inserted) return;
  order_.push_back(id);
  while (order_.size() > capacity_) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
}

Result<std::map<int64_t, std::vector<int64_t>>> FeedbackLedger::take(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end())
    return not_found("no answer of request id '", id, "' is on record (a release keeps the last ", capacity_,
                     " ids, each scored once; send feedback for requests that carried an id)");
  if (it->second.ambiguous)
    return invalid_argument("request id '", id, "' was carried by more than one request: its feedback cannot be scored");
  auto answers = std::move(it->second.answers);
  entries_.erase(it);  // its place in order_ is skipped when it comes up
  return answers;
}

}  // namespace hearth::rollout
