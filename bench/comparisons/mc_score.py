"""MC score estimation on GMM-40 (batch 1000): dqs vs ../shared/peers/torch_mc_score.py at equal
threads, K and dtype. Rates are energy+gradient evaluations per second."""


def mc_score(ctx):
    lines = []
    for dtype, cxx in (("float32", "float"), ("float64", "double")):
        for threads in ctx.threads:
            for k in (100, 500, 1000):
                name = f"BM_McScoreGmm40<{cxx}>/K:{k}/threads:{threads}/real_time"
                ours = ctx.run_benchmark("mc_score_bench", f"^BM_McScoreGmm40<{cxx}>/K:{k}/threads:{threads}/")
                peer = ctx.run_peer("torch_mc_score.py", "--energy", "gmm40", "--batch", 1000, "--K", k,
                                    "--sigma", 1.0, "--dtype", dtype, "--threads", threads)
                lines.append((f"mc_score_gmm40_{dtype}_K{k}_t{threads}", ours[name]["evals_per_s"],
                              peer["evals_per_s"]))
    return lines


COMPARISONS = [("mc_score_gmm40", mc_score)]
