// Trains an off-policy agent — DQS (diffusion policy π(a|s) ∝ exp(Q(s, a)/α)) or the SAC baseline —
// on Pendulum, GmmNavigation or TwoGoalMaze with dqs::rl::Trainer: warm-up, replay, twin critic,
// evaluation curve as CSV (optionally plotted), checkpoint and resume; for the docs/dqs.md figures also the DQS
// network size, sampled actions at fixed probe states, the final maze trajectories and (--fidelity-episodes) how
// far DQS is from the exact exp(Q/α) of its own critic. Run with --help.
// smoke-test: --agent sac --env pendulum --steps 300 --warmup 100 --batch 32 --hidden 32 --eval-every 150 --eval-episodes 1 --csv smoke_train_agent.csv --checkpoint smoke_train_agent.ckpt
// smoke-test: --agent dqs --env maze --steps 120 --warmup 100 --batch 16 --hidden 16 --dqs-hidden 16 --dqs-depth 1 --dqs-embedding 8 --dqs-samples 4 --dqs-steps 4 --eval-every 60 --eval-episodes 1 --final-episodes 2 --actions-out smoke_actions.csv --action-samples 8 --maze-trajectories smoke_maze.csv --fidelity-episodes 2 --fidelity-grid 4
#include <dqs/rl/critic.hpp>
#include <dqs/rl/dqs_policy.hpp>
#include <dqs/rl/envs.hpp>
#include <dqs/rl/sac.hpp>
#include <dqs/rl/trainer.hpp>

#include "boltzmann_grid.hpp"

#include <CLI/CLI.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

namespace {

using S = float;
using dqs::Index;

struct Settings {
  std::string agent = "sac";
  std::string env = "pendulum";
  dqs::rl::TrainerConfig trainer;
  dqs::rl::CriticConfig critic;
  dqs::rl::SacConfig sac;
  dqs::rl::DqsPolicyOptions dqs;
  std::string resume;
  std::string plot;
  Index final_episodes = 100;    // episodes of the final task metric (GmmNavigation, maze)
  bool final_deterministic = false;  // their actions: sampled (default) or the deterministic policy's
  std::vector<double> mmd_bandwidths = {0.0};  // GmmNavigation MMD kernel widths (0: median heuristic)
  std::string terminal_out;      // GmmNavigation: the final episodes' terminal positions (CSV)
  std::string actions_out;     // sampled actions at the probe states
  Index action_samples = 2000;
  std::string maze_trajectories;
  Index grid_nodes = 33;       // --agent grid: nodes of the exact Boltzmann sampler
  Index diag_every = 0;        // > 0: every E steps, TV of the policy's actions to exp(Q/α) at the probe states
  std::string diag_csv;
  Index fidelity_episodes = 0;  // > 0: the final metrics also for the exact exp(Q/α) policy of the final critic
  Index fidelity_grid = 20;     // its action grid (nodes per axis)
};

// Probe states (observations) for the action-distribution figures: Pendulum hanging down at rest, hanging
// down and turning, and near the top; GmmNavigation at the centre and two off-centre points; the maze's
// centre (where the corridors to the two goals split) and its up-left and down-right exits.
std::vector<std::vector<double>> probe_states(const std::string& env) {
  if (env == "pendulum") return {{-1.0, 0.0, 0.0}, {-1.0, 0.0, 2.0}, {0.966, 0.259, 0.0}};
  if (env == "gmm_navigation") return {{0.0, 0.0}, {0.3, -0.2}, {-0.5, 0.5}};
  return {{0.0, 0.0}, {-0.2222, 0.2222}, {0.2222, -0.2222}};
}

// Writes `samples` stochastic actions at each probe state: probe,obs_0..,action_0..
template <class Env, class Policy>
void write_probe_actions(const Env& env, const Policy& policy, const Settings& settings) {
  if (settings.actions_out.empty()) return;
  const Index o = env.observation_dim(), a = env.action_dim(), m = settings.action_samples;
  std::ofstream out(settings.actions_out);
  out << "probe";
  for (Index i = 0; i < o; ++i) out << ",obs_" << i;
  for (Index i = 0; i < a; ++i) out << ",action_" << i;
  out << '\n';
  const auto probes = probe_states(settings.env);
  for (std::size_t p = 0; p < probes.size(); ++p) {
    dqs::Matrix<S> states(o, m), actions(a, m);
    for (Index i = 0; i < o; ++i) states.row(i).setConstant(static_cast<S>(probes[p][static_cast<std::size_t>(i)]));
    policy.act(states, dqs::random::StreamKey{settings.trainer.eval_seed + 31, 0, static_cast<std::uint32_t>(p),
                                              dqs::rl::purpose::evaluate, 2},
               false, actions);
    for (Index j = 0; j < m; ++j) {
      out << p;
      for (Index i = 0; i < o; ++i) out << ',' << states(i, j);
      for (Index i = 0; i < a; ++i) out << ',' << actions(i, j);
      out << '\n';
    }
  }
  std::printf("wrote %s\n", settings.actions_out.c_str());
}

// Task metrics of the final policy over `final_episodes` episodes (seeds distinct from training and
// from the periodic evaluation), stochastic unless --final-deterministic: GmmNavigation's terminal MMD
// and modes visited, the maze's goal split.
template <class Env, class Policy>
void final_metrics(Env env, const Policy& policy, const Settings& settings, const char* label = "final") {
  constexpr bool navigation = std::is_same_v<Env, dqs::rl::GmmNavigation>;
  constexpr bool maze = std::is_same_v<Env, dqs::rl::TwoGoalMaze>;
  if constexpr (navigation || maze) {
    const std::uint64_t seed = settings.trainer.eval_seed + 7919;
    dqs::Matrix<double> terminal(2, settings.final_episodes);
    int goals[2] = {0, 0};
    dqs::Matrix<S> state(env.observation_dim(), 1), action(env.action_dim(), 1);
    std::vector<dqs::rl::MazeTrajectory> trajectories;
    for (Index e = 0; e < settings.final_episodes; ++e) {
      Eigen::VectorXd obs = env.reset(seed, static_cast<std::uint64_t>(e));
      dqs::rl::MazeTrajectory trajectory;
      if constexpr (maze) trajectory.positions.push_back(env.position());
      for (Index t = 0; t < env.max_episode_steps(); ++t) {
        state.col(0) = obs.cast<S>();
        policy.act(state, dqs::random::StreamKey{seed, static_cast<std::uint64_t>(e), static_cast<std::uint32_t>(t),
                                                 dqs::rl::purpose::evaluate, 1},
                   settings.final_deterministic, action);
        const dqs::rl::StepResult r = env.step(action.col(0).cast<double>());
        obs = r.observation;
        if constexpr (maze) trajectory.positions.push_back(env.position());
        if (r.terminated || r.truncated) break;
      }
      if constexpr (navigation) terminal.col(e) = env.position();
      if constexpr (maze) {
        const auto goal = env.reached_goal();
        if (goal != dqs::rl::MazeGoal::none) ++goals[static_cast<int>(goal)];
        trajectory.goal = goal;
        trajectories.push_back(std::move(trajectory));
      }
    }
    if (maze && !settings.maze_trajectories.empty()) {
      std::ofstream out(settings.maze_trajectories);
      dqs::rl::write_maze_trajectories_csv(out, trajectories);
      std::printf("wrote %s\n", settings.maze_trajectories.c_str());
    }
    const char* mode = settings.final_deterministic ? "deterministic" : "stochastic";
    if constexpr (navigation) {
      if (!settings.terminal_out.empty()) {
        std::ofstream out(settings.terminal_out);
        out << "episode,x,y\n";
        out.precision(9);
        for (Index e = 0; e < terminal.cols(); ++e) out << e << ',' << terminal(0, e) << ',' << terminal(1, e) << '\n';
        std::printf("wrote %s\n", settings.terminal_out.c_str());
      }
      std::printf("%s: %ld %s episodes: modes visited %ld / 40; terminal-state MMD to GMM-40", label,
                  static_cast<long>(settings.final_episodes), mode,
                  static_cast<long>(dqs::rl::gmm_navigation_modes_visited(terminal)));
      for (const double h : settings.mmd_bandwidths) {
        const auto mmd = dqs::rl::gmm_navigation_mmd_estimates(terminal, h);
        std::printf(" %.4f (h %.3g%s)", mmd.mmd(), mmd.bandwidth, h > 0 ? "" : ", median heuristic");
      }
      std::printf("\n");
    }
    if constexpr (maze)
      std::printf("%s: %ld %s episodes: top_left %d, bottom_right %d, neither %ld\n", label,
                  static_cast<long>(settings.final_episodes), mode, goals[0], goals[1],
                  static_cast<long>(settings.final_episodes - goals[0] - goals[1]));
  }
}

// The exact Boltzmann policy exp(Q(s, a)/α) of a critic over a 2-D action square, on a G×G grid of cells
// (Q at the cell centres, uniform within a cell): what DQS would do with a perfect sampler.
template <class Critic>
struct GridBoltzmann2d {
  const Critic& critic;
  double alpha;
  Index nodes;

  // Cell probabilities (G², cell (i, j) at index i·G + j) and the cell centres at one observation.
  void cells(const Eigen::Ref<const dqs::Matrix<S>>& state, std::vector<double>& p, dqs::Matrix<S>& centres) const {
    const Index g = nodes, n = g * g;
    const double h = 2.0 / static_cast<double>(g);
    dqs::Matrix<S> states = state.col(0).replicate(1, n);
    centres.resize(2, n);
    for (Index i = 0; i < g; ++i)
      for (Index j = 0; j < g; ++j) {
        centres(0, i * g + j) = static_cast<S>(-1 + h * (static_cast<double>(i) + 0.5));
        centres(1, i * g + j) = static_cast<S>(-1 + h * (static_cast<double>(j) + 0.5));
      }
    dqs::Vector<S> q(n);
    critic.value(states, centres, q);
    const double top = static_cast<double>(q.maxCoeff());
    p.resize(static_cast<std::size_t>(n));
    double total = 0;
    for (Index k = 0; k < n; ++k) total += (p[static_cast<std::size_t>(k)] = std::exp((q[k] - top) / alpha));
    for (auto& v : p) v /= total;
  }

  // One column only (the final-metric loop acts on one state); deterministic: the best cell's centre.
  void act(dqs::ConstBatchRef<S> states, const dqs::random::StreamKey& key, bool deterministic,
           dqs::BatchRef<S> actions) const {
    std::vector<double> p;
    dqs::Matrix<S> centres;
    cells(states, p, centres);
    Index k = 0;
    if (deterministic) {
      k = static_cast<Index>(std::max_element(p.begin(), p.end()) - p.begin());
      actions.col(0) = centres.col(k);
      return;
    }
    Eigen::Matrix<double, 3, 1> u;
    dqs::random::Stream(key, 0).uniform<double>(u);
    double cumulative = p[0];
    while (k + 1 < static_cast<Index>(p.size()) && cumulative < u[0]) cumulative += p[static_cast<std::size_t>(++k)];
    const double h = 2.0 / static_cast<double>(nodes);
    actions(0, 0) = static_cast<S>(centres(0, k) + h * (u[1] - 0.5));
    actions(1, 0) = static_cast<S>(centres(1, k) + h * (u[2] - 0.5));
  }
};

// --fidelity-episodes: how far the DQS policy is from the exp(Q/α) it is meant to sample. The final task
// metric again, for the exact Boltzmann policy of the final critic (same episodes); on the maze also the TV
// between 4 000 DQS actions and exp(Q/α) (40×40 grid) over 8×8 action bins at each free cell's centre.
template <class Env, class Trainer>
void fidelity_report(const Env& env, const Trainer& trainer, const Settings& settings) {
  constexpr bool maze = std::is_same_v<Env, dqs::rl::TwoGoalMaze>;
  if (settings.fidelity_episodes <= 0 || env.action_dim() != 2) return;
  const GridBoltzmann2d<dqs::rl::Critic<S>> exact{trainer.critic(), trainer.policy().alpha(), settings.fidelity_grid};
  Settings copy = settings;
  copy.final_episodes = settings.fidelity_episodes;
  copy.maze_trajectories.clear();
  copy.terminal_out.clear();
  final_metrics(env, exact, copy, "exact exp(Q/alpha) of the final critic");
  if constexpr (maze) {
    const GridBoltzmann2d<dqs::rl::Critic<S>> fine{trainer.critic(), trainer.policy().alpha(), 40};
    constexpr Index samples = 4000;
    double sum = 0;
    int cells = 0;
    std::printf("TV(DQS actions, exp(Q/alpha)) over 8x8 action bins at each free cell (rows y = 8 … 0):\n");
    for (int y = dqs::rl::TwoGoalMaze::kSize - 1; y >= 0; --y) {
      for (int x = 0; x < dqs::rl::TwoGoalMaze::kSize; ++x) {
        if (!dqs::rl::TwoGoalMaze::is_free(x + 0.5, y + 0.5)) {
          std::printf("   #");
          continue;
        }
        dqs::Matrix<S> states(2, samples), actions(2, samples);
        states.row(0).setConstant(static_cast<S>((x + 0.5) / 4.5 - 1));
        states.row(1).setConstant(static_cast<S>((y + 0.5) / 4.5 - 1));
        trainer.policy().act(states, dqs::random::StreamKey{settings.trainer.eval_seed + 41, 0,
                                                            static_cast<std::uint32_t>(x * 9 + y),
                                                            dqs::rl::purpose::evaluate, 4},
                             false, actions);
        std::vector<double> p, histogram(64, 0.0), target(64, 0.0);
        dqs::Matrix<S> centres;
        fine.cells(states.leftCols(1), p, centres);
        const auto bin = [](S a) { return std::min(7, static_cast<int>((static_cast<double>(a) + 1) * 4)); };
        for (Index k = 0; k < static_cast<Index>(p.size()); ++k)
          target[static_cast<std::size_t>(bin(centres(0, k)) * 8 + bin(centres(1, k)))] += p[static_cast<std::size_t>(k)];
        for (Index j = 0; j < samples; ++j)
          histogram[static_cast<std::size_t>(bin(actions(0, j)) * 8 + bin(actions(1, j)))] += 1.0 / samples;
        double tv = 0;
        for (std::size_t b = 0; b < 64; ++b) tv += 0.5 * std::abs(histogram[b] - target[b]);
        std::printf(" %.2f", tv);
        sum += tv;
        ++cells;
      }
      std::printf("\n");
    }
    std::printf("mean TV over the %d free cells: %.3f\n", cells, sum / cells);
  }
}

// Runs the trainer in chunks of settings.diag_every steps; after each, compares the policy's stochastic actions
// at the probe states with exp(Q/α) of the current critic (1-D actions only): TV over 20 bins, mass of a > 0.
template <class Trainer>
std::map<std::string, double> run_with_diagnostics(Trainer& trainer, const Settings& settings) {
  dqs::detail::require(trainer.env().action_dim() == 1, "--diag-every needs a 1-D action (pendulum)");
  std::ofstream csv;
  if (!settings.diag_csv.empty()) {
    csv.open(settings.diag_csv);
    csv << "env_steps,probe,alpha,tv,policy_positive,boltzmann_positive\n";
  }
  const auto probes = probe_states(settings.env);
  std::map<std::string, double> last;
  for (Index until = trainer.env_steps(); until < settings.trainer.total_steps;) {
    until = std::min(settings.trainer.total_steps, (until / settings.diag_every + 1) * settings.diag_every);
    last = trainer.run(until);
    if (trainer.updates() == 0) continue;
    std::fprintf(stderr, "[diag] step %ld alpha %.4g:", static_cast<long>(until), trainer.policy().alpha());
    for (std::size_t p = 0; p < probes.size(); ++p) {
      const auto gap = dqs_example::boltzmann_gap(
          trainer.policy(), trainer.critic(), probes[p], trainer.policy().alpha(), 2000, 20,
          dqs::random::StreamKey{settings.trainer.eval_seed + 37, 0, static_cast<std::uint32_t>(until),
                                 dqs::rl::purpose::evaluate, 3});
      std::fprintf(stderr, "  probe %zu TV %.3f P(a>0) %.3f vs %.3f", p, gap.tv, gap.policy_positive,
                   gap.boltzmann_positive);
      if (csv) csv << until << ',' << p << ',' << trainer.policy().alpha() << ',' << gap.tv << ',' << gap.policy_positive
                   << ',' << gap.boltzmann_positive << '\n' << std::flush;
    }
    std::fprintf(stderr, "\n");
  }
  return last;
}

template <class Env, class Policy>
int train(Env env, Policy policy, const Settings& settings) {
  dqs::rl::Critic<S> critic(env.observation_dim(), env.action_dim(), settings.critic, settings.trainer.seed + 100);
  dqs::rl::Trainer trainer(env, env, std::move(policy), std::move(critic), settings.trainer);
  if (!settings.resume.empty()) {
    trainer.load_checkpoint(settings.resume);
    std::fprintf(stderr, "resumed from %s at step %ld (%lu updates)\n", settings.resume.c_str(),
                 static_cast<long>(trainer.env_steps()), static_cast<unsigned long>(trainer.updates()));
  }
  if constexpr (requires { trainer.policy().attach(trainer.critic()); }) trainer.policy().attach(trainer.critic());
  const auto start = std::chrono::steady_clock::now();
  auto last = settings.diag_every > 0 ? run_with_diagnostics(trainer, settings) : trainer.run();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (last.empty() || last["env_steps"] != static_cast<double>(trainer.env_steps())) {
    // No evaluation at the last step: evaluate once more so the run always ends with a figure.
    const auto det = trainer.evaluate(true);
    last["eval_return_mean"] = det.mean;
    last["eval_return_std"] = det.std;
  }
  std::printf("%s on %s: %ld env steps, %lu updates, final deterministic eval return %.2f ± %.2f", settings.agent.c_str(),
              settings.env.c_str(), static_cast<long>(trainer.env_steps()),
              static_cast<unsigned long>(trainer.updates()), last["eval_return_mean"], last["eval_return_std"]);
  if (last.count("eval_stochastic_return_mean"))
    std::printf(" (stochastic %.2f ± %.2f)", last["eval_stochastic_return_mean"], last["eval_stochastic_return_std"]);
  std::printf(", alpha %.4g, wall time %.1f s (this session %.1f s)\n", trainer.policy().alpha(),
              last.count("wall_time") ? last["wall_time"] : seconds, seconds);
  final_metrics(env, trainer.policy(), settings);
  fidelity_report(env, trainer, settings);
  write_probe_actions(env, trainer.policy(), settings);
  if (!settings.plot.empty()) {
    if (settings.trainer.csv_path.empty()) {
      std::fprintf(stderr, "--plot needs --csv\n");
      return 1;
    }
    const std::string command = "/usr/bin/python3 '" DQS_SOURCE_DIR "/examples/scripts/plot_curves.py' --csv '" +
                                settings.trainer.csv_path + "' --label '" + settings.agent + "' --out '" +
                                settings.plot + "' --title '" + settings.agent + " on " + settings.env + "'";
    if (std::system(command.c_str()) != 0) {
      std::fprintf(stderr, "plotting failed: %s\n", command.c_str());
      return 1;
    }
    std::printf("wrote %s\n", settings.plot.c_str());
  }
  return 0;
}

template <class Env>
int train_on(Env env, const Settings& settings) {
  if (settings.agent == "sac")
    return train(env, dqs::rl::Sac<S>(env.observation_dim(), env.action_dim(), settings.sac, settings.trainer.seed),
                 settings);
  if (settings.agent == "grid")
    return train(env, dqs_example::GridBoltzmannPolicy<S>(env.observation_dim(), env.action_dim(), settings.grid_nodes,
                                                          settings.dqs.alpha_initial, settings.dqs.alpha_final,
                                                          settings.dqs.anneal_updates),
                 settings);
  dqs::rl::DqsPolicyOptions options = settings.dqs;
  options.seed = settings.trainer.seed;
  return train(env, dqs::rl::BasicDqsPolicy<S>(env.observation_dim(), env.action_dim(), options), settings);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a DQS or SAC agent on a dqs::rl environment"};
  Settings s;
  auto& t = s.trainer;
  long steps = 20000, warmup = -1, batch = 256, eval_every = 1000, eval_episodes = 5, checkpoint_every = 0;
  long buffer = 1000000, width = 256, depth = 2;
  double lr = 1e-3, gamma = -1, utd = 1.0;
  int threads = 1;
  std::string csv, checkpoint;
  app.add_option("--agent", s.agent, "sac, dqs, or grid (diagnostic: exact exp(Q/alpha) sampling of a 1-D action)")
      ->check(CLI::IsMember({"sac", "dqs", "grid"}));
  app.add_option("--env", s.env, "pendulum, gmm_navigation or maze")
      ->check(CLI::IsMember({"pendulum", "gmm_navigation", "maze"}));
  app.add_option("--steps", steps, "environment steps of the whole run")->check(CLI::NonNegativeNumber);
  app.add_option("--seed", t.seed, "seed of everything (networks, exploration, replay, resets)");
  app.add_option("--warmup", warmup, "uniform random steps before learning (default: 1000, 100 with --steps < 2000)");
  app.add_option("--utd", utd, "updates per environment step")->check(CLI::PositiveNumber);
  app.add_option("--batch", batch, "replay batch size")->check(CLI::PositiveNumber);
  app.add_option("--buffer", buffer, "replay capacity")->check(CLI::PositiveNumber);
  app.add_option("--reward-scale", s.critic.reward_scale, "reward scale in the critic target")->check(CLI::PositiveNumber);
  app.add_option("--gamma", gamma, "discount (default 0.99; 0 on gmm_navigation, where Q is the immediate reward)");
  app.add_option("--tau", s.critic.tau, "Polyak rate of the target critics");
  app.add_option("--lr", lr, "learning rate of the critic and the SAC actor and temperature");
  app.add_option("--hidden", width, "hidden width of the critic and SAC actor")->check(CLI::PositiveNumber);
  app.add_option("--depth", depth, "hidden layers of the critic and SAC actor")->check(CLI::PositiveNumber);
  app.add_option("--eval-every", eval_every, "evaluate every E env steps (0: never)")->check(CLI::NonNegativeNumber);
  app.add_option("--eval-episodes", eval_episodes, "episodes per evaluation mode")->check(CLI::PositiveNumber);
  app.add_option("--eval-seed", t.eval_seed, "seed of the evaluation episodes (the same at every evaluation)");
  app.add_option("--final-episodes", s.final_episodes, "episodes of the final task metric")
      ->check(CLI::PositiveNumber);
  app.add_flag("--final-deterministic", s.final_deterministic,
               "final task metric with the deterministic policy (default: sampled actions)");
  app.add_option("--mmd-bandwidth", s.mmd_bandwidths,
                 "GmmNavigation: RBF bandwidth(s) of the final MMD, one figure each (0: median heuristic)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--terminal-out", s.terminal_out, "GmmNavigation: write the final episodes' terminal positions here");
  app.add_option("--csv", csv, "write the learning curve here");
  app.add_option("--plot", s.plot, "plot the learning curve to this PNG (needs --csv)");
  app.add_option("--checkpoint", checkpoint, "write the whole run here (atomically) at the end and every --checkpoint-every steps");
  app.add_option("--checkpoint-every", checkpoint_every, "env steps between checkpoints")->check(CLI::NonNegativeNumber);
  app.add_option("--resume", s.resume, "continue the run saved in this checkpoint (same settings)");
  app.add_option("--threads", threads, "Eigen/OpenMP threads")->check(CLI::PositiveNumber);
  // SAC.
  app.add_option("--alpha", s.sac.initial_alpha, "SAC: initial temperature")->check(CLI::PositiveNumber);
  bool fixed_alpha = false;
  app.add_flag("--sac-fixed-alpha", fixed_alpha, "SAC: keep alpha fixed (no entropy tuning)");
  // DQS (see docs/dqs.md).
  app.add_option("--dqs-lr", s.dqs.learning_rate, "DQS: learning rate of the score network")
      ->check(CLI::PositiveNumber);
  app.add_option("--dqs-samples", s.dqs.samples, "DQS: Monte Carlo samples K per score target")->check(CLI::PositiveNumber);
  app.add_option("--dqs-steps", s.dqs.steps, "DQS: reverse steps per action")->check(CLI::PositiveNumber);
  app.add_option("--dqs-alpha0", s.dqs.alpha_initial, "DQS: initial temperature α0")->check(CLI::PositiveNumber);
  app.add_option("--dqs-alpha1", s.dqs.alpha_final, "DQS: final temperature α1")->check(CLI::PositiveNumber);
  app.add_option("--dqs-anneal", s.dqs.anneal_updates, "DQS: updates of the log-linear α0 → α1 annealing");
  app.add_flag("--dqs-auto-alpha", s.dqs.auto_alpha, "DQS: tune α toward the target entropy");
  bool published = false;
  app.add_flag("--dqs-published-tanh", published, "DQS: the published tanh map without the Jacobian term");
  long dqs_width = 256, dqs_depth = 3;
  app.add_option("--dqs-hidden", dqs_width, "DQS: hidden width of the score network")->check(CLI::PositiveNumber);
  app.add_option("--dqs-depth", dqs_depth, "DQS: hidden layers of the score network")->check(CLI::PositiveNumber);
  app.add_option("--dqs-embedding", s.dqs.embedding_dim, "DQS: sinusoidal features per condition (even)");
  app.add_option("--dqs-sigma-min", s.dqs.sigma_min, "DQS: smallest noise level of the VE schedule")
      ->check(CLI::PositiveNumber);
  app.add_option("--dqs-sigma-max", s.dqs.sigma_max, "DQS: largest noise level (prior std) of the VE schedule")
      ->check(CLI::PositiveNumber);
  app.add_option("--dqs-loss-floor", s.dqs.loss_weight_floor, "DQS: lambda(t) = s(t)^2 + floor")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--dqs-zero-init", s.dqs.zero_output_init,
               "DQS: zero the score network's output layer (untrained policy = the prior, no start-up bias)");
  app.add_flag("--dqs-entropy-bonus", s.dqs.entropy_bonus,
               "DQS: soft Bellman target, bonus -alpha*log pi(a'|s') from the probability-flow ODE");
  app.add_option("--dqs-entropy-steps", s.dqs.entropy_steps, "DQS: Heun steps of the log-pi ODE (entropy bonus, auto alpha)")
      ->check(CLI::PositiveNumber);
  std::string sampler = "integrator";
  app.add_option("--dqs-sampler", sampler,
                 "DQS: reverse process of act(): integrator (Euler-Maruyama / Heun ODE) or ancestral (ancestral / DDIM)")
      ->check(CLI::IsMember({"integrator", "ancestral"}));
  std::string score_form = "target";
  app.add_option("--dqs-score-form", score_form, "DQS: Monte Carlo score form target|tweedie|blend")
      ->check(CLI::IsMember({"target", "tweedie", "blend"}));
  app.add_option("--actions-out", s.actions_out, "write sampled actions at fixed probe states here (CSV)");
  app.add_option("--action-samples", s.action_samples, "actions per probe state")->check(CLI::PositiveNumber);
  app.add_option("--maze-trajectories", s.maze_trajectories, "maze: write the final episodes' trajectories here");
  app.add_option("--grid-nodes", s.grid_nodes, "grid agent: nodes over [-1, 1]")->check(CLI::Range(2, 100000));
  app.add_option("--diag-every", s.diag_every, "every E steps: TV of the policy's probe actions to exp(Q/alpha)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--diag-csv", s.diag_csv, "write the --diag-every figures here");
  app.add_option("--fidelity-episodes", s.fidelity_episodes,
                 "2-D actions: the final task metric also for the exact exp(Q/alpha) policy of the final critic "
                 "over this many episodes (maze: plus the TV of DQS's actions to it per cell)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--fidelity-grid", s.fidelity_grid, "action grid nodes per axis of that exact policy")
      ->check(CLI::Range(2, 1000));
  CLI11_PARSE(app, argc, argv);

  Eigen::setNbThreads(threads);
  t.total_steps = steps;
  t.warmup_steps = warmup >= 0 ? warmup : (steps < 2000 ? 100 : 1000);
  t.updates_per_step = utd;
  t.batch_size = batch;
  t.buffer_capacity = std::max(buffer, batch);
  t.eval_every = eval_every;
  t.eval_episodes = eval_episodes;
  t.csv_path = csv;
  t.checkpoint_path = checkpoint.empty() ? s.resume : checkpoint;
  t.checkpoint_every = checkpoint_every;
  t.label = s.agent + "/" + s.env;
  s.critic.gamma = gamma >= 0 ? gamma : (s.env == "gmm_navigation" ? 0.0 : 0.99);
  s.critic.learning_rate = lr;
  s.critic.hidden.assign(static_cast<std::size_t>(depth), width);
  s.sac.hidden.assign(static_cast<std::size_t>(depth), width);
  s.sac.actor_learning_rate = lr;
  s.sac.alpha_learning_rate = lr;
  s.sac.auto_alpha = !fixed_alpha;
  s.dqs.hidden.assign(static_cast<std::size_t>(dqs_depth), dqs_width);
  if (published) s.dqs.action_map = dqs::rl::ActionMap::tanh_published;
  if (sampler == "ancestral") s.dqs.sampler = dqs::rl::ReverseSampler::ancestral;
  s.dqs.score_form = score_form == "tweedie" ? dqs::ScoreForm::tweedie
                     : score_form == "blend" ? dqs::ScoreForm::blend
                                             : dqs::ScoreForm::target;
  s.dqs.threads = threads;
  if (s.fidelity_episodes > 0 && s.env == "pendulum") {  // it would otherwise be skipped silently after training
    std::fprintf(stderr, "error: --fidelity-episodes needs a 2-D action (gmm_navigation or maze), got --env pendulum\n");
    return 2;
  }

  try {
    if (s.env == "pendulum") return train_on(dqs::rl::Pendulum{}, s);
    if (s.env == "gmm_navigation") return train_on(dqs::rl::GmmNavigation{}, s);
    return train_on(dqs::rl::TwoGoalMaze{}, s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
