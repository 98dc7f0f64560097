// Consumer of the installed dqs package: samples a 2-D Gaussian with its exact score and checks
// the sample mean (N = 4000, std 1 per axis: the mean's std is 1/√4000 ≈ 0.016; 0.1 is > 6 std).
#include <dqs/dqs.hpp>

#include <cstdio>

int main() {
  const dqs::Gaussian<double> target(Eigen::Vector2d(1.0, -2.0), Eigen::Matrix2d::Identity());
  const dqs::BoltzmannSampler sampler(target, dqs::VEGeometric(0.01, 10.0), dqs::SamplerOptions{.steps = 200},
                                      dqs::EulerMaruyama{}, dqs::ExactScore{});
  const auto result = sampler.sample(4000, 7);
  const Eigen::Vector2d mean = result.samples.rowwise().mean();
  std::printf("consumer: sample mean (%.3f, %.3f)\n", mean[0], mean[1]);
  return (mean - Eigen::Vector2d(1.0, -2.0)).norm() < 0.1 ? 0 : 1;
}
