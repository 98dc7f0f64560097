// Umbrella header for dqs's file input/output: NumPy .npy batches and value vectors.
// A D×N batch is stored as an (N, D) C-order array (one sample per row).
#pragma once

#include "dqs/io/npy.hpp"
