// Catch2 main for dqs_tests: prints the random seed Catch uses for --order rand, so a failing
// shuffled run can be repeated. dqs's own tests take explicit seeds and never use a global RNG.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

int main(int argc, char* argv[]) {
  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
  if (session.configData().rngSeed != 0)
    std::printf("Catch2 rng seed: %u\n", session.configData().rngSeed);
  return session.run();
}
