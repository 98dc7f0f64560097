// dqs: diffusion samplers for Boltzmann densities p(x) ∝ exp(−E(x)). Umbrella header: energies,
// schedules, score estimators, integrators, the sampler, random streams, I/O and metrics.
#pragma once

#include "dqs/types.hpp"
#include "dqs/random/philox.hpp"
#include "dqs/energy/concepts.hpp"
#include "dqs/energy/gaussian_mixture.hpp"
#include "dqs/energy/gmm40.hpp"
#include "dqs/schedule/concepts.hpp"
#include "dqs/schedule/ve_geometric.hpp"
#include "dqs/schedule/vp_linear.hpp"
#include "dqs/schedule/vp_cosine.hpp"
#include "dqs/score/concepts.hpp"
#include "dqs/score/exact.hpp"
#include "dqs/score/monte_carlo.hpp"
#include "dqs/score/posterior_mcmc.hpp"
#include "dqs/sde/concepts.hpp"
#include "dqs/sde/euler_maruyama.hpp"
#include "dqs/sde/heun.hpp"
#include "dqs/sde/predictor_corrector.hpp"
#include "dqs/sde/ancestral.hpp"
#include "dqs/sampler/boltzmann_sampler.hpp"
#include "dqs/sampler/smc_diffusion.hpp"
