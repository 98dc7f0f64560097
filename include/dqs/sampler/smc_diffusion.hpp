// SmcDiffusionSampler: sequential Monte Carlo along the diffusion path (particle denoising diffusion sampler,
// Phillips et al. 2024, training-free). Targets γ_n(x) = ∫exp(−E(x0))·N(x; a_n·x0, s_n²I)dx0 = a_n^−D·E_ε[exp(−E((x + s_n·ε)/a_n))],
// estimated without bias from K proposals; x' ~ q = N((x + v·Ŝ(x))/r, v·c_{n+1}/c_n·I), r = a_n/a_{n+1}, v = s_n² − r²s_{n+1}²,
// c = a²τ² + s²; weight ×= γ̂_{n+1}(x')·N(x; r·x', vI)/(γ̂_n(x)·q(x'|x)), exact γ_N = exp(−E) at t = 0; resampled when ESS < ρN.
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
// With `layout` set, every Gaussian (prior, proposals ε, transitions) lives on the centre-of-mass-free
// subspace of dimension (n−1)·d, the proposal's score is projected onto it (after clipping), and all densities,
// Ẑ included, are with respect to that subspace.
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
  int threads = 0;                                          // OpenMP threads; 0 keeps OpenMP's default
};

template <Real S>
struct SmcDiffusionResult {
  Matrix<S> samples;             // D×N equally weighted draws: a final systematic resampling of `particles`
  Matrix<S> particles;           // D×N particles at t = 0 before the final resampling
  Vector<double> log_weights;    // their normalised log weights (log Σ exp = 0); −inf for zero weight
  double log_normalizer = 0;     // log Ẑ, Ẑ an unbiased estimate of Z = ∫exp(−E(x))dx
  std::int64_t energy_evaluations = 0;  // N·(K·steps + 1): K per particle and level t > 0, 1 at t = 0
  Index resamplings = 0;         // levels at which the population was resampled (the final draw not counted)
  std::vector<double> ess;       // ESS/N after each level's reweighting, levels 0..steps
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
    // The kept directions: column j holds particle j's D×K directions (drawn as at level 0 when fresh).
    Matrix<S> directions;
    if (!options_.fresh_proposals) {
      directions.resize(dim * options_.samples, n);
      draw_directions(random::StreamKey{seed, 0, 0, random::Purpose::score, 0}, directions);
    }
    evaluate_level(x, 0, seed, directions, log_gamma, score);
    result.energy_evaluations += static_cast<std::int64_t>(n) * options_.samples;
    for (Index j = 0; j < n; ++j) {
      const double sq = x.col(j).template cast<double>().squaredNorm();
      const double log_prior = -0.5 * sq / (prior_std * prior_std) - 0.5 * free_dim * std::log(2 * std::numbers::pi * prior_std * prior_std);
      log_w[j] = log_gamma[j] - log_prior;
    }
    double log_z = 0;
    finish_level(log_w, 0, seed, x, log_gamma, score, directions, log_z, result);

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
      evaluate_level(proposed, level + 1, seed, directions, proposed_log_gamma, proposed_score);
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
      finish_level(log_w, level + 1, seed, x, log_gamma, score, directions, log_z, result);
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
    return result;
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
    detail::parallel_columns<Vector<S>>(out.cols(), [&](Vector<S>& noise, Index j) {
      noise.resize(out.rows());
      random::Stream stream(key, j);
      stream.normal<S>(noise);
      out.col(j) = noise;
    });
    if (options_.layout) remove_centre_of_mass<S>(*options_.layout, out);
  }

  struct Workspace {
    Matrix<S> eps, y, grad;
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
    });
  }

  void evaluate_level(const Matrix<S>& x, Index level, std::uint64_t seed, const Matrix<S>& directions,
                      Vector<double>& log_gamma, Matrix<S>& score) const {
    const double t = time(level);
    const Index dim = x.rows();
    constexpr double kInf = std::numeric_limits<double>::infinity();
    if (level == options_.steps) {  // t = 0: exact, one evaluation; no score is needed after the last level
      Vector<S> values(x.cols());
      energy_.energy(x, values);
      for (Index j = 0; j < x.cols(); ++j) {
        check_value(values[j], j, level);
        log_gamma[j] = -static_cast<double>(values[j]);
      }
      score.setZero();
      return;
    }
    const double a = schedule_.alpha(t), s = schedule_.sigma(t);
    const double lambda = blend_tweedie_weight(options_.form, options_.blend_scale, a, s);
    const bool need_gradient = lambda < 1;
    const Index k = options_.samples;
    const double log_a_term = static_cast<double>(subspace_dim()) * std::log(a) + std::log(static_cast<double>(k));
    random::StreamKey key{seed, 0, static_cast<std::uint32_t>(level), random::Purpose::score, 0};
    detail::parallel_columns<Workspace>(x.cols(), [&](Workspace& ws, Index j) {
      if (options_.fresh_proposals) {
        ws.eps.resize(dim, k);
        random::Stream stream(key, j);
        stream.normal_packets(ws.eps.data(), dim * k);
        if (options_.layout) remove_centre_of_mass<S>(*options_.layout, ws.eps);
      } else {
        ws.eps = Eigen::Map<const Matrix<S>>(directions.col(j).data(), dim, k);
      }
      ws.y = ((x.col(j).replicate(1, k) + static_cast<S>(s) * ws.eps) / static_cast<S>(a)).eval();
      ws.values.resize(k);
      if constexpr (DifferentiableEnergy<E>) {
        if (need_gradient) {
          ws.grad.resize(dim, k);
          energy_.energy_and_gradient(ws.y, ws.values, ws.grad);
        } else {
          energy_.energy(ws.y, ws.values);
        }
      } else {
        energy_.energy(ws.y, ws.values);
      }
      ws.log_weights.resize(k);
      for (Index i = 0; i < k; ++i) {
        check_value(ws.values[i], j, level);
        ws.log_weights[i] = -static_cast<double>(ws.values[i]);
      }
      const double top = ws.log_weights.maxCoeff();
      if (top == -kInf) {  // every proposal has infinite energy: γ̂ = 0, the particle's weight becomes 0
        log_gamma[j] = -kInf;
        score.col(j).setZero();
        return;
      }
      exp_shifted(ws.log_weights, top);
      const double total = ws.log_weights.sum();
      log_gamma[j] = top + std::log(total) - log_a_term;
      ws.log_weights /= total;  // now the self-normalised weights w̄_i
      Vector<double> mean_y = ws.y.template cast<double>() * ws.log_weights;
      Vector<double> sc = lambda * (a * mean_y - x.col(j).template cast<double>()) / (s * s);
      if constexpr (DifferentiableEnergy<E>)
        if (need_gradient)  // zero-weight proposals skipped: an infinite energy may come with a non-finite gradient
          for (Index i = 0; i < k; ++i)
            if (ws.log_weights[i] > 0) sc -= ((1 - lambda) / a * ws.log_weights[i]) * ws.grad.col(i).template cast<double>();
      ws.column = sc.template cast<S>();
      detail::clip_norm_by_block(ws.column, options_.clip, options_.clip_block);
      score.col(j) = ws.column;
      // The proposal mean must stay on the centre-of-mass-free subspace, where the transitions and the weights
      // live: per-particle clipping (or an energy that is not translation invariant) gives the score a
      // centre-of-mass component, so project it out (each block then stays within twice the clip).
      if (options_.layout) remove_centre_of_mass<S>(*options_.layout, score.col(j));
    });
  }

  static void check_value(S value, Index column, Index level) {
    if (std::isnan(value) || value == -std::numeric_limits<S>::infinity())
      detail::fail("SmcDiffusionSampler: the energy returned ", std::isnan(value) ? "NaN" : "-infinity",
                   " for particle ", column, " at level ", level);
  }

  // Records the ESS; resamples (systematic, one uniform per level) when it falls below ρ·N, folding the mean
  // weight into log Ẑ and resetting the weights.
  void finish_level(Vector<double>& log_w, Index level, std::uint64_t seed, Matrix<S>& x, Vector<double>& log_gamma,
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
    if (level == options_.steps || !(ess < options_.ess_threshold * static_cast<double>(n))) return;
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
  }

  E energy_;
  Sch schedule_;
  SmcDiffusionOptions options_;
};

}  // namespace dqs
