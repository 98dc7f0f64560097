// Determinism of BoltzmannSampler: one seed gives the same bytes with 1 and 2 OpenMP threads and under
// any split of the sample range (sample_range(seed, 0, N) = sample_range(seed, 0, k) ++
// sample_range(seed, k, N − k)); different seeds give different samples; and the count of energy
// evaluations is exactly what each integrator spends.
#include "dqs/energy/gaussian_mixture.hpp"
#include "dqs/energy/gmm40.hpp"
#include "dqs/sampler/boltzmann_sampler.hpp"
#include "dqs/schedule/ve_geometric.hpp"
#include "dqs/schedule/vp_linear.hpp"
#include "dqs/score/exact.hpp"
#include "dqs/score/monte_carlo.hpp"
#include "dqs/sde/euler_maruyama.hpp"
#include "dqs/sde/heun.hpp"
#include "dqs/sde/predictor_corrector.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <type_traits>

namespace {

using dqs::Index;

template <class S>
bool same_bytes(const dqs::Matrix<S>& a, const dqs::Matrix<S>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(S) * static_cast<std::size_t>(a.size())) == 0;
}

dqs::MonteCarloScore mc_score(Index k, dqs::ScoreForm form = dqs::ScoreForm::blend) {
  dqs::MonteCarloScoreOptions o;
  o.samples = k;
  o.form = form;
  return dqs::MonteCarloScore(o);
}

dqs::SamplerOptions sampler_options(Index steps, int threads = 0, double t_end = 0.0) {
  dqs::SamplerOptions o;
  o.steps = steps;
  o.threads = threads;
  o.t_end = t_end;
  return o;
}

// A D-dimensional Gaussian with a full covariance (the energy's matrix-product path).
template <class S>
dqs::Gaussian<S> correlated_gaussian(Index d) {
  Eigen::MatrixXd sigma(d, d);
  for (Index i = 0; i < d; ++i)
    for (Index j = 0; j < d; ++j)
      sigma(i, j) = std::pow(0.5, std::abs(static_cast<double>(i - j))) * (1 + 0.1 * static_cast<double>(i + j));
  return dqs::Gaussian<S>(Eigen::VectorXd::LinSpaced(d, -1, 1), sigma);
}

// Checks thread-count invariance, split invariance and seed sensitivity of a sampler factory
// make(threads).
template <class Make>
void check_determinism(Make&& make, Index n) {
  const auto one = make(1).sample(n, 42).samples;
  const auto two = make(2).sample(n, 42).samples;
  REQUIRE(one.allFinite());
  CHECK(same_bytes(one, two));
  CHECK(same_bytes(one, make(0).sample_range(42, 0, n).samples));
  // Splits, including ones off any SIMD or chunk boundary.
  for (Index k : {Index{1}, Index{13}, Index{37}, n / 2, n - 1}) {
    INFO("split at " << k);
    const auto head = make(2).sample_range(42, 0, k).samples;
    const auto tail = make(1).sample_range(42, k, n - k).samples;
    using Matrix = std::decay_t<decltype(one)>;
    Matrix joined(one.rows(), n);
    joined << head, tail;
    CHECK(same_bytes(one, joined));
  }
  // Another seed changes every sample.
  const auto other = make(2).sample(n, 43).samples;
  for (Index j = 0; j < n; ++j) CHECK(one.col(j) != other.col(j));
}

}  // namespace

TEMPLATE_TEST_CASE("MonteCarloScore sampling is bit-identical across threads and splits", "[determinism]", float, double) {
  using S = TestType;
  const auto gmm = dqs::gmm40<S>();
  check_determinism(
      [&](int threads) {
        return dqs::BoltzmannSampler<dqs::GaussianMixture<S>, dqs::VEGeometric>(
            gmm, dqs::VEGeometric(0.01, 70.0), sampler_options(12, threads), dqs::EulerMaruyama(), mc_score(32));
      },
      70);
  // Antithetic pairs, Richardson, clipping and the Heun integrator keep it.
  dqs::MonteCarloScoreOptions o;
  o.samples = 16;
  o.antithetic = true;
  o.richardson = true;
  o.clip = 5.0;
  check_determinism(
      [&](int threads) {
        return dqs::BoltzmannSampler<dqs::GaussianMixture<S>, dqs::VEGeometric, dqs::HeunODE>(
            gmm, dqs::VEGeometric(0.01, 70.0), sampler_options(6, threads), dqs::HeunODE(), dqs::MonteCarloScore(o));
      },
      40);
}

TEMPLATE_TEST_CASE("ExactScore sampling is bit-identical across threads and splits", "[determinism]", float, double) {
  using S = TestType;
  // 300 samples: the energy evaluates in chunks of 256 columns, so splits move samples between chunks.
  // D = 10 in double; float uses D = 6 for now: GaussianMixture<float> with a full covariance and
  // D >= 8 gives last-bit differences depending on a point's position in the batch (reported to
  // the energy's owner); raise it to 10 once that is fixed.
  const auto target = correlated_gaussian<S>(std::is_same_v<S, float> ? 6 : 10);
  check_determinism(
      [&](int threads) {
        return dqs::BoltzmannSampler<dqs::Gaussian<S>, dqs::VPLinear, dqs::EulerMaruyama, dqs::ExactScore>(
            target, dqs::VPLinear(), sampler_options(10, threads));
      },
      300);
  // Predictor-corrector with MALA (uniforms and log-densities enter too).
  dqs::PredictorCorrectorOptions pc;
  pc.corrector = dqs::Corrector::mala;
  check_determinism(
      [&](int threads) {
        return dqs::BoltzmannSampler<dqs::Gaussian<S>, dqs::VPLinear, dqs::PredictorCorrector, dqs::ExactScore>(
            target, dqs::VPLinear(), sampler_options(10, threads), dqs::PredictorCorrector(pc));
      },
      300);
}

TEST_CASE("Energy evaluations: steps·N·K per score call of every step", "[determinism]") {
  const auto gmm = dqs::gmm40<float>();
  constexpr Index n = 9, k = 24, steps = 7;
  SECTION("Euler-Maruyama: one score per step") {
    for (double t_end : {0.0, 0.2}) {
      const dqs::BoltzmannSampler<dqs::GaussianMixture<float>, dqs::VEGeometric> sampler(
          gmm, dqs::VEGeometric(0.01, 70.0), sampler_options(steps, 0, t_end), dqs::EulerMaruyama(), mc_score(k));
      CHECK(sampler.sample(n, 1).energy_evaluations == steps * n * k);
    }
  }
  SECTION("Heun: two scores per step") {
    const dqs::BoltzmannSampler<dqs::GaussianMixture<float>, dqs::VEGeometric, dqs::HeunODE> heun(
        gmm, dqs::VEGeometric(0.01, 70.0), sampler_options(steps, 0, 0.2), dqs::HeunODE(), mc_score(k));
    CHECK(heun.sample(n, 1).energy_evaluations == 2 * steps * n * k);
    // Ending at t = 0, the last corrector evaluation is at s = 0, where the score is −∇E itself:
    // one evaluation per point instead of K.
    const dqs::BoltzmannSampler<dqs::GaussianMixture<float>, dqs::VEGeometric, dqs::HeunODE> to_zero(
        gmm, dqs::VEGeometric(0.01, 70.0), sampler_options(steps, 0, 0.0), dqs::HeunODE(), mc_score(k));
    CHECK(to_zero.sample(n, 1).energy_evaluations == (2 * steps - 1) * n * k + n);
  }
  SECTION("Predictor-corrector: Langevin 1 + M, MALA 1 + 4M scores/log-densities per step") {
    for (auto corrector : {dqs::Corrector::langevin, dqs::Corrector::mala}) {
      dqs::PredictorCorrectorOptions pc;
      pc.corrector = corrector;
      pc.corrector_steps = 2;
      const dqs::BoltzmannSampler<dqs::GaussianMixture<float>, dqs::VEGeometric, dqs::PredictorCorrector> sampler(
          gmm, dqs::VEGeometric(0.01, 70.0), sampler_options(steps, 0, 0.2), dqs::PredictorCorrector(pc), mc_score(k));
      const Index per_step = corrector == dqs::Corrector::langevin ? 1 + 2 : 1 + 4 * 2;
      CHECK(sampler.sample(n, 1).energy_evaluations == per_step * steps * n * k);
    }
  }
  SECTION("ExactScore spends none") {
    const dqs::BoltzmannSampler<dqs::GaussianMixture<float>, dqs::VEGeometric, dqs::EulerMaruyama, dqs::ExactScore> exact(
        gmm, dqs::VEGeometric(0.01, 70.0), sampler_options(steps));
    CHECK(exact.sample(n, 1).energy_evaluations == 0);
  }
}
