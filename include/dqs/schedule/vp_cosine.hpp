// Variance-preserving cosine schedule (Nichol & Dhariwal 2021), with the angle φ(t) running linearly
// from φ₀ = (π/2)·s₀/(1+s₀) to φ₁ = arccos(a_min·cos φ₀), so that a(1) = a_min > 0 keeps g² finite:
// a(t) = cos φ(t)/cos φ₀, s² = 1 − a², f = −tan φ(t)·(φ₁ − φ₀), g² = −2f.
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/schedule/concepts.hpp"

#include <cmath>
#include <numbers>

namespace dqs {

class VPCosine {
 public:
  explicit VPCosine(double offset = 0.008, double alpha_min = 0.02) : offset_(offset), alpha_min_(alpha_min) {
    detail::require(std::isfinite(offset) && offset >= 0.0, "VPCosine: offset must be finite and >= 0, got ", offset);
    detail::require(std::isfinite(alpha_min) && alpha_min > 0.0 && alpha_min < 1.0,
                    "VPCosine: alpha_min must lie in (0, 1), got ", alpha_min);
    phi0_ = 0.5 * std::numbers::pi * offset / (1.0 + offset);
    phi1_ = std::acos(alpha_min * std::cos(phi0_));
  }

  double angle(double t) const { return phi0_ + t * (phi1_ - phi0_); }
  double alpha(double t) const { return std::cos(angle(t)) / std::cos(phi0_); }
  double variance(double t) const {
    const double a = alpha(t);
    return 1.0 - a * a;
  }
  double sigma(double t) const { return std::sqrt(variance(t)); }
  double drift(double t) const { return -std::tan(angle(t)) * (phi1_ - phi0_); }
  double diffusion_sq(double t) const { return -2.0 * drift(t); }
  double prior_std() const { return 1.0; }

 private:
  double offset_;
  double alpha_min_;
  double phi0_;
  double phi1_;
};
static_assert(NoiseSchedule<VPCosine>);

}  // namespace dqs
