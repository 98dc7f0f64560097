// Sinusoidal embedding of scalar conditions (diffusion time t, noise level, …): each of C condition
// rows becomes 2K rows [sin(ω_k c); cos(ω_k c)], k = 0..K−1, with geometric frequencies
// ω_k = ω_min (ω_max/ω_min)^(k/(K−1)) (ω_0 = ω_min when K = 1).
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/types.hpp"

#include <cmath>

namespace dqs::nn {

template <Real S>
class SinusoidalEmbedding {
 public:
  // dim = 2K features per condition (even, ≥ 2).
  explicit SinusoidalEmbedding(Index dim, double min_frequency = 1.0, double max_frequency = 1000.0)
      : dim_(dim), min_frequency_(min_frequency), max_frequency_(max_frequency) {
    dqs::detail::require(dim >= 2 && dim % 2 == 0, "nn::SinusoidalEmbedding: dim must be even and >= 2, got ", dim);
    dqs::detail::require_positive("nn::SinusoidalEmbedding: min_frequency", min_frequency);
    dqs::detail::require_positive("nn::SinusoidalEmbedding: max_frequency", max_frequency);
    dqs::detail::require(max_frequency >= min_frequency, "nn::SinusoidalEmbedding: max_frequency ", max_frequency,
                         " < min_frequency ", min_frequency);
    const Index k = dim / 2;
    frequencies_.resize(k);
    for (Index i = 0; i < k; ++i) {
      const double fraction = k == 1 ? 0.0 : static_cast<double>(i) / static_cast<double>(k - 1);
      frequencies_[i] = static_cast<S>(min_frequency * std::pow(max_frequency / min_frequency, fraction));
    }
  }

  Index dim() const { return dim_; }
  double min_frequency() const { return min_frequency_; }
  double max_frequency() const { return max_frequency_; }
  const Vector<S>& frequencies() const { return frequencies_; }

  // out (C·dim × N): rows [r·dim, (r+1)·dim) embed condition row r of c (C×N).
  void embed(ConstBatchRef<S> c, BatchRef<S> out) const {
    dqs::detail::require(out.rows() == c.rows() * dim_ && out.cols() == c.cols(), "nn::SinusoidalEmbedding: out is ",
                         out.rows(), "x", out.cols(), ", expected ", c.rows() * dim_, "x", c.cols());
    // Each embedding is computed into the same aligned buffer and copied, so a sample's features
    // do not depend on its position in the batch (Eigen rounds vectorised and scalar tails differently).
    const Index k = dim_ / 2;
    Vector<S> e(dim_);
    const auto fill = [&](S value) {
      e.head(k) = (frequencies_ * value).array().sin().matrix();
      e.tail(k) = (frequencies_ * value).array().cos().matrix();
    };
    for (Index r = 0; r < c.rows(); ++r) {
      if (c.cols() > 1 && (c.row(r).array() == c(r, 0)).all()) {
        // One condition for the whole batch (a sampler's time step): embed once.
        fill(c(r, 0));
        out.middleRows(r * dim_, dim_).colwise() = e;
        continue;
      }
      for (Index j = 0; j < c.cols(); ++j) {
        fill(c(r, j));
        out.col(j).segment(r * dim_, dim_) = e;
      }
    }
  }

 private:
  Index dim_;
  double min_frequency_;
  double max_frequency_;
  Vector<S> frequencies_;
};

}  // namespace dqs::nn
