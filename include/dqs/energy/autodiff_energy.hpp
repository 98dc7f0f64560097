// An energy written once over the autodiff tape, with an exact gradient: f(tape, x) maps a D×N batch
// (an ad::Var) to a 1×N row of energies; one backward pass of Σ_j E(x_j) yields every ∇E(x_j) at
// once, because column j's energy depends on column j only (∂E_k/∂x_j = 0 for k ≠ j).
#pragma once

#include "dqs/ad/ops.hpp"
#include "dqs/detail/check.hpp"
#include "dqs/energy/concepts.hpp"

#include <concepts>
#include <type_traits>
#include <utility>

namespace dqs {

// f is called as f(tape, x) (or f(x) if that is how it is written), with ad::Tape<S>& tape and
// ad::Var<S> x (D×N), and returns the 1×N ad::Var of energies. It must treat columns independently
// (no batch means or sums across samples) and hold no mutable state: calls run concurrently.
// Each call evaluates on its own tape, so the energy is thread-safe like every dqs energy.
template <Real S, class F>
class AutodiffEnergy {
 public:
  using Scalar = S;

  AutodiffEnergy(Index dim, F f) : dim_(dim), f_(std::move(f)) {
    detail::require(dim > 0, "AutodiffEnergy: dim must be > 0, got ", dim);
  }

  Index dim() const { return dim_; }
  const F& function() const { return f_; }

  void energy(ConstBatchRef<S> x, ValuesRef<S> values) const {
    ad::Tape<S> tape;
    energy(x, values, tape);
  }
  void energy_and_gradient(ConstBatchRef<S> x, ValuesRef<S> values, BatchRef<S> grad) const {
    ad::Tape<S> tape;
    energy_and_gradient(x, values, grad, tape);
  }

  // The same with a caller-owned tape (reset here), to keep its memory across calls on one thread.
  void energy(ConstBatchRef<S> x, ValuesRef<S> values, ad::Tape<S>& tape) const {
    check("energy", x, values);
    tape.reset();
    // x as a constant: the forward pass records no backward steps.
    const ad::Var<S> e = evaluate(tape, tape.constant(x));
    values = e.value().row(0).transpose();
  }
  void energy_and_gradient(ConstBatchRef<S> x, ValuesRef<S> values, BatchRef<S> grad, ad::Tape<S>& tape) const {
    check("energy_and_gradient", x, values);
    detail::require(grad.rows() == x.rows() && grad.cols() == x.cols(), "AutodiffEnergy::energy_and_gradient: grad is ",
                    grad.rows(), "x", grad.cols(), ", expected ", x.rows(), "x", x.cols());
    tape.reset();
    const ad::Var<S> xv = tape.variable(x);
    const ad::Var<S> e = evaluate(tape, xv);
    values = e.value().row(0).transpose();
    if (e.requires_grad()) {
      tape.backward(e);  // seeds ones: the gradient of Σ_j E_j
      grad = xv.gradient();
    } else {
      grad.setZero();  // an energy that does not depend on x
    }
  }

 private:
  void check(const char* where, ConstBatchRef<S> x, ValuesRef<S> values) const {
    detail::require(x.rows() == dim_, "AutodiffEnergy::", where, ": x has ", x.rows(), " rows, expected ", dim_);
    detail::require(values.size() == x.cols(), "AutodiffEnergy::", where, ": values has ", values.size(),
                    " entries for ", x.cols(), " points");
  }

  ad::Var<S> evaluate(ad::Tape<S>& tape, ad::Var<S> x) const {
    ad::Var<S> e;
    if constexpr (std::is_invocable_v<const F&, ad::Tape<S>&, ad::Var<S>>)
      e = f_(tape, x);
    else
      e = f_(x);
    detail::require(&e.tape() == &tape, "AutodiffEnergy: the function returned a node of another tape");
    detail::require(e.rows() == 1 && e.cols() == x.cols(), "AutodiffEnergy: the function must return 1x", x.cols(),
                    " energies, got ", e.rows(), "x", e.cols());
    return e;
  }

  Index dim_;
  F f_;
};

template <Real S, class F>
AutodiffEnergy<S, std::decay_t<F>> make_autodiff_energy(Index dim, F&& f) {
  return AutodiffEnergy<S, std::decay_t<F>>(dim, std::forward<F>(f));
}

namespace detail {
// E(x) = ½‖x‖², only to state the concept check below.
struct HalfSquaredNorm {
  template <Real S>
  ad::Var<S> operator()(ad::Tape<S>&, ad::Var<S> x) const {
    return ad::colwise_squared_norm(x) * S(0.5);
  }
};
}  // namespace detail
static_assert(DifferentiableEnergy<AutodiffEnergy<float, detail::HalfSquaredNorm>>);
static_assert(DifferentiableEnergy<AutodiffEnergy<double, detail::HalfSquaredNorm>>);

}  // namespace dqs
