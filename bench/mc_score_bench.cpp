// Monte Carlo score estimation on GMM-40 (target-score form, as the PyTorch peer computes it):
// batch 1000 points x ~ N(0, 20² I), proposals y = x + σε with σ = 1, K proposals per point.
// Counter evals_per_s = energy+gradient evaluations per second (batch·K per iteration).
#include <dqs/dqs.hpp>

#include <benchmark/benchmark.h>

#include <cmath>

namespace {

// VEGeometric(0.01, 70) reaches s(t) = 1 at t = ln(1 + 1/σ_min²) / (2 ln(σ_max/σ_min)).
constexpr double kSigmaMin = 0.01, kSigmaMax = 70.0;
double time_of_unit_noise() { return std::log1p(1.0 / (kSigmaMin * kSigmaMin)) / (2 * std::log(kSigmaMax / kSigmaMin)); }

template <class S>
void BM_McScoreGmm40(benchmark::State& state) {
  const auto energy = dqs::gmm40<S>();
  const dqs::VEGeometric schedule(kSigmaMin, kSigmaMax);
  const dqs::Index batch = 1000, k = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  dqs::MonteCarloScoreOptions options;
  options.samples = k;
  options.form = dqs::ScoreForm::target;
  const dqs::MonteCarloScore estimator(options);
  dqs::Matrix<S> x(2, batch), score(2, batch);
  dqs::random::fill_normal<S>({7, 0, 0, dqs::random::Purpose::user, 0}, x);
  x *= S(20);
  const double t = time_of_unit_noise();
  dqs::detail::ThreadScope scope(threads);
  std::uint32_t step = 0;
  for (auto _ : state) {
    estimator.estimate(energy, schedule, x, t, {1, 0, ++step, dqs::random::Purpose::score, 0}, score);
    benchmark::DoNotOptimize(score.data());
    benchmark::ClobberMemory();
  }
  state.counters["evals_per_s"] =
      benchmark::Counter(static_cast<double>(batch * k) * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

void Args(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (int k : {100, 500, 1000}) b->Args({k, threads});
  b->ArgNames({"K", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

BENCHMARK(BM_McScoreGmm40<float>)->Apply(Args);
BENCHMARK(BM_McScoreGmm40<double>)->Apply(Args);

}  // namespace

BENCHMARK_MAIN();
