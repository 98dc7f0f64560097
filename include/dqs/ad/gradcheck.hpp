// Gradient check: a taped function against central finite differences of a plain-double reference.
// With a fixed random cotangent W, compares the tape's ∂(Σ W∘f)/∂x_i with
// [L(x + h e_i) − L(x − h e_i)] / 2h, L = Σ W∘f_ref, h = step·max(1, |x_i|).
#pragma once

#include "dqs/ad/tape.hpp"
#include "dqs/random/philox.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace dqs::ad {

struct GradientCheck {
  double max_value_error = 0;  // max |f_tape − f_ref| / max(1, |f_ref|) over the outputs
  double max_abs_error = 0;    // max |AD − FD| over the input entries
  double max_rel_error = 0;    // max |AD − FD| / max(1, |FD|): relative for large, absolute for small
  Index entries = 0;           // input entries checked

  bool passed(double tolerance) const { return max_value_error <= tolerance && max_rel_error <= tolerance; }
};

// reference(const std::vector<Matrix<double>>& inputs) -> Matrix<double>, the plain-double function;
// taped(Tape<double>&, const std::vector<Var<double>>& inputs) -> Var<double>, the same on the tape
// (every input a variable). Costs two reference evaluations per input entry: use small inputs.
template <class Reference, class Taped>
GradientCheck gradient_check(const Reference& reference, const Taped& taped, std::vector<Matrix<double>> inputs,
                             double step = 1e-6, std::uint64_t seed = 1) {
  dqs::detail::require_positive("gradient_check: step", step);
  Tape<double> tape;
  std::vector<Var<double>> vars;
  for (const auto& x : inputs) vars.push_back(tape.variable(x));
  const Var<double> y = taped(tape, vars);
  const Matrix<double> expected = reference(inputs);
  dqs::detail::require(expected.rows() == y.rows() && expected.cols() == y.cols(),
                       "gradient_check: the reference gives ", expected.rows(), "x", expected.cols(), " but the tape ",
                       y.rows(), "x", y.cols());

  // A NaN error must fail the check, and std::max ignores NaN.
  const auto not_nan = [](double e) { return std::isnan(e) ? std::numeric_limits<double>::infinity() : e; };
  GradientCheck result;
  for (Index i = 0; i < expected.size(); ++i) {
    const double ref = expected.data()[i];
    const double err = std::abs(y.value().data()[i] - ref) / std::max(1.0, std::abs(ref));
    result.max_value_error = std::max(result.max_value_error, not_nan(err));
  }

  Vector<double> w_flat(expected.size());
  random::Stream(seed, 0, 0, random::Purpose::user).normal<double>(w_flat);
  const Eigen::Map<const Matrix<double>> w(w_flat.data(), expected.rows(), expected.cols());
  if (!y.requires_grad()) return result;  // the output does not depend on the inputs: nothing to check
  tape.backward(y, w);
  const auto projected = [&](const std::vector<Matrix<double>>& at) {
    return (w.array() * reference(at).array()).sum();
  };

  for (std::size_t k = 0; k < inputs.size(); ++k) {
    const Matrix<double> ad = vars[k].gradient();
    for (Index i = 0; i < inputs[k].size(); ++i) {
      double& xi = inputs[k].data()[i];
      const double x0 = xi;
      const double h = step * std::max(1.0, std::abs(x0));
      xi = x0 + h;
      const double up = projected(inputs);
      xi = x0 - h;
      const double down = projected(inputs);
      xi = x0;
      const double fd = (up - down) / (2 * h);
      const double abs_err = std::abs(ad.data()[i] - fd);
      const double rel_err = abs_err / std::max(1.0, std::abs(fd));
      result.max_abs_error = std::max(result.max_abs_error, not_nan(abs_err));
      result.max_rel_error = std::max(result.max_rel_error, not_nan(rel_err));
      ++result.entries;
    }
  }
  return result;
}

}  // namespace dqs::ad
