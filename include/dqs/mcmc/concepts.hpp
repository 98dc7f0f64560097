// MCMC building blocks on the D×N batch layout (one chain per column): the log-density callable the
// kernels move on (log p = −E/T for an energy), the chain state a kernel updates in place, and the
// shared options checks. Kernels: mala.hpp, hmc.hpp; replica exchange: parallel_tempering.hpp.
//
// Single steps, for samplers and for a predictor–corrector integrator's corrector (F a LogDensity<S>):
//   langevin_update<S>(x, grad_log_p, h, key)               x += h·grad + √(2h)ξ          (0 evaluations)
//   langevin_step<S>(f, x, h, key) → StepResult             ULA step                       (N evaluations)
//   mala_step<S>(f, x, h, key) → StepResult                 MALA step from scratch         (2N evaluations)
//   mala_step<S>(f, state, h_per_chain, key, accept) → Index   MALA on a kept ChainState   (N evaluations)
//   hmc_step<S>(f, state, h_per_chain, L, key, accept) → Index HMC on a kept ChainState    (N·L evaluations)
// ξ of column j comes from Stream(key, j); Metropolis uniforms from Purpose::accept (see mala.hpp).
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/detail/parallel.hpp"
#include "dqs/energy/concepts.hpp"
#include "dqs/random/philox.hpp"
#include "dqs/types.hpp"

#include <cmath>
#include <concepts>

namespace dqs::mcmc {

// Valid expression, for `const F f`, `x` a D×N batch (ConstBatchRef<S>), `log_p` N values (ValuesRef<S>)
// and `grad` a D×N batch (BatchRef<S>), both pre-sized by the caller:
//   f(x, log_p, grad)   log_p[j] = log p(x.col(j)) up to one constant, grad.col(j) = ∇ log p(x.col(j))
// One call costs x.cols() evaluations. log_p = −∞ (or NaN) means zero density: a proposal there is
// rejected. A kernel that needs only the gradient (langevin_step) ignores log_p.
template <class F, class S>
concept LogDensity = Real<S> && requires(const F& f, ConstBatchRef<S> x, ValuesRef<S> log_p, BatchRef<S> grad) {
  f(x, log_p, grad);
};

// log p(x) = −E(x)/T and ∇ log p = −∇E/T: the Boltzmann density of `energy` at temperature T.
// Holds a reference: the energy must outlive it.
template <DifferentiableEnergy E>
class EnergyLogDensity {
 public:
  using Scalar = typename E::Scalar;

  explicit EnergyLogDensity(const E& energy, double temperature = 1.0) : energy_(energy), temperature_(temperature) {
    detail::require_positive("EnergyLogDensity: temperature", temperature);
    beta_ = static_cast<Scalar>(1.0 / temperature);
  }

  void operator()(ConstBatchRef<Scalar> x, ValuesRef<Scalar> log_p, BatchRef<Scalar> grad) const {
    energy_.energy_and_gradient(x, log_p, grad);
    log_p *= -beta_;
    grad *= -beta_;
  }

  Index dim() const { return energy_.dim(); }
  double temperature() const { return temperature_; }

 private:
  const E& energy_;
  double temperature_;
  Scalar beta_;
};

// N chains: their points, log-densities and gradients, so that a step costs one evaluation per chain
// (MALA) or one per leapfrog step (HMC) — the current point's values are never recomputed.
template <Real S>
struct ChainState {
  Matrix<S> x;     // D×N current points
  Vector<S> log_p;  // log p at x (same constant as the callable's)
  Matrix<S> grad;  // ∇ log p at x

  Index dim() const { return x.rows(); }
  Index n_chains() const { return x.cols(); }
};

// The state at x: x.cols() evaluations.
template <Real S, LogDensity<S> F>
ChainState<S> make_chain_state(const F& log_density, ConstBatchRef<S> x) {
  ChainState<S> state{Matrix<S>(x), Vector<S>(x.cols()), Matrix<S>(x.rows(), x.cols())};
  log_density(state.x, state.log_p, state.grad);
  return state;
}

// What a stateless step reports.
struct StepResult {
  Index evaluations = 0;         // points at which the log-density was evaluated
  double acceptance_rate = 1.0;  // mean Metropolis acceptance probability over the chains (1 if none)
};

}  // namespace dqs::mcmc

// Internals of the kernels.
namespace dqs::detail {

// Uniform in (0, 1), in double, for column j's accept/reject of step key.step.
inline double accept_uniform(const random::StreamKey& key, Index column, std::uint32_t draw) {
  random::Stream stream(key.seed, key.first_sample + static_cast<std::uint64_t>(column), key.step,
                        random::Purpose::accept, draw);
  Eigen::Matrix<double, 1, 1> u;
  stream.uniform<double>(u);
  return u(0);
}

// min(1, exp(log_ratio)), with NaN (an undefined or invalid proposal) read as 0.
inline double acceptance_probability(double log_ratio) {
  if (std::isnan(log_ratio)) return 0.0;
  return log_ratio >= 0.0 ? 1.0 : std::exp(log_ratio);
}

// Column j's Metropolis step: accepts the proposal (its point, log p and ∇log p) with probability
// min(1, exp(log_ratio)) against the uniform of (key, j, key.draw), and records that probability.
template <Real S, class Proposal, class ProposalGrad>
void metropolis_update(mcmc::ChainState<S>& state, Index j, const Proposal& proposal, S proposal_log_p,
                       const ProposalGrad& proposal_grad, double log_ratio, const random::StreamKey& key,
                       ValuesRef<S> accept_prob) {
  const double alpha = acceptance_probability(log_ratio);
  accept_prob[j] = static_cast<S>(alpha);
  if (accept_uniform(key, j, key.draw) < alpha) {
    state.x.col(j) = proposal;
    state.log_p[j] = proposal_log_p;
    state.grad.col(j) = proposal_grad;
  }
}

inline void require_noise_key(const char* who, const random::StreamKey& key) {
  detail::require(key.purpose != random::Purpose::accept, who,
                       ": key.purpose must not be Purpose::accept (kept for the accept/reject uniforms)");
}

template <Real S>
void require_state(const char* who, const mcmc::ChainState<S>& state) {
  detail::require(state.log_p.size() == state.x.cols() && state.grad.rows() == state.x.rows() &&
                           state.grad.cols() == state.x.cols(),
                       who, ": inconsistent ChainState: x is ", state.x.rows(), "x", state.x.cols(), ", log_p has ",
                       state.log_p.size(), " entries, grad is ", state.grad.rows(), "x", state.grad.cols());
}

template <Real S>
void require_step_sizes(const char* who, ConstValuesRef<S> step_size, Index n_chains) {
  detail::require(step_size.size() == n_chains, who, ": step_size must have one entry per chain (", n_chains,
                       "), got ", step_size.size());
  for (Index j = 0; j < step_size.size(); ++j)
    if (!(std::isfinite(static_cast<double>(step_size[j])) && step_size[j] > 0))
      detail::fail(who, ": step_size must be finite and > 0, got ", step_size[j], " for chain ", j);
}

}  // namespace dqs::detail

namespace dqs::mcmc {

// How warm-up sets the step sizes (adaptation.hpp has the rule):
//   none       every chain keeps the initial step;
//   pooled     one step for all chains (per temperature level in parallel tempering), driven by their mean
//              acceptance: a nearly noise-free signal, right when the chains are alike;
//   per_chain  (default) each chain adapts its own step on its own acceptance: robust when chains sit in
//              very different places. LJ-13, 1000 MALA chains from the unit centre-of-mass-free prior
//              (median initial E ≈ 3e4, some near-overlaps at 1e13), 1000 warm-up + 500 steps: pooled
//              adaptation froze one step of 6e-8 serving the worst chains (final median E = +63), per_chain
//              reached a median E of −36 (reference −43). Chains stay independent, so a chain's result
//              does not depend on the others (see first_chain).
enum class StepAdaptation { none, pooled, per_chain };

// Shared run settings of the samplers (mala.hpp, hmc.hpp, parallel_tempering.hpp), checked by `check`.
//   iterations 0 … n_warmup−1 adapt the step sizes and are discarded; the steps are then frozen, so
//   iterations n_warmup … n_warmup+n_steps−1 form a valid (time-homogeneous) Markov chain.
//   thin = 0 keeps only each chain's final state; thin = k > 0 keeps the states after post-warm-up
//   iterations k, 2k, … (n_steps / k of them).
struct RunSettings {
  Index n_warmup = 200;
  Index n_steps = 200;
  Index thin = 0;
  StepAdaptation adaptation = StepAdaptation::per_chain;
  std::uint64_t seed = 0;
  std::uint64_t first_chain = 0;  // global index of column 0's chain: its streams, so batches can be split

  void check(const char* who) const {
    detail::require(n_warmup >= 0, who, ": n_warmup must be >= 0, got ", n_warmup);
    detail::require(n_steps >= 1, who, ": n_steps must be >= 1, got ", n_steps);
    detail::require(thin >= 0, who, ": thin must be >= 0, got ", thin);
    detail::require(thin <= n_steps, who, ": thin must be <= n_steps (", n_steps, ") or nothing is kept, got ",
                         thin);
    detail::require(adaptation == StepAdaptation::none || adaptation == StepAdaptation::pooled ||
                        adaptation == StepAdaptation::per_chain,
                    who, ": unknown adaptation ", static_cast<int>(adaptation));
    detail::require(n_warmup + n_steps <= Index(0xFFFFFFFF), who,
                         ": n_warmup + n_steps must fit the 32-bit stream step counter, got ", n_warmup + n_steps);
  }
  Index n_kept() const { return thin == 0 ? 1 : n_steps / thin; }
};

inline void check_target_acceptance(const char* who, double target) {
  detail::require(std::isfinite(target) && target > 0.0 && target < 1.0, who,
                       ": target_acceptance must lie in (0, 1), got ", target);
}

// What a sampler returns.
template <Real S>
struct SampleResult {
  Matrix<S> samples;               // D × (n_kept·n_chains): kept state k of chain c in column k·n_chains + c
  Index n_chains = 0;
  Index n_kept = 0;
  Index evaluations = 0;           // log-density (energy-and-gradient) evaluations, one per point, all included
  Vector<double> acceptance_rate;  // per chain: mean acceptance probability over the post-warm-up steps
  double mean_acceptance_rate = 0;  // over all chains
  Vector<double> step_size;         // per chain: the frozen post-warm-up step size (all equal if pooled)
};

}  // namespace dqs::mcmc
