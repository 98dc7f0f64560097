// ExactScore: the noised score in closed form, ∇ log p_t(x) = −∇E_t(x) with E_t the energy of
// a(t)·X + s(t)·ε (e.noised(a, s)); the truth every Monte Carlo estimator is tested against.
#pragma once

#include "dqs/score/concepts.hpp"

#include <cstdint>

namespace dqs {

struct ExactScore {
  template <ClosedFormNoised E>
  void validate(const E&) const {}

  // Spends no evaluations of the target energy (the closed form replaces them): returns 0.
  template <ClosedFormNoised E, NoiseSchedule Sch>
  std::int64_t estimate(const E& energy, const Sch& schedule, ConstBatchRef<typename E::Scalar> x, double t,
                        const random::StreamKey&, BatchRef<typename E::Scalar> score) const {
    using S = typename E::Scalar;
    const auto noised = energy.noised(schedule.alpha(t), schedule.sigma(t));
    Vector<S> values(x.cols());
    noised.energy_and_gradient(x, values, score);
    score = -score;
    return 0;
  }

  // Exact log p_t(x).
  template <ClosedFormNoised E, NoiseSchedule Sch>
  std::int64_t log_density(const E& energy, const Sch& schedule, ConstBatchRef<typename E::Scalar> x, double t,
                           const random::StreamKey&, ValuesRef<typename E::Scalar> values) const {
    energy.noised(schedule.alpha(t), schedule.sigma(t)).energy(x, values);
    values = -values;
    return 0;
  }
};

}  // namespace dqs
