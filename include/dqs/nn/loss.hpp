// Regression loss for score matching and critics: weighted mean squared error over a batch,
// L = (1/N) Σ_j w_j ‖out_j − y_j‖² (w ≡ 1 when no weights are given), and ∂L/∂out = (2/N) w_j (out_j − y_j).
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/types.hpp"

namespace dqs::nn {

// Returns L and writes ∂L/∂out into d_out (same shape as out; must not alias out or target).
// `weights` has N entries, or none for uniform weights.
template <Real S>
S weighted_mse(ConstBatchRef<S> out, ConstBatchRef<S> target, ConstValuesRef<S> weights, BatchRef<S> d_out) {
  const Index n = out.cols();
  dqs::detail::require(n > 0, "nn::weighted_mse: empty batch");
  dqs::detail::require(target.rows() == out.rows() && target.cols() == n, "nn::weighted_mse: target is ",
                       target.rows(), "x", target.cols(), ", output is ", out.rows(), "x", n);
  dqs::detail::require(d_out.rows() == out.rows() && d_out.cols() == n, "nn::weighted_mse: d_out is ", d_out.rows(),
                       "x", d_out.cols(), ", output is ", out.rows(), "x", n);
  dqs::detail::require(weights.size() == 0 || weights.size() == n, "nn::weighted_mse: ", weights.size(),
                       " weights for ", n, " samples");
  const S inv_n = S(1) / static_cast<S>(n);
  d_out = out - target;
  S loss;
  if (weights.size() == 0) {
    loss = d_out.squaredNorm() * inv_n;
    d_out *= S(2) * inv_n;
  } else {
    loss = (d_out.colwise().squaredNorm().array() * weights.transpose().array()).sum() * inv_n;
    d_out.array().rowwise() *= (S(2) * inv_n) * weights.transpose().array();
  }
  return loss;
}

}  // namespace dqs::nn
