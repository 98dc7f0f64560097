// Lennard-Jones cluster (LJ-13: 13 particles in 3-D, D = 39; LJ-55: D = 165), the benchmark convention:
// E(x) = Σ_{i≠j} ε[(r_m/r_ij)^12 − 2(r_m/r_ij)^6] + c·½Σ_i‖x_i − x̄‖², r_ij = sqrt(‖x_i − x_j‖² + 1e-6),
// the first sum over ORDERED pairs (each pair counted twice), as in ../shared/data's reference samples.
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/energy/concepts.hpp"
#include "dqs/energy/pair_potential.hpp"
#include "dqs/energy/particles.hpp"

namespace dqs {

template <Real S>
class LennardJones {
 public:
  using Scalar = S;

  // Softening added to every squared distance: at overlap r² = 1e-6 and (r_m/r)^12 = r_m^12·1e36, which
  // keeps energies finite (the sum is formed in double; float results saturate at FLT_MAX).
  static constexpr double softening = 1e-6;

  explicit LennardJones(Index n_particles = 13, Index spatial_dim = 3, double epsilon = 1.0, double r_m = 1.0,
                        double harmonic = 1.0)
      : layout_(n_particles, spatial_dim), epsilon_(epsilon), r_m_(r_m), harmonic_(harmonic) {
    detail::require_positive("LennardJones: epsilon", epsilon);
    detail::require_positive("LennardJones: r_m", r_m);
    detail::require(std::isfinite(harmonic) && harmonic >= 0,
                    "LennardJones: harmonic (c) must be finite and >= 0, got ", harmonic);
  }

  Index dim() const { return layout_.dim(); }
  const ParticleLayout& layout() const { return layout_; }
  double epsilon() const { return epsilon_; }
  double r_m() const { return r_m_; }
  double harmonic() const { return harmonic_; }

  void energy(ConstBatchRef<S> x, ValuesRef<S> values) const {
    detail::evaluate_pair_potential<false, S>("LennardJones::energy", layout_, pair(), harmonic_, x, values,
                                              nullptr);
  }

  void energy_and_gradient(ConstBatchRef<S> x, ValuesRef<S> values, BatchRef<S> grad) const {
    detail::evaluate_pair_potential<true, S>("LennardJones::energy_and_gradient", layout_, pair(), harmonic_, x,
                                             values, &grad);
  }

 private:
  // φ(q) for one unordered pair, both orders included: 2ε(u⁶ − 2u³), u = r_m²/(q + 1e-6) = (r_m/r)²;
  // dφ/dq = −12ε(u⁶ − u³)/(q + 1e-6). One division per pair; branch-free so it vectorises.
  struct Pair {
    double two_epsilon, r_m_sq;
    void operator()(double q, double& phi, double& slope) const {
      const double inv = 1.0 / (q + softening);
      const double u = r_m_sq * inv;
      const double u3 = u * u * u;
      const double u6 = u3 * u3;
      phi = two_epsilon * (u6 - 2.0 * u3);
      slope = -6.0 * two_epsilon * (u6 - u3) * inv;
    }
  };
  Pair pair() const { return Pair{2.0 * epsilon_, r_m_ * r_m_}; }

  ParticleLayout layout_;
  double epsilon_;
  double r_m_;
  double harmonic_;
};
static_assert(DifferentiableEnergy<LennardJones<float>>);
static_assert(DifferentiableEnergy<LennardJones<double>>);

}  // namespace dqs
