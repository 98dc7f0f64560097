// Mode coverage of a sample against the means of a mixture: each sample is assigned to its nearest
// mean (Euclidean), then counted; summaries are the number of modes holding a minimum fraction of
// the samples and the total variation ½ Σ_c |count_c/N − w_c| to the mixture weights.
#pragma once

#include <cmath>
#include <vector>

#include "dqs/detail/check.hpp"
#include "dqs/types.hpp"

namespace dqs::metrics {

// Index of the nearest column of `means` (D×C) for each column of `samples` (D×N); a tie goes to
// the lower index. Samples and means must be finite.
template <class DS, class DM>
std::vector<Index> nearest_modes(const Eigen::MatrixBase<DS>& samples, const Eigen::MatrixBase<DM>& means) {
  dqs::detail::require(samples.rows() == means.rows(),
                       "nearest_modes: samples and means must have the same dimension, got ", samples.rows(),
                       " and ", means.rows());
  dqs::detail::require(means.cols() > 0, "nearest_modes: means must hold at least one mode");
  const Matrix<double> x = samples.template cast<double>();
  const Matrix<double> centres = means.template cast<double>();
  dqs::detail::require(centres.allFinite(), "nearest_modes: means contain a non-finite coordinate");
  dqs::detail::require(x.allFinite(), "nearest_modes: samples contain a non-finite coordinate");
  std::vector<Index> nearest(static_cast<std::size_t>(x.cols()));
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (x.cols() * centres.cols() * x.rows() >= (Index(1) << 18))
#endif
  for (Index i = 0; i < x.cols(); ++i) {
    Index best = 0;
    double best_distance = (x.col(i) - centres.col(0)).squaredNorm();
    for (Index c = 1; c < centres.cols(); ++c) {
      const double distance = (x.col(i) - centres.col(c)).squaredNorm();
      if (distance < best_distance) {
        best_distance = distance;
        best = c;
      }
    }
    nearest[static_cast<std::size_t>(i)] = best;
  }
  return nearest;
}

// How many samples fall nearest to each of the C means (size C, summing to N).
template <class DS, class DM>
std::vector<Index> nearest_mode_counts(const Eigen::MatrixBase<DS>& samples,
                                       const Eigen::MatrixBase<DM>& means) {
  std::vector<Index> counts(static_cast<std::size_t>(means.cols()), 0);
  for (const Index mode : nearest_modes(samples, means)) ++counts[static_cast<std::size_t>(mode)];
  return counts;
}

namespace modes_detail {

inline Index checked_total(const std::vector<Index>& counts, const char* function) {
  dqs::detail::require(!counts.empty(), function, ": counts must not be empty");
  Index total = 0;
  for (std::size_t c = 0; c < counts.size(); ++c) {
    dqs::detail::require(counts[c] >= 0, function, ": counts must be >= 0, got counts[", c,
                         "] = ", counts[c]);
    total += counts[c];
  }
  dqs::detail::require(total > 0, function, ": counts must not all be 0");
  return total;
}

}  // namespace modes_detail

// Number of modes c with counts[c] ≥ min_fraction · N (N = Σ counts, compared in double);
// min_fraction in (0, 1].
inline Index modes_hit(const std::vector<Index>& counts, double min_fraction) {
  dqs::detail::require(min_fraction > 0 && min_fraction <= 1,
                       "modes_hit: min_fraction must be in (0, 1], got ", min_fraction);
  const double threshold =
      min_fraction * static_cast<double>(modes_detail::checked_total(counts, "modes_hit"));
  Index hit = 0;
  for (const Index count : counts)
    if (static_cast<double>(count) >= threshold) ++hit;
  return hit;
}

// ½ Σ_c |counts[c]/N − weights[c]|, in [0, 1]. Weights must be finite, ≥ 0 and sum to 1 within 1e-9.
inline double total_variation(const std::vector<Index>& counts, ConstValuesRef<double> weights) {
  dqs::detail::require(static_cast<Index>(counts.size()) == weights.size(),
                       "total_variation: ", counts.size(), " counts but ", weights.size(), " weights");
  const double total = static_cast<double>(modes_detail::checked_total(counts, "total_variation"));
  double weight_sum = 0;
  for (Index c = 0; c < weights.size(); ++c) {
    dqs::detail::require(std::isfinite(weights(c)) && weights(c) >= 0,
                         "total_variation: weights must be finite and >= 0, got weights[", c,
                         "] = ", weights(c));
    weight_sum += weights(c);
  }
  dqs::detail::require(std::abs(weight_sum - 1.0) <= 1e-9, "total_variation: weights must sum to 1, got ",
                       weight_sum);
  double distance = 0;
  for (Index c = 0; c < weights.size(); ++c)
    distance += std::abs(static_cast<double>(counts[static_cast<std::size_t>(c)]) / total - weights(c));
  return 0.5 * distance;
}

// Total variation to equal weights 1/C.
inline double total_variation(const std::vector<Index>& counts) {
  const Vector<double> uniform = Vector<double>::Constant(
      static_cast<Index>(counts.size()), counts.empty() ? 0.0 : 1.0 / static_cast<double>(counts.size()));
  return total_variation(counts, uniform);
}

}  // namespace dqs::metrics
