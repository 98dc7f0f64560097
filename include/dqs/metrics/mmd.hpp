// Maximum mean discrepancy with the RBF kernel k(x, y) = exp(−‖x − y‖² / (2h²)):
//   MMD² = E k(x, x') + E k(y, y') − 2 E k(x, y),  x, x' ~ a,  y, y' ~ b,
// estimated by the biased V-statistic or the unbiased U-statistic; h defaults to the median heuristic.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "dqs/detail/check.hpp"
#include "dqs/types.hpp"

namespace dqs::metrics {

// Both estimators of MMD² for one pair of samples (sizes n, m) and one bandwidth h.
struct MmdEstimates {
  double bandwidth = 0;  // h
  // V-statistic: all n² (m², n·m) pairs, the k(x_i, x_i) = 1 diagonal included. ≥ 0 (it is the
  // squared RKHS norm of the difference of the empirical mean embeddings), biased upwards.
  double mmd2_biased = 0;
  // U-statistic: the diagonal excluded, 1/(n(n−1)) and 1/(m(m−1)) normalisation; its expectation
  // is exactly MMD² (so it can be negative when the distributions agree).
  double mmd2_unbiased = 0;

  // sqrt(max(0, biased)): the distance between the empirical embeddings.
  double mmd() const { return std::sqrt(std::max(0.0, mmd2_biased)); }
};

namespace mmd_detail {

// Below this many multiply-adds a parallel region costs more than it saves.
inline constexpr Index parallel_work = Index(1) << 18;

template <class Derived>
Matrix<double> checked_points(const Eigen::MatrixBase<Derived>& points, const char* function,
                              const char* name) {
  Matrix<double> out = points.template cast<double>();
  dqs::detail::require(out.cols() > 0, function, ": ", name, " must hold at least one point");
  dqs::detail::require(out.allFinite(), function, ": ", name, " contains a non-finite coordinate");
  return out;
}

template <class DA, class DB>
void require_same_dimension(const Eigen::MatrixBase<DA>& a, const Eigen::MatrixBase<DB>& b,
                            const char* function) {
  dqs::detail::require(a.rows() == b.rows(), function, ": a and b must have the same dimension, got ",
                       a.rows(), " and ", b.rows());
  dqs::detail::require(a.rows() > 0, function, ": points must have dimension >= 1, got ", a.rows());
}

// Σ_i Σ_j exp(−‖x_i − y_j‖² · inv_two_h2). Rows are summed in parallel but combined in a fixed order,
// so the value does not depend on the thread count; identical inputs give bit-identical sums.
inline double kernel_sum(const Matrix<double>& x, const Matrix<double>& y, double inv_two_h2) {
  std::vector<double> row_sums(static_cast<std::size_t>(x.cols()));
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (x.cols() * y.cols() * x.rows() >= parallel_work)
#endif
  for (Index i = 0; i < x.cols(); ++i) {
    double sum = 0;
    for (Index j = 0; j < y.cols(); ++j) sum += std::exp(-(x.col(i) - y.col(j)).squaredNorm() * inv_two_h2);
    row_sums[static_cast<std::size_t>(i)] = sum;
  }
  double total = 0;
  for (const double s : row_sums) total += s;
  return total;
}

inline double median_bandwidth(const Matrix<double>& x, const Matrix<double>& y) {
  const Index n = x.cols();
  const Index pooled = n + y.cols();
  dqs::detail::require(pooled >= 2, "median_heuristic_bandwidth: needs at least two points in all, got ",
                       pooled);
  auto point = [&](Index k) { return k < n ? x.col(k) : y.col(k - n); };
  std::vector<double> squared(static_cast<std::size_t>(pooled * (pooled - 1) / 2));
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 16) if (pooled * pooled * x.rows() >= 2 * parallel_work)
#endif
  for (Index i = 0; i < pooled; ++i) {
    // Pairs (i, j > i) start after the (i·(2P − i − 1))/2 pairs of the earlier rows.
    std::size_t offset = static_cast<std::size_t>(i * (2 * pooled - i - 1) / 2);
    for (Index j = i + 1; j < pooled; ++j) squared[offset++] = (point(i) - point(j)).squaredNorm();
  }
  // Median of the distances = sqrt of the median of the squares (sqrt is monotone); an even count
  // averages the two middle distances, as numpy.median does.
  const std::size_t count = squared.size();
  const std::size_t upper = count / 2;
  std::nth_element(squared.begin(), squared.begin() + static_cast<std::ptrdiff_t>(upper), squared.end());
  double median = std::sqrt(squared[upper]);
  if (count % 2 == 0) {
    const double lower =
        *std::max_element(squared.begin(), squared.begin() + static_cast<std::ptrdiff_t>(upper));
    median = 0.5 * (std::sqrt(lower) + median);
  }
  dqs::detail::require(
      median > 0,
      "median_heuristic_bandwidth: the median pairwise distance is 0 (at least half of the pooled "
      "pairs coincide); pass an explicit bandwidth");
  return median;
}

inline MmdEstimates estimates(const Matrix<double>& x, const Matrix<double>& y, double bandwidth) {
  const double inv_two_h2 = 1.0 / (2.0 * bandwidth * bandwidth);
  const double n = static_cast<double>(x.cols());
  const double m = static_cast<double>(y.cols());
  const double sum_xx = kernel_sum(x, x, inv_two_h2);
  const double sum_yy = kernel_sum(y, y, inv_two_h2);
  const double sum_xy = kernel_sum(x, y, inv_two_h2);
  MmdEstimates out;
  out.bandwidth = bandwidth;
  out.mmd2_biased = sum_xx / (n * n) + sum_yy / (m * m) - 2.0 * (sum_xy / (n * m));
  // The diagonal terms are k(x_i, x_i) = exp(−0) = 1 exactly: n of them in sum_xx, m in sum_yy.
  // (Undefined below two points per set; only mmd_rbf, which ignores it, gets here with fewer.)
  out.mmd2_unbiased =
      x.cols() >= 2 && y.cols() >= 2
          ? (sum_xx - n) / (n * (n - 1)) + (sum_yy - m) / (m * (m - 1)) - 2.0 * (sum_xy / (n * m))
          : std::numeric_limits<double>::quiet_NaN();
  return out;
}

}  // namespace mmd_detail

// The median heuristic: h = median of the P(P−1)/2 distances ‖z_i − z_j‖ (i < j) over the pooled
// sample z = a ∪ b (P = n + m points, self-pairs excluded, the mean of the two middle values when
// the count is even). Needs 8·P(P−1)/2 bytes (16 MB for P = 2000). Throws if the median is 0.
template <class DA, class DB>
double median_heuristic_bandwidth(const Eigen::MatrixBase<DA>& a, const Eigen::MatrixBase<DB>& b) {
  mmd_detail::require_same_dimension(a, b, "median_heuristic_bandwidth");
  return mmd_detail::median_bandwidth(mmd_detail::checked_points(a, "median_heuristic_bandwidth", "a"),
                                      mmd_detail::checked_points(b, "median_heuristic_bandwidth", "b"));
}

// Both MMD² estimators with an explicit bandwidth h > 0. Needs n, m ≥ 2 (the U-statistic does).
template <class DA, class DB>
MmdEstimates mmd_rbf_estimates(const Eigen::MatrixBase<DA>& a, const Eigen::MatrixBase<DB>& b,
                               double bandwidth) {
  mmd_detail::require_same_dimension(a, b, "mmd_rbf_estimates");
  dqs::detail::require_positive("mmd_rbf_estimates: bandwidth", bandwidth);
  dqs::detail::require(a.cols() >= 2 && b.cols() >= 2,
                       "mmd_rbf_estimates: the unbiased estimator needs at least 2 points per set, got ",
                       a.cols(), " and ", b.cols());
  return mmd_detail::estimates(mmd_detail::checked_points(a, "mmd_rbf_estimates", "a"),
                               mmd_detail::checked_points(b, "mmd_rbf_estimates", "b"), bandwidth);
}

// Both MMD² estimators with the median-heuristic bandwidth of the pooled sample.
template <class DA, class DB>
MmdEstimates mmd_rbf_estimates(const Eigen::MatrixBase<DA>& a, const Eigen::MatrixBase<DB>& b) {
  mmd_detail::require_same_dimension(a, b, "mmd_rbf_estimates");
  dqs::detail::require(a.cols() >= 2 && b.cols() >= 2,
                       "mmd_rbf_estimates: the unbiased estimator needs at least 2 points per set, got ",
                       a.cols(), " and ", b.cols());
  const Matrix<double> x = mmd_detail::checked_points(a, "mmd_rbf_estimates", "a");
  const Matrix<double> y = mmd_detail::checked_points(b, "mmd_rbf_estimates", "b");
  return mmd_detail::estimates(x, y, mmd_detail::median_bandwidth(x, y));
}

// MMD = sqrt(max(0, biased MMD²)) with an explicit bandwidth h > 0; any sizes n, m ≥ 1.
template <class DA, class DB>
double mmd_rbf(const Eigen::MatrixBase<DA>& a, const Eigen::MatrixBase<DB>& b, double bandwidth) {
  mmd_detail::require_same_dimension(a, b, "mmd_rbf");
  dqs::detail::require_positive("mmd_rbf: bandwidth", bandwidth);
  return mmd_detail::estimates(mmd_detail::checked_points(a, "mmd_rbf", "a"),
                               mmd_detail::checked_points(b, "mmd_rbf", "b"), bandwidth)
      .mmd();
}

// MMD = sqrt(max(0, biased MMD²)) with the median-heuristic bandwidth; n + m ≥ 2.
template <class DA, class DB>
double mmd_rbf(const Eigen::MatrixBase<DA>& a, const Eigen::MatrixBase<DB>& b) {
  mmd_detail::require_same_dimension(a, b, "mmd_rbf");
  const Matrix<double> x = mmd_detail::checked_points(a, "mmd_rbf", "a");
  const Matrix<double> y = mmd_detail::checked_points(b, "mmd_rbf", "b");
  return mmd_detail::estimates(x, y, mmd_detail::median_bandwidth(x, y)).mmd();
}

}  // namespace dqs::metrics
