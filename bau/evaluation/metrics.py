"""Retrieval metrics for re-ID: query-gallery distances, CMC, mAP and mINP (Market-1501 protocol).

The protocol (Zheng et al., ICCV 2015, as implemented by open-reid / torchreid / fast-reid):

* for each query, rank the whole gallery by ascending distance;
* drop the gallery entries that show the query's identity *from the query's camera* (they are
  "junk": finding the same person in the same camera is not re-identification);
* a gallery entry with a negative pid is a distractor: it matches no query and is never junk;
  a query with a negative pid is not scored;
* a query whose remaining ranking holds no true match is skipped (it cannot be scored);
* AP   = mean over the true matches of the precision at the match's rank;
* CMC@r = fraction of scored queries whose first true match is at rank <= r;
* INP  = (number of true matches) / (rank of the last, i.e. hardest, true match)  (Ye et al., TPAMI 2021).

**Ties.** Equal distances are ordered by gallery index: the entry with the lower index ranks
first, exactly as in ``np.argsort(row, kind="stable")``. So the position of gallery entry ``j`` in
row ``i`` is ``#{k : d[i, k] < d[i, j]} + #{k < j : d[i, k] == d[i, j]}``, and its rank among the
valid entries is that position plus one, minus the junk entries placed before it.

**The kernel.** The metrics never need the full order of a row, only the positions of the
query's own identity in it (its true matches and its junk, a handful among thousands). So each
block of rows is sorted by *value* (``np.sort``, several times cheaper than ``np.argsort``: no
index bookkeeping), and the position of every such entry is a binary search of its distance in
its sorted row (the count of strictly smaller distances). An entry whose distance occurs more
than once in its row falls back to a stable argsort of that row (rare with float distances). The
same kernel runs in torch (``torch.sort`` + batched ``torch.searchsorted``) for distances on a GPU.

Memory stays bounded: rows are handled in blocks of ~16 MB (``evaluate_ranking``), and
``evaluate_features`` computes the distances themselves block by block from the features, so the
full ``[Q, G]`` matrix never exists (MSMT17: 11,659 x 82,161 would be 3.8 GB of float32).
``top_k_gallery`` ranks one query's gallery for display under the same junk and tie rules.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]

# The summary numbers of one evaluation, in the order every table, log record and page shows them.
METRIC_KEYS = ("mAP", "rank1", "rank5", "rank10", "mINP")

# Distances ranked per block of rows in evaluate_ranking (4M entries: 16 MB of float32, plus the
# same again for their sorted copy).
_BLOCK_ELEMENTS = 1 << 22
# Query rows per block in evaluate_features: enough rows for an efficient matrix product, capped so
# that a block and its sorted copy stay ~2 x 128 MB whatever the gallery size.
_FEATURE_BLOCK_ROWS = 256
_FEATURE_BLOCK_ELEMENTS = 1 << 25

_BACKENDS = ("numpy", "torch")


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _to_tensor(x: ArrayLike) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    return torch.from_numpy(np.ascontiguousarray(x))


def _is_real(x: ArrayLike) -> bool:
    """A real-valued (integer or floating) array or tensor: not bool, complex, string or object."""
    if isinstance(x, torch.Tensor):
        return x.dtype != torch.bool and not x.is_complex()
    return x.dtype.kind in "fiu"


# ---------------------------------------------------------------------------------------------
# distances
# ---------------------------------------------------------------------------------------------

def _check_metric(metric: str, where: str) -> None:
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"{where}: metric must be 'euclidean' or 'cosine', got {metric!r}")


def _normalised_features(qf: ArrayLike, gf: ArrayLike, where: str,
                         device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised float32 ``[Q, d]`` and ``[G, d]`` tensors on ``device`` (default: ``qf``'s)."""
    q = _to_tensor(qf)
    g = _to_tensor(gf)
    if q.dim() != 2 or g.dim() != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"{where}: expected features [Q, d] and [G, d], got {tuple(q.shape)} and {tuple(g.shape)}")
    if not (_is_real(q) and _is_real(g)):
        raise ValueError(f"{where}: features must be real numbers, got {q.dtype} and {g.dtype}")
    device = q.device if device is None else device
    q = torch.nn.functional.normalize(q.to(device).float(), dim=1)
    g = torch.nn.functional.normalize(g.to(device).float(), dim=1)
    return q, g


def _distance_block(q: torch.Tensor, g: torch.Tensor, metric: str) -> torch.Tensor:
    """``[n, G]`` float32 distances between normalised rows ``q [n, d]`` and ``g [G, d]`` (one product, in place)."""
    dist = q @ g.t()
    if metric == "euclidean":
        # ||a - b||^2 = 2 - 2 a.b for unit vectors (the scaling by -2 is exact, so this rounds once,
        # like 2 - 2 * sim); clamp the tiny negatives rounding produces.
        return dist.mul_(-2.0).add_(2.0).clamp_min_(0.0)
    return dist.neg_().add_(1.0)


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
    _check_metric(metric, "pairwise_distance")
    q, g = _normalised_features(qf, gf, "pairwise_distance")
    out = np.empty((q.shape[0], g.shape[0]), dtype=np.float32)
    for start in range(0, q.shape[0], max(1, chunk_size)):
        out[start : start + chunk_size] = _distance_block(q[start : start + chunk_size], g, metric).cpu().numpy()
    return out


def distance_matrix(qf: ArrayLike, gf: ArrayLike, metric: str = "euclidean",
                    device: Optional[Union[str, torch.device]] = None, chunk_size: int = 4096) -> torch.Tensor:
    """``pairwise_distance`` as a ``[Q, G]`` float32 tensor on ``device`` (default: ``qf``'s device).

    The same numbers; for the paths that keep working on the device (re-ranking on a GPU).
    """
    _check_metric(metric, "distance_matrix")
    q, g = _normalised_features(qf, gf, "distance_matrix", None if device is None else torch.device(device))
    out = torch.empty((q.shape[0], g.shape[0]), dtype=torch.float32, device=q.device)
    for start in range(0, q.shape[0], max(1, chunk_size)):
        out[start : start + chunk_size] = _distance_block(q[start : start + chunk_size], g, metric)
    return out


# ---------------------------------------------------------------------------------------------
# labels and the relevant entries of each query
# ---------------------------------------------------------------------------------------------

def _labels(x: ArrayLike, name: str, where: str) -> np.ndarray:
    """1-D int64 identities or cameras; integral floats are accepted, anything else is a ValueError."""
    a = _to_numpy(x).reshape(-1)
    if a.dtype.kind in "iub":
        return a.astype(np.int64, copy=False)
    if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return a.astype(np.int64)
    raise ValueError(f"{where}: {name} must be integers, got {a.dtype} values")


def _check_labels(num_q: int, num_g: int, q_pids: ArrayLike, g_pids: ArrayLike, q_camids: ArrayLike,
                  g_camids: ArrayLike, max_rank: int, where: str, what: str = "distmat has"):
    qp, gp = _labels(q_pids, "q_pids", where), _labels(g_pids, "g_pids", where)
    qc, gc = _labels(q_camids, "q_camids", where), _labels(g_camids, "g_camids", where)
    if len(qp) != num_q or len(qc) != num_q:
        raise ValueError(f"{where}: {what} {num_q} query rows but {len(qp)} query pids and {len(qc)} query camids")
    if len(gp) != num_g or len(gc) != num_g:
        raise ValueError(
            f"{where}: {what} {num_g} gallery columns but {len(gp)} gallery pids and {len(gc)} gallery camids"
        )
    if not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"{where}: max_rank must be an integer >= 1, got {max_rank!r}")
    return qp, gp, qc, gc


class _GalleryGroups:
    """The gallery grouped by identity, to list each query's same-id entries without a pass over the gallery.

    Entries with a negative pid (distractors) are in no group: they match nothing and are never junk.
    """

    def __init__(self, g_pids: np.ndarray, g_camids: np.ndarray):
        identified = np.flatnonzero(g_pids >= 0)
        self.members = identified[np.argsort(g_pids[identified], kind="stable")]  # ascending index per group
        self.pids, self.starts, self.counts = np.unique(g_pids[self.members], return_index=True, return_counts=True)
        self.g_camids = g_camids

    def relevant(self, q_pids: np.ndarray, q_camids: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every gallery entry with the identity of one of ``n`` queries.

        Returns ``rows [M]`` (the query, ascending), ``cols [M]`` (the gallery entry, ascending per
        row) and ``junk [M]`` (same camera as the query), int64 / int64 / bool. A query with a
        negative pid has no entries.
        """
        if len(self.pids) == 0 or len(q_pids) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=bool)
        group = np.minimum(np.searchsorted(self.pids, q_pids), len(self.pids) - 1)
        found = (q_pids >= 0) & (self.pids[group] == q_pids)
        counts = np.where(found, self.counts[group], 0)
        rows = np.repeat(np.arange(len(q_pids)), counts)
        offset = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        cols = self.members[np.repeat(self.starts[group], counts) + offset]
        return rows, cols, self.g_camids[cols] == q_camids[rows]


# ---------------------------------------------------------------------------------------------
# the rank kernel: stable positions of selected entries of their rows, without an argsort
# ---------------------------------------------------------------------------------------------

def _nan_error(where: str) -> ValueError:
    return ValueError(f"{where}: the distances contain NaN; expected real distances (check the features)")


def _positions_numpy(block: np.ndarray, rows: np.ndarray, cols: np.ndarray, where: str) -> np.ndarray:
    """Position of ``block[rows[m], cols[m]]`` in ``np.argsort(block[rows[m]], kind="stable")``, for every m.

    Args:
        block: ``[n, G]`` distances (real dtype).
        rows, cols: ``[M]`` int64 entries, ``rows`` ascending.

    Returns:
        ``[M]`` int64 ``#{k : block[r, k] < block[r, c]} + #{k < c : block[r, k] == block[r, c]}``.

    Raises:
        ValueError: when the block holds NaN (and any entry to place).
    """
    num_g = block.shape[1]
    if len(rows) == 0:  # no query of the block has an entry to place
        return np.zeros(0, dtype=np.int64)
    values = block[rows, cols]
    ordered = np.sort(block, axis=1)  # values only: no index bookkeeping
    if ordered.dtype.kind == "f" and len(ordered) and np.isnan(ordered[:, -1]).any():  # NaN sorts last
        raise _nan_error(where)
    pos = np.empty(len(rows), dtype=np.int64)
    bounds = np.searchsorted(rows, np.arange(block.shape[0] + 1))
    for r in np.flatnonzero(bounds[1:] > bounds[:-1]):
        a, b = bounds[r], bounds[r + 1]
        pos[a:b] = ordered[r].searchsorted(values[a:b], side="left")  # strictly smaller distances
    # ordered[r, pos] is the entry's own value; another entry shares it iff the next one does too.
    tied = (pos + 1 < num_g) & (ordered[rows, np.minimum(pos + 1, num_g - 1)] == values)
    if tied.any():
        tied_rows = np.unique(rows[tied])
        stable = np.argsort(block[tied_rows], axis=1, kind="stable")
        where_in_row = np.empty_like(stable)
        where_in_row[np.arange(len(tied_rows))[:, None], stable] = np.arange(num_g)
        sel = np.isin(rows, tied_rows)
        pos[sel] = where_in_row[np.searchsorted(tied_rows, rows[sel]), cols[sel]]
    return pos


def _positions_torch(block: torch.Tensor, rows: np.ndarray, cols: np.ndarray, where: str) -> np.ndarray:
    """``_positions_numpy`` in torch, on ``block``'s device (CPU or CUDA); same arguments, same result."""
    num_g = block.shape[1]
    device = block.device
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    r = torch.from_numpy(rows).to(device)
    c = torch.from_numpy(cols).to(device)
    values = block[r, c]
    ordered = torch.sort(block, dim=1).values.contiguous()  # NaN sorts last, as in NumPy
    if ordered.is_floating_point() and bool(torch.isnan(ordered[:, -1]).any()):
        raise _nan_error(where)
    # One batched binary search: each row's entries padded to the longest row's count.
    counts = np.bincount(rows, minlength=block.shape[0])
    slot = torch.from_numpy(np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)).to(device)
    padded = torch.zeros((block.shape[0], int(counts.max())), dtype=block.dtype, device=device)
    padded[r, slot] = values
    pos = torch.searchsorted(ordered, padded, right=False)[r, slot]
    tied = (pos + 1 < num_g) & (ordered[r, (pos + 1).clamp_max(num_g - 1)] == values)
    if bool(tied.any()):
        tied_rows = torch.unique(r[tied])
        stable = torch.sort(block[tied_rows], dim=1, stable=True).indices
        where_in_row = torch.empty_like(stable).scatter_(
            1, stable, torch.arange(num_g, device=device).expand(len(tied_rows), num_g))
        sel = torch.isin(r, tied_rows)
        pos[sel] = where_in_row[torch.searchsorted(tied_rows, r[sel]), c[sel]]
    return pos.cpu().numpy()


# ---------------------------------------------------------------------------------------------
# metrics from the positions
# ---------------------------------------------------------------------------------------------

def _score_block(rows: np.ndarray, pos: np.ndarray, junk: np.ndarray,
                 num_rows: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AP, INP and first-match rank of the scorable queries of a block of ``num_rows`` queries.

    Args:
        rows, pos, junk: ``[M]`` each query's same-id entries: query row, stable position in the
            row (0-based, junk included), same camera as the query.

    Returns:
        ``ap [V]``, ``inp [V]`` (float64) and ``first [V]`` (int64, 1-based rank of the first true
        match) for the ``V`` rows with at least one true match, in row order.
    """
    order = np.lexsort((pos, rows))
    rows, pos, junk = rows[order], pos[order], junk[order].astype(np.int64)
    # Rank of a true match once the junk is removed: its position + 1 minus the junk placed before it.
    junk_before = np.cumsum(junk) - junk
    junk_before -= junk_before[np.searchsorted(rows, rows)]  # count within the row only
    hit = junk == 0
    hit_rows = rows[hit]
    rank = pos[hit] + 1 - junk_before[hit]
    num_hits = np.bincount(hit_rows, minlength=num_rows)
    first_of_row = np.cumsum(num_hits) - num_hits
    nth_hit = np.arange(len(hit_rows)) - first_of_row[hit_rows] + 1  # 1 for the first match of a query
    ap = np.bincount(hit_rows, weights=nth_hit / rank, minlength=num_rows)
    valid = num_hits > 0
    first_rank = rank[nth_hit == 1]
    last_rank = rank[nth_hit == num_hits[hit_rows]]
    return ap[valid] / num_hits[valid], num_hits[valid] / last_rank, first_rank


class _Scores:
    """Per-query AP, INP and first-match rank collected block by block."""

    def __init__(self, where: str):
        self.where = where
        self.ap: List[np.ndarray] = []
        self.inp: List[np.ndarray] = []
        self.first: List[np.ndarray] = []

    def add(self, rows: np.ndarray, pos: np.ndarray, junk: np.ndarray, num_rows: int) -> None:
        ap, inp, first = _score_block(rows, pos, junk, num_rows)
        self.ap.append(ap)
        self.inp.append(inp)
        self.first.append(first)

    def result(self, max_rank: int) -> Dict[str, object]:
        if sum(len(a) for a in self.ap) == 0:
            raise ValueError(
                f"{self.where}: no query has a true match in the gallery outside its own camera; "
                "check that the query/gallery pids and camids are right"
            )
        ap, inp, first = np.concatenate(self.ap), np.concatenate(self.inp), np.concatenate(self.first)
        # CMC@r = share of first matches at rank <= r: a cumulative histogram of the first ranks.
        cmc = np.cumsum(np.bincount(np.minimum(first, max_rank + 1), minlength=max_rank + 2)[1 : max_rank + 1])
        return {
            "mAP": float(ap.mean()),
            "cmc": cmc.astype(np.float64) / len(first),
            "mINP": float(inp.mean()),
            "num_valid_queries": int(len(ap)),
        }


def _backend(backend: Optional[str], on_cpu: bool, where: str) -> str:
    if backend is None:
        return "numpy" if on_cpu else "torch"
    if backend not in _BACKENDS:
        raise ValueError(f"{where}: backend must be one of {_BACKENDS} or None, got {backend!r}")
    return backend


# ---------------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------------

def evaluate_ranking(
    distmat: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    backend: Optional[str] = None,
) -> Dict[str, object]:
    """CMC, mAP and mINP of a query-gallery distance matrix (Market-1501 protocol, see the module doc).

    Args:
        distmat: ``[Q, G]`` distances (smaller = more similar), numpy or torch, any real dtype.
        q_pids, q_camids: ``[Q]`` query identities and cameras (integers; a negative pid is not scored).
        g_pids, g_camids: ``[G]`` gallery identities and cameras (a negative pid is a distractor).
        max_rank: length of the returned CMC curve. If it exceeds the gallery size, the curve is
            padded with its last value (every scored query has found all its matches by then).
        backend: ``"numpy"`` or ``"torch"``; default ``"torch"`` (on the tensor's device) for a
            tensor on a GPU, ``"numpy"`` otherwise. Both give the same numbers.

    Returns:
        ``{"mAP": float, "cmc": np.ndarray [max_rank] float64, "mINP": float, "num_valid_queries": int}``,
        fractions in [0, 1]; ``cmc[r - 1]`` is Rank-r.

    Raises:
        ValueError: on mismatched shapes, non-integer labels, NaN distances, or when no query has
        a valid match in the gallery.
    """
    where = "evaluate_ranking"
    on_cpu = not (isinstance(distmat, torch.Tensor) and distmat.device.type != "cpu")
    backend = _backend(backend, on_cpu, where)
    dist = distmat.detach() if isinstance(distmat, torch.Tensor) else np.asarray(distmat)
    if dist.ndim != 2:
        raise ValueError(f"evaluate_ranking: distmat must be 2-D [Q, G], got shape {tuple(dist.shape)}")
    if not _is_real(dist):
        raise ValueError(f"evaluate_ranking: distmat must hold real numbers, got {dist.dtype}")
    dist = _to_tensor(dist) if backend == "torch" else _to_numpy(dist)
    num_q, num_g = dist.shape
    qp, gp, qc, gc = _check_labels(num_q, num_g, q_pids, g_pids, q_camids, g_camids, max_rank, where)
    groups = _GalleryGroups(gp, gc)
    positions = _positions_torch if backend == "torch" else _positions_numpy
    scores = _Scores(where)
    step = max(1, _BLOCK_ELEMENTS // max(1, num_g))
    for start in range(0, num_q, step):
        stop = min(start + step, num_q)
        rows, cols, junk = groups.relevant(qp[start:stop], qc[start:stop])
        scores.add(rows, positions(dist[start:stop], rows, cols, where), junk, stop - start)
    return scores.result(max_rank)


def evaluate_features(
    qf: ArrayLike,
    gf: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    metric: str = "euclidean",
    device: Optional[Union[str, torch.device]] = None,
    backend: Optional[str] = None,
) -> Dict[str, object]:
    """``evaluate_ranking(pairwise_distance(qf, gf, metric), ...)`` without ever holding the ``[Q, G]`` matrix.

    The distances of a block of queries (up to 256 rows, at most 2^25 entries) are computed, ranked
    and dropped before the next block: the extra memory is the normalised features plus two blocks.

    Args:
        qf: ``[Q, d]`` query features; gf: ``[G, d]`` gallery features (numpy or torch).
        q_pids, g_pids, q_camids, g_camids, max_rank: as in ``evaluate_ranking``.
        metric: as in ``pairwise_distance``.
        device: where the distances are computed and ranked (default: ``qf``'s device). On a GPU
            the whole block runs there (``backend="torch"``); on the CPU the ranking uses NumPy.
        backend: force ``"numpy"`` or ``"torch"`` for the ranking.

    Returns:
        as ``evaluate_ranking``.
    """
    where = "evaluate_features"
    _check_metric(metric, where)
    q, g = _normalised_features(qf, gf, where, None if device is None else torch.device(device))
    num_q, num_g = q.shape[0], g.shape[0]
    backend = _backend(backend, q.device.type == "cpu", where)
    qp, gp, qc, gc = _check_labels(num_q, num_g, q_pids, g_pids, q_camids, g_camids, max_rank, where,
                                   what="features have")
    groups = _GalleryGroups(gp, gc)
    scores = _Scores(where)
    step = feature_block_rows(num_g)
    for start in range(0, num_q, step):
        stop = min(start + step, num_q)
        rows, cols, junk = groups.relevant(qp[start:stop], qc[start:stop])
        block = _distance_block(q[start:stop], g, metric)
        if backend == "torch":
            pos = _positions_torch(block, rows, cols, where)
        else:
            pos = _positions_numpy(block.cpu().numpy(), rows, cols, where)
        del block
        scores.add(rows, pos, junk, stop - start)
    return scores.result(max_rank)


def feature_block_rows(num_gallery: int) -> int:
    """Query rows per block in ``evaluate_features`` for a gallery of ``num_gallery`` images."""
    return max(1, min(_FEATURE_BLOCK_ROWS, _FEATURE_BLOCK_ELEMENTS // max(1, num_gallery)))


def top_k_gallery(distances: ArrayLike, q_pid: int, q_camid: int, g_pids: ArrayLike, g_camids: ArrayLike,
                  k: int) -> Tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest valid gallery entries of one query, under the evaluation's rules.

    The query's identity seen by the query's camera is left out (junk); a negative gallery pid is
    never a match; equal distances keep gallery order. The i-th returned entry is the one
    ``evaluate_ranking`` places at rank ``i + 1``.

    Args:
        distances: ``[G]`` distances of the query to every gallery entry (numpy or torch).
        q_pid, q_camid: the query's identity and camera.
        g_pids, g_camids: ``[G]`` gallery identities and cameras.
        k: how many entries (fewer if fewer are valid).

    Returns:
        ``indices [k']`` (int64 gallery indices, nearest first) and ``matches [k']`` (bool, a true match).
    """
    where = "top_k_gallery"
    dist = _to_numpy(distances).reshape(-1)
    if not _is_real(dist):
        raise ValueError(f"{where}: distances must be real numbers, got {dist.dtype}")
    gp, gc = _labels(g_pids, "g_pids", where), _labels(g_camids, "g_camids", where)
    if not (len(dist) == len(gp) == len(gc)):
        raise ValueError(f"{where}: {len(dist)} distances but {len(gp)} gallery pids and {len(gc)} gallery camids")
    if k < 1:
        raise ValueError(f"{where}: k must be at least 1, got {k}")
    if dist.dtype.kind == "f" and np.isnan(dist).any():
        raise _nan_error(where)
    q_pid, q_camid = int(q_pid), int(q_camid)
    same_id = (gp == q_pid) & (gp >= 0)
    valid = np.flatnonzero(~(same_id & (gc == q_camid)))
    candidates = valid
    if k < len(valid):  # only the entries up to the k-th smallest distance need sorting
        kth = np.partition(dist[valid], k - 1)[k - 1]
        candidates = valid[dist[valid] <= kth]
    order = candidates[np.argsort(dist[candidates], kind="stable")][:k]  # candidates ascend: ties by index
    return order, same_id[order]
