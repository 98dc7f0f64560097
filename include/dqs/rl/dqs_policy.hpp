// Diffusion Q-Sampling policy (Jain et al., arXiv 2410.01312): π(a|s) ∝ exp(Q(s, a)/α) sampled by a reverse
// SDE whose score f(s, x_t, t, α) is regressed onto the K-sample Monte Carlo score S_K of E = −Q(s, ·)/α:
// loss λ(t)·‖f − S_K‖², x_t = x_0 + s(t)·ε, t ~ U(0, 1), λ(t) = s(t)² + λ_min; x_0 the replay action (its atanh
// under a tanh map). Temperature: α0·(α1/α0)^min(1, n/T), or tuned toward a target entropy with log π from
// the probability-flow ODE, log p_0(x_0) = log N(x_1; 0, s_1²) + ∫_0^1 ∇·v dt, v = f x − ½g²f_θ, exact divergence.
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/detail/parallel.hpp"
#include "dqs/nn/activation.hpp"
#include "dqs/nn/mlp.hpp"
#include "dqs/nn/serialize.hpp"
#include "dqs/random/philox.hpp"
#include "dqs/rl/concepts.hpp"
#include "dqs/rl/q_energy.hpp"
#include "dqs/schedule/ve_geometric.hpp"
#include "dqs/score/monte_carlo.hpp"
#include "dqs/sde/euler_maruyama.hpp"
#include "dqs/sde/heun.hpp"
#include "dqs/train/optim.hpp"
#include "dqs/types.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <utility>
#include <vector>

namespace dqs::rl {

// How act() integrates the reverse process over its `steps` noise levels σ_i = s(t_i), t_i = 1 − i/steps.
enum class ReverseSampler {
  // The library's integrators: EulerMaruyama on the reverse SDE, HeunODE on the probability-flow ODE. Euler
  // moves x by g²(t)·dt·f = 2 ln(σ_max/σ_min)/steps · σ_t²·f, which overshoots a sharp mode (factor > 1) once
  // 2 ln(σ_max/σ_min) > steps: use many steps there.
  integrator,
  // Ancestral sampling of the VE chain (Song et al. 2021, SMLD): x ← x + (σ_i² − σ_{i+1}²)·f + √(σ_{i+1}²(σ_i² −
  // σ_{i+1}²)/σ_i²)·z; deterministic: DDIM, x ← x + σ_i(σ_i − σ_{i+1})·f. With the exact score, both are exact
  // at any step count for a point-mass target (distance to it × σ_{i+1}²/σ_i², resp. σ_{i+1}/σ_i: they never
  // overshoot a sharp mode, so few steps stay stable); the ancestral mean step is Tweedie's across one noise
  // level (exact for any target), but for a target of variance τ² its step variance is short by
  // τ²(σ_i² − σ_{i+1}²)²/(σ_i²(τ² + σ_i²)), so wide modes still want more steps.
  ancestral,
};

struct DqsPolicyOptions {
  // Sampling and targets.
  Index samples = 100;                     // K, Monte Carlo proposals per score target
  Index steps = 50;                        // reverse steps of act() (Euler–Maruyama, or Heun on the ODE)
  double sigma_min = 1e-5;                 // VE geometric schedule s(t) = σ_min·√((σ_max/σ_min)^{2t} − 1)
  double sigma_max = 1.0;
  ActionMap action_map = ActionMap::tanh;  // tanh (with Jacobian), tanh_published (without), identity
  ScoreForm score_form = ScoreForm::target;  // the published estimator; blend has lower variance at large t
  double score_clip = std::numeric_limits<double>::infinity();  // norm bound on S_K
  ReverseSampler sampler = ReverseSampler::integrator;
  double loss_weight_floor = 1e-3;         // λ(t) = s(t)² + loss_weight_floor
  // Score network f(s, x, t, α): [s; x; e(t); e(α)] → W → GELU → residual GELU blocks → A.
  std::vector<Index> hidden = {256, 256, 256};
  nn::Activation activation = nn::Activation::gelu;
  bool residual = true;
  Index embedding_dim = 128;               // sinusoidal features per condition (t and α)
  double min_frequency = 1e-3;
  double max_frequency = 1.0;
  double learning_rate = 3e-4;
  std::int64_t learning_rate_decay_updates = 0;  // > 0: cosine decay to learning_rate_final over that many updates
  double learning_rate_final = 0.0;
  double max_gradient_norm = 0.0;          // 0: no clipping
  // Temperature.
  double alpha_initial = 0.05;             // α0
  double alpha_final = 0.05;               // α1
  std::int64_t anneal_updates = 0;         // T; 0 keeps α0
  bool auto_alpha = false;                 // tune log α toward target_entropy instead of annealing
  double target_entropy = std::numeric_limits<double>::quiet_NaN();  // NaN: −A
  double alpha_learning_rate = 3e-4;
  Index entropy_states = 32;               // states of the batch whose log π is estimated per update
  Index entropy_steps = 20;                // Heun steps of the probability-flow ODE for log π
  std::uint64_t seed = 0;                  // network initialisation
  int threads = 0;                         // OpenMP threads for the targets; 0 keeps the default
  // Zero the score network's output layer (weights and bias) at construction: the untrained policy's score
  // is then exactly 0, so its first actions are the prior pushed through the action map, symmetric about 0,
  // instead of carrying a seed-dependent mean from the random output layer. Learning is unaffected in kind
  // (the output layer's gradient is d_out·hᵀ ≠ 0; the hidden layers' follow once it is non-zero).
  bool zero_output_init = false;
  // Soft Bellman target: next_action draws a' by the probability-flow ODE (entropy_steps Heun steps) and
  // returns the bonus −α·log π(a'|s') (as SAC's), so the critic learns the soft Q-function whose Boltzmann
  // policy exp(Q/α) is the maximum-entropy optimum; false (default, as published): a' from act(), bonus 0.
  bool entropy_bonus = false;
};

template <Real S>
class BasicDqsPolicy {
 public:
  using Scalar = S;
  static constexpr const char* archive_kind = "dqs.rl.DqsPolicy";
  // Stream purposes of the policy's own draws (the sampler's prior/diffusion/score purposes are reused).
  static constexpr auto purpose_regression = static_cast<random::Purpose>(static_cast<std::uint32_t>(random::Purpose::user) + 0x51);
  static constexpr auto purpose_entropy = static_cast<random::Purpose>(static_cast<std::uint32_t>(random::Purpose::user) + 0x52);

  BasicDqsPolicy(Index observation_dim, Index action_dim, DqsPolicyOptions options = {})
      : observation_dim_(observation_dim),
        action_dim_(action_dim),
        options_(validated(std::move(options), observation_dim, action_dim)),
        schedule_(options_.sigma_min, options_.sigma_max),
        estimator_(estimator_options(options_)),
        net_(network_config(options_, observation_dim, action_dim), options_.seed),
        adam_(net_.num_parameters(), adam_config(options_)),
        log_alpha_(std::log(options_.alpha_initial)) {
    grad_.resize(net_.num_parameters());
    if (options_.zero_output_init) {
      net_.weight(net_.num_layers() - 1).setZero();
      net_.bias(net_.num_layers() - 1).setZero();
    }
  }

  Index observation_dim() const { return observation_dim_; }
  Index action_dim() const { return action_dim_; }
  const DqsPolicyOptions& options() const { return options_; }
  const VEGeometric& schedule() const { return schedule_; }
  const nn::Mlp<S>& network() const { return net_; }
  nn::Mlp<S>& network() { return net_; }
  std::int64_t updates() const { return updates_; }
  double target_entropy() const {
    return std::isnan(options_.target_entropy) ? -static_cast<double>(action_dim_) : options_.target_entropy;
  }

  double alpha() const {
    if (options_.auto_alpha) return std::exp(log_alpha_);
    if (options_.anneal_updates <= 0) return options_.alpha_initial;
    const double fraction =
        std::min(1.0, static_cast<double>(updates_) / static_cast<double>(options_.anneal_updates));
    return std::exp((1 - fraction) * std::log(options_.alpha_initial) + fraction * std::log(options_.alpha_final));
  }

  // The score network's learning rate at the current update count.
  double learning_rate() const {
    const auto& o = options_;
    if (o.learning_rate_decay_updates <= 0) return o.learning_rate;
    const double fraction =
        std::min(1.0, static_cast<double>(updates_) / static_cast<double>(o.learning_rate_decay_updates));
    return o.learning_rate_final +
           0.5 * (o.learning_rate - o.learning_rate_final) * (1 + std::cos(std::numbers::pi * fraction));
  }

  // ---- acting -----------------------------------------------------------------------------------
  // Actions (A×N) for states (O×N): the reverse SDE (Euler–Maruyama) or, deterministic, the probability-flow
  // ODE (Heun) from the prior draw of the same key. Column j uses the streams of sample key.first_sample + j
  // only, and is computed by the same instructions wherever it sits in the batch, so it is bit-identical
  // for any batch split.
  void act(ConstBatchRef<S> states, const random::StreamKey& key, bool deterministic, BatchRef<S> actions) const {
    check_states("act", states);
    detail::require(actions.rows() == action_dim_ && actions.cols() == states.cols(), "rl::DqsPolicy::act: actions is ",
                    actions.rows(), "x", actions.cols(), ", expected ", action_dim_, "x", states.cols());
    const Matrix<S> latent = sample_latent(states, key, deterministic, alpha());
    if (is_tanh(options_.action_map))
      actions = latent.array().tanh().matrix();
    else
      actions = latent.cwiseMax(S(-1)).cwiseMin(S(1));
  }

  // Next actions for the critic target and the soft bonus: by default a' from act() and bonus 0 (the
  // published method: DQS's entropy lives in the sampler); with entropy_bonus, a' from the probability-flow
  // ODE and bonus −α·log π(a'|s') (sample_with_log_prob, entropy_steps Heun steps).
  void next_action(ConstBatchRef<S> states, const random::StreamKey& key, BatchRef<S> actions,
                   ValuesRef<S> bonus) const {
    detail::require(bonus.size() == states.cols(), "rl::DqsPolicy::next_action: bonus has ", bonus.size(),
                    " entries for ", states.cols(), " states");
    if (!options_.entropy_bonus) {
      act(states, key, false, actions);
      bonus.setZero();
      return;
    }
    detail::require(actions.rows() == action_dim_ && actions.cols() == states.cols(),
                    "rl::DqsPolicy::next_action: actions is ", actions.rows(), "x", actions.cols(), ", expected ",
                    action_dim_, "x", states.cols());
    Matrix<S> sampled(action_dim_, states.cols());
    Vector<S> log_prob(states.cols());
    sample_with_log_prob(states, key, options_.entropy_steps, sampled, log_prob);
    if (is_tanh(options_.action_map))
      actions = sampled;
    else
      actions = sampled.cwiseMax(S(-1)).cwiseMin(S(1));
    bonus = static_cast<S>(-alpha()) * log_prob;
  }

  // The sampled variable before the action map (A×N): the latent u of a = tanh u, or the raw action.
  Matrix<S> sample_latent(ConstBatchRef<S> states, const random::StreamKey& key, bool deterministic,
                          double alpha_value) const {
    check_states("sample_latent", states);
    detail::require_positive("rl::DqsPolicy: alpha", alpha_value);
    const Index n = states.cols();
    // Each column of x starts on a 64-byte boundary, so elementwise updates split every column alike.
    constexpr Index align = 64 / static_cast<Index>(sizeof(S));
    Matrix<S> storage = Matrix<S>::Zero((action_dim_ + align - 1) / align * align, n);
    auto x = storage.topRows(action_dim_);
    draw_normal(key.with(random::Purpose::prior, 0), x);
    x *= static_cast<S>(schedule_.prior_std());
    Context context(*this, states, alpha_value, key);
    const double dt = 1.0 / static_cast<double>(options_.steps);
    Matrix<S> score, noise;
    for (Index step = 0; step < options_.steps; ++step) {
      const double t = 1.0 - dt * static_cast<double>(step);
      context.reverse_step_ = static_cast<std::uint32_t>(step);
      if (options_.sampler == ReverseSampler::ancestral) {
        const double t_next = step + 1 == options_.steps ? 0.0 : t - dt;
        const double v = schedule_.variance(t), v_next = schedule_.variance(t_next);
        score.resize(x.rows(), x.cols());
        context.score(x, t, score, 0);
        if (deterministic) {
          x += static_cast<S>(std::sqrt(v) * (std::sqrt(v) - std::sqrt(v_next))) * score;
        } else {
          x += static_cast<S>(v - v_next) * score;
          noise.resize(x.rows(), x.cols());
          context.normal(noise, 0);
          x += static_cast<S>(std::sqrt(v_next * (v - v_next) / v)) * noise;
        }
      } else if (deterministic)
        HeunODE{}.step(context, x, t, dt);
      else
        EulerMaruyama{}.step(context, x, t, dt);
    }
    return Matrix<S>(x);
  }

  // f(s, x, t, α) for a batch at one time t (A×N), through the same code path act() uses; with
  // `divergence`, also ∇_x·f per column (exact, by forward-mode tangents).
  void score(ConstBatchRef<S> states, ConstBatchRef<S> x, double t, double alpha_value, BatchRef<S> out,
             Vector<S>* divergence = nullptr) const {
    check_states("score", states);
    detail::require(x.rows() == action_dim_ && x.cols() == states.cols() && out.rows() == action_dim_ &&
                        out.cols() == states.cols(),
                    "rl::DqsPolicy::score: x and out must be ", action_dim_, "x", states.cols());
    Inference inference(*this, states, alpha_value);
    inference.score(x, t, out, divergence);
  }

  // log π(a|s) of the probability-flow-ODE policy for the latents its prior draws map to: returns the
  // latents/actions (A×N) through `actions` and log π (over actions, tanh Jacobian included when the map is
  // tanh) through `log_prob`. Integrates x and ∫∇·v dt with Heun's method in `ode_steps` steps, divergence
  // exact (A forward-mode tangents through the network).
  void sample_with_log_prob(ConstBatchRef<S> states, const random::StreamKey& key, Index ode_steps, BatchRef<S> actions,
                            ValuesRef<S> log_prob) const {
    check_states("sample_with_log_prob", states);
    detail::require(ode_steps >= 1, "rl::DqsPolicy::sample_with_log_prob: ode_steps must be >= 1, got ", ode_steps);
    const Index n = states.cols(), dim = action_dim_;
    detail::require(actions.rows() == dim && actions.cols() == n && log_prob.size() == n,
                    "rl::DqsPolicy::sample_with_log_prob: outputs must be ", dim, "x", n, " and ", n);
    Matrix<S> x(dim, n);
    draw_normal(key.with(random::Purpose::prior, 0), x);
    const double prior_std = schedule_.prior_std();
    x *= static_cast<S>(prior_std);
    Vector<double> log_p(n);
    for (Index j = 0; j < n; ++j)
      log_p[j] = -0.5 * static_cast<double>(x.col(j).squaredNorm()) / (prior_std * prior_std) -
                 static_cast<double>(dim) * (std::log(prior_std) + 0.5 * std::log(2 * std::numbers::pi));
    Inference inference(*this, states, alpha());
    Matrix<S> s0(dim, n), s1(dim, n);
    Vector<S> div0(n), div1(n);
    const double dt = 1.0 / static_cast<double>(ode_steps);
    for (Index step = 0; step < ode_steps; ++step) {
      const double t = 1.0 - dt * static_cast<double>(step), t_next = t - dt;
      // VE: v = −½g²f, ∇·v = −½g²∇·f; backwards in time x ← x − dt·v and log p ← log p − dt·∇·v.
      const double c0 = 0.5 * schedule_.diffusion_sq(t), c1 = 0.5 * schedule_.diffusion_sq(t_next);
      inference.score(x, t, s0, &div0);
      const Matrix<S> euler = x + static_cast<S>(dt * c0) * s0;
      inference.score(euler, t_next, s1, &div1);
      x += static_cast<S>(0.5 * dt * c0) * s0 + static_cast<S>(0.5 * dt * c1) * s1;
      for (Index j = 0; j < n; ++j)
        log_p[j] -= 0.5 * dt * (c0 * static_cast<double>(div0[j]) + c1 * static_cast<double>(div1[j]));
    }
    if (is_tanh(options_.action_map)) {
      const Vector<S> log_jacobian = log_one_minus_tanh_squared(x.array()).colwise().sum().transpose().matrix();
      for (Index j = 0; j < n; ++j) log_p[j] -= static_cast<double>(log_jacobian[j]);
      actions = x.array().tanh().matrix();
    } else {
      actions = x;
    }
    log_prob = log_p.cast<S>();
  }

  // ---- learning ---------------------------------------------------------------------------------
  // One score-regression step on a replay batch (states O×B, actions A×B in [−1, 1]) against q.
  template <class Q>
    requires ActionValue<Q, S>
  UpdateStats update(ConstBatchRef<S> states, ConstBatchRef<S> actions, const Q& q, const random::StreamKey& key) {
    check_states("update", states);
    const Index n = states.cols(), dim = action_dim_;
    detail::require(actions.rows() == dim && actions.cols() == n, "rl::DqsPolicy::update: actions is ", actions.rows(),
                    "x", actions.cols(), ", expected ", dim, "x", n);
    detail::require(q.observation_dim() == observation_dim_ && q.action_dim() == dim,
                    "rl::DqsPolicy::update: the critic is over ", q.observation_dim(), "+", q.action_dim(),
                    " dims, the policy over ", observation_dim_, "+", dim);
    detail::require(actions.allFinite() && (actions.array().abs() <= S(1)).all(),
                    "rl::DqsPolicy::update: actions must lie in [-1, 1]");
    const double alpha_now = alpha();
    detail::ThreadScope threads(options_.threads);

    // x_0 (latent of the replay action), t ~ U(0, 1), x_t = x_0 + s(t)·ε, per column from its own stream.
    Matrix<S> x0 = actions;
    if (is_tanh(options_.action_map)) {
      const S bound = S(1) - std::numeric_limits<S>::epsilon();
      x0 = x0.cwiseMax(-bound).cwiseMin(bound).array().atanh().matrix();
    }
    input_.resize(observation_dim_ + dim, n);
    input_.topRows(observation_dim_) = states;
    conditions_.resize(2, n);
    weights_.resize(n);
    Vector<S> noise(dim);
    Eigen::Matrix<S, 1, 1> uniform;
    for (Index j = 0; j < n; ++j) {
      random::Stream stream(key.with(purpose_regression, 0), j);
      stream.uniform<S>(uniform);
      stream.normal<S>(noise);
      const double t = static_cast<double>(uniform[0]), sigma = schedule_.sigma(t);
      input_.col(j).tail(dim) = x0.col(j) + static_cast<S>(sigma) * noise;
      conditions_(0, j) = uniform[0];
      conditions_(1, j) = static_cast<S>(alpha_now);
      weights_[j] = static_cast<S>((sigma * sigma + options_.loss_weight_floor) / static_cast<double>(dim));
    }

    // S_K(x_t, t) per state, MonteCarloScore on the state's energy −Q(s, ·)/α (over the latent if tanh).
    targets_.resize(dim, n);
    detail::parallel_columns<int>(n, [&](int&, Index j) {
      const QEnergy<Q, S> energy(q, states.col(j), alpha_now, options_.action_map);
      random::StreamKey column_key = key;
      column_key.first_sample = key.first_sample + static_cast<std::uint64_t>(j);
      estimator_.estimate(energy, schedule_, input_.col(j).tail(dim), static_cast<double>(conditions_(0, j)),
                          column_key, targets_.col(j));
    });

    const S loss = net_.weighted_mse_gradient(input_, conditions_, targets_, weights_, grad_, ws_);
    adam_.set_learning_rate(learning_rate());
    adam_.step(net_.parameters(), grad_);
    ++updates_;

    UpdateStats stats{{"score_loss", static_cast<double>(loss)}, {"alpha", alpha_now}};
    if (options_.auto_alpha) {
      const Index m = std::min(n, options_.entropy_states);
      Matrix<S> sampled(dim, m);
      Vector<S> log_prob(m);
      sample_with_log_prob(states.leftCols(m), key.with(purpose_entropy, 0), options_.entropy_steps, sampled, log_prob);
      const double entropy = -static_cast<double>(log_prob.template cast<double>().mean());
      // SAC's temperature loss −log α·(log π + H̄): d/d log α = H − H̄.
      log_alpha_ -= options_.alpha_learning_rate * (entropy - target_entropy());
      stats["entropy"] = entropy;
    }
    return stats;
  }

  // ---- checkpoints ------------------------------------------------------------------------------
  void write(nn::ArchiveWriter& w) const {
    w.write_string(archive_kind);
    w.write_u64(static_cast<std::uint64_t>(observation_dim_));
    w.write_u64(static_cast<std::uint64_t>(action_dim_));
    w.write_i64(updates_);
    w.write_f64(log_alpha_);
    net_.write(w);
    adam_.write(w);
  }
  void read(nn::ArchiveReader& r) {
    if (r.read_string("policy kind") != archive_kind) r.fail("not a DQS policy");
    const std::uint64_t obs = r.read_u64("observation_dim"), act = r.read_u64("action_dim");
    if (obs != static_cast<std::uint64_t>(observation_dim_) || act != static_cast<std::uint64_t>(action_dim_))
      r.fail("a policy over ", obs, "+", act, " dims, this one is over ", observation_dim_, "+", action_dim_);
    const std::int64_t updates = r.read_i64("update count");
    const double log_alpha = r.read_f64("log alpha");
    net_.read(r);
    adam_.read(r);
    updates_ = updates;
    log_alpha_ = log_alpha;
  }

 private:
  // The score network at fixed states and α: the state's, α's and the bias's share of the first layer,
  // P = W_s·s + W_α·e(α) + b, is computed once, each time t adds W_t·e(t) (one vector), and only W_x·x
  // is left per evaluation. Columns are padded to a multiple of 8 so that every GEMM runs only full
  // column tiles: a column's bits then do not depend on its position or the batch size.
  class Inference {
   public:
    static constexpr Index pad = 8;

    Inference(const BasicDqsPolicy& policy, ConstBatchRef<S> states, double alpha_value)
        : policy_(policy), n_(states.cols()), padded_((states.cols() + pad - 1) / pad * pad) {
      const auto& net = policy.net_;
      const Index obs = policy.observation_dim_, dim = policy.action_dim_;
      const Index e = net.config().embedding_dim;
      Matrix<S> padded_states = Matrix<S>::Zero(obs, padded_);
      padded_states.leftCols(n_) = states;
      const auto w0 = net.weight(0);
      Matrix<S> alpha_condition = Matrix<S>::Constant(1, 1, static_cast<S>(alpha_value));
      Matrix<S> alpha_embedding(e, 1);
      net.embedding()->embed(alpha_condition, alpha_embedding);
      const Vector<S> constant = net.bias(0) + w0.middleCols(obs + dim + e, e) * alpha_embedding;
      state_part_.noalias() = w0.leftCols(obs) * padded_states;
      state_part_.colwise() += constant;
      x_weight_ = w0.middleCols(obs, dim);
      t_weight_ = w0.middleCols(obs + dim, e);
      t_embedding_.resize(e, 1);
      x_.setZero(dim, padded_);
    }

    // out (A×N) = f(x, t); with `divergence`, also ∇_x·f per column (A forward-mode tangents).
    void score(ConstBatchRef<S> x, double t, BatchRef<S> out, Vector<S>* divergence) {
      const auto& net = policy_.net_;
      const auto activation = net.config().activation;
      const Index layers = net.num_layers(), dim = policy_.action_dim_;
      x_.leftCols(n_) = x;
      Matrix<S> time = Matrix<S>::Constant(1, 1, static_cast<S>(t));
      net.embedding()->embed(time, t_embedding_);
      const Vector<S> time_part = t_weight_ * t_embedding_;
      z_.noalias() = x_weight_ * x_;
      z_ += state_part_;
      z_.colwise() += time_part;
      const bool tangents = divergence != nullptr;
      if (tangents) {
        tangent_.assign(static_cast<std::size_t>(dim), Matrix<S>());
        for (Index i = 0; i < dim; ++i) tangent_[static_cast<std::size_t>(i)] = x_weight_.col(i).replicate(1, padded_);
      }
      h_.resize(z_.rows(), padded_);
      nn::detail::activate(activation, z_.array(), h_.array());
      if (tangents) {
        const Matrix<S> d = derivative(activation);
        for (auto& tangent : tangent_) tangent = tangent.cwiseProduct(d);
      }
      for (Index l = 1; l + 1 < layers; ++l) {
        z_.resize(net.layer_outputs(l), padded_);
        z_.colwise() = net.bias(l);
        z_.noalias() += net.weight(l) * h_;
        const bool skip = net.is_residual(l);
        if (skip) {
          h_next_.resize(z_.rows(), padded_);
          nn::detail::activate(activation, z_.array(), h_next_.array());
          h_next_ += h_;
          std::swap(h_, h_next_);
        } else {
          h_.resize(z_.rows(), padded_);
          nn::detail::activate(activation, z_.array(), h_.array());
        }
        if (tangents) {
          // dh_l = φ′(z_l)∘(W_l dh_{l−1}) (+ dh_{l−1} through a skip)
          const Matrix<S> d = derivative(activation);
          for (auto& tangent : tangent_) {
            const Matrix<S> dz = net.weight(l) * tangent;
            if (skip)
              tangent += d.cwiseProduct(dz);
            else
              tangent = d.cwiseProduct(dz);
          }
        }
      }
      out_.resize(dim, padded_);
      out_.colwise() = net.bias(layers - 1);
      out_.noalias() += net.weight(layers - 1) * h_;
      out = out_.leftCols(n_);
      if (tangents) {
        divergence->setZero(n_);
        for (Index i = 0; i < dim; ++i)
          *divergence += (net.weight(layers - 1).row(i) * tangent_[static_cast<std::size_t>(i)].leftCols(n_)).transpose();
      }
    }

   private:
    // φ′(z_) of the current layer.
    Matrix<S> derivative(nn::Activation activation) const {
      Matrix<S> d = z_;
      const Matrix<S> ones = Matrix<S>::Ones(z_.rows(), z_.cols());
      nn::detail::activation_backward_inplace(activation, d.data(), ones.data(), d.size());
      return d;
    }

    const BasicDqsPolicy& policy_;
    Index n_, padded_;
    Matrix<S> state_part_, x_weight_, t_weight_, t_embedding_, x_, z_, h_, h_next_, out_;
    std::vector<Matrix<S>> tangent_;
  };

  // The StepContext handed to the library's integrators: scores from the network, noise from per-column
  // streams keyed by (seed, sample, key.step) with the reverse step folded into the draw.
  class Context {
   public:
    using Scalar = S;
    static constexpr bool has_log_density = false;

    Context(const BasicDqsPolicy& policy, ConstBatchRef<S> states, double alpha_value, const random::StreamKey& key)
        : policy_(policy), inference_(policy, states, alpha_value), key_(key) {}

    const VEGeometric& schedule() const { return policy_.schedule_; }
    void score(ConstBatchRef<S> x, double t, BatchRef<S> out, std::uint32_t) { inference_.score(x, t, out, nullptr); }
    void normal(BatchRef<S> out, std::uint32_t draw) {
      policy_.draw_normal(key_.with(random::Purpose::diffusion, reverse_step_ * 4 + draw), out);
    }
    void uniform(ValuesRef<S> values, std::uint32_t draw) {
      for (Index j = 0; j < values.size(); ++j) {
        Eigen::Matrix<S, 1, 1> u;
        random::Stream(key_.with(random::Purpose::accept, reverse_step_ * 4 + draw), j).template uniform<S>(u);
        values[j] = u[0];
      }
    }

   private:
    friend class BasicDqsPolicy;
    const BasicDqsPolicy& policy_;
    Inference inference_;
    random::StreamKey key_;
    std::uint32_t reverse_step_ = 0;
  };

  // Standard normals per column, drawn into an aligned vector first (a strided or odd-sized destination
  // would round the Box–Muller transform differently).
  template <class Out>
  void draw_normal(const random::StreamKey& key, Out&& out) const {
    Vector<S> column(out.rows());
    for (Index j = 0; j < out.cols(); ++j) {
      random::Stream stream(key, j);
      stream.normal<S>(column);
      out.col(j) = column;
    }
  }

  void check_states(const char* where, ConstBatchRef<S> states) const {
    detail::require(states.rows() == observation_dim_, "rl::DqsPolicy::", where, ": states have ", states.rows(),
                    " rows, observation dim is ", observation_dim_);
    detail::require(states.cols() >= 1, "rl::DqsPolicy::", where, ": empty batch");
    detail::require(states.allFinite(), "rl::DqsPolicy::", where, ": states must be finite");
  }

  static DqsPolicyOptions validated(DqsPolicyOptions o, Index observation_dim, Index action_dim) {
    using detail::require;
    require(observation_dim >= 1, "rl::DqsPolicy: observation_dim must be >= 1, got ", observation_dim);
    require(action_dim >= 1, "rl::DqsPolicy: action_dim must be >= 1, got ", action_dim);
    require(o.samples >= 1, "rl::DqsPolicy: samples (K) must be >= 1, got ", o.samples);
    require(o.steps >= 1 && o.steps <= 16000, "rl::DqsPolicy: steps must be in [1, 16000], got ", o.steps);
    detail::require_positive("rl::DqsPolicy: alpha_initial", o.alpha_initial);
    detail::require_positive("rl::DqsPolicy: alpha_final", o.alpha_final);
    require(o.anneal_updates >= 0, "rl::DqsPolicy: anneal_updates must be >= 0, got ", o.anneal_updates);
    detail::require_positive("rl::DqsPolicy: learning_rate", o.learning_rate);
    require(o.learning_rate_decay_updates >= 0, "rl::DqsPolicy: learning_rate_decay_updates must be >= 0, got ",
            o.learning_rate_decay_updates);
    if (o.learning_rate_decay_updates > 0)
      detail::require_positive("rl::DqsPolicy: learning_rate_final", o.learning_rate_final);
    require(std::isfinite(o.loss_weight_floor) && o.loss_weight_floor >= 0,
            "rl::DqsPolicy: loss_weight_floor must be finite and >= 0, got ", o.loss_weight_floor);
    require(o.embedding_dim >= 2 && o.embedding_dim % 2 == 0,
            "rl::DqsPolicy: embedding_dim must be even and >= 2, got ", o.embedding_dim);
    require(!o.hidden.empty(), "rl::DqsPolicy: the score network needs at least one hidden layer");
    require(o.threads >= 0, "rl::DqsPolicy: threads must be >= 0, got ", o.threads);
    if (o.auto_alpha || o.entropy_bonus)
      require(o.entropy_steps >= 1, "rl::DqsPolicy: entropy_steps must be >= 1, got ", o.entropy_steps);
    if (o.auto_alpha) {
      detail::require_positive("rl::DqsPolicy: alpha_learning_rate", o.alpha_learning_rate);
      require(o.entropy_states >= 1, "rl::DqsPolicy: entropy_states must be >= 1, got ", o.entropy_states);
      require(std::isnan(o.target_entropy) || std::isfinite(o.target_entropy),
              "rl::DqsPolicy: target_entropy must be finite (or NaN for -A), got ", o.target_entropy);
    }
    return o;
  }

  static MonteCarloScoreOptions estimator_options(const DqsPolicyOptions& o) {
    MonteCarloScoreOptions e;
    e.samples = o.samples;
    e.form = o.score_form;
    e.clip = o.score_clip;
    return e;
  }

  static nn::MlpConfig network_config(const DqsPolicyOptions& o, Index observation_dim, Index action_dim) {
    nn::MlpConfig c;
    c.input_dim = observation_dim + action_dim;
    c.hidden = o.hidden;
    c.output_dim = action_dim;
    c.activation = o.activation;
    c.residual = o.residual;
    c.condition_dim = 2;
    c.embedding_dim = o.embedding_dim;
    c.min_frequency = o.min_frequency;
    c.max_frequency = o.max_frequency;
    return c;
  }

  static train::AdamConfig adam_config(const DqsPolicyOptions& o) {
    train::AdamConfig c;
    c.learning_rate = o.learning_rate;
    c.max_gradient_norm = o.max_gradient_norm;
    return c;
  }

  Index observation_dim_, action_dim_;
  DqsPolicyOptions options_;
  VEGeometric schedule_;
  MonteCarloScore estimator_;
  nn::Mlp<S> net_;
  train::Adam<S> adam_;
  double log_alpha_;
  std::int64_t updates_ = 0;
  // Update scratch (reused across updates).
  Matrix<S> input_, conditions_, targets_;
  Vector<S> weights_, grad_;
  nn::MlpWorkspace<S> ws_;
};

using DqsPolicy = BasicDqsPolicy<float>;

}  // namespace dqs::rl
