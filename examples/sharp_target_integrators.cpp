// Few steps on a sharp target: samples a 2-D mixture of four narrow Gaussians (std 0.01 at (±2, ±2)) with the
// VE schedule σ ∈ [1e-3, 5] through EulerMaruyama, HeunODE, Ancestral and Ancestral(0) (DDIM), and prints each
// one's error: the RMS distance to the nearest mode per coordinate in units of the component std (1 is right),
// the total variation of the mode weights, and W2 against as many exact samples (the exact-samples row scores
// another exact set the same way: the metric's noise level, not a lower bound, since W2 here is dominated by
// how the samples split between the modes).
// Euler–Maruyama multiplies the distance to a sharp mode by ≈ 1 − 2 ln(σ_max/σ_min)/steps per step (−1.13 at the
// default 8 steps): it overshoots, and the error grows. Scores are exact by default (the integrator's error alone),
// or --score mc (then the count is energy evaluations/(samples·K); a score at s = 0 costs none). Ancestral never
// overshoots but lands too narrow at so few steps (its per-step variance shortfall, see sde/ancestral.hpp).
// smoke-test: --samples 200
#include <dqs/dqs.hpp>
#include <dqs/metrics/metrics.hpp>

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace {

struct Error {
  double spread = 0;  // RMS distance to the nearest mode per coordinate, / component std
  double tv = 0;      // total variation of the nearest-mode histogram against the weights
  double w2 = 0;      // W2 against exact samples
};

Error score_samples(const dqs::Matrix<double>& x, const dqs::GaussianMixture<double>& target,
                    const dqs::Matrix<double>& exact, double component_std) {
  const auto nearest = dqs::metrics::nearest_modes(x, target.means());
  double sum = 0;
  for (dqs::Index j = 0; j < x.cols(); ++j)
    sum += (x.col(j) - target.means().col(nearest[static_cast<std::size_t>(j)])).squaredNorm();
  Error e;
  e.spread = std::sqrt(sum / static_cast<double>(x.size())) / component_std;
  const auto counts = dqs::metrics::nearest_mode_counts(x, target.means());
  const dqs::Vector<double> weights = Eigen::Map<const dqs::Vector<double>>(target.weights().data(),
                                                                            static_cast<dqs::Index>(target.weights().size()));
  e.tv = dqs::metrics::total_variation(counts, weights);
  e.w2 = dqs::metrics::w2_exact(x, exact);
  return e;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Sharp 2-D mixture with few steps: EulerMaruyama, HeunODE and Ancestral compared"};
  long samples = 1000, steps = 8, mc_samples = 500;
  std::uint64_t seed = 1;
  double component_std = 0.01, sigma_min = 1e-3, sigma_max = 5.0;
  std::string score = "exact";
  app.add_option("--samples", samples, "samples per integrator")->check(CLI::PositiveNumber);
  app.add_option("--steps", steps, "reverse steps")->check(CLI::PositiveNumber);
  app.add_option("--seed", seed, "random seed");
  app.add_option("--std", component_std, "std of each mixture component")->check(CLI::PositiveNumber);
  app.add_option("--sigma-min", sigma_min, "VE schedule sigma_min")->check(CLI::PositiveNumber);
  app.add_option("--sigma-max", sigma_max, "VE schedule sigma_max")->check(CLI::PositiveNumber);
  app.add_option("--score", score, "exact (closed form) or mc (MonteCarloScore, blended form)")
      ->check(CLI::IsMember({"exact", "mc"}));
  app.add_option("--mc-samples", mc_samples, "K of the Monte Carlo score")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  Eigen::MatrixXd means(2, 4);
  means << 2, -2, 2, -2, 2, 2, -2, -2;
  const Eigen::MatrixXd cov = component_std * component_std * Eigen::MatrixXd::Identity(2, 2);
  const dqs::GaussianMixture<double> target({1, 1, 1, 1}, means, {cov, cov, cov, cov});
  const dqs::VEGeometric schedule(sigma_min, sigma_max);
  dqs::SamplerOptions options;
  options.steps = steps;

  const dqs::Matrix<double> exact = target.sample_exact(samples, seed + 1000);
  const Error noise_level = score_samples(target.sample_exact(samples, seed + 2000), target, exact, component_std);
  std::printf("4 Gaussians of std %g at (±2, ±2); VE sigma in [%g, %g], %ld steps, %ld samples, %s score\n",
              component_std, sigma_min, sigma_max, steps, samples, score.c_str());
  std::printf("Euler-Maruyama's factor on the distance to a mode, 1 - 2 ln(sigma_max/sigma_min)/steps: %.2f\n",
              1 - 2 * std::log(sigma_max / sigma_min) / static_cast<double>(steps));
  std::printf("%-16s %14s %12s %8s %10s\n", "integrator", "scores/sample", "spread/std", "TV", "W2");
  std::printf("%-16s %14s %12.3f %8.3f %10.4f\n", "exact samples", "-", noise_level.spread, noise_level.tv, noise_level.w2);

  dqs::MonteCarloScoreOptions mc;
  mc.samples = mc_samples;
  mc.blend_scale = component_std;
  auto run = [&](const char* name, auto integrator) {
    using Integrator = decltype(integrator);
    dqs::Matrix<double> x;
    long score_calls = 0;
    try {
      if (score == "exact") {
        const dqs::BoltzmannSampler<dqs::GaussianMixture<double>, dqs::VEGeometric, Integrator, dqs::ExactScore> sampler(
            target, schedule, options, integrator);
        x = sampler.sample(samples, seed).samples;
        score_calls = std::is_same_v<Integrator, dqs::HeunODE> ? 2 * steps : steps;
      } else {
        const dqs::BoltzmannSampler<dqs::GaussianMixture<double>, dqs::VEGeometric, Integrator> sampler(
            target, schedule, options, integrator, dqs::MonteCarloScore(mc));
        const auto result = sampler.sample(samples, seed);
        x = result.samples;
        score_calls = static_cast<long>(result.energy_evaluations / (samples * mc_samples));
      }
    } catch (const std::runtime_error& e) {
      std::printf("%-16s diverged: %s\n", name, e.what());
      return;
    }
    const Error err = score_samples(x, target, exact, component_std);
    std::printf("%-16s %14ld %12.3f %8.3f %10.4f\n", name, score_calls, err.spread, err.tv, err.w2);
  };
  run("EulerMaruyama", dqs::EulerMaruyama());
  run("HeunODE", dqs::HeunODE());
  run("Ancestral", dqs::Ancestral());
  run("Ancestral(0)", dqs::Ancestral(0.0));
  return 0;
}
