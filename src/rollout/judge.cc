// The checks of the judge (see judge.h).
#include "rollout/judge.h"

#include <algorithm>
#include <cmath>

#include "rollout/statistics.h"

namespace hearth::rollout {

namespace {

std::string pct(double rate) { return str_cat(std::round(rate * 10000) / 100, "%"); }
std::string ms(double v) { return str_cat(std::round(v * 1000) / 1000, " ms"); }

CheckResult lacking(CheckResult c, int64_t have_candidate, int64_t have_champion, int64_t need, const char* what) {
  c.verdict = Verdict::kInconclusive;
  c.candidate_samples = have_candidate;
  c.champion_samples = have_champion;
  c.reason = str_cat(have_candidate, " candidate and ", have_champion, " champion ", what, " of the ", need, " needed");
  return c;
}

CheckResult error_rate(const JudgeSpec& spec, const WindowSnapshot& h, const WindowSnapshot& c) {
  const RateCheck& check = spec.error_rate;
  CheckResult r("error_rate");
  r.dry_run = check.dry_run;
  if (!check.enabled) return r;
  if (c.requests < spec.min_samples) return lacking(r, c.requests, h.requests, spec.min_samples, "answers");
  r.candidate = c.error_rate();
  r.champion = h.error_rate();
  r.candidate_samples = c.requests;
  r.champion_samples = h.requests;
  r.verdict = Verdict::kPass;
  // The absolute limit and the margin over the champion are tested apart; the
  // first to fail decides (an absolute limit still unproven does not hide a
  // proven margin).
  Verdict absolute = Verdict::kPass, relative = Verdict::kPass;
  std::string why;
  if (check.max > 0 && r.candidate > check.max) {
    const double p = p_proportion_below(c.requests - c.errors, c.requests, 1 - check.max);
    absolute = p < spec.alpha ? Verdict::kFail : Verdict::kInconclusive;
    r.threshold = check.max;
    r.p_value = p;
    why = str_cat("error rate ", pct(r.candidate), " over the limit ", pct(check.max), " (p = ", p, ")");
  }
  if (r.candidate > r.champion + check.max_increase) {
    if (h.requests < spec.min_samples) {
      relative = Verdict::kInconclusive;
      why += str_cat(why.empty() ? "" : "; ", h.requests, " champion answers of the ", spec.min_samples, " needed");
    } else {
      const double p = p_proportion_greater(h.errors, h.requests, c.errors, c.requests, check.max_increase);
      relative = p < spec.alpha ? Verdict::kFail : Verdict::kInconclusive;
      if (relative == Verdict::kFail || absolute != Verdict::kFail) {
        r.threshold = r.champion + check.max_increase;
        r.p_value = p;
      }
      why += str_cat(why.empty() ? "" : "; ", "error rate ", pct(r.candidate), " against the champion's ",
                     pct(r.champion), " + ", pct(check.max_increase), " (p = ", p, ")");
    }
  }
  if (absolute == Verdict::kFail || relative == Verdict::kFail) r.verdict = Verdict::kFail;
  else if (absolute == Verdict::kInconclusive || relative == Verdict::kInconclusive) r.verdict = Verdict::kInconclusive;
  r.reason = why.empty() ? str_cat("error rate ", pct(r.candidate), " within the champion's ", pct(r.champion), " + ",
                                   pct(check.max_increase))
                         : why;
  return r;
}

CheckResult latency(const JudgeSpec& spec, const LatencyCheck& check, const char* name, double q,
                    const WindowSnapshot& h, const WindowSnapshot& c) {
  CheckResult r(name);
  r.dry_run = check.dry_run;
  if (!check.enabled) return r;
  const int64_t nc = static_cast<int64_t>(c.latency_ms.size()), nh = static_cast<int64_t>(h.latency_ms.size());
  if (nc < spec.min_samples) return lacking(r, nc, nh, spec.min_samples, "latencies");
  r.candidate = quantile(c.latency_ms, q);
  r.candidate_samples = nc;
  r.champion_samples = nh;
  r.verdict = Verdict::kPass;
  if (check.max_ms > 0 && r.candidate > check.max_ms) {
    r.verdict = Verdict::kFail;
    r.threshold = check.max_ms;
    r.reason = str_cat(name, " ", ms(r.candidate), " over the limit ", ms(check.max_ms));
    return r;
  }
  if (check.max_ratio <= 0) {
    r.reason = str_cat(name, " ", ms(r.candidate));
    return r;
  }
  if (nh < spec.min_samples) return lacking(r, nc, nh, spec.min_samples, "latencies");
  r.champion = quantile(h.latency_ms, q);
  r.threshold = std::max(r.champion * check.max_ratio, r.champion + check.slack_ms);
  if (r.candidate > r.threshold) {
    // H0: the candidate is no slower than the champion held to the threshold: test
    // against the champion's latencies scaled (and shifted by the slack) the same way,
    // so that a slowdown inside the allowance is never "significant".
    std::vector<double> allowed;
    allowed.reserve(h.latency_ms.size());
    for (double ms : h.latency_ms) allowed.push_back(std::max(ms * check.max_ratio, ms + check.slack_ms));
    r.p_value = p_mann_whitney_greater(allowed, c.latency_ms);
    r.verdict = r.p_value < spec.alpha ? Verdict::kFail : Verdict::kInconclusive;
    r.reason = str_cat(name, " ", ms(r.candidate), " over ", check.max_ratio, " x the champion's ", ms(r.champion),
                       " (p = ", r.p_value, ")");
    return r;
  }
  r.reason = str_cat(name, " ", ms(r.candidate), " within ", check.max_ratio, " x the champion's ", ms(r.champion));
  return r;
}

CheckResult agreement(const JudgeSpec& spec, const WindowSnapshot& c, bool shadowing) {
  const AgreementCheck& check = spec.agreement;
  CheckResult r("agreement");
  r.dry_run = check.dry_run;
  if (!check.enabled || !shadowing) return r;
  if (c.shadow_compared < spec.min_samples) return lacking(r, c.shadow_compared, 0, spec.min_samples, "shadow rows");
  r.candidate = static_cast<double>(c.shadow_agreed) / static_cast<double>(c.shadow_compared);
  r.candidate_samples = c.shadow_compared;
  r.threshold = check.min;
  r.verdict = Verdict::kPass;
  if (check.max_abs_diff > 0 && c.shadow_max_abs_diff > check.max_abs_diff) {
    r.verdict = Verdict::kFail;
    r.reason = str_cat("an output differs from the champion's by ", c.shadow_max_abs_diff, " (limit ",
                       check.max_abs_diff, ")");
    return r;
  }
  if (r.candidate < check.min) {
    r.p_value = p_proportion_below(c.shadow_agreed, c.shadow_compared, check.min);
    r.verdict = r.p_value < spec.alpha ? Verdict::kFail : Verdict::kInconclusive;
    r.reason = str_cat("top-1 agreement with the champion ", pct(r.candidate), " under ", pct(check.min), " (p = ",
                       r.p_value, ")");
    return r;
  }
  r.reason = str_cat("top-1 agreement with the champion ", pct(r.candidate));
  return r;
}

CheckResult accuracy(const JudgeSpec& spec, const WindowSnapshot& h, const WindowSnapshot& c) {
  const AccuracyCheck& check = spec.accuracy;
  CheckResult r("accuracy");
  r.dry_run = check.dry_run;
  if (!check.enabled || (c.labelled == 0 && c.pairs == 0)) return r;  // no feedback: nothing to judge
  r.verdict = Verdict::kPass;
  if (c.pairs >= check.min_labels) {
    // Paired: the same requests answered by both (the candidate as a shadow).
    // McNemar's discordant pairs, one-sided, with the margin.
    const double n = static_cast<double>(c.pairs);
    const double diff = static_cast<double>(c.pair_worse - c.pair_better) / n;
    const double disc = static_cast<double>(c.pair_worse + c.pair_better) / n;
    r.candidate = -diff;
    r.candidate_samples = c.pairs;
    r.champion_samples = c.pairs;
    r.threshold = -check.max_drop;
    if (diff > check.max_drop) {
      const double se = std::sqrt(std::max(disc - diff * diff, 1.0 / n) / n);
      r.p_value = normal_upper_tail((diff - check.max_drop) / se);
      r.verdict = r.p_value < spec.alpha ? Verdict::kFail : Verdict::kInconclusive;
    }
    r.reason = str_cat("on ", c.pairs, " labelled requests both answered, the candidate is right ", pct(-diff),
                       " more often than the champion (", c.pair_worse, " worse, ", c.pair_better, " better)");
    if (r.verdict != Verdict::kFail && check.min > 0 && c.labelled >= check.min_labels) {
      const double acc = static_cast<double>(c.correct) / static_cast<double>(c.labelled);
      if (acc < check.min) {
        const double p = p_proportion_below(c.correct, c.labelled, check.min);
        r.verdict = p < spec.alpha ? Verdict::kFail : Verdict::kInconclusive;
        r.p_value = p;
        r.reason += str_cat("; accuracy ", pct(acc), " under the limit ", pct(check.min));
      }
    }
    return r;
  }
  if (c.labelled < check.min_labels || h.labelled < check.min_labels)
    return lacking(r, c.labelled, h.labelled, check.min_labels, "labels");
  r.candidate = static_cast<double>(c.correct) / static_cast<double>(c.labelled);
  r.champion = static_cast<double>(h.correct) / static_cast<double>(h.labelled);
  r.candidate_samples = c.labelled;
  r.champion_samples = h.labelled;
  if (check.min > 0 && r.candidate < check.min) {
    r.threshold = check.min;
    r.p_value = p_proportion_below(c.correct, c.labelled, check.min);
    r.verdict = r.p_value < spec.alpha ? Verdict::kFail : Verdict::kInconclusive;
    r.reason = str_cat("accuracy ", pct(r.candidate), " under the limit ", pct(check.min));
    return r;
  }
  r.threshold = r.champion - check.max_drop;
  if (r.candidate < r.threshold) {
    r.p_value = p_proportion_greater(h.labelled - h.correct, h.labelled, c.labelled - c.correct, c.labelled,
                                     check.max_drop);
    r.verdict = r.p_value < spec.alpha ? Verdict::kFail : Verdict::kInconclusive;
  }
  r.reason = str_cat("accuracy ", pct(r.candidate), " against the champion's ", pct(r.champion), " - ",
                     pct(check.max_drop));
  return r;
}

}  // namespace

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kPass: return "pass";
    case Verdict::kFail: return "fail";
    case Verdict::kInconclusive: return "inconclusive";
    case Verdict::kSkipped: return "skipped";
  }
  return "?";
}

Judgement judge(const JudgeSpec& spec, const WindowSnapshot& champion, const WindowSnapshot& candidate, bool shadowing) {
  Judgement j;
  j.checks = {error_rate(spec, champion, candidate),
              latency(spec, spec.latency_p50, "latency_p50", 0.5, champion, candidate),
              latency(spec, spec.latency_p99, "latency_p99", 0.99, champion, candidate),
              agreement(spec, candidate, shadowing), accuracy(spec, champion, candidate)};
  bool failed = false, lacking = false, any = false;
  std::string fail_reasons, lacking_reasons;
  for (const CheckResult& c : j.checks) {
    if (c.verdict == Verdict::kSkipped) continue;
    any = true;
    if (c.dry_run) continue;
    if (c.verdict == Verdict::kFail) {
      failed = true;
      fail_reasons += str_cat(fail_reasons.empty() ? "" : "; ", c.name, ": ", c.reason);
    } else if (c.verdict == Verdict::kInconclusive) {
      lacking = true;
      lacking_reasons += str_cat(lacking_reasons.empty() ? "" : "; ", c.name, ": ", c.reason);
    }
  }
  if (failed) {
    j.verdict = Verdict::kFail;
    j.summary = fail_reasons;
  } else if (lacking || !any) {
    j.verdict = Verdict::kInconclusive;
    j.summary = any ? lacking_reasons : "every check is off";
  } else {
    j.verdict = Verdict::kPass;
    j.summary = "every check passed";
  }
  return j;
}

}  // namespace hearth::rollout
