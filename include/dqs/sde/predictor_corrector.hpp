// Predictor–corrector (Song et al. 2021): an Euler–Maruyama predictor step to t − dt, then M corrector
// steps at t − dt targeting p_{t−dt}: Langevin x ← x + ε S + √(2ε) z, or MALA (same proposal,
// Metropolis-adjusted with log p_t estimates). ε = 2(r·s(t)/a(t))² depends on t only (r = `snr`).
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/sde/concepts.hpp"
#include "dqs/sde/euler_maruyama.hpp"

#include <cmath>

namespace dqs {

enum class Corrector { langevin, mala };

struct PredictorCorrectorOptions {
  int corrector_steps = 1;
  Corrector corrector = Corrector::langevin;
  double snr = 0.16;                 // r: corrector step ε = 2(r·s(t)/a(t))², a fraction of the noise scale
  double predictor_diffusion_scale = 1.0;
};

class PredictorCorrector {
 public:
  PredictorCorrector() : PredictorCorrector(PredictorCorrectorOptions{}) {}
  explicit PredictorCorrector(PredictorCorrectorOptions options)
      : options_(options), predictor_(options.predictor_diffusion_scale) {
    validate();
  }

  void validate() const {
    detail::require(options_.corrector_steps >= 0, "PredictorCorrector: corrector_steps must be >= 0, got ",
                    options_.corrector_steps);
    detail::require_positive("PredictorCorrector: snr", options_.snr);
    predictor_.validate();
  }
  const PredictorCorrectorOptions& options() const { return options_; }

  template <StepContext C>
  void step(C& ctx, BatchRef<typename C::Scalar> x, double t, double dt) const {
    using S = typename C::Scalar;
    predictor_.step(ctx, x, t, dt);
    const double t_next = t - dt;
    const Index dim = x.rows(), n = x.cols();
    Matrix<S> score(dim, n), noise(dim, n);
    Vector<S> step_size(n);
    for (int m = 0; m < options_.corrector_steps; ++m) {
      const std::uint32_t draw = 16 + 4 * static_cast<std::uint32_t>(m);
      ctx.score(x, t_next, score, draw);
      ctx.normal(noise, draw);
      // A state-independent step: a per-sample rule such as ε = 2(r‖z‖/‖S‖)² blows up near modes
      // (‖S‖ → 0) and makes the MALA ratio invalid, since ε would depend on x and z.
      const double scale = options_.snr * schedule_ratio(ctx.schedule(), t_next);
      step_size.setConstant(static_cast<S>(2 * scale * scale));
      if (options_.corrector == Corrector::langevin) {
        langevin(x, score, noise, step_size);
        continue;
      }
      if constexpr (C::has_log_density) {
        mala(ctx, x, t_next, score, noise, step_size, draw);
      } else {
        detail::fail("PredictorCorrector: the MALA corrector needs a score estimator with log_density");
      }
    }
  }

 private:
  template <class Sch>
  static double schedule_ratio(const Sch& schedule, double t) {
    return schedule.sigma(t) / schedule.alpha(t);
  }

  template <Real S>
  static void langevin(BatchRef<S> x, const Matrix<S>& score, const Matrix<S>& noise, const Vector<S>& step_size) {
    for (Index j = 0; j < x.cols(); ++j)
      x.col(j) += step_size[j] * score.col(j) + std::sqrt(S(2) * step_size[j]) * noise.col(j);
  }

  // Metropolis-adjusted Langevin at time t: proposal x' = x + ε S(x) + √(2ε) z, accepted with
  // probability min(1, p(x') q(x | x') / (p(x) q(x' | x))), q(b | a) = N(b; a + ε S(a), 2ε I).
  template <StepContext C>
  static void mala(C& ctx, BatchRef<typename C::Scalar> x, double t, const Matrix<typename C::Scalar>& score,
                   const Matrix<typename C::Scalar>& noise, const Vector<typename C::Scalar>& step_size,
                   std::uint32_t draw) {
    using S = typename C::Scalar;
    const Index dim = x.rows(), n = x.cols();
    Matrix<S> proposal(dim, n), proposal_score(dim, n);
    for (Index j = 0; j < n; ++j)
      proposal.col(j) = x.col(j) + step_size[j] * score.col(j) + std::sqrt(S(2) * step_size[j]) * noise.col(j);
    ctx.score(proposal, t, proposal_score, draw + 1);
    Vector<S> log_p(n), log_p_proposal(n), u(n);
    const Matrix<S> current = x;
    ctx.log_density(current, t, log_p, draw + 2);
    ctx.log_density(proposal, t, log_p_proposal, draw + 3);
    ctx.uniform(u, draw);
    for (Index j = 0; j < n; ++j) {
      if (!(step_size[j] > 0)) continue;
      const double eps = step_size[j];
      const auto forward = (proposal.col(j) - x.col(j) - step_size[j] * score.col(j)).template cast<double>();
      const auto backward = (x.col(j) - proposal.col(j) - step_size[j] * proposal_score.col(j)).template cast<double>();
      const double log_ratio = static_cast<double>(log_p_proposal[j]) - static_cast<double>(log_p[j]) -
                               (backward.squaredNorm() - forward.squaredNorm()) / (4 * eps);
      if (std::log(static_cast<double>(u[j])) < log_ratio) x.col(j) = proposal.col(j);
    }
  }

  PredictorCorrectorOptions options_;
  EulerMaruyama predictor_;
};

}  // namespace dqs
