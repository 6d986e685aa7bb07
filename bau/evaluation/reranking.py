"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017), numerically equivalent to the NumPy implementation found in most re-ID code
bases (the distance-matrix version: ``re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value)``).

That implementation, on the ``N = Q + G`` points:

1. builds ``D = [[q_q, q_g], [q_g^T, g_g]]``, squares it, divides every column by its maximum and
   transposes, so ``dist[i, j] = D[j, i]^2 / max_k D[k, i]^2`` (row-normalised squared distances for a
   symmetric ``D``);
2. ranks every row (``argsort``) and takes ``R(i)``, the k1-reciprocal neighbours of ``i``
   (``j`` in the ``k1 + 1`` nearest of ``i`` and ``i`` in the ``k1 + 1`` nearest of ``j``);
3. expands ``R(i)`` with ``R'(c)``, the ``round(k1 / 2)``-reciprocal set of each ``c`` in ``R(i)``,
   whenever more than 2/3 of ``R'(c)`` is already in ``R(i)``;
4. encodes ``i`` as ``V[i, j] = exp(-dist[i, j]) / sum`` over the expanded set (0 elsewhere);
5. local query expansion: ``V[i] <- mean of V over the k2 nearest of i`` (skipped when ``k2 == 1``);
6. Jaccard distance ``1 - m / (2 - m)`` with ``m = sum_l min(V[q, l], V[g, l])``;
7. returns ``(1 - lambda) * jaccard + lambda * dist`` on the query-gallery block.

This module does the same without any ``N x N`` array: one chunked pass over the columns of ``D``
keeps only each row's maximum and its ``max(k1 + 1, k2)`` nearest neighbours (``topk`` instead of a
full ``argsort``); every later step works on those neighbour lists and on a sparse ``V``
(``scipy.sparse``), and the Jaccard step enumerates only the (query, gallery) pairs that share a
non-zero column of ``V``. Peak memory is the inputs plus the ``[Q, G]`` output plus O(N * k1^2).
The only differences to the reference are float rounding (< 1e-6) and the order of exactly equal
distances, which neither implementation defines.
"""
from __future__ import annotations

from typing import Tuple, Union

import numpy as np
import scipy.sparse as sp
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]

# Rows of D^T squared and ranked at once in the dense pass: 512 x 19k float64 is ~80 MB.
_ROW_CHUNK = 512
# (query, gallery, column) triples -- and query x gallery accumulator cells -- handled at once in the
# Jaccard step; each costs a few 8-byte temporaries.
_PAIR_BUDGET = 2_000_000


def _as_tensor(x: ArrayLike) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    return torch.from_numpy(np.ascontiguousarray(x))


def _common_dtype(*blocks: torch.Tensor) -> torch.dtype:
    """float32 if every block is float32, else float64: the precision the reference squares in.

    The reference concatenates the blocks (NumPy promotes to the widest type) and squares before
    casting to float32. Squaring float32 in float32 and anything else in float64 rounds exactly
    once to float32 either way (a product of two float32 numbers is exact in float64), so the
    squared distances match the reference bit for bit.
    """
    if all(b.dtype == torch.float32 for b in blocks):
        return torch.float32
    return torch.float64


def _to_float32(squared: torch.Tensor) -> torch.Tensor:
    return squared if squared.dtype == torch.float32 else squared.to(torch.float32)


def _columns_of_d(
    q_g: torch.Tensor, q_q: torch.Tensor, g_g: torch.Tensor, start: int, stop: int, buffer: torch.Tensor
) -> torch.Tensor:
    """Columns ``start:stop`` of ``D = [[q_q, q_g], [q_g^T, g_g]]``, copied as rows into ``buffer``.

    The range must lie entirely in the query part or entirely in the gallery part.
    """
    num_q = q_g.shape[0]
    rows = buffer[: stop - start]
    if stop <= num_q:
        rows[:, :num_q].copy_(q_q[:, start:stop].t())
        rows[:, num_q:].copy_(q_g[start:stop])
    else:
        a, b = start - num_q, stop - num_q
        rows[:, :num_q].copy_(q_g[:, a:b].t())
        rows[:, num_q:].copy_(g_g[:, a:b].t())
    return rows


def _normalised_distance_pass(
    q_g: torch.Tensor, q_q: torch.Tensor, g_g: torch.Tensor, width: int, out: np.ndarray
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The one dense pass (step 1 and the ranking of step 2).

    Returns the per-row normaliser ``[N]`` (float32) and the ``width`` nearest neighbours of every
    row ``[N, width]`` (ascending distance); writes ``dist[:Q, Q:]`` into ``out``.
    """
    num_q, num_g = q_g.shape
    n = num_q + num_g
    row_max = torch.empty(n, dtype=torch.float32, device=q_g.device)
    nearest = torch.empty(n, width, dtype=torch.long, device=q_g.device)
    buffer = torch.empty(min(_ROW_CHUNK, n), n, dtype=_common_dtype(q_g, q_q, g_g), device=q_g.device)
    bounds = [(s, min(s + _ROW_CHUNK, num_q)) for s in range(0, num_q, _ROW_CHUNK)]
    bounds += [(s, min(s + _ROW_CHUNK, n)) for s in range(num_q, n, _ROW_CHUNK)]
    for start, stop in bounds:
        dist = _to_float32(_columns_of_d(q_g, q_q, g_g, start, stop, buffer).square_())
        # A row whose distances are all 0 (collapsed features) stays 0 instead of 0/0 = NaN.
        peak = dist.max(dim=1, keepdim=True).values.clamp_min_(torch.finfo(torch.float32).tiny)
        dist.div_(peak)
        row_max[start:stop] = peak.squeeze(1)
        nearest[start:stop] = dist.topk(width, dim=1, largest=False, sorted=True).indices
        if stop <= num_q:
            out[start:stop] = dist[:, num_q:].cpu().numpy()
    return row_max, nearest


def _reciprocal_mask(neighbours: np.ndarray) -> np.ndarray:
    """``[N, k]`` bool: is ``i`` among the ``k`` nearest of its own ``a``-th nearest ``neighbours[i, a]``?"""
    n, k = neighbours.shape
    mask = np.empty((n, k), dtype=bool)
    step = max(1, 4_000_000 // (k * k))
    for start in range(0, n, step):
        back = neighbours[neighbours[start : start + step]]  # [c, k, k]
        rows = np.arange(start, min(start + step, n))
        mask[start : start + step] = (back == rows[:, None, None]).any(-1)
    return mask


def _expanded_sets(nearest: np.ndarray, k_fwd: int, k_half: int) -> sp.csr_matrix:
    """Steps 2-3: the expanded k-reciprocal set of every point, as the pattern of a sparse [N, N] matrix."""
    n = nearest.shape[0]
    fwd, half = nearest[:, :k_fwd], nearest[:, :k_half]
    r_mask, h_mask = _reciprocal_mask(fwd), _reciprocal_mask(half)
    rows, cols = [], []
    step = max(1, 4_000_000 // (k_fwd * k_fwd * k_half))
    for start in range(0, n, step):
        stop = min(start + step, n)
        own, own_mask = fwd[start:stop], r_mask[start:stop]  # R(i), padded   [c, kf]
        cand_half, cand_mask = half[own], h_mask[own]  # R'(c) of every c    [c, kf, kh]
        in_own = ((cand_half[..., None] == own[:, None, None, :]) & own_mask[:, None, None, :]).any(-1)
        overlap = (in_own & cand_mask).sum(-1)
        size = cand_mask.sum(-1)
        # Same float comparison as the reference: len(intersection) > 2./3 * len(R'(c)).
        accept = own_mask & (overlap > 2.0 / 3 * size)
        members = np.concatenate([own, cand_half.reshape(stop - start, -1)], axis=1)
        keep = np.concatenate([own_mask, (accept[..., None] & cand_mask).reshape(stop - start, -1)], axis=1)
        rows.append(np.nonzero(keep)[0] + start)
        cols.append(members[keep])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    # Building the CSR matrix sums duplicate (row, column) entries: the pattern is the set union.
    pattern = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n))
    pattern.sum_duplicates()
    return pattern


def _gather_distance(
    q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, row_max: np.ndarray, i: np.ndarray, j: np.ndarray
) -> np.ndarray:
    """``dist[i, j] = D[j, i]^2 / row_max[i]`` (float32) for index vectors, read straight from the three blocks."""
    num_q = q_g.shape[0]
    exact = np.float32 if all(b.dtype == np.float32 for b in (q_g, q_q, g_g)) else np.float64
    raw = np.empty(len(i), dtype=exact)
    iq, jq = i < num_q, j < num_q
    for sel, block, r, c in (
        (jq & iq, q_q, j, i),
        (jq & ~iq, q_g, j, i - num_q),
        (~jq & iq, q_g, i, j - num_q),  # D[j, i] = q_g^T[j - Q, i] = q_g[i, j - Q]
        (~jq & ~iq, g_g, j - num_q, i - num_q),
    ):
        raw[sel] = block[r[sel], c[sel]]
    # Same rounding as the dense pass (see _common_dtype).
    return np.square(raw).astype(np.float32) / row_max[i]


def _jaccard_into(v: sp.csr_matrix, num_q: int, lambda_value: float, out: np.ndarray) -> None:
    """Steps 6-7: ``out[q] <- (1 - lambda) * jaccard(q, .) + lambda * out[q]`` for every query row.

    ``sum_l min(V[q, l], V[g, l])`` only has terms where both are non-zero, so for each non-zero
    ``V[q, l]`` it pairs with the gallery non-zeros of column ``l`` (a CSC slice) and scatter-adds.
    """
    num_g = out.shape[1]
    v_q = v[:num_q]
    v_g = v[num_q:].tocsc()
    col_nnz = np.diff(v_g.indptr)
    # Pairs generated by each query row, to cut the queries into chunks of bounded work.
    row_of_entry = np.repeat(np.arange(num_q), np.diff(v_q.indptr))
    pairs_per_row = np.bincount(row_of_entry, weights=col_nnz[v_q.indices], minlength=num_q)
    start = 0
    while start < num_q:
        cum = np.cumsum(pairs_per_row[start:])
        rows_by_pairs = int(np.searchsorted(cum, _PAIR_BUDGET, side="right"))
        stop = start + max(1, min(rows_by_pairs, _PAIR_BUDGET // num_g))
        sub = v_q[start:stop].tocoo()
        counts = col_nnz[sub.col]
        entry = np.repeat(np.arange(len(sub.col)), counts)
        offset = np.arange(len(entry)) - np.repeat(np.cumsum(counts) - counts, counts)
        pos = v_g.indptr[sub.col][entry] + offset
        mins = np.minimum(sub.data[entry], v_g.data[pos])
        shared = np.bincount(
            sub.row[entry].astype(np.int64) * num_g + v_g.indices[pos], weights=mins, minlength=(stop - start) * num_g
        ).reshape(stop - start, num_g)
        jaccard = 1.0 - shared / (2.0 - shared)
        out[start:stop] = jaccard * (1.0 - lambda_value) + out[start:stop] * lambda_value
        start = stop


def re_ranking(
    q_g_dist: ArrayLike,
    q_q_dist: ArrayLike,
    g_g_dist: ArrayLike,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """k-reciprocal re-ranked query-gallery distances (Zhong et al., CVPR 2017).

    Args:
        q_g_dist: ``[Q, G]`` query-gallery distances (e.g. Euclidean; they are squared internally,
            as in the reference implementation).
        q_q_dist: ``[Q, Q]`` query-query distances.
        g_g_dist: ``[G, G]`` gallery-gallery distances.
        k1: size of the k-reciprocal neighbourhood (the expansion uses ``round(k1 / 2)``).
        k2: neighbours averaged in the local query expansion (1 disables it).
        lambda_value: weight of the original distance in the result.

    Inputs may be numpy arrays or torch tensors; the dense pass runs on the device of ``q_g_dist``
    (CPU or CUDA), the sparse steps on the CPU. Float16 input is squared in float64, where the
    reference squares it in float16 (the only input type on which results may differ beyond 1e-6).

    Returns:
        ``[Q, G]`` float32 numpy array of re-ranked distances.
    """
    q_g, q_q, g_g = _as_tensor(q_g_dist), _as_tensor(q_q_dist), _as_tensor(g_g_dist)
    if q_g.dim() != 2:
        raise ValueError(f"re_ranking: q_g_dist must be 2-D [Q, G], got shape {tuple(q_g.shape)}")
    num_q, num_g = q_g.shape
    if tuple(q_q.shape) != (num_q, num_q) or tuple(g_g.shape) != (num_g, num_g):
        raise ValueError(
            f"re_ranking: with q_g_dist {tuple(q_g.shape)} expected q_q_dist ({num_q}, {num_q}) and "
            f"g_g_dist ({num_g}, {num_g}), got {tuple(q_q.shape)} and {tuple(g_g.shape)}"
        )
    if k1 < 1 or k2 < 1 or not 0.0 <= lambda_value <= 1.0:
        raise ValueError(
            f"re_ranking: need k1 >= 1, k2 >= 1 and 0 <= lambda_value <= 1, got {k1}, {k2}, {lambda_value}"
        )
    q_q, g_g = q_q.to(q_g.device), g_g.to(q_g.device)
    blocks_np = [b.cpu().numpy() for b in (q_g, q_q, g_g)]
    n = num_q + num_g
    k_fwd = min(k1 + 1, n)
    # Python's round, like np.around, rounds halves to even (k1 = 5 -> 2).
    k_half = min(int(round(k1 / 2.0)) + 1, n)
    k_qe = min(k2, n)

    out = np.empty((num_q, num_g), dtype=np.float32)  # holds dist[:Q, Q:] until the last step
    row_max, nearest = _normalised_distance_pass(q_g, q_q, g_g, max(k_fwd, k_qe), out)

    row_max, nearest = row_max.cpu().numpy(), nearest.cpu().numpy()
    # The rest works on sparse structures on the CPU (NumPy / SciPy).
    v = _expanded_sets(nearest, k_fwd, k_half)
    rows = np.repeat(np.arange(n), np.diff(v.indptr))
    weight = np.exp(-_gather_distance(*blocks_np, row_max, rows, v.indices)).astype(np.float64)
    v.data = weight / np.bincount(rows, weights=weight, minlength=n)[rows]

    if k2 != 1:
        qe_rows = np.repeat(np.arange(n), k_qe)
        qe_cols = nearest[:, :k_qe].reshape(-1)
        average = sp.csr_matrix((np.ones(n * k_qe), (qe_rows, qe_cols)), shape=(n, n))
        v = sp.csr_matrix(average @ v) / k_qe

    _jaccard_into(sp.csr_matrix(v), num_q, lambda_value, out)
    return out
