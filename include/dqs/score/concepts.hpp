// Score-estimator concept: an estimate of the noised score ∇_x log p_t(x), where p_t is the law of
// x_t = a(t)·x_0 + s(t)·ε with x_0 ~ p ∝ exp(−E), on a D×N batch at one time t.
#pragma once

#include "dqs/energy/concepts.hpp"
#include "dqs/random/philox.hpp"
#include "dqs/schedule/concepts.hpp"

#include <concepts>
#include <cstdint>

namespace dqs {

// Valid expressions, for `const Est est`, energy `e`, schedule `sch`, a D×N batch `x`, time `t`,
// stream key `key` (column j is global sample key.first_sample + j) and a D×N output `score`:
//   est.estimate(e, sch, x, t, key, score)   fills score; returns the energy evaluations it spent
//   est.validate(e)                          throws std::invalid_argument if est cannot serve e
// Column j of the result may depend only on column j of x and on the streams of its global index.
template <class Est, class E, class Sch>
concept ScoreEstimator =
    Energy<E> && NoiseSchedule<Sch> &&
    requires(const Est& est, const E& e, const Sch& sch, ConstBatchRef<typename E::Scalar> x, double t,
             const random::StreamKey& key, BatchRef<typename E::Scalar> score) {
      { est.estimate(e, sch, x, t, key, score) } -> std::convertible_to<std::int64_t>;
      est.validate(e);
    };

// Estimators that also estimate log p_t(x) up to a constant depending only on t (MALA correctors):
//   est.log_density(e, sch, x, t, key, values)   returns the energy evaluations it spent
template <class Est, class E, class Sch>
concept LogDensityEstimator =
    ScoreEstimator<Est, E, Sch> &&
    requires(const Est& est, const E& e, const Sch& sch, ConstBatchRef<typename E::Scalar> x, double t,
             const random::StreamKey& key, ValuesRef<typename E::Scalar> values) {
      { est.log_density(e, sch, x, t, key, values) } -> std::convertible_to<std::int64_t>;
    };

// Energies whose noised law is known in closed form: e.noised(a, s) is the energy of a·X + s·ε.
template <class E>
concept ClosedFormNoised = DifferentiableEnergy<E> && requires(const E& e, double a, double s) {
  { e.noised(a, s) } -> DifferentiableEnergy;
};

}  // namespace dqs
