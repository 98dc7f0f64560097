// Ancestral sampling of the discretised forward chain (DDPM/SMLD), with DDIM's η: from t_i to t_{i+1} < t_i,
// x ← (x + β̄·S)/α + √β̃·z with α = a_i/a_{i+1}, β̄ = s_i² − α² s_{i+1}², β̃ = s_{i+1}² β̄/s_i² (η = 1); η = 0 is
// deterministic DDIM. VE (a = 1): x ← x + (σ_i² − σ_{i+1}²)·S + √(σ_{i+1}²(σ_i² − σ_{i+1}²)/σ_i²)·z.
//
// Derivation. x_t = a(t)·x₀ + s(t)·ε makes the two levels a Markov chain: x_i = α·x_{i+1} + √β̄·ξ, since
// a_i = α a_{i+1} and s_i² = α² s_{i+1}² + β̄. Given x₀, x_{i+1} ~ N(a_{i+1}x₀, s_{i+1}²), so Bayes gives the
// Gaussian posterior q(x_{i+1} | x_i, x₀) with precision 1/s_{i+1}² + α²/β̄ = s_i²/(s_{i+1}² β̄), i.e.
//   variance β̃ = s_{i+1}² β̄ / s_i²,   mean m(x₀) = (β̄ a_{i+1} x₀ + α s_{i+1}² x_i)/s_i².
// The mean is linear in x₀, so the true reverse kernel p(x_{i+1} | x_i) = E[q(· | x_i, x₀) | x_i] has mean
// m(E[x₀ | x_i]), and Tweedie's formula E[x₀ | x_i] = (x_i + s_i² S(x_i))/a_i, S = ∇log p_{t_i}, turns it into
//   E[x_{i+1} | x_i] = x_i·(β̄ + α² s_{i+1}²)/(α s_i²) + (β̄/α)·S = (x_i + β̄·S)/α,
// exact for any target. Its variance is β̃ + (β̄ a_{i+1}/s_i²)²·Var[x₀ | x_i]; the step keeps β̃ only. For a
// point mass Var[x₀ | x_i] = 0 and the step is exact: the distance to the mode shrinks by α s_{i+1}²/s_i² ∈ [0, 1)
// per step whatever the step count (Euler–Maruyama multiplies it by ≈ 1 − g²dt/s², negative once
// 2 ln(σ_max/σ_min) > steps on VE). For a Gaussian target of variance τ², Var[x₀ | x_i] = τ² s_i²/(a_i²τ² + s_i²),
// so from the exact marginal one step's variance is short by β̄² a_{i+1}² τ²/(s_i²(a_i²τ² + s_i²)) (VE:
// τ²(σ_i² − σ_{i+1}²)²/(σ_i²(τ² + σ_i²))): O(dt²) per step, a first-order error over the chain.
// DDIM (Song, Meng & Ermon 2021) writes the step as a_{i+1}x̂₀ + √(s_{i+1}² − η²β̃)·ε̂ + η√β̃·z with x̂₀ the Tweedie
// estimate and ε̂ = −s_i S; η = 1 is the ancestral step above, η = 0 the deterministic map
// x ← x/α + (s_i²/α − s_i s_{i+1})·S (VE: x + σ_i(σ_i − σ_{i+1})·S), short by τ²(a_{i+1}s_i − a_i s_{i+1})²/(a_i²τ² + s_i²).
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/sde/concepts.hpp"

#include <algorithm>
#include <cmath>

namespace dqs {

class Ancestral {
 public:
  Ancestral() = default;
  // eta ∈ [0, 1]: 1 the ancestral (DDPM) step, 0 deterministic DDIM, between them DDIM's interpolation.
  explicit Ancestral(double eta) : eta_(eta) { validate(); }

  void validate() const {
    detail::require(std::isfinite(eta_) && eta_ >= 0 && eta_ <= 1, "Ancestral: eta must lie in [0, 1], got ", eta_);
  }
  double eta() const { return eta_; }

  // The step's coefficients, x ← x_scale·x + score_scale·S + noise_std·z, from the schedule alone.
  struct Coefficients {
    double x_scale = 1, score_scale = 0, noise_std = 0;
  };
  template <NoiseSchedule Sch>
  Coefficients coefficients(const Sch& schedule, double t, double dt) const {
    // t − dt may round below 0 on the sampler's last step; every schedule starts at t = 0.
    const double t_next = std::max(t - dt, 0.0);
    const double ratio = schedule.alpha(t) / schedule.alpha(t_next);  // α
    const double s = schedule.sigma(t), v = s * s;
    const double s_next = schedule.sigma(t_next), v_next = s_next * s_next;
    Coefficients c;
    c.x_scale = 1 / ratio;
    const double bbar = std::max(v - ratio * ratio * v_next, 0.0);
    if (!(v > 0) || bbar == 0) return c;  // no noise left to remove (t at 0, or a flat schedule)
    const double noise_var = eta_ * eta_ * v_next * bbar / v;
    // s_i²/α − s_i·√(s_{i+1}² − η²β̃) written without cancellation (difference of squares): for small steps
    // both terms approach s_i²/α, and their difference is the step.
    const double rest = std::sqrt(std::max(v * v_next - eta_ * eta_ * v_next * bbar, 0.0));
    c.score_scale = bbar * (v / (ratio * ratio) + eta_ * eta_ * v_next) / (v / ratio + rest);
    c.noise_std = std::sqrt(noise_var);
    return c;
  }

  template <StepContext C>
  void step(C& ctx, BatchRef<typename C::Scalar> x, double t, double dt) const {
    using S = typename C::Scalar;
    const Coefficients c = coefficients(ctx.schedule(), t, dt);
    Matrix<S> score(x.rows(), x.cols());
    ctx.score(x, t, score, 0);
    x = static_cast<S>(c.x_scale) * x + static_cast<S>(c.score_scale) * score;
    if (c.noise_std > 0) {
      Matrix<S> noise(x.rows(), x.cols());
      ctx.normal(noise, 0);
      x += static_cast<S>(c.noise_std) * noise;
    }
  }

 private:
  double eta_ = 1.0;
};

}  // namespace dqs
