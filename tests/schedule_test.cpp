// Tests for the noise schedules: the closed forms of s(t)² and a(t), and the SDE coefficients checked
// by central finite differences against the defining identities f = d log a/dt and
// g² = d(s²)/dt − 2 f s²; boundary values, VP's a² + s² = 1, and rejection of bad parameters.
#include "dqs/schedule/ve_geometric.hpp"
#include "dqs/schedule/vp_cosine.hpp"
#include "dqs/schedule/vp_linear.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <numbers>
#include <stdexcept>
#include <utility>

namespace {

using Catch::Matchers::Contains;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Central differences with step h = 1e-6: the truncation error is h²/6·|φ'''|, the roundoff
// ≈ ε·|φ|/h ≈ 1e-10·|φ|. The steepest case is VPCosine near t = 1, where log a has
// |φ'''| ≈ 2 sec²φ tanφ·Δφ³ ≲ 1e6 against |φ'| ≈ 80, and VEGeometric(0.01, 70), where s² = O(5e3)
// against d(s²)/dt = O(9e4): both errors stay below 1e-7 relative, so 1e-6 relative (+1e-9
// absolute for values that vanish) cannot fail through the numerics.
constexpr double kStep = 1e-6;
constexpr double kRelative = 1e-6;

template <class F>
double central_difference(F&& f, double t) {
  return (f(t + kStep) - f(t - kStep)) / (2 * kStep);
}

bool close(double got, double expected) { return std::abs(got - expected) <= kRelative * std::abs(expected) + 1e-9; }

// Checks f = d log a/dt and g² = d(s²)/dt − 2 f s² at several interior times.
template <class Schedule>
void check_sde_identities(const Schedule& schedule) {
  for (double t : {0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98}) {
    INFO("t = " << t);
    const double f = schedule.drift(t);
    const double dlog_a = central_difference([&](double u) { return std::log(schedule.alpha(u)); }, t);
    CHECK(close(f, dlog_a));
    const double s2 = schedule.sigma(t) * schedule.sigma(t);
    const double ds2 = central_difference([&](double u) { return schedule.sigma(u) * schedule.sigma(u); }, t);
    CHECK(close(schedule.diffusion_sq(t), ds2 - 2 * f * s2));
    CHECK(schedule.diffusion_sq(t) > 0);
    // s grows with t: the forward process only adds noise.
    CHECK(schedule.sigma(t + 0.01) > schedule.sigma(t));
  }
  CHECK(schedule.sigma(0.0) == 0.0);
  CHECK(schedule.alpha(0.0) == Approx(1.0).epsilon(1e-15));
  CHECK(std::isfinite(schedule.diffusion_sq(0.0)));
  CHECK(std::isfinite(schedule.diffusion_sq(1.0)));
  CHECK(std::isfinite(schedule.drift(1.0)));
}

}  // namespace

TEST_CASE("VEGeometric: s(t)² = σ_min²((σ_max/σ_min)^{2t} − 1) and g² = dh/dt", "[schedule]") {
  for (auto [sigma_min, sigma_max] : {std::pair{0.01, 70.0}, std::pair{0.05, 5.0}, std::pair{0.5, 0.6}}) {
    const dqs::VEGeometric schedule(sigma_min, sigma_max);
    INFO("sigma_min = " << sigma_min << ", sigma_max = " << sigma_max);
    const auto h = [&](double t) { return sigma_min * sigma_min * (std::pow(sigma_max / sigma_min, 2 * t) - 1); };
    for (double t : {0.001, 0.05, 0.25, 0.5, 0.75, 1.0}) {
      INFO("t = " << t);
      // pow(r, 2t) − 1 loses log10(1/(2t ln r)) digits to cancellation at small t: < 4 digits here.
      CHECK(schedule.sigma(t) * schedule.sigma(t) == Approx(h(t)).epsilon(1e-11));
      CHECK(schedule.variance(t) == Approx(h(t)).epsilon(1e-11));
      CHECK(schedule.alpha(t) == 1.0);
      CHECK(schedule.drift(t) == 0.0);
      CHECK(close(schedule.diffusion_sq(t), central_difference(h, t)));
    }
    // The prior at t = 1 is the noised law's scale, s(1) = √(σ_max² − σ_min²).
    CHECK(schedule.prior_std() == Approx(std::sqrt(sigma_max * sigma_max - sigma_min * sigma_min)).epsilon(1e-14));
    CHECK(schedule.sigma_min() == sigma_min);
    CHECK(schedule.sigma_max() == sigma_max);
    check_sde_identities(schedule);
  }
  // expm1 keeps h accurate where pow(r, 2t) − 1 would cancel: h(t) ≈ σ_min²·2t ln r for tiny t.
  const dqs::VEGeometric schedule(0.01, 70.0);
  const double t = 1e-12;
  CHECK(schedule.variance(t) == Approx(1e-4 * 2 * t * std::log(7000.0)).epsilon(1e-10));
}

TEST_CASE("VPLinear: a(t) = exp(−½∫β), a² + s² = 1, f = −β/2, g² = β", "[schedule]") {
  for (auto [beta_min, beta_max] : {std::pair{0.1, 20.0}, std::pair{1.0, 1.0}, std::pair{0.5, 5.0}}) {
    const dqs::VPLinear schedule(beta_min, beta_max);
    INFO("beta_min = " << beta_min << ", beta_max = " << beta_max);
    for (double t : {0.0, 0.1, 0.4, 0.8, 1.0}) {
      INFO("t = " << t);
      const double integral = beta_min * t + 0.5 * (beta_max - beta_min) * t * t;
      CHECK(schedule.alpha(t) == Approx(std::exp(-0.5 * integral)).epsilon(1e-14));
      const double a = schedule.alpha(t), s = schedule.sigma(t);
      CHECK(a * a + s * s == Approx(1.0).epsilon(1e-14));
      CHECK(schedule.drift(t) == Approx(-0.5 * (beta_min + t * (beta_max - beta_min))).epsilon(1e-14));
      CHECK(schedule.diffusion_sq(t) == Approx(beta_min + t * (beta_max - beta_min)).epsilon(1e-14));
    }
    CHECK(schedule.prior_std() == 1.0);
    check_sde_identities(schedule);
  }
}

TEST_CASE("VPCosine: a² + s² = 1, a(1) = a_min, SDE identities", "[schedule]") {
  for (auto [offset, alpha_min] : {std::pair{0.008, 0.02}, std::pair{0.0, 0.1}, std::pair{0.1, 0.5}}) {
    const dqs::VPCosine schedule(offset, alpha_min);
    INFO("offset = " << offset << ", alpha_min = " << alpha_min);
    for (double t : {0.0, 0.2, 0.5, 0.9, 1.0}) {
      const double a = schedule.alpha(t), s = schedule.sigma(t);
      CHECK(a * a + s * s == Approx(1.0).epsilon(1e-14));
    }
    CHECK(schedule.alpha(1.0) == Approx(alpha_min).epsilon(1e-12));
    // The angle runs linearly from φ₀ = (π/2)s₀/(1+s₀) to φ₁ = arccos(a_min cos φ₀), as in Nichol &
    // Dhariwal's a(t) = cos(((t + s₀)/(1 + s₀))·π/2)/cos φ₀ but ending at a_min instead of 0.
    const double phi0 = 0.5 * std::numbers::pi * offset / (1 + offset);
    CHECK(schedule.alpha(0.0) == 1.0);
    CHECK(std::cos(phi0) * schedule.alpha(0.5) ==
          Approx(std::cos(0.5 * (phi0 + std::acos(alpha_min * std::cos(phi0))))).epsilon(1e-13));
    CHECK(schedule.prior_std() == 1.0);
    check_sde_identities(schedule);
  }
}

TEST_CASE("Schedules reject bad parameters with a message naming them", "[schedule][bad_input]") {
  using dqs::VEGeometric;
  using dqs::VPCosine;
  using dqs::VPLinear;
  CHECK_THROWS_MATCHES(VEGeometric(0.0, 1.0), std::invalid_argument, Catch::Matchers::Message(
                                                                         "dqs: VEGeometric: sigma_min must be finite and > 0, got 0"));
  CHECK_THROWS_WITH(VEGeometric(-0.1, 1.0), Contains("sigma_min"));
  CHECK_THROWS_WITH(VEGeometric(kNaN, 1.0), Contains("sigma_min"));
  CHECK_THROWS_WITH(VEGeometric(0.1, kNaN), Contains("sigma_max"));
  CHECK_THROWS_WITH(VEGeometric(0.1, kInf), Contains("sigma_max"));
  CHECK_THROWS_WITH(VEGeometric(0.1, 0.1), Contains("sigma_max") && Contains("sigma_min"));
  CHECK_THROWS_WITH(VEGeometric(1.0, 0.5), Contains("sigma_max"));
  CHECK_THROWS_AS(VEGeometric(1.0, 0.5), std::invalid_argument);

  CHECK_THROWS_WITH(VPLinear(0.0, 20.0), Contains("beta_min"));
  CHECK_THROWS_WITH(VPLinear(-1.0, 20.0), Contains("beta_min"));
  CHECK_THROWS_WITH(VPLinear(kNaN, 20.0), Contains("beta_min"));
  CHECK_THROWS_WITH(VPLinear(0.1, kNaN), Contains("beta_max"));
  CHECK_THROWS_WITH(VPLinear(0.1, kInf), Contains("beta_max"));
  CHECK_THROWS_WITH(VPLinear(0.1, 0.0), Contains("beta_max"));
  CHECK_THROWS_WITH(VPLinear(2.0, 1.0), Contains("beta_max"));
  CHECK_THROWS_AS(VPLinear(2.0, 1.0), std::invalid_argument);

  CHECK_THROWS_WITH(VPCosine(-0.1, 0.02), Contains("offset"));
  CHECK_THROWS_WITH(VPCosine(kNaN, 0.02), Contains("offset"));
  CHECK_THROWS_WITH(VPCosine(0.008, 0.0), Contains("alpha_min"));
  CHECK_THROWS_WITH(VPCosine(0.008, 1.0), Contains("alpha_min"));
  CHECK_THROWS_WITH(VPCosine(0.008, kNaN), Contains("alpha_min"));
  CHECK_THROWS_AS(VPCosine(0.008, -1.0), std::invalid_argument);

  // Every message starts with the library prefix.
  CHECK_THROWS_WITH(VPLinear(-1.0, 1.0), Catch::Matchers::StartsWith("dqs: "));
  CHECK_NOTHROW(VEGeometric(0.01, 70.0));
  CHECK_NOTHROW(VPLinear(1.0, 1.0));
  CHECK_NOTHROW(VPCosine());
}
