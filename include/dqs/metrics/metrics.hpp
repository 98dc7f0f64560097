// Umbrella header for dqs's sample-quality metrics: exact W2 (network simplex, and 1-D by
// quantiles), RBF-kernel MMD with the median heuristic, and mixture-mode coverage.
#pragma once

#include "dqs/metrics/mmd.hpp"
#include "dqs/metrics/modes.hpp"
#include "dqs/metrics/wasserstein.hpp"
