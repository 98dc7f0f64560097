// What the DW-4 / LJ-13 targets of benchmark_table ask of a sampler that draws exactly what the reference files
// hold: every 1000-row slice of <stem>_val.npy, and of <stem>_test.npy outside the seeds' reference slices, is
// scored as if a sampler had produced it (E-W2, dist-W2 = 1-D W2 of energies / pooled interatomic distances).
// smoke-test: --tasks dw4 lj13 --rank-e 0.5 --rank-dist 0.01
#include <dqs/dqs.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace {

using dqs::Index;
using dqs::Matrix;
using dqs::Vector;

constexpr Index kSlice = 1000;  // samples per set, as in benchmark_table

// Rows [first, first + kSlice) of a file as a D×kSlice batch.
Matrix<double> slice(const Matrix<double>& all, Index first) { return all.middleCols(first, kSlice); }

struct Set {
  std::string name;
  Vector<double> energies, distances;
};

template <class E>
Set make_set(const E& energy, const Matrix<double>& x, std::string name) {
  Set s{std::move(name), Vector<double>(x.cols()), dqs::interatomic_distances<double>(energy.layout(), x)};
  energy.energy(x, s.energies);
  return s;
}

double quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

// Every ordered triple of distinct candidate slices, one per reference seed (the table's seeds score three
// independent sample sets): the distribution of the 3-seed mean a sampler of the reference's law would report.
void report_means(const char* metric, const std::vector<std::vector<double>>& w2, double target,
                  const std::vector<double>& rank) {
  const std::size_t n = w2.size(), seeds = w2.front().size();
  std::vector<double> means;
  std::vector<std::size_t> pick(seeds, 0);
  const auto recurse = [&](auto&& self, std::size_t level, double sum) -> void {
    if (level == seeds) {
      means.push_back(sum / static_cast<double>(seeds));
      return;
    }
    for (std::size_t c = 0; c < n; ++c) {
      if (std::find(pick.begin(), pick.begin() + static_cast<std::ptrdiff_t>(level), c) !=
          pick.begin() + static_cast<std::ptrdiff_t>(level))
        continue;
      pick[level] = c;
      self(self, level + 1, sum + w2[c][level]);
    }
  };
  recurse(recurse, 0, 0.0);
  double mean = 0, var = 0;
  for (double m : means) mean += m;
  mean /= static_cast<double>(means.size());
  for (double m : means) var += (m - mean) * (m - mean);
  const double sd = std::sqrt(var / static_cast<double>(means.size() - 1));
  const auto meeting = std::count_if(means.begin(), means.end(), [&](double m) { return m <= target; });
  std::printf("  %-8s mean over the seeds: %.4g ± %.2g (5 / 50 / 95 %%: %.4g / %.4g / %.4g, range %.4g – %.4g); "
              "<= %.4g (1.3 × published floor) in %.1f %% of %zu triples\n",
              metric, mean, sd, quantile(means, 0.05), quantile(means, 0.5), quantile(means, 0.95),
              *std::min_element(means.begin(), means.end()), *std::max_element(means.begin(), means.end()), target,
              100.0 * static_cast<double>(meeting) / static_cast<double>(means.size()), means.size());
  for (const double v : rank) {
    const auto below = std::count_if(means.begin(), means.end(), [&](double m) { return m < v; });
    std::printf("           %.4g is above %.1f %% of the triples\n", v,
                100.0 * static_cast<double>(below) / static_cast<double>(means.size()));
  }
}

template <class E>
void run(const E& energy, const std::string& stem, const std::vector<std::uint64_t>& seeds, double floor_e,
         double floor_dist, const std::vector<double>& rank_e, const std::vector<double>& rank_dist) {
  const std::string data = DQS_SHARED_DIR "/data/" + stem;
  const Matrix<double> test = dqs::io::read_npy<double>(data + "_test.npy");
  const Matrix<double> val = dqs::io::read_npy<double>(data + "_val.npy");
  dqs::detail::require(test.rows() == energy.dim() && val.rows() == energy.dim(), "particle_metric_noise: ", stem,
                       " files must have ", energy.dim(), " columns");
  // Every ordered tuple of distinct slices, one per seed, is enumerated: 17·16·15·14·13 ≈ 7.4·10⁵ at 5 seeds.
  dqs::detail::require(!seeds.empty() && seeds.size() <= 5, "particle_metric_noise: --seeds must name 1 to 5 seeds, got ",
                       seeds.size());
  std::vector<Set> references, candidates;
  std::vector<bool> used(static_cast<std::size_t>(test.cols() / kSlice), false);
  for (const std::uint64_t seed : seeds) {
    const Index first = static_cast<Index>(seed - 1) * kSlice;  // benchmark_table's reference rows of a seed
    dqs::detail::require(seed >= 1 && first + kSlice <= test.cols(), "particle_metric_noise: --seeds ", seed,
                         " has no reference slice in ", stem, "_test.npy");
    references.push_back(make_set(energy, slice(test, first), stem + "_test[" + std::to_string(first) + ":]"));
    used[static_cast<std::size_t>(seed - 1)] = true;
  }
  for (Index k = 0; k + 1 <= val.cols() / kSlice; ++k)
    candidates.push_back(make_set(energy, slice(val, k * kSlice), stem + "_val[" + std::to_string(k * kSlice) + ":]"));
  for (Index k = 0; k + 1 <= test.cols() / kSlice; ++k)
    if (!used[static_cast<std::size_t>(k)])
      candidates.push_back(
          make_set(energy, slice(test, k * kSlice), stem + "_test[" + std::to_string(k * kSlice) + ":]"));
  dqs::detail::require(candidates.size() >= seeds.size(), "particle_metric_noise: ", stem, " has only ",
                       candidates.size(), " candidate slices for ", seeds.size(), " seeds");

  std::printf("%s: %zu candidate sets of %ld rows, scored against the reference slices of seeds", stem.c_str(),
              candidates.size(), static_cast<long>(kSlice));
  for (const auto s : seeds) std::printf(" %lu", static_cast<unsigned long>(s));
  std::printf("\n  %-16s %-28s %-28s\n", "set", "E-W2 per seed", "dist-W2 per seed");
  std::vector<std::vector<double>> e_w2, d_w2;
  for (const Set& c : candidates) {
    e_w2.emplace_back();
    d_w2.emplace_back();
    for (const Set& r : references) {
      e_w2.back().push_back(dqs::metrics::w2_1d(c.energies, r.energies));
      d_w2.back().push_back(dqs::metrics::w2_1d(c.distances, r.distances));
    }
    std::string es, ds;
    char buf[32];
    for (std::size_t i = 0; i < references.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%.3f ", e_w2.back()[i]);
      es += buf;
      std::snprintf(buf, sizeof buf, "%.4f ", d_w2.back()[i]);
      ds += buf;
    }
    std::printf("  %-16s %-28s %-28s\n", c.name.c_str(), es.c_str(), ds.c_str());
  }
  report_means("E-W2", e_w2, 1.3 * floor_e, rank_e);
  report_means("dist-W2", d_w2, 1.3 * floor_dist, rank_dist);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"E-W2 and dist-W2 of the reference files' own slices against benchmark_table's reference slices"};
  std::vector<std::string> tasks{"dw4", "lj13"};
  std::vector<std::uint64_t> seeds{1, 2, 3};
  app.add_option("--tasks", tasks, "among dw4, lj13");
  app.add_option("--seeds", seeds, "reference seeds (benchmark_table's seed s uses test rows 1000(s-1)...)");
  std::vector<double> rank_e, rank_dist;
  app.add_option("--rank-e", rank_e, "E-W2 values (3-seed means) to place among the triples");
  app.add_option("--rank-dist", rank_dist, "dist-W2 values (3-seed means) to place among the triples");
  CLI11_PARSE(app, argc, argv);
  try {
    for (const auto& t : tasks) {
      if (t == "dw4") {
        run(dqs::DoubleWell<double>{}, "dw4", seeds, 0.135, 0.022, rank_e, rank_dist);  // the published floors
      } else if (t == "lj13") {
        run(dqs::LennardJones<double>{}, "lj13", seeds, 0.56, 0.0052, rank_e, rank_dist);
      } else {
        std::fprintf(stderr, "particle_metric_noise: unknown task '%s' (dw4, lj13)\n", t.c_str());
        return 2;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
