#!/usr/bin/python3
"""Scatter of 2-D samples over the contours of an energy evaluated on a square grid.

usage: plot_samples.py --samples S.npy --grid G.npy --extent L --out P.png [--title T]
S.npy: (N, 2) samples; G.npy: (1, R*R) or (R, R) energies on [-L, L]^2, row-major (y outer, x inner).
"""
import argparse
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

ap = argparse.ArgumentParser()
ap.add_argument("--samples", required=True)
ap.add_argument("--grid", required=True)
ap.add_argument("--extent", type=float, required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--title", default="")
a = ap.parse_args()

samples = np.load(a.samples)
grid = np.load(a.grid).reshape(-1)
r = int(round(np.sqrt(grid.size)))
energy = grid.reshape(r, r)
axis = np.linspace(-a.extent, a.extent, r)
fig, ax = plt.subplots(figsize=(6, 6), dpi=120)
levels = np.quantile(energy[np.isfinite(energy)], np.linspace(0.0, 0.6, 25))
ax.contour(axis, axis, energy, levels=np.unique(levels), cmap="viridis", linewidths=0.6)
ax.scatter(samples[:, 0], samples[:, 1], s=3, c="crimson", alpha=0.6, label=f"{len(samples)} samples")
ax.set_xlim(-a.extent, a.extent)
ax.set_ylim(-a.extent, a.extent)
ax.set_aspect("equal")
ax.set_title(a.title)
ax.legend(loc="upper right", fontsize=8)
fig.tight_layout()
fig.savefig(a.out)
