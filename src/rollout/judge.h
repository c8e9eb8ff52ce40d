// The judge: one candidate against the champion over a window of observations,
// check by check (error rate, p50 and p99 latency, shadow agreement, accuracy
// from feedback). Each check has absolute and relative thresholds; a relative
// one fails only when the difference is also statistically significant (one-
// sided test at `alpha`), so noise holds a release rather than failing it.
//
//   pass          every check that applies passed with enough samples
//   fail          a check (not in dry-run) failed
//   inconclusive  a check lacks samples (fewer than min_samples), or is over
//                 its threshold without significance yet: the release holds
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include "rollout/observations.h"
#include "rollout/release_spec.h"

namespace hearth::rollout {

enum class Verdict { kPass, kFail, kInconclusive, kSkipped };
const char* verdict_name(Verdict v);  // "pass", "fail", "inconclusive", "skipped"

struct CheckResult {
  CheckResult() = default;
  explicit CheckResult(std::string check) : name(std::move(check)) {}

  std::string name;  // "error_rate", "latency_p50", "latency_p99", "agreement", "accuracy"
  Verdict verdict = Verdict::kSkipped;
  bool dry_run = false;
  double candidate = 0, champion = 0;  // the measured values (rates, ms)
  double threshold = 0;                // what the candidate had to stay within
  int64_t candidate_samples = 0, champion_samples = 0;
  double p_value = 1;                  // of the test behind a relative failure (1 when none)
  std::string reason;                  // in words
};

struct Judgement {
  Verdict verdict = Verdict::kInconclusive;
  std::vector<CheckResult> checks;
  std::string summary;  // the reason of the deciding check(s)
};

// `shadowing`: shadow copies were being made (the agreement check applies).
Judgement judge(const JudgeSpec& spec, const WindowSnapshot& champion, const WindowSnapshot& candidate, bool shadowing);

}  // namespace hearth::rollout
