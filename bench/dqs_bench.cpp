// One DQS update as ../shared/peers/torch_dqs_update.py times it (obs 17, act 6, batch 256, K 100, 50 reverse
// steps, width 256, float32, 1 thread): next actions by the reverse SDE, a twin-critic TD step, the score
// regression on K-sample Monte Carlo targets of −min_i Q_i(s, ·)/α, Polyak averaging. Beside it: Eigen's float
// GEMM rate (the ceiling: the update's FLOP count over that rate) and environment steps per second when
// acting (one state, 50 reverse steps).
#include "dqs/nn/mlp.hpp"
#include "dqs/rl/critic.hpp"
#include "dqs/random/philox.hpp"
#include "dqs/rl/dqs_policy.hpp"
#include "dqs/rl/q_energy.hpp"
#include "dqs/train/optim.hpp"

#include <benchmark/benchmark.h>

#include <array>
#include <vector>

namespace {

using dqs::Index;
using dqs::Matrix;
using dqs::Vector;
using S = float;

constexpr Index kObs = 17, kAct = 6, kBatch = 256, kSamples = 100, kSteps = 50, kWidth = 256;

Matrix<S> normal_batch(Index rows, Index cols, std::uint64_t seed) {
  Matrix<S> m(rows, cols);
  dqs::random::fill_normal<S>(dqs::random::StreamKey{seed}, m);
  return m;
}

// The peer's critics: two MLPs [s; a] → W → ReLU → W → ReLU → 1, Q = min_i Q_i, with target copies.
// As a SharedStateActionValue it evaluates K actions at one state with the state's share of the first
// layer, W_s·s + b, computed once, and back-propagates ∇_a only through the argmin network of each action
// (the other network's gradient is multiplied by zero in the peer).
class TwinCritic {
 public:
  TwinCritic(Index obs, Index act, Index width)
      : obs_(obs), act_(act), nets_{make(obs, act, width, 1), make(obs, act, width, 2)}, targets_(nets_) {
    for (auto& net : nets_) adams_.emplace_back(net.num_parameters(), dqs::train::AdamConfig{.learning_rate = 3e-4});
    grad_.resize(nets_[0].num_parameters());
  }

  Index observation_dim() const { return obs_; }
  Index action_dim() const { return act_; }

  void value(dqs::ConstBatchRef<S> states, dqs::ConstBatchRef<S> actions, dqs::ValuesRef<S> values) const {
    min_value(nets_, states, actions, values);
  }
  void target_value(dqs::ConstBatchRef<S> states, dqs::ConstBatchRef<S> actions, dqs::ValuesRef<S> values) const {
    min_value(targets_, states, actions, values);
  }
  void value_and_action_gradient(dqs::ConstBatchRef<S> states, dqs::ConstBatchRef<S> actions,
                                 dqs::ValuesRef<S> values, dqs::BatchRef<S> grad) const {
    // Generic path (states differ per column): one column at a time through the shared-state kernel.
    for (Index j = 0; j < states.cols(); ++j)
      value_and_action_gradient_at_state(states.col(j), actions.col(j), values.segment(j, 1), grad.col(j));
  }

  void value_at_state(dqs::ConstBatchRef<S> state, dqs::ConstBatchRef<S> actions, dqs::ValuesRef<S> values) const {
    Scratch s;
    forward_at_state(state, actions, s);
    values = s.q[0].cwiseMin(s.q[1]).transpose();
  }

  void value_and_action_gradient_at_state(dqs::ConstBatchRef<S> state, dqs::ConstBatchRef<S> actions,
                                          dqs::ValuesRef<S> values, dqs::BatchRef<S> grad) const {
    Scratch s;
    forward_at_state(state, actions, s);
    const Index k = actions.cols();
    std::array<std::vector<Index>, 2> columns;
    for (Index j = 0; j < k; ++j) {
      const int i = s.q[1][j] < s.q[0][j] ? 1 : 0;
      values[j] = s.q[static_cast<std::size_t>(i)][j];
      columns[static_cast<std::size_t>(i)].push_back(j);
    }
    for (std::size_t i = 0; i < 2; ++i) {
      const Index m = static_cast<Index>(columns[i].size());
      if (m == 0) continue;
      const auto& net = nets_[i];
      // δ₂ = 1[z₂ > 0]∘w₃ᵀ, δ₁ = 1[z₁ > 0]∘(W₂ᵀδ₂), ∇_a = W₁,ₐᵀδ₁ on the argmin columns only.
      Matrix<S> d2(net.layer_outputs(1), m), z1(net.layer_outputs(0), m);
      const auto w3 = net.weight(2).transpose();
      for (Index c = 0; c < m; ++c) {
        const Index j = columns[i][static_cast<std::size_t>(c)];
        d2.col(c) = (s.z2[i].col(j).array() > S(0)).select(w3.array(), S(0));
        z1.col(c) = s.z1[i].col(j);
      }
      Matrix<S> d1 = net.weight(1).transpose() * d2;
      d1.array() *= (z1.array() > S(0)).template cast<S>();
      const Matrix<S> g = net.weight(0).middleCols(obs_, act_).transpose() * d1;
      for (Index c = 0; c < m; ++c) grad.col(columns[i][static_cast<std::size_t>(c)]) = g.col(c);
    }
  }

  // (2) TD step: both networks onto y = r + γ(1 − done)·min_i Q̄_i(s', a'), one Adam step each.
  void td_step(const Matrix<S>& input, const Matrix<S>& target) {
    const Vector<S> ones = Vector<S>::Ones(input.cols());
    for (std::size_t i = 0; i < 2; ++i) {
      nets_[i].weighted_mse_gradient(input, target, ones, grad_, ws_);
      adams_[i].step(nets_[i].parameters(), grad_);
    }
  }
  // (4) Q̄ ← (1 − τ)Q̄ + τQ.
  void polyak(double tau) {
    for (std::size_t i = 0; i < 2; ++i)
      targets_[i].parameters() = S(1 - tau) * targets_[i].parameters() + S(tau) * nets_[i].parameters();
  }

 private:
  struct Scratch {
    std::array<Matrix<S>, 2> z1, z2;
    std::array<Vector<S>, 2> q;
  };

  static dqs::nn::Mlp<S> make(Index obs, Index act, Index width, std::uint64_t seed) {
    dqs::nn::MlpConfig c;
    c.input_dim = obs + act;
    c.hidden = {width, width};
    c.output_dim = 1;
    c.activation = dqs::nn::Activation::relu;
    return dqs::nn::Mlp<S>(c, seed);
  }

  void forward_at_state(dqs::ConstBatchRef<S> state, dqs::ConstBatchRef<S> actions, Scratch& s) const {
    for (std::size_t i = 0; i < 2; ++i) {
      const auto& net = nets_[i];
      const Vector<S> base = net.bias(0) + net.weight(0).leftCols(obs_) * state;
      s.z1[i].noalias() = net.weight(0).middleCols(obs_, act_) * actions;
      s.z1[i].colwise() += base;
      const Matrix<S> h1 = s.z1[i].cwiseMax(S(0));
      s.z2[i].resize(net.layer_outputs(1), actions.cols());
      s.z2[i].colwise() = net.bias(1);
      s.z2[i].noalias() += net.weight(1) * h1;
      s.q[i] = (net.weight(2) * s.z2[i].cwiseMax(S(0))).transpose();
      s.q[i].array() += net.bias(2)[0];
    }
  }

  static void min_value(const std::array<dqs::nn::Mlp<S>, 2>& nets, dqs::ConstBatchRef<S> states,
                        dqs::ConstBatchRef<S> actions, dqs::ValuesRef<S> values) {
    Matrix<S> input(states.rows() + actions.rows(), states.cols());
    input << states, actions;
    const Matrix<S> q0 = nets[0].forward(input), q1 = nets[1].forward(input);
    values = q0.cwiseMin(q1).transpose();
  }

  Index obs_, act_;
  std::array<dqs::nn::Mlp<S>, 2> nets_, targets_;
  std::vector<dqs::train::Adam<S>> adams_;
  Vector<S> grad_;
  dqs::nn::MlpWorkspace<S> ws_;
};
static_assert(dqs::rl::SharedStateActionValue<TwinCritic, S>);

// The peer's score network and schedule: [s; x; e(t) 128; e(α) 128] → W → GELU → 2 residual GELU blocks → A,
// embedding frequencies 1 … 1/1000, VE σ 1e-5 … 1, λ(t) = h(t) + 1e-3, α = 0.05, lr 3e-4; the peer's MC
// energy is −min Q(s, x)/α on x directly (no tanh): ActionMap::identity.
dqs::rl::DqsPolicyOptions peer_options() {
  dqs::rl::DqsPolicyOptions o;
  o.samples = kSamples;
  o.steps = kSteps;
  o.hidden = {kWidth, kWidth, kWidth};
  o.embedding_dim = 128;
  o.min_frequency = 1e-3;
  o.max_frequency = 1.0;
  o.sigma_min = 1e-5;
  o.sigma_max = 1.0;
  o.action_map = dqs::rl::ActionMap::identity;
  o.score_form = dqs::ScoreForm::target;
  o.alpha_initial = o.alpha_final = 0.05;
  o.learning_rate = 3e-4;
  o.threads = 1;
  return o;
}

// Multiply–adds of one update as the peer computes it (every GEMM of its graph; 2 flops each).
double peer_update_flops() {
  const double o = kObs, a = kAct, w = kWidth, b = kBatch, k = kSamples, n = kSteps;
  const double score_fwd = (o + a + 256) * w + 2 * w * w + w * a;  // per sample
  const double critic_fwd = (o + a) * w + w * w + w;
  const double sampling = n * b * score_fwd + 2 * b * critic_fwd;                   // (1) + target critics
  const double td = 2 * b * (critic_fwd + critic_fwd + w * w + w);                   // (2) fwd, weight and hidden grads
  const double mc = 2 * b * k * (critic_fwd + (w + w * w + (o + a) * w));            // (3) both critics fwd + ∇ input
  const double score_step = b * (score_fwd + score_fwd + 2 * w * w + w * a);         // (3) regression fwd + bwd
  return 2 * (sampling + td + mc + score_step);
}

// The same update as this library computes it (the state's share hoisted, argmin-only gradients).
double dqs_update_flops() {
  const double o = kObs, a = kAct, w = kWidth, b = kBatch, k = kSamples, n = kSteps;
  const double score_fwd = (o + a + 256) * w + 2 * w * w + w * a;
  const double critic_fwd = (o + a) * w + w * w + w;
  const double sampling = n * b * (a * w + 2 * w * w + w * a) + 2 * b * critic_fwd;
  const double td = 2 * b * (critic_fwd + critic_fwd + w * w + w);
  const double mc = b * k * (2 * (a * w + w * w + w) + (w + w * w + a * w));
  const double score_step = b * (score_fwd + score_fwd + 2 * w * w + w * a);
  return 2 * (sampling + td + mc + score_step);
}

void BM_DqsUpdate(benchmark::State& state) {
  dqs::detail::ThreadScope threads(1);
  TwinCritic critic(kObs, kAct, kWidth);
  dqs::rl::DqsPolicy policy(kObs, kAct, peer_options());
  const Matrix<S> s = normal_batch(kObs, kBatch, 1), s2 = normal_batch(kObs, kBatch, 2);
  const Matrix<S> actions = (normal_batch(kAct, kBatch, 3).array() * S(0.4)).tanh().matrix();
  const Vector<S> reward = normal_batch(kBatch, 1, 4), done = Vector<S>::Zero(kBatch);
  Matrix<S> input(kObs + kAct, kBatch);
  input << s, actions;
  Matrix<S> next(kAct, kBatch), target(1, kBatch);
  Vector<S> bonus(kBatch), q_next(kBatch);
  std::uint64_t update = 0;
  for (auto _ : state) {
    const dqs::random::StreamKey key{7, update * kBatch, static_cast<std::uint32_t>(update)};
    policy.next_action(s2, key, next, bonus);                                                      // (1)
    critic.target_value(s2, next, q_next);
    target = (reward.array() + S(0.99) * (S(1) - done.array()) * (q_next + bonus).array()).transpose();
    critic.td_step(input, target);                                                                // (2)
    const auto stats = policy.update(s, actions, critic, key.with(dqs::random::Purpose::user, 1));  // (3)
    critic.polyak(0.005);                                                                         // (4)
    benchmark::DoNotOptimize(stats);
    ++update;
  }
  state.counters["updates/s"] = benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peer_GFLOP/s"] =
      benchmark::Counter(peer_update_flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = benchmark::Counter(dqs_update_flops() * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DqsUpdate)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(2.0);

// The parts of the update, to see where the time goes.
void BM_DqsNextAction(benchmark::State& state) {
  dqs::detail::ThreadScope threads(1);
  dqs::rl::DqsPolicy policy(kObs, kAct, peer_options());
  const Matrix<S> s2 = normal_batch(kObs, kBatch, 2);
  Matrix<S> next(kAct, kBatch);
  Vector<S> bonus(kBatch);
  std::uint64_t n = 0;
  for (auto _ : state) policy.next_action(s2, {7, (n++) * kBatch}, next, bonus);
}
BENCHMARK(BM_DqsNextAction)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_DqsScoreRegression(benchmark::State& state) {
  dqs::detail::ThreadScope threads(1);
  TwinCritic critic(kObs, kAct, kWidth);
  dqs::rl::DqsPolicy policy(kObs, kAct, peer_options());
  const Matrix<S> s = normal_batch(kObs, kBatch, 1);
  const Matrix<S> actions = (normal_batch(kAct, kBatch, 3).array() * S(0.4)).tanh().matrix();
  std::uint64_t n = 0;
  for (auto _ : state) benchmark::DoNotOptimize(policy.update(s, actions, critic, {7, (n++) * kBatch}));
}
BENCHMARK(BM_DqsScoreRegression)->UseRealTime()->Unit(benchmark::kMillisecond);

// The same regression step against the training loop's rl::Critic (no shared-state path: the state is
// replicated over the K proposals and both networks are back-propagated), for comparison.
void BM_DqsScoreRegressionLoopCritic(benchmark::State& state) {
  dqs::detail::ThreadScope threads(1);
  dqs::rl::CriticConfig config;
  config.hidden = {kWidth, kWidth};
  const dqs::rl::Critic<S> critic(kObs, kAct, config, 1);
  dqs::rl::DqsPolicy policy(kObs, kAct, peer_options());
  const Matrix<S> s = normal_batch(kObs, kBatch, 1);
  const Matrix<S> actions = (normal_batch(kAct, kBatch, 3).array() * S(0.4)).tanh().matrix();
  std::uint64_t n = 0;
  for (auto _ : state) benchmark::DoNotOptimize(policy.update(s, actions, critic, {7, (n++) * kBatch}));
}
BENCHMARK(BM_DqsScoreRegressionLoopCritic)->UseRealTime()->Unit(benchmark::kMillisecond);

// Acting in an environment: one state, 50 reverse steps (stochastic), env steps per second.
void BM_DqsAct(benchmark::State& state) {
  dqs::detail::ThreadScope threads(1);
  dqs::rl::DqsPolicy policy(kObs, kAct, peer_options());
  const Matrix<S> s = normal_batch(kObs, 1, 5);
  Matrix<S> action(kAct, 1);
  std::uint64_t n = 0;
  for (auto _ : state) {
    policy.act(s, {7, n++}, state.range(0) != 0, action);
    benchmark::DoNotOptimize(action.data());
  }
  state.counters["env_steps/s"] = benchmark::Counter(1.0, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_DqsAct)->ArgName("deterministic")->Arg(0)->Arg(1)->UseRealTime()->Unit(benchmark::kMicrosecond);

// rl::Critic's shared-state path against its batch path at Pendulum sizes (observation 3, action 1, critic 2×256
// ReLU, 256 states × K proposals, as QEnergy's Monte Carlo score asks): value_and_action_gradient_at_state once
// per state on its K actions (each member's W_s·s + b_0 computed once per state) against one
// value_and_action_gradient call on the state repeated K times. Arguments (shared, K); 1 thread.
void BM_CriticActionGradientPendulum(benchmark::State& state) {
  dqs::detail::ThreadScope threads(1);
  constexpr Index obs = 3, act = 1, states = 256;
  const bool shared = state.range(0) != 0;
  const Index k = state.range(1);
  dqs::rl::CriticConfig config;
  config.hidden = {256, 256};
  const dqs::rl::Critic<S> critic(obs, act, config, 1);
  const Matrix<S> s = normal_batch(obs, states, 1);
  const Matrix<S> actions = (normal_batch(act, states * k, 2).array() * S(0.5)).tanh().matrix();
  Matrix<S> repeated(obs, states * k);
  for (Index j = 0; j < states; ++j) repeated.middleCols(j * k, k) = s.col(j).replicate(1, k);
  Vector<S> values(states * k);
  Matrix<S> grad(act, states * k);
  for (auto _ : state) {
    if (shared) {
      for (Index j = 0; j < states; ++j)
        critic.value_and_action_gradient_at_state(s.col(j), actions.middleCols(j * k, k), values.segment(j * k, k),
                                                  grad.middleCols(j * k, k));
    } else {
      critic.value_and_action_gradient(repeated, actions, values, grad);
    }
    benchmark::DoNotOptimize(values.data());
    benchmark::DoNotOptimize(grad.data());
    benchmark::ClobberMemory();
  }
  state.counters["actions/s"] =
      benchmark::Counter(static_cast<double>(states * k), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_CriticActionGradientPendulum)
    ->ArgNames({"shared", "K"})
    ->Args({0, 16})
    ->Args({1, 16})
    ->Args({0, 100})
    ->Args({1, 100})
    ->Unit(benchmark::kMicrosecond);

// Eigen's float GEMM at the update's dominant shape (256×256 times 256×1024), the ceiling's rate.
void BM_EigenGemm(benchmark::State& state) {
  const Matrix<S> w = normal_batch(kWidth, kWidth, 8), x = normal_batch(kWidth, 1024, 9);
  Matrix<S> y(kWidth, 1024);
  for (auto _ : state) {
    y.noalias() = w * x;
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * kWidth * kWidth * 1024 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_EigenGemm)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
