// Bad input across the core: every invalid option, size or value is a std::invalid_argument whose
// message starts "dqs: " and names the parameter (and, where there is one, the offending value);
// never a crash, a silent NaN or a wrong answer.
#include "dqs/energy/gaussian_mixture.hpp"
#include "dqs/sampler/boltzmann_sampler.hpp"
#include "dqs/schedule/ve_geometric.hpp"
#include "dqs/schedule/vp_linear.hpp"
#include "dqs/score/exact.hpp"
#include "dqs/score/monte_carlo.hpp"
#include "dqs/sde/euler_maruyama.hpp"
#include "dqs/sde/heun.hpp"
#include "dqs/sde/predictor_corrector.hpp"

#include <catch2/catch.hpp>

#include <initializer_list>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using dqs::Index;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Matches a std::invalid_argument whose message starts with "dqs: " and contains every needle.
class Names : public Catch::MatcherBase<std::invalid_argument> {
 public:
  Names(std::initializer_list<std::string> needles) : needles_(needles) {}
  bool match(const std::invalid_argument& e) const override {
    const std::string message = e.what();
    if (message.rfind("dqs: ", 0) != 0) return false;
    for (const auto& needle : needles_)
      if (message.find(needle) == std::string::npos) return false;
    return true;
  }
  std::string describe() const override {
    std::ostringstream out;
    out << "is a dqs error naming";
    for (const auto& needle : needles_) out << " \"" << needle << "\"";
    return out.str();
  }

 private:
  std::vector<std::string> needles_;
};

#define CHECK_REJECTS(expr, ...) CHECK_THROWS_MATCHES(expr, std::invalid_argument, Names({__VA_ARGS__}))

Eigen::MatrixXd cov2(double xx, double xy, double yy) { return (Eigen::MatrixXd(2, 2) << xx, xy, xy, yy).finished(); }

dqs::Gaussian<double> gaussian_2d() { return dqs::Gaussian<double>(Eigen::VectorXd::Zero(2), cov2(1.0, 0.3, 0.5)); }

dqs::MonteCarloScoreOptions mc_options(Index k) {
  dqs::MonteCarloScoreOptions o;
  o.samples = k;
  return o;
}

dqs::SamplerOptions sampler_options(Index steps, double t_end = 0.0, int threads = 0) {
  dqs::SamplerOptions o;
  o.steps = steps;
  o.t_end = t_end;
  o.threads = threads;
  return o;
}

using GaussianSampler = dqs::BoltzmannSampler<dqs::Gaussian<double>, dqs::VPLinear>;

// An energy returning NaN on the half-space x₀ > 0.
struct NaNOnRight {
  using Scalar = double;
  Index dim() const { return 2; }
  void energy(dqs::ConstBatchRef<double> x, dqs::ValuesRef<double> values) const {
    for (Index j = 0; j < x.cols(); ++j)
      values[j] = x(0, j) > 0 ? std::numeric_limits<double>::quiet_NaN() : 0.5 * x.col(j).squaredNorm();
  }
  void energy_and_gradient(dqs::ConstBatchRef<double> x, dqs::ValuesRef<double> values, dqs::BatchRef<double> grad) const {
    energy(x, values);
    grad = x;
  }
};

struct ValueOnly {
  using Scalar = double;
  Index dim() const { return 2; }
  void energy(dqs::ConstBatchRef<double> x, dqs::ValuesRef<double> values) const {
    values = 0.5 * x.colwise().squaredNorm().transpose();
  }
};

// A score estimator without log_density: MALA cannot use it.
struct ScoreOnly {
  template <class E>
  void validate(const E&) const {}
  template <class E, class Sch>
  std::int64_t estimate(const E& energy, const Sch& schedule, dqs::ConstBatchRef<typename E::Scalar> x, double t,
                        const dqs::random::StreamKey& key, dqs::BatchRef<typename E::Scalar> score) const {
    return dqs::ExactScore{}.estimate(energy, schedule, x, t, key, score);
  }
};

}  // namespace

TEST_CASE("MonteCarloScore rejects bad options", "[bad_input][monte_carlo]") {
  using dqs::MonteCarloScore;
  CHECK_REJECTS(MonteCarloScore(mc_options(0)), "samples (K)", "got 0");
  CHECK_REJECTS(MonteCarloScore(mc_options(-3)), "samples (K)", "-3");
  auto o = mc_options(10);
  o.clip = 0;
  CHECK_REJECTS(MonteCarloScore(o), "clip", "got 0");
  o.clip = -1;
  CHECK_REJECTS(MonteCarloScore(o), "clip", "-1");
  o.clip = kNaN;
  CHECK_REJECTS(MonteCarloScore(o), "clip", "nan");
  o = mc_options(10);
  o.clip_block = -2;
  CHECK_REJECTS(MonteCarloScore(o), "clip_block", "-2");
  o = mc_options(10);
  o.blend_scale = 0;
  CHECK_REJECTS(MonteCarloScore(o), "blend_scale");
  o.blend_scale = kInf;
  CHECK_REJECTS(MonteCarloScore(o), "blend_scale");
  o = mc_options(7);
  o.antithetic = true;
  CHECK_REJECTS(MonteCarloScore(o), "antithetic", "7");
  o = mc_options(7);
  o.richardson = true;
  CHECK_REJECTS(MonteCarloScore(o), "richardson", "7");
  o = mc_options(6);
  o.richardson = true;
  o.antithetic = true;
  CHECK_REJECTS(MonteCarloScore(o), "richardson", "antithetic", "6");
  o = mc_options(8);
  CHECK_NOTHROW(MonteCarloScore(o));
  o.richardson = o.antithetic = true;
  CHECK_NOTHROW(MonteCarloScore(o));
  // clip_block must divide the energy's dim: checked against the energy.
  o = mc_options(8);
  o.clip_block = 3;
  CHECK_REJECTS(MonteCarloScore(o).validate(gaussian_2d()), "clip_block", "3");
  CHECK_REJECTS(GaussianSampler(gaussian_2d(), dqs::VPLinear(), {}, {}, MonteCarloScore(o)), "clip_block");
}

TEST_CASE("MonteCarloScore and ExactScore reject batches that do not fit the energy", "[bad_input][monte_carlo]") {
  const auto energy = gaussian_2d();
  const dqs::VPLinear schedule;
  const dqs::MonteCarloScore mc(mc_options(8));
  Eigen::MatrixXd x3(3, 4), out3(3, 4), x2(2, 4), out_wrong(2, 5);
  x3.setOnes();
  x2.setOnes();
  Eigen::VectorXd values(4), values_wrong(3);
  CHECK_REJECTS(mc.estimate(energy, schedule, x3, 0.5, {}, out3), "3 rows", "dim is 2");
  CHECK_REJECTS(mc.estimate(energy, schedule, x2, 0.5, {}, out_wrong), "output", "2×5");
  CHECK_REJECTS(mc.log_density(energy, schedule, x3, 0.5, {}, values), "3 rows", "dim is 2");
  CHECK_REJECTS(mc.log_density(energy, schedule, x2, 0.5, {}, values_wrong), "3");
  CHECK_REJECTS(dqs::ExactScore{}.estimate(energy, schedule, x3, 0.5, {}, out3), "3 rows", "dim is 2");
  CHECK_REJECTS(dqs::ExactScore{}.log_density(energy, schedule, x3, 0.5, {}, values), "3 rows", "dim is 2");
}

TEST_CASE("Energies reject mismatched batches and outputs", "[bad_input][energy]") {
  const auto energy = gaussian_2d();
  Eigen::MatrixXd x3 = Eigen::MatrixXd::Ones(3, 4), x2 = Eigen::MatrixXd::Ones(2, 4), grad(2, 4), grad_wrong(3, 4);
  Eigen::VectorXd values(4), values_wrong(5);
  CHECK_REJECTS(energy.energy(x3, values), "batch has 3 rows", "dim is 2");
  CHECK_REJECTS(energy.energy(x2, values_wrong), "values has size 5", "4 columns");
  CHECK_REJECTS(energy.energy_and_gradient(x2, values, grad_wrong), "gradient is 3×4");
  CHECK_REJECTS(energy.energy_and_gradient(x3, values, grad), "3 rows");
  CHECK_NOTHROW(energy.energy_and_gradient(x2, values, grad));
  CHECK_REJECTS(energy.sample_exact(0, 1), "n must be >= 1", "0");
}

TEST_CASE("GaussianMixture rejects bad weights, means and covariances", "[bad_input][energy]") {
  using Mixture = dqs::GaussianMixture<double>;
  const Eigen::MatrixXd means = (Eigen::MatrixXd(2, 2) << 0.0, 1.0, 0.0, 1.0).finished();
  const std::vector<Eigen::MatrixXd> covs{cov2(1.0, 0.2, 1.0), cov2(0.5, 0.0, 0.5)};
  CHECK_NOTHROW(Mixture({0.3, 0.7}, means, covs));
  CHECK_REJECTS(Mixture({0.3, -0.7}, means, covs), "weights[1]", "-0.7");
  CHECK_REJECTS(Mixture({kNaN, 0.7}, means, covs), "weights[0]", "nan");
  CHECK_REJECTS(Mixture({kInf, 0.7}, means, covs), "weights[0]", "inf");
  CHECK_REJECTS(Mixture({0.0, 0.0}, means, covs), "positive sum");
  CHECK_REJECTS(Mixture({1.0}, means, covs), "1 weights for 2 components");
  CHECK_REJECTS(Mixture({0.5, 0.5}, means, {covs[0]}), "1 covariances for 2 components");
  CHECK_REJECTS(Mixture({0.5, 0.5}, means, {covs[0], Eigen::MatrixXd::Identity(3, 3)}), "covariances[1] is 3×3",
                "expected 2×2");
  CHECK_REJECTS(Mixture({0.5, 0.5}, means, {covs[0], cov2(1.0, 2.0, 1.0)}), "covariances[1]", "positive definite");
  CHECK_REJECTS(Mixture({0.5, 0.5}, means, {cov2(0.0, 0.0, 1.0), covs[1]}), "covariances[0]", "positive definite");
  CHECK_REJECTS(Mixture({0.5, 0.5}, means, {covs[0], cov2(-1.0, 0.0, -1.0)}), "covariances[1]", "positive definite");
  Eigen::MatrixXd asymmetric = covs[0];
  asymmetric(0, 1) = 0.5;
  CHECK_REJECTS(Mixture({0.5, 0.5}, means, {asymmetric, covs[1]}), "covariances[0]", "symmetric");
  Eigen::MatrixXd nan_cov = covs[0];
  nan_cov(1, 1) = kNaN;
  CHECK_REJECTS(Mixture({0.5, 0.5}, means, {nan_cov, covs[1]}), "covariances[0]", "finite");
  Eigen::MatrixXd bad_means = means;
  bad_means(1, 0) = kInf;
  CHECK_REJECTS(Mixture({0.5, 0.5}, bad_means, covs), "means", "finite");
  CHECK_REJECTS(Mixture({}, Eigen::MatrixXd(2, 0), {}), "means", "D×C");
  // A Gaussian is a one-component mixture and reports the same way.
  CHECK_REJECTS(dqs::Gaussian<double>(Eigen::VectorXd::Zero(2), Eigen::MatrixXd::Identity(3, 3)), "covariances[0] is 3×3");
  CHECK_REJECTS(dqs::Gaussian<float>(Eigen::VectorXd::Zero(2), cov2(1.0, 1.5, 1.0)), "positive definite");
}

TEST_CASE("BoltzmannSampler validates its options on construction", "[bad_input][sampler]") {
  const auto energy = gaussian_2d();
  CHECK_REJECTS(GaussianSampler(energy, dqs::VPLinear(), sampler_options(0)), "steps", "got 0");
  CHECK_REJECTS(GaussianSampler(energy, dqs::VPLinear(), sampler_options(-4)), "steps", "-4");
  CHECK_REJECTS(GaussianSampler(energy, dqs::VPLinear(), sampler_options(10, -0.1)), "t_end", "-0.1");
  CHECK_REJECTS(GaussianSampler(energy, dqs::VPLinear(), sampler_options(10, 1.0)), "t_end", "got 1");
  CHECK_REJECTS(GaussianSampler(energy, dqs::VPLinear(), sampler_options(10, kNaN)), "t_end", "nan");
  CHECK_REJECTS(GaussianSampler(energy, dqs::VPLinear(), sampler_options(10, 0.0, -1)), "threads", "-1");
  CHECK_NOTHROW(GaussianSampler(energy, dqs::VPLinear(), sampler_options(10, 0.999)));
  // The integrator's and estimator's options are validated too.
  CHECK_REJECTS(dqs::EulerMaruyama(-0.5), "diffusion_scale", "-0.5");
  CHECK_REJECTS(dqs::EulerMaruyama(kNaN), "diffusion_scale");
  dqs::PredictorCorrectorOptions pc;
  pc.corrector_steps = -1;
  CHECK_REJECTS(dqs::PredictorCorrector(pc), "corrector_steps", "-1");
  pc = {};
  pc.snr = 0;
  CHECK_REJECTS(dqs::PredictorCorrector(pc), "snr");
  pc = {};
  pc.predictor_diffusion_scale = -1;
  CHECK_REJECTS(dqs::PredictorCorrector(pc), "diffusion_scale");
  // An energy without a gradient cannot feed the target or blend forms.
  for (dqs::ScoreForm form : {dqs::ScoreForm::target, dqs::ScoreForm::blend}) {
    auto o = mc_options(8);
    o.form = form;
    CHECK_REJECTS((dqs::BoltzmannSampler<ValueOnly, dqs::VPLinear>(ValueOnly{}, dqs::VPLinear(), {}, {},
                                                                    dqs::MonteCarloScore(o))),
                  "DifferentiableEnergy");
  }
}

TEST_CASE("BoltzmannSampler rejects an empty or negative sample range", "[bad_input][sampler]") {
  const GaussianSampler sampler(gaussian_2d(), dqs::VPLinear(), sampler_options(3), {}, dqs::MonteCarloScore(mc_options(4)));
  CHECK_REJECTS(sampler.sample(0, 1), "number of samples", "got 0");
  CHECK_REJECTS(sampler.sample(-5, 1), "number of samples", "-5");
  CHECK_REJECTS(sampler.sample_range(1, -1, 4), "first", "-1");
  CHECK_NOTHROW(sampler.sample(1, 1));
}

TEST_CASE("A NaN energy stops the sampler with an error naming NaN, whatever the thread count", "[bad_input][sampler]") {
  for (int threads : {1, 2}) {
    const dqs::BoltzmannSampler<NaNOnRight, dqs::VPLinear> sampler(NaNOnRight{}, dqs::VPLinear(),
                                                                  sampler_options(5, 0.0, threads), {},
                                                                  dqs::MonteCarloScore(mc_options(16)));
    // Prior draws at t = 1 land on both half-spaces: some proposal is NaN at the first step.
    CHECK_REJECTS(sampler.sample(20, 3), "NaN");
  }
}

TEST_CASE("MALA needs an estimator with log_density", "[bad_input][sde]") {
  dqs::PredictorCorrectorOptions pc;
  pc.corrector = dqs::Corrector::mala;
  const dqs::BoltzmannSampler<dqs::Gaussian<double>, dqs::VPLinear, dqs::PredictorCorrector, ScoreOnly> sampler(
      gaussian_2d(), dqs::VPLinear(), sampler_options(3), dqs::PredictorCorrector(pc), ScoreOnly{});
  CHECK_REJECTS(sampler.sample(4, 1), "MALA", "log_density");
}
