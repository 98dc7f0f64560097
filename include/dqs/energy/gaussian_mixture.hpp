// Gaussian and Gaussian-mixture energies: E(x) = −log Σ_c w_c N(x; μ_c, Σ_c) (normalised, so E is
// exactly −log p). Both know their noised law in closed form: a·X + s·ε ~ Σ_c w_c N(a μ_c, a²Σ_c + s²I),
// which `noised(a, s)` returns and ExactScore uses. Diagonal covariances take a faster path.
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/energy/concepts.hpp"
#include "dqs/random/philox.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <type_traits>
#include <utility>
#include <vector>

namespace dqs {

template <Real S>
class GaussianMixture {
 public:
  using Scalar = S;

  // weights: C non-negative finite values with a positive sum (normalised here); means: D×C;
  // covariances: C symmetric positive-definite D×D matrices.
  GaussianMixture(std::vector<double> weights, Eigen::MatrixXd means, std::vector<Eigen::MatrixXd> covariances)
      : weights_(std::move(weights)), means_(std::move(means)), covariances_(std::move(covariances)) {
    const Index components = means_.cols();
    const Index dim = means_.rows();
    detail::require(dim >= 1 && components >= 1, "GaussianMixture: means must be D×C with D, C >= 1, got ", dim,
                    "×", components);
    detail::require(static_cast<Index>(weights_.size()) == components, "GaussianMixture: ", weights_.size(),
                    " weights for ", components, " components (means has ", components, " columns)");
    detail::require(static_cast<Index>(covariances_.size()) == components, "GaussianMixture: ",
                    covariances_.size(), " covariances for ", components, " components");
    double total = 0;
    for (std::size_t c = 0; c < weights_.size(); ++c) {
      detail::require(std::isfinite(weights_[c]) && weights_[c] >= 0, "GaussianMixture: weights[", c,
                      "] must be finite and >= 0, got ", weights_[c]);
      total += weights_[c];
    }
    detail::require(total > 0, "GaussianMixture: weights must have a positive sum, got ", total);
    for (double& w : weights_) w /= total;
    detail::require(means_.allFinite(), "GaussianMixture: means must be finite");
    prepare();
  }

  Index dim() const { return means_.rows(); }
  Index components() const { return means_.cols(); }
  const std::vector<double>& weights() const { return weights_; }
  const Eigen::MatrixXd& means() const { return means_; }
  const std::vector<Eigen::MatrixXd>& covariances() const { return covariances_; }

  void energy(ConstBatchRef<S> x, ValuesRef<S> values) const { evaluate<false>(x, values, nullptr); }

  void energy_and_gradient(ConstBatchRef<S> x, ValuesRef<S> values, BatchRef<S> grad) const {
    evaluate<true>(x, values, &grad);
  }

  // The law of a·X + s·ε, X from this mixture and ε ~ N(0, I) independent.
  GaussianMixture noised(double a, double s) const {
    std::vector<Eigen::MatrixXd> covariances(covariances_.size());
    const Eigen::MatrixXd identity = Eigen::MatrixXd::Identity(dim(), dim());
    for (std::size_t c = 0; c < covariances_.size(); ++c) covariances[c] = a * a * covariances_[c] + s * s * identity;
    return GaussianMixture(weights_, a * means_, std::move(covariances));
  }

  // n exact samples: column j is drawn from the streams of sample j under `seed`.
  Matrix<S> sample_exact(Index n, std::uint64_t seed) const {
    detail::require(n >= 1, "GaussianMixture::sample_exact: n must be >= 1, got ", n);
    Matrix<S> out(dim(), n);
    Vector<double> cumulative(components());
    double running = 0;
    for (Index c = 0; c < components(); ++c) cumulative[c] = (running += weights_[c]);
    Vector<double> noise(dim());
    Eigen::Matrix<double, 1, 1> u;
    for (Index j = 0; j < n; ++j) {
      random::Stream(seed, j, 0, random::Purpose::exact, 0).uniform<double>(u);
      const Index c = std::min<Index>(
          std::upper_bound(cumulative.data(), cumulative.data() + components(), u[0] * running) - cumulative.data(),
          components() - 1);
      random::Stream(seed, j, 0, random::Purpose::exact, 1).normal<double>(noise);
      out.col(j) = (means_.col(c) + cholesky_[c] * noise).template cast<S>();
    }
    return out;
  }

 private:
  // Columns are evaluated in blocks, transposed so that each coordinate is a contiguous array over
  // the block's points.
  static constexpr Index kBlock = 64;

  void prepare() {
    const Index d = dim(), components_count = components();
    diagonal_ = true;
    cholesky_.resize(components_count);
    inverse_cholesky_.resize(components_count);
    inverse_cholesky_wide_.resize(components_count);
    log_norm_wide_.resize(components_count);
    log_norm_.resize(components_count);
    half_inv_std_.resize(d, components_count);
    active_.clear();
    precision_.resize(d, components_count);
    for (Index c = 0; c < components_count; ++c) {
      const Eigen::MatrixXd& cov = covariances_[c];
      detail::require(cov.rows() == d && cov.cols() == d, "GaussianMixture: covariances[", c, "] is ", cov.rows(),
                      "×", cov.cols(), ", expected ", d, "×", d);
      detail::require(cov.allFinite() && (cov - cov.transpose()).cwiseAbs().maxCoeff() <= 1e-10 * cov.cwiseAbs().maxCoeff(),
                      "GaussianMixture: covariances[", c, "] must be finite and symmetric");
      Eigen::LLT<Eigen::MatrixXd> llt(cov);
      detail::require(llt.info() == Eigen::Success && llt.matrixL().toDenseMatrix().diagonal().minCoeff() > 0,
                      "GaussianMixture: covariances[", c, "] is not positive definite");
      cholesky_[c] = llt.matrixL();
      const Eigen::MatrixXd inverse =
          cholesky_[c].triangularView<Eigen::Lower>().solve(Eigen::MatrixXd::Identity(d, d));
      inverse_cholesky_[c] = inverse.cast<S>();
      inverse_cholesky_wide_[c] = inverse;
      const double log_det_half = cholesky_[c].diagonal().array().log().sum();
      log_norm_wide_[c] = (weights_[c] > 0 ? std::log(weights_[c]) : -std::numeric_limits<double>::infinity()) -
                          0.5 * static_cast<double>(d) * std::log(2 * std::numbers::pi) - log_det_half;
      log_norm_[c] = static_cast<S>(log_norm_wide_[c]);
      if (!cov.isDiagonal(0.0)) diagonal_ = false;
      half_inv_std_.col(c) = (cov.diagonal() * 2.0).cwiseSqrt().cwiseInverse().cast<S>();
      if (weights_[c] > 0) active_.push_back(c);
      precision_.col(c) = cov.diagonal().cwiseInverse().cast<S>();
    }
    means_s_ = means_.cast<S>();
    prepare_diagonal_kernel();
  }

  // Component data of the diagonal kernel's pruning, components along contiguous runs padded to
  // a multiple of the SIMD width (padding: log-normaliser −max, so never kept and never the
  // largest lower bound), and the radius within which its arithmetic cannot overflow.
  void prepare_diagonal_kernel() {
    constexpr Index kLanes = Eigen::internal::packet_traits<S>::size;
    const Index d = dim(), active = static_cast<Index>(active_.size());
    const Index padded = (active + kLanes - 1) / kLanes * kLanes;
    prune_log_norm_ = Vector<S>::Constant(padded, std::numeric_limits<S>::lowest());
    prune_means_ = Vector<S>::Zero(d * padded);
    prune_half_precision_ = Vector<S>::Zero(d * padded);
    // Per coordinate: ((x − μ)·h)² ≤ max/(2D) keeps the quadratic form ≤ max/2, and
    // |x − μ|/σ² ≤ max/(4C) keeps the gradient sums finite.
    const double largest = static_cast<double>(std::numeric_limits<S>::max());
    double radius = std::numeric_limits<double>::infinity(), mean_extent = 0;
    for (Index a = 0; a < active; ++a) {
      const Index c = active_[static_cast<std::size_t>(a)];
      prune_log_norm_[a] = log_norm_[c];
      for (Index k = 0; k < d; ++k) {
        const double variance = covariances_[static_cast<std::size_t>(c)](k, k);
        prune_means_[k * padded + a] = means_s_(k, c);
        prune_half_precision_[k * padded + a] = static_cast<S>(0.5 / variance);
        radius = std::min({radius, std::sqrt(largest / (2.0 * static_cast<double>(d)) * 2.0 * variance),
                           largest / (4.0 * static_cast<double>(components())) * variance});
        mean_extent = std::max(mean_extent, std::abs(means_(k, c)));
      }
    }
    safe_radius_ = static_cast<S>(std::max(0.0, 0.5 * radius - mean_extent));
    // Each active component's kernel constants side by side: log-normaliser, μ, 1/(√2σ), 1/σ².
    const Index stride = 1 + 3 * d;
    kernel_params_.resize(stride * active);
    for (Index a = 0; a < active; ++a) {
      const Index c = active_[static_cast<std::size_t>(a)];
      S* const to = kernel_params_.data() + a * stride;
      to[0] = log_norm_[c];
      for (Index k = 0; k < d; ++k) {
        to[1 + k] = means_s_(k, c);
        to[1 + d + k] = half_inv_std_(k, c);
        to[1 + 2 * d + k] = precision_(k, c);
      }
    }
    floor_ = Eigen::internal::pfirst(Eigen::internal::pexp(
        Eigen::internal::pset1<typename Eigen::internal::packet_traits<S>::type>(kCutoff)));
  }

  template <bool WithGradient>
  void evaluate(ConstBatchRef<S> x, ValuesRef<S> values, BatchRef<S>* grad) const {
    detail::require(x.rows() == dim(), "GaussianMixture: batch has ", x.rows(), " rows, energy dim is ", dim());
    detail::require(values.size() == x.cols(), "GaussianMixture: values has size ", values.size(), ", batch has ",
                    x.cols(), " columns");
    if constexpr (WithGradient)
      detail::require(grad->rows() == x.rows() && grad->cols() == x.cols(), "GaussianMixture: gradient is ",
                      grad->rows(), "×", grad->cols(), ", batch is ", x.rows(), "×", x.cols());
    if (diagonal_) {
      // Small dimensions get their own instantiation: loops over k unroll and stay in registers.
      switch (dim()) {
        case 1: evaluate_diagonal<WithGradient, 1>(x, values, grad); return;
        case 2: evaluate_diagonal<WithGradient, 2>(x, values, grad); return;
        case 3: evaluate_diagonal<WithGradient, 3>(x, values, grad); return;
        default: evaluate_diagonal<WithGradient, 0>(x, values, grad); return;
      }
    }
    // Fixed-size blocks of kBlock points: every array expression below has a compile-time length,
    // so Eigen emits unrolled SIMD code with no scalar tail, and a point's result does not depend
    // on where it sits in the batch.
    using Block = Eigen::Array<S, kBlock, 1>;
    using Points = Eigen::Array<S, kBlock, Eigen::Dynamic>;
    const Index d = dim(), components_count = components();
    constexpr S kNegInf = -std::numeric_limits<S>::infinity();
    Points points(kBlock, d), logits(kBlock, components_count), accum(kBlock, d), centred(kBlock, d),
        diff(kBlock, d);
    // Full covariance: centred = L⁻¹(x − μ) column by column with a fixed summation order (a GEMM
    // would round a point differently depending on its row in the micro-kernel's panels).
    const auto whiten = [&](Index c) {
      const Matrix<S>& inverse = inverse_cholesky_[c];
      for (Index i = 0; i < d; ++i) diff.col(i) = points.col(i) - means_s_(i, c);
      for (Index k = 0; k < d; ++k) {
        Block acc = diff.col(0) * inverse(k, 0);
        for (Index i = 1; i <= k; ++i) acc += diff.col(i) * inverse(k, i);
        centred.col(k) = acc;
      }
    };
    for (Index start = 0; start < x.cols(); start += kBlock) {
      const Index m = std::min(kBlock, x.cols() - start);
      points.setZero();
      points.topRows(m) = x.middleCols(start, m).transpose().array();
      Block best = Block::Constant(kNegInf);
      for (Index c = 0; c < components_count; ++c) {
        Block quad = Block::Zero();
        whiten(c);
        for (Index k = 0; k < d; ++k) quad += centred.col(k).square();
        logits.col(c) = log_norm_[c] - S(0.5) * quad;
        best = best.max(logits.col(c));
      }
      // A point so far away that every component underflows has zero density: E = +∞, gradient 0.
      // (Eigen's select() has no SIMD path, so it is applied once here, not inside the loop.)
      const Block shift = (best > kNegInf).select(best, S(0));
      Block total = Block::Zero();
      if constexpr (WithGradient) accum.setZero();
      for (Index c = 0; c < components_count; ++c) {
        const Block e = (logits.col(c) - shift).exp();
        total += e;
        if constexpr (WithGradient) {
          // Σ⁻¹(x − μ) = L⁻ᵀ·centred, again in a fixed order.
          whiten(c);
          const Matrix<S>& inverse = inverse_cholesky_[c];
          for (Index i = 0; i < d; ++i) {
            Block g = centred.col(i) * inverse(i, i);
            for (Index k = i + 1; k < d; ++k) g += centred.col(k) * inverse(k, i);
            accum.col(i) += e * g;
          }
        }
      }
      const Block energy_block = -(shift + total.log());
      values.segment(start, m) = energy_block.head(m).matrix();
      if constexpr (WithGradient) {
        const Block inv_total = (total > S(0)).select(total.inverse(), S(0));
        grad->middleCols(start, m) = (accum.topRows(m).colwise() * inv_total.head(m)).transpose().matrix();
      }
      // Overflow (|x| near the largest S) can give inf − inf or 0·∞ above; such points, and any
      // point whose components all overflowed, are redone one by one in a wider type.
      for (Index r = 0; r < m; ++r) repair_if_needed<WithGradient>(x, values, grad, start + r, best[r] > kNegInf);
    }
  }

  // The diagonal kernel, on chunks of P·kLanes points (P SIMD registers; kLanes floats under AVX-512):
  //   pass 1: logit_c = log w_c N_c normaliser − ½ Σ_k ((x_k − μ_kc)/σ_kc)², best = max_c logit_c;
  //   pass 2: e_c = exp(max(logit_c − best, κ)) − exp(κ), total = Σ e_c, ∇ = Σ e_c (x − μ_c)/σ_c².
  // κ (kCutoff) truncates components below e^κ relative to the best one to exactly 0, so a
  // component whose e is 0 on every lane of a chunk is skipped without changing any bit: the skip
  // is a pure speed-up, and a point's result is still independent of the other points of its
  // chunk — and so of the chunk width: chunks are four registers wide (the pruning below is shared
  // by four times the points, and the registers' exps overlap), the rest one chunk of one to four.
  // The truncation itself is below float rounding. Float: κ = −32, e^κ ≈ 1.3·10⁻¹⁴. The best
  // component gives e = 1, so total ≥ 1, and truncating (or shifting by e^κ) C − 1 others moves
  // it by < (C − 1)·e^κ: under 10⁻⁵ of its half-ulp 2^−24 ≈ 6·10⁻⁸ for C ≤ 40, and under the
  // half-ulp for any C < 4·10⁶. In ∇E each term e_c(x − μ_c)/σ_c² moves by < e^κ|x − μ_c|/σ_c²,
  // 2·10⁻⁷ of the rounding (2^−24 relative) of a full-weight term at the same distance. Double:
  // κ = −400, e^κ ≈ 2·10⁻¹⁷⁴. (Float used κ = −64 until 2026-11; −32 keeps 28 % fewer
  // components on GMM-40's Monte Carlo proposals and changes E and ∇E at rounding level only.)
  template <bool WithGradient, int FixedDim>
  void evaluate_diagonal(ConstBatchRef<S> x, ValuesRef<S> values, BatchRef<S>* grad) const {
    constexpr Index kLanes = Eigen::internal::packet_traits<S>::size;
    constexpr int kWide = 4;
    const Index d = FixedDim > 0 ? FixedDim : dim(), active = static_cast<Index>(active_.size());
    const Index padded = prune_log_norm_.size();
    // Scratch: a chunk's points, logits, gradient sums, box and component upper bounds, and the
    // kept components; on the stack when small (the Monte Carlo score calls this once per point
    // with a few hundred proposals, where a heap allocation costs as much as a chunk).
    constexpr Index kStackScalars = 4096, kStackIndices = 512;
    const Index scratch_size = (2 * d + active) * kWide * kLanes + 2 * d + padded;
    alignas(64) S stack_scratch[kStackScalars];
    std::int32_t stack_kept[kStackIndices + kLanes];  // compaction writes whole packets
    Eigen::Array<S, Eigen::Dynamic, 1> heap_scratch(scratch_size > kStackScalars ? scratch_size : 0);
    std::vector<std::int32_t> heap_kept(active > kStackIndices ? active + kLanes : 0);
    DiagonalScratch scratch;
    scratch.p = scratch_size > kStackScalars ? heap_scratch.data() : stack_scratch;
    scratch.l = scratch.p + d * kWide * kLanes;
    scratch.g = scratch.l + active * kWide * kLanes;
    scratch.upper = scratch.g + d * kWide * kLanes;  // padded entries, a multiple of kLanes: aligned
    scratch.lo = scratch.upper + padded;
    scratch.hi = scratch.lo + d;
    scratch.kept = active > kStackIndices ? heap_kept.data() : stack_kept;
    scratch.floor = floor_;
    const Index n = x.cols();
    Index start = 0;
    for (; start + kWide * kLanes <= n; start += kWide * kLanes)
      diagonal_chunk<WithGradient, FixedDim, kWide>(x, values, grad, start, kWide * kLanes, scratch);
    if (start == n) return;
    // The rest in one chunk of as many registers as it needs, ending at the last point and
    // reaching back over points already done (recomputed to the same bits) — cheaper than a
    // chunk per register and a partly filled last one.
    const auto chunk = [&](Index registers, Index first) {
      switch (registers) {
        case 1: diagonal_chunk<WithGradient, FixedDim, 1>(x, values, grad, first, std::min(kLanes, n - first), scratch); return;
        case 2: diagonal_chunk<WithGradient, FixedDim, 2>(x, values, grad, first, 2 * kLanes, scratch); return;
        case 3: diagonal_chunk<WithGradient, FixedDim, 3>(x, values, grad, first, 3 * kLanes, scratch); return;
        default: diagonal_chunk<WithGradient, FixedDim, kWide>(x, values, grad, first, kWide * kLanes, scratch); return;
      }
    };
    const Index registers = (n - start + kLanes - 1) / kLanes;
    if (n >= registers * kLanes) {
      chunk(registers, n - registers * kLanes);
    } else if (n >= kLanes) {  // fewer than `registers` full registers in the whole batch
      chunk(n / kLanes, 0);
      chunk(1, n - kLanes);
    } else {
      chunk(1, 0);  // a partly filled register
    }
  }

  static constexpr S kCutoff = std::is_same_v<S, float> ? S(-32) : S(-400);

  struct DiagonalScratch {
    S *p, *l, *g, *upper, *lo, *hi;
    std::int32_t* kept;
    S floor;  // exp(κ) as the packet exp rounds it
  };

  // Points start … start + m − 1 (m ≤ P·kLanes; m < P·kLanes only for P = 1). Coordinate k of
  // register r sits at p + (k·P + r)·kLanes, logit q of register r at l + (q·P + r)·kLanes.
  template <bool WithGradient, int FixedDim, int P>
  void diagonal_chunk(ConstBatchRef<S> x, ValuesRef<S> values, BatchRef<S>* grad, Index start, Index m,
                      const DiagonalScratch& scratch) const {
    // Written on Eigen's packet primitives (the functions its array expressions compile to): fixed-
    // size Eigen arrays spilled to memory and reduced with scalar code here, at half the speed.
    namespace ei = Eigen::internal;
    using Packet = typename ei::packet_traits<S>::type;
    constexpr Index kLanes = ei::packet_traits<S>::size;
    constexpr S kNegInf = -std::numeric_limits<S>::infinity();
    const Packet cutoff = ei::pset1<Packet>(kCutoff), floor = ei::pset1<Packet>(scratch.floor);
    const Index d = FixedDim > 0 ? FixedDim : dim(), active = static_cast<Index>(active_.size());
    const Index padded = prune_log_norm_.size();
    S* const p = scratch.p;
    S* const l = scratch.l;
    S* const g = scratch.g;
    S* const upper = scratch.upper;
    S* const lo = scratch.lo;
    S* const hi = scratch.hi;
    std::int32_t* const kept = scratch.kept;
    Packet largest[P];
    for (int r = 0; r < P; ++r) largest[r] = ei::pset1<Packet>(S(0));
    if (m == P * kLanes) {
      // Straight into registers (a packet load of freshly written scalars would stall): two
      // contiguous loads split into coordinates when the points are packed pairs, else a gather.
      Packet pairs[P][2];
      bool paired = FixedDim == 2 && x.outerStride() == 2;
      for (int r = 0; r < P && paired; ++r) paired = load_pairs(x.data() + 2 * (start + r * kLanes), pairs[r]);
      for (Index k = 0; k < d; ++k) {
        Packet low, high;
        for (int r = 0; r < P; ++r) {
          const Packet xk = paired ? pairs[r][k < 2 ? k : 0]
                                   : ei::pgather<S, Packet>(x.data() + k + (start + r * kLanes) * x.outerStride(),
                                                            x.outerStride());
          ei::pstore(p + (k * P + r) * kLanes, xk);
          low = r == 0 ? xk : ei::pmin(low, xk);
          high = r == 0 ? xk : ei::pmax(high, xk);
          largest[r] = ei::pmax(largest[r], ei::pabs(xk));
        }
        lo[k] = ei::predux_min(low);
        hi[k] = ei::predux_max(high);
      }
    } else if constexpr (P == 1) {  // a partial chunk is one register wide
      // Lanes past the batch repeat the chunk's first point, so they do not widen the box.
      for (Index k = 0; k < d; ++k) {
        S low = x(k, start), high = low;
        for (Index i = 0; i < kLanes; ++i) {
          const S v = x(k, start + (i < m ? i : 0));
          p[k * kLanes + i] = v;
          low = std::min(low, v);
          high = std::max(high, v);
        }
        lo[k] = low;
        hi[k] = high;
        largest[0] = ei::pmax(largest[0], ei::pabs(ei::pload<Packet>(p + k * kLanes)));
      }
    }
    // Pruning on the chunk's bounding box B: for each component, an upper bound of its logit on
    // B (distance to the box) and a lower bound (distance to the far corner); the largest lower
    // bound L is below every lane's best logit. A component whose upper bound is under
    // L + κ (less a margin for rounding) has e = 0 on every lane and is dropped before pass 1.
    Packet lower_max = ei::pset1<Packet>(kNegInf);
    for (Index c0 = 0; c0 < padded; c0 += kLanes) {
      Packet up = ei::pload<Packet>(prune_log_norm_.data() + c0), low = up;
      for (Index k = 0; k < d; ++k) {
        const Packet mu = ei::pload<Packet>(prune_means_.data() + k * padded + c0);
        const Packet h2 = ei::pload<Packet>(prune_half_precision_.data() + k * padded + c0);
        const Packet below = ei::psub(ei::pset1<Packet>(lo[k]), mu);  // > 0: μ left of the box
        const Packet above = ei::psub(mu, ei::pset1<Packet>(hi[k]));  // > 0: μ right of the box
        const Packet near = ei::pmax(ei::pmax(below, above), ei::pset1<Packet>(S(0)));
        const Packet far = ei::pmax(ei::pnegate(below), ei::pnegate(above));
        up = ei::psub(up, ei::pmul(h2, ei::pmul(near, near)));
        low = ei::psub(low, ei::pmul(h2, ei::pmul(far, far)));
      }
      ei::pstore(upper + c0, up);
      lower_max = ei::pmax(lower_max, low);
    }
    const S lower = ei::predux_max(lower_max);
    // keep ⇔ not (upper + margin < lower + κ), margin = 1 + 10⁻³(|upper| + |lower|): far above the
    // rounding of either side. Vectorised test, then a branch-free compaction of the indices.
    const Packet threshold = ei::pset1<Packet>(lower + kCutoff), lower_abs = ei::pset1<Packet>(std::abs(lower));
    Index count = 0;
    for (Index c0 = 0; c0 < padded; c0 += kLanes) {
      const Packet up = ei::pload<Packet>(upper + c0);
      const Packet margin = ei::padd(ei::pset1<Packet>(S(1)),
                                     ei::pmul(ei::pset1<Packet>(S(1e-3)), ei::padd(ei::pabs(up), lower_abs)));
      const Packet drop = ei::pcmp_lt(ei::padd(up, margin), threshold);  // all-ones bits: drop
      std::uint32_t bits = kept_lanes(drop);
      if (active - c0 < kLanes) bits &= (std::uint32_t{1} << (active - c0)) - 1;  // not the padding
      count += compress_indices(bits, static_cast<std::int32_t>(c0), kept + count);
    }
    Packet best[P];
    for (int r = 0; r < P; ++r) best[r] = ei::pset1<Packet>(kNegInf);
    const S* const params = kernel_params_.data();
    const Index stride = 1 + 3 * d;
    for (Index q = 0; q < count; ++q) {
      const S* const pc = params + kept[q] * stride;
      Packet logit[P];
      for (int r = 0; r < P; ++r) logit[r] = ei::pset1<Packet>(pc[0]);
      for (Index k = 0; k < d; ++k) {
        const Packet mu = ei::pset1<Packet>(pc[1 + k]), h = ei::pset1<Packet>(pc[1 + d + k]);
        for (int r = 0; r < P; ++r) {
          const Packet z = ei::pmul(ei::psub(ei::pload<Packet>(p + (k * P + r) * kLanes), mu), h);
          logit[r] = ei::psub(logit[r], ei::pmul(z, z));
        }
      }
      for (int r = 0; r < P; ++r) {
        ei::pstore(l + (q * P + r) * kLanes, logit[r]);
        best[r] = ei::pmax(best[r], logit[r]);
      }
    }
    // Gradient sums: in registers for a fixed dimension (through memory they chain every
    // component's update on a store-to-load round trip), in g otherwise.
    Packet total[P], sums[P][FixedDim > 0 ? FixedDim : 1];
    for (int r = 0; r < P; ++r) {
      total[r] = ei::pset1<Packet>(S(0));
      if constexpr (WithGradient && FixedDim > 0)
        for (Index k = 0; k < FixedDim; ++k) sums[r][k] = ei::pset1<Packet>(S(0));
    }
    if constexpr (WithGradient && FixedDim == 0) std::fill(g, g + d * P * kLanes, S(0));
    for (Index q = 0; q < count; ++q) {
      Packet shifted[P], live = ei::pset1<Packet>(S(0));
      for (int r = 0; r < P; ++r) {
        shifted[r] = ei::psub(ei::pload<Packet>(l + (q * P + r) * kLanes), best[r]);
        live = ei::por(live, ei::pcmp_lt(cutoff, shifted[r]));
      }
      if (!ei::predux_any(live)) continue;  // e = 0 on every lane
      Packet e[P];
      for (int r = 0; r < P; ++r) {
        e[r] = ei::psub(exp_above_cutoff(ei::pmax(shifted[r], cutoff)), floor);
        total[r] = ei::padd(total[r], e[r]);
      }
      if constexpr (WithGradient) {
        const S* const pc = params + kept[q] * stride;
        for (Index k = 0; k < d; ++k) {
          const Packet mu = ei::pset1<Packet>(pc[1 + k]), precision = ei::pset1<Packet>(pc[1 + 2 * d + k]);
          for (int r = 0; r < P; ++r) {
            const Packet diff = ei::psub(ei::pload<Packet>(p + (k * P + r) * kLanes), mu);
            const Packet term = ei::pmul(e[r], ei::pmul(diff, precision));
            if constexpr (FixedDim > 0) {
              sums[r][k] = ei::padd(sums[r][k], term);
            } else {
              S* const gk = g + (k * P + r) * kLanes;
              ei::pstore(gk, ei::padd(ei::pload<Packet>(gk), term));
            }
          }
        }
      }
    }
    alignas(64) S energy[kLanes], checks[kLanes], magnitude[kLanes];
    for (int r = 0; r < P; ++r) {
      const Index first = start + r * kLanes, n = std::min(kLanes, m - r * kLanes);
      const Packet energy_packet = ei::pnegate(ei::padd(best[r], log_total(total[r])));
      if (n == kLanes) {
        ei::pstoreu(values.data() + first, energy_packet);
      } else {
        ei::pstore(energy, energy_packet);
        for (Index i = 0; i < n; ++i) values[first + i] = energy[i];
      }
      Packet check = energy_packet;
      if constexpr (WithGradient) {
        const Packet inv = ei::pdiv(ei::pset1<Packet>(S(1)), total[r]);
        Packet gs[FixedDim == 2 ? 2 : 1];
        for (Index k = 0; k < d; ++k) {
          S* const gk_at = g + (k * P + r) * kLanes;
          Packet gk;
          if constexpr (FixedDim > 0)
            gk = ei::pmul(sums[r][k], inv);
          else
            gk = ei::pmul(ei::pload<Packet>(gk_at), inv);
          ei::pstore(gk_at, gk);
          if constexpr (FixedDim == 2) gs[k] = gk;  // only the D = 2 paired store reads them
          check = ei::padd(check, gk);
        }
        const bool paired = FixedDim == 2 && n == kLanes && grad->outerStride() == 2 &&
                            store_pairs(gs, grad->data() + 2 * first);
        if (!paired)
          for (Index i = 0; i < n; ++i)
            for (Index k = 0; k < d; ++k) (*grad)(k, first + i) = g[(k * P + r) * kLanes + i];
      }
      // Within safe_radius_ no quadratic form, (x − μ)/σ² or their sums can overflow; points
      // beyond it (or NaN) go to the wide path, as would any non-finite result (E + Σ∇ not finite).
      // One vector test for the common case that every lane is fine.
      const Packet fine = ei::pand(ei::pcmp_le(largest[r], ei::pset1<Packet>(safe_radius_)),
                                   ei::pcmp_eq(ei::psub(check, check), ei::pset1<Packet>(S(0))));
      if (ei::predux_any(ei::pcmp_eq(fine, ei::pset1<Packet>(S(0))))) [[unlikely]] {
        ei::pstore(checks, check);
        ei::pstore(magnitude, largest[r]);
        for (Index i = 0; i < n; ++i)
          if (!(magnitude[i] <= safe_radius_) || !std::isfinite(checks[i]))
            repair<WithGradient>(x, values, grad, first + i);
      }
    }
  }

  // Points packed as pairs (x₀ y₀ x₁ y₁ …, 2·kLanes scalars) split into a packet of x and one of y,
  // and back; false (nothing done) where there is no two-source permute.
  template <class Packet>
  static bool load_pairs([[maybe_unused]] const S* from, [[maybe_unused]] Packet* xy) {
#if defined(__AVX512F__)
    constexpr int kLanes = Eigen::internal::packet_traits<S>::size;
    if constexpr (std::is_same_v<S, float> && kLanes == 16) {
      const __m512 a = _mm512_loadu_ps(from), b = _mm512_loadu_ps(from + 16);
      xy[0] = _mm512_permutex2var_ps(a, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), b);
      xy[1] = _mm512_permutex2var_ps(a, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), b);
      return true;
    } else if constexpr (std::is_same_v<S, double> && kLanes == 8) {
      const __m512d a = _mm512_loadu_pd(from), b = _mm512_loadu_pd(from + 8);
      xy[0] = _mm512_permutex2var_pd(a, _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14), b);
      xy[1] = _mm512_permutex2var_pd(a, _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15), b);
      return true;
    }
#endif
    return false;
  }

  template <class Packet>
  static bool store_pairs([[maybe_unused]] const Packet* xy, [[maybe_unused]] S* to) {
#if defined(__AVX512F__)
    constexpr int kLanes = Eigen::internal::packet_traits<S>::size;
    if constexpr (std::is_same_v<S, float> && kLanes == 16) {
      _mm512_storeu_ps(to, _mm512_permutex2var_ps(
                               xy[0], _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), xy[1]));
      _mm512_storeu_ps(to + 16, _mm512_permutex2var_ps(xy[0],
                                                       _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29,
                                                                         14, 30, 15, 31),
                                                       xy[1]));
      return true;
    } else if constexpr (std::is_same_v<S, double> && kLanes == 8) {
      _mm512_storeu_pd(to, _mm512_permutex2var_pd(xy[0], _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), xy[1]));
      _mm512_storeu_pd(to + 8, _mm512_permutex2var_pd(xy[0], _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15), xy[1]));
      return true;
    }
#endif
    return false;
  }

  // pexp of arguments in [κ, 0] (or NaN): for float under AVX-512, Eigen's pexp<Packet16f> without
  // its clamp to ±88.38 and its final max with the argument, which change nothing there (the
  // result is positive); the same operations otherwise, so the same bits.
  template <class Packet>
  static Packet exp_above_cutoff(const Packet& x) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<S, float> && Eigen::internal::packet_traits<S>::size == 16) {
      namespace ei = Eigen::internal;
      const Packet m = _mm512_floor_ps(ei::pmadd(x, ei::pset1<Packet>(1.44269504088896341f), ei::pset1<Packet>(0.5f)));
      const Packet r = _mm512_fmadd_ps(m, ei::pset1<Packet>(-0.6931471805599453f), x);
      const Packet r2 = ei::pmul(r, r), r3 = ei::pmul(r2, r);
      Packet y = ei::pmadd(ei::pset1<Packet>(1.9875691500E-4f), r, ei::pset1<Packet>(1.3981999507E-3f));
      Packet y1 = ei::pmadd(ei::pset1<Packet>(4.1665795894E-2f), r, ei::pset1<Packet>(1.6666665459E-1f));
      const Packet y2 = ei::padd(r, ei::pset1<Packet>(1.0f));
      y = ei::pmadd(y, r, ei::pset1<Packet>(8.3334519073E-3f));
      y1 = ei::pmadd(y1, r, ei::pset1<Packet>(5.0000001201E-1f));
      y = ei::pmadd(y, r3, y1);
      y = ei::pmadd(y, r2, y2);
      const __m512i scale = _mm512_slli_epi32(_mm512_cvttps_epi32(ei::padd(m, ei::pset1<Packet>(127.0f))), 23);
      return ei::pmul(y, _mm512_castsi512_ps(scale));
    }
#endif
    return Eigen::internal::pexp(x);
  }

  // plog of the chunk's totals. They are ≥ 1 (the best component adds exp(0) − e^κ, which rounds
  // to 1) unless the point is out of range; then, or for any lane not a positive normal finite
  // number, Eigen's plog with its special cases. Both give the same bits where both apply.
  template <class Packet>
  static Packet log_total(const Packet& total) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<S, float> && Eigen::internal::packet_traits<S>::size == 16) {
      const __mmask16 normal = _mm512_cmp_ps_mask(total, _mm512_set1_ps(std::numeric_limits<float>::min()), _CMP_GE_OQ) &
                               _mm512_cmp_ps_mask(total, _mm512_set1_ps(std::numeric_limits<float>::max()), _CMP_LE_OQ);
      if (normal == 0xFFFF) [[likely]]
        return detail::plog_positive_normal(total);
    }
#endif
    return Eigen::internal::plog(total);
  }

  // Writes first + i for each set bit i of `bits` (ascending) to `to`, returns their number. Under
  // AVX-512 one compress and one whole-packet store (`to` has room for a packet): no branch per
  // index, whose count varies from chunk to chunk.
  static Index compress_indices(std::uint32_t bits, std::int32_t first, std::int32_t* to) {
#if defined(__AVX512F__)
    constexpr int kLanes = Eigen::internal::packet_traits<S>::size;
    if constexpr (kLanes == 16) {
      const __m512i lanes = _mm512_add_epi32(_mm512_set1_epi32(first),
                                             _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
      _mm512_storeu_si512(to, _mm512_maskz_compress_epi32(static_cast<__mmask16>(bits), lanes));
      return std::popcount(bits);
    }
#if defined(__AVX512VL__)
    if constexpr (kLanes == 8) {
      const __m256i lanes = _mm256_add_epi32(_mm256_set1_epi32(first), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(to), _mm256_maskz_compress_epi32(static_cast<__mmask8>(bits), lanes));
      return std::popcount(bits);
    }
#endif
#endif
    Index count = 0;
    for (; bits != 0; bits &= bits - 1) to[count++] = first + std::countr_zero(bits);
    return count;
  }

  // Bit i set ⇔ lane i of a pcmp_* result is false (the lanes to keep).
  template <class Packet>
  static std::uint32_t kept_lanes(const Packet& drop) {
    constexpr int kLanes = Eigen::internal::packet_traits<S>::size;
#if defined(__AVX512F__) && defined(__AVX512DQ__)
    if constexpr (std::is_same_v<S, float> && kLanes == 16)  // Packet16f
      return ~static_cast<std::uint32_t>(_mm512_movepi32_mask(_mm512_castps_si512(drop))) & 0xFFFFu;
    if constexpr (std::is_same_v<S, double> && kLanes == 8)  // Packet8d
      return ~static_cast<std::uint32_t>(_mm512_movepi64_mask(_mm512_castpd_si512(drop))) & 0xFFu;
#endif
    alignas(64) S lanes[kLanes];
    Eigen::internal::pstore(lanes, drop);
    std::uint32_t bits = 0;
    for (int i = 0; i < kLanes; ++i) bits |= static_cast<std::uint32_t>(!(lanes[i] != lanes[i])) << i;
    return bits;
  }

  // Redoes point j in the wide type if the fast kernel flagged it or left a non-finite result.
  template <bool WithGradient>
  void repair_if_needed(ConstBatchRef<S> x, ValuesRef<S> values, BatchRef<S>* grad, Index j, bool kernel_ok) const {
    // best = −∞ (kernel_ok false): every component overflowed, and Eigen's packet exp(−∞) is the
    // smallest normal number rather than 0 (double), which would leave a finite E ≈ 708.
    bool bad = !kernel_ok || !std::isfinite(values[j]) || !x.col(j).allFinite();
    if constexpr (WithGradient) bad = bad || !grad->col(j).allFinite();
    if (!bad) [[likely]]
      return;
    repair<WithGradient>(x, values, grad, j);
  }

  template <bool WithGradient>
  void repair(ConstBatchRef<S> x, ValuesRef<S> values, BatchRef<S>* grad, Index j) const {
    if constexpr (WithGradient) {
      auto g = grad->col(j);
      evaluate_wide(x.col(j), values[j], &g);
    } else {
      evaluate_wide(x.col(j), values[j], static_cast<Vector<S>*>(nullptr));
    }
  }

  // One point in double (float) or long double (double), where (x − μ) and its whitened squares
  // cannot overflow for finite x: E = −log Σ_c exp(logit_c), ∇E = Σ_c w_c Σ_c⁻¹(x − μ_c) over the
  // components whose weight w_c is nonzero. E rounds to +∞ if it exceeds S's range; then ∇E = 0,
  // as for a point of zero density. A non-finite coordinate gives +∞ (±∞) or NaN (NaN input).
  template <class Point, class Grad>
  void evaluate_wide(const Point& x, S& value, Grad* grad) const {
    using W = std::conditional_t<std::is_same_v<S, float>, double, long double>;
    constexpr W kInf = std::numeric_limits<W>::infinity();
    const Index d = dim(), components_count = components();
    if (x.hasNaN()) {
      value = std::numeric_limits<S>::quiet_NaN();
      if (grad) grad->setConstant(std::numeric_limits<S>::quiet_NaN());
      return;
    }
    if (!x.allFinite()) {
      value = std::numeric_limits<S>::infinity();
      if (grad) grad->setZero();
      return;
    }
    Eigen::Matrix<W, Eigen::Dynamic, Eigen::Dynamic> centred(d, components_count);
    Eigen::Matrix<W, Eigen::Dynamic, 1> logits(components_count);
    W best = -kInf;
    for (Index c = 0; c < components_count; ++c) {
      const Eigen::MatrixXd& inverse = inverse_cholesky_wide_[c];
      W quad = 0;
      for (Index k = 0; k < d; ++k) {
        W acc = 0;
        for (Index i = 0; i <= k; ++i)
          acc += (static_cast<W>(x[i]) - static_cast<W>(means_(i, c))) * static_cast<W>(inverse(k, i));
        centred(k, c) = acc;
        quad += acc * acc;
      }
      logits[c] = static_cast<W>(log_norm_wide_[c]) - quad / 2;
      best = std::max(best, logits[c]);
    }
    if (best == -kInf) {
      value = std::numeric_limits<S>::infinity();
      if (grad) grad->setZero();
      return;
    }
    W total = 0;
    Eigen::Matrix<W, Eigen::Dynamic, 1> g = Eigen::Matrix<W, Eigen::Dynamic, 1>::Zero(d);
    for (Index c = 0; c < components_count; ++c) {
      const W w = std::exp(logits[c] - best);
      if (w == 0) continue;
      total += w;
      const Eigen::MatrixXd& inverse = inverse_cholesky_wide_[c];
      for (Index i = 0; i < d; ++i) {
        W acc = 0;
        for (Index k = i; k < d; ++k) acc += centred(k, c) * static_cast<W>(inverse(k, i));
        g[i] += w * acc;
      }
    }
    value = static_cast<S>(-(best + std::log(total)));
    if (!grad) return;
    if (value == std::numeric_limits<S>::infinity()) {
      grad->setZero();
      return;
    }
    for (Index i = 0; i < d; ++i) (*grad)[i] = static_cast<S>(g[i] / total);
  }

  std::vector<double> weights_;
  Eigen::MatrixXd means_;
  std::vector<Eigen::MatrixXd> covariances_;
  std::vector<Eigen::MatrixXd> cholesky_;
  std::vector<Matrix<S>> inverse_cholesky_;
  std::vector<Eigen::MatrixXd> inverse_cholesky_wide_;  // for evaluate_wide
  std::vector<double> log_norm_wide_;
  Vector<S> log_norm_;
  Matrix<S> means_s_;
  Matrix<S> half_inv_std_;        // 1/(√2·σ): ½((x − μ)/σ)² = ((x − μ)/(√2σ))²
  std::vector<Index> active_;     // components with weight > 0 (the others have zero density)
  Vector<S> prune_log_norm_, prune_means_, prune_half_precision_;
  S safe_radius_ = 0;
  Vector<S> kernel_params_;  // per active component: log-normaliser, μ (D), 1/(√2σ) (D), 1/σ² (D)
  S floor_ = 0;  // exp(κ) as the packet exp rounds it
  Matrix<S> precision_;
  bool diagonal_ = false;
};
static_assert(DifferentiableEnergy<GaussianMixture<float>>);
static_assert(ExactlySampleable<GaussianMixture<double>>);

// A single Gaussian N(mean, covariance): a one-component mixture.
template <Real S>
class Gaussian {
 public:
  using Scalar = S;

  Gaussian(Eigen::VectorXd mean, Eigen::MatrixXd covariance)
      : mixture_({1.0}, Eigen::MatrixXd(mean), {std::move(covariance)}) {}

  Index dim() const { return mixture_.dim(); }
  Eigen::VectorXd mean() const { return mixture_.means().col(0); }
  const Eigen::MatrixXd& covariance() const { return mixture_.covariances()[0]; }

  void energy(ConstBatchRef<S> x, ValuesRef<S> values) const { mixture_.energy(x, values); }
  void energy_and_gradient(ConstBatchRef<S> x, ValuesRef<S> values, BatchRef<S> grad) const {
    mixture_.energy_and_gradient(x, values, grad);
  }
  Gaussian noised(double a, double s) const {
    return Gaussian(a * mean(), a * a * covariance() + s * s * Eigen::MatrixXd::Identity(dim(), dim()));
  }
  Matrix<S> sample_exact(Index n, std::uint64_t seed) const { return mixture_.sample_exact(n, seed); }

 private:
  GaussianMixture<S> mixture_;
};
static_assert(DifferentiableEnergy<Gaussian<double>>);

}  // namespace dqs
