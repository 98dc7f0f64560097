// Tests for the Ancestral integrator (sde/ancestral.hpp). With ExactScore on an isotropic Gaussian target
// N(μ, τ²I) the score is linear, so every step maps Gaussians to Gaussians and the chain's law is known in closed
// form; the tests compare sample moments with it (chi-square tolerances), check the one-step variance shortfall
// quoted in the header (and in rl/dqs_policy.hpp), show the integrator landing on a sharp mode where
// Euler–Maruyama overshoots, and check determinism, evaluation counts and option validation.
#include "dqs/energy/gaussian_mixture.hpp"
#include "dqs/energy/gmm40.hpp"
#include "dqs/random/philox.hpp"
#include "dqs/sampler/boltzmann_sampler.hpp"
#include "dqs/schedule/ve_geometric.hpp"
#include "dqs/schedule/vp_cosine.hpp"
#include "dqs/schedule/vp_linear.hpp"
#include "dqs/score/exact.hpp"
#include "dqs/score/monte_carlo.hpp"
#include "dqs/sde/ancestral.hpp"
#include "dqs/sde/euler_maruyama.hpp"

#include <catch2/catch.hpp>

#include <Eigen/Dense>

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using dqs::Index;

static_assert(dqs::IntegratorOptions<dqs::Ancestral>);

// Law of one coordinate (all coordinates of an isotropic chain share the variance).
struct Law {
  Eigen::VectorXd mean;
  double var = 0;
};

// The exact law of the Ancestral chain with ExactScore on N(μ, τ²I), written independently of the header's
// coefficient formula, in DDIM's form x' = a_{i+1}·x̂₀ + k·ε̂ + σ_η·z with x̂₀ = (x + s_i²S)/a_i, ε̂ = −s_i·S,
// σ_η² = η²·s_{i+1}²β̄/s_i², β̄ = s_i² − (a_i/a_{i+1})²s_{i+1}², k = √(s_{i+1}² − σ_η²). With S = p·x + q,
// p = −1/V_i, q = a_iμ/V_i, V_i = a_i²τ² + s_i², this is x' = A·x + B + σ_η·z: m ← A·m + B, v ← A²·v + σ_η²,
// from the sampler's prior N(0, prior_std²) on the sampler's grid t_n = 1 − n(1 − t_end)/steps.
template <class Schedule>
Law chain_law(const Schedule& sch, const Eigen::VectorXd& mu, double tau2, Index steps, double eta,
              double t_end = 0.0) {
  Law law{Eigen::VectorXd::Zero(mu.size()), sch.prior_std() * sch.prior_std()};
  const double span = 1 - t_end;
  for (Index n = 0; n < steps; ++n) {
    const double t = 1 - span * static_cast<double>(n) / static_cast<double>(steps);
    const double t_next = std::max(1 - span * static_cast<double>(n + 1) / static_cast<double>(steps), 0.0);
    const double a = sch.alpha(t), a_next = sch.alpha(t_next);
    const double v = sch.sigma(t) * sch.sigma(t), v_next = sch.sigma(t_next) * sch.sigma(t_next);
    const double ratio = a / a_next;
    const double bbar = v - ratio * ratio * v_next;
    const double noise_var = eta * eta * v_next * bbar / v;
    const double k = std::sqrt(v_next - noise_var);
    const double big_v = a * a * tau2 + v;
    const double p = -1 / big_v;
    const double A = a_next * (1 + v * p) / a - k * std::sqrt(v) * p;
    const Eigen::VectorXd q = a * mu / big_v;
    const Eigen::VectorXd B = (a_next * v / a - k * std::sqrt(v)) * q;
    law.mean = A * law.mean + B;
    law.var = A * A * law.var + noise_var;
  }
  return law;
}

// Sample mean per coordinate and the variance pooled over coordinates (about each coordinate's sample mean),
// in double.
template <class S>
Law moments(const dqs::Matrix<S>& samples) {
  const Eigen::MatrixXd x = samples.template cast<double>();
  const Eigen::VectorXd mean = x.rowwise().mean();
  const double ss = (x.colwise() - mean).squaredNorm();
  return {mean, ss / static_cast<double>(x.rows() * (x.cols() - 1))};
}

// Sample moments of N draws (D coordinates) of N(m, v·I) against (m, v). Mean: sd √(v/N) per coordinate.
// Variance: D(N − 1)·v̂/v ~ χ²_{D(N−1)}, whose sd is √(2D(N − 1)), so v̂/v has sd √(2/(D(N − 1))).
// Tolerance 5 sd, plus `extra` for a known deterministic offset (0 against the exact law).
void check_law(const Law& sample, const Law& law, Index dim, Index n, double extra_mean = 0, double extra_var = 0) {
  const double count = static_cast<double>(n);
  for (Index i = 0; i < dim; ++i) {
    INFO("mean[" << i << "] = " << sample.mean[i] << ", expected " << law.mean[i]);
    CHECK(std::abs(sample.mean[i] - law.mean[i]) <= 5 * std::sqrt(law.var / count) + extra_mean);
  }
  const double rel_sd = std::sqrt(2 / (static_cast<double>(dim) * (count - 1)));
  INFO("variance " << sample.var << ", expected " << law.var << " (relative sd " << rel_sd << ")");
  CHECK(std::abs(sample.var - law.var) <= 5 * rel_sd * law.var + extra_var);
}

template <class S>
dqs::Gaussian<S> isotropic(const Eigen::VectorXd& mu, double tau2) {
  return dqs::Gaussian<S>(mu, tau2 * Eigen::MatrixXd::Identity(mu.size(), mu.size()));
}

dqs::SamplerOptions steps_options(Index steps, int threads = 0) {
  dqs::SamplerOptions o;
  o.steps = steps;
  o.threads = threads;
  return o;
}

template <class S, class Schedule, class Integrator>
dqs::Matrix<S> sample_exact_score(const Schedule& sch, const Eigen::VectorXd& mu, double tau2, Index steps,
                                  Integrator integ, Index n, std::uint64_t seed) {
  const dqs::BoltzmannSampler<dqs::Gaussian<S>, Schedule, Integrator, dqs::ExactScore> sampler(
      isotropic<S>(mu, tau2), sch, steps_options(steps), integ);
  const auto result = sampler.sample(n, seed);
  CHECK(result.energy_evaluations == 0);
  REQUIRE(result.samples.allFinite());
  return result.samples;
}

// A step context for driving one integrator step by hand: ExactScore scores, normals keyed like the sampler's.
template <class S, class Schedule>
class OneStepContext {
 public:
  using Scalar = S;
  static constexpr bool has_log_density = false;
  OneStepContext(const dqs::Gaussian<S>& target, const Schedule& sch, std::uint64_t seed)
      : target_(target), sch_(sch), key_{seed, 0, 1, dqs::random::Purpose::user, 0} {}
  const Schedule& schedule() const { return sch_; }
  void score(dqs::ConstBatchRef<S> x, double t, dqs::BatchRef<S> out, std::uint32_t) {
    dqs::ExactScore{}.estimate(target_, sch_, x, t, key_, out);
  }
  void normal(dqs::BatchRef<S> out, std::uint32_t draw) {
    dqs::random::fill_normal<S>(key_.with(dqs::random::Purpose::diffusion, draw), out);
  }
  void uniform(dqs::ValuesRef<S>, std::uint32_t) {}

 private:
  const dqs::Gaussian<S>& target_;
  const Schedule& sch_;
  dqs::random::StreamKey key_;
};
static_assert(dqs::StepContext<OneStepContext<double, dqs::VEGeometric>>);

}  // namespace

// From the exact marginal p_{t_i} = N(a_iμ, V_i I), one step must give mean a_{i+1}μ exactly (Tweedie across one
// level) and variance V_{i+1} minus the shortfall derived in the header: β̄²a_{i+1}²τ²/(s_i²V_i) for η = 1 (VE:
// τ²(σ_i² − σ_{i+1}²)²/(σ_i²(τ² + σ_i²)), as rl/dqs_policy.hpp states), τ²(a_{i+1}s_i − a_i s_{i+1})²/V_i for η = 0.
// The steps are long (t 0.6 → 0.3) so that the shortfall is many sd wide: a wrong formula cannot pass.
TEMPLATE_TEST_CASE("Ancestral: one step from the exact marginal has the derived mean and variance shortfall",
                   "[ancestral]", float, double) {
  using S = TestType;
  constexpr Index n = 20000, dim = 2;
  const Eigen::VectorXd mu = (Eigen::VectorXd(dim) << 0.3, -0.2).finished();
  const double t = 0.6, dt = 0.3;
  auto check_one_step = [&](const auto& sch, double tau2, double eta) {
    const double a = sch.alpha(t), a_next = sch.alpha(t - dt);
    const double v = sch.sigma(t) * sch.sigma(t), v_next = sch.sigma(t - dt) * sch.sigma(t - dt);
    const double big_v = a * a * tau2 + v, big_v_next = a_next * a_next * tau2 + v_next;
    const double ratio = a / a_next, bbar = v - ratio * ratio * v_next;
    const double shortfall = eta == 1 ? bbar * bbar * a_next * a_next * tau2 / (v * big_v)
                                      : tau2 * std::pow(a_next * std::sqrt(v) - a * std::sqrt(v_next), 2) / big_v;
    const Law law{a_next * mu, big_v_next - shortfall};
    const double rel_sd = std::sqrt(2.0 / (dim * (n - 1.0)));
    INFO("eta " << eta << ": V_{i+1} = " << big_v_next << ", shortfall " << shortfall);
    REQUIRE(shortfall >= 3 * 5 * rel_sd * law.var);  // a claim of no shortfall would fail by ≥ 3 tolerances

    dqs::Matrix<S> x(dim, n);
    dqs::random::fill_normal<S>(dqs::random::StreamKey{7, 0, 0, dqs::random::Purpose::user, 0}, x);
    x = (x * static_cast<S>(std::sqrt(big_v))).colwise() + (a * mu).template cast<S>();
    const auto target = isotropic<S>(mu, tau2);
    OneStepContext<S, std::decay_t<decltype(sch)>> ctx(target, sch, 11);
    dqs::Ancestral(eta).step(ctx, x, t, dt);
    check_law(moments(x), law, dim, n);
  };
  SECTION("VE geometric") {
    for (double eta : {1.0, 0.0}) check_one_step(dqs::VEGeometric(0.01, 2.0), 0.04, eta);
  }
  SECTION("VP linear") {
    for (double eta : {1.0, 0.0}) check_one_step(dqs::VPLinear(), 1.0, eta);
  }
}

// The sharp target: N(μ, τ²I) with τ = 1e-4, VE σ ∈ [1e-3, 3], 10 and 5 steps. Euler–Maruyama multiplies the
// distance to the mode by f_n = 1 − g²(t_n)·dt/(τ² + σ(t_n)²) ≈ 1 − 2 ln(3000)/steps·(1 + σ_min²/σ²) per step:
// ≈ −0.6 … −1.0 at 10 steps (every step jumps past the mode, and the noise g√dt·z, ≈ 1.26·σ_t, is only partly
// removed), ≈ −2.2 at 5 steps (oscillating growth). Ancestral multiplies it by V_{i+1}/V_i ∈ (0, 1) and its last
// step (σ_{i+1} = 0) is Tweedie's denoiser, so it lands within τ of the mode. Both chains are linear-Gaussian
// here; the sample variances are checked against their exact laws, then the landing statements.
TEMPLATE_TEST_CASE("Ancestral lands on a sharp mode in few steps where Euler-Maruyama overshoots", "[ancestral]", float,
                   double) {
  using S = TestType;
  constexpr Index n = 2000, dim = 2;
  const double tau = 1e-4, tau2 = tau * tau;
  const Eigen::VectorXd mu = (Eigen::VectorXd(dim) << 1.0, -2.0).finished();
  const dqs::VEGeometric sch(1e-3, 3.0);
  for (Index steps : {Index{10}, Index{5}}) {
    INFO(steps << " steps");
    // Euler–Maruyama's per-step factors and its exact variance recursion v ← f²v + g²dt (drift 0 on VE).
    double em_var = sch.prior_std() * sch.prior_std(), max_factor = -1e300, min_factor = 1e300;
    for (Index k = 0; k < steps; ++k) {
      const double t = 1 - static_cast<double>(k) / static_cast<double>(steps), dt = 1.0 / static_cast<double>(steps);
      const double f = 1 - sch.diffusion_sq(t) * dt / (tau2 + sch.sigma(t) * sch.sigma(t));
      max_factor = std::max(max_factor, f);
      min_factor = std::min(min_factor, f);
      em_var = f * f * em_var + sch.diffusion_sq(t) * dt;
    }
    INFO("Euler-Maruyama factors in [" << min_factor << ", " << max_factor << "], final variance " << em_var);
    REQUIRE(max_factor < 0);                        // every Euler–Maruyama step overshoots the mode
    if (steps == 5) REQUIRE(max_factor < -1);       // ... and grows the distance to it
    const auto em = sample_exact_score<S>(sch, mu, tau2, steps, dqs::EulerMaruyama(), n, 5);
    const Eigen::MatrixXd em_x = em.template cast<double>();
    const double em_sample_var = (em_x.colwise() - em_x.rowwise().mean()).squaredNorm() / (dim * (n - 1.0));
    CHECK(std::abs(em_sample_var / em_var - 1) <= 5 * std::sqrt(2 / (dim * (n - 1.0))));
    const double em_rms = std::sqrt((em_x.colwise() - mu).squaredNorm() / n);
    CHECK(em_rms > 100 * tau);  // lands ≈ 1000 τ (10 steps) or ≈ 2·10⁶ τ (5 steps) from the mode
    if (steps == 5) CHECK(em_rms > sch.prior_std());  // ended farther out than it started

    const auto anc = sample_exact_score<S>(sch, mu, tau2, steps, dqs::Ancestral(), n, 5);
    const Eigen::MatrixXd anc_x = anc.template cast<double>();
    const double anc_rms = std::sqrt((anc_x.colwise() - mu).squaredNorm() / n);
    INFO("RMS distance to the mode: Euler-Maruyama " << em_rms << ", Ancestral " << anc_rms);
    CHECK(anc_rms < tau);
    // Its law: the variance is far below τ² at so few steps (the shortfall), the mean is μ up to the prior's
    // mismatch. In float the coordinates near |μ| = 2 carry rounding of ulp(2)/2 = 1.2e-7 per operation; a few
    // such roundings per step, against an sd of ≈ 5e-6, are allowed in the mean.
    const Law law = chain_law(sch, mu, tau2, steps, 1.0);
    const double ulp_allowance = std::is_same_v<S, float> ? 20 * 1.2e-7 : 0.0;
    check_law(moments(anc), law, dim, n, ulp_allowance);
  }
}

// Isotropic Gaussian, VE, 10 steps: the sample moments follow the chain's exact law, for the ancestral step and
// DDIM. The mean does not depend on the step count at all: the per-step factor on the distance to a_tμ is
// α·V_{i+1}/V_i (η = 1), which telescopes to (a_1/a_end)·V_end/V_1, so the only mean error is the prior's
// (N(0, s_1²) instead of p_1 = N(a_1μ, V_1)): −μ·τ²/(τ² + s_1²) on VE, the same at 10 or 640 steps. The variance
// is short by the accumulated per-step shortfall, many sd wide at 10 steps.
TEMPLATE_TEST_CASE("Ancestral on an isotropic Gaussian follows its derived law", "[ancestral]", float, double) {
  using S = TestType;
  constexpr Index n = 20000, dim = 2, steps = 10;
  const double tau2 = 0.25;
  const Eigen::VectorXd mu = (Eigen::VectorXd(dim) << 0.5, -1.0).finished();
  const dqs::VEGeometric sch(1e-3, 3.0);
  const double s1 = sch.sigma(1.0);
  const Eigen::VectorXd telescoped = mu * (1 - tau2 / (tau2 + s1 * s1));
  for (Index k : {Index{10}, Index{640}}) {
    const Law law = chain_law(sch, mu, tau2, k, 1.0);
    CHECK((law.mean - telescoped).norm() <= 1e-12);
  }
  const double rel_sd = std::sqrt(2 / (dim * (n - 1.0)));
  for (double eta : {1.0, 0.0, 0.5}) {
    INFO("eta " << eta);
    const Law law = chain_law(sch, mu, tau2, steps, eta);
    REQUIRE(tau2 - law.var >= 3 * 5 * rel_sd * tau2);  // the shortfall is visible: an exact-variance claim fails
    const auto x = sample_exact_score<S>(sch, mu, tau2, steps, dqs::Ancestral(eta), n, 21);
    check_law(moments(x), law, dim, n);
  }
}

// As the steps grow the ancestral chain converges to the target: the accumulated shortfall is first order
// (×2.8, ×3.6, ×3.9 per ×4 steps here, tending to 4) and at 640 steps the samples match N(μ, τ²I) within the statistical tolerance plus the
// (known, 1.2 %) remaining shortfall and the prior's mean offset.
TEST_CASE("Ancestral converges to the target variance as the steps grow", "[ancestral]") {
  constexpr Index n = 5000, dim = 2;
  const double tau2 = 0.25;
  const Eigen::VectorXd mu = (Eigen::VectorXd(dim) << 0.5, -1.0).finished();
  const dqs::VEGeometric sch(1e-3, 3.0);
  double previous_shortfall = 0;
  for (Index steps : {Index{10}, Index{40}, Index{160}, Index{640}}) {
    INFO(steps << " steps");
    const Law law = chain_law(sch, mu, tau2, steps, 1.0);
    const double shortfall = tau2 - law.var;
    REQUIRE(shortfall > 0);
    if (previous_shortfall > 0) {
      INFO("shortfall " << shortfall << ", previous " << previous_shortfall);
      CHECK(previous_shortfall / shortfall >= (steps == 640 ? 3.5 : 2.5));
      CHECK(previous_shortfall / shortfall <= 4.5);
    }
    previous_shortfall = shortfall;
    const auto x = sample_exact_score<double>(sch, mu, tau2, steps, dqs::Ancestral(), n, 33);
    const Law sample = moments(x);
    check_law(sample, law, dim, n);
    if (steps == 640) {
      CHECK(shortfall / tau2 < 0.015);
      const Law target{mu, tau2};
      check_law(sample, target, dim, n, (law.mean - mu).cwiseAbs().maxCoeff(), shortfall);
    }
  }
}

// VP schedules: the DDPM form x ← (x + β̄S)/α + √β̃·z (and DDIM) against the exact chain law, at few and at
// more steps; the variance approaches a_end²τ² + s_end² = τ² (VP linear: gap 0.139 at 10 steps, 0.037 at 80,
// still pre-asymptotic; VP cosine 0.098 → 0.021).
TEMPLATE_TEST_CASE("Ancestral on VP schedules follows its derived law", "[ancestral]", float, double) {
  using S = TestType;
  constexpr Index n = 10000, dim = 2;
  const double tau2 = 0.25;
  const Eigen::VectorXd mu = (Eigen::VectorXd(dim) << 0.5, -1.0).finished();
  auto check_schedule = [&](const auto& sch) {
    double previous_gap = std::numeric_limits<double>::infinity();
    for (Index steps : {Index{10}, Index{80}}) {
      const Law exact_eta1 = chain_law(sch, mu, tau2, steps, 1.0);
      const double gap = std::abs(exact_eta1.var - tau2);
      INFO(steps << " steps: variance gap to the target " << gap);
      CHECK(gap < previous_gap / 3);
      previous_gap = gap;
      for (double eta : {1.0, 0.0}) {
        INFO("eta " << eta);
        const auto x = sample_exact_score<S>(sch, mu, tau2, steps, dqs::Ancestral(eta), n, 44);
        check_law(moments(x), chain_law(sch, mu, tau2, steps, eta), dim, n);
      }
    }
  };
  SECTION("VP linear") { check_schedule(dqs::VPLinear()); }
  SECTION("VP cosine") { check_schedule(dqs::VPCosine()); }
}

// Determinism: one seed gives the same bytes with 1 and 2 threads and under any split of the sample range, other
// seeds differ; with MonteCarloScore the energy evaluations are one score call per step, steps·N·K.
TEMPLATE_TEST_CASE("Ancestral sampling is bit-identical across threads and splits", "[ancestral][determinism]", float,
                   double) {
  using S = TestType;
  constexpr Index n = 70, steps = 8, k = 32;
  const auto gmm = dqs::gmm40<S>();
  dqs::MonteCarloScoreOptions o;
  o.samples = k;
  for (double eta : {1.0, 0.0, 0.5}) {
    INFO("eta " << eta);
    auto make = [&](int threads) {
      return dqs::BoltzmannSampler<dqs::GaussianMixture<S>, dqs::VEGeometric, dqs::Ancestral>(
          gmm, dqs::VEGeometric(0.01, 70.0), steps_options(steps, threads), dqs::Ancestral(eta),
          dqs::MonteCarloScore(o));
    };
    const auto one = make(1).sample(n, 42);
    CHECK(one.energy_evaluations == steps * n * k);
    const auto& a = one.samples;
    REQUIRE(a.allFinite());
    auto same_bytes = [](const dqs::Matrix<S>& x, const dqs::Matrix<S>& y) {
      return x.rows() == y.rows() && x.cols() == y.cols() &&
             std::memcmp(x.data(), y.data(), sizeof(S) * static_cast<std::size_t>(x.size())) == 0;
    };
    CHECK(same_bytes(a, make(2).sample(n, 42).samples));
    for (Index split : {Index{1}, Index{13}, Index{37}}) {
      INFO("split at " << split);
      dqs::Matrix<S> joined(a.rows(), n);
      joined << make(2).sample_range(42, 0, split).samples, make(1).sample_range(42, split, n - split).samples;
      CHECK(same_bytes(a, joined));
    }
    const auto other = make(2).sample(n, 43).samples;
    for (Index j = 0; j < n; ++j) CHECK(a.col(j) != other.col(j));
  }
}

TEST_CASE("Ancestral rejects bad options, naming the parameter", "[ancestral][bad_input]") {
  for (double eta : {-0.1, 1.5, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    INFO("eta " << eta);
    try {
      dqs::Ancestral bad(eta);
      FAIL("no exception for eta " << bad.eta());
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      CHECK(message.rfind("dqs: ", 0) == 0);
      CHECK(message.find("Ancestral: eta") != std::string::npos);
    }
  }
  CHECK_NOTHROW(dqs::Ancestral(0.0));
  CHECK_NOTHROW(dqs::Ancestral(1.0));
  CHECK(dqs::Ancestral().eta() == 1.0);
}

// The coefficients (x ← x_scale·x + score_scale·S + noise_std·z), computed without cancellation, against the
// literal forms: VE ancestral x + (σ_i² − σ_{i+1}²)S + √(σ_{i+1}²(σ_i² − σ_{i+1}²)/σ_i²)z, VE DDIM
// x + σ_i(σ_i − σ_{i+1})S, DDPM (x + β̄S)/α + √β̃ z and DDIM x/α + (s_i²/α − s_i s_{i+1})S, to 1e-12 relative at
// long and short steps (the short ones would lose digits in the literal DDIM form at far smaller steps only).
TEST_CASE("Ancestral coefficients match the literal ancestral and DDIM forms", "[ancestral]") {
  auto close = [](double a, double b) { return std::abs(a - b) <= 1e-12 * std::max(std::abs(a), std::abs(b)); };
  auto check = [&](const auto& sch, double t, double dt) {
    INFO("t " << t << ", dt " << dt);
    const double a = sch.alpha(t), a_next = sch.alpha(t - dt), s = sch.sigma(t), s_next = sch.sigma(t - dt);
    const double ratio = a / a_next, bbar = s * s - ratio * ratio * s_next * s_next;
    const auto anc = dqs::Ancestral(1.0).coefficients(sch, t, dt);
    CHECK(close(anc.x_scale, 1 / ratio));
    CHECK(close(anc.score_scale, bbar / ratio));
    CHECK(close(anc.noise_std, std::sqrt(s_next * s_next * bbar / (s * s))));
    const auto ddim = dqs::Ancestral(0.0).coefficients(sch, t, dt);
    CHECK(close(ddim.x_scale, 1 / ratio));
    CHECK(close(ddim.score_scale, s * s / ratio - s * s_next));
    CHECK(ddim.noise_std == 0);
  };
  for (double dt : {0.3, 0.01}) {
    check(dqs::VEGeometric(1e-3, 3.0), 0.6, dt);
    check(dqs::VPLinear(), 0.6, dt);
    check(dqs::VPCosine(), 0.6, dt);
  }
  // VE literal forms.
  const dqs::VEGeometric ve(1e-3, 3.0);
  const double v = ve.variance(0.5), v_next = ve.variance(0.4);
  const auto anc = dqs::Ancestral().coefficients(ve, 0.5, 0.1);
  CHECK(close(anc.x_scale, 1.0));
  CHECK(close(anc.score_scale, v - v_next));
  CHECK(close(anc.noise_std, std::sqrt(v_next * (v - v_next) / v)));
  CHECK(close(dqs::Ancestral(0.0).coefficients(ve, 0.5, 0.1).score_scale,
              std::sqrt(v) * (std::sqrt(v) - std::sqrt(v_next))));
  // The last step to t = 0 (t − dt rounding below 0 included) is Tweedie's denoiser, noise-free.
  const auto last = dqs::Ancestral().coefficients(ve, 0.1, std::nextafter(0.1, 1.0));
  CHECK(close(last.score_scale, ve.variance(0.1)));
  CHECK(last.noise_std == 0);
}
