// AutodiffEnergy: energies written once on the tape against hand-written gradients (a Gaussian
// quadratic form, a 2-D double well, a Lennard-Jones-like pair energy) and against the library's own
// hand-coded models (DoubleWell, LennardJones, GaussianMixture); thread safety, tape reuse, checks.
#include "dqs/energy/autodiff_energy.hpp"
#include "dqs/energy/double_well.hpp"
#include "dqs/energy/gaussian_mixture.hpp"
#include "dqs/energy/lennard_jones.hpp"
#include "dqs/random/philox.hpp"

#include <Eigen/LU>
#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>
#include <vector>

namespace {

using dqs::Index;
using dqs::Matrix;
using dqs::Vector;
namespace ad = dqs::ad;

template <class S>
Matrix<S> normal_batch(Index rows, Index cols, std::uint64_t seed) {
  Matrix<S> m(rows, cols);
  dqs::random::fill_normal<S>(dqs::random::StreamKey{seed}, m);
  return m;
}

// Particles near a cubic/square lattice of spacing `spacing` plus noise of std `jitter`: no overlaps.
template <class S>
Matrix<S> lattice_batch(Index particles, Index spatial_dim, Index n, double spacing, double jitter,
                        std::uint64_t seed) {
  Matrix<S> x = normal_batch<S>(particles * spatial_dim, n, seed) * S(jitter);
  const Index side = static_cast<Index>(std::ceil(std::pow(static_cast<double>(particles), 1.0 / spatial_dim)));
  for (Index p = 0; p < particles; ++p) {
    Index rest = p;
    for (Index d = 0; d < spatial_dim; ++d) {
      x.row(p * spatial_dim + d).array() += S(spacing * static_cast<double>(rest % side));
      rest /= side;
    }
  }
  return x;
}

// max |a − b| / max(1, |b|) entrywise.
template <class A, class B>
double mixed_error(const A& a, const B& b) {
  return ((a - b).array().abs() / b.array().abs().max(1.0)).maxCoeff();
}

template <class S, class E>
std::pair<Vector<S>, Matrix<S>> evaluate(const E& energy, const Matrix<S>& x) {
  Vector<S> values(x.cols());
  Matrix<S> grad(x.rows(), x.cols());
  energy.energy_and_gradient(x, values, grad);
  return {values, grad};
}

// Rounding tolerances: ~5 operations per term in double (≈ 1.1e-16 each) and float (≈ 6e-8 each),
// amplified by cancellation between pair terms in the gradients (factor ≲ 100): ≈ 6e-14 and 3e-5.
// (Observed on LJ-13: 6e-15 and 1.1e-5.)
template <class S>
constexpr double tolerance = std::is_same_v<S, float> ? 1e-4 : 1e-13;

}  // namespace

TEMPLATE_TEST_CASE("AutodiffEnergy: Gaussian quadratic form", "[energy][ad]", float, double) {
  using S = TestType;
  // E(x) = ½(x − μ)ᵀA(x − μ), ∇E = A(x − μ).
  Matrix<S> a(3, 3);
  a << 2.0, 0.5, -0.3, 0.5, 1.0, 0.2, -0.3, 0.2, 3.0;
  Matrix<S> mu(3, 1);
  mu << 1.0, -2.0, 0.5;
  const auto energy = dqs::make_autodiff_energy<S>(3, [a, mu](auto& tape, auto x) {
    const auto d = x - tape.constant(mu);  // μ broadcast over the columns
    return ad::colwise_sum(d * ad::matmul(tape.constant(a), d)) * S(0.5);
  });
  static_assert(dqs::DifferentiableEnergy<decltype(energy)>);
  const Matrix<S> x = normal_batch<S>(3, 50, 1) * S(2);
  const auto [values, grad] = evaluate<S>(energy, x);
  const Matrix<S> d = x.colwise() - mu.col(0);
  const Vector<S> expected_values = (S(0.5) * (d.array() * (a * d).array()).colwise().sum()).transpose();
  CHECK(mixed_error(values, expected_values) < tolerance<S>);
  CHECK(mixed_error(grad, Matrix<S>(a * d)) < tolerance<S>);
  // energy() alone gives the same values.
  Vector<S> only(50);
  energy.energy(x, only);
  CHECK(only == values);
}

TEMPLATE_TEST_CASE("AutodiffEnergy: 2-D double well", "[energy][ad]", float, double) {
  using S = TestType;
  // E = (x₁² − 1)² + ½x₂², ∇E = (4x₁(x₁² − 1), x₂); the energy written as f(x) (no tape argument).
  const auto energy = dqs::make_autodiff_energy<S>(2, [](auto x) {
    const auto x1 = ad::slice_rows(x, 0, 1), x2 = ad::slice_rows(x, 1, 1);
    return ad::square(ad::square(x1) - S(1)) + S(0.5) * ad::square(x2);
  });
  const Matrix<S> x = normal_batch<S>(2, 64, 2) * S(1.5);
  const auto [values, grad] = evaluate<S>(energy, x);
  for (Index j = 0; j < x.cols(); ++j) {
    const S x1 = x(0, j), x2 = x(1, j);
    CHECK(std::abs(values[j] - ((x1 * x1 - 1) * (x1 * x1 - 1) + S(0.5) * x2 * x2)) <=
          tolerance<S> * std::max<S>(1, std::abs(values[j])));
    CHECK(std::abs(grad(0, j) - 4 * x1 * (x1 * x1 - 1)) <= tolerance<S> * std::max<S>(1, std::abs(grad(0, j))));
    CHECK(std::abs(grad(1, j) - x2) <= tolerance<S>);
  }
}

TEMPLATE_TEST_CASE("AutodiffEnergy: Lennard-Jones-like pair energy", "[energy][ad]", float, double) {
  using S = TestType;
  // E = Σ_{p<q} 4ε[(σ²/r²)⁶ − (σ²/r²)³], 5 particles in 3-D; ∇_p E = Σ_q φ′(r²)·2(x_p − x_q),
  // φ′(s) = 4ε(−6σ¹²/s⁷ + 3σ⁶/s⁴).
  const S eps = 0.8, sigma = 1.1;
  const auto energy = dqs::make_autodiff_energy<S>(15, [eps, sigma](auto&, auto x) {
    const auto inv3 = ad::pow(ad::pairwise_squared_distances(x, 3) * (S(1) / (sigma * sigma)), S(-3));
    return ad::colwise_sum((ad::square(inv3) - inv3) * (4 * eps));
  });
  const Matrix<S> x = lattice_batch<S>(5, 3, 20, 1.3, 0.05, 3);
  const auto [values, grad] = evaluate<S>(energy, x);
  Vector<double> expected_values = Vector<double>::Zero(20);
  Matrix<double> expected_grad = Matrix<double>::Zero(15, 20);
  for (Index j = 0; j < 20; ++j)
    for (Index p = 0; p < 5; ++p)
      for (Index q = p + 1; q < 5; ++q) {
        const Vector<double> diff = (x.col(j).segment(3 * p, 3) - x.col(j).segment(3 * q, 3)).template cast<double>();
        const double s = diff.squaredNorm(), s6 = std::pow(double(sigma), 6);
        expected_values[j] += 4 * eps * (s6 * s6 / std::pow(s, 6) - s6 / std::pow(s, 3));
        const double slope = 4 * eps * (-6 * s6 * s6 / std::pow(s, 7) + 3 * s6 / std::pow(s, 4));
        expected_grad.col(j).segment(3 * p, 3) += 2 * slope * diff;
        expected_grad.col(j).segment(3 * q, 3) -= 2 * slope * diff;
      }
  CHECK(mixed_error(values.template cast<double>(), expected_values) < tolerance<S>);
  CHECK(mixed_error(grad.template cast<double>(), expected_grad) < tolerance<S>);
}

TEMPLATE_TEST_CASE("AutodiffEnergy: DW-4 and LJ-13 written on the tape match the hand-coded models", "[energy][ad]",
                   float, double) {
  using S = TestType;
  // DoubleWell: Σ_{i<j} a(d_ij − d0)⁴ + b(d_ij − d0)², 4 particles in 2-D.
  const dqs::DoubleWell<S> dw;
  const auto dw_ad = dqs::make_autodiff_energy<S>(8, [](auto&, auto x) {
    const auto t = ad::pairwise_distances(x, 2) - S(4);
    return ad::colwise_sum(S(0.9) * ad::square(ad::square(t)) + S(-4) * ad::square(t));
  });
  const Matrix<S> x_dw = lattice_batch<S>(4, 2, 32, 3.0, 0.6, 4);
  const auto [v_dw, g_dw] = evaluate<S>(dw, x_dw);
  const auto [v_dw_ad, g_dw_ad] = evaluate<S>(dw_ad, x_dw);
  INFO("DW-4 errors: values " << mixed_error(v_dw_ad, v_dw) << ", gradients " << mixed_error(g_dw_ad, g_dw));
  CHECK(mixed_error(v_dw_ad, v_dw) < tolerance<S>);
  CHECK(mixed_error(g_dw_ad, g_dw) < tolerance<S>);

  // LennardJones: Σ over ordered pairs ε[(r_m/r)¹² − 2(r_m/r)⁶] with r² = ‖·‖² + 1e-6, plus ½c Σ‖x_i − x̄‖².
  const dqs::LennardJones<S> lj;
  const auto lj_ad = dqs::make_autodiff_energy<S>(39, [](auto& tape, auto x) {
    const auto u = S(1) / (ad::pairwise_squared_distances(x, 3) + S(1e-6));  // (r_m/r)², r_m = 1
    const auto u3 = ad::pow(u, S(3));
    auto energy = ad::colwise_sum(S(2) * (ad::square(u3) - S(2) * u3));  // both orders of each pair
    auto centre = ad::slice_rows(x, 0, 3);
    for (Index p = 1; p < 13; ++p) centre = centre + ad::slice_rows(x, 3 * p, 3);
    centre = centre * S(1.0 / 13);
    for (Index p = 0; p < 13; ++p)
      energy = energy + S(0.5) * ad::colwise_squared_norm(ad::slice_rows(x, 3 * p, 3) - centre);
    (void)tape;
    return energy;
  });
  const Matrix<S> x_lj = lattice_batch<S>(13, 3, 16, 1.12, 0.04, 5);
  const auto [v_lj, g_lj] = evaluate<S>(lj, x_lj);
  const auto [v_lj_ad, g_lj_ad] = evaluate<S>(lj_ad, x_lj);
  INFO("LJ-13 errors: values " << mixed_error(v_lj_ad, v_lj) << ", gradients " << mixed_error(g_lj_ad, g_lj));
  CHECK(mixed_error(v_lj_ad, v_lj) < tolerance<S>);
  CHECK(mixed_error(g_lj_ad, g_lj) < tolerance<S>);
}

TEST_CASE("AutodiffEnergy: Gaussian mixture through log-sum-exp matches GaussianMixture", "[energy][ad]") {
  // E = −log Σ_c w_c N(x; μ_c, Σ_c) = −logsumexp_c(log w_c − ½log det 2πΣ_c − ½(x − μ_c)ᵀΣ_c⁻¹(x − μ_c)).
  Eigen::MatrixXd means(2, 3);
  means << -2, 0, 3, 1, -1, 2;
  std::vector<Eigen::MatrixXd> covs(3, Eigen::MatrixXd::Identity(2, 2));
  covs[1] << 2.0, 0.3, 0.3, 0.5;
  covs[2] *= 0.7;
  const std::vector<double> weights = {0.2, 0.5, 0.3};
  const dqs::GaussianMixture<double> gmm(weights, means, covs);
  const auto gmm_ad = dqs::make_autodiff_energy<double>(2, [&](auto& tape, auto x) {
    std::vector<ad::Var<double>> terms;
    for (std::size_t c = 0; c < 3; ++c) {
      const Eigen::MatrixXd precision = covs[c].inverse();
      const double constant = std::log(weights[c]) - 0.5 * std::log((2 * std::numbers::pi * covs[c]).determinant());
      const auto d = x - tape.constant(means.col(static_cast<Index>(c)));
      terms.push_back(constant - 0.5 * ad::colwise_sum(d * ad::matmul(tape.constant(precision), d)));
    }
    return -ad::colwise_logsumexp(ad::concat_rows(std::span<const ad::Var<double>>(terms)));
  });
  const Matrix<double> x = normal_batch<double>(2, 40, 6) * 3.0;
  const auto [v, g] = evaluate<double>(gmm, x);
  const auto [v_ad, g_ad] = evaluate<double>(gmm_ad, x);
  CHECK(mixed_error(v_ad, v) < 1e-11);
  CHECK(mixed_error(g_ad, g) < 1e-11);
}

TEST_CASE("AutodiffEnergy: per-sample gradients equal central finite differences", "[energy][ad]") {
  // Checks the one-backward-pass claim directly: each column's gradient from the summed backward is
  // the finite-difference gradient of that column's energy alone.
  const auto energy = dqs::make_autodiff_energy<double>(4, [](auto&, auto x) {
    return ad::colwise_logsumexp(ad::sin(x) * 2.0) + ad::colwise_squared_norm(ad::tanh(x));
  });
  const Matrix<double> x = normal_batch<double>(4, 6, 7);
  const auto [values, grad] = evaluate<double>(energy, x);
  Vector<double> one(1), up(1), down(1);
  for (Index j = 0; j < x.cols(); ++j)
    for (Index i = 0; i < 4; ++i) {
      Matrix<double> col = x.col(j);
      col(i, 0) += 1e-6;
      energy.energy(col, up);
      col(i, 0) -= 2e-6;
      energy.energy(col, down);
      // Central differences with h = 1e-6: error ≲ h²|E‴| + ε|E|/h ≈ 1e-10.
      CHECK(std::abs(grad(i, j) - (up[0] - down[0]) / 2e-6) < 1e-8);
    }
}

TEST_CASE("AutodiffEnergy: thread-safe, and a reused tape does not grow", "[energy][ad]") {
  const auto energy = dqs::make_autodiff_energy<double>(6, [](auto&, auto x) {
    return ad::colwise_sum(ad::softplus(x) * ad::cos(x));
  });
  const Matrix<double> x = normal_batch<double>(6, 400, 8);
  const auto [values, grad] = evaluate<double>(energy, x);
  // Several threads evaluating concurrently (each call on its own tape) reproduce the serial result
  // bit for bit.
  std::vector<Vector<double>> values_par(4, Vector<double>(400));
  std::vector<Matrix<double>> grad_par(4, Matrix<double>(6, 400));
#pragma omp parallel for
  for (int k = 0; k < 4; ++k) energy.energy_and_gradient(x, values_par[k], grad_par[k]);
  for (int k = 0; k < 4; ++k) {
    CHECK(values_par[k] == values);
    CHECK(grad_par[k] == grad);
  }
  // A different split of the batch agrees to rounding only: Eigen evaluates exp/sin/cos with packet
  // code on aligned blocks and scalar code on the tails, which round differently (~1 ulp).
  Vector<double> values_split(400);
  Matrix<double> grad_split(6, 400);
  for (int block = 0; block < 8; ++block)
    energy.energy_and_gradient(x.middleCols(50 * block, 50), values_split.segment(50 * block, 50),
                               grad_split.middleCols(50 * block, 50));
  CHECK(mixed_error(values_split, values) < 1e-14);
  CHECK(mixed_error(grad_split, grad) < 1e-14);

  ad::Tape<double> tape;
  Vector<double> v(400);
  Matrix<double> g(6, 400);
  std::size_t capacity = 0;
  for (int rep = 0; rep < 5; ++rep) {
    energy.energy_and_gradient(x, v, g, tape);
    if (rep == 1) capacity = tape.arena_capacity();
    if (rep > 1) CHECK(tape.arena_capacity() == capacity);
  }
  CHECK(g == grad);
}

TEST_CASE("AutodiffEnergy: bad input is rejected", "[energy][ad]") {
  const auto energy = dqs::make_autodiff_energy<double>(3, [](auto&, auto x) { return ad::colwise_sum(x); });
  Vector<double> values(4);
  Matrix<double> grad(3, 4);
  CHECK_THROWS_AS(energy.energy(Matrix<double>::Zero(2, 4), values), std::invalid_argument);
  CHECK_THROWS_AS(energy.energy(Matrix<double>::Zero(3, 5), values), std::invalid_argument);
  Matrix<double> wrong_grad(3, 3);
  CHECK_THROWS_AS(energy.energy_and_gradient(Matrix<double>::Zero(3, 4), values, wrong_grad), std::invalid_argument);
  const auto not_a_row = dqs::make_autodiff_energy<double>(3, [](auto&, auto x) { return ad::exp(x); });
  CHECK_THROWS_AS(not_a_row.energy(Matrix<double>::Zero(3, 4), values), std::invalid_argument);
  CHECK_THROWS_AS(dqs::make_autodiff_energy<double>(0, [](auto&, auto x) { return x; }), std::invalid_argument);
  // An energy that ignores x has a zero gradient.
  const auto constant = dqs::make_autodiff_energy<double>(3, [](auto& tape, auto x) {
    return tape.constant(Matrix<double>::Constant(1, x.cols(), 2.0));
  });
  constant.energy_and_gradient(Matrix<double>::Ones(3, 4), values, grad);
  CHECK(values.isConstant(2.0));
  CHECK(grad.isZero(0));
}
