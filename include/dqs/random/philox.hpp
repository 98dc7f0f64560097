// Counter-based random streams (Random123 Philox4x32-10). A stream is keyed by the seed and counted
// by (sample index, step, purpose, draw): one sample's draws never depend on the thread count, the
// batch split or how many other samples exist, so one seed gives bit-identical samples everywhere.
#pragma once

#include "dqs/detail/check.hpp"
#include "dqs/types.hpp"

#include <Random123/philox.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace dqs::detail {

inline constexpr int kPhiloxLanes = 16;

#if defined(__AVX512F__)
// Eigen's plog_float for positive normal finite arguments, where its frexp is two bit operations
// and its special cases (zero, negative, infinite, NaN, denormal) never apply: the same operations
// on the same values, so the same bits (checked on all 2^23 uniforms of uniform_float).
inline Eigen::internal::Packet16f plog_positive_normal(const Eigen::internal::Packet16f& u) {
  namespace ei = Eigen::internal;
  using Packet = ei::Packet16f;
  const __m512i bits = _mm512_castps_si512(u);
  Packet e = _mm512_add_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(bits, 23)), _mm512_set1_ps(-126.0f));
  Packet x = _mm512_castsi512_ps(
      _mm512_or_si512(_mm512_and_si512(bits, _mm512_set1_epi32(0x007fffff)), _mm512_set1_epi32(0x3f000000)));  // in [0.5, 1)
  const __mmask16 below = _mm512_cmp_ps_mask(x, _mm512_set1_ps(0.707106781186547524f), _CMP_LT_OQ);
  const Packet tmp = _mm512_maskz_mov_ps(below, x);
  x = _mm512_sub_ps(x, _mm512_set1_ps(1.0f));
  e = _mm512_mask_sub_ps(e, below, e, _mm512_set1_ps(1.0f));
  x = _mm512_add_ps(x, tmp);
  const Packet x2 = ei::pmul(x, x), x3 = ei::pmul(x2, x);
  Packet y = ei::pmadd(ei::pset1<Packet>(7.0376836292E-2f), x, ei::pset1<Packet>(-1.1514610310E-1f));
  Packet y1 = ei::pmadd(ei::pset1<Packet>(-1.2420140846E-1f), x, ei::pset1<Packet>(+1.4249322787E-1f));
  Packet y2 = ei::pmadd(ei::pset1<Packet>(+2.0000714765E-1f), x, ei::pset1<Packet>(-2.4999993993E-1f));
  y = ei::pmadd(y, x, ei::pset1<Packet>(1.1676998740E-1f));
  y1 = ei::pmadd(y1, x, ei::pset1<Packet>(-1.6668057665E-1f));
  y2 = ei::pmadd(y2, x, ei::pset1<Packet>(+3.3333331174E-1f));
  y = ei::pmadd(y, x3, y1);
  y = ei::pmadd(y, x3, y2);
  y = ei::pmul(y, x3);
  y = ei::pmadd(ei::pset1<Packet>(-0.5f), x2, y);
  x = ei::padd(x, y);
  return ei::pmadd(e, ei::pset1<Packet>(static_cast<float>(EIGEN_LN2)), x);
}

// Philox4x32-10 on G groups of 16 lanes (counters first + 16g + lane in word 0; words 1–3 and the
// key shared), G ≤ 4, interleaved: one group's rounds are a chain of dependent multiplies, and G
// chains in flight hide each other's latency. Each 32×32→64 product comes from two unsigned
// multiplies of the even and odd lanes (left alone, the compiler widens every lane to 64 bits and
// repacks), its low words included. The four counter words are transposed into block order on the
// way out, and only the first `blocks` blocks (≤ 16·G) are stored.
template <int G>
inline void philox_groups(std::uint32_t first, std::uint32_t w1, std::uint32_t w2, std::uint32_t w3,
                          std::uint32_t key0, std::uint32_t key1, std::uint32_t* out, int blocks) {
  static_assert(G >= 1 && G <= 4);
  const auto mul_hi_lo = [](__m512i a, __m512i m, __m512i& hi, __m512i& lo) {
    // even: the 64-bit products of lanes 0, 2, …; odd: of lanes 1, 3, … (low word first). A
    // masked swap of each 32-bit pair moves the words that belong to the other lanes.
    const __m512i even = _mm512_mul_epu32(a, m), odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
    hi = _mm512_mask_shuffle_epi32(odd, 0x5555, even, _MM_PERM_CDAB);
    lo = _mm512_mask_shuffle_epi32(even, 0xAAAA, odd, _MM_PERM_CDAB);
  };
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i c0[G], c1[G], c2[G], c3[G];
  for (int g = 0; g < G; ++g) {
    c0[g] = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(first + 16u * static_cast<std::uint32_t>(g))), lanes);
    c1[g] = _mm512_set1_epi32(static_cast<int>(w1));
    c2[g] = _mm512_set1_epi32(static_cast<int>(w2));
    c3[g] = _mm512_set1_epi32(static_cast<int>(w3));
  }
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(0xD2511F53u)), m1 = _mm512_set1_epi32(static_cast<int>(0xCD9E8D57u));
  std::uint32_t k0 = key0, k1 = key1;
#pragma GCC unroll 10  // unrolled, the four-word rotation is renaming, not register moves
  for (int round = 0; round < 10; ++round) {
    const __m512i kk0 = _mm512_set1_epi32(static_cast<int>(k0)), kk1 = _mm512_set1_epi32(static_cast<int>(k1));
    for (int g = 0; g < G; ++g) {
      __m512i hi0, lo0, hi1, lo1;
      mul_hi_lo(c0[g], m0, hi0, lo0);
      mul_hi_lo(c2[g], m1, hi1, lo1);
      c0[g] = _mm512_ternarylogic_epi32(hi1, c1[g], kk0, 0x96);  // three-way xor
      c1[g] = lo1;
      c2[g] = _mm512_ternarylogic_epi32(hi0, c3[g], kk1, 0x96);
      c3[g] = lo0;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  const __m512i pairs_lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i pairs_hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  const __m512i quads_lo = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11), quads_hi = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
  for (int g = 0; g < G; ++g) {
    const __m512i ab_lo = _mm512_permutex2var_epi32(c0[g], pairs_lo, c1[g]);
    const __m512i ab_hi = _mm512_permutex2var_epi32(c0[g], pairs_hi, c1[g]);
    const __m512i cd_lo = _mm512_permutex2var_epi32(c2[g], pairs_lo, c3[g]);
    const __m512i cd_hi = _mm512_permutex2var_epi32(c2[g], pairs_hi, c3[g]);
    const __m512i quarter[4] = {_mm512_permutex2var_epi64(ab_lo, quads_lo, cd_lo), _mm512_permutex2var_epi64(ab_lo, quads_hi, cd_lo),
                                _mm512_permutex2var_epi64(ab_hi, quads_lo, cd_hi), _mm512_permutex2var_epi64(ab_hi, quads_hi, cd_hi)};
    for (int q = 0; q < 4; ++q) {  // quarter q holds blocks 16g + 4q … 16g + 4q + 3
      const int left = blocks - 16 * g - 4 * q;
      if (left >= 4) {
        _mm512_storeu_si512(out + 64 * g + 16 * q, quarter[q]);
      } else if (left > 0) {
        _mm512_mask_storeu_epi32(out + 64 * g + 16 * q, static_cast<__mmask16>((1u << (4 * left)) - 1), quarter[q]);
      }
    }
  }
}
#endif

// Philox4x32-10 on kPhiloxLanes consecutive counters (first, first + 1, … in word 0; words 1–3 and
// the key shared). Bit-identical to r123::Philox4x32 (tested). `out` receives the blocks one after
// the other, 4 words each.
inline void philox_lanes(std::uint32_t first, std::uint32_t w1, std::uint32_t w2, std::uint32_t w3,
                         std::uint32_t key0, std::uint32_t key1, std::uint32_t* out) {
#if defined(__AVX512F__)
  philox_groups<1>(first, w1, w2, w3, key0, key1, out, kPhiloxLanes);
#else
  // One lane per counter, all ten rounds inside: the rounds unroll completely and the loop over
  // lanes vectorises (the 32×32→64 products become packed unsigned multiplies).
  for (int i = 0; i < kPhiloxLanes; ++i) {
    std::uint32_t c0 = first + static_cast<std::uint32_t>(i), c1 = w1, c2 = w2, c3 = w3;
    std::uint32_t k0 = key0, k1 = key1;
    for (int round = 0; round < 10; ++round) {
      const std::uint64_t p0 = std::uint64_t{0xD2511F53u} * c0;
      const std::uint64_t p1 = std::uint64_t{0xCD9E8D57u} * c2;
      c0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
      c1 = static_cast<std::uint32_t>(p1);
      c2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
      c3 = static_cast<std::uint32_t>(p0);
      k0 += 0x9E3779B9u;  // the key bump between rounds (the last one is unused)
      k1 += 0xBB67AE85u;
    }
    out[4 * i] = c0;
    out[4 * i + 1] = c1;
    out[4 * i + 2] = c2;
    out[4 * i + 3] = c3;
  }
#endif
}

}  // namespace dqs::detail

namespace dqs::random {

// What a draw is for; part of the counter so that different uses never share numbers.
enum class Purpose : std::uint32_t {
  prior = 1,      // initial points at t = 1
  diffusion = 2,  // the Brownian increment of a reverse-SDE step
  score = 3,      // Monte Carlo score proposals
  corrector = 4,  // Langevin / MALA noise
  accept = 5,     // Metropolis accept/reject uniforms
  exact = 6,      // exact samples of closed-form energies
  mcmc = 7,       // MCMC proposals
  user = 1000,    // first value free for user code
};

// One word to a uniform in (0, 1): the top 23 bits k give (k + 1/2)·2^-23. Every value, 2^-24 up to
// 1 − 2^-24, is exact in float (24-bit significand), so rounding can never reach 0 or 1; a 24-bit
// (k + 1/2)·2^-24 would need 25 bits and round the top value to 1.0f. Double likewise: 52 bits.
inline float uniform_float(std::uint32_t word) { return (static_cast<float>(word >> 9) + 0.5f) * 0x1p-23f; }
inline double uniform_double(std::uint64_t word) { return (static_cast<double>(word >> 12) + 0.5) * 0x1p-52; }

// Identifies the draws of a batch whose column j is global sample `first_sample + j`.
struct StreamKey {
  std::uint64_t seed = 0;
  std::uint64_t first_sample = 0;
  std::uint32_t step = 0;
  Purpose purpose = Purpose::user;
  std::uint32_t draw = 0;  // distinguishes several draws of the same purpose within one step

  StreamKey with(Purpose p, std::uint32_t d = 0) const {
    StreamKey k = *this;
    k.purpose = p;
    k.draw = d;
    return k;
  }
};

// The stream of one sample: uniform or standard normal numbers, filled in blocks of the Philox
// output. Cheap to construct (no state but the counter); not shared between threads.
class Stream {
 public:
  using Rng = r123::Philox4x32;

  // Limits that keep the map (seed, sample, step, purpose, draw, block) → (key, counter) injective:
  // key = seed; counter = (block, sample, step, purpose·2^16 + draw), each field in its own bits.
  static constexpr std::uint64_t kSampleLimit = std::uint64_t{1} << 32;
  static constexpr std::uint32_t kPurposeLimit = 1u << 16;
  static constexpr std::uint32_t kDrawLimit = 1u << 16;

  Stream(std::uint64_t seed, std::uint64_t sample, std::uint32_t step, Purpose purpose,
         std::uint32_t draw = 0) {
    const auto purpose_bits = static_cast<std::uint32_t>(purpose);
    if (sample >= kSampleLimit || purpose_bits >= kPurposeLimit || draw >= kDrawLimit) [[unlikely]]
      reject(sample, purpose_bits, draw);
    key_ = Rng::key_type{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
    counter_ = Rng::ctr_type{{0u, static_cast<std::uint32_t>(sample), step, (purpose_bits << 16) | draw}};
  }

  Stream(const StreamKey& key, Index column)
      : Stream(key.seed, key.first_sample + static_cast<std::uint64_t>(column), key.step, key.purpose,
               key.draw) {}

  // Next four 32-bit words.
  Rng::ctr_type next_block() {
    reserve_blocks(1);
    Rng rng;
    auto out = rng(counter_, key_);
    ++counter_.v[0];
    return out;
  }

  // The next `blocks` blocks into out[0 .. 4·blocks): the same words as `blocks` calls of
  // next_block(), generated kPhiloxLanes blocks at a time.
  void next_blocks(std::uint32_t* out, Index blocks) {
    reserve_blocks(blocks);
    Index b = 0;
#if defined(__AVX512F__)
    // Four groups of 16 counters at a time, and the rest (< 64 blocks) in one call of as many
    // groups as it needs: no block is left to the scalar generator.
    const auto groups = [&](Index count) {
      const std::uint32_t c0 = counter_.v[0] + static_cast<std::uint32_t>(b);
      const int n = static_cast<int>(count);
      std::uint32_t* const to = out + 4 * b;
      switch ((count + 15) / 16) {
        case 1: detail::philox_groups<1>(c0, counter_.v[1], counter_.v[2], counter_.v[3], key_.v[0], key_.v[1], to, n); break;
        case 2: detail::philox_groups<2>(c0, counter_.v[1], counter_.v[2], counter_.v[3], key_.v[0], key_.v[1], to, n); break;
        case 3: detail::philox_groups<3>(c0, counter_.v[1], counter_.v[2], counter_.v[3], key_.v[0], key_.v[1], to, n); break;
        default: detail::philox_groups<4>(c0, counter_.v[1], counter_.v[2], counter_.v[3], key_.v[0], key_.v[1], to, n); break;
      }
      b += count;
    };
    while (blocks - b >= 64) groups(64);
    if (blocks > b) groups(blocks - b);
    counter_.v[0] += static_cast<std::uint32_t>(blocks);
#else
    constexpr Index L = detail::kPhiloxLanes;
    for (; b + L <= blocks; b += L) {
      detail::philox_lanes(counter_.v[0], counter_.v[1], counter_.v[2], counter_.v[3], key_.v[0], key_.v[1],
                           out + 4 * b);
      counter_.v[0] += static_cast<std::uint32_t>(L);
    }
    for (; b < blocks; ++b) {
      Rng rng;
      const auto block = rng(counter_, key_);
      ++counter_.v[0];
      for (int w = 0; w < 4; ++w) out[4 * b + w] = block.v[w];
    }
#endif
  }

  // Uniforms in the open interval (0, 1), see uniform_float / uniform_double. A float takes one
  // word, a double two; the unused words of the last block are skipped.
  template <Real S, class Derived>
  void uniform(Eigen::DenseBase<Derived>& out) {
    constexpr Index kChunk = 64;  // blocks per pass, a multiple of kPhiloxLanes
    constexpr Index kWordsPerValue = std::same_as<S, float> ? 1 : 2;
    alignas(64) std::uint32_t words[4 * kChunk];
    const Index n = out.size();
    for (Index i = 0; i < n;) {
      const Index values = std::min<Index>(n - i, 4 * kChunk / kWordsPerValue);
      next_blocks(words, (values * kWordsPerValue + 3) / 4);
      if constexpr (std::same_as<S, float>) {
        for (Index v = 0; v < values; ++v) out.coeffRef(i + v) = uniform_float(words[v]);
      } else {
        for (Index v = 0; v < values; ++v)
          out.coeffRef(i + v) = uniform_double((std::uint64_t{words[2 * v]} << 32) | words[2 * v + 1]);
      }
      i += values;
    }
  }

  // Standard normals by Box–Muller over vectorised Eigen arrays: the first ⌈n/2⌉ outputs are the
  // cosine halves, the rest the sine halves of the same uniform pairs. `out` is any dense vector.
  template <Real S, class Derived>
  void normal(Eigen::DenseBase<Derived>&& out) { normal<S>(out); }

  template <Real S, class Derived>
  void normal(Eigen::DenseBase<Derived>& out) {
    const Index n = out.size();
    const Index pairs = (n + 1) / 2;
    // Scratch u (2·pairs), radius and angle (pairs each): on the stack when small, aligned like
    // Eigen's heap arrays, so the split between SIMD and scalar tails (and hence every bit) is the
    // same either way.
    using Array = Eigen::Array<S, Eigen::Dynamic, 1>;
    using Scratch = Eigen::Map<Array, Eigen::AlignedMax>;
    constexpr Index kStackScalars = 2048;
    alignas(EIGEN_MAX_ALIGN_BYTES) S stack[kStackScalars];
    const Index padded_pairs = (pairs + 63) / 64 * 64;  // keeps radius and angle aligned
    Array heap(4 * padded_pairs > kStackScalars ? 4 * padded_pairs : 0);
    S* const base = heap.size() > 0 ? heap.data() : stack;
    Scratch u(base, 2 * pairs), radius(base + 2 * padded_pairs, pairs), angle(base + 3 * padded_pairs, pairs);
    uniform<S>(u);
    radius = (S(-2) * u.head(pairs).log()).sqrt();
    angle = S(2 * std::numbers::pi) * u.tail(pairs);
    // Evaluated into plain arrays first: a reshaped or strided destination has no SIMD path, and
    // would turn the sine and cosine into scalar libm calls.
    u.head(pairs) = radius * angle.cos();
    u.tail(pairs) = radius * angle.sin();
    out.derived().array() = u.head(n);
  }

  // The normals of normal() — same uniforms, same pairing — with every logarithm, sine and cosine
  // on full SIMD packets over padded scratch. normal() hands its ragged ends (half the count not a
  // multiple of the packet size, and the unaligned start of the sine halves) to scalar libm calls,
  // which for a few hundred values cost as much as everything else; here those values can differ
  // from normal()'s in the last bits. For the few hundred normals per sample and step of the
  // Monte Carlo score's proposals. `out` holds n values.
  template <Real S>
  void normal_packets(S* out, Index n) {
#if defined(__AVX512F__)
    if constexpr (std::same_as<S, float> && Eigen::internal::packet_traits<float>::size == 16) {
      normal_packets_avx512(out, n);
      return;
    }
#endif
    using Array = Eigen::Array<S, Eigen::Dynamic, 1>;
    using Aligned = Eigen::Map<Array, Eigen::AlignedMax>;
    constexpr Index kPacket = Eigen::internal::packet_traits<S>::size;
    const Index pairs = (n + 1) / 2;
    const Index padded = (pairs + kPacket - 1) / kPacket * kPacket;
    // u: the 2·pairs uniforms, padded up to pairs + padded values (the angles read u[pairs, pairs +
    // padded)) and to a whole packet; then radii, angles and the cosine halves.
    const Index u_size = (pairs + padded + kPacket - 1) / kPacket * kPacket;
    constexpr Index kStackScalars = 2048;
    alignas(EIGEN_MAX_ALIGN_BYTES) S stack[kStackScalars];
    Array heap(u_size + 3 * padded > kStackScalars ? u_size + 3 * padded : 0);
    S* const u = heap.size() > 0 ? heap.data() : stack;
    Eigen::Map<Array> uniforms(u, 2 * pairs);
    uniform<S>(uniforms);
    std::fill(u + 2 * pairs, u + u_size, S(0.5));
    Aligned radius(u + u_size, padded), angle(u + u_size + padded, padded), cosine(u + u_size + 2 * padded, padded);
    radius = (S(-2) * Aligned(u, padded).log()).sqrt();
    angle = S(2 * std::numbers::pi) * Eigen::Map<Array>(u + pairs, padded);
    cosine = radius * angle.cos();
    radius = radius * angle.sin();
    std::copy(cosine.data(), cosine.data() + pairs, out);
    std::copy(radius.data(), radius.data() + (n - pairs), out + pairs);
  }

 private:
#if defined(__AVX512F__)
  // normal_packets<float> in one pass over 16-lane packets: the same words, the same packet
  // functions on the same values (so the same bits), with no scratch arrays between the steps, and
  // sine and cosine from one shared range reduction (the steps of Eigen's psincos_float, which
  // computes both polynomials for either function anyway).
  void normal_packets_avx512(float* out, Index n) {
    namespace ei = Eigen::internal;
    using Packet = ei::Packet16f;
    const Index pairs = (n + 1) / 2, padded = (pairs + 15) / 16 * 16;
    const Index blocks = (2 * pairs + 3) / 4;  // the blocks uniform<float>(2·pairs) would draw
    reserve_blocks(blocks);
    // Words in whole groups of 64 (16 blocks), covering the angles' reach pairs + padded + 16;
    // words past the 2·pairs uniforms feed only unused lanes. Every word is written and read as
    // an aligned packet: a load that spans two packet stores, or a masked one, cannot be served
    // from the store queue, and waits for the stores to retire.
    const Index groups = (pairs + padded + 16 + 63) / 64;
    constexpr Index kStackGroups = 16;
    alignas(64) std::uint32_t stack[64 * kStackGroups];
    Eigen::Matrix<std::uint32_t, Eigen::Dynamic, 1> heap(groups > kStackGroups ? 64 * groups : 0);  // 64-byte aligned
    std::uint32_t* const words = groups > kStackGroups ? heap.data() : stack;
    const std::uint32_t c0 = counter_.v[0];
    Index g = 0;
    for (; g + 4 <= groups; g += 4)
      detail::philox_groups<4>(c0 + static_cast<std::uint32_t>(16 * g), counter_.v[1], counter_.v[2], counter_.v[3],
                               key_.v[0], key_.v[1], words + 64 * g, 64);
    switch (groups - g) {
      case 1: detail::philox_groups<1>(c0 + static_cast<std::uint32_t>(16 * g), counter_.v[1], counter_.v[2], counter_.v[3], key_.v[0], key_.v[1], words + 64 * g, 16); break;
      case 2: detail::philox_groups<2>(c0 + static_cast<std::uint32_t>(16 * g), counter_.v[1], counter_.v[2], counter_.v[3], key_.v[0], key_.v[1], words + 64 * g, 32); break;
      case 3: detail::philox_groups<3>(c0 + static_cast<std::uint32_t>(16 * g), counter_.v[1], counter_.v[2], counter_.v[3], key_.v[0], key_.v[1], words + 64 * g, 48); break;
      default: break;
    }
    counter_.v[0] += static_cast<std::uint32_t>(blocks);
    const auto uniforms = [](__m512i w) {  // uniform_float on 16 words
      return _mm512_mul_ps(_mm512_add_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(w, 9)), _mm512_set1_ps(0.5f)),
                           _mm512_set1_ps(0x1p-23f));
    };
    // The angles' words start at `pairs`, shift lanes into a packet: two aligned loads, one permute.
    const Index shift = pairs % 16, base = pairs - shift;
    const __m512i select = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32(static_cast<int>(shift)));
    const Packet two_pi = ei::pset1<Packet>(static_cast<float>(2 * std::numbers::pi)), minus_two = ei::pset1<Packet>(-2.0f);
    __m512i next = _mm512_load_si512(words + base);
    for (Index i = 0; i < padded; i += 16) {
      const Packet radius = ei::psqrt(ei::pmul(minus_two, detail::plog_positive_normal(uniforms(_mm512_load_si512(words + i)))));
      const __m512i low = next;
      next = _mm512_load_si512(words + base + i + 16);
      Packet cosine, sine;
      sincos(ei::pmul(two_pi, uniforms(_mm512_permutex2var_epi32(low, select, next))), sine, cosine);
      cosine = ei::pmul(radius, cosine);
      sine = ei::pmul(radius, sine);
      const Index cos_left = pairs - i, sin_left = n - pairs - i;
      if (cos_left >= 16)
        _mm512_storeu_ps(out + i, cosine);
      else
        _mm512_mask_storeu_ps(out + i, static_cast<__mmask16>((1u << cos_left) - 1), cosine);
      if (sin_left >= 16)
        _mm512_storeu_ps(out + pairs + i, sine);
      else if (sin_left > 0)
        _mm512_mask_storeu_ps(out + pairs + i, static_cast<__mmask16>((1u << sin_left) - 1), sine);
    }
  }

  // Eigen's psincos_float (FMA reduction; arguments in [0, 2π), far below its huge-argument
  // threshold) with both results: bit-identical to psin_float and pcos_float (checked on all
  // 2^23 angles).
  static void sincos(const Eigen::internal::Packet16f& arg, Eigen::internal::Packet16f& sine,
                     Eigen::internal::Packet16f& cosine) {
    namespace ei = Eigen::internal;
    using Packet = ei::Packet16f;
    using PacketI = ei::Packet16i;
    const Packet cst_rounding_magic = ei::pset1<Packet>(12582912);
    const Packet sign_mask = ei::pset1frombits<Packet>(0x80000000u);
    Packet x = ei::pabs(arg);
    Packet y = ei::pmul(x, ei::pset1<Packet>(0.636619746685028076171875f));
    Packet y_round = ei::padd(y, cst_rounding_magic);
    EIGEN_OPTIMIZATION_BARRIER(y_round)
    const PacketI y_int = ei::preinterpret<PacketI>(y_round);
    y = ei::psub(y_round, cst_rounding_magic);
    x = ei::pmadd(y, ei::pset1<Packet>(-1.57079601287841796875f), x);
    x = ei::pmadd(y, ei::pset1<Packet>(-3.1391647326017846353352069854736328125e-07f), x);
    x = ei::pmadd(y, ei::pset1<Packet>(-5.390302529957764765544681040410068817436695098876953125e-15f), x);
    const Packet sin_sign = ei::pand(ei::pxor(arg, ei::preinterpret<Packet>(ei::plogical_shift_left<30>(y_int))), sign_mask);
    const Packet cos_sign = ei::pand(
        ei::preinterpret<Packet>(ei::plogical_shift_left<30>(ei::padd(y_int, ei::pset1<PacketI>(1)))), sign_mask);
    const Packet poly_mask = ei::preinterpret<Packet>(ei::pcmp_eq(ei::pand(y_int, ei::pset1<PacketI>(1)), ei::pzero(y_int)));
    const Packet x2 = ei::pmul(x, x);
    Packet y1 = ei::pset1<Packet>(2.4372266125283204019069671630859375e-05f);
    y1 = ei::pmadd(y1, x2, ei::pset1<Packet>(-0.00138865201734006404876708984375f));
    y1 = ei::pmadd(y1, x2, ei::pset1<Packet>(0.041666619479656219482421875f));
    y1 = ei::pmadd(y1, x2, ei::pset1<Packet>(-0.5f));
    y1 = ei::pmadd(y1, x2, ei::pset1<Packet>(1.f));
    Packet y2 = ei::pset1<Packet>(-0.0001959234114083702898469196984621021329076029360294342041015625f);
    y2 = ei::pmadd(y2, x2, ei::pset1<Packet>(0.0083326873655616851693794799871284340042620897293090820312500000f));
    y2 = ei::pmadd(y2, x2, ei::pset1<Packet>(-0.1666666203982298255503735617821803316473960876464843750000000000f));
    y2 = ei::pmul(y2, x2);
    y2 = ei::pmadd(y2, x, x);
    sine = ei::pxor(ei::pselect(poly_mask, y2, y1), sin_sign);
    cosine = ei::pxor(ei::pselect(poly_mask, y1, y2), cos_sign);
  }
#endif

  void reserve_blocks(Index blocks) {
    // 2^32 − 1 blocks (16 GiB of floats) per stream; wrapping would repeat the stream's numbers.
    if (static_cast<std::uint64_t>(blocks) > std::uint64_t{~std::uint32_t{0}} - counter_.v[0]) [[unlikely]]
      detail::fail("Stream: more than 2^32 - 1 blocks drawn from one stream");
  }

  [[noreturn]] static void reject(std::uint64_t sample, std::uint32_t purpose, std::uint32_t draw) {
    if (sample >= kSampleLimit) detail::fail("Stream: sample index must be < 2^32, got ", sample);
    if (purpose >= kPurposeLimit) detail::fail("Stream: purpose must be < 65536, got ", purpose);
    detail::fail("Stream: draw must be < 65536, got ", draw);
  }

  Rng::key_type key_;
  Rng::ctr_type counter_;
};

// Fills column j of `out` with standard normals from the stream of sample key.first_sample + j.
template <Real S>
void fill_normal(const StreamKey& key, BatchRef<S> out) {
  for (Index j = 0; j < out.cols(); ++j) {
    Stream stream(key, j);
    auto column = out.col(j);
    stream.normal<S>(column);
  }
}

}  // namespace dqs::random
