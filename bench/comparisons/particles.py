"""LJ-13 energy+gradient evaluations per second, batch 1000, float64, at equal thread counts: dqs's
LennardJones<double>::energy_and_gradient (bench/particles_bench, lj13_f64) against the PyTorch peer
../shared/peers/torch_mc_score.py --energy lj13, whose evals_per_s is B·K points per second of its whole
K-sample Monte Carlo score estimate (one batched autograd pass; the energy+gradient dominates it).
K = 50: the peer's rate is flat in K here (K = 10 and 50 gave the same) and its memory stays < 2 GB."""

PEER_K = 50


def lj13_evals(ctx):
    lines = []
    for threads in ctx.threads:
        runs = ctx.run_benchmark("particles_bench", f"^lj13_f64/batch:1000/threads:{threads}/")
        ours = next(iter(runs.values()))["evals_per_s"]
        peer = ctx.run_peer("torch_mc_score.py", "--energy", "lj13", "--dtype", "float64", "--threads", threads,
                            "--batch", 1000, "--K", PEER_K)["evals_per_s"]
        lines.append((f"lj13_evals_f64_t{threads}", ours, peer))
    return lines


COMPARISONS = [("lj13_evals", lj13_evals)]
