// Tests for dqs::metrics: exact W2 against closed forms, brute force over permutations, hand-solved
// unequal sizes and an independent solver (scipy); 1-D W2 against closed forms and the network
// simplex; MMD against hand values, its closed form for Gaussians and its null distribution; modes.
#include "dqs/metrics/metrics.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "dqs/random/philox.hpp"

namespace {

template <class S>
dqs::Matrix<S> normal_batch(dqs::Index dim, dqs::Index points, std::uint64_t seed, std::uint64_t first = 0) {
  dqs::Matrix<S> batch(dim, points);
  dqs::random::fill_normal<S>(dqs::random::StreamKey{.seed = seed, .first_sample = first}, batch);
  return batch;
}

// W2² over permutations only: optimal for n = m with uniform weights (Birkhoff–von Neumann).
double brute_force_w2(const dqs::Matrix<double>& a, const dqs::Matrix<double>& b) {
  std::vector<int> perm(static_cast<std::size_t>(a.cols()));
  std::iota(perm.begin(), perm.end(), 0);
  double best = std::numeric_limits<double>::infinity();
  do {
    double cost = 0;
    for (dqs::Index i = 0; i < a.cols(); ++i)
      cost += (a.col(i) - b.col(perm[static_cast<std::size_t>(i)])).squaredNorm();
    best = std::min(best, cost);
  } while (std::next_permutation(perm.begin(), perm.end()));
  return std::sqrt(best / static_cast<double>(a.cols()));
}

// Deterministic point sets that numpy reproduces bit for bit (sqrt, *, / and fmod are correctly
// rounded): coordinate d of point i is frac((i+1)·(sqrt(d + shift) + offset/(d+1))), optionally
// squared plus 0.1. The same formula in Python gave the scipy reference values below.
dqs::Matrix<double> weyl_points(dqs::Index dim, dqs::Index points, double shift, double offset, bool square) {
  dqs::Matrix<double> out(dim, points);
  for (dqs::Index i = 0; i < points; ++i)
    for (dqs::Index d = 0; d < dim; ++d) {
      const double alpha = std::sqrt(static_cast<double>(d) + shift) + offset / static_cast<double>(d + 1);
      const double v = std::fmod(static_cast<double>(i + 1) * alpha, 1.0);
      out(d, i) = square ? v * v + 0.1 : v;
    }
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("w2_exact of a set against a shuffled translated copy is the shift length",
                   "[metrics][w2]", float, double) {
  using S = TestType;
  const dqs::Index n = 60;
  const dqs::Matrix<S> a = normal_batch<S>(3, n, 1);
  Eigen::VectorXd shift(3);
  shift << 0.7, -1.1, 0.4;
  // Column j of b is a's column (17 j mod 60) + shift: a permutation, since gcd(17, 60) = 1.
  dqs::Matrix<S> b(3, n);
  double perturbation = 0;  // how far rounding b to S moved it from the exact translate
  for (dqs::Index j = 0; j < n; ++j) {
    const Eigen::VectorXd exact = a.col((17 * j) % n).template cast<double>() + shift;
    b.col(j) = exact.cast<S>();
    perturbation = std::max(perturbation, (b.col(j).template cast<double>() - exact).norm());
  }
  // For b = a + s, Σ_i ‖a_i − a_σ(i) − s‖² = Σ‖a_i − a_σ(i)‖² + n‖s‖² (the cross term sums to 0),
  // so the identity matching is optimal and W2 = ‖s‖. W2 is 1-Lipschitz under moving each point by
  // at most ε, so rounding b to float may move it by `perturbation`; the rest is double rounding.
  const double w2 = dqs::metrics::w2_exact(a, b);
  CHECK(std::abs(w2 - shift.norm()) <= perturbation + 1e-12);
  CHECK(dqs::metrics::w2_exact(b, a) == Approx(w2).epsilon(1e-12));
  CHECK(dqs::metrics::w2_exact(a, a) == 0.0);
}

TEST_CASE("w2_exact equals the brute-force minimum over all 720 matchings for n = m = 6", "[metrics][w2]") {
  for (std::uint64_t seed = 1; seed <= 12; ++seed) {
    const dqs::Index dim = seed % 2 == 0 ? 2 : 5;
    const dqs::Matrix<double> a = normal_batch<double>(dim, 6, seed);
    const dqs::Matrix<double> b = normal_batch<double>(dim, 6, seed + 1000).array() + 0.3;
    INFO("seed " << seed);
    // Integer-rounded costs leave a relative error ~ (n+m)·2^-52 of the largest cost.
    CHECK(dqs::metrics::w2_exact(a, b) == Approx(brute_force_w2(a, b)).epsilon(1e-12));
  }
}

TEST_CASE("w2_exact with unequal sizes, solved by hand", "[metrics][w2]") {
  SECTION("n = 2, m = 4 on a line: each a-point keeps its two nearest b-points") {
    dqs::Matrix<double> a(1, 2), b(1, 4);
    a << 0, 10;
    b << 8, 1, 9, 2;
    // Masses 1/2 and 1/4: 0 → {1, 2}, 10 → {8, 9}; W2² = (1 + 4 + 4 + 1)/4.
    CHECK(dqs::metrics::w2_exact(a, b) == Approx(std::sqrt(2.5)).epsilon(1e-14));
    CHECK(dqs::metrics::w2_exact(b, a) == Approx(std::sqrt(2.5)).epsilon(1e-14));
  }
  SECTION("n = 2, m = 4 in the plane: every b-point is at distance 1 from its a-point") {
    dqs::Matrix<double> a(2, 2), b(2, 4);
    a << 0, 1, 0, 0;
    b << 1, 0, 1, 0, -1, 1, 1, -1;
    CHECK(dqs::metrics::w2_exact(a, b) == Approx(1.0).epsilon(1e-14));
  }
  SECTION("n = 1: every unit goes to the single point") {
    dqs::Matrix<double> a(2, 1), b(2, 3);
    a << 1, 1;
    b << 0, 1, 4, 1, 3, 1;
    // Squared distances 1, 4, 9: W2² = 14/3.
    CHECK(dqs::metrics::w2_exact(a, b) == Approx(std::sqrt(14.0 / 3.0)).epsilon(1e-14));
  }
  SECTION("n = 2, m = 3 on a line: the middle point splits") {
    dqs::Matrix<double> a(1, 2), b(1, 3);
    a << 0, 1;
    b << 0, 0.5, 1;
    // Quantile functions differ by 1/2 on [1/3, 2/3): W2² = 1/4 · 1/3.
    CHECK(dqs::metrics::w2_exact(a, b) == Approx(std::sqrt(1.0 / 12.0)).epsilon(1e-14));
    CHECK(dqs::metrics::w2_1d(a, b) == Approx(std::sqrt(1.0 / 12.0)).epsilon(1e-14));
  }
}

TEST_CASE("w2_exact agrees with scipy on 1000 x 1000 (1 M arcs) and 120 x 250", "[metrics][w2]") {
  // Reference values: the same weyl_points in numpy, then for n = m scipy.optimize.linear_sum_assignment
  // on cdist(..., 'sqeuclidean') (exact assignment), for n ≠ m scipy.optimize.linprog (HiGHS) on the
  // transport LP with marginals 1/n, 1/m (scipy 1.10.1; HiGHS' default tolerances, hence 1e-9).
  struct Case {
    dqs::Index dim, n, m;
    double reference, tolerance;
  };
  for (const Case& c :
       {Case{2, 1000, 1000, 0.14409867211689845, 1e-12}, Case{39, 1000, 1000, 1.9295947015703094, 1e-12},
        Case{2, 120, 250, 0.18120342358242958, 1e-9}, Case{39, 120, 250, 2.0806752203323979, 1e-9}}) {
    const dqs::Matrix<double> a = weyl_points(c.dim, c.n, 2.0, 0.5, false);
    const dqs::Matrix<double> b = weyl_points(c.dim, c.m, 3.5, 0.25, true);
    INFO("D = " << c.dim << ", " << c.n << " x " << c.m);
    CHECK(dqs::metrics::w2_exact(a, b) == Approx(c.reference).epsilon(c.tolerance));
  }
}

TEMPLATE_TEST_CASE("w2_1d matches w2_exact on 1-D data", "[metrics][w2]", float, double) {
  using S = TestType;
  for (const auto& [n, m] : {std::pair<dqs::Index, dqs::Index>{40, 40}, {37, 53}, {1, 9}, {64, 48}}) {
    const dqs::Matrix<S> a = normal_batch<S>(1, n, 3);
    const dqs::Matrix<S> b = (normal_batch<S>(1, m, 4).array() * S(1.5) + S(0.2)).matrix();
    INFO(n << " x " << m);
    // Both are exact in double arithmetic on the same (float → double) values.
    CHECK(dqs::metrics::w2_1d(a, b) == Approx(dqs::metrics::w2_exact(a, b)).epsilon(1e-12));
    // Row, column and transposed inputs are the same value sets.
    const dqs::Vector<S> column = b.transpose();
    CHECK(dqs::metrics::w2_1d(a, column) == dqs::metrics::w2_1d(a, b));
  }
}

TEST_CASE("w2_1d of grids has its closed form", "[metrics][w2]") {
  // Midpoint grids g_n = {(i + 1/2)/n}: each cell of g_n splits into k cells of g_kn whose values
  // differ from the coarse one by (l + 1/2 − k/2)/(kn), l = 0..k−1, so W2² = (k² − 1)/(12 k² n²).
  auto grid = [](dqs::Index size) {
    dqs::Vector<double> g(size);
    for (dqs::Index i = 0; i < size; ++i) g(i) = (static_cast<double>(i) + 0.5) / static_cast<double>(size);
    return g;
  };
  for (const auto& [n, k] : {std::pair<int, int>{7, 3}, {1, 10}, {5, 1}, {12, 4}}) {
    const double want = std::sqrt(static_cast<double>(k * k - 1) / (12.0 * k * k * n * n));
    INFO("n = " << n << ", k = " << k);
    CHECK(dqs::metrics::w2_1d(grid(n), grid(n * k)) == Approx(want).margin(1e-15).epsilon(1e-13));
    CHECK(dqs::metrics::w2_1d(grid(n * k), grid(n)) == Approx(want).margin(1e-15).epsilon(1e-13));
  }
  // A shifted grid, given in reverse order: W2 = shift.
  dqs::Vector<double> shifted(9);
  for (dqs::Index i = 0; i < 9; ++i) shifted(i) = (8.5 - static_cast<double>(i)) / 9.0 + 0.3;
  CHECK(dqs::metrics::w2_1d(grid(9), shifted) == Approx(0.3).epsilon(1e-13));
}

TEST_CASE("W2 rejects bad input", "[metrics][w2]") {
  const dqs::Matrix<double> a = normal_batch<double>(2, 5, 1);
  const dqs::Matrix<double> b3 = normal_batch<double>(3, 5, 2);
  CHECK_THROWS_AS(dqs::metrics::w2_exact(a, b3), std::invalid_argument);
  CHECK_THROWS_AS(dqs::metrics::w2_exact(a, dqs::Matrix<double>(2, 0)), std::invalid_argument);
  CHECK_THROWS_AS(dqs::metrics::w2_exact(dqs::Matrix<double>(2, 0), a), std::invalid_argument);
  dqs::Matrix<double> bad = a;
  bad(1, 3) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_WITH(dqs::metrics::w2_exact(a, bad), Catch::Contains("non-finite"));
  CHECK_THROWS_AS(dqs::metrics::w2_1d(a, a), std::invalid_argument);  // not vectors
  CHECK_THROWS_AS(dqs::metrics::w2_1d(dqs::Vector<double>(0), dqs::Vector<double>::Ones(3)),
                  std::invalid_argument);
  CHECK_THROWS_AS(dqs::metrics::w2_1d(bad.row(1), a.row(0)), std::invalid_argument);
}

TEST_CASE("MMD by hand and the median heuristic", "[metrics][mmd]") {
  SECTION("single points") {
    dqs::Matrix<double> a(1, 1), b(1, 1);
    a << 0;
    b << 1;
    // k(0, 0) = k(1, 1) = 1, k(0, 1) = exp(−1/(2h²)).
    for (const double h : {0.5, 1.0, 3.0})
      CHECK(dqs::metrics::mmd_rbf(a, b, h) ==
            Approx(std::sqrt(2 - 2 * std::exp(-1 / (2 * h * h)))).epsilon(1e-14));
  }
  SECTION("two points each, both estimators") {
    dqs::Matrix<double> a(1, 2), b(1, 2);
    a << 0, 2;
    b << 1, 3;
    const double cross = 3 * std::exp(-0.5) + std::exp(-4.5);  // Σ k(a_i, b_j) at h = 1
    const double within = 2 + 2 * std::exp(-2.0);              // Σ k(a_i, a_j), diagonal included
    const auto est = dqs::metrics::mmd_rbf_estimates(a, b, 1.0);
    CHECK(est.bandwidth == 1.0);
    CHECK(est.mmd2_biased == Approx(2 * within / 4 - 2 * cross / 4).epsilon(1e-14));
    CHECK(est.mmd2_unbiased == Approx(2 * (within - 2) / 2 - 2 * cross / 4).epsilon(1e-14));
    CHECK(est.mmd() == Approx(std::sqrt(est.mmd2_biased)).epsilon(1e-15));
  }
  SECTION("median of pooled pairwise distances, odd and even counts") {
    dqs::Matrix<double> a(1, 2), b1(1, 1), b2(1, 2);
    a << 0, 1;
    b1 << 3;
    b2 << 3, 7;
    CHECK(dqs::metrics::median_heuristic_bandwidth(a, b1) == 2.0);  // distances 1, 3, 2
    CHECK(dqs::metrics::median_heuristic_bandwidth(a, b2) == 3.5);  // 1, 2, 3, 4, 6, 7
    // The default bandwidth is that median.
    CHECK(dqs::metrics::mmd_rbf_estimates(a, b2).bandwidth == 3.5);
    CHECK(dqs::metrics::mmd_rbf(a, b2) == dqs::metrics::mmd_rbf(a, b2, 3.5));
  }
}

TEMPLATE_TEST_CASE("MMD is zero for identical sets and symmetric", "[metrics][mmd]", float, double) {
  using S = TestType;
  const dqs::Matrix<S> a = normal_batch<S>(3, 80, 5);
  const dqs::Matrix<S> b = normal_batch<S>(3, 50, 6);
  CHECK(dqs::metrics::mmd_rbf(a, a) == 0.0);
  CHECK(dqs::metrics::mmd_rbf_estimates(a, a, 0.8).mmd2_biased == 0.0);
  const auto ab = dqs::metrics::mmd_rbf_estimates(a, b);
  const auto ba = dqs::metrics::mmd_rbf_estimates(b, a);
  CHECK(ab.bandwidth == ba.bandwidth);  // the same multiset of pooled distances
  // Only the summation order differs; the estimates are differences of O(1) kernel means, so the
  // rounding is absolute (~1e-16 per term), not relative to the small result.
  CHECK(ab.mmd2_biased == Approx(ba.mmd2_biased).epsilon(0).margin(1e-13));
  CHECK(ab.mmd2_unbiased == Approx(ba.mmd2_unbiased).epsilon(0).margin(1e-13));
  // The U-statistic removes the diagonal's positive bias: biased − unbiased > 0 here.
  CHECK(ab.mmd2_biased > ab.mmd2_unbiased);
}

TEST_CASE("MMD unbiased estimator: null mean 0, Gaussian closed form, power against a shift",
          "[metrics][mmd]") {
  // Each check averages R independent replicates (fixed Philox seeds); by the CLT the mean has
  // standard deviation σ/√R with σ the replicates' sample standard deviation, and a correct
  // estimator lands within 4σ/√R of its expectation except with probability ≈ 6e-5.
  const int replicates = 200;
  const dqs::Index n = 64, m = 48, dim = 2;
  auto summarise = [&](const Eigen::ArrayXd& values) {
    const double mean = values.mean();
    const double sd = std::sqrt((values - mean).square().sum() / (values.size() - 1));
    return std::pair{mean, sd / std::sqrt(static_cast<double>(values.size()))};
  };

  SECTION("same distribution, median bandwidth: E[U] = 0, E[V] > 0") {
    // The median bandwidth is a symmetric function of the pooled sample, which under the null is
    // exchangeable; averaging U over the partitions of a fixed pooled sample gives exactly 0.
    Eigen::ArrayXd unbiased(replicates), biased(replicates);
    for (int r = 0; r < replicates; ++r) {
      const auto est = dqs::metrics::mmd_rbf_estimates(normal_batch<double>(dim, n, 31, r * n),
                                                       normal_batch<double>(dim, m, 32, r * m));
      unbiased(r) = est.mmd2_unbiased;
      biased(r) = est.mmd2_biased;
    }
    const auto [u_mean, u_se] = summarise(unbiased);
    const auto [v_mean, v_se] = summarise(biased);
    INFO("U mean " << u_mean << " ± " << u_se << ", V mean " << v_mean << " ± " << v_se);
    CHECK(std::abs(u_mean) <= 4 * u_se);
    CHECK(v_mean > 4 * v_se);  // the V-statistic's diagonal bias is positive
  }

  SECTION("N(0, I) against N(δ, I) at h = 1 matches the closed form") {
    // For z ~ N(μ, s²I_d): E exp(−‖z‖²/(2h²)) = (h²/(h²+s²))^{d/2} exp(−‖μ‖²/(2(h²+s²))). With
    // x − x' ~ N(0, 2I) and x − y ~ N(−δ, 2I): MMD² = 2c(1 − exp(−‖δ‖²/(2(h²+2)))), c = (h²/(h²+2))^{d/2}.
    // δ = (shift, …, shift), so ‖δ‖² = d·shift².
    for (const double shift : {0.0, 0.6, 1.5}) {
      const double h = 1.0;
      const double c = std::pow(h * h / (h * h + 2), dim / 2.0);
      const double truth =
          2 * c * (1 - std::exp(-static_cast<double>(dim) * shift * shift / (2 * (h * h + 2))));
      Eigen::ArrayXd unbiased(replicates);
      for (int r = 0; r < replicates; ++r) {
        const dqs::Matrix<double> y = normal_batch<double>(dim, m, 42, r * m).array() + shift;
        unbiased(r) =
            dqs::metrics::mmd_rbf_estimates(normal_batch<double>(dim, n, 41, r * n), y, h).mmd2_unbiased;
      }
      const auto [mean, se] = summarise(unbiased);
      INFO("shift " << shift << ": truth " << truth << ", mean " << mean << " ± " << se);
      CHECK(std::abs(mean - truth) <= 4 * se);
    }
  }

  SECTION("a shifted distribution gives an unbiased MMD² far outside the null spread") {
    Eigen::ArrayXd null(replicates);
    for (int r = 0; r < replicates; ++r)
      null(r) = dqs::metrics::mmd_rbf_estimates(normal_batch<double>(dim, n, 51, r * n),
                                                normal_batch<double>(dim, m, 52, r * m))
                    .mmd2_unbiased;
    const double null_sd = summarise(null).second * std::sqrt(static_cast<double>(replicates));
    const dqs::Matrix<double> shifted = normal_batch<double>(dim, m, 53).array() + 1.0;
    const auto est = dqs::metrics::mmd_rbf_estimates(normal_batch<double>(dim, n, 54), shifted);
    INFO("null sd " << null_sd << ", shifted " << est.mmd2_unbiased);
    CHECK(est.mmd2_unbiased > 5 * null_sd);
    CHECK(dqs::metrics::mmd_rbf(normal_batch<double>(dim, n, 54), shifted) > 0.1);
  }
}

TEST_CASE("MMD rejects bad input", "[metrics][mmd]") {
  const dqs::Matrix<double> a = normal_batch<double>(2, 5, 1);
  CHECK_THROWS_AS(dqs::metrics::mmd_rbf(a, normal_batch<double>(3, 5, 2)), std::invalid_argument);
  CHECK_THROWS_AS(dqs::metrics::mmd_rbf(a, a, 0.0), std::invalid_argument);
  CHECK_THROWS_AS(dqs::metrics::mmd_rbf(a, a, -1.0), std::invalid_argument);
  CHECK_THROWS_AS(dqs::metrics::mmd_rbf(a, dqs::Matrix<double>(2, 0)), std::invalid_argument);
  CHECK_THROWS_AS(dqs::metrics::mmd_rbf_estimates(a, a.leftCols(1), 1.0), std::invalid_argument);
  const dqs::Matrix<double> same = dqs::Matrix<double>::Ones(2, 4);
  CHECK_THROWS_WITH(dqs::metrics::mmd_rbf(same, same), Catch::Contains("explicit bandwidth"));
  CHECK(dqs::metrics::mmd_rbf(same, same, 1.0) == 0.0);
  dqs::Matrix<double> bad = a;
  bad(0, 0) = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(dqs::metrics::mmd_rbf(bad, a), Catch::Contains("non-finite"));
}

TEST_CASE("mode counts, modes hit and total variation on constructed samples", "[metrics][modes]") {
  dqs::Matrix<double> means(2, 3);
  means << 0, 10, 0, 0, 0, 10;
  dqs::Matrix<float> samples(2, 10);
  // 7 near mode 0 (one exactly halfway to mode 1: ties go to the lower index), 3 near mode 1.
  samples << 0.1f, -1, 2, 0, 1, 3, 5, 9, 11, 10.5f,  //
      0.2f, 1, -2, 4, 0, 3, 0, 0.5f, -1, 2;
  const std::vector<dqs::Index> nearest = dqs::metrics::nearest_modes(samples, means);
  CHECK(nearest == std::vector<dqs::Index>{0, 0, 0, 0, 0, 0, 0, 1, 1, 1});
  const std::vector<dqs::Index> counts = dqs::metrics::nearest_mode_counts(samples, means);
  CHECK(counts == std::vector<dqs::Index>{7, 3, 0});

  CHECK(dqs::metrics::modes_hit(counts, 0.05) == 2);
  CHECK(dqs::metrics::modes_hit(counts, 0.3) == 2);  // 3 of 10 holds exactly 0.3: inclusive
  CHECK(dqs::metrics::modes_hit(counts, 0.31) == 1);
  CHECK(dqs::metrics::modes_hit(counts, 1.0) == 0);

  // ½(|0.7 − 0.5| + |0.3 − 0.25| + |0 − 0.25|) = 0.25; to equal weights ½(11/30 + 1/30 + 10/30) = 11/30.
  CHECK(dqs::metrics::total_variation(counts, Eigen::Vector3d(0.5, 0.25, 0.25)) ==
        Approx(0.25).epsilon(1e-14));
  CHECK(dqs::metrics::total_variation(counts) == Approx(11.0 / 30.0).epsilon(1e-14));
  CHECK(dqs::metrics::total_variation(counts, Eigen::Vector3d(0.7, 0.3, 0.0)) == Approx(0.0).margin(1e-15));
  CHECK(dqs::metrics::total_variation({0, 0, 5}, Eigen::Vector3d(0.5, 0.5, 0.0)) ==
        Approx(1.0).epsilon(1e-15));

  // Samples at the means themselves, jittered by less than half the spacing: one per mode.
  dqs::Matrix<double> grid(2, 40);
  for (int c = 0; c < 40; ++c) grid.col(c) << 5.0 * (c % 8), 7.0 * (c / 8);
  const dqs::Matrix<double> jittered =
      grid + 0.4 * normal_batch<double>(2, 40, 9).cwiseMax(-1.0).cwiseMin(1.0);
  const std::vector<dqs::Index> one_each = dqs::metrics::nearest_mode_counts(jittered, grid);
  CHECK(one_each == std::vector<dqs::Index>(40, 1));
  CHECK(dqs::metrics::modes_hit(one_each, 1.0 / 40) == 40);
  CHECK(dqs::metrics::total_variation(one_each) == Approx(0.0).margin(1e-15));
}

TEST_CASE("mode metrics reject bad input", "[metrics][modes]") {
  dqs::Matrix<double> means = dqs::Matrix<double>::Zero(2, 3);
  CHECK_THROWS_AS(dqs::metrics::nearest_modes(dqs::Matrix<double>::Zero(3, 4), means), std::invalid_argument);
  CHECK_THROWS_AS(dqs::metrics::nearest_modes(dqs::Matrix<double>::Zero(2, 4), dqs::Matrix<double>(2, 0)),
                  std::invalid_argument);
  dqs::Matrix<double> bad = dqs::Matrix<double>::Zero(2, 4);
  bad(1, 2) = std::numeric_limits<double>::quiet_NaN();
  CHECK_THROWS_AS(dqs::metrics::nearest_mode_counts(bad, means), std::invalid_argument);

  const std::vector<dqs::Index> counts{3, 1};
  CHECK_THROWS_AS(dqs::metrics::modes_hit(counts, 0.0), std::invalid_argument);
  CHECK_THROWS_AS(dqs::metrics::modes_hit(counts, 1.5), std::invalid_argument);
  CHECK_THROWS_AS(dqs::metrics::modes_hit({0, 0}, 0.5), std::invalid_argument);
  CHECK_THROWS_AS(dqs::metrics::modes_hit({3, -1}, 0.5), std::invalid_argument);
  CHECK_THROWS_WITH(dqs::metrics::total_variation(counts, Eigen::Vector2d(0.5, 0.4)),
                    Catch::Contains("sum to 1"));
  CHECK_THROWS_AS(dqs::metrics::total_variation(counts, Eigen::Vector2d(1.5, -0.5)), std::invalid_argument);
  CHECK_THROWS_AS(dqs::metrics::total_variation(counts, Eigen::Vector3d(0.5, 0.25, 0.25)),
                  std::invalid_argument);
  CHECK_THROWS_AS(dqs::metrics::total_variation(std::vector<dqs::Index>{}), std::invalid_argument);
  // Sums within 1e-9 of 1 are accepted.
  CHECK(dqs::metrics::total_variation(counts, Eigen::Vector2d(0.75 + 4e-10, 0.25)) ==
        Approx(2e-10).margin(1e-15));
}
