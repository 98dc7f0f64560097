// LJ-13 (and DW-4, LJ-55) energy+gradient throughput on a batch, the figure bench/comparisons/particles.py
// sets against the PyTorch peer (../shared/peers/torch_mc_score.py --energy lj13). Counter evals_per_s =
// points evaluated per second (wall clock); the argument pair is (batch, threads).
#include "dqs/energy/double_well.hpp"
#include "dqs/energy/lennard_jones.hpp"
#include "dqs/random/philox.hpp"

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

}  // namespace

// UseRealTime: with 2 threads the CPU time of the calling thread alone would overstate the rate.
BENCHMARK(lj13_f64)->ArgNames({"batch", "threads"})->Args({1000, 1})->Args({1000, 2})->UseRealTime();
BENCHMARK(lj13_f32)->ArgNames({"batch", "threads"})->Args({1000, 1})->Args({1000, 2})->UseRealTime();
BENCHMARK(lj13_energy_only_f64)->ArgNames({"batch", "threads"})->Args({1000, 1})->UseRealTime();
BENCHMARK(lj55_f64)->ArgNames({"batch", "threads"})->Args({1000, 1})->Args({1000, 2})->UseRealTime();
BENCHMARK(dw4_f64)->ArgNames({"batch", "threads"})->Args({1000, 1})->Args({1000, 2})->UseRealTime();

BENCHMARK_MAIN();
