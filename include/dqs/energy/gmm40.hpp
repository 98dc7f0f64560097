// The standard GMM-40 benchmark (iDEM/DQS): 40 equally weighted 2-D Gaussians, per-axis standard
// deviation softplus(1) = log(1 + e) ≈ 1.3132616875, means uniform on [−40, 40]² (seed 0 of the
// benchmark's generator; the table below is ../shared/data/gmm40_means.csv, compiled in).
#pragma once

#include "dqs/energy/gaussian_mixture.hpp"

#include <array>
#include <cmath>
#include <numbers>

namespace dqs {

inline constexpr std::array<std::array<double, 2>, 40> kGmm40Means = {{
      {-0.2994728, 21.4577446},
      {-32.9218063, -29.4375610},
      {-15.4061747, 10.7262945},
      {-0.7925272, 31.7155800},
      {-3.5497618, 10.5845022},
      {-12.0885229, -7.8626156},
      {-38.2139397, -26.4912834},
      {-16.4889240, 1.4817429},
      {15.8134079, 24.0009117},
      {-27.1176434, -17.4185143},
      {14.5286846, 33.2155190},
      {-8.2320070, 29.9324703},
      {-6.4473343, 4.2325640},
      {36.2190475, -37.1068153},
      {-25.1815186, -10.1266098},
      {-15.5919981, 34.5600319},
      {-25.9271851, -18.4133148},
      {-27.9456177, -37.4624405},
      {-23.3496189, 34.3839226},
      {17.8487358, 19.3869019},
      {2.1036625, -20.5073395},
      {6.7673874, -37.3477898},
      {-28.9026489, -20.6212006},
      {25.2375183, 23.4528503},
      {-17.7398014, -1.4432955},
      {25.5824280, 39.7653236},
      {15.8752871, 5.4037142},
      {26.8194542, -23.5520935},
      {7.4537611, -31.0122204},
      {-27.7234459, -20.6633415},
      {18.0989227, 16.0864162},
      {-23.6940994, 12.0842838},
      {21.9588814, -5.0486946},
      {1.5272617, 9.2681885},
      {24.8150635, 38.4077644},
      {-30.8249435, -14.6587896},
      {15.7203960, 33.1419754},
      {34.8082924, 35.2942696},
      {7.9605818, -34.7833061},
      {3.6796999, -25.0242138}
}};

// Per-axis standard deviation of every GMM-40 component: softplus(1).
inline double gmm40_std() { return std::log1p(std::numbers::e); }

// GMM-40 means as a 2×40 matrix.
inline Eigen::MatrixXd gmm40_means() {
  Eigen::MatrixXd means(2, 40);
  for (Index c = 0; c < 40; ++c) means.col(c) << kGmm40Means[c][0], kGmm40Means[c][1];
  return means;
}

template <Real S = float>
GaussianMixture<S> gmm40() {
  const double variance = gmm40_std() * gmm40_std();
  return GaussianMixture<S>(std::vector<double>(40, 1.0 / 40), gmm40_means(),
                            std::vector<Eigen::MatrixXd>(40, variance * Eigen::MatrixXd::Identity(2, 2)));
}

}  // namespace dqs
