// dqs::nn and dqs::train: the hand-derived MLP backward against the tape, fitting a smooth function,
// Adam's analytic first steps and convergence on a quadratic, initialisations, save/load round trips
// (bit-identical) and rejection of corrupt or mismatched files, argument checks.
#include "dqs/ad/gradcheck.hpp"
#include "dqs/detail/parallel.hpp"
#include "dqs/nn/mlp.hpp"
#include "dqs/train/optim.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace {

using dqs::Index;
using dqs::Matrix;
using dqs::Vector;
using dqs::nn::Activation;
using dqs::nn::Mlp;
using dqs::nn::MlpConfig;
using dqs::nn::MlpWorkspace;

template <class S>
Matrix<S> normal_batch(Index rows, Index cols, std::uint64_t seed) {
  Matrix<S> m(rows, cols);
  dqs::random::fill_normal<S>(dqs::random::StreamKey{seed}, m);
  return m;
}

MlpConfig small_config(Activation a, bool residual, Index conditions) {
  MlpConfig c;
  c.input_dim = 3;
  c.hidden = {6, 6, 6, 4};
  c.output_dim = 2;
  c.activation = a;
  c.residual = residual;
  c.condition_dim = conditions;
  c.embedding_dim = conditions > 0 ? 4 : 0;
  c.max_frequency = 20.0;
  return c;
}

// A scratch directory per test case, removed afterwards.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name)
      : path(std::filesystem::temp_directory_path() / ("dqs_nn_test_" + name)) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no exception";
}

std::vector<unsigned char> read_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
void write_bytes(const std::filesystem::path& p, const std::vector<unsigned char>& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace

TEST_CASE("nn: hand-derived MLP backward equals the tape's", "[nn]") {
  const Index n = 7;
  const Matrix<double> x = normal_batch<double>(3, n, 1);
  const Matrix<double> c = normal_batch<double>(1, n, 2);
  const Matrix<double> d_out = normal_batch<double>(2, n, 3);
  for (Activation a : {Activation::identity, Activation::relu, Activation::silu, Activation::gelu, Activation::tanh,
                       Activation::softplus})
    for (bool residual : {false, true})
      for (Index conditions : {0, 1}) {
        INFO("activation " << dqs::nn::to_string(a) << ", residual " << residual << ", conditions " << conditions);
        Mlp<double> net(small_config(a, residual, conditions), 17);
        // Non-zero biases, so that their gradients and the activations' kinks are exercised.
        net.parameters() += 0.1 * normal_batch<double>(net.num_parameters(), 1, 4);

        MlpWorkspace<double> ws;
        const Matrix<double> out = conditions ? net.forward_train(x, c, ws) : net.forward_train(x, ws);
        // Inference on the same workspace between forward_train and backward leaves the cache intact.
        Matrix<double> other(2, 5);
        if (conditions)
          net.forward(normal_batch<double>(3, 5, 5), normal_batch<double>(1, 5, 6), other, ws);
        else
          net.forward(normal_batch<double>(3, 5, 5), other, ws);
        Vector<double> grad(net.num_parameters());
        Matrix<double> d_x(3, n);
        net.backward(d_out, ws, grad, d_x);

        dqs::ad::Tape<double> tape;
        const auto params = net.parameters_on(tape);
        const auto xv = tape.variable(x);
        const auto y = conditions ? net.forward_on(tape, params, xv, c) : net.forward_on(tape, params, xv);
        tape.backward(y, d_out);
        Vector<double> tape_grad(net.num_parameters());
        net.gather_gradient(params, tape_grad);

        // Same formulas, different association of the sums: agreement to rounding (~1e-15 relative).
        CHECK((y.value() - out).cwiseAbs().maxCoeff() < 1e-13);
        CHECK((grad - tape_grad).cwiseAbs().maxCoeff() < 1e-12 * (1 + tape_grad.cwiseAbs().maxCoeff()));
        CHECK((d_x - xv.gradient()).cwiseAbs().maxCoeff() < 1e-12 * (1 + d_x.cwiseAbs().maxCoeff()));

        // Inference forward (no cache, ping-pong buffers) gives the training forward's output exactly.
        const Matrix<double> inferred = conditions ? net.forward(x, c) : net.forward(x);
        CHECK(inferred == out);
      }
}

TEST_CASE("nn: the tape's MLP gradient matches finite differences", "[nn]") {
  Mlp<double> net(small_config(Activation::silu, true, 1), 5);
  const Matrix<double> x = normal_batch<double>(3, 4, 6);
  const Matrix<double> c = normal_batch<double>(1, 4, 7);
  const Vector<double> p0 = net.parameters();
  // Reference: the plain forward with the parameters set from the input vector.
  const auto reference = [&](const std::vector<Matrix<double>>& in) {
    Mlp<double> copy = net;
    copy.parameters() = in[0];
    return copy.forward(x, c);
  };
  const auto taped = [&](dqs::ad::Tape<double>& tape, const std::vector<dqs::ad::Var<double>>& in) {
    std::vector<dqs::ad::Var<double>> params;
    for (Index l = 0; l < net.num_layers(); ++l) {
      const auto w = dqs::ad::slice_rows(in[0], net.weight_offset(l), net.layer_outputs(l) * net.layer_inputs(l));
      // Reshape the column-major slice into the layer's matrix: column k is rows [k·out, (k+1)·out).
      std::vector<dqs::ad::Var<double>> cols;
      for (Index k = 0; k < net.layer_inputs(l); ++k)
        cols.push_back(dqs::ad::slice_rows(w, k * net.layer_outputs(l), net.layer_outputs(l)));
      dqs::ad::Var<double> wt = dqs::ad::transpose(cols[0]);
      for (std::size_t k = 1; k < cols.size(); ++k) wt = dqs::ad::concat_rows({wt, dqs::ad::transpose(cols[k])});
      params.push_back(dqs::ad::transpose(wt));
      params.push_back(dqs::ad::slice_rows(in[0], net.bias_offset(l), net.layer_outputs(l)));
    }
    return net.forward_on(tape, params, tape.constant(x), c);
  };
  const auto r = dqs::ad::gradient_check(reference, taped, {Matrix<double>(p0)});
  INFO("value error " << r.max_value_error << ", gradient error " << r.max_rel_error);
  // Tolerance as in ad_test: FD error ≲ 1e-8 here, a wrong formula errs by ≳ 1e-2.
  CHECK(r.entries == net.num_parameters());
  CHECK(r.passed(1e-6));
}

TEST_CASE("nn: weighted_mse_gradient is the gradient of the weighted loss", "[nn]") {
  Mlp<double> net(small_config(Activation::tanh, false, 0), 8);
  const Matrix<double> x = normal_batch<double>(3, 5, 9), y = normal_batch<double>(2, 5, 10);
  Vector<double> w(5);
  w << 0.5, 2.0, 1.0, 0.0, 3.0;
  MlpWorkspace<double> ws;
  Vector<double> grad(net.num_parameters());
  const double loss = net.weighted_mse_gradient(x, y, w, grad, ws);
  const auto loss_at = [&](const Vector<double>& p) {
    Mlp<double> copy = net;
    copy.parameters() = p;
    const Matrix<double> r = copy.forward(x) - y;
    return (r.colwise().squaredNorm().transpose().array() * w.array()).sum() / 5;
  };
  CHECK(loss == Approx(loss_at(net.parameters())).epsilon(1e-14));
  // Central differences on every parameter; error bound as in ad_test (h = 1e-6, |L| ~ 1).
  Vector<double> p = net.parameters();
  for (Index i = 0; i < p.size(); ++i) {
    const double p0 = p[i];
    p[i] = p0 + 1e-6;
    const double up = loss_at(p);
    p[i] = p0 - 1e-6;
    const double down = loss_at(p);
    p[i] = p0;
    CHECK(std::abs(grad[i] - (up - down) / 2e-6) < 1e-7 * std::max(1.0, std::abs(grad[i])));
  }
  // Empty weights mean w ≡ 1.
  const double uniform = net.weighted_mse_gradient(x, y, Vector<double>(), grad, ws);
  CHECK(uniform == Approx((net.forward(x) - y).squaredNorm() / 5).epsilon(1e-14));
}

TEMPLATE_TEST_CASE("nn: an MLP fits a smooth function", "[nn]", float, double) {
  using S = TestType;
  // f(x) = sin(2x₁)·cos(x₂) + 0.5x₁ on [−1.5, 1.5]²; 256 training points, full-batch Adam (sized so
  // that the test stays a few seconds in an unoptimised Debug build).
  const auto target = [](const Matrix<S>& x) {
    Matrix<S> y(1, x.cols());
    for (Index j = 0; j < x.cols(); ++j)
      y(0, j) = std::sin(S(2) * x(0, j)) * std::cos(x(1, j)) + S(0.5) * x(0, j);
    return y;
  };
  const auto uniform_points = [](Index n, std::uint64_t seed) {
    Matrix<S> x(2, n);
    for (Index j = 0; j < n; ++j) {
      dqs::random::Stream stream(seed, static_cast<std::uint64_t>(j), 0, dqs::random::Purpose::user);
      Vector<S> u(2);
      stream.uniform<S>(u);
      x.col(j) = (S(3) * u.array() - S(1.5)).matrix();
    }
    return x;
  };
  const Matrix<S> x = uniform_points(256, 11), y = target(x);
  const Matrix<S> x_test = uniform_points(1000, 12), y_test = target(x_test);

  MlpConfig config;
  config.input_dim = 2;
  config.hidden = {32, 32};
  config.output_dim = 1;
  config.activation = Activation::silu;
  Mlp<S> net(config, 13);
  dqs::train::Adam<S> adam(net.num_parameters(), {.learning_rate = 1e-2});
  // Eigen would split these small GEMMs over OpenMP threads, which only costs time (a lot of it on
  // a loaded machine).
  dqs::detail::ThreadScope one_thread(1);
  Vector<S> grad(net.num_parameters());
  MlpWorkspace<S> ws;
  for (int step = 0; step < 1000; ++step) {
    if (step == 667) adam.set_learning_rate(2e-3);
    net.weighted_mse_gradient(x, y, Vector<S>(), grad, ws);
    adam.step(net.parameters(), grad);
  }
  const double test_mse = static_cast<double>((net.forward(x_test) - y_test).squaredNorm()) / 1000.0;
  const double variance = static_cast<double>((y_test.array() - y_test.mean()).square().mean());
  INFO("test MSE " << test_mse << " vs target variance " << variance);
  // The target has variance ≈ 0.83 on the square; a fit explaining > 99.8 % of it (MSE < 1e-3) on
  // 1000 held-out points means the network learned the function, not just the training points.
  CHECK(variance > 0.3);
  CHECK(test_mse < 1e-3);
}

TEST_CASE("nn: MLP outputs are deterministic per seed and thread-safe to evaluate", "[nn]") {
  MlpConfig config = small_config(Activation::gelu, true, 1);
  const Mlp<float> a(config, 21), b(config, 21), other(config, 22);
  CHECK(a.parameters() == b.parameters());
  CHECK(a.parameters() != other.parameters());
  const Matrix<float> x = normal_batch<float>(3, 64, 23), c = normal_batch<float>(1, 64, 24);
  const Matrix<float> expected = a.forward(x, c);
  std::vector<Matrix<float>> results(8);
#pragma omp parallel for
  for (int k = 0; k < 8; ++k) {
    MlpWorkspace<float> ws;
    Matrix<float> out(2, 64);
    for (int rep = 0; rep < 5; ++rep) a.forward(x, c, out, ws);
    results[static_cast<std::size_t>(k)] = out;
  }
  for (const auto& r : results) CHECK(r == expected);
}

TEST_CASE("nn: initialisations have their stated laws", "[nn]") {
  const auto layer = [](dqs::nn::Init init, Index out, Index in) {
    MlpConfig c;
    c.input_dim = in;
    c.hidden = {out};
    c.output_dim = 1;
    c.init = init;
    return Mlp<double>(c, 31).weight(0).eval();
  };
  // He: N(0, 2/fan_in). The sample variance of n = 65536 normals has relative sd √(2/n) = 0.55 %;
  // 5 sd = 2.8 %. The sample mean has sd √(2/in/n) ≈ 3.5e-4; 5 sd = 1.8e-3.
  const Matrix<double> he = layer(dqs::nn::Init::he, 256, 256);
  const double var_he = (he.array() - he.mean()).square().mean();
  CHECK(std::abs(var_he / (2.0 / 256) - 1) < 0.028);
  CHECK(std::abs(he.mean()) < 1.8e-3);
  // Xavier: U(±a), a = √(6/(in+out)); variance a²/3 with relative sd √(0.8/n) ≈ 0.35 %, 5 sd = 1.8 %.
  const Matrix<double> xavier = layer(dqs::nn::Init::xavier, 256, 256);
  const double a = std::sqrt(6.0 / 512);
  CHECK(xavier.cwiseAbs().maxCoeff() <= a);
  CHECK(xavier.cwiseAbs().maxCoeff() > 0.99 * a);
  CHECK(std::abs((xavier.array() - xavier.mean()).square().mean() / (a * a / 3) - 1) < 0.018);
  // Orthogonal: orthonormal columns (tall) or rows (wide), exactly up to rounding.
  const Matrix<double> tall = layer(dqs::nn::Init::orthogonal, 40, 10), wide = layer(dqs::nn::Init::orthogonal, 10, 40);
  CHECK((tall.transpose() * tall - Matrix<double>::Identity(10, 10)).cwiseAbs().maxCoeff() < 1e-12);
  CHECK((wide * wide.transpose() - Matrix<double>::Identity(10, 10)).cwiseAbs().maxCoeff() < 1e-12);
  // output_scale = 0: the last layer starts at zero, so f ≡ 0 at initialisation.
  MlpConfig zero = small_config(Activation::silu, false, 0);
  zero.output_scale = 0;
  const Mlp<double> net(zero, 32);
  CHECK(net.forward(normal_batch<double>(3, 5, 33)).isZero(0));
}

TEST_CASE("nn: sinusoidal embedding", "[nn]") {
  const dqs::nn::SinusoidalEmbedding<double> e(6, 0.5, 50.0);
  CHECK(e.frequencies()[0] == Approx(0.5));
  CHECK(e.frequencies()[1] == Approx(5.0));  // geometric: 0.5·100^(1/2)
  CHECK(e.frequencies()[2] == Approx(50.0));
  Matrix<double> c(2, 3);
  c << 0.1, 0.5, 0.9, -1.0, 0.0, 2.0;
  Matrix<double> out(12, 3);
  e.embed(c, out);
  for (Index j = 0; j < 3; ++j)
    for (Index r = 0; r < 2; ++r)
      for (Index k = 0; k < 3; ++k) {
        CHECK(out(r * 6 + k, j) == Approx(std::sin(e.frequencies()[k] * c(r, j))).margin(1e-15));
        CHECK(out(r * 6 + 3 + k, j) == Approx(std::cos(e.frequencies()[k] * c(r, j))).margin(1e-15));
      }
  // A batch sharing one condition (embedded once) gives the same bits as a mixed batch.
  Matrix<double> same(1, 3), mixed(1, 3);
  same << 0.3, 0.3, 0.3;
  mixed << 0.3, 0.3, 0.7;
  Matrix<double> out_same(6, 3), out_mixed(6, 3);
  e.embed(same, out_same);
  e.embed(mixed, out_mixed);
  CHECK(out_same.leftCols(2) == out_mixed.leftCols(2));
  CHECK(out_same.col(2) != out_mixed.col(2));
  CHECK_THROWS_AS(dqs::nn::SinusoidalEmbedding<double>(5), std::invalid_argument);
  CHECK_THROWS_AS(dqs::nn::SinusoidalEmbedding<double>(4, 10.0, 1.0), std::invalid_argument);
  CHECK_THROWS_AS(e.embed(c, out.topRows(6)), std::invalid_argument);
}

TEST_CASE("train: Adam's first steps match the closed form", "[train]") {
  Vector<double> theta(3), g(3);
  theta << 1.0, -2.0, 0.5;
  g << 0.3, -4.0, 1e-3;
  // Step 1: m̂ = g, v̂ = g² ⇒ Δθ = −lr·g/(|g| + ε).
  dqs::train::Adam<double> adam(3, {.learning_rate = 0.1});
  Vector<double> p = theta;
  adam.step(p, g);
  for (Index i = 0; i < 3; ++i) CHECK(p[i] == Approx(theta[i] - 0.1 * g[i] / (std::abs(g[i]) + 1e-8)).epsilon(1e-14));
  // Step 2 with gradient h: m = 0.9·0.1g + 0.1h, v = 0.999·0.001g² + 0.001h², bias corrections 1−0.9², 1−0.999².
  Vector<double> h(3);
  h << -0.1, 2.0, 5.0;
  const Vector<double> before = p;
  adam.step(p, h);
  for (Index i = 0; i < 3; ++i) {
    const double m = 0.9 * 0.1 * g[i] + 0.1 * h[i];
    const double v = 0.999 * 0.001 * g[i] * g[i] + 0.001 * h[i] * h[i];
    const double expected = before[i] - 0.1 * (m / (1 - 0.81)) / (std::sqrt(v / (1 - 0.999 * 0.999)) + 1e-8);
    CHECK(p[i] == Approx(expected).epsilon(1e-13));
  }
  CHECK(adam.steps() == 2);

  // AdamW with a zero gradient: only the decoupled decay acts, θ ← θ(1 − lr·λ).
  dqs::train::AdamW<double> adamw(3, {.learning_rate = 0.1, .weight_decay = 0.5});
  p = theta;
  adamw.step(p, Vector<double>::Zero(3));
  CHECK((p - theta * (1 - 0.05)).cwiseAbs().maxCoeff() < 1e-15);
  // Adam with L2 decay and a zero gradient: the effective gradient λθ gives Δθ = −lr·λθ/(λ|θ| + ε).
  dqs::train::Adam<double> adam_l2(3, {.learning_rate = 0.1, .weight_decay = 0.5});
  p = theta;
  adam_l2.step(p, Vector<double>::Zero(3));
  for (Index i = 0; i < 3; ++i)
    CHECK(p[i] == Approx(theta[i] - 0.1 * 0.5 * theta[i] / (0.5 * std::abs(theta[i]) + 1e-8)).epsilon(1e-14));
  // Clipping scales the gradient to norm c before the moments: m₁ = (1 − β₁)·g·c/(‖g‖ + 1e-6).
  dqs::train::Adam<double> clipped(3, {.learning_rate = 0.1, .max_gradient_norm = 1.0});
  p = theta;
  const double norm = clipped.step(p, g);
  CHECK(norm == Approx(g.norm()).epsilon(1e-15));
  CHECK((clipped.first_moment() - 0.1 * g / (g.norm() + 1e-6)).cwiseAbs().maxCoeff() < 1e-15);
}

TEST_CASE("train: Adam converges to the minimiser of a convex quadratic", "[train]") {
  // L(θ) = ½ Σ_i a_i (θ_i − θ*_i)², curvatures spanning 100×, so plain gradient descent would need
  // a step tuned to the stiffest direction. Adam with lr 0.05 then a decay to 1e-4.
  const Index n = 20;
  Vector<double> a(n), opt(n), theta = Vector<double>::Zero(n);
  for (Index i = 0; i < n; ++i) {
    a[i] = std::pow(100.0, static_cast<double>(i) / (n - 1));
    opt[i] = std::sin(1.0 + static_cast<double>(i));
  }
  dqs::train::Adam<double> adam(n, {.learning_rate = 0.05});
  for (int t = 0; t < 4000; ++t) {
    adam.set_learning_rate(0.05 * std::pow(1e-4 / 0.05, t / 3999.0));
    adam.step(theta, a.cwiseProduct(theta - opt));
  }
  // Starting ~1 away. Near θ* the gradient decays geometrically; m (β₁ = 0.9) forgets faster than
  // v (β₂ = 0.999), so m/√v → 0 and the iterates settle instead of jittering at O(lr).
  INFO("max |θ − θ*| = " << (theta - opt).cwiseAbs().maxCoeff());
  CHECK((theta - opt).cwiseAbs().maxCoeff() < 1e-8);
}

TEST_CASE("nn: save and load give bit-identical networks and a resumable optimiser", "[nn][io]") {
  TempDir dir("roundtrip");
  const MlpConfig config = small_config(Activation::silu, true, 1);
  Mlp<float> net(config, 41);
  const Matrix<float> x = normal_batch<float>(3, 16, 42), c = normal_batch<float>(1, 16, 43);
  const Matrix<float> y = normal_batch<float>(2, 16, 44);
  dqs::train::Adam<float> adam(net.num_parameters(), {.learning_rate = 1e-2, .max_gradient_norm = 1.0});
  Vector<float> grad(net.num_parameters());
  MlpWorkspace<float> ws;
  const auto train = [&](Mlp<float>& m, dqs::train::Adam<float>& opt, int steps) {
    for (int s = 0; s < steps; ++s) {
      m.weighted_mse_gradient(x, c, y, Vector<float>(), grad, ws);
      opt.step(m.parameters(), grad);
    }
  };
  train(net, adam, 5);
  net.save(dir.path / "net.bin");
  adam.save(dir.path / "adam.bin");
  // Nothing but the two files is left behind (the temporary was renamed).
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path), std::filesystem::directory_iterator()) == 2);

  Mlp<float> loaded(config, 999);  // a different initialisation, overwritten by load
  loaded.load(dir.path / "net.bin");
  CHECK(loaded.parameters() == net.parameters());
  CHECK(loaded.forward(x, c) == net.forward(x, c));
  const Mlp<float> rebuilt = Mlp<float>::from_file(dir.path / "net.bin");
  CHECK(rebuilt.config().same_architecture(config));
  CHECK(rebuilt.forward(x, c) == net.forward(x, c));

  // Resume: 5 more steps from the checkpoint equal 5 more steps of the original run, bit for bit.
  dqs::train::Adam<float> resumed(net.num_parameters(), {.learning_rate = 0.5});
  resumed.load(dir.path / "adam.bin");
  CHECK(resumed.steps() == 5);
  CHECK(resumed.config().learning_rate == 1e-2);
  train(net, adam, 5);
  train(loaded, resumed, 5);
  CHECK(loaded.parameters() == net.parameters());
  CHECK(resumed.first_moment() == adam.first_moment());
  CHECK(resumed.second_moment() == adam.second_moment());

  // Saving over an existing file replaces it.
  net.save(dir.path / "net.bin");
  loaded.load(dir.path / "net.bin");
  CHECK(loaded.parameters() == net.parameters());

  // Composite checkpoint through the archive API.
  dqs::nn::ArchiveWriter w("my.checkpoint");
  w.write_u64(1234);
  net.write(w);
  adam.write(w);
  w.write_matrix(x);
  w.save(dir.path / "ckpt.bin");
  dqs::nn::ArchiveReader r(dir.path / "ckpt.bin", "my.checkpoint");
  CHECK(r.read_u64("counter") == 1234);
  Mlp<float> n2(config, 0);
  n2.read(r);
  dqs::train::Adam<float> a2(net.num_parameters());
  a2.read(r);
  CHECK(r.read_matrix<float>("buffer") == x);
  r.finish();
  CHECK(n2.parameters() == net.parameters());
  CHECK(a2.second_moment() == adam.second_moment());
}

TEST_CASE("nn: corrupt, truncated and mismatched files are rejected", "[nn][io]") {
  TempDir dir("corrupt");
  const MlpConfig config = small_config(Activation::relu, false, 0);
  const Mlp<double> net(config, 51);
  const auto file = dir.path / "net.bin";
  net.save(file);
  const std::vector<unsigned char> good = read_bytes(file);
  Mlp<double> target(config, 52);
  const Vector<double> untouched = target.parameters();
  const auto load_message = [&](const std::vector<unsigned char>& bytes) {
    write_bytes(file, bytes);
    return message_of([&] { target.load(file); });
  };
  const auto contains = [](const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; };

  std::vector<unsigned char> flipped = good;
  flipped[good.size() / 2] ^= 0x10;  // a bit in the parameters
  std::string m = load_message(flipped);
  CHECK(contains(m, "checksum"));
  CHECK(contains(m, file.string()));
  CHECK(m.rfind("dqs: ", 0) == 0);
  flipped = good;
  flipped.back() ^= 0x01;  // a bit of the checksum itself
  CHECK(contains(load_message(flipped), "checksum"));
  CHECK(contains(load_message({good.begin(), good.end() - 100}), "truncated"));
  CHECK(contains(load_message({good.begin(), good.begin() + 10}), "not a dqs archive"));
  CHECK(contains(load_message({}), "not a dqs archive"));
  std::vector<unsigned char> longer = good;
  longer.push_back(0);
  CHECK(contains(load_message(longer), "trailing"));
  std::vector<unsigned char> version = good;
  version[8] = 2;  // format version field
  CHECK(contains(load_message(version), "version 2"));
  std::vector<unsigned char> magic = good;
  magic[0] = 'X';
  CHECK(contains(load_message(magic), "not a dqs archive"));
  CHECK(target.parameters() == untouched);  // nothing was half-loaded

  write_bytes(file, good);
  MlpConfig wider = config;
  wider.hidden[1] = 7;
  Mlp<double> other_shape(wider, 0);
  CHECK(contains(message_of([&] { other_shape.load(file); }), "architecture mismatch"));
  MlpConfig other_activation = config;
  other_activation.activation = Activation::tanh;
  Mlp<double> other_act(other_activation, 0);
  CHECK(contains(message_of([&] { other_act.load(file); }), "architecture mismatch"));
  Mlp<float> single(config, 0);
  CHECK(contains(message_of([&] { single.load(file); }), "64-bit parameters"));
  dqs::train::Adam<double> adam(net.num_parameters());
  CHECK(contains(message_of([&] { adam.load(file); }), "expected a 'dqs.train.Adam'"));
  adam.save(dir.path / "adam.bin");
  dqs::train::Adam<double> small_adam(3);
  CHECK(contains(message_of([&] { small_adam.load(dir.path / "adam.bin"); }), "parameters"));
  CHECK(contains(message_of([&] { target.load(dir.path / "missing.bin"); }), "cannot open"));
  CHECK(contains(message_of([&] { net.save(dir.path / "no_such_dir" / "net.bin"); }), "cannot save"));
}

TEST_CASE("nn/train: bad arguments are rejected with invalid_argument", "[nn][train]") {
  MlpConfig good = small_config(Activation::silu, false, 0);
  auto bad = good;
  bad.hidden = {4, 0};
  CHECK_THROWS_AS(Mlp<double>(bad, 0), std::invalid_argument);
  bad = good;
  bad.input_dim = 0;
  CHECK_THROWS_AS(Mlp<double>(bad, 0), std::invalid_argument);
  bad = good;
  bad.output_dim = 0;
  CHECK_THROWS_AS(Mlp<double>(bad, 0), std::invalid_argument);
  bad = good;
  bad.condition_dim = 1;
  bad.embedding_dim = 3;
  CHECK_THROWS_AS(Mlp<double>(bad, 0), std::invalid_argument);
  bad = good;
  bad.output_scale = -1;
  CHECK_THROWS_AS(Mlp<double>(bad, 0), std::invalid_argument);

  const Mlp<double> net(good, 0);
  MlpWorkspace<double> ws;
  Vector<double> grad(net.num_parameters());
  const Matrix<double> x = normal_batch<double>(3, 4, 1);
  Matrix<double> out(2, 4);
  CHECK_THROWS_AS(net.forward(Matrix<double>(normal_batch<double>(4, 4, 1)), out, ws), std::invalid_argument);
  Matrix<double> wrong_out(2, 5);
  CHECK_THROWS_AS(net.forward(x, wrong_out, ws), std::invalid_argument);
  CHECK_THROWS_AS(net.forward(x, Matrix<double>(normal_batch<double>(1, 4, 2))), std::invalid_argument);
  CHECK_THROWS_AS(net.backward(Matrix<double>::Zero(2, 4), ws, grad), std::invalid_argument);  // no forward_train
  net.forward_train(x, ws);
  CHECK_THROWS_AS(net.backward(Matrix<double>::Zero(2, 3), ws, grad), std::invalid_argument);
  Vector<double> short_grad(3);
  CHECK_THROWS_AS(net.backward(Matrix<double>::Zero(2, 4), ws, short_grad), std::invalid_argument);
  net.backward(Matrix<double>::Zero(2, 4), ws, grad);
  CHECK_THROWS_AS(net.backward(Matrix<double>::Zero(2, 4), ws, grad), std::invalid_argument);  // cache consumed
  const Matrix<double> y = Matrix<double>::Zero(2, 4);
  CHECK_THROWS_AS(net.weighted_mse_gradient(x, Matrix<double>(Matrix<double>::Zero(2, 3)), Vector<double>(), grad, ws),
                  std::invalid_argument);
  CHECK_THROWS_AS(net.weighted_mse_gradient(x, y, Vector<double>::Ones(3), grad, ws), std::invalid_argument);

  using dqs::train::Adam;
  CHECK_THROWS_AS(Adam<double>(10, {.learning_rate = 0.0}), std::invalid_argument);
  CHECK_THROWS_AS(Adam<double>(10, {.learning_rate = -1e-3}), std::invalid_argument);
  CHECK_THROWS_AS(Adam<double>(10, {.learning_rate = NAN}), std::invalid_argument);
  CHECK_THROWS_AS(Adam<double>(10, {.beta1 = 1.0}), std::invalid_argument);
  CHECK_THROWS_AS(Adam<double>(10, {.epsilon = 0.0}), std::invalid_argument);
  CHECK_THROWS_AS(Adam<double>(10, {.weight_decay = -0.1}), std::invalid_argument);
  CHECK_THROWS_AS(Adam<double>(0), std::invalid_argument);
  Adam<double> adam(3);
  Vector<double> p = Vector<double>::Zero(3);
  CHECK_THROWS_AS(adam.step(p, Vector<double>::Zero(4)), std::invalid_argument);
  CHECK_THROWS_AS(adam.set_learning_rate(0.0), std::invalid_argument);
  Vector<double> nan_grad = Vector<double>::Zero(3);
  nan_grad[1] = NAN;
  CHECK_THROWS_AS(adam.step(p, nan_grad), std::invalid_argument);
  CHECK(adam.steps() == 0);
  CHECK(p.isZero(0));
}
