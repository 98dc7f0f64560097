// Trains a score network with iDEM (Monte Carlo score targets, FIFO buffer refilled by the network's own
// samples) and samples with it at zero energy evaluations. Tasks: GMM-40 (scored as examples/sample_gmm40:
// x-W2 vs 1000 exact samples, modes hit, TV) and DW-4 (x-W2 / energy W2 / distance W2 vs dw4_test.npy).
// smoke-test: --iterations 2 --inner-steps 5 --batch 64 --mc-samples 16 --samples-per-iteration 64 --warm-start 64 --warm-steps 10 --eval-samples 200 --hidden 32,32
#include <dqs/dqs.hpp>
#include <dqs/energy/double_well.hpp>
#include <dqs/energy/particles.hpp>
#include <dqs/io/npy.hpp>
#include <dqs/metrics/metrics.hpp>
#include <dqs/nn/mlp.hpp>
#include <dqs/score/learned.hpp>
#include <dqs/train/idem.hpp>

#include <CLI/CLI.hpp>

#include "gmm40_scoring.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

struct Settings {
  std::string task = "gmm40";
  long iterations = 40;
  long inner_steps = 100;
  long batch = 512;
  long mc_samples = 500;
  long samples_per_iteration = 1000;
  long buffer = 10000;
  long sampler_steps = 100;
  long warm_start = 2000;   // training-free samples seeding the buffer (0: start from the untrained network)
  long warm_steps = 100;
  long warm_mc = 200;
  std::vector<long> hidden = {256, 256, 256};
  long embedding = 32;
  double learning_rate = 1e-3;
  double final_learning_rate = 1e-4;
  double clip = 0;          // Monte Carlo score clip (0: the task's default)
  double lambda_epsilon = -1;  // ε of λ(t) = s(t)² + ε (< 0: c², the score_scale squared)
  std::uint64_t seed = 0;   // training seed
  std::uint64_t eval_seed = 1;
  long eval_samples = 1000;
  long eval_steps = 1000;
  int threads = 0;
  std::string checkpoint, resume, curve, plot, out;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double cpu_seconds() { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; }

dqs::nn::MlpConfig network(const Settings& s, dqs::Index dim) {
  dqs::nn::MlpConfig c;
  c.input_dim = dim;
  c.output_dim = dim;
  for (long h : s.hidden) c.hidden.push_back(h);
  c.activation = dqs::nn::Activation::silu;
  c.condition_dim = 1;
  c.embedding_dim = s.embedding;
  c.min_frequency = 1.0;
  c.max_frequency = 1000.0;
  c.output_scale = 0.1;
  return c;
}

// Training evaluations after each outer iteration, counted back from the exact final total: every
// iteration costs inner_steps · batch · K (t > 0 always, so every target spends K), whatever was resumed.
void write_curve(const std::string& path, const std::vector<double>& losses, long inner_steps, long batch,
                 long mc_samples, std::int64_t final_evals) {
  if (path.empty()) return;
  std::ofstream f(path);
  f << "iteration,loss,training_energy_evaluations\n";
  const auto n = static_cast<std::int64_t>(losses.size());
  for (std::int64_t i = 0; i < n; ++i)
    f << i + 1 << "," << losses[static_cast<std::size_t>(i)] << ","
      << final_evals - (n - i - 1) * inner_steps * batch * mc_samples << "\n";
}

void report_costs(const char* task, std::int64_t training, std::int64_t sampling, std::int64_t training_free,
                  double train_wall, double train_cpu) {
  std::printf("dqs train_idem (%s)\n", task);
  std::printf("training energy evals   %.4e (includes the warm start)\n", static_cast<double>(training));
  std::printf("sampling energy evals   %lld (the network replaces the energy)\n", static_cast<long long>(sampling));
  std::printf("training-free sampler   %.4e evals for the same number of samples\n", static_cast<double>(training_free));
  std::printf("training wall time      %.1f s (cpu %.1f s)\n", train_wall, train_cpu);
}

// The trainer's settings shared by both tasks; λ's ε defaults to c², the preconditioner's score scale
// (docs/idem.md explains why not the published 1e-3).
dqs::train::IdemConfig idem_config(const Settings& s, double score_scale) {
  dqs::train::IdemConfig config;
  config.samples_per_iteration = s.samples_per_iteration;
  config.inner_steps = s.inner_steps;
  config.batch_size = s.batch;
  config.buffer_capacity = s.buffer;
  config.sampler_steps = s.sampler_steps;
  config.seed = s.seed;
  config.threads = s.threads;
  config.lambda_epsilon = s.lambda_epsilon >= 0 ? s.lambda_epsilon : score_scale * score_scale;
  config.decay_iterations = s.iterations;  // cosine decay of the learning rate over the run
  config.final_learning_rate = s.final_learning_rate;
  return config;
}

int run_gmm40(const Settings& s) {
  const auto energy = dqs::gmm40<float>();
  const dqs::VEGeometric schedule(0.01, 70.0);
  dqs::MonteCarloScoreOptions mc;
  mc.samples = s.mc_samples;
  mc.form = dqs::ScoreForm::blend;
  mc.blend_scale = dqs::gmm40_std();
  mc.clip = s.clip > 0 ? s.clip : 70.0;
  dqs::LearnedScoreOptions so;
  so.data_scale = 25.0;                // the means spread uniformly over [−40, 40]² (sd ≈ 23)
  so.score_scale = dqs::gmm40_std();   // each component's width
  const dqs::train::IdemConfig config = idem_config(s, so.score_scale);
  dqs::train::IdemTrainer<dqs::GaussianMixture<float>, dqs::VEGeometric> trainer(
      energy, schedule, dqs::nn::Mlp<float>(network(s, 2), s.seed), so, config, dqs::MonteCarloScore(mc),
      dqs::train::AdamConfig{.learning_rate = s.learning_rate, .max_gradient_norm = 1.0});

  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = cpu_seconds();
  std::int64_t warm_evals = 0;
  if (!s.resume.empty()) {
    trainer.load_checkpoint(s.resume);
    std::fprintf(stderr, "resumed from %s at iteration %ld\n", s.resume.c_str(), static_cast<long>(trainer.progress().iteration));
  } else if (s.warm_start > 0) {
    dqs::MonteCarloScoreOptions warm_mc = mc;
    warm_mc.samples = s.warm_mc;
    const dqs::BoltzmannSampler warm(energy, schedule, dqs::SamplerOptions{.steps = s.warm_steps, .threads = s.threads},
                                     dqs::EulerMaruyama{}, dqs::MonteCarloScore(warm_mc));
    const auto seeded = warm.sample(s.warm_start, s.seed + 7'000'000);
    warm_evals = seeded.energy_evaluations;
    trainer.seed_buffer(seeded.samples, seeded.energy_evaluations);
    std::fprintf(stderr, "warm start: %ld training-free samples, %.3e energy evals, %.1f s\n", s.warm_start,
                 static_cast<double>(warm_evals), seconds_since(start));
  }
  trainer.run(s.iterations, stderr, 1, s.checkpoint, s.checkpoint.empty() ? 0 : 5);
  const double train_wall = seconds_since(start), train_cpu = cpu_seconds() - cpu_start;

  const auto sample_start = std::chrono::steady_clock::now();
  const auto result =
      trainer.sampler(dqs::SamplerOptions{.steps = s.eval_steps, .threads = s.threads}).sample(s.eval_samples, s.eval_seed);
  const double sample_seconds = seconds_since(sample_start);
  // The flagship example's default (N = eval_samples, 100 steps, K = 200) for the cost comparison.
  const std::int64_t training_free = static_cast<std::int64_t>(s.eval_samples) * 100 * 200;
  report_costs("GMM-40", trainer.progress().training_evaluations, result.energy_evaluations, training_free, train_wall,
               train_cpu);
  std::printf("sampling wall time      %.2f s (N = %ld, %ld steps, eval seed %llu)\n", sample_seconds, s.eval_samples,
              s.eval_steps, static_cast<unsigned long long>(s.eval_seed));
  dqs_examples::print_gmm40_score(dqs_examples::score_gmm40(result.samples, s.eval_seed));
  write_curve(s.curve, trainer.progress().loss_history, s.inner_steps, s.batch, s.mc_samples,
              trainer.progress().training_evaluations);
  if (!s.out.empty()) dqs::io::write_npy(s.out, result.samples);
  return 0;
}

int run_dw4(const Settings& s) {
  const dqs::DoubleWell<float> energy;  // 4 particles in 2-D
  const dqs::ParticleLayout layout = energy.layout();
  const dqs::VEGeometric schedule(0.01, 3.0);
  dqs::MonteCarloScoreOptions mc;
  mc.samples = s.mc_samples;
  mc.form = dqs::ScoreForm::blend;
  mc.blend_scale = 0.5;
  mc.clip = s.clip > 0 ? s.clip : 20.0;
  mc.clip_block = 2;  // per particle
  dqs::LearnedScoreOptions so;
  so.data_scale = 1.5;
  so.score_scale = 0.5;
  so.centre_of_mass_free = layout;
  const dqs::train::IdemConfig config = idem_config(s, so.score_scale);
  dqs::train::IdemTrainer<dqs::DoubleWell<float>, dqs::VEGeometric> trainer(
      energy, schedule, dqs::nn::Mlp<float>(network(s, 8), s.seed), so, config, dqs::MonteCarloScore(mc),
      dqs::train::AdamConfig{.learning_rate = s.learning_rate, .max_gradient_norm = 1.0});

  const auto start = std::chrono::steady_clock::now();
  const double cpu_start = cpu_seconds();
  std::int64_t warm_evals = 0;
  if (!s.resume.empty()) {
    trainer.load_checkpoint(s.resume);
  } else if (s.warm_start > 0) {
    dqs::MonteCarloScoreOptions warm_mc = mc;
    warm_mc.samples = s.warm_mc;
    const dqs::BoltzmannSampler warm(energy, schedule, dqs::SamplerOptions{.steps = s.warm_steps, .threads = s.threads},
                                     dqs::EulerMaruyama{}, dqs::MonteCarloScore(warm_mc));
    const auto seeded = warm.sample(s.warm_start, s.seed + 7'000'000);
    warm_evals = seeded.energy_evaluations;
    trainer.seed_buffer(seeded.samples, seeded.energy_evaluations);
    std::fprintf(stderr, "warm start: %ld training-free samples, %.3e energy evals\n", s.warm_start,
                 static_cast<double>(warm_evals));
  }
  trainer.run(s.iterations, stderr, 1, s.checkpoint, s.checkpoint.empty() ? 0 : 5);
  const double train_wall = seconds_since(start), train_cpu = cpu_seconds() - cpu_start;

  const auto result =
      trainer.sampler(dqs::SamplerOptions{.steps = s.eval_steps, .threads = s.threads}).sample(s.eval_samples, s.eval_seed);
  report_costs("DW-4", trainer.progress().training_evaluations, result.energy_evaluations,
               static_cast<std::int64_t>(s.eval_samples) * s.warm_steps * s.warm_mc, train_wall, train_cpu);

  // Reference: the first 1000 samples of dw4_test.npy; centre of mass removed from both (as the floors).
  const dqs::Matrix<double> test = dqs::io::read_npy<double>(DQS_SHARED_DIR "/data/dw4_test.npy");
  dqs::Matrix<double> reference = test.leftCols(std::min<dqs::Index>(1000, test.cols()));
  dqs::Matrix<double> ours = result.samples.cast<double>();
  dqs::remove_centre_of_mass<double>(layout, reference);
  dqs::remove_centre_of_mass<double>(layout, ours);
  const dqs::DoubleWell<double> energy_d;
  dqs::Vector<double> e_ours(ours.cols()), e_ref(reference.cols());
  energy_d.energy(ours, e_ours);
  energy_d.energy(reference, e_ref);
  std::printf("x-W2 vs 1000 test     %.3f   (floor 1.82)\n", dqs::metrics::w2_exact(ours, reference));
  std::printf("energy W2             %.3f   (floor 0.135)\n", dqs::metrics::w2_1d(e_ours, e_ref));
  std::printf("distance W2           %.4f  (floor 0.022)\n",
              dqs::metrics::w2_1d(dqs::interatomic_distances<double>(layout, ours),
                                  dqs::interatomic_distances<double>(layout, reference)));
  std::printf("mean energy           %.3f   (test %.3f)\n", e_ours.mean(), e_ref.mean());
  write_curve(s.curve, trainer.progress().loss_history, s.inner_steps, s.batch, s.mc_samples,
              trainer.progress().training_evaluations);
  if (!s.out.empty()) dqs::io::write_npy(s.out, result.samples);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a score network with iDEM and sample with it at zero energy evaluations"};
  Settings s;
  app.add_option("--task", s.task, "gmm40 or dw4")->check(CLI::IsMember({"gmm40", "dw4"}));
  app.add_option("--iterations", s.iterations, "outer iterations")->check(CLI::PositiveNumber);
  app.add_option("--inner-steps", s.inner_steps, "gradient steps per outer iteration")->check(CLI::NonNegativeNumber);
  app.add_option("--batch", s.batch, "buffer points per gradient step")->check(CLI::PositiveNumber);
  app.add_option("--mc-samples", s.mc_samples, "Monte Carlo samples K per score target")->check(CLI::PositiveNumber);
  app.add_option("--samples-per-iteration", s.samples_per_iteration, "network samples added per outer iteration")
      ->check(CLI::PositiveNumber);
  app.add_option("--buffer", s.buffer, "replay buffer capacity")->check(CLI::PositiveNumber);
  app.add_option("--sampler-steps", s.sampler_steps, "reverse steps when sampling into the buffer")->check(CLI::PositiveNumber);
  app.add_option("--warm-start", s.warm_start, "training-free samples seeding the buffer (0: none)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--warm-steps", s.warm_steps, "reverse steps of the warm start")->check(CLI::PositiveNumber);
  app.add_option("--warm-mc", s.warm_mc, "Monte Carlo samples K of the warm start")->check(CLI::PositiveNumber);
  app.add_option("--hidden", s.hidden, "hidden widths, e.g. 256,256,256")->delimiter(',');
  app.add_option("--embedding", s.embedding, "sinusoidal features of t (even)")->check(CLI::PositiveNumber);
  app.add_option("--lr", s.learning_rate, "initial learning rate")->check(CLI::PositiveNumber);
  app.add_option("--final-lr", s.final_learning_rate, "final learning rate (cosine decay)")->check(CLI::PositiveNumber);
  app.add_option("--clip", s.clip, "Monte Carlo score clip (0: task default)")->check(CLI::NonNegativeNumber);
  app.add_option("--lambda-eps", s.lambda_epsilon,
                 "epsilon of lambda(t) = s(t)^2 + epsilon (default: score_scale^2, equal weight in network units; "
                 "the published iDEM value is 1e-3)");
  app.add_option("--seed", s.seed, "training seed");
  app.add_option("--eval-seed", s.eval_seed, "seed of the evaluation samples (and exact reference: + 1e6)");
  app.add_option("--eval-samples", s.eval_samples, "samples drawn from the trained network")->check(CLI::PositiveNumber);
  app.add_option("--eval-steps", s.eval_steps, "reverse steps of the evaluation sampler")->check(CLI::PositiveNumber);
  app.add_option("--threads", s.threads, "OpenMP threads (0: all)")->check(CLI::NonNegativeNumber);
  app.add_option("--checkpoint", s.checkpoint, "write a checkpoint here every 5 iterations and at the end");
  app.add_option("--resume", s.resume, "resume from this checkpoint");
  app.add_option("--curve", s.curve, "write the learning curve (CSV)");
  app.add_option("--out", s.out, "write the evaluation samples (.npy)");
  CLI11_PARSE(app, argc, argv);
  // Threads go to columns (Monte Carlo targets, network chunks); Eigen's own GEMM threading on top of
  // that only adds barriers, which cost more than they save on a loaded machine.
  Eigen::setNbThreads(1);
  try {
    return s.task == "gmm40" ? run_gmm40(s) : run_dw4(s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
