// Quantiles and one-sided tests (see statistics.h).
#include "rollout/statistics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace hearth::rollout {

double normal_upper_tail(double z) { return 0.5 * std::erfc(z / std::sqrt(2.0)); }

double quantile(std::vector<double> samples, double q) {
  if (samples.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(samples.begin(), samples.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(samples.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, samples.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return samples[lo] + (samples[hi] - samples[lo]) * frac;
}

double p_proportion_greater(int64_t successes_a, int64_t n_a, int64_t successes_b, int64_t n_b, double margin) {
  if (n_a <= 0 || n_b <= 0) return 1.0;
  const double pa = static_cast<double>(successes_a) / static_cast<double>(n_a);
  const double pb = static_cast<double>(successes_b) / static_cast<double>(n_b);
  const double pooled = static_cast<double>(successes_a + successes_b) / static_cast<double>(n_a + n_b);
  double se = std::sqrt(pooled * (1 - pooled) * (1.0 / static_cast<double>(n_a) + 1.0 / static_cast<double>(n_b)));
  // Both samples all-success or all-failure: no variance to speak of. Use the
  // variance of one event in the larger sample, so a difference still counts.
  if (se == 0) se = std::sqrt(1.0 / static_cast<double>(std::max(n_a, n_b)));
  return normal_upper_tail((pb - pa - margin) / se);
}

double p_mann_whitney_greater(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.empty() || b.empty()) return 1.0;
  const size_t n1 = a.size(), n2 = b.size(), n = n1 + n2;
  std::vector<std::pair<double, int>> all;
  all.reserve(n);
  for (double v : a) all.emplace_back(v, 0);
  for (double v : b) all.emplace_back(v, 1);
  std::sort(all.begin(), all.end());
  // Mid-ranks over ties; the tie term for the variance.
  double rank_sum_b = 0, tie_term = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && all[j].first == all[i].first) ++j;
    const double mid = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t k = i; k < j; ++k)
      if (all[k].second == 1) rank_sum_b += mid;
    const double t = static_cast<double>(j - i);
    tie_term += t * t * t - t;
    i = j;
  }
  const double dn1 = static_cast<double>(n1), dn2 = static_cast<double>(n2), dn = static_cast<double>(n);
  const double u_b = rank_sum_b - dn2 * (dn2 + 1) / 2.0;
  const double mean = dn1 * dn2 / 2.0;
  const double var = dn1 * dn2 / 12.0 * ((dn + 1) - tie_term / (dn * (dn - 1)));
  if (var <= 0) return u_b > mean ? 0.0 : 1.0;
  // Continuity correction of 0.5 towards the mean.
  return normal_upper_tail((u_b - mean - 0.5) / std::sqrt(var));
}

double p_proportion_below(int64_t successes, int64_t n, double p0) {
  if (n <= 0) return 1.0;
  const double p = static_cast<double>(successes) / static_cast<double>(n);
  const double se = std::sqrt(std::max(p0 * (1 - p0), 1e-12) / static_cast<double>(n));
  return normal_upper_tail((p0 - p) / se);
}

}  // namespace hearth::rollout
