// Variance-preserving schedule with linear β(t) = β_min + t(β_max − β_min):
// a(t) = exp(−½∫₀ᵗβ) = exp(−½(β_min t + ½(β_max − β_min)t²)), s(t)² = 1 − a(t)², f = −β/2, g² = β.
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/schedule/concepts.hpp"

#include <cmath>

namespace dqs {

class VPLinear {
 public:
  explicit VPLinear(double beta_min = 0.1, double beta_max = 20.0) : beta_min_(beta_min), beta_max_(beta_max) {
    detail::require_positive("VPLinear: beta_min", beta_min);
    detail::require_positive("VPLinear: beta_max", beta_max);
    detail::require(beta_max >= beta_min, "VPLinear: beta_max must be >= beta_min, got beta_min = ", beta_min,
                    ", beta_max = ", beta_max);
  }

  double beta(double t) const { return beta_min_ + t * (beta_max_ - beta_min_); }
  double log_alpha(double t) const { return -0.5 * (beta_min_ * t + 0.5 * (beta_max_ - beta_min_) * t * t); }
  double alpha(double t) const { return std::exp(log_alpha(t)); }
  double variance(double t) const { return -std::expm1(2.0 * log_alpha(t)); }
  double sigma(double t) const { return std::sqrt(variance(t)); }
  double drift(double t) const { return -0.5 * beta(t); }
  double diffusion_sq(double t) const { return beta(t); }
  double prior_std() const { return 1.0; }

 private:
  double beta_min_;
  double beta_max_;
};
static_assert(NoiseSchedule<VPLinear>);

}  // namespace dqs
