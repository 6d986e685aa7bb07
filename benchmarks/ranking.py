"""Ranking evaluation (CMC, mAP, mINP) at Market-1501 size against the argsort floor, and at MSMT17 size from features.

The problem (``market_like_problem``) has Market-1501's test shape: 3,368 queries x 15,913 gallery
images of 750 identities seen by 6 cameras. Each identity is seen by 2-6 cameras; it has one query
per camera and at least one gallery image in each of those cameras, so every query has true
matches in other cameras *and* same-camera "junk" that the protocol ignores. 2,798 gallery images
are distractors that match nothing (pid 0, or -1: a negative pid is a distractor for bau). Features
are random (identity centre + camera offset + noise, L2-normalised) and the float32
squared-Euclidean distances come from ``bau.evaluation.metrics.pairwise_distance``, so exact ties are rare.

Three measurements on the same matrix:

* ``bau``: ``bau.evaluation.metrics.evaluate_ranking(distmat, q_pids, g_pids, q_camids, g_camids, max_rank)``;
* ``loop``: the way most re-ID code does it (``per_query_loop`` below, written from the Market
  protocol): argsort the whole matrix, then for each query drop the same-id same-camera entries,
  cumulative-sum the matches, and read CMC, AP and INP off it. Its argsort is stable by default,
  bau's tie rule (equal distances: lower gallery index first), so the two agree even on ties;
* ``argsort``: a bare ``np.argsort(distmat, axis=1)``, the floor any argsort-based ranking pays.

Each is timed ``--repeats`` times in this process, round-robin so that a change in the machine's load
hits all three alike (medians reported; the ratio to the floor is the median of the per-round
ratios); its peak memory is measured once in a fresh process (``--memory fresh``, see
``benchmarks/common.py``). Targets: bau at most 0.7x the argsort floor, and the same mAP / CMC /
mINP as the loop to 1e-9.

``--msmt``: MSMT17's test size, 11,659 queries x 82,161 gallery (3,060 identities, 15 cameras,
2,048-d features): the 3.8 GB distance matrix is never built. ``bau.evaluation.metrics.evaluate_features``
computes and ranks the distances block by block; the script prints its time and peak memory (one
call, in this process, on top of the features), against the floor of one block (its distance
product and its ``np.argsort``, alternated ``--repeats`` times) scaled up to all the queries, and
checks the first block against ``evaluate_ranking`` of its full distance rows. Targets: under a
minute and under 2 GB extra.

    python benchmarks/ranking.py                              # Market size (about a minute)
    python benchmarks/ranking.py --queries 500 --gallery 2500 --ids 120 --json ranking.json
    python benchmarks/ranking.py --msmt                       # MSMT17 size (a few minutes, ~2.5 GB)
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bau.evaluation.metrics import evaluate_features, evaluate_ranking, feature_block_rows, pairwise_distance  # noqa: E402
from benchmarks.common import (  # noqa: E402
    Report,
    Timing,
    describe_machine_line,
    in_fresh_process,
    measure_memory,
    print_table,
    time_repeated,
)

TARGET_FLOOR_RATIO = 0.7
TOLERANCE = 1e-9
MSMT_TARGET_S = 60.0
MSMT_TARGET_MB = 2048.0
# MSMT17's test set; at 2,048 dimensions the noise must be larger for a problem of realistic difficulty.
MSMT = {"queries": 11659, "gallery": 82161, "ids": 3060, "cameras": 15, "distractors": 0, "dim": 2048, "noise": 3.0}


@dataclass
class RankingProblem:
    distmat: np.ndarray  # [Q, G] float32
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray


def _cameras_per_id(rng: np.random.Generator, num_ids: int, num_cams: int, num_queries: int) -> np.ndarray:
    """How many cameras see each identity (2..num_cams), summing to ``num_queries`` (one query per camera)."""
    counts = rng.integers(2, num_cams + 1, size=num_ids)
    # Nudge random identities up or down until the total is exact; stays within [2, num_cams].
    while counts.sum() != num_queries:
        i = rng.integers(num_ids)
        if counts.sum() > num_queries and counts[i] > 2:
            counts[i] -= 1
        elif counts.sum() < num_queries and counts[i] < num_cams:
            counts[i] += 1
    return counts


@dataclass
class MarketLikeFeatures:
    q_feats: np.ndarray  # [Q, dim] float32
    g_feats: np.ndarray  # [G, dim] float32
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray


def market_like_features(num_queries: int = 3368, num_gallery: int = 15913, num_ids: int = 750, num_cams: int = 6,
                         num_distractors: int = 2798, dim: int = 128, noise: float = 1.2,
                         seed: int = 0, chunk_rows: Optional[int] = None) -> MarketLikeFeatures:
    """Random query / gallery features with Market-1501's structure (see the module docstring).

    Identity pids are 1..num_ids, distractors 0 or -1, cameras 0..num_cams-1; the gallery order is
    shuffled. A feature is its identity's centre (a random one for a distractor) plus its camera's
    offset plus noise; ``noise`` (relative to the unit centre) sets how hard the problem is.
    ``chunk_rows``: draw the features in float32, that many rows at a time (another random stream,
    and a fraction of the memory: for MSMT's 82k x 2048); None draws them at once in float64.
    """
    if not 2 * num_ids <= num_queries <= num_cams * num_ids:
        raise SystemExit(f"error: --queries {num_queries}: expected between 2 and {num_cams} queries per identity "
                         f"({2 * num_ids}..{num_cams * num_ids} for {num_ids} ids)")
    id_images = num_gallery - num_distractors
    if num_distractors < 0 or id_images < num_queries:
        raise SystemExit(f"error: --gallery {num_gallery}: expected at least --queries ({num_queries}) gallery images "
                         f"of identities plus {num_distractors} distractors (one per query camera)")
    rng = np.random.default_rng(seed)
    counts = _cameras_per_id(rng, num_ids, num_cams, num_queries)
    cell_pid = np.repeat(np.arange(1, num_ids + 1), counts)  # one (id, camera) cell per query
    cell_cam = np.concatenate([rng.permutation(num_cams)[:c] for c in counts])
    # Every cell gets one gallery image (a cross-camera match for the id's other queries, junk for
    # its own), the rest are spread at random, ~4 per cell at Market size.
    per_cell = 1 + rng.multinomial(id_images - num_queries, np.full(num_queries, 1.0 / num_queries))
    g_pids = np.concatenate([np.repeat(cell_pid, per_cell), rng.choice([0, -1], size=num_distractors)])
    g_camids = np.concatenate([np.repeat(cell_cam, per_cell), rng.integers(0, num_cams, size=num_distractors)])
    shuffle = rng.permutation(num_gallery)
    g_pids, g_camids = g_pids[shuffle], g_camids[shuffle]
    q_pids, q_camids = cell_pid, cell_cam

    centres = rng.normal(size=(num_ids + 1, dim)) / np.sqrt(dim)  # row 0 unused: distractors get their own
    cam_offset = 0.5 * rng.normal(size=(num_cams, dim)) / np.sqrt(dim)

    def features(pids: np.ndarray, cams: np.ndarray) -> np.ndarray:
        if chunk_rows is None:
            own = rng.normal(size=(len(pids), dim)) / np.sqrt(dim)
            base = np.where((pids > 0)[:, None], centres[np.maximum(pids, 0)], own)
            return (base + cam_offset[cams] + noise * rng.normal(size=(len(pids), dim)) / np.sqrt(dim)).astype(
                np.float32)
        out = np.empty((len(pids), dim), dtype=np.float32)
        c32, o32 = centres.astype(np.float32), cam_offset.astype(np.float32)
        for start in range(0, len(pids), chunk_rows):
            p, c = pids[start:start + chunk_rows], cams[start:start + chunk_rows]
            own = rng.standard_normal((len(p), dim), dtype=np.float32) / np.float32(np.sqrt(dim))
            block = np.where((p > 0)[:, None], c32[np.maximum(p, 0)], own)
            block += o32[c]
            block += np.float32(noise / np.sqrt(dim)) * rng.standard_normal((len(p), dim), dtype=np.float32)
            out[start:start + chunk_rows] = block
        return out

    return MarketLikeFeatures(features(q_pids, q_camids), features(g_pids, g_camids), q_pids, g_pids, q_camids,
                              g_camids)


def market_like_problem(num_queries: int = 3368, num_gallery: int = 15913, num_ids: int = 750,
                        num_cams: int = 6, num_distractors: int = 2798, dim: int = 128, noise: float = 1.2,
                        seed: int = 0) -> RankingProblem:
    """``market_like_features`` and their float32 squared-Euclidean distances (the ones bau evaluates)."""
    f = market_like_features(num_queries, num_gallery, num_ids, num_cams, num_distractors, dim, noise, seed)
    return RankingProblem(pairwise_distance(f.q_feats, f.g_feats), f.q_pids, f.g_pids, f.q_camids, f.g_camids)


def tied_relevant_entries(p: RankingProblem) -> Dict[str, int]:
    """How many true-match / junk entries share their exact distance with another entry of their row.

    Those are the only places where two exact rankings may differ (the order of equal distances
    is whatever the sort does), so this says how much the "identical" check below can rely on.
    """
    rows, cols = np.nonzero(p.g_pids[None, :] == p.q_pids[:, None])
    tied = 0
    for r in np.unique(rows):
        sorted_row = np.sort(p.distmat[r])
        values = p.distmat[r, cols[rows == r]]
        tied += int(np.count_nonzero(np.searchsorted(sorted_row, values, "right")
                                     - np.searchsorted(sorted_row, values, "left") > 1))
    return {"relevant_entries": int(len(rows)), "tied_relevant_entries": tied}


def per_query_loop(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, q_camids: np.ndarray,
                   g_camids: np.ndarray, max_rank: int = 50, kind: str = "stable") -> Dict[str, object]:
    """The customary re-ID evaluation: one full argsort, then a Python loop over the queries.

    Market protocol: a gallery entry with the query's id *and* camera is removed from the query's
    ranking; a query with no remaining true match is skipped; AP = mean precision at each match;
    CMC@r = fraction of queries whose first match is within r; INP = #matches / rank of the last.
    A negative gallery pid matches no query (queries with one are skipped).
    ``kind``: NumPy's sort, which decides the order of equal distances ("stable": by gallery index,
    bau's rule; "quicksort", NumPy's default as in most code: unspecified but deterministic).
    """
    order = np.argsort(distmat, axis=1, kind=kind)
    is_match = g_pids[order] == q_pids[:, None]
    cmc_rows: List[np.ndarray] = []
    aps: List[float] = []
    inps: List[float] = []
    for i in range(distmat.shape[0]):
        if q_pids[i] < 0:  # a distractor query: not scored
            continue
        ranked = order[i]
        junk = (g_pids[ranked] == q_pids[i]) & (g_camids[ranked] == q_camids[i])
        hits = is_match[i][~junk].astype(np.float64)
        if not hits.any():
            continue
        found = np.cumsum(hits)
        positions = np.flatnonzero(hits)
        inps.append(found[positions[-1]] / (positions[-1] + 1.0))
        cmc = np.minimum(found, 1.0)[:max_rank]
        if len(cmc) < max_rank:  # a gallery shorter than max_rank: the curve stays at its last value
            cmc = np.concatenate([cmc, np.full(max_rank - len(cmc), cmc[-1])])
        cmc_rows.append(cmc)
        precision = found / np.arange(1, len(hits) + 1)
        aps.append(float((precision * hits).sum() / hits.sum()))
    return {"mAP": float(np.mean(aps)), "cmc": np.mean(cmc_rows, axis=0), "mINP": float(np.mean(inps)),
            "num_valid_queries": len(aps)}


def run_bau(p: RankingProblem, max_rank: int) -> Dict[str, object]:
    return evaluate_ranking(p.distmat, p.q_pids, p.g_pids, p.q_camids, p.g_camids, max_rank=max_rank)


def run_loop(p: RankingProblem, max_rank: int, kind: str = "stable") -> Dict[str, object]:
    return per_query_loop(p.distmat, p.q_pids, p.g_pids, p.q_camids, p.g_camids, max_rank=max_rank, kind=kind)


def run_argsort(p: RankingProblem, max_rank: int) -> np.ndarray:
    return np.argsort(p.distmat, axis=1)


VARIANTS: Dict[str, Callable[[RankingProblem, int], object]] = {
    "bau": run_bau,
    "loop": run_loop,
    "argsort": run_argsort,
}
LABELS = {
    "bau": "bau.evaluation.metrics.evaluate_ranking",
    "loop": "per-query NumPy loop (usual re-ID code)",
    "argsort": "np.argsort(distmat, axis=1) (floor)",
}


def variant_function(name: str, loop_sort: str) -> Callable[[RankingProblem, int], object]:
    if name == "loop":
        return lambda p, max_rank: run_loop(p, max_rank, kind=loop_sort)
    return VARIANTS[name]


def memory_of_variant(variant: str, problem_kwargs: Dict[str, int], max_rank: int,
                      loop_sort: str = "stable") -> Dict[str, object]:
    """Run in a fresh process: build the problem, then measure one call of ``variant``."""
    problem = market_like_problem(**problem_kwargs)
    fn = variant_function(variant, loop_sort)
    _, memory = measure_memory(lambda: fn(problem, max_rank))
    return memory.to_dict()


def compare_metrics(a: Dict[str, object], b: Dict[str, object]) -> Dict[str, float]:
    return {
        "mAP_abs_diff": abs(float(a["mAP"]) - float(b["mAP"])),
        "mINP_abs_diff": abs(float(a["mINP"]) - float(b["mINP"])),
        "cmc_max_abs_diff": float(np.max(np.abs(np.asarray(a["cmc"]) - np.asarray(b["cmc"])))),
        "same_valid_queries": int(a["num_valid_queries"]) == int(b["num_valid_queries"]),
    }


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--msmt", action="store_true",
                    help="MSMT17 size from 2,048-d features, chunked (11,659 x 82,161, 3,060 ids, 15 cameras, "
                         "no distractors); the size options below still override it")
    ap.add_argument("--queries", type=int, help="query images (Market: 3,368)")
    ap.add_argument("--gallery", type=int, help="gallery images (Market: 15,913)")
    ap.add_argument("--ids", type=int, help="test identities (Market: 750)")
    ap.add_argument("--cameras", type=int, help="cameras (Market: 6)")
    ap.add_argument("--distractors", type=int, default=None,
                    help="gallery images of no test identity, pid 0 or -1 (default: Market's share, 2,798 of "
                         "15,913; none with --msmt)")
    ap.add_argument("--dim", type=int, help="feature dimension (default 128; 2,048 with --msmt)")
    ap.add_argument("--noise", type=float,
                    help="feature noise relative to the identity centre: the difficulty (default 1.2; 3 with --msmt)")
    ap.add_argument("--max-rank", type=int, default=50)
    ap.add_argument("--loop-sort", choices=("stable", "quicksort"), default="stable",
                    help="the loop's argsort kind, i.e. how it orders equal distances (default: stable, by gallery "
                         "index, bau's rule; quicksort: NumPy's default, as most code)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed rounds (the median is reported; default 5, or 3 rounds of the one-block floor "
                         "and 1 full evaluation with --msmt)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory", choices=("fresh", "inline", "off"), default="fresh",
                    help="peak memory: one fresh process per implementation (default), in this process "
                         "(quicker, but memory an earlier run freed may hide a later peak), or not at all; "
                         "--msmt always measures its one call in this process")
    ap.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)
    market = {"queries": 3368, "gallery": 15913, "ids": 750, "cameras": 6, "dim": 128, "noise": 1.2}
    for key, value in (MSMT if args.msmt else market).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.distractors is None:
        args.distractors = round(args.gallery * 2798 / 15913)
    if args.repeats is None:
        args.repeats = 3 if args.msmt else 5
    if args.repeats < 1:
        raise SystemExit(f"error: --repeats {args.repeats}: expected at least 1")
    return args


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    args = parse_args(argv)
    if args.msmt:
        return main_msmt(args)
    problem_kwargs = dict(num_queries=args.queries, num_gallery=args.gallery, num_ids=args.ids,
                          num_cams=args.cameras, num_distractors=args.distractors, dim=args.dim, noise=args.noise,
                          seed=args.seed)
    problem = market_like_problem(**problem_kwargs)
    report = Report("ranking")
    report.size = {"queries": args.queries, "gallery": args.gallery, "ids": args.ids, "cameras": args.cameras,
                   "distractors": args.distractors, "dim": args.dim, "noise": args.noise, "max_rank": args.max_rank,
                   "loop_sort": args.loop_sort, "dtype": str(problem.distmat.dtype), "repeats": args.repeats}
    print(f"ranking evaluation: {args.queries:,} queries x {args.gallery:,} gallery "
          f"({args.ids} ids, {args.cameras} cameras, {args.distractors:,} distractors with pid 0/-1), "
          f"float32 distances, max_rank={args.max_rank}")
    print(describe_machine_line(report.machine))
    ties = tied_relevant_entries(problem)
    report.size.update(ties)
    print(f"exact ties: {ties['tied_relevant_entries']} of the {ties['relevant_entries']:,} same-id gallery entries "
          f"share their distance with another entry of their row")

    # Round-robin: each round times every implementation once, so a change in the machine's load
    # hits all three alike; the ratio to the floor is the median of the per-round ratios.
    functions = {name: variant_function(name, args.loop_sort) for name in VARIANTS}
    outputs: Dict[str, object] = {name: fn(problem, args.max_rank) for name, fn in functions.items()}  # warm-up
    times: Dict[str, List[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.repeats):
        for name, fn in functions.items():
            timing = time_repeated(lambda: fn(problem, args.max_rank), repeats=1, warmup=0)
            times[name] += timing.times
            outputs[name] = timing.last_result
    rows = []
    for name, fn in functions.items():
        memory = None
        if args.memory == "fresh":
            memory = in_fresh_process(memory_of_variant, name, problem_kwargs, args.max_rank, args.loop_sort)
        elif args.memory == "inline":
            memory = measure_memory(lambda: fn(problem, args.max_rank))[1].to_dict()
        ratio = statistics.median(t / f for t, f in zip(times[name], times["argsort"]))
        label = LABELS[name] + (", quicksort argsort" if name == "loop" and args.loop_sort == "quicksort" else "")
        report.results[name] = {"label": label, **Timing(times[name]).to_dict(), "memory": memory,
                                "x_argsort_floor": ratio}
        rows.append([label, statistics.median(times[name]), min(times[name]), ratio,
                     "-" if memory is None else memory["traced_peak_mb"],
                     "-" if memory is None else memory["rss_growth_mb"]])
    print()
    print_table(["implementation", "median s", "min s", "x argsort", "NumPy peak MB", "RSS peak growth MB"], rows)
    print("(x argsort: median over the rounds of time / argsort time in the same round; memory: extra memory "
          "during one call, in a fresh process)" if args.memory == "fresh" else
          "(x argsort: median over the rounds of time / argsort time in the same round)")

    diff = compare_metrics(outputs["bau"], outputs["loop"])
    equal = (diff["mAP_abs_diff"] <= TOLERANCE and diff["mINP_abs_diff"] <= TOLERANCE
             and diff["cmc_max_abs_diff"] <= TOLERANCE and diff["same_valid_queries"])
    ratio = report.results["bau"]["x_argsort_floor"]
    speedup = statistics.median(t / b for t, b in zip(times["loop"], times["bau"]))
    bau_out = outputs["bau"]
    print()
    print(f"metrics (bau): mAP {bau_out['mAP']:.6f}  Rank-1 {bau_out['cmc'][0]:.6f}  mINP {bau_out['mINP']:.6f}  "
          f"valid queries {bau_out['num_valid_queries']}")
    print(f"check vs loop ({args.loop_sort} argsort): |mAP diff| {diff['mAP_abs_diff']:.1e}  "
          f"|mINP diff| {diff['mINP_abs_diff']:.1e}  max |CMC diff| {diff['cmc_max_abs_diff']:.1e}  "
          f"same valid queries: {diff['same_valid_queries']}  "
          f"-> {'identical' if equal else 'DIFFERENT'} (tolerance {TOLERANCE:g})")
    print(f"bau vs loop: {speedup:.2f}x faster")
    print(f"target: bau <= {TARGET_FLOOR_RATIO}x the argsort floor: {ratio:.2f}x -> "
          f"{'met' if ratio <= TARGET_FLOOR_RATIO else 'MISSED'}")
    report.checks = {**diff, "identical": equal, "tolerance": TOLERANCE, "bau_x_argsort_floor": ratio,
                     "target_x_argsort_floor": TARGET_FLOOR_RATIO, "target_met": ratio <= TARGET_FLOOR_RATIO,
                     "bau_speedup_over_loop": speedup, "mAP": bau_out["mAP"], "rank1": float(bau_out["cmc"][0]),
                     "mINP": bau_out["mINP"], "num_valid_queries": bau_out["num_valid_queries"]}
    return report.finish(args.json)


def main_msmt(args: argparse.Namespace) -> Dict[str, object]:
    """``--msmt``: ``evaluate_features`` at MSMT17 size against the one-block floor scaled up."""
    report = Report("ranking_msmt")
    full_bytes = args.queries * args.gallery * 4
    print(f"ranking evaluation from features: {args.queries:,} queries x {args.gallery:,} gallery "
          f"({args.ids:,} ids, {args.cameras} cameras, {args.distractors:,} distractors), {args.dim:,}-d float32 "
          f"features, noise {args.noise:g}, max_rank={args.max_rank}; the full distance matrix would be "
          f"{full_bytes / 1e9:.2f} GB of float32 ({full_bytes / 2**30:.2f} GiB): it is never built")
    print(describe_machine_line(report.machine))
    f = market_like_features(args.queries, args.gallery, args.ids, args.cameras, args.distractors, dim=args.dim,
                             noise=args.noise, seed=args.seed, chunk_rows=4096)
    labels = (f.q_pids, f.g_pids, f.q_camids, f.g_camids)
    block_rows = min(args.queries, feature_block_rows(args.gallery))
    blocks = args.queries / block_rows
    report.size = {"queries": args.queries, "gallery": args.gallery, "ids": args.ids, "cameras": args.cameras,
                   "distractors": args.distractors, "dim": args.dim, "noise": args.noise, "max_rank": args.max_rank,
                   "block_rows": block_rows, "full_matrix_bytes": full_bytes, "repeats": args.repeats}

    # The floor of one block, alternated: its distance product, np.argsort of it, and bau's ranking of it.
    qb = f.q_feats[:block_rows]
    block_labels = (f.q_pids[:block_rows], f.g_pids, f.q_camids[:block_rows], f.g_camids)
    dist_block = pairwise_distance(qb, f.g_feats)
    np.argsort(dist_block, axis=1)  # warm-up
    steps = {"distances": lambda: pairwise_distance(qb, f.g_feats),
             "argsort": lambda: np.argsort(dist_block, axis=1),
             "bau_rank": lambda: evaluate_ranking(dist_block, *block_labels, max_rank=args.max_rank)}
    block_times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, fn in steps.items():
            block_times[name] += time_repeated(fn, repeats=1, warmup=0).times
    block = {name: statistics.median(t) for name, t in block_times.items()}
    rank_ratio = statistics.median(b / a for b, a in zip(block_times["bau_rank"], block_times["argsort"]))
    floor_argsort = block["argsort"] * blocks
    floor_total = (block["distances"] + block["argsort"]) * blocks
    print(f"one block of {block_rows} queries (medians of {args.repeats}, alternated): distances "
          f"{block['distances']:.3f} s, np.argsort {block['argsort']:.3f} s, bau ranking {block['bau_rank']:.3f} s "
          f"({rank_ratio:.2f}x argsort)")
    print(f"scaled to {args.queries:,} queries ({blocks:.1f} blocks): argsort floor {floor_argsort:.1f} s; "
          f"distances + argsort {floor_total:.1f} s")

    # The first block, evaluated both ways: the chunked evaluation must give the same numbers.
    first = evaluate_features(qb, f.g_feats, *block_labels, max_rank=args.max_rank)
    reference = evaluate_ranking(dist_block, *block_labels, max_rank=args.max_rank)
    diff = compare_metrics(first, reference)
    same = (diff["mAP_abs_diff"] == 0 and diff["mINP_abs_diff"] == 0 and diff["cmc_max_abs_diff"] == 0
            and diff["same_valid_queries"])
    dist_block = None  # free the block (the closures above are done with it)

    start = time.perf_counter()
    out, memory = measure_memory(lambda: evaluate_features(f.q_feats, f.g_feats, *labels, max_rank=args.max_rank))
    seconds = time.perf_counter() - start
    peak = max(memory.traced_peak_mb, memory.rss_growth_mb)
    print()
    print_table(["implementation", "s", "x argsort floor", "x distances + argsort", "NumPy peak MB",
                 "RSS peak growth MB"],
                [["bau.evaluation.metrics.evaluate_features", seconds, seconds / floor_argsort, seconds / floor_total,
                  memory.traced_peak_mb, memory.rss_growth_mb]])
    print(f"(one call in this process; memory on top of the {(f.q_feats.nbytes + f.g_feats.nbytes) / 2**20:,.0f} MB "
          f"of features; floors: one block's times x {blocks:.1f})")
    print()
    print(f"metrics (bau): mAP {out['mAP']:.6f}  Rank-1 {out['cmc'][0]:.6f}  mINP {out['mINP']:.6f}  "
          f"valid queries {out['num_valid_queries']}")
    print(f"check on the first block vs evaluate_ranking of its full rows: |mAP diff| {diff['mAP_abs_diff']:.1e}  "
          f"max |CMC diff| {diff['cmc_max_abs_diff']:.1e} -> {'identical' if same else 'DIFFERENT'}")
    met = seconds < MSMT_TARGET_S and peak < MSMT_TARGET_MB
    print(f"target: under {MSMT_TARGET_S:.0f} s and under {MSMT_TARGET_MB:.0f} MB extra: {seconds:.1f} s, "
          f"{peak:.0f} MB -> {'met' if met else 'MISSED'}")
    report.results = {"block_s": block, "block_times_s": block_times, "block_rank_x_argsort": rank_ratio,
                      "floor_argsort_s": floor_argsort, "floor_distances_argsort_s": floor_total,
                      "evaluate_features": {"seconds": seconds, "memory": memory.to_dict()}}
    report.checks = {"first_block": diff, "first_block_identical": same, "seconds": seconds, "peak_mb": peak,
                     "x_argsort_floor": seconds / floor_argsort, "x_distances_argsort_floor": seconds / floor_total,
                     "target_s": MSMT_TARGET_S, "target_mb": MSMT_TARGET_MB, "target_met": met,
                     "mAP": out["mAP"], "rank1": float(out["cmc"][0]), "mINP": out["mINP"],
                     "num_valid_queries": out["num_valid_queries"]}
    return report.finish(args.json)


if __name__ == "__main__":
    main()
