// The statistics the judge decides with: quantiles of latency samples, and
// one-sided tests of whether the candidate is worse than the champion (two
// proportions; two samples by Mann-Whitney U). Both use the normal approximation,
// which holds at the sample counts the judge waits for (min_samples, default 50).
// Written here because no packaged C++ library offers them; each is a few lines
// of textbook formulas (checked against SciPy's values in the tests).
#pragma once

#include <cstdint>
#include <vector>

namespace hearth::rollout {

// Standard normal upper tail P(Z > z).
double normal_upper_tail(double z);

// The q-quantile (0..1) of `samples` by linear interpolation between order
// statistics (NumPy's default); NaN when empty. Sorts a copy.
double quantile(std::vector<double> samples, double q);

// One-sided p-value that proportion b (successes_b / n_b) exceeds proportion a
// by more than `margin` (H0: p_b - p_a <= margin), pooled-variance z-test.
// 1 when either n is 0.
double p_proportion_greater(int64_t successes_a, int64_t n_a, int64_t successes_b, int64_t n_b, double margin = 0);

// One-sided p-value that the values of `b` tend to be larger than those of `a`
// (Mann-Whitney U with tie correction, normal approximation). 1 when either is empty.
double p_mann_whitney_greater(const std::vector<double>& a, const std::vector<double>& b);

// One-sided p-value that a proportion (successes / n) is below `p0` (H0: p >= p0). 1 when n is 0.
double p_proportion_below(int64_t successes, int64_t n, double p0);

}  // namespace hearth::rollout
