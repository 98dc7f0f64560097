// Tests for ExactScore: the closed-form noised score and log-density against p_t computed
// independently by quadrature, p_t(x) = ∫ p(x₀) N(x; a(t)x₀, s(t)²I) dx₀ (trapezoid rule on a fine
// grid), differentiated by central finite differences; 1-D Gaussian and mixture, 2-D mixture with
// full covariances; VEGeometric, VPLinear and VPCosine at several t.
#include "dqs/energy/gaussian_mixture.hpp"
#include "dqs/schedule/ve_geometric.hpp"
#include "dqs/schedule/vp_cosine.hpp"
#include "dqs/schedule/vp_linear.hpp"
#include "dqs/score/exact.hpp"

#include <catch2/catch.hpp>

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using dqs::Index;

// The target written out independently of the library: weights, means (D×C), covariances.
struct Target {
  std::vector<double> weights;
  Eigen::MatrixXd means;
  std::vector<Eigen::MatrixXd> covs;

  // log Σ_c w_c exp(−½ rᵀΣ_c⁻¹r)/√((2π)^D det Σ_c) at the columns of x.
  Eigen::VectorXd log_density(const Eigen::MatrixXd& x) const {
    const double d = static_cast<double>(x.rows());
    Eigen::VectorXd density = Eigen::VectorXd::Zero(x.cols());
    for (std::size_t c = 0; c < weights.size(); ++c) {
      const Eigen::MatrixXd r = x.colwise() - means.col(static_cast<Index>(c));
      const Eigen::ArrayXd quad = (r.array() * (covs[c].inverse() * r).array()).colwise().sum().transpose();
      density.array() += weights[c] * (-0.5 * quad).exp() / std::sqrt(std::pow(2 * std::numbers::pi, d) * covs[c].determinant());
    }
    return density.array().log();
  }
  // Smallest standard deviation along any direction of any component.
  double min_std() const {
    double best = std::numeric_limits<double>::infinity();
    for (const auto& c : covs) best = std::min(best, std::sqrt(Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(c).eigenvalues().minCoeff()));
    return best;
  }
  double max_std() const {
    double best = 0;
    for (const auto& c : covs) best = std::max(best, std::sqrt(Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(c).eigenvalues().maxCoeff()));
    return best;
  }
};

// log p_t by the trapezoid rule over a regular grid of x₀. For a smooth integrand decaying like a
// Gaussian the rule converges geometrically: with grid step h ≤ w/3, w the narrowest width of
// p(x₀)·N(x; a x₀, s²) (≥ min(σ_min, s/a)/√2), the error is ~exp(−2π²w²/h²) ≤ e^{-80}; the grid
// spans the means ± 14 of the largest std, where the integrand is below e^{-98}. So the quadrature
// is exact to rounding (≈1e-14 relative).
class Quadrature {
 public:
  Quadrature(const Target& target, double a, double s) : s_(s) {
    const Index dim = target.means.rows();
    const double h = std::min(target.min_std(), s / a) / 3;
    const double margin = 14 * target.max_std();
    std::vector<Eigen::VectorXd> axes(static_cast<std::size_t>(dim));
    Index total = 1;
    for (Index i = 0; i < dim; ++i) {
      const double lo = target.means.row(i).minCoeff() - margin, hi = target.means.row(i).maxCoeff() + margin;
      const Index count = static_cast<Index>(std::ceil((hi - lo) / h)) + 1;
      axes[static_cast<std::size_t>(i)] = Eigen::VectorXd::LinSpaced(count, lo, lo + h * static_cast<double>(count - 1));
      total *= count;
    }
    grid_.resize(dim, total);
    for (Index g = 0; g < total; ++g) {
      Index rest = g;
      for (Index i = 0; i < dim; ++i) {
        const auto& axis = axes[static_cast<std::size_t>(i)];
        grid_(i, g) = axis[rest % axis.size()];
        rest /= axis.size();
      }
    }
    log_prior_ = target.log_density(grid_);
    log_cell_ = static_cast<double>(dim) * std::log(h);
    scaled_grid_ = a * grid_;
  }

  double log_pt(const Eigen::VectorXd& x) const {
    const double d = static_cast<double>(x.size());
    const Eigen::ArrayXd terms = log_prior_.array() - (scaled_grid_.colwise() - x).colwise().squaredNorm().transpose().array() /
                                                          (2 * s_ * s_);
    const double top = terms.maxCoeff();
    return top + std::log((terms - top).exp().sum()) + log_cell_ - 0.5 * d * std::log(2 * std::numbers::pi * s_ * s_);
  }

  // Central differences with δ = 1e-4: truncation δ²/6·|∂³ log p_t| ≲ 1e-9·O(10) for variances
  // ≥ 0.05, roundoff ≈ 1e-14/δ = 1e-10.
  Eigen::VectorXd score(const Eigen::VectorXd& x) const {
    constexpr double delta = 1e-4;
    Eigen::VectorXd out(x.size());
    for (Index i = 0; i < x.size(); ++i) {
      Eigen::VectorXd plus = x, minus = x;
      plus[i] += delta;
      minus[i] -= delta;
      out[i] = (log_pt(plus) - log_pt(minus)) / (2 * delta);
    }
    return out;
  }

 private:
  double s_;
  Eigen::MatrixXd grid_, scaled_grid_;
  Eigen::VectorXd log_prior_;
  double log_cell_ = 0;
};

// The score tolerance (relative to 1 + |score|): double is bounded by the finite differences
// above (≲ 1e-8); float by rounding the O(10) quadratic forms and responsibilities in float.
template <class S>
constexpr double kScoreTolerance = std::is_same_v<S, float> ? 2e-5 : 1e-7;
template <class S>
constexpr double kLogDensityTolerance = std::is_same_v<S, float> ? 2e-5 : 1e-10;

template <class S, class Energy, class Schedule>
void check_against_quadrature(const Energy& energy, const Target& target, const Schedule& schedule,
                              std::initializer_list<double> times, const Eigen::MatrixXd& unit_points) {
  const dqs::ExactScore exact;
  const Index dim = target.means.rows();
  for (double t : times) {
    const double a = schedule.alpha(t), s = schedule.sigma(t);
    INFO("t = " << t << ", a = " << a << ", s = " << s);
    const Quadrature quadrature(target, a, s);
    // Points spread over p_t: a·(mean of the means) + √(a²σ_max² + s²)·u.
    const Eigen::VectorXd centre = a * target.means.rowwise().mean();
    const double spread = std::sqrt(a * a * target.max_std() * target.max_std() + s * s);
    const Eigen::MatrixXd points = (spread * unit_points).colwise() + centre;
    const dqs::Matrix<S> x = points.cast<S>();
    dqs::Matrix<S> score(dim, x.cols());
    dqs::Vector<S> log_density(x.cols());
    const dqs::random::StreamKey key{};
    CHECK(exact.estimate(energy, schedule, x, t, key, score) == 0);
    CHECK(exact.log_density(energy, schedule, x, t, key, log_density) == 0);
    for (Index j = 0; j < x.cols(); ++j) {
      const Eigen::VectorXd point = x.col(j).template cast<double>();
      INFO("x = " << point.transpose());
      const Eigen::VectorXd truth = quadrature.score(point);
      INFO("exact score " << score.col(j).transpose() << ", quadrature " << truth.transpose());
      CHECK((score.col(j).template cast<double>() - truth).cwiseAbs().maxCoeff() <=
            kScoreTolerance<S> * (1 + truth.cwiseAbs().maxCoeff()));
      const double log_pt = quadrature.log_pt(point);
      CHECK(std::abs(static_cast<double>(log_density[j]) - log_pt) <= kLogDensityTolerance<S> * (1 + std::abs(log_pt)));
    }
  }
}

template <class S, class Energy>
void check_all_schedules(const Energy& energy, const Target& target, const Eigen::MatrixXd& unit_points) {
  // Times chosen so that s/a runs from ≈ 0.3 to ≈ 3 under each schedule.
  SECTION("VEGeometric") {
    check_against_quadrature<S>(energy, target, dqs::VEGeometric(0.05, 5.0), {0.4, 0.6, 0.8}, unit_points);
  }
  SECTION("VPLinear") { check_against_quadrature<S>(energy, target, dqs::VPLinear(0.1, 20.0), {0.1, 0.3, 0.5}, unit_points); }
  SECTION("VPCosine") { check_against_quadrature<S>(energy, target, dqs::VPCosine(), {0.2, 0.45, 0.7}, unit_points); }
}

Eigen::MatrixXd cov2(double xx, double xy, double yy) { return (Eigen::MatrixXd(2, 2) << xx, xy, xy, yy).finished(); }

}  // namespace

TEMPLATE_TEST_CASE("ExactScore matches quadrature in 1-D: Gaussian", "[score][exact]", float, double) {
  using S = TestType;
  const Target target{{1.0}, Eigen::MatrixXd::Constant(1, 1, 0.7), {Eigen::MatrixXd::Constant(1, 1, 1.3 * 1.3)}};
  const dqs::Gaussian<S> energy(Eigen::VectorXd::Constant(1, 0.7), Eigen::MatrixXd::Constant(1, 1, 1.69));
  const Eigen::MatrixXd unit = (Eigen::MatrixXd(1, 5) << -2.0, -0.7, 0.0, 0.4, 2.3).finished();
  check_all_schedules<S>(energy, target, unit);
}

TEMPLATE_TEST_CASE("ExactScore matches quadrature in 1-D: two-component mixture", "[score][exact]", float, double) {
  using S = TestType;
  const Target target{{0.3, 0.7},
                      (Eigen::MatrixXd(1, 2) << -2.0, 1.5).finished(),
                      {Eigen::MatrixXd::Constant(1, 1, 0.25), Eigen::MatrixXd::Constant(1, 1, 1.0)}};
  const dqs::GaussianMixture<S> energy(target.weights, target.means, target.covs);
  const Eigen::MatrixXd unit = (Eigen::MatrixXd(1, 6) << -2.5, -1.2, -0.4, 0.1, 0.9, 2.0).finished();
  check_all_schedules<S>(energy, target, unit);
}

TEMPLATE_TEST_CASE("ExactScore matches quadrature in 2-D: mixture with full covariances", "[score][exact]", float,
                   double) {
  using S = TestType;
  const Target target{{0.4, 0.6},
                      (Eigen::MatrixXd(2, 2) << -1.0, 1.5, 0.5, -0.5).finished(),
                      {cov2(1.0, 0.5, 0.6), cov2(0.4, -0.15, 0.3)}};
  const dqs::GaussianMixture<S> energy(target.weights, target.means, target.covs);
  const Eigen::MatrixXd unit = (Eigen::MatrixXd(2, 4) << -1.5, 0.2, 0.9, -0.3, 0.8, -1.1, 0.6, 0.1).finished();
  check_all_schedules<S>(energy, target, unit);
}

TEMPLATE_TEST_CASE("ExactScore at t = 0 is −∇E of the target", "[score][exact]", float, double) {
  using S = TestType;
  const dqs::GaussianMixture<S> energy({0.4, 0.6}, (Eigen::MatrixXd(2, 2) << -1.0, 1.5, 0.5, -0.5).finished(),
                                       {cov2(1.0, 0.5, 0.6), cov2(0.4, -0.15, 0.3)});
  dqs::Matrix<S> x(2, 3);
  x << S(-1), S(0.5), S(2), S(0.3), S(-0.2), S(1);
  dqs::Matrix<S> score(2, 3), grad(2, 3);
  dqs::Vector<S> values(3), log_density(3);
  energy.energy_and_gradient(x, values, grad);
  for (const auto& schedule : {dqs::VPLinear(), dqs::VPLinear(1.0, 2.0)}) {
    dqs::ExactScore{}.estimate(energy, schedule, x, 0.0, {}, score);
    CHECK((score + grad).cwiseAbs().maxCoeff() <= S(1e-5) * (1 + grad.cwiseAbs().maxCoeff()));
    dqs::ExactScore{}.log_density(energy, schedule, x, 0.0, {}, log_density);
    CHECK((log_density + values).cwiseAbs().maxCoeff() <= S(1e-5) * (1 + values.cwiseAbs().maxCoeff()));
  }
  dqs::ExactScore{}.estimate(energy, dqs::VEGeometric(0.01, 10.0), x, 0.0, {}, score);
  CHECK((score + grad).cwiseAbs().maxCoeff() <= S(1e-5) * (1 + grad.cwiseAbs().maxCoeff()));
}
