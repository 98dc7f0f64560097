// 2-D energies with closed-form noised scores shared by the score-estimator and sampler tests: a correlated
// Gaussian and a two-component mixture with unequal weights and full covariances; and two energy wrappers,
// one counting the points evaluated, one putting +∞ (or NaN) energy with a NaN gradient on x₀ > 0.
#pragma once

#include "dqs/energy/gaussian_mixture.hpp"

#include "dqs/types.hpp"

#include <Eigen/Dense>

#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>

namespace dqs_test {

inline Eigen::MatrixXd cov2(double xx, double xy, double yy) {
  return (Eigen::MatrixXd(2, 2) << xx, xy, xy, yy).finished();
}

template <class S>
dqs::Gaussian<S> gaussian_2d() {
  return dqs::Gaussian<S>((Eigen::VectorXd(2) << 0.5, -0.3).finished(), cov2(1.0, 0.4, 0.7));
}

template <class S>
dqs::GaussianMixture<S> mixture_2d() {
  return dqs::GaussianMixture<S>({0.35, 0.65}, (Eigen::MatrixXd(2, 2) << -1.5, 1.5, 0.0, 0.5).finished(),
                                 {cov2(0.6, 0.2, 0.5), cov2(0.8, -0.3, 0.6)});
}

// Counts the points the energy is evaluated at.
template <class E>
struct Counting {
  using Scalar = typename E::Scalar;
  E inner;
  std::shared_ptr<std::atomic<std::int64_t>> count = std::make_shared<std::atomic<std::int64_t>>(0);
  dqs::Index dim() const { return inner.dim(); }
  void energy(dqs::ConstBatchRef<Scalar> x, dqs::ValuesRef<Scalar> values) const {
    *count += x.cols();
    inner.energy(x, values);
  }
  void energy_and_gradient(dqs::ConstBatchRef<Scalar> x, dqs::ValuesRef<Scalar> values,
                           dqs::BatchRef<Scalar> grad) const {
    *count += x.cols();
    inner.energy_and_gradient(x, values, grad);
  }
};

// `value` (+∞, zero density, by default; or NaN) on the half-space x₀ > 0, with a NaN gradient there that
// must never be used.
template <class E>
struct HalfSpace {
  using Scalar = typename E::Scalar;
  E inner;
  Scalar value = std::numeric_limits<Scalar>::infinity();
  dqs::Index dim() const { return inner.dim(); }
  void energy(dqs::ConstBatchRef<Scalar> x, dqs::ValuesRef<Scalar> values) const {
    inner.energy(x, values);
    for (dqs::Index j = 0; j < x.cols(); ++j)
      if (x(0, j) > 0) values[j] = value;
  }
  void energy_and_gradient(dqs::ConstBatchRef<Scalar> x, dqs::ValuesRef<Scalar> values,
                           dqs::BatchRef<Scalar> grad) const {
    inner.energy_and_gradient(x, values, grad);
    for (dqs::Index j = 0; j < x.cols(); ++j)
      if (x(0, j) > 0) {
        values[j] = value;
        grad.col(j).setConstant(std::numeric_limits<Scalar>::quiet_NaN());
      }
  }
};

}  // namespace dqs_test
