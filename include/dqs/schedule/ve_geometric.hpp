// Variance-exploding geometric schedule (as in iDEM and DQS): a(t) = 1,
// s(t)² = h(t) = σ_min²((σ_max/σ_min)^{2t} − 1), g(t)² = dh/dt = 2 ln(σ_max/σ_min)·σ_min²(σ_max/σ_min)^{2t}.
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/schedule/concepts.hpp"

#include <cmath>

namespace dqs {

class VEGeometric {
 public:
  VEGeometric(double sigma_min, double sigma_max) : sigma_min_(sigma_min), sigma_max_(sigma_max) {
    detail::require_positive("VEGeometric: sigma_min", sigma_min);
    detail::require_positive("VEGeometric: sigma_max", sigma_max);
    detail::require(sigma_max > sigma_min, "VEGeometric: sigma_max must exceed sigma_min, got sigma_min = ",
                    sigma_min, ", sigma_max = ", sigma_max);
    log_ratio_ = std::log(sigma_max / sigma_min);
  }

  double alpha(double) const { return 1.0; }
  double sigma(double t) const { return std::sqrt(variance(t)); }
  double variance(double t) const {
    // σ_min²·expm1(2t·ln r) keeps h accurate for small t.
    return sigma_min_ * sigma_min_ * std::expm1(2.0 * t * log_ratio_);
  }
  double drift(double) const { return 0.0; }
  double diffusion_sq(double t) const {
    return 2.0 * log_ratio_ * sigma_min_ * sigma_min_ * std::exp(2.0 * t * log_ratio_);
  }
  double prior_std() const { return sigma(1.0); }

  double sigma_min() const { return sigma_min_; }
  double sigma_max() const { return sigma_max_; }

 private:
  double sigma_min_;
  double sigma_max_;
  double log_ratio_;
};
static_assert(NoiseSchedule<VEGeometric>);

}  // namespace dqs
