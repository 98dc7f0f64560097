// Adam and AdamW on a flat parameter vector, with global gradient-norm clipping (PyTorch semantics):
// g ← g·min(1, c/(‖g‖+1e-6)); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
// θ ← θ − lr·(m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε), weight decay as L2 (Adam) or decoupled θ ← θ(1 − lr·λ) (AdamW).
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/nn/serialize.hpp"
#include "dqs/types.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>

namespace dqs::train {

struct AdamConfig {
  double learning_rate = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
  double weight_decay = 0.0;            // λ
  bool decoupled_weight_decay = false;  // true: AdamW
  double max_gradient_norm = 0.0;       // clip the global L2 norm to this; 0 = no clipping
};

template <Real S>
class Adam {
 public:
  using Scalar = S;
  static constexpr const char* archive_kind = "dqs.train.Adam";

  Adam(Index num_parameters, AdamConfig config = {}) : config_(config) {
    dqs::detail::require(num_parameters > 0, "train::Adam: num_parameters must be > 0, got ", num_parameters);
    validate(config_);
    m_ = Vector<S>::Zero(num_parameters);
    v_ = Vector<S>::Zero(num_parameters);
  }

  // One update of `parameters` from `gradient` (not modified); returns ‖gradient‖₂ before clipping.
  // A non-finite gradient is rejected (std::invalid_argument) before any state changes.
  S step(Eigen::Ref<Vector<S>> parameters, ConstValuesRef<S> gradient) {
    dqs::detail::require(parameters.size() == m_.size() && gradient.size() == m_.size(), "train::Adam::step: ",
                         parameters.size(), " parameters and ", gradient.size(), " gradient entries, expected ",
                         m_.size());
    const double norm = global_norm(gradient);
    dqs::detail::require(std::isfinite(norm), "train::Adam::step: the gradient is not finite (norm ", norm, ")");
    S scale = S(1);
    if (config_.max_gradient_norm > 0 && norm > config_.max_gradient_norm)
      scale = static_cast<S>(config_.max_gradient_norm / (norm + 1e-6));
    ++steps_;
    const double t = static_cast<double>(steps_);
    const S lr = static_cast<S>(config_.learning_rate);
    const S b1 = static_cast<S>(config_.beta1), b2 = static_cast<S>(config_.beta2);
    const S step_size = static_cast<S>(config_.learning_rate / (1.0 - std::pow(config_.beta1, t)));
    const S inv_sqrt_bc2 = static_cast<S>(1.0 / std::sqrt(1.0 - std::pow(config_.beta2, t)));
    const S eps = static_cast<S>(config_.epsilon);
    const S decay = static_cast<S>(config_.weight_decay);
    const bool l2 = decay != S(0) && !config_.decoupled_weight_decay;
    const S shrink = decay != S(0) && config_.decoupled_weight_decay ? S(1) - lr * decay : S(1);

    // One pass in L1-sized chunks: the four arrays are read once and written once (three separate
    // whole-vector Eigen statements would stream them from L2/L3 three times).
    const Index n = m_.size();
    for (Index start = 0; start < n; start += chunk) {
      const Index k = std::min(chunk, n - start);
      auto p = parameters.segment(start, k).array();
      auto m = m_.segment(start, k).array();
      auto v = v_.segment(start, k).array();
      const auto g = gradient.segment(start, k).array() * scale;
      if (l2) {
        m = b1 * m + (S(1) - b1) * (g + decay * p);
        v = b2 * v + (S(1) - b2) * (g + decay * p).square();
      } else {
        m = b1 * m + (S(1) - b1) * g;
        v = b2 * v + (S(1) - b2) * g.square();
      }
      if (shrink != S(1)) p *= shrink;
      p -= step_size * m / (v.sqrt() * inv_sqrt_bc2 + eps);
    }
    return static_cast<S>(norm);
  }

  const AdamConfig& config() const { return config_; }
  void set_learning_rate(double learning_rate) {
    dqs::detail::require_positive("train::Adam: learning_rate", learning_rate);
    config_.learning_rate = learning_rate;
  }
  std::uint64_t steps() const { return steps_; }
  Index num_parameters() const { return m_.size(); }
  const Vector<S>& first_moment() const { return m_; }
  const Vector<S>& second_moment() const { return v_; }
  // Forget the moments and the step count (keeps the configuration).
  void reset() {
    m_.setZero();
    v_.setZero();
    steps_ = 0;
  }

  // Save / load the whole state (configuration, step count, moments): a run resumed from it
  // continues bit-identically.
  void save(const std::filesystem::path& path) const {
    nn::ArchiveWriter w(archive_kind);
    write(w);
    w.save(path);
  }
  void load(const std::filesystem::path& path) {
    nn::ArchiveReader r(path, archive_kind);
    read(r);
    r.finish();
  }
  void write(nn::ArchiveWriter& w) const {
    w.write_u64(sizeof(S));
    w.write_u64(static_cast<std::uint64_t>(m_.size()));
    w.write_f64(config_.learning_rate);
    w.write_f64(config_.beta1);
    w.write_f64(config_.beta2);
    w.write_f64(config_.epsilon);
    w.write_f64(config_.weight_decay);
    w.write_u64(config_.decoupled_weight_decay ? 1 : 0);
    w.write_f64(config_.max_gradient_norm);
    w.write_u64(steps_);
    w.write_array(m_.data(), static_cast<std::size_t>(m_.size()));
    w.write_array(v_.data(), static_cast<std::size_t>(v_.size()));
  }
  // Requires the same number of parameters; everything else is taken from the archive.
  void read(nn::ArchiveReader& r) {
    const std::uint64_t scalar = r.read_u64("scalar size");
    if (scalar != sizeof(S))
      r.fail("stores ", scalar * 8, "-bit optimiser state, this optimiser is ", sizeof(S) * 8, "-bit");
    const std::uint64_t n = r.read_u64("number of parameters");
    if (n != static_cast<std::uint64_t>(m_.size()))
      r.fail("optimiser state for ", n, " parameters, this optimiser has ", m_.size());
    AdamConfig c;
    c.learning_rate = r.read_f64("learning_rate");
    c.beta1 = r.read_f64("beta1");
    c.beta2 = r.read_f64("beta2");
    c.epsilon = r.read_f64("epsilon");
    c.weight_decay = r.read_f64("weight_decay");
    c.decoupled_weight_decay = r.read_u64("decoupled_weight_decay") != 0;
    c.max_gradient_norm = r.read_f64("max_gradient_norm");
    try {
      validate(c);
    } catch (const std::invalid_argument& e) {
      r.fail("invalid optimiser configuration (", e.what(), ")");
    }
    const std::uint64_t steps = r.read_u64("step count");
    Vector<S> m(m_.size()), v(v_.size());
    r.read_array(m.data(), static_cast<std::size_t>(m.size()), "first moment");
    r.read_array(v.data(), static_cast<std::size_t>(v.size()), "second moment");
    config_ = c;
    steps_ = steps;
    m_ = m;
    v_ = v;
  }

 private:
  static constexpr Index chunk = 512;

  // ‖g‖₂ from per-chunk sums of squares (in S, vectorised) accumulated in double: a float gradient
  // overflows only when entries reach ~1e17, and a whole-vector cast to double would not vectorise.
  static double global_norm(ConstValuesRef<S> g) {
    double sum = 0;
    for (Index start = 0; start < g.size(); start += chunk)
      sum += static_cast<double>(g.segment(start, std::min(chunk, g.size() - start)).squaredNorm());
    return std::sqrt(sum);
  }

  static void validate(const AdamConfig& c) {
    dqs::detail::require_positive("train::Adam: learning_rate", c.learning_rate);
    dqs::detail::require(c.beta1 >= 0 && c.beta1 < 1, "train::Adam: beta1 must be in [0, 1), got ", c.beta1);
    dqs::detail::require(c.beta2 >= 0 && c.beta2 < 1, "train::Adam: beta2 must be in [0, 1), got ", c.beta2);
    dqs::detail::require_positive("train::Adam: epsilon", c.epsilon);
    dqs::detail::require(std::isfinite(c.weight_decay) && c.weight_decay >= 0,
                         "train::Adam: weight_decay must be finite and >= 0, got ", c.weight_decay);
    dqs::detail::require(std::isfinite(c.max_gradient_norm) && c.max_gradient_norm >= 0,
                         "train::Adam: max_gradient_norm must be finite and >= 0, got ", c.max_gradient_norm);
  }

  AdamConfig config_;
  Vector<S> m_;
  Vector<S> v_;
  std::uint64_t steps_ = 0;
};

// AdamW: Adam with decoupled weight decay, whatever config.decoupled_weight_decay says. The decay
// is config.weight_decay (AdamConfig's default is 0; PyTorch's AdamW default is 0.01).
template <Real S>
class AdamW : public Adam<S> {
 public:
  AdamW(Index num_parameters, AdamConfig config) : Adam<S>(num_parameters, decoupled(config)) {}

 private:
  static AdamConfig decoupled(AdamConfig c) {
    c.decoupled_weight_decay = true;
    return c;
  }
};

}  // namespace dqs::train
