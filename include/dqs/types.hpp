// Core aliases. A batch of N points in D dimensions is a column-major D×N matrix, one point per
// column: byte-identical to a NumPy (N, D) C-order array, each point contiguous.
#pragma once

#include <Eigen/Core>

#include <concepts>
#include <cstdint>

namespace dqs {

using Index = Eigen::Index;

template <class S>
using Matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;  // a D×N batch
template <class S>
using Vector = Eigen::Matrix<S, Eigen::Dynamic, 1>;  // N per-point values (energies, weights)

// Argument types: maps, blocks and matrices all bind without a copy.
template <class S>
using ConstBatchRef = Eigen::Ref<const Matrix<S>>;
template <class S>
using BatchRef = Eigen::Ref<Matrix<S>>;
template <class S>
using ConstValuesRef = Eigen::Ref<const Vector<S>>;
template <class S>
using ValuesRef = Eigen::Ref<Vector<S>>;

template <class S>
concept Real = std::same_as<S, float> || std::same_as<S, double>;

}  // namespace dqs
