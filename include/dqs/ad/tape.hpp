// Reverse-mode autodiff over whole matrices (Stan-Math style, without a global tape): every node's
// value and adjoint are Eigen matrices in the tape's arena, every operation records one backward
// step, and backward() runs the record once in reverse creation order: x̄ += (∂y/∂x)ᵀ ȳ.
#pragma once

#include "dqs/ad/arena.hpp"
#include "dqs/detail/check.hpp"
#include "dqs/types.hpp"

#include <cstdint>
#include <limits>
#include <new>
#include <type_traits>
#include <vector>

namespace dqs::ad {

template <Real S>
class Tape;

// A handle to one node of a tape: 16 bytes, copied by value, valid until the tape's next reset().
// All operations (dqs/ad/ops.hpp) take and return Var.
template <Real S>
class Var {
 public:
  using Scalar = S;
  using Map = Eigen::Map<Matrix<S>>;
  using ConstMap = Eigen::Map<const Matrix<S>>;

  Var() = default;

  Index rows() const { return node().rows; }
  Index cols() const { return node().cols; }
  Index size() const { return node().rows * node().cols; }
  bool requires_grad() const { return node().adjoint != nullptr; }
  Tape<S>& tape() const {
    check();
    return *tape_;
  }

  // The forward value.
  ConstMap value() const { return ConstMap(node().value, node().rows, node().cols); }
  // After tape.backward(y): ∂(Σ seed ∘ y)/∂(this). Only for nodes that require a gradient.
  ConstMap gradient() const { return ConstMap(adjoint_ptr(), node().rows, node().cols); }

  // For operation authors: the value to fill in the forward pass, the adjoint to accumulate into.
  Map mutable_value() const { return Map(node().value, node().rows, node().cols); }
  Map mutable_adjoint() const { return Map(adjoint_ptr(), node().rows, node().cols); }

  std::uint32_t id() const { return id_; }

 private:
  friend class Tape<S>;
  Var(Tape<S>* tape, std::uint32_t id, std::uint32_t generation) : tape_(tape), id_(id), generation_(generation) {}

  void check() const;
  const auto& node() const;
  S* adjoint_ptr() const {
    S* a = node().adjoint;
    if (a == nullptr) dqs::detail::fail("ad::Var: node ", id_, " is a constant and has no gradient");
    return a;
  }

  Tape<S>* tape_ = nullptr;
  std::uint32_t id_ = 0;
  std::uint32_t generation_ = 0;
};

// The record of one forward computation. Not copyable, not shared between threads (make one per
// thread or per call: construction is cheap, and reset() keeps the memory for the next gradient).
template <Real S>
class Tape {
 public:
  using Scalar = S;

  explicit Tape(std::size_t initial_bytes = 0) : arena_(initial_bytes) {}
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  // A leaf whose gradient is wanted (a parameter or an input to differentiate by).
  Var<S> variable(const Eigen::Ref<const Matrix<S>>& value) { return leaf(value, true); }
  // A leaf without a gradient (data); operations on constants only record nothing.
  Var<S> constant(const Eigen::Ref<const Matrix<S>>& value) { return leaf(value, false); }
  Var<S> variable(S value) { return leaf(Matrix<S>::Constant(1, 1, value), true); }
  Var<S> constant(S value) { return leaf(Matrix<S>::Constant(1, 1, value), false); }

  // Gradient of Σ_ij y_ij: seeds ȳ = 1 (so a 1×N row of per-sample energies yields all N per-sample
  // gradients at once), then runs the backward steps recorded up to y's creation, newest first.
  void backward(Var<S> output) {
    prepare_backward(output);
    output.mutable_adjoint().setOnes();
    run_backward(output);
  }
  // Vector–Jacobian product: gradients of Σ_ij seed_ij y_ij.
  void backward(Var<S> output, const Eigen::Ref<const Matrix<S>>& seed) {
    prepare_backward(output);
    dqs::detail::require(seed.rows() == output.rows() && seed.cols() == output.cols(), "ad::Tape::backward: seed is ",
                    seed.rows(), "x", seed.cols(), " but the output is ", output.rows(), "x", output.cols());
    output.mutable_adjoint() = seed;
    run_backward(output);
  }

  // Drops all nodes and records; keeps the memory. Every Var of this tape becomes invalid.
  void reset() {
    nodes_.clear();
    records_.clear();
    arena_.reset();
    ++generation_;
  }

  std::size_t num_nodes() const { return nodes_.size(); }
  std::size_t num_records() const { return records_.size(); }
  // Bytes the arena holds from the system (nodes' values and adjoints, backward closures).
  std::size_t arena_capacity() const { return arena_.capacity(); }
  std::size_t arena_blocks() const { return arena_.num_blocks(); }

  // ---- for operation authors ----
  // A new node of the given shape with an uninitialised value; requires_grad ⇒ it gets an adjoint.
  Var<S> make(Index rows, Index cols, bool requires_grad) {
    dqs::detail::require(rows >= 0 && cols >= 0, "ad::Tape: negative shape ", rows, "x", cols);
    dqs::detail::require(nodes_.size() < std::numeric_limits<std::uint32_t>::max(), "ad::Tape: too many nodes");
    const auto n = static_cast<std::size_t>(rows * cols);
    Node node{arena_.allocate_array<S>(n), requires_grad ? arena_.allocate_array<S>(n) : nullptr, rows, cols,
              static_cast<std::uint32_t>(records_.size())};
    nodes_.push_back(node);
    return Var<S>(this, static_cast<std::uint32_t>(nodes_.size() - 1), generation_);
  }

  // Records the backward step of the operation that created the newest node. `step` is a callable
  // without arguments, trivially copyable (it captures Vars, shapes and scalars): it is copied into
  // the arena and never destroyed.
  template <class Step>
  void record(const Step& step) {
    static_assert(std::is_trivially_copyable_v<Step> && std::is_trivially_destructible_v<Step>,
                  "ad::Tape::record: a backward step may capture only trivially copyable values");
    void* storage = arena_.allocate(sizeof(Step), alignof(Step));
    ::new (storage) Step(step);
    records_.push_back(Record{[](const void* s) { (*static_cast<const Step*>(s))(); }, storage});
    nodes_.back().record_end = static_cast<std::uint32_t>(records_.size());
  }

  // Scratch memory valid until reset() (e.g. an operation's list of inputs).
  template <class T>
  T* scratch(std::size_t n) {
    static_assert(std::is_trivially_copyable_v<T>);
    return arena_.allocate_array<T>(n);
  }

 private:
  friend class Var<S>;

  struct Node {
    S* value;
    S* adjoint;  // nullptr for constants
    Index rows;
    Index cols;
    // Records before this index are all that can reach the node in backward.
    std::uint32_t record_end;
  };
  struct Record {
    void (*run)(const void*);
    const void* step;
  };

  Var<S> leaf(const Eigen::Ref<const Matrix<S>>& value, bool requires_grad) {
    Var<S> v = make(value.rows(), value.cols(), requires_grad);
    v.mutable_value() = value;
    return v;
  }

  void prepare_backward(Var<S> output) {
    output.check();
    dqs::detail::require(output.tape_ == this, "ad::Tape::backward: the output belongs to another tape");
    dqs::detail::require(output.requires_grad(),
                    "ad::Tape::backward: the output does not depend on any variable (all inputs are constants)");
    // The records that run belong to nodes up to the output; zero exactly their adjoints (later
    // nodes keep stale adjoints, which no record that runs reads).
    for (std::size_t i = 0; i <= output.id_; ++i) {
      Node& n = nodes_[i];
      if (n.adjoint != nullptr) Eigen::Map<Matrix<S>>(n.adjoint, n.rows, n.cols).setZero();
    }
  }

  void run_backward(Var<S> output) {
    for (std::size_t r = nodes_[output.id_].record_end; r-- > 0;) records_[r].run(records_[r].step);
  }

  Arena arena_;
  std::vector<Node> nodes_;
  std::vector<Record> records_;
  std::uint32_t generation_ = 1;
};

template <Real S>
void Var<S>::check() const {
  if (tape_ == nullptr) dqs::detail::fail("ad::Var: used before being assigned a node");
  if (generation_ != tape_->generation_ || id_ >= tape_->nodes_.size())
    dqs::detail::fail("ad::Var: node ", id_, " used after its Tape was reset");
}

template <Real S>
const auto& Var<S>::node() const {
  check();
  return tape_->nodes_[id_];
}

}  // namespace dqs::ad
