// Reverse-time Euler–Maruyama for the family of reverse processes with diffusion scale η:
// dx = [f x − ½(1 + η²) g² ∇log p_t(x)] dt + η g dW̄, so x ← x − [f x − ½(1+η²) g² S] dt + η g √dt z.
// η = 1 is the reverse SDE, η = 0 the probability-flow ODE (Euler).
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/sde/concepts.hpp"

#include <cmath>

namespace dqs {

class EulerMaruyama {
 public:
  EulerMaruyama() = default;
  explicit EulerMaruyama(double diffusion_scale) : diffusion_scale_(diffusion_scale) { validate(); }

  void validate() const {
    detail::require(std::isfinite(diffusion_scale_) && diffusion_scale_ >= 0,
                    "EulerMaruyama: diffusion_scale must be finite and >= 0, got ", diffusion_scale_);
  }
  double diffusion_scale() const { return diffusion_scale_; }

  template <StepContext C>
  void step(C& ctx, BatchRef<typename C::Scalar> x, double t, double dt) const {
    using S = typename C::Scalar;
    const auto& schedule = ctx.schedule();
    Matrix<S> score(x.rows(), x.cols());
    ctx.score(x, t, score, 0);
    const double g2 = schedule.diffusion_sq(t);
    const double eta = diffusion_scale_;
    // x − (f x − c g² S) dt  =  (1 − f dt) x + c g² dt S
    x = static_cast<S>(1 - schedule.drift(t) * dt) * x + static_cast<S>(0.5 * (1 + eta * eta) * g2 * dt) * score;
    if (eta > 0) {
      Matrix<S> noise(x.rows(), x.cols());
      ctx.normal(noise, 0);
      x += static_cast<S>(eta * std::sqrt(g2 * dt)) * noise;
    }
  }

 private:
  double diffusion_scale_ = 1.0;
};

}  // namespace dqs
