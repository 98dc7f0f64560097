// Probability-flow ODE dx/dt = f x − ½ g² ∇log p_t(x), integrated backwards with Heun's method
// (explicit trapezoid, second order): two score evaluations per step.
#pragma once

#include "dqs/sde/concepts.hpp"

namespace dqs {

class HeunODE {
 public:
  void validate() const {}

  template <StepContext C>
  void step(C& ctx, BatchRef<typename C::Scalar> x, double t, double dt) const {
    using S = typename C::Scalar;
    const auto& schedule = ctx.schedule();
    Matrix<S> score(x.rows(), x.cols());
    // velocity v(x, t) = f x − ½ g² S; x(t − dt) = x − dt·v
    auto velocity = [&](const Matrix<S>& point, double time, std::uint32_t draw) {
      ctx.score(point, time, score, draw);
      return Matrix<S>(static_cast<S>(schedule.drift(time)) * point -
                       static_cast<S>(0.5 * schedule.diffusion_sq(time)) * score);
    };
    const Matrix<S> start = x;
    const Matrix<S> v0 = velocity(start, t, 0);
    const Matrix<S> euler = start - static_cast<S>(dt) * v0;
    const Matrix<S> v1 = velocity(euler, t - dt, 1);
    x = start - static_cast<S>(0.5 * dt) * (v0 + v1);
  }
};

}  // namespace dqs
