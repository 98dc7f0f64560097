// Integrator concept: one step of the reverse-time process from t to t − dt (dt > 0) for the
// forward SDE dx = f(t)x dt + g(t) dW, given a step context that supplies scores and noise.
#pragma once

#include "dqs/random/philox.hpp"
#include "dqs/schedule/concepts.hpp"
#include "dqs/types.hpp"

#include <concepts>

namespace dqs {

// What a sampler hands an integrator for one step; all draws are keyed by this step's index and the
// global sample index of each column. For `C ctx`, a D×N batch `x`, output `out`, values `v`:
//   typename C::Scalar
//   ctx.schedule()                   the NoiseSchedule
//   ctx.score(x, t, out, draw)       score estimate at (x, t); `draw` separates several calls per step
//   ctx.normal(out, draw)            standard normals (Purpose::diffusion, or corrector for draw ≥ 16)
//   ctx.uniform(v, draw)             uniforms in (0, 1), one per column (Purpose::accept)
//   C::has_log_density, ctx.log_density(x, t, v, draw)   log p_t up to a t-only constant, when available
template <class C>
concept StepContext = requires(C& ctx, ConstBatchRef<typename C::Scalar> x, double t, BatchRef<typename C::Scalar> out,
                               ValuesRef<typename C::Scalar> v, std::uint32_t draw) {
  requires NoiseSchedule<std::remove_cvref_t<decltype(ctx.schedule())>>;
  ctx.score(x, t, out, draw);
  ctx.normal(out, draw);
  ctx.uniform(v, draw);
  { C::has_log_density } -> std::convertible_to<bool>;
};

// For `const I integ`:
//   integ.step(ctx, x, t, dt)   advances x (D×N, in place) from t to t − dt
//   integ.validate()            throws std::invalid_argument on bad options
// (`Integrator` is the concept; EulerMaruyama, HeunODE, PredictorCorrector and Ancestral are its models.)
template <class I>
concept IntegratorOptions = requires(const I& integ) { integ.validate(); };

}  // namespace dqs
