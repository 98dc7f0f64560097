// Many-particle double well (DW-4: 4 particles in 2-D, D = 8), the benchmark convention:
// E(x) = Σ_{i<j} [a(d_ij − d0)^4 + b(d_ij − d0)^2], d_ij = ‖x_i − x_j‖, defaults a = 0.9, b = −4, d0 = 4;
// ∇_{x_i}E = Σ_{j≠i} [4a(d_ij − d0)^3 + 2b(d_ij − d0)](x_i − x_j)/d_ij (0 at d_ij = 0, a subgradient).
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/energy/concepts.hpp"
#include "dqs/energy/pair_potential.hpp"
#include "dqs/energy/particles.hpp"

#include <cmath>

namespace dqs {

template <Real S>
class DoubleWell {
 public:
  using Scalar = S;

  explicit DoubleWell(Index n_particles = 4, Index spatial_dim = 2, double a = 0.9, double b = -4.0,
                      double d0 = 4.0)
      : layout_(n_particles, spatial_dim), a_(a), b_(b), d0_(d0) {
    // a > 0 keeps exp(−E) bounded as distances grow; b of either sign (b < 0 makes the two wells).
    detail::require_positive("DoubleWell: a", a);
    detail::require_finite("DoubleWell: b", b);
    detail::require(std::isfinite(d0) && d0 >= 0, "DoubleWell: d0 must be finite and >= 0, got ", d0);
  }

  Index dim() const { return layout_.dim(); }
  const ParticleLayout& layout() const { return layout_; }
  double a() const { return a_; }
  double b() const { return b_; }
  double d0() const { return d0_; }

  void energy(ConstBatchRef<S> x, ValuesRef<S> values) const {
    detail::evaluate_pair_potential<false, S>("DoubleWell::energy", layout_, pair(), 0.0, x, values, nullptr);
  }

  void energy_and_gradient(ConstBatchRef<S> x, ValuesRef<S> values, BatchRef<S> grad) const {
    detail::evaluate_pair_potential<true, S>("DoubleWell::energy_and_gradient", layout_, pair(), 0.0, x, values,
                                             &grad);
  }

 private:
  // φ(q) = a t⁴ + b t², t = √q − d0; dφ/dq = (4a t³ + 2b t)/(2√q).
  struct Pair {
    double a, b, d0;
    void operator()(double q, double& phi, double& slope) const {
      const double d = std::sqrt(q);
      const double t = d - d0;
      const double t2 = t * t;
      phi = a * t2 * t2 + b * t2;
      const double safe_d = d > 0.0 ? d : 1.0;
      slope = d > 0.0 ? (4.0 * a * t2 * t + 2.0 * b * t) / (2.0 * safe_d) : 0.0;
    }
  };
  Pair pair() const { return Pair{a_, b_, d0_}; }

  ParticleLayout layout_;
  double a_;
  double b_;
  double d0_;
};
static_assert(DifferentiableEnergy<DoubleWell<float>>);
static_assert(DifferentiableEnergy<DoubleWell<double>>);

}  // namespace dqs
