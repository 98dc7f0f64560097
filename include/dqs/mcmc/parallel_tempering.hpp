// Parallel tempering (replica exchange): replicas of every chain at temperatures T_0 < … < T_{L−1}, each
// moved by MALA or HMC on p^{1/T_k} ∝ exp(−E/T_k); neighbours (k, k+1) swap states with probability
// min(1, exp((β_k − β_{k+1})(E(x_k) − E(x_{k+1})))), β = 1/T, which leaves the product ∏_k p^{β_k} invariant.
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/energy/concepts.hpp"
#include "dqs/mcmc/adaptation.hpp"
#include "dqs/mcmc/concepts.hpp"
#include "dqs/mcmc/hmc.hpp"
#include "dqs/mcmc/mala.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

namespace dqs::mcmc {

enum class ReplicaKernel { mala, hmc };

// T_k = t_max^{k/(n_levels−1)}, k = 0 … n_levels−1: T_0 = 1, T_{n−1} = t_max (a single level is {1}).
inline std::vector<double> geometric_ladder(double t_max, Index n_levels) {
  detail::require(std::isfinite(t_max) && t_max >= 1.0, "geometric_ladder: t_max must be finite and >= 1, got ",
                  t_max);
  detail::require(n_levels >= 1, "geometric_ladder: n_levels must be >= 1, got ", n_levels);
  std::vector<double> ladder(static_cast<std::size_t>(n_levels), 1.0);
  for (Index k = 1; k < n_levels; ++k)
    ladder[static_cast<std::size_t>(k)] =
        std::pow(t_max, static_cast<double>(k) / static_cast<double>(n_levels - 1));
  return ladder;
}

// Swaps follow the deterministic even–odd scheme: after the moves of iteration t every pair (k, k+1) with
// k ≡ t (mod 2) attempts a swap, in every chain. Each swap move alone leaves the joint invariant, so their
// alternation does too (it is the non-reversible PT of Syed et al. 2021, which moves replicas up and down
// the ladder faster than random pair choice). Swaps cost no evaluations (the energies are in the state).
struct ParallelTemperingOptions {
  std::vector<double> temperatures = geometric_ladder(10.0, 5);  // strictly increasing; samples from level 0
  ReplicaKernel kernel = ReplicaKernel::mala;
  double step_size = 0.01;           // initial step at T_0; level k starts at step_size·T_k/T_0
                                     // (run.adaptation pooled: one step per level; per_chain: per replica)
  Index n_leapfrog = 10;             // HMC only
  double target_acceptance = 0.574;  // per level (0.574 suits MALA; use ≈ 0.65 with HMC)
  RunSettings run;

  void check() const {
    const char* who = "ParallelTemperingOptions";
    detail::require(!temperatures.empty(), who, ": temperatures must not be empty");
    detail::require(temperatures.size() <= 0x4000, who, ": at most 16384 temperatures, got ", temperatures.size());
    for (std::size_t k = 0; k < temperatures.size(); ++k) {
      detail::require(std::isfinite(temperatures[k]) && temperatures[k] > 0.0, who,
                      ": temperatures must be finite and > 0, got ", temperatures[k], " at index ", k);
      if (k > 0)
        detail::require(temperatures[k] > temperatures[k - 1], who,
                        ": temperatures must be strictly increasing, got ", temperatures[k - 1], " then ",
                        temperatures[k], " at index ", k);
    }
    detail::require(kernel == ReplicaKernel::mala || kernel == ReplicaKernel::hmc, who, ": unknown kernel ",
                    static_cast<int>(kernel));
    detail::require_positive("ParallelTemperingOptions: step_size", step_size);
    detail::require(n_leapfrog >= 1, who, ": n_leapfrog must be >= 1, got ", n_leapfrog);
    check_target_acceptance(who, target_acceptance);
    run.check(who);
  }

  Index evaluations_per_step() const { return kernel == ReplicaKernel::mala ? 1 : n_leapfrog; }
};

template <Real S>
struct ParallelTemperingResult {
  Matrix<S> samples;  // level-0 states, D × (n_kept·n_chains), kept state k of chain c in column k·n_chains + c
  Index n_chains = 0;
  Index n_kept = 0;
  Index evaluations = 0;            // all levels, warm-up and initial states included
  Vector<double> acceptance_rate;   // per level: mean move acceptance probability after warm-up
  Vector<double> swap_rate;         // per pair (k, k+1): mean swap acceptance probability after warm-up
  Matrix<double> step_size;         // L × N: the frozen step size of each level and chain
  std::vector<double> temperatures;
};

// Runs x0.cols() chains, each with one replica per temperature, all replicas starting at x0.
// Evaluations = L·N·(1 + evaluations_per_step·(n_warmup + n_steps)). Streams: the moves of level k use
// key.draw = k; the swap of pair (k, k+1) in chain c draws its uniform from (seed, first_chain + c, t,
// Purpose::accept, 0x8000 + k).
template <DifferentiableEnergy E>
ParallelTemperingResult<typename E::Scalar> sample_parallel_tempering(const E& energy,
                                                                      ConstBatchRef<typename E::Scalar> x0,
                                                                      const ParallelTemperingOptions& options) {
  using S = typename E::Scalar;
  options.check();
  detail::require_start<S>("sample_parallel_tempering", energy.dim(), x0);
  const RunSettings& run = options.run;
  const Index L = static_cast<Index>(options.temperatures.size());
  const Index D = x0.rows(), N = x0.cols();
  const auto level = [](Index k) { return static_cast<std::size_t>(k); };

  std::vector<EnergyLogDensity<E>> densities;
  std::vector<ChainState<S>> states;
  std::vector<detail::ChainStepSizes> step_sizes;
  std::vector<double> beta(level(L));
  ParallelTemperingResult<S> result;
  result.temperatures = options.temperatures;
  for (Index k = 0; k < L; ++k) {
    const double temperature = options.temperatures[level(k)];
    beta[level(k)] = 1.0 / temperature;
    densities.emplace_back(energy, temperature);
    states.push_back(make_chain_state<S>(densities.back(), x0));
    step_sizes.emplace_back(N, options.step_size * temperature / options.temperatures[0], options.target_acceptance,
                            run);
  }
  result.evaluations = L * N;
  result.n_chains = N;
  result.n_kept = run.n_kept();
  result.samples.resize(D, result.n_kept * N);
  result.acceptance_rate = Vector<double>::Zero(L);
  result.swap_rate = Vector<double>::Zero(std::max<Index>(L - 1, 0));
  Vector<double> swap_attempts = Vector<double>::Zero(std::max<Index>(L - 1, 0));

  Vector<S> steps(N), accept(N);
  Vector<double> swap_prob(N);
  const Index total = run.n_warmup + run.n_steps;
  Index kept = 0;
  for (Index t = 0; t < total; ++t) {
    const bool warmup = t < run.n_warmup;
    for (Index k = 0; k < L; ++k) {
      step_sizes[level(k)].template steps<S>(t, steps);
      const random::StreamKey key{run.seed, run.first_chain, static_cast<std::uint32_t>(t), random::Purpose::mcmc,
                                  static_cast<std::uint32_t>(k)};
      if (options.kernel == ReplicaKernel::mala)
        result.evaluations += mala_step<S>(densities[level(k)], states[level(k)], steps, key, accept);
      else
        result.evaluations +=
            hmc_step<S>(densities[level(k)], states[level(k)], steps, options.n_leapfrog, key, accept);
      if (warmup)
        step_sizes[level(k)].template record<S>(accept);
      else
        result.acceptance_rate[k] += accept.template cast<double>().mean();
    }

    const random::StreamKey swap_key{run.seed, run.first_chain, static_cast<std::uint32_t>(t),
                                     random::Purpose::accept, 0};
    for (Index k = t % 2; k + 1 < L; k += 2) {
      ChainState<S>& low = states[level(k)];
      ChainState<S>& high = states[level(k + 1)];
      const double beta_low = beta[level(k)], beta_high = beta[level(k + 1)];
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (detail::worth_threads(D, N))
#endif
      for (Index c = 0; c < N; ++c) {
        const double energy_low = -static_cast<double>(low.log_p[c]) / beta_low;
        const double energy_high = -static_cast<double>(high.log_p[c]) / beta_high;
        const double alpha = detail::acceptance_probability((beta_low - beta_high) * (energy_low - energy_high));
        swap_prob[c] = alpha;
        if (detail::accept_uniform(swap_key, c, 0x8000u + static_cast<std::uint32_t>(k)) < alpha) {
          low.x.col(c).swap(high.x.col(c));
          low.grad.col(c).swap(high.grad.col(c));
          // ∇log p^{β} = −β∇E: a state moving from β to β' has its gradient scaled by β'/β.
          low.grad.col(c) *= static_cast<S>(beta_low / beta_high);
          high.grad.col(c) *= static_cast<S>(beta_high / beta_low);
          low.log_p[c] = static_cast<S>(-beta_low * energy_high);
          high.log_p[c] = static_cast<S>(-beta_high * energy_low);
        }
      }
      if (!warmup) {
        result.swap_rate[k] += swap_prob.mean();
        swap_attempts[k] += 1.0;
      }
    }

    if (!warmup) {
      const Index done = t - run.n_warmup + 1;
      if (run.thin > 0 && done % run.thin == 0 && kept < result.n_kept)
        result.samples.middleCols(N * kept++, N) = states[0].x;
    }
  }
  if (run.thin == 0) result.samples = states[0].x;
  result.acceptance_rate /= static_cast<double>(run.n_steps);
  for (Index k = 0; k + 1 < L; ++k)
    result.swap_rate[k] = swap_attempts[k] > 0 ? result.swap_rate[k] / swap_attempts[k] : 0.0;
  result.step_size.resize(L, N);
  for (Index k = 0; k < L; ++k) result.step_size.row(k) = step_sizes[level(k)].current().transpose();
  return result;
}

inline Index evaluation_count(const ParallelTemperingOptions& options, Index n_chains) {
  const Index levels = static_cast<Index>(options.temperatures.size());
  return levels * n_chains * (1 + options.evaluations_per_step() * (options.run.n_warmup + options.run.n_steps));
}

}  // namespace dqs::mcmc
