// Noise-schedule concept: the forward perturbation x_t = a(t)·x_0 + s(t)·ε, t ∈ [0, 1], written as
// the linear SDE dx = f(t)·x dt + g(t) dW with f = d log a/dt and g² = d(s²)/dt − 2 f s².
#pragma once

#include <concepts>

namespace dqs {

// Valid expressions, for `const Sch s` and `double t` in [0, 1]:
//   s.alpha(t)          a(t), the signal scale (1 for variance-exploding schedules)
//   s.sigma(t)          s(t), the noise standard deviation; s(0) = 0
//   s.drift(t)          f(t) = d log a / dt, the forward drift coefficient
//   s.diffusion_sq(t)   g(t)², the forward diffusion rate
//   s.prior_std()       standard deviation of the zero-mean Gaussian prior the reverse process starts from at t = 1
template <class Sch>
concept NoiseSchedule = requires(const Sch& s, double t) {
  { s.alpha(t) } -> std::convertible_to<double>;
  { s.sigma(t) } -> std::convertible_to<double>;
  { s.drift(t) } -> std::convertible_to<double>;
  { s.diffusion_sq(t) } -> std::convertible_to<double>;
  { s.prior_std() } -> std::convertible_to<double>;
};

}  // namespace dqs
