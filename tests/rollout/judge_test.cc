// The judge's statistics and verdicts on windows built by hand.
#include "rollout/judge.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "rollout/statistics.h"

namespace hearth::rollout {
namespace {

TEST(Statistics, quantiles_interpolate_like_numpy) {
  EXPECT_DOUBLE_EQ(quantile({5, 1, 3, 2, 4, 10}, 0.5), 3.5);
  EXPECT_DOUBLE_EQ(quantile({5, 1, 3, 2, 4, 10}, 0.3), 2.5);
  EXPECT_NEAR(quantile({5, 1, 3, 2, 4, 10}, 0.99), 9.75, 1e-12);
  EXPECT_TRUE(std::isnan(quantile({}, 0.5)));
}

TEST(Statistics, two_proportion_test_matches_the_textbook) {
  // 2/200 against 15/200: pooled p 0.0425, se 0.02017, z 3.222.
  EXPECT_NEAR(p_proportion_greater(2, 200, 15, 200), 6.36e-4, 2e-5);
  EXPECT_GT(p_proportion_greater(10, 200, 10, 200), 0.45);
  EXPECT_EQ(p_proportion_greater(0, 0, 3, 10), 1.0);
  // A margin takes the difference it allows off.
  EXPECT_GT(p_proportion_greater(2, 200, 15, 200, 0.06), 0.3);
  // No variance at all: all failures against none still counts.
  EXPECT_LT(p_proportion_greater(0, 500, 500, 500), 1e-6);
}

// The exact one-sided p-value of the rank-sum of `b` by enumerating every split.
double exact_mann_whitney(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> all(a);
  all.insert(all.end(), b.begin(), b.end());
  const size_t n = all.size(), k = b.size();
  auto u_of = [&](const std::vector<double>& xs, const std::vector<double>& ys) {
    double u = 0;
    for (double y : ys)
      for (double x : xs) u += y > x ? 1 : y == x ? 0.5 : 0;
    return u;
  };
  const double observed = u_of(a, b);
  std::vector<bool> pick(n, false);
  std::fill(pick.end() - static_cast<long>(k), pick.end(), true);
  size_t total = 0, as_large = 0;
  do {
    std::vector<double> xs, ys;
    for (size_t i = 0; i < n; ++i) (pick[i] ? ys : xs).push_back(all[i]);
    ++total;
    if (u_of(xs, ys) >= observed - 1e-9) ++as_large;
  } while (std::next_permutation(pick.begin(), pick.end()));
  return static_cast<double>(as_large) / static_cast<double>(total);
}

TEST(Statistics, mann_whitney_is_close_to_the_exact_test) {
  std::mt19937 rng(7);
  std::normal_distribution<double> noise(0, 1);
  for (double shift : {0.0, 0.5, 1.0, 2.0}) {
    std::vector<double> a, b;
    for (int i = 0; i < 8; ++i) a.push_back(std::round(noise(rng) * 4) / 4);  // ties too
    for (int i = 0; i < 8; ++i) b.push_back(std::round((noise(rng) + shift) * 4) / 4);
    EXPECT_NEAR(p_mann_whitney_greater(a, b), exact_mann_whitney(a, b), 0.03) << "shift " << shift;
  }
  EXPECT_EQ(p_mann_whitney_greater({}, {1.0}), 1.0);
}

TEST(Statistics, proportion_below_a_floor) {
  EXPECT_LT(p_proportion_below(380, 400, 0.99), 1e-6);  // 95% against a 99% floor
  EXPECT_GT(p_proportion_below(398, 400, 0.99), 0.5);
}

WindowSnapshot window(int64_t requests, int64_t errors, double latency_ms, double jitter, uint32_t seed) {
  WindowSnapshot w;
  w.requests = requests;
  w.errors = errors;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0, jitter);
  for (int64_t i = 0; i < requests - errors; ++i) w.latency_ms.push_back(latency_ms + u(rng));
  w.latency_seen = w.latency_ms.size();
  return w;
}

JudgeSpec spec() {
  JudgeSpec j;
  j.min_samples = 50;
  return j;
}

const CheckResult& check(const Judgement& j, const std::string& name) {
  for (const auto& c : j.checks)
    if (c.name == name) return c;
  static CheckResult none;
  return none;
}

TEST(Judge, equal_versions_pass) {
  Judgement j = judge(spec(), window(1000, 2, 5, 1, 1), window(500, 1, 5, 1, 2), false);
  EXPECT_EQ(j.verdict, Verdict::kPass) << j.summary;
  EXPECT_EQ(check(j, "agreement").verdict, Verdict::kSkipped);
  EXPECT_EQ(check(j, "accuracy").verdict, Verdict::kSkipped);
}

TEST(Judge, too_few_samples_hold) {
  Judgement j = judge(spec(), window(1000, 0, 5, 1, 1), window(10, 5, 500, 1, 2), false);
  EXPECT_EQ(j.verdict, Verdict::kInconclusive);
  EXPECT_NE(j.summary.find("10 candidate and 1000 champion answers of the 50 needed"), std::string::npos) << j.summary;
  Judgement none = judge(spec(), WindowSnapshot{}, WindowSnapshot{}, false);
  EXPECT_EQ(none.verdict, Verdict::kInconclusive);
}

TEST(Judge, five_percent_errors_fail_against_a_clean_champion) {
  Judgement j = judge(spec(), window(2000, 0, 5, 1, 1), window(400, 20, 5, 1, 2), false);
  EXPECT_EQ(j.verdict, Verdict::kFail) << j.summary;
  const CheckResult& c = check(j, "error_rate");
  EXPECT_EQ(c.verdict, Verdict::kFail);
  EXPECT_NEAR(c.candidate, 0.05, 1e-9);
  EXPECT_LT(c.p_value, 0.05);
}

TEST(Judge, an_extra_200_ms_fails_latency) {
  Judgement j = judge(spec(), window(500, 0, 3, 2, 1), window(100, 0, 203, 2, 2), false);
  EXPECT_EQ(j.verdict, Verdict::kFail);
  EXPECT_EQ(check(j, "latency_p50").verdict, Verdict::kFail);
  EXPECT_EQ(check(j, "latency_p99").verdict, Verdict::kFail);
  // The same measured in dry-run: recorded as failing, the verdict stays pass.
  JudgeSpec dry = spec();
  dry.latency_p50.dry_run = dry.latency_p99.dry_run = true;
  Judgement d = judge(dry, window(500, 0, 3, 2, 1), window(100, 0, 203, 2, 2), false);
  EXPECT_EQ(d.verdict, Verdict::kPass) << d.summary;
  EXPECT_EQ(check(d, "latency_p99").verdict, Verdict::kFail);
}

TEST(Judge, small_differences_within_slack_pass) {
  // A fast model where 0.3 ms is noise: within slack_ms.
  Judgement j = judge(spec(), window(500, 0, 0.2, 0.1, 1), window(500, 0, 0.5, 0.1, 2), false);
  EXPECT_EQ(check(j, "latency_p50").verdict, Verdict::kPass) << check(j, "latency_p50").reason;
}

TEST(Judge, shadow_agreement) {
  WindowSnapshot c = window(200, 0, 5, 1, 2);
  c.shadow_compared = 1000;
  c.shadow_agreed = 960;
  Judgement j = judge(spec(), window(1000, 0, 5, 1, 1), c, true);
  EXPECT_EQ(check(j, "agreement").verdict, Verdict::kFail);
  c.shadow_agreed = 995;
  EXPECT_EQ(check(judge(spec(), window(1000, 0, 5, 1, 1), c, true), "agreement").verdict, Verdict::kPass);
  c.shadow_compared = 10;
  c.shadow_agreed = 5;
  EXPECT_EQ(check(judge(spec(), window(1000, 0, 5, 1, 1), c, true), "agreement").verdict, Verdict::kInconclusive);
}

TEST(Judge, accuracy_paired_and_unpaired) {
  WindowSnapshot h = window(1000, 0, 5, 1, 1), c = window(1000, 0, 5, 1, 2);
  // Paired: the candidate is wrong on 25 of 1000 requests the champion got right, right on 2 it got wrong.
  c.pairs = 1000;
  c.pair_worse = 25;
  c.pair_better = 2;
  EXPECT_EQ(check(judge(spec(), h, c, true), "accuracy").verdict, Verdict::kFail);
  c.pair_worse = 6;
  EXPECT_EQ(check(judge(spec(), h, c, true), "accuracy").verdict, Verdict::kPass);
  // Unpaired: labelled answers of each.
  c.pairs = c.pair_worse = c.pair_better = 0;
  h.labelled = 5000;
  h.correct = 4500;
  c.labelled = 5000;
  c.correct = 4350;  // 87% against 90%
  EXPECT_EQ(check(judge(spec(), h, c, false), "accuracy").verdict, Verdict::kFail);
  c.labelled = 50;
  c.correct = 40;
  EXPECT_EQ(check(judge(spec(), h, c, false), "accuracy").verdict, Verdict::kInconclusive);
}

TEST(Judge, an_unproven_absolute_limit_does_not_hide_a_proven_margin) {
  // 5.25% against a 5% limit cannot be told apart yet; against a clean champion plus 1% it can.
  Judgement j = judge(spec(), window(4000, 0, 5, 1, 1), window(400, 21, 5, 1, 2), false);
  const CheckResult& c = check(j, "error_rate");
  EXPECT_EQ(c.verdict, Verdict::kFail) << c.reason;
  EXPECT_NEAR(c.threshold, 0.01, 1e-9);
  EXPECT_NE(c.reason.find("over the limit 5%"), std::string::npos) << c.reason;
}

TEST(Judge, absolute_limits) {
  JudgeSpec j = spec();
  j.latency_p99.max_ms = 10;
  j.latency_p99.max_ratio = 0;
  EXPECT_EQ(check(judge(j, WindowSnapshot{}, window(100, 0, 20, 1, 2), false), "latency_p99").verdict, Verdict::kFail);
  j.error_rate.max = 0.01;
  EXPECT_EQ(check(judge(j, WindowSnapshot{}, window(1000, 50, 1, 1, 2), false), "error_rate").verdict, Verdict::kFail);
}

}  // namespace
}  // namespace hearth::rollout
