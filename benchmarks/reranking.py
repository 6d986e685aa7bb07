"""k-reciprocal re-ranking: ``bau.evaluation.reranking.re_ranking`` against the dense NumPy version
most re-ID code uses.

The problem is the one of ``benchmarks/ranking.py`` (Market-1501's structure: identities seen by
2-6 of 6 cameras, one query per camera, same-camera junk, pid 0/-1 distractors, random features),
scaled to ``--queries x --gallery``. The default, 1,000 x 5,000, fits any laptop; the dense
version needs several ``(Q + G)^2`` arrays, so Market's full 3,368 x 15,913 costs it ~8 GB and
minutes (``--queries 3368 --gallery 15913`` runs it anyway). The inputs are what ``bau eval
--rerank`` passes: float32 query-gallery, query-query and gallery-gallery distances from
``bau.evaluation.metrics.pairwise_distance``; k1 = 20, k2 = 6, lambda = 0.3 (Zhong et al.'s defaults).

``dense_re_ranking`` below is the reference, written from the algorithm of Zhong et al. (CVPR 2017)
the way the widespread NumPy implementation does it: the full ``N x N`` (N = Q + G) distance matrix,
squared and normalised by its column maxima; a full ``argsort`` of it; the k-reciprocal sets with
the 2/3 expansion rule; a dense ``N x N`` float16 matrix ``V`` of Gaussian-weighted memberships;
local query expansion over the k2 nearest rows; the Jaccard distance through an inverted index of
the non-zero entries of ``V``'s columns; and ``(1 - lambda) * jaccard + lambda * distance``.

Both are timed ``--repeats`` times (median) and their peak memory measured once each in a fresh
process. Both re-ranked matrices are scored with ``bau.evaluation.metrics.evaluate_ranking``. Targets: bau
at least 3x faster, at most half the peak memory, mAP equal to 1e-6.

    python benchmarks/reranking.py                                   # 1,000 x 5,000
    python benchmarks/reranking.py --queries 3368 --gallery 15913    # Market size: ~8 GB for the reference
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from bau.evaluation.metrics import evaluate_ranking, pairwise_distance  # noqa: E402
from bau.evaluation.reranking import re_ranking  # noqa: E402
from benchmarks.common import (  # noqa: E402
    Report,
    describe_machine_line,
    in_fresh_process,
    measure_memory,
    peak_of,
    print_table,
    time_repeated,
)
from benchmarks.ranking import market_like_features  # noqa: E402

TARGET_SPEEDUP = 3.0
TARGET_MEMORY_FRACTION = 0.5
MAP_TOLERANCE = 1e-6

Distances = Tuple[np.ndarray, np.ndarray, np.ndarray]  # q_g [Q, G], q_q [Q, Q], g_g [G, G]


def dense_re_ranking(q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, k1: int = 20, k2: int = 6,
                     lambda_value: float = 0.3, v_dtype: type = np.float16) -> np.ndarray:
    """The reference: k-reciprocal re-ranking with dense ``N x N`` arrays. Returns ``[Q, G]`` float32.

    ``v_dtype``: the storage type of ``V`` and its query expansion; the common implementation uses
    float16 to halve two of its N x N arrays.
    """
    num_q = q_g.shape[0]
    n = num_q + q_g.shape[1]
    # Step 1: every pairwise distance among the N points; squared, each column divided by its
    # maximum, then transposed, so row i holds D[j, i]^2 / max_k D[k, i]^2.
    everything = np.concatenate([np.concatenate([q_q, q_g], axis=1), np.concatenate([q_g.T, g_g], axis=1)], axis=0)
    squared = np.power(everything, 2).astype(np.float32)
    del everything
    dist = np.transpose(squared / np.max(squared, axis=0))
    del squared
    ranking = np.argsort(dist, axis=1).astype(np.int32)
    half = int(np.around(k1 / 2.0))

    def reciprocal(i: int, k: int) -> np.ndarray:
        """Points among the k + 1 nearest of i that also have i among their own k + 1 nearest."""
        forward = ranking[i, :k + 1]
        backward = ranking[forward, :k + 1]
        return forward[np.any(backward == i, axis=1)]

    # Steps 2-4: expanded k-reciprocal sets, encoded as Gaussian weights summing to one per row.
    v = np.zeros((n, n), dtype=v_dtype)
    for i in range(n):
        members = reciprocal(i, k1)
        expanded = members
        for candidate in members:
            theirs = reciprocal(candidate, half)
            if len(np.intersect1d(theirs, members)) > 2.0 / 3.0 * len(theirs):
                expanded = np.append(expanded, theirs)
        expanded = np.unique(expanded)
        weight = np.exp(-dist[i, expanded])
        v[i, expanded] = weight / np.sum(weight)
    dist = dist[:num_q]

    # Step 5: local query expansion, each row replaced by the mean over its k2 nearest.
    if k2 != 1:
        expanded_v = np.zeros_like(v)
        for i in range(n):
            expanded_v[i] = np.mean(v[ranking[i, :k2]], axis=0)
        v = expanded_v
    ranking = None  # free it (reciprocal above is done with it)

    # Step 6: Jaccard distance. For each column, the rows where V is non-zero (inverted index);
    # each query adds min(V[q, l], V[r, l]) to every row r listed under its non-zero columns l.
    rows_of_column = [np.flatnonzero(v[:, col]) for col in range(n)]
    jaccard = np.zeros((num_q, n), dtype=np.float32)
    for q in range(num_q):
        shared = np.zeros(n, dtype=np.float32)
        for col in np.flatnonzero(v[q]):
            rows = rows_of_column[col]
            shared[rows] += np.minimum(v[q, col], v[rows, col])
        jaccard[q] = 1.0 - shared / (2.0 - shared)

    # Step 7
    return (jaccard * (1.0 - lambda_value) + dist * lambda_value)[:, num_q:]


def make_distances(num_queries: int, num_gallery: int, seed: int) -> Tuple[Distances, Dict[str, np.ndarray]]:
    """The three float32 distance blocks ``bau eval --rerank`` feeds to re-ranking, and the labels."""
    num_ids = max(1, round(750 * num_queries / 3368))
    f = market_like_features(num_queries, num_gallery, num_ids=num_ids,
                             num_distractors=round(num_gallery * 2798 / 15913), seed=seed)
    distances = (pairwise_distance(f.q_feats, f.g_feats), pairwise_distance(f.q_feats, f.q_feats),
                 pairwise_distance(f.g_feats, f.g_feats))
    labels = {"q_pids": f.q_pids, "g_pids": f.g_pids, "q_camids": f.q_camids, "g_camids": f.g_camids}
    return distances, labels


def run_variant(name: str, distances: Distances, v_dtype: type) -> np.ndarray:
    if name == "bau":
        return re_ranking(*distances, k1=20, k2=6, lambda_value=0.3)
    return dense_re_ranking(*distances, k1=20, k2=6, lambda_value=0.3, v_dtype=v_dtype)


def memory_of_variant(name: str, num_queries: int, num_gallery: int, seed: int, threads: int,
                      v_dtype_name: str) -> Dict[str, object]:
    """Run in a fresh process: build the distances, then measure one re-ranking."""
    torch.set_num_threads(threads)
    distances, _ = make_distances(num_queries, num_gallery, seed)
    _, memory = measure_memory(lambda: run_variant(name, distances, np.dtype(v_dtype_name).type))
    return memory.to_dict()


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queries", type=int, default=1000, help="query images (Market: 3,368)")
    ap.add_argument("--gallery", type=int, default=5000, help="gallery images (Market: 15,913)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per implementation (the median is reported)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    ap.add_argument("--v-dtype", choices=("float16", "float32", "float64"), default="float16",
                    help="storage type of the reference's V matrix (the common implementation: float16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory", choices=("fresh", "inline", "off"), default="fresh",
                    help="peak memory: one fresh process per implementation (default), in this process, or not at all")
    ap.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    return ap.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    v_dtype = np.dtype(args.v_dtype).type
    distances, labels = make_distances(args.queries, args.gallery, args.seed)
    n = args.queries + args.gallery
    report = Report("reranking")
    report.size = {"queries": args.queries, "gallery": args.gallery, "N": n, "k1": 20, "k2": 6, "lambda": 0.3,
                   "reference_v_dtype": args.v_dtype, "repeats": args.repeats, "threads": threads}
    print(f"k-reciprocal re-ranking: {args.queries:,} queries x {args.gallery:,} gallery (N = {n:,}; "
          f"the reference holds N x N = {n * n / 1e6:,.1f}M-entry arrays), k1=20 k2=6 lambda=0.3, float32 inputs")
    print(describe_machine_line(report.machine))

    labels_list = [labels["q_pids"], labels["g_pids"], labels["q_camids"], labels["g_camids"]]
    before = evaluate_ranking(distances[0], *labels_list)
    outputs: Dict[str, np.ndarray] = {}
    names = {"bau": "bau.evaluation.reranking.re_ranking", "dense": f"dense NumPy reference (V {args.v_dtype})"}
    rows = []
    for name, label in names.items():
        # No warm-up call: each call allocates afresh anyway, and at Market size one costs minutes.
        timing = time_repeated(lambda: run_variant(name, distances, v_dtype), repeats=args.repeats, warmup=0)
        outputs[name] = timing.last_result
        memory = None
        if args.memory == "fresh":
            memory = in_fresh_process(memory_of_variant, name, args.queries, args.gallery, args.seed, threads,
                                      args.v_dtype)
        elif args.memory == "inline":
            memory = measure_memory(lambda: run_variant(name, distances, v_dtype))[1].to_dict()
        metrics = evaluate_ranking(outputs[name], *labels_list)
        report.results[name] = {"label": label, **timing.to_dict(), "memory": memory, "mAP": metrics["mAP"],
                                "rank1": float(metrics["cmc"][0])}
        rows.append([label, timing.median, timing.best, "-" if memory is None else memory["traced_peak_mb"],
                     "-" if memory is None else memory["rss_growth_mb"], metrics["mAP"], float(metrics["cmc"][0])])
    print()
    print_table(["implementation", "median s", "min s", "NumPy peak MB", "RSS peak growth MB", "mAP", "Rank-1"], rows)
    print("(peak memory: extra memory during one call on top of the inputs; the memory target uses the larger "
          "of the two columns)")

    bau, dense = report.results["bau"], report.results["dense"]
    speedup = dense["median_s"] / bau["median_s"]
    map_diff = abs(bau["mAP"] - dense["mAP"])
    max_dist_diff = float(np.max(np.abs(outputs["bau"] - outputs["dense"])))
    print()
    print(f"before re-ranking: mAP {before['mAP']:.6f}  Rank-1 {before['cmc'][0]:.6f}")
    print(f"check: |mAP diff| {map_diff:.1e} (tolerance {MAP_TOLERANCE:g}) -> "
          f"{'same' if map_diff <= MAP_TOLERANCE else 'DIFFERENT'};"
          f" max |distance diff| {max_dist_diff:.1e}")
    print(f"target: bau >= {TARGET_SPEEDUP:g}x faster: {speedup:.2f}x -> "
          f"{'met' if speedup >= TARGET_SPEEDUP else 'MISSED'}")
    checks = {"speedup": speedup, "target_speedup": TARGET_SPEEDUP, "speedup_met": speedup >= TARGET_SPEEDUP,
              "mAP_abs_diff": map_diff, "mAP_same": map_diff <= MAP_TOLERANCE, "max_distance_abs_diff": max_dist_diff,
              "mAP_before_reranking": before["mAP"]}
    if bau["memory"] is not None and dense["memory"] is not None:
        reference_mb = peak_of(dense["memory"])
        # Below a megabyte (tiny problems) the counters are too coarse for a ratio.
        fraction = peak_of(bau["memory"]) / reference_mb if reference_mb >= 1.0 else float("nan")
        met = bool(fraction <= TARGET_MEMORY_FRACTION)
        print(f"target: bau peak memory <= {TARGET_MEMORY_FRACTION:g}x the reference's: "
              f"{fraction:.2f}x -> {'met' if met else 'MISSED'}")
        checks.update({"memory_fraction": fraction, "target_memory_fraction": TARGET_MEMORY_FRACTION,
                       "memory_met": met})
    report.checks = checks
    return report.finish(args.json)


if __name__ == "__main__":
    main()
