// MLP training step (forward, hand-derived backward, Adam; float32; 64 → 256 → 256 → 256 → 8, ReLU)
// against Eigen's own float GEMM rate in the same binary, the same step on the autodiff tape, and the
// tape's overhead on a small network (width 16) as depth grows. All single-threaded.
#include "dqs/ad/ops.hpp"
#include "dqs/nn/mlp.hpp"
#include "dqs/random/philox.hpp"
#include "dqs/train/optim.hpp"

#include <benchmark/benchmark.h>

namespace {

using dqs::Index;
using dqs::Matrix;
using dqs::Vector;

template <class S>
Matrix<S> normal_batch(Index rows, Index cols, std::uint64_t seed) {
  Matrix<S> m(rows, cols);
  dqs::random::fill_normal<S>(dqs::random::StreamKey{seed}, m);
  return m;
}

dqs::nn::MlpConfig step_config(Index depth = 3, Index width = 256, Index in = 64, Index out = 8) {
  dqs::nn::MlpConfig c;
  c.input_dim = in;
  c.hidden.assign(static_cast<std::size_t>(depth), width);
  c.output_dim = out;
  c.activation = dqs::nn::Activation::relu;
  return c;
}

// The peer's flop count (2·3 flops per weight per sample: forward, input-gradient and weight-gradient
// GEMMs), so GFLOP/s compare one to one.
void set_counters(benchmark::State& state, double weights, Index batch) {
  state.counters["GFLOP/s"] = benchmark::Counter(6.0 * weights * static_cast<double>(batch) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  state.counters["steps/s"] = benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_MlpTrainStep(benchmark::State& state) {
  const Index batch = state.range(0);
  dqs::nn::Mlp<float> net(step_config(), 0);
  dqs::train::Adam<float> adam(net.num_parameters(), {.learning_rate = 1e-3});
  const Matrix<float> x = normal_batch<float>(64, batch, 1), y = normal_batch<float>(8, batch, 2);
  // Weights 1/8 make the loss the peer's mean over all N·8 entries.
  const Vector<float> w = Vector<float>::Constant(batch, 1.0f / 8);
  Vector<float> grad(net.num_parameters());
  dqs::nn::MlpWorkspace<float> ws;
  for (auto _ : state) {
    const float loss = net.weighted_mse_gradient(x, y, w, grad, ws);
    adam.step(net.parameters(), grad);
    benchmark::DoNotOptimize(loss);
  }
  set_counters(state, static_cast<double>(net.num_weights()), batch);
}
BENCHMARK(BM_MlpTrainStep)
    ->ArgName("batch")
    ->Arg(32)
    ->Arg(256)
    ->Arg(1024)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// The parts of one step, to see where the time goes.
void BM_MlpForwardTrain(benchmark::State& state) {
  const Index batch = state.range(0);
  dqs::nn::Mlp<float> net(step_config(), 0);
  const Matrix<float> x = normal_batch<float>(64, batch, 1);
  dqs::nn::MlpWorkspace<float> ws;
  for (auto _ : state) benchmark::DoNotOptimize(net.forward_train(x, ws).data());
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(net.num_weights() * batch) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_MlpForwardTrain)->ArgName("batch")->Arg(32)->Arg(1024)->Unit(benchmark::kMicrosecond);

void BM_AdamStep(benchmark::State& state) {
  dqs::nn::Mlp<float> net(step_config(), 0);
  dqs::train::Adam<float> adam(net.num_parameters(), {.learning_rate = 1e-6});
  const Vector<float> grad = normal_batch<float>(net.num_parameters(), 1, 3);
  for (auto _ : state) adam.step(net.parameters(), grad);
  state.counters["params"] = static_cast<double>(net.num_parameters());
}
BENCHMARK(BM_AdamStep)->Unit(benchmark::kMicrosecond);

// The ceiling: Eigen's float GEMM, 256×256 times 256×1024.
void BM_EigenGemm(benchmark::State& state) {
  const Matrix<float> a = normal_batch<float>(256, 256, 4), b = normal_batch<float>(256, 1024, 5);
  Matrix<float> c(256, 1024);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * 256 * 256 * 1024 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_EigenGemm)->UseRealTime()->Unit(benchmark::kMicrosecond);

// The same training step with gradients from the tape (matmul/add_bias/relu ops) instead of the
// hand-derived backward.
void BM_MlpTrainStepTape(benchmark::State& state) {
  const Index batch = state.range(0);
  dqs::nn::Mlp<float> net(step_config(), 0);
  dqs::train::Adam<float> adam(net.num_parameters(), {.learning_rate = 1e-3});
  const Matrix<float> x = normal_batch<float>(64, batch, 1), y = normal_batch<float>(8, batch, 2);
  Vector<float> grad(net.num_parameters());
  dqs::ad::Tape<float> tape;
  for (auto _ : state) {
    tape.reset();
    const auto params = net.parameters_on(tape);
    const auto out = net.forward_on(tape, params, tape.constant(x));
    const auto loss = dqs::ad::mean(dqs::ad::square(out - tape.constant(y)));
    tape.backward(loss);
    net.gather_gradient(params, grad);
    adam.step(net.parameters(), grad);
  }
  set_counters(state, static_cast<double>(net.num_weights()), batch);
}
BENCHMARK(BM_MlpTrainStepTape)->ArgName("batch")->Arg(32)->Arg(256)->Arg(1024)->Unit(benchmark::kMicrosecond);

// Tape overhead: width-16 network, batch 32, depth 1..8; forward + backward (including reset and
// the parameter leaves). A per-scalar tree would grow exponentially; the record grows linearly.
void BM_TapeDepth(benchmark::State& state) {
  const Index depth = state.range(0);
  dqs::nn::Mlp<double> net(step_config(depth, 16, 16, 1), 0);
  const Matrix<double> x = normal_batch<double>(16, 32, 6);
  dqs::ad::Tape<double> tape;
  for (auto _ : state) {
    tape.reset();
    const auto params = net.parameters_on(tape);
    const auto loss = dqs::ad::sum(net.forward_on(tape, params, tape.constant(x)));
    tape.backward(loss);
    benchmark::DoNotOptimize(params[0].gradient().data());
  }
  state.counters["nodes"] = static_cast<double>(tape.num_nodes());
  state.counters["us_per_layer"] =
      benchmark::Counter(static_cast<double>(depth + 1) * 1e-6,
                         benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_TapeDepth)->ArgName("depth")->DenseRange(1, 8)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  Eigen::setNbThreads(1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
