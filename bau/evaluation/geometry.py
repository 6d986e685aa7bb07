"""Alignment and uniformity of a set of features on the unit hypersphere (Sec. 3.1, Wang & Isola).

    L_align   = log E_{(i,j) ~ P_pos}  ||f_i - f_j||^2               (Eq. 1)
    L_uniform = log E_{(i,j) ~ P_data} exp(-2 ||f_i - f_j||^2)       (Eq. 2)

Lower is better for both. Here ``P_pos`` is the uniform distribution over ordered pairs
``i != j`` with the same identity, and ``P_data`` over all ordered pairs ``i != j`` (an image is
never paired with itself; every unordered pair counts once, since both sums are symmetric). The
paper plots ``-L_uniform`` for uniformity (Figs. 1c, 4b), which is the negation of what
``uniformity`` returns.

Distractors are not an identity: rows with a NEGATIVE pid (gallery distractors,
``bau.data.base.DISTRACTOR_PID``; junk) have no positives and are left out of ``alignment``, the
only identity-structure measure here. Uniformity is over ALL features, distractors included:
they are real images of the target domain, and Eq. 2 asks how evenly the images spread.

Both are computed EXACTLY for any N without an ``N x N`` matrix:

- alignment per identity group from ``sum_{i,j in g} ||f_i - f_j||^2 = 2 n_g sum_{i in g} ||f_i - mu_g||^2``,
  i.e. O(N d) work, centred so that tight clusters do not lose digits to cancellation;
- uniformity by blocks of rows against the columns to their right (the upper triangle), the
  exponentials summed as a running log-sum-exp in float64.

``max_pairs`` switches to a seeded uniform sample of pairs for very large N (an unbiased estimate
of the expectation inside the log). Inputs are numpy arrays or torch tensors ``[N, d]``; results
are Python floats.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Hashable, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from bau.core.errors import BauError

ArrayLike = Union[np.ndarray, torch.Tensor]

# Rows per block of the uniformity sum (and the most rows converted at once for alignment).
DEFAULT_CHUNK = 1024
# Numbers per temporary tile (8 MB in float32). Every temporary stays well below glibc's 32 MB
# mmap threshold, so freed tiles are reused instead of fresh, page-faulted memory being asked
# from the kernel each time; on small VMs page faults, not arithmetic, dominate otherwise.
TILE_ELEMENTS = 2**21


class _LogSumExp:
    """``log(sum(exp(x)))`` over a stream of tensors, accumulated in float64 (a running maximum
    keeps the exponentials in range, so far-apart unnormalised points do not underflow to 0)."""

    def __init__(self) -> None:
        self.max = -math.inf
        self.sum = 0.0  # sum of exp(x - self.max)

    def add_(self, x: torch.Tensor) -> None:
        """Add the values of ``x``; ``x`` is overwritten."""
        if x.numel() == 0:
            return
        m = float(x.max())
        if m == -math.inf:
            return
        new = max(self.max, m)
        self.sum = self.sum * math.exp(self.max - new) + float(x.sub_(new).exp_().sum(dtype=torch.float64))
        self.max = new

    def value(self) -> float:
        return self.max + math.log(self.sum) if self.sum > 0 else -math.inf


def _as_features(features: ArrayLike, normalize: bool, name: str = "features") -> torch.Tensor:
    """``[N, d]`` float tensor on the CPU (float64 stays float64, everything else float32)."""
    t = features.detach().cpu() if isinstance(features, torch.Tensor) else torch.from_numpy(np.asarray(features))
    if t.dim() != 2:
        raise BauError(f"{name}: expected a 2-D array [N, d], got shape {tuple(t.shape)}")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise BauError(f"{name}: expected real-valued features, got dtype {t.dtype}")
    t = t.double() if t.dtype == torch.float64 else t.float()
    step = max(1, TILE_ELEMENTS // max(1, t.shape[1]))
    if not all(bool(torch.isfinite(t[s:s + step]).all()) for s in range(0, t.shape[0], step)):
        raise BauError(f"{name}: contains NaN or infinite values")
    if normalize:
        t = unit_rows(t)
    return t


def unit_rows(t: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm whatever their magnitude (all-zero rows stay zero).

    Each row is first divided by its largest absolute entry, so the squares in the norm neither
    overflow (features of 1e20) nor fall under ``normalize``'s epsilon (features of 1e-25)."""
    peak = t.abs().amax(dim=1, keepdim=True)
    t = t / torch.where(peak > 0, peak, torch.ones_like(peak))
    return torch.nn.functional.normalize(t, dim=1)


def _as_labels(labels: Any, n: int, name: str) -> np.ndarray:
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    arr = arr.reshape(-1)
    if len(arr) != n:
        raise BauError(f"{name}: expected {n} labels (one per feature), got {len(arr)}")
    return arr


def _check_chunk(chunk_size: int) -> None:
    if chunk_size < 1:
        raise BauError(f"chunk_size: expected a positive number of rows, got {chunk_size}")


# ---------------------------------------------------------------------------------------------
# alignment (Eq. 1)
# ---------------------------------------------------------------------------------------------

def alignment(features: ArrayLike, pids: Any, normalize: bool = False, chunk_size: int = DEFAULT_CHUNK,
              max_pairs: Optional[int] = None, seed: int = 0) -> float:
    """Alignment of positive pairs, Eq. 1: ``log mean_{i != j, pid_i = pid_j} ||f_i - f_j||^2``.

    Args:
        features: ``[N, d]`` features (L2-normalised by the caller, or ``normalize=True``).
        pids: ``[N]`` identity labels (any hashable dtype); identities with one feature add no pair.
            Rows with a negative numeric pid (distractors, junk) are not an identity and are left out.
        normalize: L2-normalise the rows first.
        chunk_size: most rows converted to float64 at a time (also capped at ``TILE_ELEMENTS`` numbers).
        max_pairs: if set and smaller than the number of positive pairs, average over this many
            positive pairs drawn uniformly with replacement (seeded by ``seed``) instead.
        seed: seed of the pair sample.

    Returns:
        ``L_align`` as a Python float (``-inf`` if all positive pairs coincide).

    Work is O(N d); memory one float64 sum per identity, ``[identities, d]``.

    Raises:
        BauError: no identity has two features (no positive pair), or malformed input.
    """
    _check_chunk(chunk_size)
    f = _as_features(features, normalize)
    labels = _as_labels(pids, f.shape[0], "pids")
    identity = identity_rows(labels)
    if not identity.all():
        f, labels = f[torch.from_numpy(identity)], labels[identity]
    n = f.shape[0]
    _, group = np.unique(labels, return_inverse=True)
    group = group.reshape(-1)
    sizes = np.bincount(group).astype(np.float64)
    num_pairs = float((sizes * (sizes - 1)).sum())  # ordered pairs i != j
    if num_pairs == 0:
        raise BauError("alignment: no positive pair (every identity has a single feature); "
                       "expected some pids with two or more features")
    if max_pairs is not None and max_pairs < num_pairs:
        i, j = _sample_positive_pairs(group, sizes, max_pairs, seed)
        return _log_mean_sqdist(f, i, j)

    # Identities with one feature add no pair: leave them out so the [identities, d] sums stay small.
    in_pairs = sizes[group] >= 2
    if not in_pairs.all():
        f = f[torch.from_numpy(in_pairs)]
        _, group = np.unique(group[in_pairs], return_inverse=True)
        group = group.reshape(-1)
        sizes = np.bincount(group).astype(np.float64)
        n = f.shape[0]
    g = torch.from_numpy(group)
    d = f.shape[1]
    step = max(1, min(chunk_size, TILE_ELEMENTS // max(1, d)))
    sums = torch.zeros(len(sizes), d, dtype=torch.float64)
    for s in range(0, n, step):
        sums.index_add_(0, g[s:s + step], f[s:s + step].double())
    means = sums.div_(torch.from_numpy(sizes).unsqueeze(1))
    # sum over pairs of one group = 2 n_g * (sum of squared deviations from the group mean)
    dev = torch.zeros(len(sizes), dtype=torch.float64)
    for s in range(0, n, step):
        rows = f[s:s + step].to(torch.float64, copy=True).sub_(means[g[s:s + step]])  # never modify the input
        dev.index_add_(0, g[s:s + step], rows.mul_(rows).sum(1))
    total = float((2.0 * torch.from_numpy(sizes) * dev).sum())
    return math.log(total / num_pairs) if total > 0 else float("-inf")


def identity_rows(pids: np.ndarray) -> np.ndarray:
    """``[N]`` bool: the rows that belong to an identity, i.e. all but those with a negative numeric
    pid (distractors, junk). Non-numeric labels (strings) are all identities."""
    if pids.dtype.kind in "iuf":
        return pids >= 0
    return np.ones(len(pids), dtype=bool)


def _sample_positive_pairs(group: np.ndarray, sizes: np.ndarray, m: int, seed: int):
    """``m`` ordered positive pairs ``(i, j)``, i != j, uniform over all of them (with replacement)."""
    if m < 1:
        raise BauError(f"max_pairs: expected a positive number of pairs, got {m}")
    rng = np.random.default_rng(seed)
    order = np.argsort(group, kind="stable")  # members of group k are order[start[k]:start[k] + size[k]]
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    pair_counts = sizes * (sizes - 1)
    # A group is drawn in proportion to its number of pairs, then two distinct members uniformly.
    k = rng.choice(len(sizes), size=m, p=pair_counts / pair_counts.sum())
    nk = sizes[k].astype(np.int64)
    a = rng.integers(0, nk)
    b = rng.integers(0, nk - 1)
    b = b + (b >= a)
    return order[start[k] + a], order[start[k] + b]


def _pair_sqdists(f: torch.Tensor, i: np.ndarray, j: np.ndarray) -> Iterator[torch.Tensor]:
    """Squared distances ``||f_i - f_j||^2`` of index pairs, in steps of at most ``TILE_ELEMENTS`` numbers
    (gathered into two reused buffers)."""
    step = max(1, TILE_ELEMENTS // max(1, f.shape[1]))
    a_buf = torch.empty(min(step, len(i)), f.shape[1], dtype=f.dtype)
    b_buf = torch.empty_like(a_buf)
    for s in range(0, len(i), step):
        m = len(i[s:s + step])
        a, b = a_buf[:m], b_buf[:m]
        torch.index_select(f, 0, torch.from_numpy(np.ascontiguousarray(i[s:s + step])), out=a)
        torch.index_select(f, 0, torch.from_numpy(np.ascontiguousarray(j[s:s + step])), out=b)
        yield a.sub_(b).mul_(a).sum(1)


def _log_mean_sqdist(f: torch.Tensor, i: np.ndarray, j: np.ndarray) -> float:
    total = sum(float(sq.sum(dtype=torch.float64)) for sq in _pair_sqdists(f, i, j))
    return math.log(total / len(i)) if total > 0 else float("-inf")


# ---------------------------------------------------------------------------------------------
# uniformity (Eq. 2)
# ---------------------------------------------------------------------------------------------

def uniformity(features: ArrayLike, normalize: bool = False, chunk_size: int = DEFAULT_CHUNK,
               max_pairs: Optional[int] = None, seed: int = 0, t: float = 2.0) -> float:
    """Uniformity, Eq. 2: ``log mean_{i != j} exp(-t ||f_i - f_j||^2)`` with ``t = 2``.

    Over all features: it takes no pids, so a target's distractors (real images) count like any other.

    Exact by default: blocks of ``chunk_size`` rows against the columns at and to the right of the
    block (each unordered pair once), in tiles of at most ``TILE_ELEMENTS`` numbers held in one
    reused buffer; squared distances in the features' precision (float32, or float64 for float64
    input), exponentials summed as a float64 log-sum-exp. Extra memory is one tile (8 MB) plus
    ``N`` norms, whatever ``N``.

    Args:
        features: ``[N, d]`` features, ``N >= 2`` (L2-normalised by the caller, or ``normalize=True``).
        normalize: L2-normalise the rows first.
        chunk_size: rows per block.
        max_pairs: if set and smaller than ``N (N - 1) / 2``, average over this many ordered pairs
            ``i != j`` drawn uniformly with replacement (seeded by ``seed``) instead. The exact sum
            runs on matrix products and is usually faster: 10^6 sampled pairs cost about as much as
            the exact value of N = 20,000 (2 x 10^8 pairs); sampling pays off for N beyond ~10^5.
        seed: seed of the pair sample.
        t: the temperature of the Gaussian potential (2 in the paper).

    Returns:
        ``L_uniform`` as a Python float, ``<= 0`` (``-4 t`` ... ``0`` on the unit sphere).
    """
    _check_chunk(chunk_size)
    f = _as_features(features, normalize)
    n = f.shape[0]
    if n < 2:
        raise BauError(f"uniformity: need at least 2 features, got {n}")
    if max_pairs is not None and max_pairs < n * (n - 1) // 2:
        if max_pairs < 1:
            raise BauError(f"max_pairs: expected a positive number of pairs, got {max_pairs}")
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, size=max_pairs)
        j = rng.integers(0, n - 1, size=max_pairs)
        j = j + (j >= i)  # uniform over the n - 1 others
        return _log_mean_exp_sqdist(f, i, j, t)

    sq_norms = torch.linalg.vector_norm(f, dim=1).square_()  # no [N, d] temporary, unlike (f * f).sum(1)
    rows = min(chunk_size, n)
    cols_per_tile = max(1, TILE_ELEMENTS // rows)
    buffer = torch.empty(rows * min(cols_per_tile, n), dtype=f.dtype)  # reused by every tile
    lse = _LogSumExp()
    for s in range(0, n, rows):
        e = min(s + rows, n)
        for c in range(s, n, cols_per_tile):  # only columns j >= s: the upper triangle
            ce = min(c + cols_per_tile, n)
            tile = buffer[: (e - s) * (ce - c)].view(e - s, ce - c)
            torch.mm(f[s:e], f[c:ce].t(), out=tile)
            # -t ||a - b||^2 = -t (|a|^2 + |b|^2 - 2 a.b), in place; clamp the rounding negatives
            tile.mul_(-2.0).add_(sq_norms[s:e, None]).add_(sq_norms[None, c:ce]).clamp_(min=0.0).mul_(-t)
            if c < e:  # the tile touches the diagonal: keep j > i only
                below = torch.arange(c, ce)[None, :] <= torch.arange(s, e)[:, None]
                tile.masked_fill_(below, -math.inf)
            lse.add_(tile)
    return lse.value() - math.log(n * (n - 1) / 2.0)


def _log_mean_exp_sqdist(f: torch.Tensor, i: np.ndarray, j: np.ndarray, t: float) -> float:
    lse = _LogSumExp()
    for sq in _pair_sqdists(f, i, j):
        lse.add_(sq.mul_(-t))
    return lse.value() - math.log(len(i))


def uniformity_by_group(features: ArrayLike, groups: Any, names: Optional[Sequence[str]] = None,
                        **kwargs) -> Dict[Hashable, float]:
    """Uniformity (Eq. 2) of each group's features on their own: per domain (Fig. 4b legend) or
    source vs target (Fig. 1c).

    Args:
        features: ``[N, d]`` features.
        groups: ``[N]`` group label of each feature (e.g. a feature file's ``domains``).
        names: optional display names; integer group ``g`` is reported as ``names[g]``.
        **kwargs: passed to ``uniformity`` (``normalize``, ``chunk_size``, ``max_pairs``, ``seed``, ``t``).

    Returns:
        ``{group (or its name): L_uniform}`` in sorted group order; ``nan`` for a group with a
        single feature (no pair to measure).
    """
    f = _as_features(features, kwargs.pop("normalize", False))
    labels = _as_labels(groups, f.shape[0], "groups")
    out: Dict[Hashable, float] = {}
    for g in np.unique(labels):
        idx = np.flatnonzero(labels == g)
        key: Hashable = g.item() if isinstance(g, np.generic) else g
        if names is not None:
            if not (isinstance(key, (int, np.integer)) and 0 <= int(key) < len(names)):
                raise BauError(f"groups: label {key!r} has no entry in names (expected indices 0..{len(names) - 1})")
            key = str(names[int(key)])
        out[key] = uniformity(f[torch.from_numpy(idx)], **kwargs) if len(idx) >= 2 else float("nan")
    return out


def alignment_uniformity(features: ArrayLike, pids: Any, normalize: bool = False, **kwargs) -> Dict[str, float]:
    """Both properties of one feature set (Figs. 1b, 4a): ``{"alignment": L_align, "uniformity": L_uniform}``.

    Alignment over the rows of an identity (negative pids, i.e. distractors, left out); uniformity
    over every row, distractors included.
    """
    f = _as_features(features, normalize)
    return {"alignment": alignment(f, pids, **kwargs), "uniformity": uniformity(f, **kwargs)}
