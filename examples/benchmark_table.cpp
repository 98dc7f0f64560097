// The sample-quality table (issue 3): every dqs sampler — training-free diffusion with each Monte Carlo
// score form, predictor–corrector, MALA, HMC, parallel tempering — on GMM-40, DW-4 and LJ-13 at equal
// energy-evaluation budgets per sample, scored against reference samples (x-W2, energy W2, distance W2,
// GMM-40 modes and TV), mean ± std over seeds; also the posterior-MCMC score (PosteriorMcmcScore) and a
// diffusion + MALA hybrid. Writes the docs/benchmarks.md section and the figures.
// smoke-test: --smoke
#include <dqs/dqs.hpp>
#include <dqs/energy/double_well.hpp>
#include <dqs/energy/lennard_jones.hpp>
#include <dqs/energy/particles.hpp>
#include <dqs/io/npy.hpp>
#include <dqs/mcmc/hmc.hpp>
#include <dqs/mcmc/mala.hpp>
#include <dqs/mcmc/parallel_tempering.hpp>
#include <dqs/metrics/metrics.hpp>
#include <dqs/score/posterior_mcmc.hpp>
#include <dqs/sampler/smc_diffusion.hpp>

#include <CLI/CLI.hpp>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using dqs::Index;
using dqs::Matrix;
using dqs::Vector;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---------------------------------------------------------------------------------------------------
// Settings

struct Budget {
  Index evaluations;      // energy evaluations per sample (= per chain for MCMC)
  Index diffusion_steps;  // reverse-SDE steps; K = evaluations / steps proposals per score
  Index posterior_steps = 0;  // reverse-SDE steps of diffusion-posterior (0: diffusion_steps)
};

struct TaskSettings {
  std::string name;
  std::vector<Budget> budgets;
  double sigma_max = 1;                    // VEGeometric(sigma_min, sigma_max)
  double sigma_min = 0.01;
  double blend_scale = 1;                  // τ of the blend form
  double clip = std::numeric_limits<double>::infinity();  // per-particle score clipping (particle tasks)
  double mcmc_step = 0.01;                 // initial MALA/HMC step (adapted in warm-up)
  Index hmc_leapfrog = 10;
  Index pt_levels = 4;
  double pt_t_max = 10;
  // Published figures (from the issue): iDEM x-W2, E-W2; the floors x-W2, E-W2, dist-W2 (NaN: not given).
  double idem_x_w2 = kNaN, idem_e_w2 = kNaN;
  double floor_x_w2 = kNaN, floor_e_w2 = kNaN, floor_dist_w2 = kNaN;
  double short_pair_distance = 0;  // > 0: report the short-pair count (DW-4: d0)
  // diffusion-posterior (PosteriorMcmcScore): Budget::posterior_steps reverse steps; per point and step a start
  // (x/a, or `proposals` importance-resampled proposals when > 0) and C chains of M MALA steps, M filling the
  // budget; the first half of each chain (⌊M/2⌋ steps) is burn-in.
  struct Posterior {
    Index chains = 1, proposals = 0;
    double step_size = 0.05, noise_step = 0.5;
    double drift_clip = std::numeric_limits<double>::infinity();
  } posterior;
  double hybrid_diffusion_share = 0.5;  // hybrid-blend+mala: the diffusion's share of the budget
  // diffusion-smc (SmcDiffusionSampler): K proposals per particle and level, (budget − 1)/K levels, resampling
  // when ESS < ess_threshold·N; score form blend with the task's τ and clip; centre-of-mass-free for particles.
  struct Smc {
    Index samples = 20;
    double ess_threshold = 0.5;
    dqs::ScoreForm form = dqs::ScoreForm::blend;
    bool fresh_proposals = false;
    double hybrid_smc_share = 0.8;  // hybrid-smc+mala: the SMC's share of the budget, MALA on the rest
    // diffusion-smc-move: the same SMC with `moves` MALA moves of the extended target at every level (and after the
    // final draw), `move_refresh` of the K directions redrawn with each move, the step adapted to move_target;
    // budget (1 + moves)·(K·levels + 1) per sample. move_samples > 0 overrides K for this row.
    Index moves = 1;
    Index move_refresh = 0;
    Index move_samples = 0;
    double move_step = 0.01;
    double move_target = 0.57;
    bool move_noise_scaled = false;  // h·(a²τ² + s²)/τ² at each level instead of h
  } smc;
  // DW-4: also score every row against exact samples of the energy (importance resampling, `exact_proposals`
  // centre-of-mass-free Gaussian proposals of scale exact_proposal_scale); 0: none.
  Index exact_proposals = 0;
  double exact_proposal_scale = 2.2;
};

struct Config {
  Index samples = 1000;
  std::vector<std::uint64_t> seeds{1, 2, 3};
  int threads = 1;
  std::string doc;          // markdown file holding the section (markers inserted if absent)
  std::string figures;      // PNG directory
  std::string scratch;      // .npy samples for the plots
  std::string command;      // how this run was invoked (written into the doc)
  bool smoke = false;
  std::vector<std::string> tasks{"gmm40", "dw4", "lj13"};
  std::vector<std::string> methods;  // empty: all
  double sigma_max = 0;              // > 0: overrides every task's σ_max (exploration)
  Index smc_samples = 0;             // > 0: overrides diffusion-smc's K (exploration)
  double smc_ess = -1;               // >= 0: overrides diffusion-smc's resampling threshold (exploration)
  int smc_fresh = -1;                // 0/1: overrides diffusion-smc's fresh_proposals (exploration)
  Index smc_moves = -1;              // >= 0: overrides diffusion-smc-move's moves per level (exploration)
  Index smc_move_refresh = -1;       // >= 0: overrides diffusion-smc-move's refreshed directions (exploration)
  Index smc_move_samples = -1;       // >= 0: overrides diffusion-smc-move's K (0: diffusion-smc's) (exploration)
  double smc_move_target = -1;       // > 0: overrides diffusion-smc-move's target acceptance (exploration)
  int smc_move_scaled = -1;          // 0/1: overrides diffusion-smc-move's noise-scaled step (exploration)
  std::vector<Index> budgets;        // empty: every budget of each task; else only these (evaluations per sample)
  double blend_scale = 0;            // > 0: overrides every task's τ (exploration)
  double elapsed_minutes = 0;
};

// ---------------------------------------------------------------------------------------------------
// Metrics

struct Scores {
  double x_w2 = kNaN, e_w2 = kNaN, dist_w2 = kNaN, modes = kNaN, tv = kNaN;
  double seconds = kNaN;
  double evaluations = kNaN;  // per sample
  Index dropped = 0;          // samples with a non-finite coordinate or energy (excluded from the metrics)
  double short_pairs = kNaN;  // DW-4: mean number of pairs closer than d0 per configuration
  double e_w2_exact = kNaN, dist_w2_exact = kNaN;  // against exact samples of the energy (DW-4)
};

struct Row {
  std::string method;
  Index budget = 0;  // 0: reference rows
  std::string kind;  // "diffusion", "hybrid", "mcmc", "floor", "exact", "published"
  std::vector<Scores> runs;
  std::string note;
};

struct Stat {
  double mean = kNaN, std = kNaN;
};

Stat stat(const std::vector<Scores>& runs, double Scores::*field) {
  std::vector<double> v;
  for (const auto& r : runs)
    if (!std::isnan(r.*field)) v.push_back(r.*field);
  if (v.empty()) return {};
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double sq = 0;
  for (double x : v) sq += (x - mean) * (x - mean);
  return {mean, v.size() > 1 ? std::sqrt(sq / static_cast<double>(v.size() - 1)) : 0.0};
}

// Mean number of pairs closer than `threshold` per configuration, from pooled per-configuration distances.
double short_pair_count(const Vector<double>& distances, Index configurations, double threshold) {
  return static_cast<double>((distances.array() < threshold).count()) / static_cast<double>(configurations);
}

// What the metrics compare against: one reference set per seed (centre of mass removed for particles).
struct Reference {
  Matrix<double> x;
  Vector<double> energies;
  Vector<double> distances;  // empty unless particles
};

template <class E>
Vector<double> energies_of(const E& energy, const Matrix<double>& x) {
  using S = typename E::Scalar;
  const Matrix<S> cast = x.cast<S>();
  Vector<S> values(x.cols());
  energy.energy(cast, values);
  return values.template cast<double>();
}

template <class E>
Reference make_reference(const E& energy, const std::optional<dqs::ParticleLayout>& layout, Matrix<double> x) {
  if (layout) dqs::remove_centre_of_mass<double>(*layout, x);
  Reference ref{x, energies_of(energy, x), {}};
  if (layout) ref.distances = dqs::interatomic_distances<double>(*layout, x);
  return ref;
}

template <class E>
Scores score_samples(const E& energy, const std::optional<dqs::ParticleLayout>& layout, const Reference& ref,
                     const Matrix<double>& raw, bool gmm, double short_distance, const Reference* exact = nullptr) {
  // Samples with a non-finite coordinate or energy cannot enter an OT problem; they are dropped and counted.
  const Vector<double> raw_energy = energies_of(energy, raw);
  std::vector<Index> keep;
  for (Index j = 0; j < raw.cols(); ++j)
    if (raw.col(j).allFinite() && std::isfinite(raw_energy[j])) keep.push_back(j);
  Scores s;
  s.dropped = raw.cols() - static_cast<Index>(keep.size());
  if (keep.empty()) return s;
  Matrix<double> x(raw.rows(), static_cast<Index>(keep.size()));
  Vector<double> e(x.cols());
  for (Index k = 0; k < x.cols(); ++k) {
    x.col(k) = raw.col(keep[static_cast<std::size_t>(k)]);
    e[k] = raw_energy[keep[static_cast<std::size_t>(k)]];
  }
  if (layout) dqs::remove_centre_of_mass<double>(*layout, x);
  s.x_w2 = dqs::metrics::w2_exact(x, ref.x);
  s.e_w2 = dqs::metrics::w2_1d(e, ref.energies);
  if (layout) {
    const Vector<double> distances = dqs::interatomic_distances<double>(*layout, x);
    s.dist_w2 = dqs::metrics::w2_1d(distances, ref.distances);
    if (short_distance > 0) s.short_pairs = short_pair_count(distances, x.cols(), short_distance);
    if (exact) {
      s.e_w2_exact = dqs::metrics::w2_1d(e, exact->energies);
      s.dist_w2_exact = dqs::metrics::w2_1d(distances, exact->distances);
    }
  }
  if (gmm) {
    // Mode counts over the kept samples.
    const auto counts = dqs::metrics::nearest_mode_counts(x, dqs::gmm40_means());
    s.modes = static_cast<double>(dqs::metrics::modes_hit(counts, 0.01));
    s.tv = dqs::metrics::total_variation(counts);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------------
// Samplers

template <class S>
struct Run {
  Matrix<S> samples;
  double evaluations = 0;  // total
};

struct Method {
  std::string name;
  std::string kind;  // diffusion / mcmc
  std::string settings;
};

// Runs `method` on `energy` at budget b; init(n, seed) gives MCMC starting points.
template <class E, class Init>
Run<typename E::Scalar> run_method(const std::string& method, const E& energy, const TaskSettings& task,
                                   const Budget& b, Index n, std::uint64_t seed, int threads, const Init& init,
                                   std::string& settings) {
  using S = typename E::Scalar;
  const dqs::VEGeometric schedule(task.sigma_min, task.sigma_max);
  dqs::MonteCarloScoreOptions estimator;
  estimator.blend_scale = task.blend_scale;
  estimator.clip = task.clip;
  if constexpr (requires { energy.layout(); }) estimator.clip_block = energy.layout().spatial_dim();
  std::ostringstream out;
  if (method == "diffusion-target" || method == "diffusion-tweedie" || method == "diffusion-blend" ||
      method == "pc-langevin" || method == "pc-hmc") {
    estimator.form = method == "diffusion-target"    ? dqs::ScoreForm::target
                     : method == "diffusion-tweedie" ? dqs::ScoreForm::tweedie
                                                     : dqs::ScoreForm::blend;
    // Score estimates (of K proposals each) per step: Euler–Maruyama 1; + a Langevin corrector step 2;
    // + an HMC corrector step with L = 3 leapfrog steps 1 + (L + 3) = 7 (score at x, L scores, log p_t at both
    // ends). The predictor–corrector rows take fewer steps (half, a quarter) so that K stays comparable.
    dqs::PredictorCorrectorOptions pc;
    pc.corrector_steps = 1;
    pc.corrector = method == "pc-hmc" ? dqs::Corrector::hmc : dqs::Corrector::langevin;
    pc.n_leapfrog = 3;
    const Index per_step = method == "pc-hmc" ? 7 : method == "pc-langevin" ? 2 : 1;
    const Index steps = std::max<Index>(1, method == "pc-hmc"        ? b.diffusion_steps / 4
                                           : method == "pc-langevin" ? b.diffusion_steps / 2
                                                                     : b.diffusion_steps);
    estimator.samples = std::max<Index>(1, b.evaluations / (per_step * steps));
    out << steps << " steps × K = " << estimator.samples;
    if (method == "pc-hmc") out << ", HMC corrector L = " << pc.n_leapfrog;
    settings = out.str();
    const dqs::SamplerOptions options{.steps = steps, .t_end = 0.0, .threads = threads};
    if (per_step > 1) {
      const dqs::BoltzmannSampler sampler(energy, schedule, options, dqs::PredictorCorrector(pc),
                                          dqs::MonteCarloScore(estimator));
      auto r = sampler.sample(n, seed);
      return {std::move(r.samples), static_cast<double>(r.energy_evaluations)};
    }
    const dqs::BoltzmannSampler sampler(energy, schedule, options, dqs::EulerMaruyama{},
                                        dqs::MonteCarloScore(estimator));
    auto r = sampler.sample(n, seed);
    return {std::move(r.samples), static_cast<double>(r.energy_evaluations)};
  }

  if (method == "diffusion-posterior") {
    const auto& p = task.posterior;
    dqs::PosteriorMcmcScoreOptions o;
    o.chains = p.chains;
    o.start = p.proposals > 0 ? dqs::PosteriorStart::importance : dqs::PosteriorStart::scaled_point;
    o.proposals = p.proposals;
    o.step_size = p.step_size;
    o.noise_step = p.noise_step;
    o.drift_clip = p.drift_clip;
    o.blend_scale = task.blend_scale;
    o.clip = task.clip;
    o.clip_block = estimator.clip_block;
    o.batch_columns = 64;  // the pair potentials evaluate 32 points per SIMD block; one chain per call wastes 31
    const Index steps = b.posterior_steps > 0 ? b.posterior_steps : b.diffusion_steps;
    const Index start = p.proposals > 0 ? p.proposals : 1;
    o.steps = std::max<Index>(1, (b.evaluations / steps - start) / p.chains);
    o.burn_in = o.steps / 2;
    out << steps << " steps × (" << (p.proposals > 0 ? std::to_string(p.proposals) + " proposals" : "x/a") << " + "
        << p.chains << " × " << o.steps << " MALA, burn-in " << o.burn_in << "), h ≤ " << p.step_size
        << ", ε = " << p.noise_step;
    if (std::isfinite(p.drift_clip)) out << ", drift clip " << p.drift_clip;
    settings = out.str();
    const dqs::SamplerOptions options{.steps = steps, .t_end = 0.0, .threads = threads};
    const dqs::BoltzmannSampler sampler(energy, schedule, options, dqs::EulerMaruyama{}, dqs::PosteriorMcmcScore(o));
    auto r = sampler.sample(n, seed);
    return {std::move(r.samples), static_cast<double>(r.energy_evaluations)};
  }
  if (method == "diffusion-smc" || method == "hybrid-smc+mala" || method == "diffusion-smc-move") {
    const auto& p = task.smc;
    const bool hybrid = method == "hybrid-smc+mala";
    const bool moving = method == "diffusion-smc-move";
    const Index smc_budget =
        hybrid ? std::llround(p.hybrid_smc_share * static_cast<double>(b.evaluations)) : b.evaluations;
    dqs::SmcDiffusionOptions o;
    o.samples = moving && p.move_samples > 0 ? p.move_samples : p.samples;
    // With M moves at every level and after the final draw a sample costs (1 + M)·(K·levels + 1) evaluations.
    const Index moves = moving ? p.moves : 0;
    o.steps = std::max<Index>(1, (smc_budget / (1 + moves) - 1) / o.samples);
    if (moving) {
      o.moves = moves;
      o.move_every_level = true;
      o.move_kernel = dqs::SmcMoveKernel::mala;
      o.move_refresh = std::min(p.move_refresh, o.samples);
      o.move_step = p.move_step;
      o.move_target_acceptance = p.move_target;
      o.move_noise_scaled = p.move_noise_scaled;
    }
    o.ess_threshold = p.ess_threshold;
    o.form = p.form;
    o.fresh_proposals = p.fresh_proposals;
    o.blend_scale = task.blend_scale;
    o.clip = task.clip;
    o.clip_block = estimator.clip_block;
    o.threads = threads;
    if constexpr (requires { energy.layout(); }) o.layout = energy.layout();
    out << o.steps << " levels × K = " << o.samples << (o.fresh_proposals ? " (fresh ε per level)" : "")
        << ", resample at ESS < " << p.ess_threshold << " N";
    if (moving)
      out << ", " << o.moves << " MALA move" << (o.moves == 1 ? "" : "s") << " per level and after the final draw"
          << (o.move_refresh > 0 ? " (" + std::to_string(o.move_refresh) + " of K directions redrawn per move)" : "")
          << ", h" << (o.move_noise_scaled ? "·(a²τ² + s²)/τ²" : "") << " from " << o.move_step
          << " adapted to acceptance " << o.move_target_acceptance;
    const dqs::SmcDiffusionSampler sampler(energy, schedule, o);
    auto r = sampler.sample(n, seed);
    double mean_ess = 0;
    for (double e : r.ess) mean_ess += e;
    mean_ess /= static_cast<double>(r.ess.size());
    double mean_acceptance = 0;
    for (double a : r.move_acceptance) mean_acceptance += a;
    if (!r.move_acceptance.empty()) mean_acceptance /= static_cast<double>(r.move_acceptance.size());
    std::printf("%s seed %llu: %s; %ld resamplings, mean ESS/N %.3f, final ESS/N %.3f", method.c_str(),
                static_cast<unsigned long long>(seed), out.str().c_str(), static_cast<long>(r.resamplings), mean_ess,
                r.ess.back());
    if (moving)
      std::printf("; move acceptance mean %.3f, last %.3f, final h %.3g", mean_acceptance,
                  r.move_acceptance.empty() ? 0.0 : r.move_acceptance.back(), r.move_step);
    std::printf("\n");
    if (!hybrid) {
      settings = out.str();
      return {std::move(r.samples), static_cast<double>(r.energy_evaluations)};
    }
    // A hybrid: MALA chains on the exact target (step adaptation in their warm-up) started at the SMC draws.
    const Index spent = r.energy_evaluations / n;
    dqs::mcmc::MalaOptions m;
    m.step_size = task.mcmc_step;
    const Index iterations = std::max<Index>(2, b.evaluations - spent - 1);
    m.run.seed = seed;
    m.run.n_warmup = iterations / 2;
    m.run.n_steps = iterations - m.run.n_warmup;
    out << ", then MALA " << m.run.n_warmup << " warm-up + " << m.run.n_steps << " steps";
    settings = out.str();
    auto chains = dqs::mcmc::sample_mala(energy, r.samples, m);
    return {std::move(chains.samples), static_cast<double>(r.energy_evaluations + chains.evaluations)};
  }
  if (method == "hybrid-blend+mala") {
    // A hybrid, not a diffusion sampler: the blend-form diffusion on a share of the budget, then MALA chains
    // (step adaptation in their warm-up) started at its samples on the rest.
    const Index steps = b.diffusion_steps;
    estimator.form = dqs::ScoreForm::blend;
    estimator.samples = std::max<Index>(
        1, std::llround(task.hybrid_diffusion_share * static_cast<double>(b.evaluations)) / steps);
    const dqs::SamplerOptions options{.steps = steps, .t_end = 0.0, .threads = threads};
    const dqs::BoltzmannSampler sampler(energy, schedule, options, dqs::EulerMaruyama{},
                                        dqs::MonteCarloScore(estimator));
    auto diffused = sampler.sample(n, seed);
    const Index spent = diffused.energy_evaluations / n;
    dqs::mcmc::MalaOptions o;
    o.step_size = task.mcmc_step;
    const Index iterations = std::max<Index>(2, b.evaluations - spent - 1);
    o.run.seed = seed;
    o.run.n_warmup = iterations / 2;
    o.run.n_steps = iterations - o.run.n_warmup;
    out << "blend " << steps << " steps × K = " << estimator.samples << ", then MALA " << o.run.n_warmup
        << " warm-up + " << o.run.n_steps << " steps";
    settings = out.str();
    auto r = dqs::mcmc::sample_mala(energy, diffused.samples, o);
    return {std::move(r.samples), static_cast<double>(diffused.energy_evaluations + r.evaluations)};
  }

  const Matrix<S> x0 = init(n, seed);
  dqs::mcmc::RunSettings run;
  run.seed = seed;
  if (method == "mala") {
    dqs::mcmc::MalaOptions o;
    o.step_size = task.mcmc_step;
    const Index iterations = b.evaluations - 1;
    o.run = run;
    o.run.n_warmup = iterations / 2;
    o.run.n_steps = iterations - o.run.n_warmup;
    out << o.run.n_warmup << " warm-up + " << o.run.n_steps << " steps";
    settings = out.str();
    auto r = dqs::mcmc::sample_mala(energy, x0, o);
    return {std::move(r.samples), static_cast<double>(r.evaluations)};
  }
  if (method == "hmc") {
    dqs::mcmc::HmcOptions o;
    o.step_size = task.mcmc_step;
    o.n_leapfrog = task.hmc_leapfrog;
    const Index iterations = std::max<Index>(2, (b.evaluations - 1) / o.n_leapfrog);
    o.run = run;
    o.run.n_warmup = iterations / 2;
    o.run.n_steps = iterations - o.run.n_warmup;
    out << o.run.n_warmup << " warm-up + " << o.run.n_steps << " iterations × L = " << o.n_leapfrog;
    settings = out.str();
    auto r = dqs::mcmc::sample_hmc(energy, x0, o);
    return {std::move(r.samples), static_cast<double>(r.evaluations)};
  }
  if (method == "parallel-tempering") {
    dqs::mcmc::ParallelTemperingOptions o;
    o.temperatures = dqs::mcmc::geometric_ladder(task.pt_t_max, task.pt_levels);
    o.kernel = dqs::mcmc::ReplicaKernel::mala;
    o.step_size = task.mcmc_step;
    const Index iterations = std::max<Index>(2, b.evaluations / task.pt_levels - 1);
    o.run = run;
    o.run.n_warmup = iterations / 2;
    o.run.n_steps = iterations - o.run.n_warmup;
    out << task.pt_levels << " levels (T ≤ " << task.pt_t_max << "), MALA, " << o.run.n_warmup << " warm-up + "
        << o.run.n_steps << " steps";
    settings = out.str();
    auto r = dqs::mcmc::sample_parallel_tempering(energy, x0, o);
    return {std::move(r.samples), static_cast<double>(r.evaluations)};
  }
  throw std::invalid_argument("dqs: benchmark_table: unknown method " + method);
}

const std::vector<Method> kMethods = {
    {"diffusion-target", "diffusion", ""},    {"diffusion-tweedie", "diffusion", ""},
    {"diffusion-blend", "diffusion", ""},     {"pc-langevin", "diffusion", ""},
    {"pc-hmc", "diffusion", ""},              {"diffusion-posterior", "diffusion", ""},
    {"diffusion-smc", "diffusion", ""},       {"diffusion-smc-move", "diffusion", ""},
    {"hybrid-smc+mala", "hybrid", ""},
    {"hybrid-blend+mala", "hybrid", ""},      {"mala", "mcmc", ""},
    {"hmc", "mcmc", ""},                      {"parallel-tempering", "mcmc", ""},
};

// ---------------------------------------------------------------------------------------------------
// Output

std::string fmt(Stat s, int digits) {
  if (std::isnan(s.mean)) return "–";
  char buf[64];
  if (std::isnan(s.std) || s.std == 0)
    std::snprintf(buf, sizeof buf, "%.*f", digits, s.mean);
  else
    std::snprintf(buf, sizeof buf, "%.*f ± %.*f", digits, s.mean, digits, s.std);
  return buf;
}

std::string fmt_count(double v) {
  if (std::isnan(v)) return "–";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  std::string s = buf;
  const auto e = s.find('e');
  if (e == std::string::npos) return s;
  const int exponent = std::stoi(s.substr(e + 1));
  return s.substr(0, e) + "·10^" + std::to_string(exponent);
}

struct TaskResult {
  TaskSettings settings;
  bool particles = false;
  bool gmm = false;
  std::vector<Row> rows;
  std::map<std::string, std::string> method_settings;  // "method@budget" → settings
  std::vector<std::string> target_lines;
  std::string init_note;
  double reference_short_pairs = kNaN;  // mean over the seeds' reference sets
  double exact_ess = kNaN, exact_seconds = kNaN;  // importance resampling of the exact samples (DW-4)
};

// Best diffusion (and, on its own line, best hybrid) vs floor and vs the best MCMC at each budget; returns
// markdown lines.
// Rows that keep a verdict line of their own in the Targets table even when another row of their kind is better.
const std::vector<std::string> kTrackedVerdicts = {"diffusion-posterior", "diffusion-smc", "diffusion-smc-move",
                                                   "hybrid-blend+mala", "hybrid-smc+mala"};

void judge(TaskResult& t) {
  for (const auto& b : t.settings.budgets)
    for (const std::string kind : {"diffusion", "hybrid"}) {
    const Row* best = nullptr;
    double best_key = std::numeric_limits<double>::infinity();
    double mcmc_e = std::numeric_limits<double>::infinity(), mcmc_d = mcmc_e, mcmc_x = mcmc_e;
    for (const auto& r : t.rows) {
      if (r.budget != b.evaluations) continue;
      const double x = stat(r.runs, &Scores::x_w2).mean, e = stat(r.runs, &Scores::e_w2).mean,
                   d = stat(r.runs, &Scores::dist_w2).mean;
      if (r.kind == "mcmc") {
        mcmc_x = std::min(mcmc_x, x);
        mcmc_e = std::min(mcmc_e, e);
        mcmc_d = std::min(mcmc_d, d);
        continue;
      }
      if (r.kind != kind) continue;
      // "Best" diffusion sampler: GMM-40 by x-W2; particle systems by E-W2/floor + dist-W2/floor.
      const double key = t.gmm ? x : e / t.settings.floor_e_w2 + d / t.settings.floor_dist_w2;
      if (!std::isnan(key) && key < best_key) {
        best_key = key;
        best = &r;
      }
    }
    if (!best) {
      if (kind == "diffusion")
        t.target_lines.push_back("| " + t.settings.name + " | " + fmt_count(static_cast<double>(b.evaluations)) +
                                 " | – | no diffusion result | **missed** |");
      continue;
    }
    // The best row of the kind, then every tracked row that is not the best, each with its own verdict.
    std::vector<const Row*> judged{best};
    for (const auto& r : t.rows)
      if (r.budget == b.evaluations && r.kind == kind && &r != best &&
          std::find(kTrackedVerdicts.begin(), kTrackedVerdicts.end(), r.method) != kTrackedVerdicts.end() &&
          !std::isnan(stat(r.runs, &Scores::x_w2).mean))
        judged.push_back(&r);
    for (const Row* row : judged) {
    std::ostringstream line;
    line << "| " << t.settings.name << " | " << fmt_count(static_cast<double>(b.evaluations)) << " | ";
    const double x = stat(row->runs, &Scores::x_w2).mean, e = stat(row->runs, &Scores::e_w2).mean,
                 d = stat(row->runs, &Scores::dist_w2).mean;
    char buf[512];
    bool quality = false, versus = false;
    if (t.gmm) {
      double min_modes = 40;
      for (const auto& r : row->runs) min_modes = std::min(min_modes, r.modes);
      quality = x <= 4.5 && min_modes >= 40;
      versus = x <= mcmc_x;
      std::snprintf(buf, sizeof buf, "x-W2 %.3f (≤ 4.5), modes %g/40 in every seed (40); best MCMC x-W2 %.3f", x,
                    min_modes, mcmc_x);
    } else {
      // The quality target uses the published floors (the stricter reading: our measured floors, over other
      // rows of the same files, are larger); both are in the table.
      const double fe = t.settings.floor_e_w2, fd = t.settings.floor_dist_w2;
      quality = e <= 1.3 * fe && d <= 1.3 * fd;
      versus = e <= mcmc_e && d <= mcmc_d;
      std::snprintf(buf, sizeof buf,
                    "E-W2 %.3f (target ≤ 1.3 × %.3f = %.3f), dist-W2 %.4f (≤ %.4f); best MCMC E-W2 %.3f, "
                    "dist-W2 %.4f",
                    e, fe, 1.3 * fe, d, 1.3 * fd, mcmc_e, mcmc_d);
    }
    line << row->method << (kind == "hybrid" ? " (hybrid: diffusion + MALA)" : "")
         << (row == best ? "" : " (not the best " + kind + " row)") << " | " << buf << " | quality "
         << (quality ? "met" : "**missed**") << "; vs MCMC " << (versus ? "met" : "**missed**") << " |";
    t.target_lines.push_back(line.str());
    }
  }
}

// Why the rows look as they do: mechanisms established while preparing this table (the quoted prototype
// figures are from single-seed runs of this program with the options named); a paragraph appears only when
// the run shows the effect it explains.
std::string notes(const TaskResult& t) {
  std::ostringstream md;
  const auto failed = [&](const std::string& method) {
    for (const auto& r : t.rows)
      if (r.method == method && !r.runs.empty() && std::isnan(stat(r.runs, &Scores::x_w2).mean))
        return true;
    return false;
  };
  const std::string figure_base = "figures/" + [&] {
    std::string lower = t.settings.name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    return lower;
  }();
  if (t.gmm) {
    md << "![GMM-40 samples per method](" << figure_base << "_scatter.png)\n\n";
    if (failed("diffusion-target"))
      md << "*Why the target-score form fails here:* at σ = 70 the K proposals y = x + σε spread over the whole "
            "box, the self-normalised weights collapse onto the proposal nearest a mode, and the estimate "
            "(1/a)Σ w_k(−∇E(y_k)) is essentially that component's force −(y − μ_c)/σ_c²: the stiffness 1/σ_c² ≈ 0.58 "
            "of the data, not the ≈ 1/σ² ≈ 2·10⁻⁴ of the noised density. The explicit step x ← x + g²dt·S, with "
            "g²dt ≈ 870 at t = 1, then multiplies the distance to the mode by ≈ −500 per step, and the trajectories "
            "blow up (|x| ≈ 10²⁰ at t = 0 in this run: finite coordinates whose float energies are infinite), so "
            "every sample is dropped and the scatter panel is empty. The Tweedie and blend forms are built for "
            "exactly this regime.\n\n";
    md << "*On the x-W2 target:* x-W2 between two independent sets of 1000 exact samples is itself ≈ 4.4 ± 0.8 "
          "(the GMM-40 sample-quality section of this file; the measured floor row here), dominated by the "
          "multinomial noise of the 40 mode counts, so "
          "x-W2 ≤ 4.5 sits at the floor's mean and a 3-seed mean decides it by noise. Parallel tempering, which "
          "exchanges replicas through a temperature (T = 300) at which the modes merge, is the strongest baseline; "
          "single-temperature MALA/HMC chains keep the mode weights of their starting basins (TV ≈ 0.1–0.2).\n\n";
  } else {
    md << "![" << t.settings.name << " energy histograms](" << figure_base << "_energy_hist.png)\n"
       << "![" << t.settings.name << " interatomic distances](" << figure_base << "_dist_hist.png)\n\n";
  }
  const bool quality_missed = std::any_of(t.target_lines.begin(), t.target_lines.end(), [](const std::string& line) {
    return line.find("quality **missed**") != std::string::npos && line.find("(hybrid") == std::string::npos;
  });
  // Mean of a metric over the row `method` at `budget` (0: the reference rows), NaN if absent.
  const auto mean_of = [&](const std::string& kind, const std::string& method, Index budget, double Scores::*field) {
    for (const auto& r : t.rows)
      if (r.kind == kind && (method.empty() || r.method == method) && r.budget == budget)
        return stat(r.runs, field).mean;
    return kNaN;
  };
  // Best (lowest) mean of a metric among rows of a kind at a budget.
  const auto best_of = [&](const std::string& kind, Index budget, double Scores::*field) {
    double best = kNaN;
    for (const auto& r : t.rows)
      if (r.kind == kind && r.budget == budget) {
        const double v = stat(r.runs, field).mean;
        if (!std::isnan(v) && !(v >= best)) best = v;
      }
    return best;
  };
  const Index top = t.settings.budgets.back().evaluations;
  const std::string top_text = fmt_count(static_cast<double>(top));
  if (t.settings.name == "DW-4" && quality_missed && !std::isnan(t.exact_ess)) {
    double mcmc_lo = 1e300, mcmc_hi = -1e300;
    for (const auto& r : t.rows)
      if (r.kind == "mcmc" && r.budget == top) {
        mcmc_lo = std::min(mcmc_lo, stat(r.runs, &Scores::short_pairs).mean);
        mcmc_hi = std::max(mcmc_hi, stat(r.runs, &Scores::short_pairs).mean);
      }
    char buf[4096];
    std::snprintf(
        buf, sizeof buf,
        "*Why DW-4's dist-W2 target is out of reach for any correct sampler:* exact samples of this energy — "
        "importance resampling of %s centre-of-mass-free Gaussian proposals (ESS %s), an estimate without any Markov "
        "chain — score E-W2 %.3f and dist-W2 %.4f against the reference slices (row **exact samples**), %.0f× the "
        "dist-W2 target of 0.0286. The reference sets are not in equilibrium over the arrangements of their pairs: "
        "they hold %.2f pairs shorter than d0 = 4 per configuration (`*_val`: %.2f; the full 10⁴-row files: 3.12 "
        "and 3.11), exact samples %.2f (the importance estimate's standard error ≈ 0.01; two independent runs with "
        "other proposal widths gave 2.97 and 2.97, a 30 000-step parallel-tempering run 2.95–2.98) and the long "
        "MCMC rows %.2f–%.2f. Their mean energy is −22.45, the exact samples' ≈ −22.53. A sampler that met the "
        "dist-W2 target would be matching that bias, so the columns *vs exact* score every row against the exact "
        "samples as well: at %s evaluations the best diffusion row is at E-W2 %.3f / dist-W2 %.4f from them, the "
        "best hybrid at %.3f / %.4f and the best MCMC at %.3f / %.4f (best per column). Against the exact samples "
        "the long MCMC chains are the closest on distances; every diffusion row keeps an excess of short pairs, "
        "and part of its agreement with the reference on dist-W2 is that the reference has an excess too.\n\n",
        fmt_count(static_cast<double>(t.settings.exact_proposals)).c_str(), fmt_count(t.exact_ess).c_str(),
        mean_of("exact", "", 0, &Scores::e_w2), mean_of("exact", "", 0, &Scores::dist_w2),
        mean_of("exact", "", 0, &Scores::dist_w2) / 0.0286, t.reference_short_pairs,
        mean_of("floor", "", 0, &Scores::short_pairs), mean_of("exact", "", 0, &Scores::short_pairs), mcmc_lo,
        mcmc_hi, top_text.c_str(), best_of("diffusion", top, &Scores::e_w2_exact),
        best_of("diffusion", top, &Scores::dist_w2_exact), best_of("hybrid", top, &Scores::e_w2_exact),
        best_of("hybrid", top, &Scores::dist_w2_exact), best_of("mcmc", top, &Scores::e_w2_exact),
        best_of("mcmc", top, &Scores::dist_w2_exact));
    md << buf;
    const double mc_short = mean_of("diffusion", "pc-langevin", top, &Scores::short_pairs);
    const double post_short = mean_of("diffusion", "diffusion-posterior", top, &Scores::short_pairs);
    const double exact_short = mean_of("exact", "", 0, &Scores::short_pairs);
    std::snprintf(
        buf, sizeof buf,
        "*What moved the diffusion rows:* the Monte Carlo score rows put too much weight on configurations with 4–5 "
        "short pairs (pc-langevin: %.2f per configuration at %s evaluations). The posterior-MCMC score "
        "(diffusion-posterior: short MALA chains on p(x0 | x) started at x/a) with 4–10× more, cheaper reverse "
        "steps brings that to %.2f (exact samples: %.2f) and the energy distribution to the exact one's distance "
        "from the reference. One-seed trials (N = 500, 2·10⁴ evaluations unless said): 500, 1000 and 2000 steps "
        "gave E-W2 0.27, 0.21 and 0.18 and 3.36, 3.29 and 3.22 short pairs, and 8000 steps (8·10⁴ evaluations) "
        "3.11, so the reverse-SDE discretisation limits it; 5× longer chains at 2000 steps (10⁵ evaluations) left "
        "3.24; 4000 steps with 2-step chains overshot (the score of chains too short to leave x/a is ∇log p, not "
        "∇log p_t: too cold, mean energy −23.0, E-W2 0.56). Not kept: a Langevin corrector (1000 steps, snr 0.16 / "
        "0.3 / 0.5: 3.16 / 3.21 / 3.42 short pairs — the corrector, which samples p_t under the estimated score, "
        "adds short pairs as it is given more weight, so the estimate itself still favours them at some noise "
        "levels), the probability-flow ODE with Heun steps (1000 steps: mean energy −24.8, E-W2 2.4), chains "
        "started at importance-resampled proposals (200 steps, K = 10: E-W2 0.99), other step sizes h_max 0.02 / "
        "0.1, blend scales τ 0.5 / 2 or ε = 1 (E-W2 0.24–0.47).\n\n",
        mc_short, top_text.c_str(), post_short, exact_short);
    md << buf;
  }
  if (t.settings.name == "DW-4") {
    const Index low = t.settings.budgets.front().evaluations;
    const double e_top = mean_of("diffusion", "diffusion-smc", top, &Scores::e_w2);
    const double d_top = mean_of("diffusion", "diffusion-smc", top, &Scores::dist_w2);
    char smc[2560];
    std::snprintf(
        smc, sizeof smc,
        "*diffusion-smc on DW-4* (E-W2 %.3f / dist-W2 %.4f at %s evaluations, %.3f / %.4f at %s; x-W2 %.2f "
        "against ≈ 2.1 for the score-based rows): at %s its E-W2 is %s the target (≤ %.3f) but its dist-W2 is "
        "%.1f× diffusion-posterior's, and at %s it is behind on both. At large noise its weights are degenerate — "
        "one-seed traces (N = 500) show a per-level ESS of 0.2–6 %% of N for s ≥ 1 with K = 20 and 3.5 %% at s = 3 "
        "even with K = 200 — so resampling there keeps a handful of ancestors, and the draws at t = 0 share their "
        "arrangement and orientation (hence the x-W2). Neither fresh proposal directions (K = 100, N = 500, one "
        "seed: E-W2 0.51 / 0.49 at 2·10³ / 2·10⁴), nor tempered potentials γ̂^β with β → 1 at t = 0 (per-level ESS "
        "still 1–10 %%: the proposal's Gaussian ratio carries the noise too), nor resampling only below s = 0.5 "
        "(E-W2 1.4 / 0.56) changed that.\n\n",
        mean_of("diffusion", "diffusion-smc", low, &Scores::e_w2),
        mean_of("diffusion", "diffusion-smc", low, &Scores::dist_w2), fmt_count(static_cast<double>(low)).c_str(),
        e_top, d_top, top_text.c_str(), mean_of("diffusion", "diffusion-smc", top, &Scores::x_w2), top_text.c_str(),
        e_top <= 1.3 * t.settings.floor_e_w2 ? "within" : "outside", 1.3 * t.settings.floor_e_w2,
        d_top / mean_of("diffusion", "diffusion-posterior", top, &Scores::dist_w2),
        fmt_count(static_cast<double>(low)).c_str());
    md << smc;
    const auto metric = [&](Index budget, double Scores::*field) {
      return mean_of("diffusion", "diffusion-smc-move", budget, field);
    };
    const double e_target = 1.3 * t.settings.floor_e_w2;
    char move[4096];
    std::snprintf(
        move, sizeof move,
        "*Resample-move on DW-4* (diffusion-smc-move: E-W2 %.3f / dist-W2 %.4f / x-W2 %.2f at %s evaluations, "
        "%.3f / %.4f / %.2f at %s; against the exact samples E-W2 %.3f / dist-W2 %.4f at %s, %.3f / %.4f at %s): K = 1 "
        "and 4 MALA moves of the extended target per level, the step scaled with the level's spread, "
        "h·(a²τ² + s²)/τ², and adapted to acceptance 0.57. The moves spread the copies of each ancestor, so x-W2 "
        "falls from diffusion-smc's %.2f to %.2f at %s and the short-pair count is "
        "%.2f (exact samples %.2f). Its E-W2 is %s the target (≤ %.3f) at %s and %s it at %s. Settings chosen on "
        "tuning seeds 101–103 at 2·10³ (E-W2 / dist-W2 per seed; the rows above use seeds 1–3): K = 1 with 4 moves "
        "and the scaled step 0.16 / 0.065, 0.23 / 0.064, 0.15 / 0.018; with 2, 6, 9 or 19 moves dist-W2 0.10–0.61 "
        "per seed; with a constant step and 4 moves 0.24 / 0.51, 0.12 / 0.19, 0.19 / 0.45; K = 2 with 9 moves "
        "0.18 / 0.48, 0.10 / 0.42, 0.13 / 0.24; K = 10 with 1, 2 or 4 moves (seeds 101–102, constant step) "
        "dist-W2 0.38–0.85; K = 50 with 1 move 0.56 / 0.54, 0.17 / 0.10. The tuning seeds' 2·10³ figures were "
        "better than the evaluation seeds': the spread between seeds is as large as the differences between "
        "settings.\n\n",
        metric(low, &Scores::e_w2), metric(low, &Scores::dist_w2), metric(low, &Scores::x_w2),
        fmt_count(static_cast<double>(low)).c_str(), metric(top, &Scores::e_w2), metric(top, &Scores::dist_w2),
        metric(top, &Scores::x_w2), top_text.c_str(), metric(low, &Scores::e_w2_exact),
        metric(low, &Scores::dist_w2_exact), fmt_count(static_cast<double>(low)).c_str(),
        metric(top, &Scores::e_w2_exact), metric(top, &Scores::dist_w2_exact), top_text.c_str(),
        mean_of("diffusion", "diffusion-smc", top, &Scores::x_w2), metric(top, &Scores::x_w2), top_text.c_str(),
        metric(top, &Scores::short_pairs), mean_of("exact", "", 0, &Scores::short_pairs),
        metric(top, &Scores::e_w2) <= e_target ? "within" : "outside", e_target, top_text.c_str(),
        metric(low, &Scores::e_w2) <= e_target ? "within" : "outside",
        fmt_count(static_cast<double>(low)).c_str());
    md << move;
  }
  if (t.settings.name == "LJ-13" && quality_missed) {
    // Best diffusion E-W2 at the smallest and largest budgets, over every diffusion row or only the
    // score-based ones (every diffusion row but diffusion-smc and diffusion-smc-move), as "A at <budget> evaluations,
    // B at <budget>".
    const auto best_at = [&](Index budget, bool score_based_only) {
      double best = std::numeric_limits<double>::infinity();
      for (const auto& r : t.rows)
        if (r.budget == budget && r.kind == "diffusion" &&
            !(score_based_only && r.method.rfind("diffusion-smc", 0) == 0))
          best = std::min(best, stat(r.runs, &Scores::e_w2).mean);
      return best;
    };
    const auto best_diffusion = [&](bool score_based_only) {
      const Index first = t.settings.budgets.front().evaluations, last = t.settings.budgets.back().evaluations;
      char text[256];
      std::snprintf(text, sizeof text, "%.3g at %s evaluations, %.3g at %s", best_at(first, score_based_only),
                    fmt_count(static_cast<double>(first)).c_str(), best_at(last, score_based_only),
                    fmt_count(static_cast<double>(last)).c_str());
      return std::string(text);
    };
    const std::string buf = best_diffusion(false), score_buf = best_diffusion(true);
    md << "*Why training-free diffusion misses on LJ-13* (best diffusion row, E-W2: " << buf
       << "; target ≤ " << 1.3 * t.settings.floor_e_w2
       << "; the dist-W2 verdicts are in the table above). *The score-based rows miss by two orders of magnitude* (E-W2 "
       << score_buf
       << "): at intermediate noise almost every proposal y = x + sε in 39 dimensions puts some pair of "
          "particles inside the repulsive core, so the self-normalised weights collapse onto a single proposal "
          "and the score estimate is that proposal's force (target form) or displacement (Tweedie form). The "
          "per-particle clip keeps the trajectories finite, but the clusters never condense: the energies sit "
          "tens of units above the reference, the first-shell peak of the distance histogram at r ≈ 1 is a "
          "fraction of the reference's, and the distances run on far beyond the reference's range (figures). "
          "More proposals help only slowly, and σ_max = 1 instead of iDEM's 2 did not change the picture in a "
          "one-seed trial (blend form at 2·10³ evaluations: E-W2 59 instead of 75). The MCMC baselines start "
          "from a non-overlapping lattice and equilibrate within the budget. Closing this gap needs a learned "
          "score (iDEM's row) or a sampler that does not ask importance sampling to find a cluster in 39 "
          "dimensions.\n\n";
    char more[2048];
    std::snprintf(
        more, sizeof more,
        "*The posterior-MCMC score does not close it either* (diffusion-posterior: E-W2 %.1f at %s evaluations): "
        "its MALA chains on p(x0 | x) would have to condense a cluster out of a noisy cloud in a few tens of steps "
        "of size ≤ 0.005 (the repulsive core allows no more), and such a chain moves a particle by only ≈ 0.3–0.5. "
        "Starting the chains at the best of 9 importance-resampled proposals, as here, beat starting them at x/a "
        "(one seed, N = 300, 10⁴ evaluations: E-W2 51 against 227, or 82 with the drift clipped at 20 per "
        "particle); 1000 reverse steps of 10-step chains gave 74. The hybrid row (hybrid-blend+mala: E-W2 %.3f, "
        "dist-W2 %.4f at %s) spends half the budget on MALA chains started at the diffusion samples; what it gets "
        "right is the chains' work, which the MCMC rows do from a lattice.\n\n",
        mean_of("diffusion", "diffusion-posterior", top, &Scores::e_w2), top_text.c_str(),
        mean_of("hybrid", "hybrid-blend+mala", top, &Scores::e_w2),
        mean_of("hybrid", "hybrid-blend+mala", top, &Scores::dist_w2), top_text.c_str());
    md << more;
    const Index low = t.settings.budgets.front().evaluations;
    const std::string low_text = fmt_count(static_cast<double>(low));
    char smc[4096];
    std::snprintf(
        smc, sizeof smc,
        "*Sequential Monte Carlo along the diffusion path closes part of the gap, not all of it* (diffusion-smc: "
        "E-W2 %.2f / dist-W2 %.4f at %s evaluations, %.2f / %.4f at %s; the best score-based row %.0f at %s). It "
        "does not ask one estimate to be right: the K-proposal estimates of p_t serve as intermediate potentials, "
        "particles are reweighted by their ratio from level to level and resampled when the ESS falls, so "
        "configurations whose proposals found a condensed cluster multiply and the others die out, and the last "
        "weights exp(−E(x0)) are exact. What remains is variance: in 39 dimensions the per-level ESS stays near "
        "N/2 and the population is resampled at about half of the levels, so the draws at t = 0 descend from few "
        "ancestors at large noise. The rotation-invariant metrics (E-W2, dist-W2) improve most; x-W2 stays at "
        "%.2f against the MCMC rows' %.2f, consistent with draws that share their ancestors' orientation. One-seed "
        "trials (N = 500, seed 1; E-W2 at 2·10³ / 10⁴; run before 4541c08 projected the clipped proposal score onto the centre-of-mass-free subspace): K = 10 3.6 / 3.7 (the setting here), K = 5 4.0 / 4.5, "
        "K = 50 24 / 4.6; K = 20 with fresh proposal directions at every level 37 / 17 against 12 / 11 with the "
        "directions kept along the path (fresh directions turn each weight ratio into a quotient of independent "
        "estimates, so the ESS mostly measures estimator noise and resampling throws away good particles). Not "
        "kept: resampling only below a noise level (s ≤ 0.5: E-W2 49 / 63). "
        "With MALA chains on the last %ld %% of the budget (hybrid-smc+mala, a hybrid: E-W2 %.3f / dist-W2 %.4f at "
        "%s) the SMC draws are better starting points than the score-based diffusion's (hybrid-blend+mala above), "
        "but the verdict of a hybrid is the chains' as much as the sampler's.\n\n",
        mean_of("diffusion", "diffusion-smc", low, &Scores::e_w2),
        mean_of("diffusion", "diffusion-smc", low, &Scores::dist_w2), low_text.c_str(),
        mean_of("diffusion", "diffusion-smc", top, &Scores::e_w2),
        mean_of("diffusion", "diffusion-smc", top, &Scores::dist_w2), top_text.c_str(), best_at(top, true),
        top_text.c_str(), mean_of("diffusion", "diffusion-smc", top, &Scores::x_w2), best_of("mcmc", top, &Scores::x_w2),
        std::lround(100 * (1 - t.settings.smc.hybrid_smc_share)), mean_of("hybrid", "hybrid-smc+mala", top, &Scores::e_w2),
        mean_of("hybrid", "hybrid-smc+mala", top, &Scores::dist_w2), top_text.c_str());
    md << smc;
  }
  if (t.settings.name == "LJ-13") {
    const Index low = t.settings.budgets.front().evaluations;
    const std::string low_text = fmt_count(static_cast<double>(low));
    const auto metric = [&](Index budget, double Scores::*field) {
      return mean_of("diffusion", "diffusion-smc-move", budget, field);
    };
    const auto verdict = [](double value, double target) { return value <= target ? "within" : "outside"; };
    const double e_target = 1.3 * t.settings.floor_e_w2, d_target = 1.3 * t.settings.floor_dist_w2;
    char move[4096];
    std::snprintf(
        move, sizeof move,
        "*Resample-move removes most of diffusion-smc's ancestor degeneracy* (diffusion-smc-move: E-W2 %.3f / dist-W2 "
        "%.4f / x-W2 %.2f at %s evaluations, %.3f / %.4f / %.2f at %s; best MCMC at %s: %.3f / %.4f / %.2f). After "
        "each level's reweighting every particle (x, ε) makes M MALA moves that leave the level's extended target "
        "γ̂_n(x; ε)·Π N(ε_k) invariant (so the weights stay exact), with its own clipped score as drift and one step "
        "size for the population, adapted after each move to acceptance 0.57 (≈ 6·10⁻⁴ at t = 0); the copies of one "
        "ancestor drift apart instead of staying identical. At %s its E-W2 is %s the target (≤ %.3f) and its dist-W2 "
        "%s (≤ %.4f); at %s E-W2 %s, dist-W2 %s. It spends the budget on moves, not on proposals: K = 1, so each "
        "level's potential is exp(−E) at one shifted point (x + s·ε)/a per particle and the moves are close to MALA "
        "on E in a frame that follows the kept direction — between an annealed population MCMC and a diffusion "
        "sampler, with exact SMC weights. Settings chosen on tuning seeds 101–102 at 10⁴ (E-W2 per seed; the rows "
        "above use seeds 1–3): K = 10 with 1 / 2 / 4 moves 0.92, 1.16 / 3.1, 1.4 / 2.5, 5.5; K = 5 with 3 moves 0.52, "
        "0.66; K = 3 with 3 moves 0.41, 0.67; K = 2 with 3 moves 0.40, 0.66; K = 1 with 1 / 2 / 3 / 5 moves 0.50, "
        "0.59 / 0.41, 0.54 / 0.49, 0.68 / 0.50, 0.68 (MALA on the same two seeds: 0.54, 0.57). Not kept: redrawing "
        "1–2 of the K directions with each move (K = 10 with 1 / 4 moves, seed 101: 5.7 / 3.4 against 0.92 / 2.5 "
        "without; K = 5 and K = 3 with 3 moves: 0.53, 0.70 and 0.44, 0.79 against 0.52, 0.66 and 0.41, 0.67), a step scaled with the noise level "
        "(K = 1, 2 moves: 1.04, 0.70), a lower target acceptance 0.4 (K = 5: 3.4, 0.63).\n\n",
        metric(low, &Scores::e_w2), metric(low, &Scores::dist_w2), metric(low, &Scores::x_w2), low_text.c_str(),
        metric(top, &Scores::e_w2), metric(top, &Scores::dist_w2), metric(top, &Scores::x_w2), top_text.c_str(),
        top_text.c_str(), best_of("mcmc", top, &Scores::e_w2), best_of("mcmc", top, &Scores::dist_w2),
        best_of("mcmc", top, &Scores::x_w2), top_text.c_str(), verdict(metric(top, &Scores::e_w2), e_target),
        e_target, verdict(metric(top, &Scores::dist_w2), d_target), d_target, low_text.c_str(),
        verdict(metric(low, &Scores::e_w2), e_target), verdict(metric(low, &Scores::dist_w2), d_target));
    md << move;
  }
  if (t.gmm) {
    const double x_post = mean_of("diffusion", "diffusion-posterior", top, &Scores::x_w2);
    if (x_post > 6) {
      char buf[1024];
      std::snprintf(
          buf, sizeof buf,
          "*diffusion-posterior on GMM-40* (x-W2 %.2f at %s evaluations): up to σ = 70 the posterior p(x0 | x) is "
          "the whole mixture seen through a wide Gaussian window; chains started at x/a, far from every mode at "
          "large noise, cannot find the modes, let alone weigh them, in a few hundred steps of size ≤ 0.5 — the "
          "importance-sampling forms above are the right tool where the posterior is multimodal and "
          "low-dimensional.\n\n",
          x_post, top_text.c_str());
      md << buf;
    }
    const double smc_modes = mean_of("diffusion", "diffusion-smc", top, &Scores::modes);
    char smc[1024];
    if (smc_modes < 40)
    std::snprintf(smc, sizeof smc,
                  "*diffusion-smc on GMM-40* (x-W2 %.2f, %.1f modes at %s evaluations): resampling at large noise, "
                  "where 40 modes are weighed by a few proposals each, loses modes the later levels cannot "
                  "restore; the importance-sampling score forms keep all 40.\n\n",
                  mean_of("diffusion", "diffusion-smc", top, &Scores::x_w2),
                  smc_modes, top_text.c_str());
    if (smc_modes < 40) md << smc;
  }
  return md.str();
}

std::string markdown(const std::vector<TaskResult>& tasks, const Config& config) {
  std::ostringstream md;
  md << "## Sample quality against MCMC at equal energy budgets (issue 3)\n\n";
  md << "Generated by `examples/benchmark_table` — do not edit by hand. Reproduce (this run took "
     << std::llround(config.elapsed_minutes) << " min on a loaded 2-core machine):\n\n```\n"
     << "cmake --preset release && cmake --build build/release --target benchmark_table\n"
     << config.command << "\n```\n\n";
  md << "N = " << config.samples << " samples (diffusion) or chains (MCMC, final state of each), seeds ";
  for (std::size_t i = 0; i < config.seeds.size(); ++i) md << (i ? ", " : "") << config.seeds[i];
  md << "; mean ± std over the seeds. **Budget** = energy(+gradient) evaluations per sample, counted as the "
        "samplers report them (diffusion: N·K·steps score proposals, plus the predictor–corrector's corrector "
        "scores; MCMC: every chain's evaluations including the initial state and the warm-up, all temperature "
        "levels for parallel tempering). x-W2: exact OT (network simplex) between the sample and 1000 "
        "reference points, centre of mass removed for the particle systems; E-W2: W2 (not squared) between the "
        "1-D energy distributions; dist-W2: W2 between the pooled interatomic-distance distributions; modes: "
        "GMM-40 components holding ≥ 1 % of the samples (nearest mean); TV: total variation of the mode "
        "counts to the uniform weights. Wall time: "
     << (config.threads == 1 ? std::string("one thread")
                             : std::to_string(config.threads) + " OpenMP threads (0: all)")
     << " on a 2-core machine shared with other builds (load average 4–10), so compare times within a row "
        "group only; with two threads on such a machine, OpenMP barriers made the small MCMC iterations ≈ 20× "
        "slower (DW-4 MALA at 2·10³ evaluations: 85 s on two threads, 4.2 s on one). Samples with a non-finite "
        "coordinate or energy are dropped from the metrics and counted "
        "under *dropped*.\n\n";
  md << "Reference sets: GMM-40 — 1000 exact samples drawn by the library per seed "
        "(`gmm40().sample_exact(1000, 10^6 + seed)`); DW-4 and LJ-13 — rows 1000·(seed−1) … 1000·seed−1 of "
        "`../shared/data/{dw4,lj13}_test.npy`. **Floor** rows: reference against reference (GMM-40: a second "
        "exact set, seed 2·10^6 + seed; DW-4/LJ-13: the same rows of `*_val.npy`). **iDEM** rows: the published "
        "learned sampler as quoted in the issue (not run here).\n\n";
  for (const auto& t : tasks) {
    md << "### " << t.settings.name << "\n\n";
    md << "Diffusion: VEGeometric(" << t.settings.sigma_min << ", " << t.settings.sigma_max
       << "), reverse-SDE Euler–Maruyama (predictor–corrector: Euler–Maruyama + 1 Langevin or HMC corrector step, "
          "snr 0.16, blend form), t_end = 0, MonteCarloScore blend τ = "
       << t.settings.blend_scale;
    if (std::isfinite(t.settings.clip)) md << ", per-particle score clip " << t.settings.clip;
    md << "; diffusion-posterior: Euler–Maruyama with PosteriorMcmcScore (blend form, same τ and clip; settings "
          "column: reverse steps, chain start, chains × MALA steps, burn-in, step h = 1/(1/h_max + a²/(ε s²))); "
          "hybrid-blend+mala (a hybrid, not a diffusion sampler): the blend-form diffusion on "
       << std::llround(100 * t.settings.hybrid_diffusion_share)
       << " % of the budget, then MALA chains from its samples on the rest";
    md << "; diffusion-smc: SmcDiffusionSampler, sequential Monte Carlo along the same noise path (settings column: "
          "levels × K proposals per particle and level, each particle's K directions kept along the path; "
          "intermediate potentials the K-proposal estimates of p_t, proposal mean from their blend score with the "
          "same τ and clip, proposal variance the exact reverse one for a N(·, τ²) target, systematic resampling "
          "when ESS < ρN, exact weights exp(−E) at t = 0"
       << (t.particles ? ", centre-of-mass-free Gaussians" : "")
       << "); diffusion-smc-move: the same SMC with resample-move (settings column: levels × K, M MALA moves per "
          "level and after the final draw, step rule): at every level each particle (x, ε) makes M Metropolis–"
          "Hastings moves that leave the level's extended target γ̂_n(x; ε)·Π N(ε_k) invariant (x-marginal p_t; "
          "MALA with the particle's clipped, projected score as drift, K evaluations per move at t > 0, one at "
          "t = 0), the step h adapted after each move from the population's acceptance, so a sample costs "
          "(1 + M)·(K·levels + 1) evaluations";
    md << "; hybrid-smc+mala (a hybrid): diffusion-smc on " << std::llround(100 * t.settings.smc.hybrid_smc_share)
       << " % of the budget, then MALA chains from its draws on the rest";
    md << ". MCMC: initial step " << t.settings.mcmc_step
       << ", per-chain step adaptation during the first half of the iterations (targets 0.574 MALA, 0.65 HMC), "
          "HMC L = "
       << t.settings.hmc_leapfrog << ", parallel tempering with " << t.settings.pt_levels
       << " geometric levels up to T = " << t.settings.pt_t_max << " (MALA moves). " << t.init_note << "\n\n";
    const bool short_pairs = t.settings.short_pair_distance > 0;
    const bool exact = !std::isnan(t.exact_ess);
    md << "| method | budget | settings | x-W2 | E-W2 | " << (t.particles ? "dist-W2 | " : "")
       << (exact ? "E-W2 vs exact | dist-W2 vs exact | " : "") << (short_pairs ? "short pairs | " : "")
       << (t.gmm ? "modes | TV | " : "") << "dropped | wall s | evaluations |\n";
    md << "| --- | --- | --- | --- | --- | " << (t.particles ? "--- | " : "") << (exact ? "--- | --- | " : "")
       << (short_pairs ? "--- | " : "") << (t.gmm ? "--- | --- | " : "") << "--- | --- | --- |\n";
    for (const auto& r : t.rows) {
      const bool ref = r.kind == "floor" || r.kind == "published" || r.kind == "published-floor" || r.kind == "exact";
      std::string name = r.kind == "floor"             ? "**floor** (reference vs reference, measured)"
                         : r.kind == "exact"           ? "**exact samples** of the energy vs reference"
                         : r.kind == "published-floor" ? "floor (published)"
                         : r.kind == "published"       ? "iDEM (published)"
                         : r.kind == "hybrid"          ? r.method + " (hybrid)"
                                                       : r.method;
      const std::string key = r.method + "@" + std::to_string(r.budget);
      const auto it = t.method_settings.find(key);
      Index dropped = 0;
      for (const auto& s : r.runs) dropped += s.dropped;
      md << "| " << name << " | " << (ref ? "–" : fmt_count(static_cast<double>(r.budget))) << " | "
         << (it != t.method_settings.end() ? it->second : r.note) << " | " << fmt(stat(r.runs, &Scores::x_w2), 3)
         << " | " << fmt(stat(r.runs, &Scores::e_w2), 3) << " | ";
      if (t.particles) md << fmt(stat(r.runs, &Scores::dist_w2), 4) << " | ";
      if (exact)
        md << fmt(stat(r.runs, &Scores::e_w2_exact), 3) << " | " << fmt(stat(r.runs, &Scores::dist_w2_exact), 4)
           << " | ";
      if (short_pairs) md << fmt(stat(r.runs, &Scores::short_pairs), 2) << " | ";
      if (t.gmm) md << fmt(stat(r.runs, &Scores::modes), 1) << " | " << fmt(stat(r.runs, &Scores::tv), 3) << " | ";
      md << (ref ? "–" : std::to_string(dropped)) << " | " << fmt(stat(r.runs, &Scores::seconds), 2) << " | "
         << fmt_count(stat(r.runs, &Scores::evaluations).mean * static_cast<double>(config.samples)) << " |\n";
    }
    md << "\n" << notes(t) << "\n";
  }
  md << "### Targets\n\n"
     << "Best diffusion sampler per task and budget (GMM-40: lowest x-W2; DW-4/LJ-13: lowest E-W2/floor + "
        "dist-W2/floor). Quality: GMM-40 x-W2 ≤ 4.5 and 40/40 modes in every seed; "
        "DW-4/LJ-13 E-W2 and dist-W2 within 1.3× the published floor (the measured floors, on other rows of the "
        "same files, are in the tables: about equal on E-W2, 2–4× larger on dist-W2). Versus MCMC: its means no "
        "worse than the best MCMC "
        "mean (per metric) at the same budget. Besides the best diffusion and the best hybrid row, diffusion-posterior, "
        "diffusion-smc, hybrid-blend+mala and hybrid-smc+mala keep a line of their own (marked when not the best).\n\n"
     << "| task | budget | diffusion row | figures | verdict |\n| --- | --- | --- | --- | --- |\n";
  for (const auto& t : tasks)
    for (const auto& l : t.target_lines) md << l << "\n";
  for (const auto& t : tasks) {
    if (std::isnan(t.exact_ess)) continue;
    // Which family is closer to the exact samples on distances at the largest budget.
    const Index top = t.settings.budgets.back().evaluations;
    double diffusion = kNaN, mcmc = kNaN;
    for (const auto& r : t.rows) {
      if (r.budget != top) continue;
      if (r.kind != "diffusion" && r.kind != "mcmc") continue;
      const double v = stat(r.runs, &Scores::dist_w2_exact).mean;
      double& best = r.kind == "diffusion" ? diffusion : mcmc;
      if (!std::isnan(v) && !(v >= best)) best = v;
    }
    double exact_dist = kNaN;
    for (const auto& r : t.rows)
      if (r.kind == "exact") exact_dist = stat(r.runs, &Scores::dist_w2).mean;
    char buf[700];
    std::snprintf(buf, sizeof buf,
                  "\n%s: the verdicts score against the reference sets, as the issue asks. Exact samples of the "
                  "energy score dist-W2 %.4f there (target ≤ 0.0286); against the exact samples the best %s row is "
                  "closer on distances at %s evaluations (dist-W2 vs exact: diffusion %.4f, MCMC %.4f; the note "
                  "under the table).\n",
                  t.settings.name.c_str(), exact_dist, mcmc < diffusion ? "MCMC" : "diffusion",
                  fmt_count(static_cast<double>(top)).c_str(), diffusion, mcmc);
    md << buf;
  }
  md << "\nFigures: largest budget, seed " << config.seeds.front() << " (`examples/scripts/plot_benchmark.py`).\n";
  return md.str();
}

// Replaces the text between the markers (inclusive) in `path`, or appends the marked section.
void write_section(const std::string& path, const std::string& body) {
  const std::string begin = "<!-- benchmark_table:begin -->", end = "<!-- benchmark_table:end -->";
  std::string text;
  {
    std::ifstream in(path);
    if (in) {
      std::stringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
  }
  const std::string section = begin + "\n" + body + end;
  const auto b = text.find(begin), e = text.find(end);
  if (b != std::string::npos && e != std::string::npos && e > b)
    text = text.substr(0, b) + section + text.substr(e + end.size());
  else
    text += (text.empty() || text.back() == '\n' ? "\n" : "\n\n") + section + "\n";
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp);
    out << text;
    if (!out) throw std::runtime_error("dqs: benchmark_table: cannot write " + temp);
  }
  std::filesystem::rename(temp, path);
}

// ---------------------------------------------------------------------------------------------------
// Tasks

// Exact samples of p ∝ exp(−E) for a translation-invariant particle energy by importance resampling: `proposals`
// centre-of-mass-free N(0, scale²) points (chunks keyed by Purpose::user, draw 5), weights exp(−E(y) + ‖y‖²/(2 scale²))
// (on the centre-of-mass-free subspace the proposal density is ∝ exp(−‖y‖²/(2 scale²))), n draws by systematic
// resampling. Two passes over the same streams (log-sum-exp, then the draws), so nothing but the draws is stored;
// the draws come out in pool order, and the pool is i.i.d., so consecutive blocks are independent exact samples.
// `ess` receives the effective sample size (Σw)²/Σw².
template <class E>
Matrix<double> importance_resample(const E& energy, Index proposals, double scale, Index n, std::uint64_t seed,
                                   double& ess) {
  using S = typename E::Scalar;
  constexpr Index kChunk = 100000;
  const auto chunk = [&](Index c, Vector<double>& log_w) {
    const Index count = std::min(kChunk, proposals - c * kChunk);
    Matrix<S> y = dqs::sample_centre_of_mass_free_normal<S>(
        energy.layout(), count,
        dqs::random::StreamKey{seed, static_cast<std::uint64_t>(c * kChunk), 0, dqs::random::Purpose::user, 5},
        static_cast<S>(scale));
    Vector<S> e(count);
    energy.energy(y, e);
    log_w = -e.template cast<double>().array() +
            y.template cast<double>().colwise().squaredNorm().transpose().array() / (2 * scale * scale);
    for (Index j = 0; j < count; ++j)
      if (!std::isfinite(log_w[j])) log_w[j] = -std::numeric_limits<double>::infinity();
    return Matrix<double>(y.template cast<double>());
  };
  const Index chunks = (proposals + kChunk - 1) / kChunk;
  double top = -std::numeric_limits<double>::infinity(), sum = 0, sum_sq = 0;
  Vector<double> log_w;
  for (Index c = 0; c < chunks; ++c) {
    chunk(c, log_w);
    const double m = std::max(top, log_w.maxCoeff());
    sum = sum * std::exp(top - m) + (log_w.array() - m).exp().sum();
    sum_sq = sum_sq * std::exp(2 * (top - m)) + (2 * (log_w.array() - m)).exp().sum();
    top = m;
  }
  ess = sum * sum / sum_sq;
  Matrix<double> out(energy.dim(), n);
  Vector<double> u(1);
  dqs::random::Stream(seed, 0, 0, dqs::random::Purpose::user, 6).uniform<double>(u);
  double cumulative = 0;
  Index next = 0;
  for (Index c = 0; c < chunks && next < n; ++c) {
    const Matrix<double> y = chunk(c, log_w);
    for (Index j = 0; j < y.cols() && next < n; ++j) {
      cumulative += std::exp(log_w[j] - top) / sum * static_cast<double>(n);
      while (next < n && cumulative > static_cast<double>(next) + u[0]) out.col(next++) = y.col(j);
    }
  }
  for (; next < n; ++next) out.col(next) = out.col(next - 1);  // rounding at the very end of the pool
  return out;
}

template <class E, class ReferenceFn, class FloorFn, class Init>
TaskResult run_task(const TaskSettings& task, const E& energy, const std::optional<dqs::ParticleLayout>& layout,
                    bool gmm, const ReferenceFn& reference_of, const FloorFn& floor_of, const Init& init,
                    const Config& config, std::ofstream& manifest) {
  TaskResult result;
  result.settings = task;
  if (config.sigma_max > 0) result.settings.sigma_max = config.sigma_max;
  if (config.smc_samples > 0) result.settings.smc.samples = config.smc_samples;
  if (config.smc_ess >= 0) result.settings.smc.ess_threshold = config.smc_ess;
  if (config.smc_fresh >= 0) result.settings.smc.fresh_proposals = config.smc_fresh == 1;
  if (config.smc_moves >= 0) result.settings.smc.moves = config.smc_moves;
  if (config.smc_move_refresh >= 0) result.settings.smc.move_refresh = config.smc_move_refresh;
  if (config.smc_move_samples >= 0) result.settings.smc.move_samples = config.smc_move_samples;
  if (config.smc_move_target > 0) result.settings.smc.move_target = config.smc_move_target;
  if (config.smc_move_scaled >= 0) result.settings.smc.move_noise_scaled = config.smc_move_scaled == 1;
  if (config.blend_scale > 0) result.settings.blend_scale = config.blend_scale;
  result.particles = layout.has_value();
  result.gmm = gmm;
  std::map<std::uint64_t, Reference> refs;
  Row floor{"floor", 0, "floor", {}, ""};
  for (auto seed : config.seeds) {
    refs.emplace(seed, make_reference(energy, layout, reference_of(seed)));
    Scores s = score_samples(energy, layout, refs.at(seed), floor_of(seed), gmm, task.short_pair_distance);
    floor.runs.push_back(s);
  }
  // Exact samples (DW-4): scored against the reference like the floor, and the reference every row is also
  // scored against (the E-W2/dist-W2 "vs exact" columns).
  std::map<std::uint64_t, Reference> exact_refs;
  if constexpr (requires { energy.layout(); }) {
    if (task.exact_proposals > 0) {
      const auto start = std::chrono::steady_clock::now();
      const Index per_seed = config.samples;
      const Matrix<double> pool = importance_resample(energy, task.exact_proposals, task.exact_proposal_scale,
                                                      per_seed * static_cast<Index>(config.seeds.size()), 4242,
                                                      result.exact_ess);
      result.exact_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      Row exact{"exact", 0, "exact", {}, ""};
      for (std::size_t i = 0; i < config.seeds.size(); ++i) {
        const auto seed = config.seeds[i];
        const Matrix<double> block = pool.middleCols(static_cast<Index>(i) * per_seed, per_seed);
        exact_refs.emplace(seed, make_reference(energy, layout, block));
        exact.runs.push_back(score_samples(energy, layout, refs.at(seed), block, gmm, task.short_pair_distance,
                                           &exact_refs.at(seed)));
      }
      std::ostringstream note;
      note << "importance resampling of " << fmt_count(static_cast<double>(task.exact_proposals))
           << " centre-of-mass-free N(0, " << task.exact_proposal_scale << "²) proposals, ESS "
           << fmt_count(result.exact_ess) << ", " << per_seed << " draws per seed";
      exact.note = note.str();
      result.rows.push_back(exact);
      std::filesystem::create_directories(config.scratch + "/" + task.name);
      dqs::io::write_npy(config.scratch + "/" + task.name + "/exact.npy",
                         Matrix<double>(pool.leftCols(per_seed)));
      dqs::io::write_npy_values(config.scratch + "/" + task.name + "/exact_energy.npy",
                                energies_of(energy, pool.leftCols(per_seed)));
      manifest << task.name << "\texact\t" << config.scratch << "/" << task.name << "/exact.npy\t" << config.scratch
               << "/" << task.name << "/exact_energy.npy\n";
    }
  }
  if (task.short_pair_distance > 0) {
    double sum = 0;
    for (const auto& [seed, ref] : refs) sum += short_pair_count(ref.distances, ref.x.cols(), task.short_pair_distance);
    result.reference_short_pairs = sum / static_cast<double>(refs.size());
  }
  result.rows.push_back(floor);
  if (!std::isnan(task.floor_x_w2)) {
    Scores s;
    s.x_w2 = task.floor_x_w2;
    s.e_w2 = task.floor_e_w2;
    s.dist_w2 = task.floor_dist_w2;
    result.rows.push_back(Row{"floor", 0, "published-floor", {s}, "as quoted in issue 3"});
  }
  if (!std::isnan(task.idem_x_w2)) {
    Scores s;
    s.x_w2 = task.idem_x_w2;
    s.e_w2 = task.idem_e_w2;
    result.rows.push_back(Row{"iDEM", 0, "published", {s}, "published (issue 3)"});
  }
  const std::string scratch = config.scratch + "/" + task.name;
  std::filesystem::create_directories(scratch);
  {
    const auto& ref = refs.at(config.seeds.front());
    dqs::io::write_npy(scratch + "/reference.npy", ref.x);
    dqs::io::write_npy_values(scratch + "/reference_energy.npy", ref.energies);
    manifest << task.name << "\treference\t" << scratch << "/reference.npy\t" << scratch
             << "/reference_energy.npy\n";
  }
  for (std::size_t bi = 0; bi < task.budgets.size(); ++bi) {
    const Budget& b = task.budgets[bi];
    if (!config.budgets.empty() &&
        std::find(config.budgets.begin(), config.budgets.end(), b.evaluations) == config.budgets.end())
      continue;
    for (const auto& m : kMethods) {
      if (!config.methods.empty() &&
          std::find(config.methods.begin(), config.methods.end(), m.name) == config.methods.end())
        continue;
      Row row{m.name, b.evaluations, m.kind, {}, ""};
      for (auto seed : config.seeds) {
        std::string settings;
        const auto start = std::chrono::steady_clock::now();
        Run<typename E::Scalar> run;
        try {
          run = run_method(m.name, energy, result.settings, b, config.samples, seed, config.threads, init, settings);
        } catch (const std::exception& error) {
          std::fprintf(stderr, "%s %s budget %ld seed %llu failed: %s\n", task.name.c_str(), m.name.c_str(),
                       static_cast<long>(b.evaluations), static_cast<unsigned long long>(seed), error.what());
          const std::string what = error.what();
          row.note = what.find("not finite") != std::string::npos
                         ? "trajectory left the floating-point range: run failed, all samples dropped"
                         : "failed: " + what;
          result.method_settings[m.name + "@" + std::to_string(b.evaluations)] = settings + "; " + row.note;
          Scores failed;
          failed.dropped = config.samples;
          row.runs.push_back(failed);
          continue;
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const Matrix<double> samples = run.samples.template cast<double>();
        Scores s = score_samples(energy, layout, refs.at(seed), samples, gmm, task.short_pair_distance,
                                 exact_refs.empty() ? nullptr : &exact_refs.at(seed));
        s.seconds = seconds;
        s.evaluations = run.evaluations / static_cast<double>(config.samples);
        row.runs.push_back(s);
        result.method_settings[m.name + "@" + std::to_string(b.evaluations)] = settings;
        std::printf("%-6s %-19s budget %-7ld seed %llu  x-W2 %.3f  E-W2 %.3f  dist-W2 %.4f  modes %g  TV %.3f  "
                    "dropped %ld  %.2f s  evals/sample %.0f\n",
                    task.name.c_str(), m.name.c_str(), static_cast<long>(b.evaluations),
                    static_cast<unsigned long long>(seed), s.x_w2, s.e_w2, s.dist_w2, s.modes, s.tv,
                    static_cast<long>(s.dropped), s.seconds, s.evaluations);
        if (!std::isnan(s.e_w2_exact))
          std::printf("%-6s %-19s budget %-7ld seed %llu  vs exact: E-W2 %.3f  dist-W2 %.4f  short pairs %.2f\n",
                      task.name.c_str(), m.name.c_str(), static_cast<long>(b.evaluations),
                      static_cast<unsigned long long>(seed), s.e_w2_exact, s.dist_w2_exact, s.short_pairs);
        std::fflush(stdout);
        if (bi + 1 == task.budgets.size() && seed == config.seeds.front()) {
          const std::string file = scratch + "/" + m.name;
          dqs::io::write_npy(file + ".npy", samples);
          dqs::io::write_npy_values(file + "_energy.npy", energies_of(energy, samples));
          manifest << task.name << "\t" << m.name << "\t" << file << ".npy\t" << file << "_energy.npy\n";
        }
      }
      result.rows.push_back(row);
    }
  }
  judge(result);
  return result;
}

// Uniform point in [lo, hi]^D per column, from the user purpose (no sampler uses it).
template <class S>
Matrix<S> uniform_box(Index dim, Index n, std::uint64_t seed, double lo, double hi) {
  Matrix<S> x(dim, n);
  for (Index j = 0; j < n; ++j) {
    Vector<S> u(dim);
    dqs::random::Stream stream(seed, static_cast<std::uint64_t>(j), 0, dqs::random::Purpose::user, 1);
    stream.uniform<S>(u);
    x.col(j) = (static_cast<S>(lo) + static_cast<S>(hi - lo) * u.array()).matrix();
  }
  return x;
}

// LJ start: n_particles distinct sites of a cubic lattice of spacing `spacing` (the smallest cube holding
// them), chosen at random per chain, jittered by 0.05·N(0, 1), centre of mass removed. No two particles
// overlap, so the energy is moderate (≈ −25 for LJ-13 at spacing 1.1) and the warm-up relaxes it.
template <class S>
Matrix<S> lattice_start(const dqs::ParticleLayout& layout, Index n, std::uint64_t seed, double spacing) {
  const Index np = layout.n_particles(), d = layout.spatial_dim();
  Index side = 1;
  while (static_cast<Index>(std::pow(static_cast<double>(side), static_cast<double>(d))) < np) ++side;
  const Index sites = static_cast<Index>(std::pow(static_cast<double>(side), static_cast<double>(d)));
  Matrix<S> x(layout.dim(), n);
  for (Index j = 0; j < n; ++j) {
    Vector<double> keys(sites), jitter(layout.dim());
    dqs::random::Stream(seed, static_cast<std::uint64_t>(j), 0, dqs::random::Purpose::user, 2).uniform<double>(keys);
    dqs::random::Stream(seed, static_cast<std::uint64_t>(j), 0, dqs::random::Purpose::user, 3).normal<double>(jitter);
    std::vector<Index> order(static_cast<std::size_t>(sites));
    std::iota(order.begin(), order.end(), Index{0});
    std::sort(order.begin(), order.end(), [&](Index a, Index b) { return keys[a] < keys[b]; });
    for (Index i = 0; i < np; ++i) {
      Index site = order[static_cast<std::size_t>(i)];
      for (Index k = 0; k < d; ++k) {
        x(i * d + k, j) = static_cast<S>(spacing * static_cast<double>(site % side) + 0.05 * jitter[i * d + k]);
        site /= side;
      }
    }
  }
  dqs::remove_centre_of_mass<S>(layout, x);
  return x;
}

// Rows [1000·(seed−1), 1000·seed) of an (M, D) reference file, wrapping around M.
Matrix<double> reference_rows(const std::string& path, Index n, std::uint64_t seed) {
  static std::map<std::string, Matrix<double>> cache;
  auto it = cache.find(path);
  if (it == cache.end()) it = cache.emplace(path, dqs::io::read_npy<double>(path)).first;
  const Matrix<double>& all = it->second;
  Matrix<double> out(all.rows(), n);
  for (Index j = 0; j < n; ++j)
    out.col(j) = all.col((static_cast<Index>(seed - 1) * 1000 + j) % all.cols());
  return out;
}

// DW-4 / LJ-13: reference rows of ../shared/data/<stem>_test.npy, floor rows of <stem>_val.npy.
template <class E, class Init>
TaskResult run_particle_task(const TaskSettings& task, const E& energy, const std::string& stem, const Init& init,
                             const Config& config, std::ofstream& manifest) {
  const std::string data = DQS_SHARED_DIR "/data/" + stem;
  return run_task(
      task, energy, energy.layout(), false,
      [&](std::uint64_t seed) { return reference_rows(data + "_test.npy", 1000, seed); },
      [&](std::uint64_t seed) { return reference_rows(data + "_val.npy", config.samples, seed); }, init, config,
      manifest);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"dqs sample-quality table: diffusion samplers vs MCMC at equal energy budgets"};
  Config config;
  double budget_scale = 1.0;
  app.add_flag("--smoke", config.smoke, "tiny configuration (seconds): 1 seed, N = 100, tiny budgets, "
                                        "writes into the working directory");
  app.add_option("--samples", config.samples, "N samples / chains per run")->check(CLI::PositiveNumber);
  app.add_option("--seeds", config.seeds, "seeds");
  app.add_option("--threads", config.threads, "OpenMP threads (0: all; default 1, see the doc)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--methods", config.methods, "only these methods (default: all)");
  app.add_option("--sigma-max", config.sigma_max, "override every task's VE sigma_max (exploration only)");
  app.add_option("--smc-samples", config.smc_samples, "override diffusion-smc's K (exploration only)");
  app.add_option("--smc-fresh", config.smc_fresh, "override diffusion-smc's fresh_proposals 0/1 (exploration only)");
  app.add_option("--smc-ess", config.smc_ess, "override diffusion-smc's ESS threshold (exploration only)");
  app.add_option("--smc-moves", config.smc_moves, "override diffusion-smc-move's moves per level (exploration only)");
  app.add_option("--smc-move-refresh", config.smc_move_refresh,
                 "override diffusion-smc-move's directions redrawn per move (exploration only)");
  app.add_option("--smc-move-samples", config.smc_move_samples,
                 "override diffusion-smc-move's K, 0: diffusion-smc's (exploration only)");
  app.add_option("--smc-move-target", config.smc_move_target,
                 "override diffusion-smc-move's target acceptance (exploration only)");
  app.add_option("--smc-move-scaled", config.smc_move_scaled,
                 "override diffusion-smc-move's noise-scaled step 0/1 (exploration only)");
  app.add_option("--budgets", config.budgets,
                 "only these budgets (evaluations per sample, as listed for the task; default: all)");
  app.add_option("--blend-scale", config.blend_scale, "override every task's blend scale tau (exploration only)");
  app.add_option("--tasks", config.tasks, "tasks among gmm40, dw4, lj13");
  app.add_option("--budget-scale", budget_scale, "multiply every budget (and diffusion K) by this")
      ->check(CLI::PositiveNumber);
  app.add_option("--doc", config.doc, "markdown file to write the section into");
  app.add_option("--figures", config.figures, "directory for the PNG figures");
  app.add_option("--scratch", config.scratch, "directory for the .npy samples behind the figures");
  CLI11_PARSE(app, argc, argv);
  // A misspelt filter would otherwise run nothing and write an empty section over docs/benchmarks.md.
  for (const auto& name : config.methods)
    if (std::none_of(kMethods.begin(), kMethods.end(), [&](const Method& m) { return m.name == name; })) {
      std::fprintf(stderr, "benchmark_table: unknown method '%s' in --methods; known:", name.c_str());
      for (const auto& m : kMethods) std::fprintf(stderr, " %s", m.name.c_str());
      std::fprintf(stderr, "\n");
      return 2;
    }
#ifdef _OPENMP
  // Every parallel region of the samplers and energies (not only BoltzmannSampler's) follows this.
  if (config.threads > 0) omp_set_num_threads(config.threads);
#endif

  std::ostringstream command;
  command << "build/release/examples/benchmark_table";  // the binary, wherever it was built
  for (int i = 1; i < argc; ++i) command << " " << argv[i];
  config.command = command.str();
  if (config.smoke) {
    config.samples = 100;
    config.seeds = {1};
    budget_scale = 1.0;
  }
  if (config.doc.empty()) config.doc = config.smoke ? "benchmark_table_smoke.md" : DQS_SOURCE_DIR "/docs/benchmarks.md";
  if (config.figures.empty())
    config.figures = config.smoke ? "benchmark_table_figures" : DQS_SOURCE_DIR "/docs/figures";
  if (config.scratch.empty())
    config.scratch = config.smoke ? "benchmark_table_smoke_samples" : "benchmark_table_samples";
  std::filesystem::create_directories(config.figures);
  std::filesystem::create_directories(config.scratch);

  const auto scaled = [&](std::vector<Budget> budgets) {
    if (config.smoke) {
      for (auto& b : budgets) {
        b.diffusion_steps = std::max<Index>(4, b.diffusion_steps / 10);
        b.posterior_steps = 0;
        b.evaluations = b.diffusion_steps * 4;
      }
      budgets.resize(2);
    } else {
      for (auto& b : budgets) b.evaluations = static_cast<Index>(std::llround(b.evaluations * budget_scale));
    }
    return budgets;
  };

  const auto run_start = std::chrono::steady_clock::now();
  std::ofstream manifest(config.scratch + "/manifest.tsv");
  std::vector<TaskResult> results;
  for (const auto& name : config.tasks) {
    if (name == "gmm40") {
      TaskSettings task;
      task.name = "GMM-40";
      task.budgets = scaled({{2000, 50}, {20000, 100}});
      task.sigma_max = 70;
      task.blend_scale = dqs::gmm40_std();
      task.mcmc_step = 0.5;
      task.pt_levels = 5;
      task.pt_t_max = 300;  // at T = 300 the modes (spacing ≈ 10, σ ≈ 1.3) merge: barriers ≈ 30/T ≪ 1
      task.idem_x_w2 = 7.7;
      task.floor_x_w2 = 3.8;  // the README's 3.8 ± 0.6 (the issue: ≈ 3.8–4.2)
      task.posterior.step_size = 0.5;
      task.smc.samples = 100;
      const auto energy = dqs::gmm40<float>();
      results.push_back(run_task(
          task, energy, std::nullopt, true,
          [&](std::uint64_t seed) { return Matrix<double>(energy.sample_exact(1000, 1000000 + seed).cast<double>()); },
          [&](std::uint64_t seed) {
            return Matrix<double>(energy.sample_exact(config.samples, 2000000 + seed).cast<double>());
          },
          [&](Index n, std::uint64_t seed) { return uniform_box<float>(2, n, seed, -50, 50); }, config, manifest));
      results.back().init_note = "MCMC chains start uniform on [−50, 50]².";
    } else if (name == "dw4") {
      // diffusion-posterior takes more, cheaper steps: the reverse-SDE discretisation, not the score, dominated its
      // error (one seed, N = 500, 2·10⁴ evaluations, 500/1000/2000 steps: E-W2 0.27/0.21/0.18; 4000 steps of
      // 2-step chains: the too-short chains' score is too sharp, E-W2 0.56).
      const TaskSettings task{.name = "DW-4",
                              .budgets = scaled({{2000, 100, 400}, {20000, 200, 2000}}),
                              .sigma_max = 3,
                              .blend_scale = 1,
                              .clip = 100,
                              .mcmc_step = 0.05,
                              .pt_t_max = 10,
                              .idem_x_w2 = 2.05,
                              .idem_e_w2 = 0.66,
                              .floor_x_w2 = 1.82,
                              .floor_e_w2 = 0.135,
                              .floor_dist_w2 = 0.022,
                              .short_pair_distance = 4.0,
                              .posterior = {},
                              .hybrid_diffusion_share = 0.5,
                              .smc = {.samples = 100, .moves = 4, .move_samples = 1, .move_noise_scaled = true},
                              .exact_proposals = config.smoke ? 200000 : 40000000};
      const dqs::DoubleWell<double> energy;
      results.push_back(run_particle_task(
          task, energy, "dw4",
          [&](Index n, std::uint64_t seed) {
            return dqs::sample_centre_of_mass_free_normal<double>(
                energy.layout(), n, dqs::random::StreamKey{seed, 0, 0, dqs::random::Purpose::user, 4}, 2.0);
          },
          config, manifest));
      results.back().init_note = "MCMC chains start from the centre-of-mass-free N(0, 2²) (typical distances ≈ 4).";
    } else if (name == "lj13") {
      const TaskSettings task{
          .name = "LJ-13",
          .budgets = scaled({{2000, 100}, {10000, 200}}),
          .sigma_max = 2,
          .blend_scale = 0.5,
          .clip = 100,
          .mcmc_step = 0.001,
          .pt_t_max = 5,
          .idem_x_w2 = 4.27,
          .idem_e_w2 = 2.28,
          .floor_x_w2 = 3.54,
          .floor_e_w2 = 0.56,
          .floor_dist_w2 = 0.0052,
          .posterior = {.proposals = 9, .step_size = 0.005, .noise_step = 0.3, .drift_clip = 20},
          .smc = {.samples = 10, .moves = 2, .move_samples = 1}};
      const dqs::LennardJones<double> energy;
      results.push_back(run_particle_task(
          task, energy, "lj13",
          [&](Index n, std::uint64_t seed) { return lattice_start<double>(energy.layout(), n, seed, 1.1); }, config,
          manifest));
      results.back().init_note =
          "MCMC chains start at 13 random sites of a 3×3×3 cubic lattice of spacing 1.1 (jitter 0.05, no "
          "overlaps), and the warm-up — counted in the budget — relaxes them; a unit Gaussian start puts "
          "particles on top of each other (energies up to 10^13).";
    } else {
      std::fprintf(stderr, "unknown task %s\n", name.c_str());
      return 2;
    }
  }
  manifest.close();
  for (const Index budget : config.budgets)
    if (std::none_of(results.begin(), results.end(), [&](const TaskResult& r) {
          return std::any_of(r.settings.budgets.begin(), r.settings.budgets.end(),
                             [&](const Budget& b) { return b.evaluations == budget; });
        })) {
      std::fprintf(stderr,
                   "benchmark_table: --budgets %ld matches no budget of the selected tasks (after --budget-scale); "
                   "nothing written to %s\n",
                   static_cast<long>(budget), config.doc.c_str());
      return 2;
    }

  config.elapsed_minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count() / 60;
  const std::string section = markdown(results, config);
  std::printf("\n%s", section.c_str());
  write_section(config.doc, section);
  std::printf("section written to %s\n", config.doc.c_str());

  const std::string plot = "/usr/bin/python3 \"" DQS_SOURCE_DIR "/examples/scripts/plot_benchmark.py\" --manifest \"" +
                           config.scratch + "/manifest.tsv\" --out \"" + config.figures + "\"";
  if (std::system(plot.c_str()) != 0) {
    std::fprintf(stderr, "plot failed (needs python3-matplotlib): %s\n", plot.c_str());
    return 1;
  }
  std::printf("figures written to %s\n", config.figures.c_str());

  // End-to-end plumbing check (the smoke test relies on it): the section is in the file between its markers,
  // every task has its table and figures, every floor and MCMC row produced finite metrics.
  std::ifstream written(config.doc);
  std::stringstream text;
  text << written.rdbuf();
  const std::string doc = text.str();
  bool ok = doc.find("<!-- benchmark_table:begin -->") < doc.find("<!-- benchmark_table:end -->") &&
            doc.find("<!-- benchmark_table:end -->") != std::string::npos;
  for (const auto& t : results) {
    std::string lower = t.settings.name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    ok = ok && doc.find("### " + t.settings.name) != std::string::npos;
    for (const std::string& suffix : t.gmm ? std::vector<std::string>{"_scatter.png"}
                                          : std::vector<std::string>{"_energy_hist.png", "_dist_hist.png"})
      ok = ok && std::filesystem::exists(config.figures + "/" + lower + suffix);
    for (const auto& r : t.rows)
      if (r.kind == "floor" || r.kind == "mcmc")
        for (const auto& run : r.runs) ok = ok && std::isfinite(run.x_w2) && std::isfinite(run.e_w2);
  }
  if (!ok) {
    std::fprintf(stderr, "benchmark_table: the written section, figures or reference rows are incomplete\n");
    return 1;
  }
  return 0;
}
