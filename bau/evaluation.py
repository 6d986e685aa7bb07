"""Retrieval metrics for re-ID: query-gallery distances, CMC, mAP and mINP (Market-1501 protocol).

The protocol (Zheng et al., ICCV 2015, as implemented by open-reid / torchreid / fast-reid):

* for each query, rank the whole gallery by ascending distance;
* drop the gallery entries that show the query's identity *from the query's camera* (they are
  "junk": finding the same person in the same camera is not re-identification);
* a query whose remaining ranking holds no true match is skipped (it cannot be scored);
* AP   = mean over the true matches of the precision at the match's rank;
* CMC@r = fraction of scored queries whose first true match is at rank <= r;
* INP  = (number of true matches) / (rank of the last, i.e. hardest, true match)  (Ye et al., TPAMI 2021).

Everything is computed for a chunk of queries at once (one ``argsort`` per chunk) so that a
Market-sized problem (3,368 x 15,913) takes a few seconds and bounded memory.
"""
from __future__ import annotations

from typing import Dict, Tuple, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]

# The summary numbers of one evaluation, in the order every table, log record and page shows them.
METRIC_KEYS = ("mAP", "rank1", "rank5", "rank10", "mINP")

# Rows of the distance matrix handled per argsort; 256 x 16k int64 indices is ~33 MB.
_QUERY_CHUNK = 256


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _to_tensor(x: ArrayLike) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    return torch.from_numpy(np.ascontiguousarray(x))


def pairwise_distance(
    qf: ArrayLike, gf: ArrayLike, metric: str = "euclidean", chunk_size: int = 4096
) -> np.ndarray:
    """Query-gallery distance matrix.

    Args:
        qf: query features ``[Q, d]`` (numpy or torch, any float dtype, any device).
        gf: gallery features ``[G, d]``.
        metric: ``"euclidean"`` -- squared Euclidean distance between the L2-normalised features
            (= 2 - 2 cos, the usual re-ID test metric); ``"cosine"`` -- 1 - cosine similarity.
        chunk_size: query rows computed per matrix product (bounds the temporary memory).

    Returns:
        ``[Q, G]`` float32 numpy array.
    """
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"pairwise_distance: metric must be 'euclidean' or 'cosine', got {metric!r}")
    q = _to_tensor(qf).float()
    g = _to_tensor(gf).float()
    if q.dim() != 2 or g.dim() != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(
            f"pairwise_distance: expected features [Q, d] and [G, d], got {tuple(q.shape)} and {tuple(g.shape)}"
        )
    q = torch.nn.functional.normalize(q, dim=1)
    g = torch.nn.functional.normalize(g.to(q.device), dim=1)
    out = np.empty((q.shape[0], g.shape[0]), dtype=np.float32)
    for start in range(0, q.shape[0], chunk_size):
        sim = q[start : start + chunk_size] @ g.t()
        if metric == "euclidean":
            # ||a - b||^2 = 2 - 2 a.b for unit vectors; clamp the tiny negatives rounding produces.
            dist = (2.0 - 2.0 * sim).clamp_min_(0.0)
        else:
            dist = 1.0 - sim
        out[start : start + chunk_size] = dist.cpu().numpy()
    return out


def _score_chunk(
    dist: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray, g_pids: np.ndarray, g_camids: np.ndarray
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AP, INP and first-match rank of the scorable queries among a chunk of rows ``dist [n, G]``.

    Only the true-match and junk positions are touched after the sort (a query has a handful of
    each among thousands of gallery entries), so the cost is one argsort plus two comparisons.
    """
    num_g = dist.shape[1]
    # Ties are broken by argsort's (deterministic) order, as in the reference implementations.
    order = np.argsort(dist, axis=1)
    same_pid = g_pids[order] == q_pids[:, None]
    same_cam = g_camids[order] == q_camids[:, None]
    hit_row, hit_col = np.nonzero(same_pid & ~same_cam)  # row-major, so columns ascend per row
    junk_row, junk_col = np.nonzero(same_pid & same_cam)
    # Rank of a hit once the junk is removed: its position minus the junk entries ranked before it.
    junk_key = junk_row * num_g + junk_col
    junk_before = np.searchsorted(junk_key, hit_row * num_g + hit_col) - np.searchsorted(junk_key, hit_row * num_g)
    rank = hit_col + 1 - junk_before
    num_hits = np.bincount(hit_row, minlength=dist.shape[0])
    first_of_row = np.cumsum(num_hits) - num_hits
    nth_hit = np.arange(len(hit_row)) - first_of_row[hit_row] + 1  # 1 for the first match of a query
    ap = np.bincount(hit_row, weights=nth_hit / rank, minlength=dist.shape[0])
    valid = num_hits > 0
    first_rank = rank[nth_hit == 1]  # one per scorable query, in row order
    last_rank = rank[nth_hit == num_hits[hit_row]]
    return ap[valid] / num_hits[valid], num_hits[valid] / last_rank, first_rank


def evaluate_ranking(
    distmat: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
) -> Dict[str, object]:
    """CMC, mAP and mINP of a query-gallery distance matrix (Market-1501 protocol).

    Args:
        distmat: ``[Q, G]`` distances (smaller = more similar).
        q_pids, q_camids: ``[Q]`` query identities and cameras.
        g_pids, g_camids: ``[G]`` gallery identities and cameras.
        max_rank: length of the returned CMC curve. If it exceeds the gallery size, the curve is
            padded with its last value (every scored query has found all its matches by then).

    Returns:
        ``{"mAP": float, "cmc": np.ndarray [max_rank] float64, "mINP": float, "num_valid_queries": int}``,
        fractions in [0, 1]; ``cmc[r - 1]`` is Rank-r.

    Raises:
        ValueError: on mismatched shapes, or when no query has a valid match in the gallery.
    """
    dist = _to_numpy(distmat)
    q_pids, g_pids = _to_numpy(q_pids).reshape(-1), _to_numpy(g_pids).reshape(-1)
    q_camids, g_camids = _to_numpy(q_camids).reshape(-1), _to_numpy(g_camids).reshape(-1)
    if dist.ndim != 2:
        raise ValueError(f"evaluate_ranking: distmat must be 2-D [Q, G], got shape {dist.shape}")
    num_q, num_g = dist.shape
    if len(q_pids) != num_q or len(q_camids) != num_q:
        raise ValueError(
            f"evaluate_ranking: distmat has {num_q} query rows but "
            f"{len(q_pids)} query pids and {len(q_camids)} query camids"
        )
    if len(g_pids) != num_g or len(g_camids) != num_g:
        raise ValueError(
            f"evaluate_ranking: distmat has {num_g} gallery columns but "
            f"{len(g_pids)} gallery pids and {len(g_camids)} gallery camids"
        )
    if max_rank < 1:
        raise ValueError(f"evaluate_ranking: max_rank must be >= 1, got {max_rank}")

    ap_parts, inp_parts, first_hit_parts = [], [], []
    for start in range(0, num_q, _QUERY_CHUNK):
        ap, inp, first_hit = _score_chunk(
            dist[start : start + _QUERY_CHUNK],
            q_pids[start : start + _QUERY_CHUNK],
            q_camids[start : start + _QUERY_CHUNK],
            g_pids,
            g_camids,
        )
        ap_parts.append(ap)
        inp_parts.append(inp)
        first_hit_parts.append(first_hit)

    if sum(len(a) for a in ap_parts) == 0:
        raise ValueError(
            "evaluate_ranking: no query has a true match in the gallery outside its own camera; "
            "check that the query/gallery pids and camids are right"
        )
    ap = np.concatenate(ap_parts)
    inp = np.concatenate(inp_parts)
    first_hit = np.concatenate(first_hit_parts)
    ranks = np.arange(1, max_rank + 1)
    cmc = (first_hit[None, :] <= ranks[:, None]).mean(axis=1).astype(np.float64)
    return {
        "mAP": float(ap.mean()),
        "cmc": cmc,
        "mINP": float(inp.mean()),
        "num_valid_queries": int(len(ap)),
    }
