// SmcDiffusionSampler: sequential Monte Carlo along the diffusion path (particle denoising diffusion sampler,
// Phillips et al. 2024, training-free). Targets γ_n(x) = ∫exp(−E(x0))·N(x; a_n·x0, s_n²I)dx0 = a_n^−D·E_ε[exp(−E((x + s_n·ε)/a_n))],
// estimated without bias from K proposals; x' ~ q = N((x + v·Ŝ(x))/r, v·c_{n+1}/c_n·I), r = a_n/a_{n+1}, v = s_n² − r²s_{n+1}²,
// c = a²τ² + s²; weight ×= γ̂_{n+1}(x')·N(x; r·x', vI)/(γ̂_n(x)·q(x'|x)), exact γ_N = exp(−E) at t = 0; resampled when ESS < ρN;
// optional resample-move: MALA / random-walk Metropolis moves of (x, ε) invariant for γ̂_n(x; ε)·Π N(ε_k) (derivation below).
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/detail/parallel.hpp"
#include "dqs/energy/concepts.hpp"
#include "dqs/energy/particles.hpp"
#include "dqs/random/philox.hpp"
#include "dqs/schedule/concepts.hpp"
#include "dqs/score/clip.hpp"
#include "dqs/score/monte_carlo.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace dqs {

// Why each piece is there:
// - γ̂_n is an unbiased estimate of γ_n (the mean of K importance weights), so the particle system is a
//   random-weight SMC on an extended space: its weighted particles target γ_n exactly (as N → ∞) and its
//   normaliser estimate Ẑ of Z = ∫exp(−E) is unbiased, whatever K. At finite N small K also costs bias:
//   resampling on weights that carry the γ̂ ratios' noise gives the O(1/N) SMC bias and a heavy-tailed Ẑ
//   (figures in docs/concepts.md). The estimate at x' is drawn once and carried: it is the denominator of the
//   next step's weight.
// - The proposal mean uses the score Ŝ of the same K proposals (Tweedie, target or blend form, clipped):
//   any proposal is corrected by the weights, so clipping and the estimator's bias cost variance, not bias.
//   Mean and variance are the exact reverse transition when p = N(μ, τ²I) and Ŝ is exact (x_{n+1} | x_n is then
//   Gaussian with variance v·c_{n+1}/c_n); Euler–Maruyama's v/r² is wider by c_n/(r²c_{n+1}), ≈ 2 per level at
//   large noise on a geometric VE grid with σ_{n}/σ_{n+1} ≈ 1.45, and every such mismatch costs weight variance.
// - The backward kernel N(x; r·x', vI) is the forward noising transition from level n+1 to n, which makes
//   γ_{n+1}(x')·N(x; r·x', vI) a joint whose x-marginal is γ_n (the time reversal of the noising chain).
// - The last level is t = 0, where γ_N(x) = exp(−E(x)) exactly (one evaluation per particle): the returned
//   weights are exact importance weights for p ∝ exp(−E) given the path, not an approximation of p_t.
// - Proposal directions: with fresh_proposals = false (default) each particle draws its K directions ε once
//   and keeps them along the whole path (children inherit them on resampling). The state is then (x, ε) with
//   target γ̂_n(x; ε)·Π N(ε_k), whose x-marginal is γ_n; a move of x alone with the backward kernel above gives
//   the same weight formula, and γ̂_{n+1}(x'; ε)/γ̂_n(x; ε) shares the noise of ε instead of dividing two
//   independent estimates. With fresh directions at every level (true) the ratio of independent estimates
//   makes the per-level ESS mostly estimator noise, and resampling on it discards good particles (on LJ-13 it
//   tripled the energy W2, docs/benchmarks.md).
// - Resample-move (moves > 0, off by default). The weighted particles (x, ε) at level n target the extended
//   π̃_n(x, ε) ∝ γ̂_n(x; ε)·Π_k N(ε_k; 0, I), whose x-marginal is γ_n (the mean of the K importance weights over ε is
//   γ_n(x)). Any kernel that leaves π̃_n invariant, applied to every particle, keeps the weighted population a valid
//   one for π̃_n and leaves the weights as they are (Gilks & Berzuini 2001); after a resampling it spreads the copies
//   of one ancestor apart. One move: a fixed subset R of the K directions (cycled by level and move number, never
//   chosen from the state) is redrawn, ε'_k ~ N(0, I) for k ∈ R, and x' = x + h·g(x; ε) + √(2h)·z, z ~ N(0, I), with
//   g the particle's proposal score Ŝ (blend/Tweedie/target form, clipped, projected: a deterministic function of
//   (x, ε)) for MALA and g = 0 for the random walk. The reverse move redraws the same subset and proposes x from
//   x' + h·g(x'; ε'). Metropolis–Hastings accepts with
//     α = π̃(x', ε')·Π_{k∈R}N(ε_k)·q(x | x', ε') / (π̃(x, ε)·Π_{k∈R}N(ε'_k)·q(x' | x, ε))
//       = γ̂(x'; ε')·q(x | x', ε') / (γ̂(x; ε)·q(x' | x, ε)),   q(x' | x, ε) ∝ exp(−‖x' − x − h·g(x; ε)‖²/(4h)),
//   the refreshed directions' prior factors cancelling against their proposal densities. Both q are evaluated from
//   the stored points and the stored drifts, so the clipped drift enters both ends the same way: per-particle
//   clipping changes the proposal, never the exactness. With a layout z, g and x' are projected onto the centre-of-
//   mass-free subspace, q is a Gaussian on it with the same constant at both ends, and the moved points stay on it.
//   At t = 0 (γ = exp(−E), no ε) g is the clipped, projected −∇E. Cost: K evaluations per particle and move at
//   t > 0 (γ̂ and Ŝ at x' come from the same K proposals), 1 at t = 0. Moves run at every level
//   (move_every_level) or only where the population was resampled, and in both cases after the final draw at t = 0
//   (on `samples`; `particles` and `log_weights` are the weighted population before it). Step size: h carries over
//   from move to move and level to level and, with move_adapt, becomes h·exp(2·(ā − α*)) after each move, ā the
//   population's mean acceptance probability of that move; with move_noise_scaled the move at level n uses
//   h·c_n/τ² instead, c_n = a_n²τ² + s_n² the variance of p_t for a N(·, τ²I) target (so h is the step at t = 0
//   and larger steps follow the wider targets at large noise). h is then a function of the population's past, the usual
//   adaptive SMC practice (Fearnhead & Taylor 2013): each move is exact for π̃_n given h, and the dependence of h on
//   any one particle vanishes as N → ∞ (an O(1/N) effect like the resampling's).
// With `layout` set, every Gaussian (prior, proposals ε, transitions) lives on the centre-of-mass-free
// subspace of dimension (n−1)·d, the proposal's score is projected onto it (after clipping), and all densities,
// Ẑ included, are with respect to that subspace.
enum class SmcMoveKernel { mala, random_walk };

struct SmcDiffusionOptions {
  Index steps = 100;           // levels t_n = 1 − n/steps, n = 0..steps; the last is t = 0
  Index samples = 32;          // K proposals per particle and level (t > 0)
  double ess_threshold = 0.5;  // ρ ∈ [0, 1]: resample (systematic) when ESS < ρ·N; 0 never, 1 every level
  ScoreForm form = ScoreForm::blend;  // the proposal's score estimate (see MonteCarloScore)
  double blend_scale = 1.0;           // τ: the target's spread; the blend form's scale and the proposal variance's
  double clip = std::numeric_limits<double>::infinity();  // maximum norm of the proposal score (per block)
  Index clip_block = 0;                                     // 0: whole vector; b > 0: blocks of b coordinates
  std::optional<ParticleLayout> layout;                     // centre-of-mass-free Gaussians (particle systems)
  bool fresh_proposals = false;  // false: K directions ε per particle for the whole path; true: new ε at every level
  // Resample-move (see above); moves = 0 leaves the sampler as without these options.
  Index moves = 0;                    // M Metropolis–Hastings moves per moving level, in [0, 20000]
  bool move_every_level = false;      // true: at every level; false: at levels where the population was resampled
  SmcMoveKernel move_kernel = SmcMoveKernel::mala;  // mala: drift h·Ŝ; random_walk: no drift
  double move_step = 0.01;            // initial h: x' = x + h·g + √(2h)·z
  bool move_adapt = true;             // h ← h·exp(2(ā − move_target_acceptance)) after each move
  bool move_noise_scaled = false;     // true: level n moves with h·c_n/τ², c_n = a_n²τ² + s_n² (τ = blend_scale)
  double move_target_acceptance = 0.57;  // α* ∈ (0, 1); ≈ 0.57 suits MALA, ≈ 0.25 the random walk
  Index move_refresh = 0;             // R ∈ [0, K]: directions redrawn from N(0, I) with each move at t > 0
  int threads = 0;                                          // OpenMP threads; 0 keeps OpenMP's default
};

template <Real S>
struct SmcDiffusionResult {
  Matrix<S> samples;             // D×N equally weighted draws: a final systematic resampling of `particles`
  Matrix<S> particles;           // D×N particles at t = 0 before the final resampling
  Vector<double> log_weights;    // their normalised log weights (log Σ exp = 0); −inf for zero weight
  double log_normalizer = 0;     // log Ẑ, Ẑ an unbiased estimate of Z = ∫exp(−E(x))dx
  // N·(K·steps + 1): K per particle and level t > 0, 1 at t = 0; each move adds N·K at t > 0 and N at t = 0
  // (every level: N·(1 + M)·(K·steps + 1))
  std::int64_t energy_evaluations = 0;
  Index resamplings = 0;         // levels at which the population was resampled (the final draw not counted)
  std::vector<double> ess;       // ESS/N after each level's reweighting, levels 0..steps
  std::vector<double> move_acceptance;  // the population's mean acceptance probability of each move, in order
  double move_step = 0;          // h after the last move (its adaptation included); the initial h without moves
};

// Systematic resampling: ancestors of N equally weighted offspring from normalised weights w (Σ w = 1) and one
// uniform u ∈ (0, 1): offspring i takes the index k with cumsum_{k−1} ≤ (i + u)/N < cumsum_k. Deterministic
// given u; the number of copies of k is ⌊N·w_k⌋ or ⌈N·w_k⌉. Zero-weight indices are never chosen.
inline std::vector<Index> systematic_resample(const Vector<double>& weights, double u) {
  detail::require(u > 0 && u < 1, "systematic_resample: u must lie in (0, 1), got ", u);
  const Index n = weights.size();
  double total = 0;
  for (Index k = 0; k < n; ++k) {
    detail::require(std::isfinite(weights[k]) && weights[k] >= 0, "systematic_resample: weights[", k,
                    "] must be finite and >= 0, got ", weights[k]);
    total += weights[k];
  }
  // Normalised weights sum to 1 up to rounding (≈ n·2⁻⁵³); a looser bound still catches unnormalised input.
  detail::require(n == 0 || std::abs(total - 1) <= 1e-6, "systematic_resample: weights must sum to 1, got ", total);
  std::vector<Index> ancestors(static_cast<std::size_t>(n));
  double cumulative = 0;
  Index k = 0;
  for (Index i = 0; i < n; ++i) {
    const double point = (static_cast<double>(i) + u) / static_cast<double>(n);
    while (k < n - 1 && (cumulative + weights[k] <= point || weights[k] == 0)) cumulative += weights[k++];
    ancestors[static_cast<std::size_t>(i)] = k;
  }
  // Rounding can leave the last point past the final cumulative sum; the loop then stops at n − 1, which
  // must carry weight: step back to the last positive one.
  for (auto& a : ancestors)
    while (weights[a] == 0 && a > 0) --a;
  return ancestors;
}

template <Energy E, NoiseSchedule Sch>
class SmcDiffusionSampler {
 public:
  using Scalar = typename E::Scalar;
  using S = Scalar;

  SmcDiffusionSampler(E energy, Sch schedule, SmcDiffusionOptions options = {})
      : energy_(std::move(energy)), schedule_(std::move(schedule)), options_(std::move(options)) {
    const auto& o = options_;
    detail::require(o.steps >= 1, "SmcDiffusionSampler: steps must be >= 1, got ", o.steps);
    detail::require(o.samples >= 1, "SmcDiffusionSampler: samples (K) must be >= 1, got ", o.samples);
    detail::require(o.ess_threshold >= 0 && o.ess_threshold <= 1,
                    "SmcDiffusionSampler: ess_threshold must lie in [0, 1], got ", o.ess_threshold);
    detail::require_positive("SmcDiffusionSampler: blend_scale", o.blend_scale);
    detail::require(o.clip > 0 && !std::isnan(o.clip), "SmcDiffusionSampler: clip must be > 0 (or infinity), got ",
                    o.clip);
    detail::require(o.clip_block >= 0, "SmcDiffusionSampler: clip_block must be >= 0, got ", o.clip_block);
    detail::require(o.threads >= 0, "SmcDiffusionSampler: threads must be >= 0, got ", o.threads);
    detail::require(o.moves >= 0 && o.moves <= kMaxMoves, "SmcDiffusionSampler: moves must lie in [0, ", kMaxMoves,
                    "], got ", o.moves);
    detail::require_positive("SmcDiffusionSampler: move_step", o.move_step);
    detail::require(o.move_target_acceptance > 0 && o.move_target_acceptance < 1,
                    "SmcDiffusionSampler: move_target_acceptance must lie in (0, 1), got ", o.move_target_acceptance);
    detail::require(o.move_refresh >= 0 && o.move_refresh <= o.samples,
                    "SmcDiffusionSampler: move_refresh must lie in [0, samples = ", o.samples, "], got ",
                    o.move_refresh);
    if constexpr (!DifferentiableEnergy<E>)
      detail::require(o.moves == 0 || o.move_kernel == SmcMoveKernel::random_walk,
                      "SmcDiffusionSampler: move_kernel mala needs a DifferentiableEnergy (the drift at t = 0 is "
                      "-grad E); use SmcMoveKernel::random_walk");
    const Index dim = energy_.dim();
    detail::require(dim >= 1, "SmcDiffusionSampler: the energy's dim must be >= 1, got ", dim);
    detail::require(o.clip_block == 0 || dim % o.clip_block == 0, "SmcDiffusionSampler: clip_block ", o.clip_block,
                    " does not divide the energy dim ", dim);
    if (o.layout) {
      o.layout->require_dim(dim);
      detail::require(o.layout->n_particles() >= 2,
                      "SmcDiffusionSampler: a centre-of-mass-free layout needs n_particles >= 2, got ",
                      o.layout->n_particles());
    }
    if constexpr (!DifferentiableEnergy<E>)
      detail::require(o.form == ScoreForm::tweedie,
                      "SmcDiffusionSampler: the target-score and blend forms need a DifferentiableEnergy; use "
                      "ScoreForm::tweedie");
    // Every level's forward transition must add noise: s_n/a_n strictly decreasing along the grid.
    for (Index n = 0; n < o.steps; ++n) {
      const double a = schedule_.alpha(time(n)), s = schedule_.sigma(time(n));
      const double a1 = schedule_.alpha(time(n + 1)), s1 = schedule_.sigma(time(n + 1));
      detail::require(std::isfinite(a) && a > 0 && std::isfinite(s) && s > 0 && std::isfinite(a1) && a1 > 0,
                      "SmcDiffusionSampler: the schedule needs finite a(t) > 0 and s(t) > 0 for t > 0, got a = ", a,
                      ", s = ", s, " at t = ", time(n));
      detail::require(s / a > s1 / a1, "SmcDiffusionSampler: s(t)/a(t) must decrease along the grid, got ", s / a,
                      " at t = ", time(n), " and ", s1 / a1, " at t = ", time(n + 1));
    }
    detail::require(schedule_.sigma(0.0) == 0, "SmcDiffusionSampler: the schedule must have s(0) = 0, got ",
                    schedule_.sigma(0.0));
    detail::require(std::isfinite(schedule_.prior_std()) && schedule_.prior_std() > 0,
                    "SmcDiffusionSampler: the schedule's prior_std must be finite and > 0, got ", schedule_.prior_std());
  }

  const E& energy() const { return energy_; }
  const Sch& schedule() const { return schedule_; }
  const SmcDiffusionOptions& options() const { return options_; }

  // N particles from the stream of `seed`. The population interacts through resampling, so (unlike
  // BoltzmannSampler) the result depends on N; for a given N and seed it is bit-identical for any thread count.
  SmcDiffusionResult<S> sample(Index n, std::uint64_t seed) const {
    detail::require(n >= 1, "SmcDiffusionSampler: the number of particles must be >= 1, got ", n);
    detail::ThreadScope thread_scope(options_.threads);
    const Index dim = energy_.dim();
    const double free_dim = static_cast<double>(subspace_dim());
    constexpr double kInf = std::numeric_limits<double>::infinity();

    SmcDiffusionResult<S> result;
    Matrix<S> x(dim, n), proposed(dim, n), score(dim, n), proposed_score(dim, n);
    Vector<double> log_gamma(n), proposed_log_gamma(n), log_w(n);

    // Level 0: prior draws, weighted by γ̂_0 / prior.
    const double prior_std = schedule_.prior_std();
    random::StreamKey prior_key{seed, 0, 0, random::Purpose::prior, 0};
    draw_gaussian(prior_key, x);
    x *= static_cast<S>(prior_std);
    // Column j holds particle j's D×K directions: drawn once (kept) or redrawn for every level (fresh).
    Matrix<S> directions(dim * options_.samples, n);
    draw_directions(random::StreamKey{seed, 0, 0, random::Purpose::score, 0}, directions);
    evaluate_level(x, 0, directions, log_gamma, score);
    result.energy_evaluations += static_cast<std::int64_t>(n) * options_.samples;
    for (Index j = 0; j < n; ++j) {
      const double sq = x.col(j).template cast<double>().squaredNorm();
      const double log_prior = -0.5 * sq / (prior_std * prior_std) - 0.5 * free_dim * std::log(2 * std::numbers::pi * prior_std * prior_std);
      log_w[j] = log_gamma[j] - log_prior;
    }
    double log_z = 0;
    double move_step = options_.move_step;
    const auto moves_here = [&](bool resampled) {
      return options_.moves > 0 && (options_.move_every_level || resampled);
    };
    if (moves_here(finish_level(log_w, 0, seed, x, log_gamma, score, directions, log_z, result)))
      move_population(0, seed, x, directions, log_gamma, score, log_w, move_step, result);

    for (Index level = 0; level < options_.steps; ++level) {
      const double t = time(level), t1 = time(level + 1);
      const double a = schedule_.alpha(t), s = schedule_.sigma(t), a1 = schedule_.alpha(t1), s1 = schedule_.sigma(t1);
      const double r = a / a1, v = s * s - r * r * s1 * s1;
      const double tau2 = options_.blend_scale * options_.blend_scale;
      const double v_q = v * (a1 * a1 * tau2 + s1 * s1) / (a * a * tau2 + s * s);
      const auto step = static_cast<std::uint32_t>(level + 1);
      // Proposal x' = (x + v·Ŝ)/r + √v_q·z; log q(x'|x) = −‖z‖²/2 − (D/2)·log(2π·v_q).
      random::StreamKey noise_key{seed, 0, step, random::Purpose::diffusion, 0};
      draw_gaussian(noise_key, proposed);
      Vector<double> half_z_sq(n);
      for (Index j = 0; j < n; ++j) {
        half_z_sq[j] = 0.5 * proposed.col(j).template cast<double>().squaredNorm();
        proposed.col(j) = ((x.col(j).template cast<double>() + v * score.col(j).template cast<double>()) / r +
                           std::sqrt(v_q) * proposed.col(j).template cast<double>())
                              .template cast<S>();
      }
      if (options_.fresh_proposals && level + 1 < options_.steps)
        draw_directions(random::StreamKey{seed, 0, step, random::Purpose::score, 0}, directions);
      evaluate_level(proposed, level + 1, directions, proposed_log_gamma, proposed_score);
      result.energy_evaluations += static_cast<std::int64_t>(n) * (level + 1 == options_.steps ? 1 : options_.samples);
      // log w += log γ̂'(x') − log γ̂(x) + log N(x; r·x', vI) − log q(x'|x); the constants differ by (D/2)·log(v_q/v).
      const double log_q_constant = 0.5 * free_dim * std::log(v_q / v);
      for (Index j = 0; j < n; ++j) {
        if (log_w[j] == -kInf) continue;
        const double back_sq = (x.col(j).template cast<double>() - r * proposed.col(j).template cast<double>()).squaredNorm();
        log_w[j] += proposed_log_gamma[j] - log_gamma[j] - 0.5 * back_sq / v + half_z_sq[j] + log_q_constant;
        if (proposed_log_gamma[j] == -kInf) log_w[j] = -kInf;
      }
      x.swap(proposed);
      log_gamma.swap(proposed_log_gamma);
      score.swap(proposed_score);
      const bool resampled = finish_level(log_w, level + 1, seed, x, log_gamma, score, directions, log_z, result);
      if (level + 1 < options_.steps && moves_here(resampled))
        move_population(level + 1, seed, x, directions, log_gamma, score, log_w, move_step, result);
    }

    // t = 0: normalise, record, draw the equally weighted output.
    const double top = log_w.maxCoeff();
    Vector<double> w = log_w;
    exp_shifted(w, top);
    const double log_sum = top + std::log(w.sum());
    result.log_normalizer = log_z + log_sum - std::log(static_cast<double>(n));
    result.particles = x;
    result.log_weights = (log_w.array() - log_sum).matrix();
    w /= w.sum();
    const auto ancestors = systematic_resample(w, resample_uniform(seed, options_.steps + 1));
    result.samples.resize(dim, n);
    for (Index i = 0; i < n; ++i) result.samples.col(i) = x.col(ancestors[static_cast<std::size_t>(i)]);
    if (options_.moves > 0) {  // the final draw is a resampling: move its copies apart on exp(−E)
      Vector<double> drawn_log_gamma(n);
      Matrix<S> drawn_score(dim, n);
      for (Index i = 0; i < n; ++i) {
        const Index k = ancestors[static_cast<std::size_t>(i)];
        drawn_log_gamma[i] = log_gamma[k];
        drawn_score.col(i) = score.col(k);
      }
      move_population(options_.steps, seed, result.samples, directions, drawn_log_gamma, drawn_score,
                      Vector<double>::Zero(n), move_step, result);
    }
    result.move_step = move_step;
    return result;
  }

  // options().moves moves at `level` (0..steps; t = 0 at steps) of the particles (x, directions) — the kernel the
  // sampler applies, for tests and custom schemes. directions: (D·K)×N, column j particle j's D×K directions as
  // sample() keeps them (unused at level = steps); both are updated. `step_size` is h in and after the last move's
  // adaptation out. Returns the population's mean acceptance probability per move; `evaluations` (if given) gets
  // N·K·(1 + moves) at t > 0, N·(1 + moves) at t = 0 (the first evaluation gives γ̂ and Ŝ at the start).
  std::vector<double> move(Index level, std::uint64_t seed, Matrix<S>& x, Matrix<S>& directions, double& step_size,
                           std::int64_t* evaluations = nullptr) const {
    detail::require(level >= 0 && level <= options_.steps, "SmcDiffusionSampler::move: level must lie in [0, ",
                    options_.steps, "], got ", level);
    detail::require(x.rows() == energy_.dim(), "SmcDiffusionSampler::move: x must have ", energy_.dim(),
                    " rows, got ", x.rows());
    detail::require(level == options_.steps ||
                        (directions.rows() == energy_.dim() * options_.samples && directions.cols() == x.cols()),
                    "SmcDiffusionSampler::move: directions must be ", energy_.dim() * options_.samples, "x",
                    x.cols(), ", got ", directions.rows(), "x", directions.cols());
    detail::require_positive("SmcDiffusionSampler::move: step_size", step_size);
    detail::ThreadScope thread_scope(options_.threads);
    const Index n = x.cols();
    Vector<double> log_gamma(n);
    Matrix<S> score(x.rows(), n);
    evaluate_level(x, level, directions, log_gamma, score);
    SmcDiffusionResult<S> record;
    record.energy_evaluations = static_cast<std::int64_t>(n) * (level == options_.steps ? 1 : options_.samples);
    move_population(level, seed, x, directions, log_gamma, score, Vector<double>::Zero(n), step_size, record);
    if (evaluations) *evaluations = record.energy_evaluations;
    return record.move_acceptance;
  }

  // Levels t_n = 1 − n/steps.
  double time(Index level) const {
    return level >= options_.steps ? 0.0 : 1.0 - static_cast<double>(level) / static_cast<double>(options_.steps);
  }

  // Dimension of the space the densities live on: D, or (n−1)·d for a centre-of-mass-free layout.
  Index subspace_dim() const {
    return options_.layout ? (options_.layout->n_particles() - 1) * options_.layout->spatial_dim() : energy_.dim();
  }

 private:
  static constexpr random::Purpose kResamplePurpose = static_cast<random::Purpose>(
      static_cast<std::uint32_t>(random::Purpose::user) + 0x5c);
  // Move m at a level draws its noise, accept uniforms and refreshed directions with draw keys 3m, 3m + 1, 3m + 2.
  static constexpr random::Purpose kMovePurpose = static_cast<random::Purpose>(
      static_cast<std::uint32_t>(random::Purpose::user) + 0x5d);
  static constexpr Index kMaxMoves = 20000;  // 3·kMaxMoves stays below the stream's draw limit 2^16

  // One uniform per level for the whole population: systematic resampling needs a single u, and drawing it
  // from a stream keyed by (seed, level) keeps it independent of the thread count.
  static double resample_uniform(std::uint64_t seed, Index level) {
    random::Stream stream(seed, 0, static_cast<std::uint32_t>(level), kResamplePurpose, 0);
    Vector<double> u(1);
    stream.uniform<double>(u);
    return u[0];
  }

  // v_i ← exp(v_i − top), exactly 0 for v_i = −∞ (Eigen's vectorised exp returns a denormal there, which would
  // give an impossible point a positive weight and its NaN gradient a place in the score).
  static void exp_shifted(Vector<double>& v, double top) {
    for (Index i = 0; i < v.size(); ++i)
      v[i] = v[i] == -std::numeric_limits<double>::infinity() ? 0.0 : std::exp(v[i] - top);
  }

  // Standard normals per column (stream of column j), projected onto the centre-of-mass-free subspace if asked.
  void draw_gaussian(const random::StreamKey& key, Matrix<S>& out) const {
    detail::parallel_columns<Vector<S>>(
        out.cols(),
        [&](Vector<S>& noise, Index j) {
          noise.resize(out.rows());
          random::Stream stream(key, j);
          stream.normal<S>(noise);
          out.col(j) = noise;
        },
        detail::worth_threads(out.rows(), out.cols()));
    if (options_.layout) remove_centre_of_mass<S>(*options_.layout, out);
  }

  // Proposal columns per energy call (see evaluate_level): four pair-potential blocks.
  static constexpr Index kChunkColumns = 128;

  struct Workspace {
    Matrix<S> y, grad;
    Vector<S> values;
    Vector<double> log_weights;
    Vector<S> column;
  };

  // Fills log γ̂_level(x) and the proposal score Ŝ at every column of x.
  // K directions ε per column (stream of column j), each projected when a layout is set.
  void draw_directions(const random::StreamKey& key, Matrix<S>& out) const {
    const Index dim = energy_.dim(), k = options_.samples;
    detail::parallel_columns<char>(out.cols(), [&](char&, Index j) {
      random::Stream stream(key, j);
      stream.normal_packets(out.col(j).data(), dim * k);
      if (options_.layout) {
        Eigen::Map<Matrix<S>> eps(out.col(j).data(), dim, k);
        remove_centre_of_mass<S>(*options_.layout, eps);
      }
    }, detail::worth_threads(dim * k, out.cols()));
  }

  void evaluate_level(const Matrix<S>& x, Index level, const Matrix<S>& directions,
                      Vector<double>& log_gamma, Matrix<S>& score) const {
    const double t = time(level);
    const Index dim = x.rows();
    constexpr double kInf = std::numeric_limits<double>::infinity();
    if (level == options_.steps) {  // t = 0: exact, one evaluation; a score only for MALA moves
      Vector<S> values(x.cols());
      score.setZero();
      bool with_gradient = false;
      if constexpr (DifferentiableEnergy<E>) {
        if (options_.moves > 0 && options_.move_kernel == SmcMoveKernel::mala) {
          with_gradient = true;
          Matrix<S> grad(dim, x.cols());
          energy_.energy_and_gradient(x, values, grad);
          for (Index j = 0; j < x.cols(); ++j) {
            if (!(values[j] < std::numeric_limits<S>::infinity())) continue;  // γ = 0 there: no drift needed
            Vector<S> column = -grad.col(j);
            detail::clip_norm_by_block(column, options_.clip, options_.clip_block);
            score.col(j) = column;
            if (options_.layout) remove_centre_of_mass<S>(*options_.layout, score.col(j));
          }
        }
      }
      if (!with_gradient) energy_.energy(x, values);
      for (Index j = 0; j < x.cols(); ++j) {
        check_value(values[j], j, level);
        log_gamma[j] = -static_cast<double>(values[j]);
      }
      return;
    }
    const double a = schedule_.alpha(t), s = schedule_.sigma(t);
    const double lambda = blend_tweedie_weight(options_.form, options_.blend_scale, a, s);
    const bool need_gradient = lambda < 1;
    const Index k = options_.samples;
    const double log_a_term = static_cast<double>(subspace_dim()) * std::log(a) + std::log(static_cast<double>(k));
    // The proposals of several particles go to the energy in one call, so an energy that works on blocks of points
    // (the pair potentials fill 32 SIMD lanes) is not padded when K is small: with K = 1 a call per particle would
    // use one lane in 32. The chunks depend on K alone, never on the thread count, and the library's energies give
    // a column the same bits wherever it sits in a batch (pair_potential.hpp, gaussian_mixture.hpp).
    const Index n = x.cols(), per_chunk = std::max<Index>(1, kChunkColumns / k);
    detail::parallel_columns<Workspace>((n + per_chunk - 1) / per_chunk, [&](Workspace& ws, Index chunk) {
      const Index first = chunk * per_chunk, count = std::min(per_chunk, n - first);
      ws.y.resize(dim, count * k);
      for (Index p = 0; p < count; ++p) {
        const Eigen::Map<const Matrix<S>> eps(directions.col(first + p).data(), dim, k);
        ws.y.middleCols(p * k, k) = (x.col(first + p).replicate(1, k) + static_cast<S>(s) * eps) / static_cast<S>(a);
      }
      ws.values.resize(count * k);
      if constexpr (DifferentiableEnergy<E>) {
        if (need_gradient) {
          ws.grad.resize(dim, count * k);
          energy_.energy_and_gradient(ws.y, ws.values, ws.grad);
        } else {
          energy_.energy(ws.y, ws.values);
        }
      } else {
        energy_.energy(ws.y, ws.values);
      }
      for (Index p = 0; p < count; ++p) {
        const Index j = first + p;
        ws.log_weights.resize(k);
        for (Index i = 0; i < k; ++i) {
          check_value(ws.values[p * k + i], j, level);
          ws.log_weights[i] = -static_cast<double>(ws.values[p * k + i]);
        }
        const double top = ws.log_weights.maxCoeff();
        if (top == -kInf) {  // every proposal has infinite energy: γ̂ = 0, the particle's weight becomes 0
          log_gamma[j] = -kInf;
          score.col(j).setZero();
          continue;
        }
        exp_shifted(ws.log_weights, top);
        const double total = ws.log_weights.sum();
        log_gamma[j] = top + std::log(total) - log_a_term;
        ws.log_weights /= total;  // now the self-normalised weights w̄_i
        Vector<double> mean_y = ws.y.middleCols(p * k, k).template cast<double>() * ws.log_weights;
        Vector<double> sc = lambda * (a * mean_y - x.col(j).template cast<double>()) / (s * s);
        if constexpr (DifferentiableEnergy<E>)
          if (need_gradient)  // zero-weight proposals skipped: an infinite energy may come with a non-finite gradient
            for (Index i = 0; i < k; ++i)
              if (ws.log_weights[i] > 0)
                sc -= ((1 - lambda) / a * ws.log_weights[i]) * ws.grad.col(p * k + i).template cast<double>();
        ws.column = sc.template cast<S>();
        detail::clip_norm_by_block(ws.column, options_.clip, options_.clip_block);
        score.col(j) = ws.column;
        // The proposal mean must stay on the centre-of-mass-free subspace, where the transitions and the weights
        // live: per-particle clipping (or an energy that is not translation invariant) gives the score a
        // centre-of-mass component, so project it out (each block then stays within twice the clip).
        if (options_.layout) remove_centre_of_mass<S>(*options_.layout, score.col(j));
      }
    }, detail::worth_threads(dim * k, n));
  }

  static void check_value(S value, Index column, Index level) {
    if (std::isnan(value) || value == -std::numeric_limits<S>::infinity())
      detail::fail("SmcDiffusionSampler: the energy returned ", std::isnan(value) ? "NaN" : "-infinity",
                   " for particle ", column, " at level ", level);
  }

  // Records the ESS; resamples (systematic, one uniform per level) when it falls below ρ·N, folding the mean
  // weight into log Ẑ and resetting the weights. Returns whether it resampled.
  bool finish_level(Vector<double>& log_w, Index level, std::uint64_t seed, Matrix<S>& x, Vector<double>& log_gamma,
                    Matrix<S>& score, Matrix<S>& directions, double& log_z, SmcDiffusionResult<S>& result) const {
    const Index n = log_w.size();
    const double top = log_w.maxCoeff();
    if (!(top > -std::numeric_limits<double>::infinity()))
      throw std::runtime_error("dqs: SmcDiffusionSampler: every particle has zero weight at level " +
                               std::to_string(level) + " (t = " + std::to_string(time(level)) +
                               "): no proposal had finite energy; use more particles or proposals (samples)");
    Vector<double> w = log_w;
    exp_shifted(w, top);
    const double sum = w.sum();
    w /= sum;
    const double ess = 1.0 / w.squaredNorm();
    result.ess.push_back(ess / static_cast<double>(n));
    if (level == options_.steps || !(ess < options_.ess_threshold * static_cast<double>(n))) return false;
    log_z += top + std::log(sum) - std::log(static_cast<double>(n));
    const auto ancestors = systematic_resample(w, resample_uniform(seed, level));
    const Matrix<S> x_old = x, score_old = score, directions_old = directions;
    const Vector<double> log_gamma_old = log_gamma;
    for (Index i = 0; i < n; ++i) {
      const Index k = ancestors[static_cast<std::size_t>(i)];
      x.col(i) = x_old.col(k);
      score.col(i) = score_old.col(k);
      log_gamma[i] = log_gamma_old[k];
      if (directions.size() > 0) directions.col(i) = directions_old.col(k);
    }
    log_w.setZero();
    ++result.resamplings;
    return true;
  }

  struct MoveWorkspace {
    Vector<S> noise;
    Vector<double> forward, backward;
  };

  // options_.moves Metropolis–Hastings moves of every particle with positive weight at `level` (derivation in the
  // comment above SmcDiffusionOptions): x' = x + h·g + √(2h)·z and R refreshed directions, γ̂ and Ŝ at the proposal
  // from the level's K proposals (t > 0) or exp(−E) and −∇E (t = 0). Zero-weight particles are evaluated (the
  // count stays N per evaluation) but neither moved nor counted in the acceptance. Per particle and move, the
  // noise, the uniform and the refreshed directions come from the particle's own streams.
  void move_population(Index level, std::uint64_t seed, Matrix<S>& x, Matrix<S>& directions,
                       Vector<double>& log_gamma, Matrix<S>& score, const Vector<double>& log_w, double& step,
                       SmcDiffusionResult<S>& result) const {
    constexpr double kInf = std::numeric_limits<double>::infinity();
    const Index n = x.cols(), dim = x.rows(), k = options_.samples;
    const bool exact_level = level == options_.steps;
    const bool drift = options_.move_kernel == SmcMoveKernel::mala;
    const Index refresh = exact_level ? 0 : options_.move_refresh;
    Matrix<S> proposed(dim, n), proposed_score(dim, n);
    Matrix<S> proposed_directions;
    Vector<double> proposed_log_gamma(n), accept_probability(n);
    const auto level_key = static_cast<std::uint32_t>(level);
    double level_scale = 1;
    if (options_.move_noise_scaled) {
      const double t = time(level), a = schedule_.alpha(t), s = schedule_.sigma(t);
      const double tau2 = options_.blend_scale * options_.blend_scale;
      level_scale = (a * a * tau2 + s * s) / tau2;
    }
    for (Index m = 0; m < options_.moves; ++m) {
      const double h = step * level_scale, noise_scale = std::sqrt(2 * h);
      const auto draw = static_cast<std::uint32_t>(3 * m);
      // Which directions this move redraws: R consecutive ones (mod K), the start cycling with level and move.
      const auto first = static_cast<Index>(
          ((static_cast<std::uint64_t>(level) * static_cast<std::uint64_t>(options_.moves) +
            static_cast<std::uint64_t>(m)) *
           static_cast<std::uint64_t>(refresh)) %
          static_cast<std::uint64_t>(k));
      if (refresh > 0) proposed_directions = directions;
      detail::parallel_columns<MoveWorkspace>(n, [&](MoveWorkspace& ws, Index j) {
        ws.noise.resize(dim);
        random::Stream(seed, static_cast<std::uint64_t>(j), level_key, kMovePurpose, draw).normal<S>(ws.noise);
        if (options_.layout) remove_centre_of_mass<S>(*options_.layout, ws.noise);
        Vector<double> point = x.col(j).template cast<double>() + noise_scale * ws.noise.template cast<double>();
        if (drift) point += h * score.col(j).template cast<double>();
        proposed.col(j) = point.template cast<S>();
        if (options_.layout) remove_centre_of_mass<S>(*options_.layout, proposed.col(j));
        if (refresh > 0) {
          ws.noise.resize(dim * refresh);
          random::Stream(seed, static_cast<std::uint64_t>(j), level_key, kMovePurpose, draw + 2).normal<S>(ws.noise);
          for (Index r = 0; r < refresh; ++r) {
            auto block = proposed_directions.col(j).segment(((first + r) % k) * dim, dim);
            block = ws.noise.segment(r * dim, dim);
            if (options_.layout) remove_centre_of_mass<S>(*options_.layout, block);
          }
        }
      }, detail::worth_threads(dim, n));
      evaluate_level(proposed, level, refresh > 0 ? proposed_directions : directions, proposed_log_gamma,
                     proposed_score);
      result.energy_evaluations += static_cast<std::int64_t>(n) * (exact_level ? 1 : k);
      detail::parallel_columns<MoveWorkspace>(n, [&](MoveWorkspace& ws, Index j) {
        accept_probability[j] = -1;  // not counted
        if (log_w[j] == -kInf || log_gamma[j] == -kInf) return;
        // log q(x'|x) − log q(x|x') from the stored points and drifts: −‖x' − x − h·g‖²/(4h) + ‖x − x' − h·g'‖²/(4h).
        ws.forward = proposed.col(j).template cast<double>() - x.col(j).template cast<double>();
        ws.backward = -ws.forward;
        if (drift) {
          ws.forward -= h * score.col(j).template cast<double>();
          ws.backward -= h * proposed_score.col(j).template cast<double>();
        }
        const double log_ratio = proposed_log_gamma[j] == -kInf
                                     ? -kInf
                                     : proposed_log_gamma[j] - log_gamma[j] +
                                           (ws.forward.squaredNorm() - ws.backward.squaredNorm()) / (4 * h);
        accept_probability[j] = log_ratio >= 0 ? 1.0 : std::exp(log_ratio);  // NaN-free: log_ratio ∈ [−∞, ∞)
        Vector<double> u(1);
        random::Stream(seed, static_cast<std::uint64_t>(j), level_key, kMovePurpose, draw + 1).uniform<double>(u);
        if (!(std::log(u[0]) < log_ratio)) return;
        x.col(j) = proposed.col(j);
        log_gamma[j] = proposed_log_gamma[j];
        score.col(j) = proposed_score.col(j);
        if (refresh > 0) directions.col(j) = proposed_directions.col(j);
      }, detail::worth_threads(dim, n));
      double sum = 0;
      Index counted = 0;
      for (Index j = 0; j < n; ++j)
        if (accept_probability[j] >= 0) {
          sum += accept_probability[j];
          ++counted;
        }
      const double mean = counted > 0 ? sum / static_cast<double>(counted) : 0.0;
      result.move_acceptance.push_back(mean);
      if (options_.move_adapt && counted > 0) step *= std::exp(2 * (mean - options_.move_target_acceptance));
    }
  }

  E energy_;
  Sch schedule_;
  SmcDiffusionOptions options_;
};

}  // namespace dqs
