// Counter-based random streams (Random123 Philox4x32-10). A stream is keyed by the seed and counted
// by (sample index, step, purpose, draw): one sample's draws never depend on the thread count, the
// batch split or how many other samples exist, so one seed gives bit-identical samples everywhere.
#pragma once

#include "dqs/types.hpp"

#include <Random123/philox.h>

#include <cmath>
#include <cstdint>
#include <numbers>

namespace dqs::random {

// What a draw is for; part of the counter so that different uses never share numbers.
enum class Purpose : std::uint32_t {
  prior = 1,      // initial points at t = 1
  diffusion = 2,  // the Brownian increment of a reverse-SDE step
  score = 3,      // Monte Carlo score proposals
  corrector = 4,  // Langevin / MALA noise
  accept = 5,     // Metropolis accept/reject uniforms
  exact = 6,      // exact samples of closed-form energies
  mcmc = 7,       // MCMC proposals
  user = 1000,    // first value free for user code
};

// Identifies the draws of a batch whose column j is global sample `first_sample + j`.
struct StreamKey {
  std::uint64_t seed = 0;
  std::uint64_t first_sample = 0;
  std::uint32_t step = 0;
  Purpose purpose = Purpose::user;
  std::uint32_t draw = 0;  // distinguishes several draws of the same purpose within one step

  StreamKey with(Purpose p, std::uint32_t d = 0) const {
    StreamKey k = *this;
    k.purpose = p;
    k.draw = d;
    return k;
  }
};

// The stream of one sample: uniform or standard normal numbers, filled in blocks of the Philox
// output. Cheap to construct (no state but the counter); not shared between threads.
class Stream {
 public:
  using Rng = r123::Philox4x32;

  Stream(std::uint64_t seed, std::uint64_t sample, std::uint32_t step, Purpose purpose,
         std::uint32_t draw = 0) {
    key_ = Rng::key_type{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
    // The block index lives in the low 32 bits of word 0; sample in words 1 (and the high half of
    // word 0's partner), step and purpose/draw in words 2–3.
    counter_ = Rng::ctr_type{{0u, static_cast<std::uint32_t>(sample), step,
                              (static_cast<std::uint32_t>(purpose) << 16) ^ draw ^
                                  (static_cast<std::uint32_t>(sample >> 32) << 24)}};
  }

  Stream(const StreamKey& key, Index column)
      : Stream(key.seed, key.first_sample + static_cast<std::uint64_t>(column), key.step, key.purpose,
               key.draw) {}

  // Next four 32-bit words.
  Rng::ctr_type next_block() {
    Rng rng;
    auto out = rng(counter_, key_);
    ++counter_.v[0];
    return out;
  }

  // Uniforms in the open interval (0, 1): 24 random bits for float, 53 for double.
  template <Real S, class Derived>
  void uniform(Eigen::DenseBase<Derived>& out) {
    const Index n = out.size();
    Index i = 0;
    while (i < n) {
      const auto block = next_block();
      if constexpr (std::same_as<S, float>) {
        for (int w = 0; w < 4 && i < n; ++w, ++i)
          out.coeffRef(i) = (static_cast<float>(block.v[w] >> 8) + 0.5f) * 0x1p-24f;
      } else {
        for (int w = 0; w < 4 && i < n; w += 2, ++i) {
          const std::uint64_t bits = (std::uint64_t(block.v[w]) << 32) | block.v[w + 1];
          out.coeffRef(i) = (static_cast<double>(bits >> 11) + 0.5) * 0x1p-53;
        }
      }
    }
  }

  // Standard normals by Box–Muller over vectorised Eigen arrays: the first ⌈n/2⌉ outputs are the
  // cosine halves, the rest the sine halves of the same uniform pairs. `out` is any dense vector.
  template <Real S, class Derived>
  void normal(Eigen::DenseBase<Derived>&& out) { normal<S>(out); }

  template <Real S, class Derived>
  void normal(Eigen::DenseBase<Derived>& out) {
    const Index n = out.size();
    const Index pairs = (n + 1) / 2;
    Eigen::Array<S, Eigen::Dynamic, 1> u(2 * pairs);
    uniform<S>(u);
    const Eigen::Array<S, Eigen::Dynamic, 1> radius = (S(-2) * u.head(pairs).log()).sqrt();
    const Eigen::Array<S, Eigen::Dynamic, 1> angle = S(2 * std::numbers::pi) * u.tail(pairs);
    // Evaluated into plain arrays first: a reshaped or strided destination has no SIMD path, and
    // would turn the sine and cosine into scalar libm calls.
    u.head(pairs) = radius * angle.cos();
    u.tail(pairs) = radius * angle.sin();
    out.derived().array() = u.head(n);
  }

 private:
  Rng::key_type key_;
  Rng::ctr_type counter_;
};

// Fills column j of `out` with standard normals from the stream of sample key.first_sample + j.
template <Real S>
void fill_normal(const StreamKey& key, BatchRef<S> out) {
  for (Index j = 0; j < out.cols(); ++j) {
    Stream stream(key, j);
    auto column = out.col(j);
    stream.normal<S>(column);
  }
}

}  // namespace dqs::random
