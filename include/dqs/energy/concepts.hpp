// Energy concepts. An energy E(x) defines the Boltzmann density p(x) ∝ exp(−E(x)); it is evaluated
// on a D×N batch (one point per column) into N values and, when differentiable, D×N gradients.
#pragma once

#include "dqs/types.hpp"

#include <concepts>

namespace dqs {

// Valid expressions, for `const E e`, `x` a D×N batch (ConstBatchRef<S>), `values` N values
// (ValuesRef<S>, sized by the caller), `grad` a D×N batch (BatchRef<S>, sized by the caller):
//   typename E::Scalar         float or double
//   e.dim()                    D
//   e.energy(x, values)        values[j] = E(x.col(j)); +∞ means zero density; never NaN for finite x
// Implementations must be safe to call concurrently from several threads.
template <class E>
concept Energy = requires(const E& e, ConstBatchRef<typename E::Scalar> x,
                          ValuesRef<typename E::Scalar> values) {
  requires Real<typename E::Scalar>;
  { e.dim() } -> std::convertible_to<Index>;
  e.energy(x, values);
};

//   e.energy_and_gradient(x, values, grad)   also grad.col(j) = ∇E(x.col(j))
template <class E>
concept DifferentiableEnergy =
    Energy<E> && requires(const E& e, ConstBatchRef<typename E::Scalar> x,
                          ValuesRef<typename E::Scalar> values, BatchRef<typename E::Scalar> grad) {
      e.energy_and_gradient(x, values, grad);
    };

//   e.sample_exact(n, seed)   a D×n batch of independent exact samples (for metrics and tests)
template <class E>
concept ExactlySampleable = Energy<E> && requires(const E& e, Index n, std::uint64_t seed) {
  { e.sample_exact(n, seed) } -> std::convertible_to<Matrix<typename E::Scalar>>;
};

}  // namespace dqs
