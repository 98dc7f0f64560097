// Scores GmmNavigation terminal states written by train_agent --terminal-out (or gmm_reference_policies):
// modes visited, and the RBF-MMD to the 2 000 exact GMM-40 reference samples of the task metric, both
// as the biased V-statistic's root (train_agent's figure) and as the unbiased U-statistic MMD², for the
// whole file and over consecutive blocks of --block episodes (their spread is the noise of a block-sized metric).
// smoke-test: --help
#include <dqs/rl/envs.hpp>

#include <CLI/CLI.hpp>

#include <Eigen/Core>

#include <cmath>
#include <cstdio>
#include <exception>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace {

// episode,x,y rows after a header line.
Eigen::MatrixXd read_terminal(const std::string& path) {
  std::ifstream in(path);
  dqs::detail::require(static_cast<bool>(in), "gmm_terminal_mmd: cannot read ", path);
  std::string line;
  std::getline(in, line);
  std::vector<double> xy;
  // A coordinate must be one whole finite number: anything else names the file and the line.
  const auto coordinate = [&](const std::string& field, long line_number) {
    std::size_t used = 0;
    double value = std::numeric_limits<double>::quiet_NaN();
    try {
      value = std::stod(field, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    dqs::detail::require(used > 0 && used == field.size() && std::isfinite(value), "gmm_terminal_mmd: ", path,
                         " line ", line_number, ": expected episode,x,y with finite x and y, got '", field, "'");
    return value;
  };
  for (long line_number = 2; std::getline(in, line); ++line_number) {
    if (line.empty()) continue;
    std::stringstream row(line);
    std::string episode, x, y;
    std::getline(row, episode, ',');
    std::getline(row, x, ',');
    std::getline(row, y, ',');
    xy.push_back(coordinate(x, line_number));
    xy.push_back(coordinate(y, line_number));
  }
  dqs::detail::require(xy.size() >= 4, "gmm_terminal_mmd: ", path, " holds fewer than 2 terminal states");
  return Eigen::Map<Eigen::MatrixXd>(xy.data(), 2, static_cast<Eigen::Index>(xy.size() / 2));
}

struct Spread {
  double mean = 0, sd = 0;
};

Spread spread(const std::vector<double>& v) {
  Spread s;
  for (const double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  for (const double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / static_cast<double>(v.size() - 1)) : 0.0;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"GmmNavigation terminal-state metrics of --terminal-out CSVs"};
  std::vector<std::string> files;
  std::vector<double> bandwidths = {0.0, 5.0};
  dqs::Index block = 100;
  app.add_option("--csv", files, "terminal-state CSVs (episode,x,y)")->required();
  app.add_option("--bandwidth", bandwidths, "RBF bandwidths (0: median heuristic of the pooled sample)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--block", block, "episodes per block for the block spread (0: none)")->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    for (const auto& file : files) {
      const Eigen::MatrixXd terminal = read_terminal(file);
      const dqs::Index n = terminal.cols();
      std::printf("%s: %ld episodes, modes visited %ld (first %ld episodes: %ld)\n", file.c_str(), static_cast<long>(n),
                  static_cast<long>(dqs::rl::gmm_navigation_modes_visited(terminal)),
                  static_cast<long>(std::min(n, block > 0 ? block : n)),
                  static_cast<long>(dqs::rl::gmm_navigation_modes_visited(terminal.leftCols(std::min(n, block > 0 ? block : n)))));
      for (const double h : bandwidths) {
        const auto all = dqs::rl::gmm_navigation_mmd_estimates(terminal, h);
        std::printf("  h %-6.3g all: MMD %.4f, unbiased MMD^2 %.5f", all.bandwidth, all.mmd(), all.mmd2_unbiased);
        if (block >= 2 && n >= 2 * block) {
          std::vector<double> v, u;
          for (dqs::Index b = 0; b + block <= n; b += block) {
            const auto part = dqs::rl::gmm_navigation_mmd_estimates(terminal.middleCols(b, block), h);
            v.push_back(part.mmd());
            u.push_back(part.mmd2_unbiased);
          }
          const Spread sv = spread(v), su = spread(u);
          std::printf("; %zu blocks of %ld: MMD %.4f ± %.4f (sd), unbiased MMD^2 %.5f ± %.5f (sd)", v.size(),
                      static_cast<long>(block), sv.mean, sv.sd, su.mean, su.sd);
        }
        std::printf("\n");
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
