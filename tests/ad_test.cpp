// Reverse-mode tape: every operation against central finite differences of an independent
// plain-Eigen double reference, plus the tape's structure (one record per op, one reverse walk,
// memory reuse across reset) and its argument checks.
#include "dqs/ad/gradcheck.hpp"
#include "dqs/ad/ops.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <numbers>
#include <string>
#include <vector>

namespace {

using dqs::Index;
using dqs::Matrix;
using dqs::ad::Tape;
using dqs::ad::Var;
using Inputs = std::vector<Matrix<double>>;
using Vars = std::vector<Var<double>>;

// Standard normals (fixed seed), optionally pushed away from 0 (kinks of relu/abs) or made positive.
Matrix<double> random_matrix(Index rows, Index cols, std::uint64_t seed, double shift = 0.0, bool positive = false) {
  dqs::Vector<double> v(rows * cols);
  dqs::random::Stream(seed, 0, 0, dqs::random::Purpose::user).normal<double>(v);
  Matrix<double> m = Eigen::Map<Matrix<double>>(v.data(), rows, cols);
  if (positive) m = m.array().abs() + 0.5;
  if (shift > 0) m = (m.array() >= 0).select(m.array() + shift, m.array() - shift);
  return m;
}

// Tolerance of gradient_check (mixed absolute/relative, see GradientCheck): with h = 1e-6·max(1,|x|),
// the central difference has truncation error ≤ h²·|L‴|/6 ≈ 1e-12·|L‴| and round-off ≈ 2ε|L|/2h ≈
// 2e-10·|L|; these tests have |L| ≲ 10² and |L‴| ≲ 10³, so errors stay below ~2e-8. A wrong backward
// formula errs by O(|∂L|) ≳ 1e-2 on random inputs. 1e-6 separates the two by orders of magnitude.
constexpr double tolerance = 1e-6;

void check(const std::string& name, const std::function<Matrix<double>(const Inputs&)>& reference,
           const std::function<Var<double>(Tape<double>&, const Vars&)>& taped, const Inputs& inputs) {
  const auto r = dqs::ad::gradient_check(reference, taped, inputs);
  INFO(name << ": value error " << r.max_value_error << ", gradient abs error " << r.max_abs_error
            << ", rel error " << r.max_rel_error << " over " << r.entries << " entries");
  Index expected_entries = 0;
  for (const auto& x : inputs) expected_entries += x.size();
  CHECK(r.entries == expected_entries);
  CHECK(r.passed(tolerance));
}

Matrix<double> sigmoid_ref(const Matrix<double>& x) { return (1.0 / (1.0 + (-x.array()).exp())).matrix(); }

}  // namespace

TEST_CASE("ad: arithmetic and broadcasting match finite differences", "[ad]") {
  const Matrix<double> a = random_matrix(3, 4, 1), b = random_matrix(3, 4, 2), pos = random_matrix(3, 4, 3, 0, true);
  const Matrix<double> col = random_matrix(3, 1, 4), row = random_matrix(1, 4, 5), one = random_matrix(1, 1, 6);
  check("a+b", [](const Inputs& in) { return Matrix<double>(in[0] + in[1]); },
        [](Tape<double>&, const Vars& v) { return v[0] + v[1]; }, {a, b});
  check("a-b", [](const Inputs& in) { return Matrix<double>(in[0] - in[1]); },
        [](Tape<double>&, const Vars& v) { return v[0] - v[1]; }, {a, b});
  check("a*b", [](const Inputs& in) { return Matrix<double>(in[0].cwiseProduct(in[1])); },
        [](Tape<double>&, const Vars& v) { return v[0] * v[1]; }, {a, b});
  check("a/b", [](const Inputs& in) { return Matrix<double>(in[0].cwiseQuotient(in[1])); },
        [](Tape<double>&, const Vars& v) { return v[0] / v[1]; }, {a, pos});
  check("-a", [](const Inputs& in) { return Matrix<double>(-in[0]); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::neg(v[0]); }, {a});
  check("scalars", [](const Inputs& in) {
          return Matrix<double>(((in[0].array() + 1.5) * 2.0 - 0.5) / 4.0 + (3.0 - in[0].array()) * 0.25);
        },
        [](Tape<double>&, const Vars& v) { return ((v[0] + 1.5) * 2.0 - 0.5) / 4.0 + 0.25 * (3.0 - v[0]); }, {a});
  check("c/x and c*x", [](const Inputs& in) { return Matrix<double>(2.0 / in[0].array() + 3.0 * in[0].array()); },
        [](Tape<double>&, const Vars& v) { return 2.0 / v[0] + 3.0 * v[0] + 0.0; }, {pos});
  check("broadcast column * matrix", [](const Inputs& in) {
          return Matrix<double>(in[1].array().colwise() * in[0].col(0).array());
        },
        [](Tape<double>&, const Vars& v) { return v[0] * v[1]; }, {col, a});
  check("matrix / broadcast row", [](const Inputs& in) {
          return Matrix<double>(in[0].array().rowwise() / in[1].row(0).array());
        },
        [](Tape<double>&, const Vars& v) { return v[0] / v[1]; }, {a, random_matrix(1, 4, 7, 0, true)});
  check("1x1 - matrix", [](const Inputs& in) { return Matrix<double>(in[0](0, 0) - in[1].array()); },
        [](Tape<double>&, const Vars& v) { return v[0] - v[1]; }, {one, a});
  check("row + column -> matrix", [](const Inputs& in) {
          return Matrix<double>(in[1].replicate(1, 4) + in[0].replicate(3, 1));
        },
        [](Tape<double>&, const Vars& v) { return v[0] + v[1]; }, {row, col});
  check("broadcast_to", [](const Inputs& in) { return Matrix<double>(in[0].replicate(3, 1)); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::broadcast_to(v[0], 3, 4); }, {row});
}

TEST_CASE("ad: elementwise functions match finite differences", "[ad]") {
  // Away from the kinks of relu and abs by 0.05 ≫ h.
  const Matrix<double> x = random_matrix(4, 5, 11, 0.05), pos = random_matrix(4, 5, 12, 0, true);
  using dqs::ad::Var;
  check("relu", [](const Inputs& in) { return Matrix<double>(in[0].cwiseMax(0.0)); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::relu(v[0]); }, {x});
  check("silu", [](const Inputs& in) { return Matrix<double>(in[0].cwiseProduct(sigmoid_ref(in[0]))); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::silu(v[0]); }, {x});
  check("gelu (tanh form)", [](const Inputs& in) {
          const auto u = in[0].array();
          return Matrix<double>(0.5 * u * (1 + (std::sqrt(2 / std::numbers::pi) * (u + 0.044715 * u * u * u)).tanh()));
        },
        [](Tape<double>&, const Vars& v) { return dqs::ad::gelu(v[0]); }, {x});
  check("tanh", [](const Inputs& in) { return Matrix<double>(in[0].array().tanh()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::tanh(v[0]); }, {x});
  check("sigmoid", [](const Inputs& in) { return sigmoid_ref(in[0]); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::sigmoid(v[0]); }, {x});
  check("softplus", [](const Inputs& in) { return Matrix<double>((1 + in[0].array().exp()).log()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::softplus(v[0]); }, {x});
  check("softplus at large |x|", [](const Inputs& in) {
          return Matrix<double>(in[0].unaryExpr(
              [](double u) { return u > 0 ? u + std::log1p(std::exp(-u)) : std::log1p(std::exp(u)); }));
        },
        [](Tape<double>&, const Vars& v) { return dqs::ad::softplus(v[0]); }, {Matrix<double>(x * 40.0)});
  check("exp", [](const Inputs& in) { return Matrix<double>(in[0].array().exp()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::exp(v[0]); }, {x});
  check("log", [](const Inputs& in) { return Matrix<double>(in[0].array().log()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::log(v[0]); }, {pos});
  check("sqrt", [](const Inputs& in) { return Matrix<double>(in[0].array().sqrt()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::sqrt(v[0]); }, {pos});
  check("pow 2.5", [](const Inputs& in) { return Matrix<double>(in[0].array().pow(2.5)); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::pow(v[0], 2.5); }, {pos});
  check("pow -3", [](const Inputs& in) { return Matrix<double>(in[0].array().pow(-3.0)); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::pow(v[0], -3.0); }, {pos});
  check("square", [](const Inputs& in) { return Matrix<double>(in[0].array().square()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::square(v[0]); }, {x});
  check("abs", [](const Inputs& in) { return Matrix<double>(in[0].array().abs()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::abs(v[0]); }, {x});
  check("sin", [](const Inputs& in) { return Matrix<double>(in[0].array().sin()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::sin(v[0]); }, {x});
  check("cos", [](const Inputs& in) { return Matrix<double>(in[0].array().cos()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::cos(v[0]); }, {x});
}

TEST_CASE("ad: linear algebra and reductions match finite differences", "[ad]") {
  const Matrix<double> w = random_matrix(3, 4, 21), x = random_matrix(4, 5, 22), b = random_matrix(3, 1, 23);
  check("matmul", [](const Inputs& in) { return Matrix<double>(in[0] * in[1]); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::matmul(v[0], v[1]); }, {w, x});
  check("add_bias", [](const Inputs& in) { return Matrix<double>(in[0].colwise() + in[1].col(0)); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::add_bias(v[0], v[1]); }, {Matrix<double>(w * x), b});
  check("transpose", [](const Inputs& in) { return Matrix<double>(in[0].transpose()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::transpose(v[0]); }, {w});
  check("sum", [](const Inputs& in) { return Matrix<double>::Constant(1, 1, in[0].sum()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::sum(v[0]); }, {x});
  check("mean", [](const Inputs& in) { return Matrix<double>::Constant(1, 1, in[0].mean()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::mean(v[0]); }, {x});
  check("colwise_sum", [](const Inputs& in) { return Matrix<double>(in[0].colwise().sum()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::colwise_sum(v[0]); }, {x});
  check("rowwise_sum", [](const Inputs& in) { return Matrix<double>(in[0].rowwise().sum()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::rowwise_sum(v[0]); }, {x});
  check("colwise_mean", [](const Inputs& in) { return Matrix<double>(in[0].colwise().mean()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::colwise_mean(v[0]); }, {x});
  check("rowwise_mean", [](const Inputs& in) { return Matrix<double>(in[0].rowwise().mean()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::rowwise_mean(v[0]); }, {x});
  check("colwise_squared_norm", [](const Inputs& in) { return Matrix<double>(in[0].colwise().squaredNorm()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::colwise_squared_norm(v[0]); }, {x});
  // Log-sum-exp and softmax written naively (no max shift): fine at these magnitudes, and independent
  // of the shifted implementation.
  check("colwise_logsumexp", [](const Inputs& in) { return Matrix<double>(in[0].array().exp().colwise().sum().log()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::colwise_logsumexp(v[0]); }, {x});
  check("rowwise_logsumexp", [](const Inputs& in) { return Matrix<double>(in[0].array().exp().rowwise().sum().log()); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::rowwise_logsumexp(v[0]); }, {x});
  check("colwise_softmax", [](const Inputs& in) {
          const Matrix<double> e = in[0].array().exp();
          return Matrix<double>(e.array().rowwise() / e.colwise().sum().array());
        },
        [](Tape<double>&, const Vars& v) { return dqs::ad::colwise_softmax(v[0]); }, {x});
  check("rowwise_softmax", [](const Inputs& in) {
          const Matrix<double> e = in[0].array().exp();
          return Matrix<double>(e.array().colwise() / e.rowwise().sum().array());
        },
        [](Tape<double>&, const Vars& v) { return dqs::ad::rowwise_softmax(v[0]); }, {x});
}

TEST_CASE("ad: log-sum-exp and softmax stay finite at large magnitudes", "[ad]") {
  Tape<double> tape;
  Matrix<double> x(2, 2);
  x << 1000, -1000, 999, -1001;
  const auto v = tape.variable(x);
  const auto lse = dqs::ad::colwise_logsumexp(v);
  CHECK(lse.value()(0, 0) == Approx(1000 + std::log1p(std::exp(-1.0))).epsilon(1e-15));
  CHECK(lse.value()(0, 1) == Approx(-1000 + std::log1p(std::exp(-1.0))).epsilon(1e-15));
  tape.backward(lse);
  // ∂/∂x of log-sum-exp is the softmax: columns sum to 1. The backward pass forms exp(x − y) with
  // y ≈ 1000, whose rounding (ulp(1000) ≈ 1.1e-13) bounds the accuracy.
  CHECK((v.gradient().colwise().sum().array() - 1).abs().maxCoeff() < 1e-12);
  const auto sm = dqs::ad::colwise_softmax(v);
  CHECK(sm.value()(0, 0) == Approx(1 / (1 + std::exp(-1.0))).epsilon(1e-14));
  CHECK(sm.value().allFinite());
}

TEST_CASE("ad: structure and particle operations match finite differences", "[ad]") {
  const Matrix<double> a = random_matrix(2, 3, 31), b = random_matrix(4, 3, 32), c = random_matrix(1, 3, 33);
  check("concat_rows", [](const Inputs& in) {
          Matrix<double> out(7, 3);
          out << in[0], in[1], in[2];
          return out;
        },
        [](Tape<double>&, const Vars& v) { return dqs::ad::concat_rows({v[0], v[1], v[2]}); }, {a, b, c});
  check("slice_rows", [](const Inputs& in) { return Matrix<double>(in[0].middleRows(1, 2)); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::slice_rows(v[0], 1, 2); }, {b});
  check("slice_cols", [](const Inputs& in) { return Matrix<double>(in[0].middleCols(1, 2)); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::slice_cols(v[0], 1, 2); }, {b});
  check("slice then concat (reassembles x)", [](const Inputs& in) { return in[0]; },
        [](Tape<double>&, const Vars& v) {
          return dqs::ad::concat_rows({dqs::ad::slice_rows(v[0], 0, 1), dqs::ad::slice_rows(v[0], 1, 3)});
        },
        {b});

  // 4 particles in 3-D per column, 5 columns; reference by explicit loops in the documented pair order.
  const Matrix<double> particles = random_matrix(12, 5, 34);
  const auto pair_reference = [](const Matrix<double>& x, bool squared) {
    Matrix<double> out(6, x.cols());
    for (Index j = 0; j < x.cols(); ++j) {
      Index k = 0;
      for (Index p = 0; p < 4; ++p)
        for (Index q = p + 1; q < 4; ++q, ++k) {
          double s = 0;
          for (Index d = 0; d < 3; ++d) s += std::pow(x(3 * p + d, j) - x(3 * q + d, j), 2);
          out(k, j) = squared ? s : std::sqrt(s);
        }
    }
    return out;
  };
  check("pairwise_squared_distances", [&](const Inputs& in) { return pair_reference(in[0], true); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::pairwise_squared_distances(v[0], 3); }, {particles});
  check("pairwise_distances", [&](const Inputs& in) { return pair_reference(in[0], false); },
        [](Tape<double>&, const Vars& v) { return dqs::ad::pairwise_distances(v[0], 3); }, {particles});
}

TEST_CASE("ad: a composite (2-layer network with a softmax loss) matches finite differences", "[ad]") {
  const Matrix<double> w1 = random_matrix(5, 3, 41) * 0.5, b1 = random_matrix(5, 1, 42), w2 = random_matrix(4, 5, 43);
  const Matrix<double> x = random_matrix(3, 6, 44);
  check("mlp + logsumexp loss",
        [&](const Inputs& in) {
          const Matrix<double> h = ((in[0] * x).colwise() + in[1].col(0)).array().tanh();
          const Matrix<double> z = in[2] * h;
          return Matrix<double>::Constant(1, 1, z.array().exp().colwise().sum().log().sum() - z.row(0).sum());
        },
        [&](Tape<double>& t, const Vars& v) {
          const auto h = dqs::ad::tanh(dqs::ad::add_bias(dqs::ad::matmul(v[0], t.constant(x)), v[1]));
          const auto z = dqs::ad::matmul(v[2], h);
          return dqs::ad::sum(dqs::ad::colwise_logsumexp(z)) - dqs::ad::sum(dqs::ad::slice_rows(z, 0, 1));
        },
        {w1, b1, w2});
}

TEMPLATE_TEST_CASE("ad: float and double tapes agree", "[ad]", float, double) {
  using S = TestType;
  const Matrix<double> w = random_matrix(6, 4, 51) * 0.5, x = random_matrix(4, 8, 52);
  const auto run = [&](auto scalar) {
    using T = decltype(scalar);
    Tape<T> tape;
    const auto wv = tape.variable(w.cast<T>());
    const auto y = dqs::ad::colwise_logsumexp(dqs::ad::silu(dqs::ad::matmul(wv, tape.constant(x.cast<T>()))));
    tape.backward(y);
    return std::pair<Matrix<double>, Matrix<double>>(y.value().template cast<double>(),
                                                    wv.gradient().template cast<double>());
  };
  const auto [y_s, g_s] = run(S{});
  const auto [y_d, g_d] = run(double{});
  // float rounding: relative error of a few ulps (6e-8 each) through ~10 operations per entry.
  const double tol = std::is_same_v<S, float> ? 1e-5 : 1e-14;
  CHECK((y_s - y_d).cwiseAbs().maxCoeff() <= tol * (1 + y_d.cwiseAbs().maxCoeff()));
  CHECK((g_s - g_d).cwiseAbs().maxCoeff() <= tol * (1 + g_d.cwiseAbs().maxCoeff()));
}

TEST_CASE("ad: one record per operation, each run once per backward", "[ad]") {
  Tape<double> tape;
  const auto x = tape.variable(Matrix<double>::Constant(1, 1, 0.3));
  // y_{k+1} = ½y_k·y_k + ½y_k uses y_k twice: a per-scalar tree walked recursively would visit 2^depth
  // paths; the record is walked once. dy_{k+1}/dy_k = y_k + ½. (A contraction with relative condition
  // number ≈ 1, so the plain-double recursion below matches the tape to rounding.)
  Var<double> y = x;
  double value = 0.3, derivative = 1.0;
  const int depth = 40;
  for (int k = 0; k < depth; ++k) {
    y = y * y * 0.5 + y * 0.5;
    derivative *= value + 0.5;
    value = value * value * 0.5 + value * 0.5;
  }
  const std::size_t records = tape.num_records();
  CHECK(records == tape.num_nodes() - 1);  // every node but the leaf came from one recorded op

  int runs = 0;
  int* counter = &runs;
  const auto counted = tape.make(1, 1, true);
  counted.mutable_value() = y.value();
  tape.record([y, counted, counter] {
    ++*counter;
    y.mutable_adjoint() += counted.gradient();
  });
  tape.backward(counted);
  CHECK(runs == 1);
  CHECK(y.value()(0, 0) == Approx(value).epsilon(1e-12));
  CHECK(x.gradient()(0, 0) == Approx(derivative).epsilon(1e-12));
  // A second backward over the same record gives the same gradient (adjoints are re-zeroed).
  tape.backward(counted);
  CHECK(runs == 2);
  CHECK(x.gradient()(0, 0) == Approx(derivative).epsilon(1e-12));
}

TEST_CASE("ad: constants record nothing and have no gradient", "[ad]") {
  Tape<double> tape;
  const auto c = tape.constant(random_matrix(3, 3, 61));
  const auto y = dqs::ad::exp(dqs::ad::matmul(c, c));
  CHECK(tape.num_records() == 0);
  CHECK_FALSE(y.requires_grad());
  CHECK_THROWS_AS(c.gradient(), std::invalid_argument);
  CHECK_THROWS_AS(tape.backward(y), std::invalid_argument);
  // Mixing: only the variable's path records, and the constant's GEMM is skipped in backward.
  const auto v = tape.variable(random_matrix(3, 3, 62));
  const auto z = dqs::ad::sum(dqs::ad::matmul(c, v));
  tape.backward(z);
  // ∂ Σ(CV)/∂V = Cᵀ 1 1ᵀ: every column of the gradient holds the column sums of C.
  const Matrix<double> expected = c.value().colwise().sum().transpose().replicate(1, 3);
  CHECK((v.gradient() - expected).cwiseAbs().maxCoeff() < 1e-14);
}

TEST_CASE("ad: backward only reaches what the output depends on", "[ad]") {
  Tape<double> tape;
  const auto x = tape.variable(random_matrix(2, 2, 71));
  const auto y = dqs::ad::sum(dqs::ad::square(x));
  const auto later = dqs::ad::sum(dqs::ad::exp(x));  // created after y: must not leak into y's gradient
  (void)later;
  tape.backward(y);
  CHECK((x.gradient() - 2 * x.value()).cwiseAbs().maxCoeff() < 1e-15);
}

TEST_CASE("ad: reset keeps the memory and repeated gradients do not grow it", "[ad]") {
  Tape<float> tape;
  const Matrix<float> w = random_matrix(64, 64, 81).cast<float>();
  const Matrix<float> x = random_matrix(64, 128, 82).cast<float>();
  std::vector<std::size_t> capacity;
  Matrix<float> first_gradient;
  for (int rep = 0; rep < 6; ++rep) {
    tape.reset();
    const auto wv = tape.variable(w);
    auto h = tape.constant(x);
    for (int layer = 0; layer < 4; ++layer) h = dqs::ad::silu(dqs::ad::matmul(wv, h));
    tape.backward(dqs::ad::mean(h));
    if (rep == 0) first_gradient = wv.gradient();
    CHECK(wv.gradient() == first_gradient);  // reset leaves no state behind: bit-identical
    capacity.push_back(tape.arena_capacity());
  }
  // The first pass may grow the arena in several blocks; reset merges them into one, after which
  // every pass fits without allocating.
  CHECK(tape.arena_blocks() == 1);
  for (std::size_t k = 1; k < capacity.size(); ++k) CHECK(capacity[k] == capacity[1]);
  CHECK(capacity[1] >= capacity[0]);
}

TEST_CASE("ad: invalid use is reported as invalid_argument", "[ad]") {
  Tape<double> tape, other;
  const auto a = tape.variable(Matrix<double>::Ones(2, 3));
  const auto b = tape.variable(Matrix<double>::Ones(4, 2));
  CHECK_THROWS_AS(dqs::ad::matmul(a, a), std::invalid_argument);
  CHECK_THROWS_AS(a + b, std::invalid_argument);
  CHECK_THROWS_AS(a * tape.variable(Matrix<double>::Ones(3, 3)), std::invalid_argument);
  CHECK_THROWS_AS(dqs::ad::add_bias(a, tape.variable(Matrix<double>::Ones(3, 1))), std::invalid_argument);
  CHECK_THROWS_AS(dqs::ad::concat_rows({a, b}), std::invalid_argument);
  CHECK_THROWS_AS(dqs::ad::slice_rows(a, 1, 2), std::invalid_argument);
  CHECK_THROWS_AS(dqs::ad::slice_cols(a, -1, 1), std::invalid_argument);
  CHECK_THROWS_AS(dqs::ad::broadcast_to(b, 4, 3), std::invalid_argument);
  CHECK_THROWS_AS(dqs::ad::pairwise_distances(a, 4), std::invalid_argument);
  CHECK_THROWS_AS(dqs::ad::pairwise_squared_distances(tape.variable(Matrix<double>::Ones(3, 2)), 3),
                  std::invalid_argument);  // a single particle has no pairs
  CHECK_THROWS_AS(a + other.variable(Matrix<double>::Ones(2, 3)), std::invalid_argument);
  CHECK_THROWS_AS(tape.backward(a, Matrix<double>::Ones(3, 2)), std::invalid_argument);
  CHECK_THROWS_AS(other.backward(a), std::invalid_argument);
  CHECK_THROWS_AS(Var<double>().rows(), std::invalid_argument);
  tape.reset();
  CHECK_THROWS_AS(a.value(), std::invalid_argument);  // stale handle after reset
  try {
    (void)dqs::ad::matmul(tape.variable(Matrix<double>::Ones(2, 3)), tape.variable(Matrix<double>::Ones(2, 3)));
    FAIL("no exception");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).rfind("dqs: ad::matmul", 0) == 0);
  }
}
