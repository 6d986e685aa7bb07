"""Ranking evaluation (CMC, mAP, mINP) on a Market-1501-sized problem: bau against the usual loop.

The problem (``market_like_problem``) has Market-1501's test shape: 3,368 queries x 15,913 gallery
images of 750 identities seen by 6 cameras. Each identity is seen by 2-6 cameras; it has one query
per camera and at least one gallery image in each of those cameras, so every query has true
matches in other cameras *and* same-camera "junk" that the protocol ignores. 2,798 gallery images
are distractors that match nothing (pid 0, or -1 for Market's "junk" files). Features are random
(identity centre + camera offset + noise, L2-normalised) and the float32 squared-Euclidean
distances come from ``bau.evaluation.pairwise_distance``, so exact ties are rare and both
implementations break them the same way (``np.argsort`` row by row).

Three measurements on the same matrix:

* ``bau``: ``bau.evaluation.evaluate_ranking(distmat, q_pids, g_pids, q_camids, g_camids, max_rank)``;
* ``loop``: the way most re-ID code does it (``per_query_loop`` below, written from the Market
  protocol): argsort the whole matrix, then for each query drop the same-id same-camera entries,
  cumulative-sum the matches, and read CMC, AP and INP off it;
* ``argsort``: a bare ``np.argsort(distmat, axis=1)``, the floor any exact ranking pays.

Each is timed ``--repeats`` times in this process, round-robin so that a change in the machine's load
hits all three alike (medians reported; the ratio to the floor is the median of the per-round
ratios); its peak memory is measured
once in a fresh process (``--memory fresh``, see ``benchmarks/common.py``). Targets: bau at most 1.5x the argsort
floor, and the same mAP / CMC / mINP as the loop to 1e-9.

    python benchmarks/ranking.py                              # Market size (about a minute)
    python benchmarks/ranking.py --queries 500 --gallery 2500 --ids 120 --json ranking.json
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import (Report, Timing, describe_machine_line, in_fresh_process,  # noqa: E402
                               measure_memory, print_table, time_repeated)
from bau.evaluation import evaluate_ranking, pairwise_distance  # noqa: E402

TARGET_FLOOR_RATIO = 1.5
TOLERANCE = 1e-9


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
                         seed: int = 0) -> MarketLikeFeatures:
    """Random query / gallery features with Market-1501's structure (see the module docstring).

    Identity pids are 1..num_ids, distractors 0 or -1, cameras 0..num_cams-1; the gallery order is
    shuffled. A feature is its identity's centre (a random one for a distractor) plus its camera's
    offset plus noise; ``noise`` (relative to the unit centre) sets how hard the problem is.
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
        own = rng.normal(size=(len(pids), dim)) / np.sqrt(dim)
        base = np.where((pids > 0)[:, None], centres[np.maximum(pids, 0)], own)
        return (base + cam_offset[cams] + noise * rng.normal(size=(len(pids), dim)) / np.sqrt(dim)).astype(np.float32)

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
                   g_camids: np.ndarray, max_rank: int = 50, kind: str = "quicksort") -> Dict[str, object]:
    """The customary re-ID evaluation: one full argsort, then a Python loop over the queries.

    Market protocol: a gallery entry with the query's id *and* camera is removed from the query's
    ranking; a query with no remaining true match is skipped; AP = mean precision at each match;
    CMC@r = fraction of queries whose first match is within r; INP = #matches / rank of the last.
    ``kind``: NumPy's sort, which decides the order of equal distances ("quicksort", NumPy's
    default as in most code: unspecified but deterministic; "stable": by gallery index).
    """
    order = np.argsort(distmat, axis=1, kind=kind)
    is_match = g_pids[order] == q_pids[:, None]
    cmc_rows: List[np.ndarray] = []
    aps: List[float] = []
    inps: List[float] = []
    for i in range(distmat.shape[0]):
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


def run_loop(p: RankingProblem, max_rank: int, kind: str = "quicksort") -> Dict[str, object]:
    return per_query_loop(p.distmat, p.q_pids, p.g_pids, p.q_camids, p.g_camids, max_rank=max_rank, kind=kind)


def run_argsort(p: RankingProblem, max_rank: int) -> np.ndarray:
    return np.argsort(p.distmat, axis=1)


VARIANTS: Dict[str, Callable[[RankingProblem, int], object]] = {
    "bau": run_bau,
    "loop": run_loop,
    "argsort": run_argsort,
}
LABELS = {
    "bau": "bau.evaluation.evaluate_ranking",
    "loop": "per-query NumPy loop (usual re-ID code)",
    "argsort": "np.argsort(distmat, axis=1) (floor)",
}


def variant_function(name: str, loop_sort: str) -> Callable[[RankingProblem, int], object]:
    if name == "loop":
        return lambda p, max_rank: run_loop(p, max_rank, kind=loop_sort)
    return VARIANTS[name]


def memory_of_variant(variant: str, problem_kwargs: Dict[str, int], max_rank: int,
                      loop_sort: str = "quicksort") -> Dict[str, object]:
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
    ap.add_argument("--queries", type=int, default=3368, help="query images (Market: 3,368)")
    ap.add_argument("--gallery", type=int, default=15913, help="gallery images (Market: 15,913)")
    ap.add_argument("--ids", type=int, default=750, help="test identities (Market: 750)")
    ap.add_argument("--cameras", type=int, default=6, help="cameras (Market: 6)")
    ap.add_argument("--distractors", type=int, default=None,
                    help="gallery images of no test identity, pid 0 or -1 (default: Market's share, 2,798 of 15,913)")
    ap.add_argument("--max-rank", type=int, default=50)
    ap.add_argument("--loop-sort", choices=("quicksort", "stable"), default="quicksort",
                    help="the loop's argsort kind, i.e. how it orders equal distances (default: NumPy's default, "
                         "as most code; stable: by gallery index)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per implementation (the median is reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory", choices=("fresh", "inline", "off"), default="fresh",
                    help="peak memory: one fresh process per implementation (default), in this process "
                         "(quicker, but memory an earlier run freed may hide a later peak), or not at all")
    ap.add_argument("--json", metavar="PATH", help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)
    if args.distractors is None:
        args.distractors = round(args.gallery * 2798 / 15913)
    return args


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    args = parse_args(argv)
    problem_kwargs = dict(num_queries=args.queries, num_gallery=args.gallery, num_ids=args.ids,
                          num_cams=args.cameras, num_distractors=args.distractors, seed=args.seed)
    problem = market_like_problem(**problem_kwargs)
    report = Report("ranking")
    report.size = {"queries": args.queries, "gallery": args.gallery, "ids": args.ids, "cameras": args.cameras,
                   "distractors": args.distractors, "max_rank": args.max_rank, "loop_sort": args.loop_sort,
                   "dtype": str(problem.distmat.dtype),
                   "repeats": args.repeats}
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
        label = LABELS[name] + (", stable argsort" if name == "loop" and args.loop_sort == "stable" else "")
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
    print(f"check vs loop: |mAP diff| {diff['mAP_abs_diff']:.1e}  |mINP diff| {diff['mINP_abs_diff']:.1e}  "
          f"max |CMC diff| {diff['cmc_max_abs_diff']:.1e}  same valid queries: {diff['same_valid_queries']}  "
          f"-> {'identical' if equal else 'DIFFERENT'} (tolerance {TOLERANCE:g})")
    print(f"bau vs loop: {speedup:.2f}x faster")
    print(f"target: bau <= {TARGET_FLOOR_RATIO}x the argsort floor: {ratio:.2f}x -> "
          f"{'met' if ratio <= TARGET_FLOOR_RATIO else 'MISSED'}")
    report.checks = {**diff, "identical": equal, "tolerance": TOLERANCE, "bau_x_argsort_floor": ratio,
                     "target_x_argsort_floor": TARGET_FLOOR_RATIO, "target_met": ratio <= TARGET_FLOOR_RATIO,
                     "bau_speedup_over_loop": speedup, "mAP": bau_out["mAP"], "rank1": float(bau_out["cmc"][0]),
                     "mINP": bau_out["mINP"], "num_valid_queries": bau_out["num_valid_queries"]}
    return report.finish(args.json)


if __name__ == "__main__":
    main()
