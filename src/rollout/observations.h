// What a release measures of each version while it runs: answers, errors and
// latencies of live requests, shadow comparisons with the champion, labelled
// feedback. A VersionWindow collects from many request threads at once and is
// taken (read and reset) by the judge at each check; the FeedbackLedger
// remembers, per request id, what each version answered so that a label sent
// later (POST /v2/models/{m}/feedback) can be scored.
// Thread safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "serving/inference.h"

namespace hearth::rollout {

// Latency samples kept per window; beyond it, a uniform reservoir.
inline constexpr size_t kMaxLatencySamples = 20000;

struct WindowSnapshot {
  int64_t requests = 0;       // answers that count for the version (ok + errors)
  int64_t errors = 0;         // server-side failures (see VersionWindow::classify)
  int64_t client_errors = 0;  // failures the request caused: not counted
  int64_t retried = 0;        // failures answered by the champion instead
  int64_t spilled = 0;        // requests sent to the champion: the candidate was full
  std::vector<double> latency_ms;  // successful answers, end to end in the server
  uint64_t latency_seen = 0;       // how many latencies the reservoir saw
  int64_t shadow_compared = 0, shadow_agreed = 0, shadow_dropped = 0;
  double shadow_max_abs_diff = 0;
  double shadow_mean_abs_diff_sum = 0;  // sum of per-answer mean |diff|
  int64_t labelled = 0, correct = 0;    // feedback on this version's answers
  // Paired feedback (the same request answered by this version as a shadow and by
  // the champion): the champion right and this version wrong, and the reverse.
  int64_t pairs = 0, pair_worse = 0, pair_better = 0;

  double error_rate() const { return requests > 0 ? static_cast<double>(errors) / static_cast<double>(requests) : 0; }
  // Adds `other` (the latencies stay a uniform sample of both, capped).
  void merge(const WindowSnapshot& other);
};

// True when a failed answer is the request's own fault (a bad input, the client
// going away) rather than the version's.
bool is_client_error(const Status& status);

// How two answers to the same request compare, over every output both have.
struct AnswerComparison {
  int64_t rows = 0, agreed_rows = 0;  // top-1 of `output`
  double max_abs_diff = 0, mean_abs_diff = 0;
  bool comparable = false;            // false: shapes or types differ
};

class VersionWindow {
 public:
  void record_answer(const Status& status, double latency_ms);
  void record_retry();
  void record_spill();
  // A shadow answer compared with the champion's (an incomparable one counts as
  // compared and not agreeing).
  void record_shadow(const AnswerComparison& c);
  void record_shadow_dropped();
  void record_label(bool correct);
  void record_pair(bool champion_correct, bool correct);
  // Returns what was collected since the last take() and starts afresh.
  WindowSnapshot take();
  WindowSnapshot peek() const;

 private:
  mutable std::mutex mu_;
  WindowSnapshot w_;
  uint64_t rng_ = 0x9e3779b97f4a7c15ull;
};

// Per output row, the class a classifier chose: the argmax of the last dimension
// for floating-point outputs, the value itself for integer ones. `output` "" = the
// first output. InvalidArgument when the output is missing or not numeric.
Result<std::vector<int64_t>> top1(const serving::InferResponse& response, const std::string& output);

// The comparison of two answers to the same request (top-1 rows of `output`,
// differences over every output both have).
AnswerComparison compare_answers(const serving::InferResponse& champion, const serving::InferResponse& candidate,
                                 const std::string& output);

// Request id -> the top-1 each version answered, for the last `capacity` ids. An id
// is scored once (take() forgets it), and an id two requests carried to the same
// version cannot be scored at all (the label would go to the wrong answer).
class FeedbackLedger {
 public:
  explicit FeedbackLedger(size_t capacity = 100000) : capacity_(capacity) {}
  void record(const std::string& id, int64_t version, std::vector<int64_t> top1);
  // What was recorded for `id` (version -> top-1 rows), forgotten as it is returned.
  // NotFound when unknown, forgotten or scored already; InvalidArgument when ambiguous.
  Result<std::map<int64_t, std::vector<int64_t>>> take(const std::string& id);

 private:
  struct Entry {
    std::map<int64_t, std::vector<int64_t>> answers;
    bool ambiguous = false;
  };
  std::mutex mu_;
  size_t capacity_;
  std::unordered_map<std::string, Entry> entries_;
  std::deque<std::string> order_;
};

}  // namespace hearth::rollout
