// LJ-13 (and DW-4, LJ-55) energy+gradient throughput on a batch, the figure bench/comparisons/particles.py
// sets against the PyTorch peer (../shared/peers/torch_mc_score.py --energy lj13). Counter evals_per_s =
// points evaluated per second (wall clock); the argument pair is (batch, threads). lj13_smc_move runs the
// resample-move SMC of benchmark_table's LJ-13 row: its evals_per_s against lj13_f64's is its overhead.
#include "dqs/energy/double_well.hpp"
#include "dqs/energy/lennard_jones.hpp"
#include "dqs/energy/particles.hpp"
#include "dqs/detail/parallel.hpp"
#include "dqs/random/philox.hpp"
#include "dqs/sampler/smc_diffusion.hpp"
#include "dqs/schedule/ve_geometric.hpp"
#include "dqs/score/posterior_mcmc.hpp"

#include <benchmark/benchmark.h>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

template <class Energy>
void energy_and_gradient_rate(benchmark::State& state, const Energy& energy, double scale) {
  using S = typename Energy::Scalar;
  const dqs::Index batch = state.range(0);
  const int threads = static_cast<int>(state.range(1));
#ifdef _OPENMP
  omp_set_num_threads(threads);
#else
  if (threads != 1) {
    state.SkipWithError("built without OpenMP");
    return;
  }
#endif
  // Random configurations like the peer's (standard normals, here times `scale`).
  dqs::Matrix<S> x(energy.dim(), batch);
  dqs::random::fill_normal<S>({.seed = 1, .purpose = dqs::random::Purpose::user}, x);
  x *= static_cast<S>(scale);
  dqs::Vector<S> values(batch);
  dqs::Matrix<S> grad(energy.dim(), batch);
  for (auto _ : state) {
    energy.energy_and_gradient(x, values, grad);
    benchmark::DoNotOptimize(values.data());
    benchmark::DoNotOptimize(grad.data());
    benchmark::ClobberMemory();
  }
  state.counters["evals_per_s"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

void lj13_f64(benchmark::State& state) { energy_and_gradient_rate(state, dqs::LennardJones<double>(13, 3), 1.0); }
void lj13_f32(benchmark::State& state) { energy_and_gradient_rate(state, dqs::LennardJones<float>(13, 3), 1.0); }
void lj55_f64(benchmark::State& state) { energy_and_gradient_rate(state, dqs::LennardJones<double>(55, 3), 1.0); }
void dw4_f64(benchmark::State& state) { energy_and_gradient_rate(state, dqs::DoubleWell<double>(), 1.0); }

void lj13_energy_only_f64(benchmark::State& state) {
  const dqs::LennardJones<double> energy(13, 3);
  const dqs::Index batch = state.range(0);
#ifdef _OPENMP
  omp_set_num_threads(static_cast<int>(state.range(1)));
#endif
  dqs::Matrix<double> x(energy.dim(), batch);
  dqs::random::fill_normal<double>({.seed = 1, .purpose = dqs::random::Purpose::user}, x);
  dqs::Vector<double> values(batch);
  for (auto _ : state) {
    energy.energy(x, values);
    benchmark::DoNotOptimize(values.data());
    benchmark::ClobberMemory();
  }
  state.counters["evals_per_s"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

// PosteriorMcmcScore on DW-4 as benchmark_table's diffusion-posterior row runs it (budget 2·10³: C = 1 chain of
// M = 4 MALA steps from x/a, burn-in 2, h ≤ 0.05, ε = 0.5, blend τ 1, per-particle clip 100; VEGeometric(0.01, 3)
// at t = 0.5) on 1000 points, with batch_columns 1 (one chain per energy call: the pair kernel's 32-point SIMD
// blocks hold one point) against 64 (64 points' chains per call). Arguments (batch_columns, threads); counters:
// scores_per_s (points) and evals_per_s (energy+gradient evaluations), wall clock; CPU time is the process's.
void dw4_posterior_mcmc_score(benchmark::State& state) {
  const dqs::DoubleWell<double> energy;
  const dqs::VEGeometric schedule(0.01, 3.0);
  dqs::PosteriorMcmcScoreOptions o;
  o.chains = 1;
  o.steps = 4;
  o.burn_in = 2;
  o.step_size = 0.05;
  o.noise_step = 0.5;
  o.blend_scale = 1;
  o.clip = 100;
  o.clip_block = energy.layout().spatial_dim();
  o.batch_columns = state.range(0);
  const dqs::PosteriorMcmcScore estimator(o);
  dqs::detail::ThreadScope threads(static_cast<int>(state.range(1)));
  constexpr dqs::Index batch = 1000;
  const double t = 0.5;
  // Points x = x0 + s(t)·ε with x0 from the centre-of-mass-free N(0, 2²) (typical DW-4 distances).
  dqs::Matrix<double> x = dqs::sample_centre_of_mass_free_normal<double>(
      energy.layout(), batch, {.seed = 1, .purpose = dqs::random::Purpose::user}, 2.0);
  x += schedule.sigma(t) * dqs::sample_centre_of_mass_free_normal<double>(
                               energy.layout(), batch, {.seed = 2, .purpose = dqs::random::Purpose::user}, 1.0);
  dqs::Matrix<double> score(energy.dim(), batch);
  std::int64_t evaluations = 0;
  std::uint32_t step = 0;
  for (auto _ : state) {
    evaluations = estimator.estimate(energy, schedule, x, t,
                                     {.seed = 3, .step = ++step, .purpose = dqs::random::Purpose::score}, score);
    benchmark::DoNotOptimize(score.data());
    benchmark::ClobberMemory();
  }
  state.counters["scores_per_s"] =
      benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["evals_per_s"] =
      benchmark::Counter(static_cast<double>(evaluations), benchmark::Counter::kIsIterationInvariantRate);
}

// SmcDiffusionSampler as benchmark_table's LJ-13 diffusion-smc-move row runs it (K = 1, 2 MALA moves at every
// level, clip 100 per particle), 20 levels, N = 1000: 3·(20 + 1)·1000 energy+gradient evaluations per run.
// Its evals_per_s beside lj13_f64 (batch 1000, same threads) is the share of the energy's rate it keeps.
void lj13_smc_move(benchmark::State& state) {
  const dqs::LennardJones<double> energy;
  const dqs::SmcDiffusionSampler sampler(energy, dqs::VEGeometric(0.01, 2),
                                         {.steps = 20,
                                          .samples = 1,
                                          .blend_scale = 0.5,
                                          .clip = 100,
                                          .clip_block = 3,
                                          .layout = energy.layout(),
                                          .moves = 2,
                                          .move_every_level = true,
                                          .threads = static_cast<int>(state.range(1))});
  std::int64_t evaluations = 0;
  std::uint64_t seed = 0;
  for (auto _ : state) {
    const auto r = sampler.sample(state.range(0), ++seed);
    evaluations = r.energy_evaluations;
    benchmark::DoNotOptimize(r.samples.data());
  }
  state.counters["evals_per_s"] =
      benchmark::Counter(static_cast<double>(evaluations), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

// UseRealTime: with 2 threads the CPU time of the calling thread alone would overstate the rate.
BENCHMARK(lj13_f64)->ArgNames({"batch", "threads"})->Args({1000, 1})->Args({1000, 2})->UseRealTime();
BENCHMARK(lj13_f32)->ArgNames({"batch", "threads"})->Args({1000, 1})->Args({1000, 2})->UseRealTime();
BENCHMARK(lj13_energy_only_f64)->ArgNames({"batch", "threads"})->Args({1000, 1})->UseRealTime();
BENCHMARK(lj55_f64)->ArgNames({"batch", "threads"})->Args({1000, 1})->Args({1000, 2})->UseRealTime();
BENCHMARK(dw4_f64)->ArgNames({"batch", "threads"})->Args({1000, 1})->Args({1000, 2})->UseRealTime();
BENCHMARK(lj13_smc_move)->ArgNames({"particles", "threads"})->Args({1000, 1})->Args({1000, 2})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(dw4_posterior_mcmc_score)
    ->ArgNames({"batch_columns", "threads"})
    ->Args({1, 1})
    ->Args({64, 1})
    ->Args({1, 2})
    ->Args({64, 2})
    ->MeasureProcessCPUTime()
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
