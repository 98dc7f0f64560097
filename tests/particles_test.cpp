// Particle-system support: layout checks, centre-of-mass projection, the centre-of-mass-free prior
// (its covariance against the analytic scale²·(I_n − 11ᵀ/n) ⊗ I_d) and per-particle norm clipping.
#include "dqs/energy/particles.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using dqs::Index;
using dqs::Matrix;
using dqs::ParticleLayout;

// The projection matrix (I_n − 11ᵀ/n) ⊗ I_d in the row layout of particles.hpp.
Matrix<double> projection(const ParticleLayout& layout) {
  const Index n = layout.n_particles(), d = layout.spatial_dim();
  Matrix<double> p = Matrix<double>::Zero(layout.dim(), layout.dim());
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < n; ++j)
      for (Index k = 0; k < d; ++k) p(i * d + k, j * d + k) = (i == j ? 1.0 : 0.0) - 1.0 / static_cast<double>(n);
  return p;
}

}  // namespace

TEST_CASE("ParticleLayout validates its counts and the dimension it is matched with", "[particles]") {
  const ParticleLayout layout(13, 3);
  CHECK(layout.n_particles() == 13);
  CHECK(layout.spatial_dim() == 3);
  CHECK(layout.dim() == 39);
  CHECK_NOTHROW(layout.require_dim(39));
  CHECK_THROWS_WITH(layout.require_dim(40), Catch::Contains("13 * 3 = 39") && Catch::Contains("got 40"));
  CHECK_THROWS_AS(ParticleLayout(0, 3), std::invalid_argument);
  CHECK_THROWS_WITH(ParticleLayout(0, 3), Catch::Contains("n_particles") && Catch::Contains("got 0"));
  CHECK_THROWS_WITH(ParticleLayout(4, -1), Catch::Contains("spatial_dim") && Catch::Contains("got -1"));

  Matrix<double> wrong(38, 2);
  CHECK_THROWS_AS(dqs::remove_centre_of_mass<double>(layout, wrong), std::invalid_argument);
  CHECK_THROWS_AS(dqs::clip_particle_norms<double>(layout, 1.0, wrong), std::invalid_argument);
  Matrix<double> right(39, 2);
  CHECK_THROWS_WITH(dqs::clip_particle_norms<double>(layout, 0.0, right), Catch::Contains("max_norm"));
  CHECK_THROWS_WITH(dqs::sample_centre_of_mass_free_normal<double>(layout, 4, {}, -1.0), Catch::Contains("scale"));
}

TEMPLATE_TEST_CASE("remove_centre_of_mass is the orthogonal projection onto the centre-of-mass-free subspace",
                   "[particles]", float, double) {
  using S = TestType;
  const ParticleLayout layout(5, 3);
  Matrix<S> x(layout.dim(), 37);
  dqs::random::fill_normal<S>({.seed = 3}, x);
  x.array() += S(2);  // a non-zero centre of mass
  const Matrix<S> centre = dqs::centre_of_mass<S>(layout, x);
  Matrix<S> y = x;
  dqs::remove_centre_of_mass<S>(layout, y);

  const S tol = std::same_as<S, float> ? S(1e-5) : S(1e-13);
  const Matrix<double> expected = projection(layout) * x.template cast<double>();
  CHECK((y.template cast<double>() - expected).cwiseAbs().maxCoeff() <= 10 * tol);
  CHECK(dqs::centre_of_mass<S>(layout, y).cwiseAbs().maxCoeff() <= 10 * tol);
  for (Index j = 0; j < x.cols(); ++j)  // x − y is the centre repeated per particle
    for (Index i = 0; i < layout.n_particles(); ++i)
      CHECK((x.col(j).segment(i * 3, 3) - y.col(j).segment(i * 3, 3) - centre.col(j)).cwiseAbs().maxCoeff() <=
            10 * tol);
  const Matrix<S> twice = dqs::centre_of_mass_free<S>(layout, y);  // idempotent
  CHECK((twice - y).cwiseAbs().maxCoeff() <= 10 * tol);
}

TEST_CASE("The centre-of-mass-free prior has covariance scale²·(I_n − 11ᵀ/n) ⊗ I_d", "[particles]") {
  // n = 3 particles in 2-D, scale 1.5, N = 40000 samples. The sample covariance Ĉ_ab of zero-mean Gaussian
  // data (mean known, so Ĉ = (1/N)Σ x_a x_b) has Var Ĉ_ab = (C_aa C_bb + C_ab²)/N ≤ 2 max_a C_aa²/N;
  // C_aa = 2.25·(2/3) = 1.5, so sd ≤ √(2·2.25/40000) = 0.0106; 5 sd = 0.053 (per-entry false alarm 6e-7).
  const ParticleLayout layout(3, 2);
  const double scale = 1.5;
  const Index N = 40000;
  const Matrix<double> x =
      dqs::sample_centre_of_mass_free_normal<double>(layout, N, {.seed = 11, .purpose = dqs::random::Purpose::prior},
                                                     scale);
  CHECK(dqs::centre_of_mass<double>(layout, x).cwiseAbs().maxCoeff() < 1e-12);
  const Matrix<double> covariance = x * x.transpose() / static_cast<double>(N);
  const Matrix<double> expected = scale * scale * projection(layout);
  CHECK((covariance - expected).cwiseAbs().maxCoeff() < 0.053);
  // The sample mean: sd √(1.5/N) = 0.0061, 5 sd = 0.031.
  CHECK(x.rowwise().mean().cwiseAbs().maxCoeff() < 0.031);
}

TEST_CASE("The prior is reproducible from its key and independent of the thread count", "[particles]") {
  const ParticleLayout layout(13, 3);
  const dqs::random::StreamKey key{.seed = 5, .first_sample = 100, .purpose = dqs::random::Purpose::prior};
  const Matrix<float> a = dqs::sample_centre_of_mass_free_normal<float>(layout, 300, key);
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
#endif
  const Matrix<float> b = dqs::sample_centre_of_mass_free_normal<float>(layout, 300, key);
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
  CHECK((a - b).cwiseAbs().maxCoeff() == 0.0f);
  // Column j depends only on sample first_sample + j: a batch starting 10 later is a shifted view.
  dqs::random::StreamKey later = key;
  later.first_sample += 10;
  const Matrix<float> c = dqs::sample_centre_of_mass_free_normal<float>(layout, 290, later);
  CHECK((c - a.rightCols(290)).cwiseAbs().maxCoeff() == 0.0f);
}

TEMPLATE_TEST_CASE("clip_particle_norms caps every particle's vector and keeps its direction", "[particles]", float,
                   double) {
  using S = TestType;
  const ParticleLayout layout(4, 3);
  Matrix<S> g(layout.dim(), 50);
  dqs::random::fill_normal<S>({.seed = 9}, g);
  g *= S(3);
  const Matrix<S> before = g;
  const S c = S(2.5);
  dqs::clip_particle_norms<S>(layout, c, g);
  for (Index j = 0; j < g.cols(); ++j)
    for (Index i = 0; i < 4; ++i) {
      const auto v = g.col(j).segment(i * 3, 3);
      const auto u = before.col(j).segment(i * 3, 3);
      if (u.norm() <= c) {
        CHECK(v == u);  // untouched
      } else {
        CHECK(v.norm() == Approx(c).epsilon(1e-5));
        CHECK((v / v.norm() - u / u.norm()).norm() < S(1e-5));
      }
    }
}

TEST_CASE("clip_particle_norms stays finite for float vectors whose squared norm overflows", "[particles]") {
  const ParticleLayout layout(2, 2);
  Matrix<float> g(4, 1);
  g << 3e30f, 4e30f, std::numeric_limits<float>::infinity(), 1.0f;
  dqs::clip_particle_norms<float>(layout, 1.0f, g);
  CHECK(g(0, 0) == Approx(0.6f));
  CHECK(g(1, 0) == Approx(0.8f));
  CHECK(g(2, 0) == 1.0f);  // the limit direction of (∞, 1) is the first axis
  CHECK(g(3, 0) == 0.0f);
}

TEMPLATE_TEST_CASE("interatomic_distances lists |x_i - x_j|, i < j, column by column", "[particles]", float, double) {
  // 3 particles in 2-D: (0, 0), (3, 4), (0, 1) and the same shifted by (1, 1): translation changes nothing.
  const ParticleLayout layout(3, 2);
  Matrix<TestType> x(6, 2);
  x.col(0) << 0, 0, 3, 4, 0, 1;
  x.col(1) = x.col(0).array() + TestType(1);
  const dqs::Vector<double> d = dqs::interatomic_distances<TestType>(layout, x);
  REQUIRE(d.size() == 6);
  const double expected[] = {5.0, 1.0, std::sqrt(18.0)};  // pairs (0,1), (0,2), (1,2)
  for (Index c = 0; c < 2; ++c)
    for (Index k = 0; k < 3; ++k) CHECK(d[c * 3 + k] == Approx(expected[k]).epsilon(1e-12));
  REQUIRE_THROWS_AS(dqs::interatomic_distances<TestType>(ParticleLayout(2, 2), x), std::invalid_argument);
}
