// Particle systems: a point of dimension D = n·d holds n particles of spatial dimension d, particle i
// at rows [i·d, (i+1)·d). Centre-of-mass removal x_i ← x_i − x̄ (the orthogonal projection onto the
// centre-of-mass-free subspace), its Gaussian prior N(0, σ²(I_n − 11ᵀ/n) ⊗ I_d), per-particle clipping.
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/random/philox.hpp"
#include "dqs/types.hpp"

#include <cmath>

namespace dqs {

// How a point splits into particles. Both counts ≥ 1.
class ParticleLayout {
 public:
  ParticleLayout(Index n_particles, Index spatial_dim) : n_particles_(n_particles), spatial_dim_(spatial_dim) {
    detail::require(n_particles >= 1, "ParticleLayout: n_particles must be >= 1, got ", n_particles);
    detail::require(spatial_dim >= 1, "ParticleLayout: spatial_dim must be >= 1, got ", spatial_dim);
  }

  Index n_particles() const { return n_particles_; }
  Index spatial_dim() const { return spatial_dim_; }
  Index dim() const { return n_particles_ * spatial_dim_; }

  // Throws unless n_particles · spatial_dim == dim, the dimension of `what` (an energy, a batch).
  void require_dim(Index dim, const char* what = "energy") const {
    detail::require(this->dim() == dim, "ParticleLayout: n_particles * spatial_dim = ", n_particles_, " * ",
                    spatial_dim_, " = ", this->dim(), " must equal the ", what, " dimension, got ", dim);
  }

  friend bool operator==(const ParticleLayout&, const ParticleLayout&) = default;

 private:
  Index n_particles_;
  Index spatial_dim_;
};

// The centre of mass x̄ = (1/n) Σ_i x_i of every column: a d×N batch.
template <Real S>
Matrix<S> centre_of_mass(const ParticleLayout& layout, ConstBatchRef<S> x) {
  layout.require_dim(x.rows(), "batch");
  const Index n = layout.n_particles(), d = layout.spatial_dim();
  Matrix<S> centre = Matrix<S>::Zero(d, x.cols());
  for (Index j = 0; j < x.cols(); ++j) {
    for (Index i = 0; i < n; ++i) centre.col(j) += x.col(j).segment(i * d, d);
    centre.col(j) /= static_cast<S>(n);
  }
  return centre;
}

// In place x_i ← x_i − x̄ for every column. The map is the orthogonal projection P = (I_n − 11ᵀ/n) ⊗ I_d,
// so it serves points and, equally, scores or gradients (the component along a translation removed).
// Serial: a few flops per coordinate cost less than waking an OpenMP team.
template <Real S>
void remove_centre_of_mass(const ParticleLayout& layout, BatchRef<S> x) {
  layout.require_dim(x.rows(), "batch");
  const Index n = layout.n_particles(), d = layout.spatial_dim();
  const S inv_n = S(1) / static_cast<S>(n);
  for (Index j = 0; j < x.cols(); ++j) {
    auto column = x.col(j);
    for (Index k = 0; k < d; ++k) {
      S sum = 0;
      for (Index i = 0; i < n; ++i) sum += column(i * d + k);
      const S mean = sum * inv_n;
      for (Index i = 0; i < n; ++i) column(i * d + k) -= mean;
    }
  }
}

// The same projection, out of place.
template <Real S>
Matrix<S> centre_of_mass_free(const ParticleLayout& layout, ConstBatchRef<S> x) {
  Matrix<S> out = x;
  remove_centre_of_mass<S>(layout, out);
  return out;
}

// Fills `out` (D×N) with centre-of-mass-free Gaussian noise: standard normals from the stream of column j
// (key.first_sample + j; pass e.g. key.with(Purpose::prior)), scaled by `scale`, then projected. The result
// has mean 0 and covariance scale²·P, P = (I_n − 11ᵀ/n) ⊗ I_d: each coordinate has variance
// scale²(1 − 1/n), two particles' same coordinates covariance −scale²/n, different coordinates none.
// On the (n−1)d-dimensional subspace it is the isotropic N(0, scale² I), the translation-invariant prior.
template <Real S>
void fill_centre_of_mass_free_normal(const ParticleLayout& layout, const random::StreamKey& key, S scale,
                                     BatchRef<S> out) {
  detail::require_positive("fill_centre_of_mass_free_normal: scale", scale);
  layout.require_dim(out.rows(), "output batch");
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (out.cols() >= 256)
#endif
  for (Index j = 0; j < out.cols(); ++j) {
    // Drawn into an aligned temporary: Stream::normal's vectorised float path rounds differently with the
    // destination's alignment, and a column's bits must not depend on where it sits in the batch.
    Vector<S> noise(out.rows());
    random::Stream stream(key, j);
    stream.normal<S>(noise);
    out.col(j) = noise;
  }
  out *= scale;
  remove_centre_of_mass<S>(layout, out);
}

// A new D×n_samples batch of the prior above, columns keyed by key.first_sample + j.
template <Real S>
Matrix<S> sample_centre_of_mass_free_normal(const ParticleLayout& layout, Index n_samples,
                                            const random::StreamKey& key, S scale = S(1)) {
  detail::require(n_samples >= 0, "sample_centre_of_mass_free_normal: n_samples must be >= 0, got ", n_samples);
  Matrix<S> out(layout.dim(), n_samples);
  fill_centre_of_mass_free_normal<S>(layout, key, scale, out);
  return out;
}

// Pooled interatomic distances ‖x_i − x_j‖ (i < j) of every column, column by column, n(n−1)/2 per column,
// in double: what the distance-W2 metric and the distance histograms of particle benchmarks compare.
template <Real S>
Vector<double> interatomic_distances(const ParticleLayout& layout, ConstBatchRef<S> x) {
  layout.require_dim(x.rows(), "batch");
  const Index n = layout.n_particles(), d = layout.spatial_dim();
  Vector<double> out(n * (n - 1) / 2 * x.cols());
  Index k = 0;
  for (Index c = 0; c < x.cols(); ++c)
    for (Index i = 0; i < n; ++i)
      for (Index j = i + 1; j < n; ++j)
        out[k++] = (x.col(c).segment(i * d, d) - x.col(c).segment(j * d, d)).template cast<double>().norm();
  return out;
}

// In place, every particle's d-vector v of every column becomes v·min(1, max_norm/‖v‖), so ‖v‖ ≤ max_norm.
// The norm is accumulated in double so float components near FLT_MAX do not overflow it; an infinite
// component makes the vector ±max_norm along that axis (its direction in the limit); NaN stays NaN.
template <Real S>
void clip_particle_norms(const ParticleLayout& layout, S max_norm, BatchRef<S> g) {
  detail::require_positive("clip_particle_norms: max_norm", max_norm);
  layout.require_dim(g.rows(), "batch");
  const Index n = layout.n_particles(), d = layout.spatial_dim();
  const double limit = static_cast<double>(max_norm);
  for (Index j = 0; j < g.cols(); ++j) {
    for (Index i = 0; i < n; ++i) {
      auto v = g.col(j).segment(i * d, d);
      bool infinite = false;
      double sq = 0;
      for (Index k = 0; k < d; ++k) {
        const double c = static_cast<double>(v(k));
        infinite = infinite || std::isinf(c);
        sq += c * c;
      }
      if (infinite) {
        // Direction of the limit: the infinite components, equally weighted.
        double count = 0;
        for (Index k = 0; k < d; ++k) count += std::isinf(static_cast<double>(v(k))) ? 1.0 : 0.0;
        const S each = static_cast<S>(limit / std::sqrt(count));
        for (Index k = 0; k < d; ++k) {
          const S c = v(k);
          v(k) = std::isinf(static_cast<double>(c)) ? (c > 0 ? each : -each) : S(0);
        }
        continue;
      }
      const double norm = std::sqrt(sq);
      if (norm > limit) v *= static_cast<S>(limit / norm);
    }
  }
}

}  // namespace dqs
