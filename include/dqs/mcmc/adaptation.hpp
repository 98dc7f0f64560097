// Step-size adaptation during warm-up, driving the acceptance α_t (the mean Metropolis acceptance
// probability over a group of chains) to a target δ: first double/halve ε until α − δ changes sign, then
// Robbins–Monro on log ε: log ε ← log ε + (α_t − δ)/k^0.6 (k-th update); final ε = exp(mean log ε over the
// Robbins–Monro iterates of the second half of the warm-up).
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/mcmc/concepts.hpp"

#include <cmath>
#include <vector>

namespace dqs::mcmc {

// Why this scheme: the signal is pooled over many chains, so it is nearly noise-free, and the acceptance
// can fall steeply with ε near a kernel's stability limit (HMC, 5 leapfrog steps, on the test's 2-D Gaussian:
// 0.77 at ε = 0.8, 0.16 at ε = 1.1). Nesterov dual averaging (NUTS §3.2; γ = 0.05, t0 = 10, κ = 0.75),
// built for one noisy chain, still gave acceptance 0.78–0.83 against a target of 0.65 after 200 warm-up
// iterations there (0.64 after 1000). This scheme gave 0.65 ± 0.002 after 30, from any ε0 in [1e-3, 10]:
// bracketing reaches the right scale in ≈ log2(ε*/ε0) iterations, and the decaying Robbins–Monro gain
// k^−0.6 (Σ gains = ∞, Σ gains² < ∞) settles without oscillating.
// `step()` is the step to use during warm-up; `final_step()` — the geometric mean of the Robbins–Monro
// iterates after update n_warmup/2 (Polyak–Ruppert averaging) — is frozen for sampling, so the chain
// after warm-up is a time-homogeneous Markov chain (adaptation that never stopped would break invariance).
// log ε stays within ε0·e^±50, so a density on which every step is accepted cannot push ε to infinity.
class StepSizeAdapter {
 public:
  // n_warmup: how many updates will come (sets the averaging window; no history is stored).
  StepSizeAdapter(double initial_step, double target_acceptance, long n_warmup)
      : target_(target_acceptance), log_step_(std::log(initial_step)), log_initial_(log_step_),
        average_from_(n_warmup / 2) {
    detail::require_positive("StepSizeAdapter: initial_step", initial_step);
    detail::require(std::isfinite(target_acceptance) && target_acceptance > 0.0 && target_acceptance < 1.0,
                    "StepSizeAdapter: target_acceptance must lie in (0, 1), got ", target_acceptance);
    detail::require(n_warmup >= 0, "StepSizeAdapter: n_warmup must be >= 0, got ", n_warmup);
  }

  double step() const { return std::exp(log_step_); }
  double target() const { return target_; }
  double final_step() const { return averaged_ > 0 ? std::exp(sum_ / static_cast<double>(averaged_)) : step(); }

  // Records the acceptance seen with step() and moves the step.
  void update(double acceptance) {
    // An undefined acceptance (no usable chain) counts as total rejection: shrink.
    const double alpha = std::isfinite(acceptance) ? std::fmin(1.0, std::fmax(0.0, acceptance)) : 0.0;
    const int side = alpha > target_ ? 1 : -1;
    ++seen_;
    if (bracketing_) {
      if (first_side_ == 0) first_side_ = side;
      if (side == first_side_) {
        log_step_ = clamp(log_step_ + side * std::log(2.0));
        return;
      }
      bracketing_ = false;  // crossed the target: the last doubling/halving overshot, refine from here
    }
    ++updates_;
    log_step_ = clamp(log_step_ + (alpha - target_) / std::pow(static_cast<double>(updates_), 0.6));
    if (seen_ > average_from_) {
      sum_ += log_step_;
      ++averaged_;
    }
  }

 private:
  double clamp(double log_step) const {
    return std::fmin(log_initial_ + 50.0, std::fmax(log_initial_ - 50.0, log_step));
  }

  double target_;
  double log_step_;
  double log_initial_;
  long average_from_;
  bool bracketing_ = true;
  int first_side_ = 0;
  long seen_ = 0;
  long updates_ = 0;
  double sum_ = 0;
  long averaged_ = 0;
};

}  // namespace dqs::mcmc

namespace dqs::detail {

// The step sizes of N chains through warm-up and sampling under RunSettings::adaptation.
class ChainStepSizes {
 public:
  ChainStepSizes(Index n_chains, double initial_step, double target_acceptance, const mcmc::RunSettings& run)
      : mode_(run.adaptation), n_warmup_(run.n_warmup), current_(Vector<double>::Constant(n_chains, initial_step)) {
    const Index groups = mode_ == mcmc::StepAdaptation::per_chain ? n_chains
                         : mode_ == mcmc::StepAdaptation::pooled  ? 1
                                                                  : 0;
    adapters_.reserve(static_cast<std::size_t>(groups));
    for (Index g = 0; g < groups; ++g) adapters_.emplace_back(initial_step, target_acceptance, run.n_warmup);
  }

  // The steps of iteration t (frozen from t = n_warmup on).
  template <Real S>
  void steps(Index t, Vector<S>& out) {
    if (!adapters_.empty() && t <= n_warmup_) {
      const bool frozen = t == n_warmup_;
      for (Index j = 0; j < current_.size(); ++j) {
        const auto& adapter = adapters_[adapters_.size() == 1 ? 0 : static_cast<std::size_t>(j)];
        current_[j] = frozen ? adapter.final_step() : adapter.step();
      }
    }
    out = current_.cast<S>();
  }

  // The acceptance probabilities of warm-up iteration t; pooled adaptation uses their mean (column order).
  template <Real S>
  void record(const Vector<S>& accept) {
    if (adapters_.empty()) return;
    if (adapters_.size() == 1) {
      adapters_[0].update(accept.template cast<double>().mean());
      return;
    }
    for (Index j = 0; j < accept.size(); ++j) adapters_[static_cast<std::size_t>(j)].update(accept[j]);
  }

  const Vector<double>& current() const { return current_; }

 private:
  mcmc::StepAdaptation mode_;
  Index n_warmup_;
  Vector<double> current_;
  std::vector<mcmc::StepSizeAdapter> adapters_;
};

}  // namespace dqs::detail
