// PredictorCorrector with ExactScore on a 2-D correlated Gaussian reproduces the target's moments,
// with the Langevin and the MALA corrector (the per-sample step rule it once had failed this).
#include "dqs/energy/gaussian_mixture.hpp"
#include "dqs/sampler/boltzmann_sampler.hpp"
#include "dqs/schedule/ve_geometric.hpp"
#include "dqs/schedule/vp_linear.hpp"
#include "dqs/score/exact.hpp"
#include "dqs/sde/predictor_corrector.hpp"
#include <catch2/catch.hpp>
#include <cmath>
using dqs::Index;
TEST_CASE("PredictorCorrector (Langevin, MALA) + ExactScore reproduces a 2-D Gaussian", "[sampler][pc]") {
  const Eigen::VectorXd mu = (Eigen::VectorXd(2) << 1.0, -0.5).finished();
  const Eigen::MatrixXd sigma = (Eigen::MatrixXd(2, 2) << 1.0, 0.5, 0.5, 0.6).finished();
  const dqs::Gaussian<double> target(mu, sigma);
  constexpr Index n = 4000;
  for (auto corrector : {dqs::Corrector::langevin, dqs::Corrector::mala}) {
    dqs::SamplerOptions options;
    options.steps = 200;
    dqs::PredictorCorrectorOptions pc;
    pc.corrector = corrector;
    const dqs::BoltzmannSampler<dqs::Gaussian<double>, dqs::VEGeometric, dqs::PredictorCorrector, dqs::ExactScore> sampler(
        target, dqs::VEGeometric(0.01, 40.0), options, dqs::PredictorCorrector(pc));
    const Eigen::MatrixXd x = sampler.sample(n, 7).samples;
    const Eigen::VectorXd m = x.rowwise().mean();
    const Eigen::MatrixXd c = (x.colwise() - m) * (x.colwise() - m).transpose() / (n - 1);
    INFO((corrector == dqs::Corrector::mala ? "MALA" : "Langevin") << ": mean " << m.transpose() << ", cov\n" << c);
    // 5 sd of the sample moments, plus (Langevin only) 10 % of Σ for the corrector's O(ε) bias.
    const double extra = corrector == dqs::Corrector::langevin ? 0.1 : 0.0;
    for (Index i = 0; i < 2; ++i) {
      CHECK(std::abs(m[i] - mu[i]) <= 5 * std::sqrt(sigma(i, i) / n));
      for (Index j = 0; j < 2; ++j)
        CHECK(std::abs(c(i, j) - sigma(i, j)) <=
              5 * std::sqrt((sigma(i, i) * sigma(j, j) + sigma(i, j) * sigma(i, j)) / n) + extra * std::abs(sigma(i, j)));
    }
  }
}
