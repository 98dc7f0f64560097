// MonteCarloScore: K-sample self-normalised importance estimate of ∇ log p_t(x). Proposals
// y_k = (x + s·ε_k)/a sample the posterior's Gaussian factor; weights w_k ∝ exp(−E(y_k)) (log-sum-exp
// stabilised). Target-score form (iDEM/DQS): S = (1/a)·Σ w_k (−∇E(y_k)); Tweedie form: S = (a·Σ w_k y_k − x)/s².
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/detail/parallel.hpp"
#include "dqs/score/clip.hpp"
#include "dqs/score/concepts.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace dqs {

enum class ScoreForm {
  target,   // (1/a)·Σ w_k (−∇E(y_k)): low variance at small noise; needs the gradient
  tweedie,  // (a·Σ w_k y_k − x)/s²: gradient-free, low variance at large noise
  blend,    // (1 − λ)·target + λ·tweedie with λ(t) = (s/a)² / ((s/a)² + τ²)
};

struct MonteCarloScoreOptions {
  Index samples = 500;                                      // K, proposals per point
  ScoreForm form = ScoreForm::blend;
  double blend_scale = 1.0;                                 // τ: the posterior spread s/a where both forms weigh equally
  double clip = std::numeric_limits<double>::infinity();   // maximum norm of the estimate (of each block, see below)
  Index clip_block = 0;       // 0: clip the whole vector; b > 0: clip each block of b coordinates (one particle)
  bool antithetic = false;    // proposals in pairs ε, −ε (K even)
  bool richardson = false;    // 2·S_K − S_{K/2}: cancels the O(1/K) bias of self-normalisation
};

// λ of the blend (1 − λ)·target + λ·tweedie: 0 for the target form, 1 for Tweedie, and for the blend
// λ = (s/a)²/((s/a)² + τ²), the zero-variance mix inside a Gaussian of std τ (docs/estimators.md).
inline double blend_tweedie_weight(ScoreForm form, double blend_scale, double a, double s) {
  if (form == ScoreForm::target || s == 0) return 0;
  if (form == ScoreForm::tweedie) return 1;
  const double spread = (s / a) * (s / a);
  return spread / (spread + blend_scale * blend_scale);
}

class MonteCarloScore {
 public:
  MonteCarloScore() : MonteCarloScore(MonteCarloScoreOptions{}) {}
  explicit MonteCarloScore(MonteCarloScoreOptions options) : options_(options) {
    const auto& o = options_;
    detail::require(o.samples >= 1, "MonteCarloScore: samples (K) must be >= 1, got ", o.samples);
    detail::require(!(o.clip <= 0) && !std::isnan(o.clip), "MonteCarloScore: clip must be > 0 (or infinity), got ", o.clip);
    detail::require(o.clip_block >= 0, "MonteCarloScore: clip_block must be >= 0, got ", o.clip_block);
    detail::require_positive("MonteCarloScore: blend_scale", o.blend_scale);
    if (o.antithetic)
      detail::require(o.samples % 2 == 0, "MonteCarloScore: antithetic pairs need an even samples (K), got ", o.samples);
    if (o.richardson) {
      detail::require(o.samples >= 2 && o.samples % 2 == 0, "MonteCarloScore: richardson needs an even samples (K) >= 2, got ",
                      o.samples);
      if (o.antithetic)
        detail::require(o.samples % 4 == 0,
                        "MonteCarloScore: richardson with antithetic pairs needs samples (K) divisible by 4, got ",
                        o.samples);
    }
  }

  const MonteCarloScoreOptions& options() const { return options_; }

  template <Energy E>
  void validate(const E& energy) const {
    detail::require(options_.clip_block == 0 || energy.dim() % options_.clip_block == 0,
                    "MonteCarloScore: clip_block ", options_.clip_block, " does not divide the energy dim ", energy.dim());
    if constexpr (!DifferentiableEnergy<E>)
      detail::require(options_.form == ScoreForm::tweedie,
                      "MonteCarloScore: the target-score and blend forms need a DifferentiableEnergy; use ScoreForm::tweedie");
  }

  // The Tweedie weight λ(t) of the blend form (0 for target, 1 for tweedie).
  double tweedie_weight(double a, double s) const { return blend_tweedie_weight(options_.form, options_.blend_scale, a, s); }

  template <Energy E, NoiseSchedule Sch>
  std::int64_t estimate(const E& energy, const Sch& schedule, ConstBatchRef<typename E::Scalar> x, double t,
                        const random::StreamKey& key, BatchRef<typename E::Scalar> score) const {
    using S = typename E::Scalar;
    check_shapes(energy, x, score.rows(), score.cols());
    const double a = schedule.alpha(t), s = schedule.sigma(t);
    const double lambda = tweedie_weight(a, s);
    if (s == 0) return exact_at_zero_noise(energy, a, x, score);
    const Index k_total = options_.samples;
    const bool need_gradient = lambda < 1;
    detail::parallel_columns<Workspace<S>>(x.cols(), [&](Workspace<S>& ws, Index j) {
      propose(energy, x.col(j), a, s, t, key, j, need_gradient, ws);
      combine(x.col(j), a, s, lambda, k_total, ws, ws.column);
      if (options_.richardson) {
        combine(x.col(j), a, s, lambda, k_total / 2, ws, ws.half);
        ws.column = S(2) * ws.column - ws.half;
      }
      clip(ws.column);
      score.col(j) = ws.column;
    });
    return static_cast<std::int64_t>(x.cols()) * k_total;
  }

  // log p_t(x) + log Z ≈ log((1/K)·Σ exp(−E(y_k))) − D·log a, from fresh proposals.
  template <Energy E, NoiseSchedule Sch>
  std::int64_t log_density(const E& energy, const Sch& schedule, ConstBatchRef<typename E::Scalar> x, double t,
                           const random::StreamKey& key, ValuesRef<typename E::Scalar> values) const {
    using S = typename E::Scalar;
    check_shapes(energy, x, x.rows(), values.size());
    const double a = schedule.alpha(t), s = schedule.sigma(t);
    const random::StreamKey density_key = key.with(key.purpose, key.draw + 0x8000u);
    detail::parallel_columns<Workspace<S>>(x.cols(), [&](Workspace<S>& ws, Index j) {
      propose(energy, x.col(j), a, s, t, density_key, j, false, ws);
      const S top = ws.log_weights.maxCoeff();
      const double log_mean =
          top == -std::numeric_limits<S>::infinity()
              ? -std::numeric_limits<double>::infinity()
              : static_cast<double>(top) + std::log((ws.log_weights.array() - top).exp().mean());
      values[j] = static_cast<S>(log_mean - static_cast<double>(x.rows()) * std::log(a));
    });
    return static_cast<std::int64_t>(x.cols()) * options_.samples;
  }

 private:
  template <Real S>
  struct Workspace {
    Matrix<S> noise, proposals, gradients;
    Vector<S> energies, log_weights, weights, tiled, column, half, partial, sum;
    // weighted_sum_permuted's lane → column table, in the width of S's lanes
    Eigen::Matrix<std::conditional_t<std::is_same_v<S, float>, std::int32_t, std::int64_t>, Eigen::Dynamic, 1> index;
    Index index_dim = 0;
    decltype(index) tile_index;  // proposals_permuted's lane → coordinate table
    Index tile_dim = 0;
  };

  template <Energy E, class X>
  void check_shapes(const E& energy, const X& x, Index out_rows, Index out_cols) const {
    validate(energy);
    detail::require(x.rows() == energy.dim(), "MonteCarloScore: batch has ", x.rows(), " rows, energy dim is ",
                    energy.dim());
    detail::require(out_rows == x.rows() && out_cols == x.cols(), "MonteCarloScore: output is ", out_rows, "×",
                    out_cols, ", batch is ", x.rows(), "×", x.cols());
  }

  // Draws y_k = (x + s ε_k)/a, evaluates the energy (and gradient), and sets log-weights −E(y_k).
  template <Energy E, class Column, Real S>
  void propose(const E& energy, const Column& x, double a, double s, double t, const random::StreamKey& key, Index j,
               bool need_gradient, Workspace<S>& ws) const {
    const Index dim = x.rows(), k_total = options_.samples;
    ws.noise.resize(dim, k_total);
    random::Stream stream(key.with(random::Purpose::score, key.draw), j);
    if (options_.antithetic) {
      // Pairs sit side by side (columns 2i, 2i+1) so that the first K/2 proposals are also antithetic:
      // the K/2 draws go to the second half, then out in pairs from the front.
      const Index half = k_total / 2;
      stream.normal_packets<S>(ws.noise.data() + dim * half, dim * half);
      for (Index i = 0; i < half; ++i) {
        ws.noise.col(2 * i) = ws.noise.col(half + i);
        ws.noise.col(2 * i + 1) = -ws.noise.col(2 * i);
      }
    } else {
      stream.normal_packets<S>(ws.noise.data(), dim * k_total);
    }
    const S inv_a = static_cast<S>(1.0 / a), noise_scale = static_cast<S>(s / a);
    // y_k = noise_scale·ε_k + x/a over the flat D·K buffer, in runs of kTile columns against x/a
    // tiled kTile times: contiguous loops that vectorise for any D (a colwise sum with a D-vector
    // does not, and cost more than the proposals' energies here).
    constexpr Index kTile = 16;
    ws.proposals.resize(dim, k_total);
#if defined(__AVX512F__)
    if (dim <= Eigen::internal::packet_traits<S>::size && x.innerStride() == 1) {
      proposals_permuted(x.data(), inv_a, noise_scale, ws);
    } else
#endif
    {
    ws.tiled.resize(dim * kTile);
    {
      S* const tiled = ws.tiled.data();  // plain loops: a segment expression per copy costs more
      for (Index i = 0; i < dim; ++i) tiled[i] = inv_a * x[i];
      for (Index u = dim; u < dim * kTile; ++u) tiled[u] = tiled[u - dim];
    }
    {
      const S* noise = ws.noise.data();
      S* out = ws.proposals.data();
      const S* tiled = ws.tiled.data();
      const Index run = dim * kTile, total = dim * k_total;
      Index i = 0;
      for (; i + run <= total; i += run)
        for (Index u = 0; u < run; ++u) out[i + u] = noise_scale * noise[i + u] + tiled[u];
      for (Index u = 0; i + u < total; ++u) out[i + u] = noise_scale * noise[i + u] + tiled[u];
    }
    }
    ws.energies.resize(k_total);
    if constexpr (DifferentiableEnergy<E>) {
      if (need_gradient) {
        ws.gradients.resize(dim, k_total);
        energy.energy_and_gradient(ws.proposals, ws.energies, ws.gradients);
      } else {
        energy.energy(ws.proposals, ws.energies);
      }
    } else {
      energy.energy(ws.proposals, ws.energies);
    }
    // A finite (vectorised) sum means every energy is finite; otherwise look at each one.
    if (!std::isfinite(ws.energies.sum())) [[unlikely]] {
      for (Index k = 0; k < k_total; ++k) {
        const S e = ws.energies[k];
        if (std::isnan(e))
          detail::fail("MonteCarloScore: the energy returned NaN at a proposal for sample ", key.first_sample + j,
                       " (t = ", t, ")");
        // +∞ energy is zero density: zero weight, and its gradient must not leak a NaN into the sum.
        if (need_gradient && e == std::numeric_limits<S>::infinity()) ws.gradients.col(k).setZero();
      }
    }
    if (need_gradient && !std::isfinite(ws.gradients.sum()) && !ws.gradients.allFinite()) [[unlikely]]
      detail::fail("MonteCarloScore: the energy gradient is not finite at a finite-energy proposal for sample ",
                   key.first_sample + j, " (t = ", t, ")");
    ws.log_weights = -ws.energies;
  }

  // The estimate from the first k proposals, into result.
  template <class Column, Real S>
  void combine(const Column& x, double a, double s, double lambda, Index k, Workspace<S>& ws, Vector<S>& result) const {
    constexpr Index kPacket = Eigen::internal::packet_traits<S>::size;
    namespace ei = Eigen::internal;
    using Packet = typename ei::packet_traits<S>::type;
    constexpr S kNegInf = -std::numeric_limits<S>::infinity();
    result.setZero(x.rows());
    S top;
    {
      const S* const from = ws.log_weights.data();
      Packet largest = ei::pset1<Packet>(kNegInf);
      Index i = 0;
      for (; i + kPacket <= k; i += kPacket) largest = ei::pmax(largest, ei::ploadu<Packet>(from + i));
      if (i < k) largest = ei::pmax(largest, load_padded(from + i, k - i, ei::pset1<Packet>(kNegInf)));
      top = ei::predux_max(largest);  // the log-weights hold no NaN (propose checked the energies)
    }
    if (top == kNegInf) return;  // every proposal has zero density
    // The exponentials over whole packets (a ragged end would go to scalar libm calls), straight
    // from the log-weights: the packet operations of (log_w − top).exp() over an aligned array
    // padded with top, in one pass. The padding is never read.
    const Index padded = (k + kPacket - 1) / kPacket * kPacket;
    ws.weights.resize(padded);
    {
      const S* const from = ws.log_weights.data();
      S* const to = ws.weights.data();
      const Packet shift = ei::pset1<Packet>(top);
      Index i = 0;
      for (; i + kPacket <= k; i += kPacket) ei::pstore(to + i, ei::pexp(ei::psub(ei::ploadu<Packet>(from + i), shift)));
      if (i < k) {
        ei::pstore(to + i, ei::pexp(ei::psub(load_padded(from + i, k - i, shift), shift)));
      }
    }
    const S total = ws.weights.head(k).sum();
    if (lambda < 1) {
      weighted_sum(ws.gradients, k, ws);
      result += static_cast<S>(1 - lambda) * (-ws.sum / (static_cast<S>(a) * total));
    }
    if (lambda > 0) {
      weighted_sum(ws.proposals, k, ws);
      result += static_cast<S>(lambda) * ((static_cast<S>(a) * (ws.sum / total) - x) / static_cast<S>(s * s));
    }
  }

  // The first n (< one packet) values from `from`, the other lanes from `fill`: a masked load
  // where there is one (a packet load of scalars just stored waits for them to reach the cache).
  template <class Packet, Real S>
  static Packet load_padded(const S* from, Index n, const Packet& fill) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<S, float> && Eigen::internal::packet_traits<S>::size == 16)
      return _mm512_mask_loadu_ps(fill, static_cast<__mmask16>((1u << n) - 1), from);
    if constexpr (std::is_same_v<S, double> && Eigen::internal::packet_traits<S>::size == 8)
      return _mm512_mask_loadu_pd(fill, static_cast<__mmask8>((1u << n) - 1), from);
#endif
    constexpr Index kPacket = Eigen::internal::packet_traits<S>::size;
    alignas(64) S lanes[kPacket];
    Eigen::internal::pstore(lanes, fill);
    for (Index u = 0; u < n; ++u) lanes[u] = from[u];
    return Eigen::internal::pload<Packet>(lanes);
  }

  // ws.sum = Σ_{c < k} ws.weights[c]·v.col(c). The D×k values are one flat array; runs of kTile
  // columns are multiplied by their weights repeated D times and summed into a D×kTile tile, whose
  // columns are added at the end: contiguous loops that vectorise for any D (Eigen's matrix–vector
  // product takes D < the packet size one scalar at a time, each product waiting on the last sum).
  template <Real S>
  static void weighted_sum(const Matrix<S>& v, Index k, Workspace<S>& ws) {
#if defined(__AVX512F__)
    if (v.rows() <= Eigen::internal::packet_traits<S>::size) {
      weighted_sum_permuted(v, k, ws);
      return;
    }
#endif
    constexpr Index kTile = 16;
    const Index dim = v.rows(), run = dim * kTile;
    ws.partial.setZero(2 * run);  // the tile, then one run's repeated weights
    S* __restrict const tile = ws.partial.data();
    S* __restrict const repeated = tile + run;
    const S* __restrict const values = v.data();
    const S* __restrict const weights = ws.weights.data();
    Index c = 0;
    for (; c + kTile <= k; c += kTile) {
      for (Index u = 0; u < kTile; ++u)
        for (Index i = 0; i < dim; ++i) repeated[u * dim + i] = weights[c + u];
      const S* __restrict const block = values + c * dim;
      for (Index u = 0; u < run; ++u) tile[u] += block[u] * repeated[u];
    }
    for (Index u = 0; c + u < k; ++u)  // the last columns into the tile's first ones
      for (Index i = 0; i < dim; ++i) tile[u * dim + i] += values[(c + u) * dim + i] * weights[c + u];
    ws.sum = Eigen::Map<const Matrix<S>>(tile, dim, kTile).rowwise().sum();
  }

#if defined(__AVX512F__)
  // The proposals y = noise_scale·ε + x/a for D ≤ L (the lanes of one register): D registers hold
  // x/a repeated L times (one permute each), and every run of L columns is D fused multiply-adds —
  // the operations of the tiled loop in propose, in registers.
  template <Real S>
  static void proposals_permuted(const S* x, S inv_a, S noise_scale, Workspace<S>& ws) {
    constexpr bool kFloat = std::is_same_v<S, float>;
    constexpr Index kLanes = kFloat ? 16 : 8;
    using Packet = typename Eigen::internal::packet_traits<S>::type;
    using IndexScalar = std::conditional_t<kFloat, std::int32_t, std::int64_t>;
    const Index dim = ws.proposals.rows(), total = ws.proposals.size(), run = dim * kLanes;
    if (ws.tile_dim != dim) {  // tile_index[u] = u mod D
      ws.tile_index.resize(kLanes * kLanes);
      for (Index u = 0; u < run; ++u) ws.tile_index[u] = static_cast<IndexScalar>(u % dim);
      ws.tile_dim = dim;
    }
    const auto mask_of = [](Index lanes) { return static_cast<__mmask16>(lanes >= 16 ? 0xFFFF : (1u << lanes) - 1); };
    const auto load = [](__mmask16 mask, const S* from) {
      if constexpr (kFloat) return _mm512_maskz_loadu_ps(mask, from); else return _mm512_maskz_loadu_pd(static_cast<__mmask8>(mask), from);
    };
    const auto store = [](__mmask16 mask, S* to, const Packet& v) {
      if constexpr (kFloat) _mm512_mask_storeu_ps(to, mask, v); else _mm512_mask_storeu_pd(to, static_cast<__mmask8>(mask), v);
    };
    const auto spread = [](const __m512i& index, const Packet& v) {
      if constexpr (kFloat) return _mm512_permutexvar_ps(index, v); else return _mm512_permutexvar_pd(index, v);
    };
    const Packet scale = Eigen::internal::pset1<Packet>(noise_scale);
    const Packet xa = Eigen::internal::pmul(Eigen::internal::pset1<Packet>(inv_a), load(mask_of(dim), x));
    Packet tiled[kLanes];
    for (Index r = 0; r < dim; ++r) tiled[r] = spread(_mm512_load_si512(ws.tile_index.data() + r * kLanes), xa);
    const S* const noise = ws.noise.data();
    S* const out = ws.proposals.data();
    Index i = 0;
    for (; i + run <= total; i += run)
      for (Index r = 0; r < dim; ++r)
        Eigen::internal::pstoreu(out + i + r * kLanes, Eigen::internal::pmadd(scale, Eigen::internal::ploadu<Packet>(noise + i + r * kLanes), tiled[r]));
    for (Index r = 0; i + r * kLanes < total; ++r) {
      const __mmask16 mask = mask_of(total - i - r * kLanes);
      store(mask, out + i + r * kLanes, Eigen::internal::pmadd(scale, load(mask, noise + i + r * kLanes), tiled[r]));
    }
  }

  // weighted_sum for D ≤ L (the lanes of one register): L columns are D registers of values, and
  // register r needs the weights of columns (r·L + lane)/D — one permute of the L weights each.
  template <Real S>
  static void weighted_sum_permuted(const Matrix<S>& v, Index k, Workspace<S>& ws) {
    constexpr bool kFloat = std::is_same_v<S, float>;
    constexpr Index kLanes = kFloat ? 16 : 8;
    using Packet = typename Eigen::internal::packet_traits<S>::type;  // __m512 or __m512d
    const auto zero = [] { if constexpr (kFloat) return _mm512_setzero_ps(); else return _mm512_setzero_pd(); };
    const auto load = [](__mmask16 mask, const S* from) {
      if constexpr (kFloat) return _mm512_maskz_loadu_ps(mask, from); else return _mm512_maskz_loadu_pd(static_cast<__mmask8>(mask), from);
    };
    const auto spread = [](const __m512i& index, const Packet& w) {
      if constexpr (kFloat) return _mm512_permutexvar_ps(index, w); else return _mm512_permutexvar_pd(index, w);
    };
    const auto fma = [](const Packet& a, const Packet& b, const Packet& c) {
      if constexpr (kFloat) return _mm512_fmadd_ps(a, b, c); else return _mm512_fmadd_pd(a, b, c);
    };
    const Index dim = v.rows();
    // index[i] = i / D, built once per workspace and dimension (a packet load of scalars just
    // stored waits for them to reach the cache).
    using IndexScalar = std::conditional_t<kFloat, std::int32_t, std::int64_t>;
    if (ws.index_dim != dim) {
      ws.index.resize(kLanes * kLanes);
      for (Index column = 0, i = 0; column < kLanes; ++column)
        for (Index row = 0; row < dim; ++row) ws.index[i++] = static_cast<IndexScalar>(column);
      ws.index_dim = dim;
    }
    const IndexScalar* const index = ws.index.data();
    Packet sums[kLanes];
    __m512i spreads[kLanes];
    for (Index r = 0; r < dim; ++r) {
      sums[r] = zero();
      spreads[r] = _mm512_load_si512(index + r * kLanes);
    }
    const S* const values = v.data();
    const S* const weights = ws.weights.data();
    const __mmask16 all = kFloat ? 0xFFFF : 0xFF;
    Index c = 0;
    for (; c + kLanes <= k; c += kLanes) {
      const Packet w = load(all, weights + c);
      for (Index r = 0; r < dim; ++r) sums[r] = fma(load(all, values + c * dim + r * kLanes), spread(spreads[r], w), sums[r]);
    }
    if (c < k) {
      // The last run is partial: lanes past column k load zeros (masked loads never fault).
      const Index columns = k - c, flat = columns * dim;
      const Packet w = load(static_cast<__mmask16>((1u << columns) - 1), weights + c);
      for (Index r = 0; r * kLanes < flat; ++r) {
        const Index lanes = std::min(flat - r * kLanes, kLanes);
        const __mmask16 mask = lanes == kLanes ? all : static_cast<__mmask16>((1u << lanes) - 1);
        sums[r] = fma(load(mask, values + c * dim + r * kLanes), spread(spreads[r], w), sums[r]);
      }
    }
    alignas(64) S tile[kLanes * kLanes];
    for (Index r = 0; r < dim; ++r) {
      if constexpr (kFloat) _mm512_store_ps(tile + r * kLanes, sums[r]); else _mm512_store_pd(tile + r * kLanes, sums[r]);
    }
    // The tile's D×L columns summed left to right, as Eigen's rowwise().sum() of the tile does.
    // The tile's L columns of D summed in the order of Eigen's rowwise().sum() of the tile (which
    // the first version used): left to right when D is below the packet size; when D is the packet
    // size Eigen vectorises it as c₀ + ((c₁ + c₂) + (c₃ + c₄)) + … and the last columns one by one.
    // One packet of D lanes holds the D running row sums (each lane its own chain).
    const auto add = [](const Packet& a, const Packet& b) {
      if constexpr (kFloat) return _mm512_add_ps(a, b); else return _mm512_add_pd(a, b);
    };
    const __mmask16 rows = static_cast<__mmask16>(dim >= 16 ? 0xFFFF : (1u << dim) - 1);
    Packet total;
    if (dim == kLanes) {  // column c is sums[c]
      total = sums[0];
      Index column = 1;
      for (; column < ((kLanes - 1) & ~Index{3}); column += 4)
        total = add(total, add(add(sums[column], sums[column + 1]), add(sums[column + 2], sums[column + 3])));
      for (; column < kLanes; ++column) total = add(total, sums[column]);
    } else {
      total = load(rows, tile);
      for (Index column = 1; column < kLanes; ++column) total = add(total, load(rows, tile + column * dim));
    }
    ws.sum.resize(dim);
    if constexpr (kFloat) _mm512_mask_storeu_ps(ws.sum.data(), rows, total); else _mm512_mask_storeu_pd(ws.sum.data(), static_cast<__mmask8>(rows), total);
  }
#endif

  template <Real S>
  void clip(Vector<S>& v) const {
    detail::clip_norm_by_block(v, options_.clip, options_.clip_block);
  }

  // At s(t) = 0 the noised density is p(x/a)/a^D, whose score −∇E(x/a)/a needs no sampling.
  template <Energy E>
  std::int64_t exact_at_zero_noise(const E& energy, double a, ConstBatchRef<typename E::Scalar> x,
                                   BatchRef<typename E::Scalar> score) const {
    using S = typename E::Scalar;
    if constexpr (DifferentiableEnergy<E>) {
      const Matrix<S> scaled = x / static_cast<S>(a);
      Vector<S> values(x.cols());
      energy.energy_and_gradient(scaled, values, score);
      score /= -static_cast<S>(a);
      for (Index j = 0; j < x.cols(); ++j) {
        Vector<S> column = score.col(j);
        clip(column);
        score.col(j) = column;
      }
      return x.cols();
    } else {
      detail::fail("MonteCarloScore: the Tweedie form is undefined at s(t) = 0 and the energy has no gradient");
    }
  }

  MonteCarloScoreOptions options_;
};

}  // namespace dqs
