// Weight initialisations, drawn from dqs::random::Stream so one seed fixes every weight:
// He (normal, std √(2/fan_in)), Xavier/Glorot (uniform on ±√(6/(fan_in + fan_out))) and orthogonal
// (Q of the QR factorisation of a Gaussian matrix, signs fixed by diag R; rows or columns orthonormal).
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/random/philox.hpp"
#include "dqs/types.hpp"

#include <Eigen/QR>

#include <cmath>
#include <cstdint>
#include <string_view>

namespace dqs::nn {

enum class Init : std::uint32_t { he = 0, xavier = 1, orthogonal = 2 };

inline constexpr std::string_view to_string(Init i) {
  switch (i) {
    case Init::he: return "he";
    case Init::xavier: return "xavier";
    case Init::orthogonal: return "orthogonal";
  }
  return "unknown";
}

// Fills the out×in weight matrix w (fan_in = in, fan_out = out) from `stream`, times `gain`.
template <Real S>
void initialize_weights(Init init, Eigen::Ref<Matrix<S>> w, random::Stream& stream, double gain = 1.0) {
  const Index out = w.rows(), in = w.cols();
  dqs::detail::require(out > 0 && in > 0, "nn::initialize_weights: empty ", out, "x", in, " matrix");
  Vector<double> draws(out * in);
  switch (init) {
    case Init::he: {
      stream.normal<double>(draws);
      draws *= gain * std::sqrt(2.0 / static_cast<double>(in));
      w = Eigen::Map<const Matrix<double>>(draws.data(), out, in).cast<S>();
      return;
    }
    case Init::xavier: {
      stream.uniform<double>(draws);
      const double bound = gain * std::sqrt(6.0 / static_cast<double>(in + out));
      draws = (2.0 * draws.array() - 1.0) * bound;
      w = Eigen::Map<const Matrix<double>>(draws.data(), out, in).cast<S>();
      return;
    }
    case Init::orthogonal: {
      stream.normal<double>(draws);
      const Index tall = std::max(out, in), narrow = std::min(out, in);
      const Eigen::Map<const Matrix<double>> gaussian(draws.data(), tall, narrow);
      const Eigen::HouseholderQR<Matrix<double>> qr(gaussian);
      Matrix<double> q = qr.householderQ() * Matrix<double>::Identity(tall, narrow);
      // Multiplying column k by sign(R_kk) makes Q Haar-distributed (not biased by the QR convention).
      const Matrix<double> r = qr.matrixQR().topRows(narrow).template triangularView<Eigen::Upper>();
      for (Index k = 0; k < narrow; ++k)
        if (r(k, k) < 0) q.col(k) *= -1.0;
      q *= gain;
      if (out >= in)
        w = q.cast<S>();
      else
        w = q.transpose().cast<S>();
      return;
    }
  }
  dqs::detail::fail("nn::initialize_weights: unknown init ", static_cast<std::uint32_t>(init));
}

}  // namespace dqs::nn
