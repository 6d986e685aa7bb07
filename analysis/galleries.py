"""Image galleries: the weight scores of augmented views (Figure 5b) and ranked retrieval lists.

Weight gallery: ``bau.runs.weight_scores`` draws a P x K batch of training images the way training
draws one, an original and an augmented view per image, and computes ``w[i, i]`` (Eq. 4): the
weight of each augmented view with its own original. The gallery shows them sorted by ``w``
(badly corrupted views first), originals on top, augmented views below.

Retrieval: one query's gallery ranked by distance with the Market-1501 filter of
``bau.evaluation`` (gallery images of the query's identity taken by the query's camera are
dropped), and a plot with true matches framed in green and false ones in red.
"""
from __future__ import annotations

from typing import Any, List, NamedTuple, Optional, Sequence

import numpy as np

from bau.core.errors import BauError
from bau.evaluation.metrics import top_k_gallery
from bau.runs.weight_scores import WeightedPair


def select_evenly(pairs: Sequence[Any], num: int) -> List[Any]:
    """``num`` items spread evenly over a sorted list (first and last included), e.g. low to high w."""
    if num < 1:
        raise BauError(f"gallery size: expected at least 1 column, got {num}")
    if len(pairs) <= num:
        return list(pairs)
    idx = np.unique(np.round(np.linspace(0, len(pairs) - 1, num)).astype(int))
    return [pairs[i] for i in idx]


def plot_weight_gallery(pairs: Sequence[WeightedPair], num: Optional[int] = 8, panel_width: float = 0.7):
    """Figure 5b: original views on the top row, their augmented views below, ``w`` above each column.

    Args:
        pairs: from ``bau.runs.weight_scores.WeightScores.pairs`` (sorted by weight).
        num: columns, picked evenly from low to high weight (None: all pairs).
        panel_width: inches per column.

    Returns:
        ``(fig, axes)``; axes ``[0:n]`` are the originals, ``[n:2n]`` the augmented views.
    """
    from analysis.plotting import image_grid

    shown = list(pairs) if num is None else select_evenly(pairs, num)
    if not shown:
        raise BauError("weight gallery: no pairs to draw")
    images = [p.original for p in shown] + [p.augmented for p in shown]
    titles = [f"w={p.weight:.2f}" for p in shown] + [None] * len(shown)
    fig, axes = image_grid(images, titles=titles, nrows=2, panel_width=panel_width)
    axes[0].set_ylabel("original", fontsize=7)
    axes[len(shown)].set_ylabel("augmented", fontsize=7)
    return fig, axes


# ---------------------------------------------------------------------------------------------
# retrieval
# ---------------------------------------------------------------------------------------------

class Ranking(NamedTuple):
    """The top of one query's ranked gallery (after the Market filter)."""

    indices: np.ndarray  # [topk] gallery indices, nearest first
    matches: np.ndarray  # [topk] bool, same identity as the query
    distances: np.ndarray  # [topk] distances


def retrieval_ranking(distmat_row: Any, q_pid: int, q_cam: int, g_pids: Any, g_cams: Any, topk: int = 10) -> Ranking:
    """Rank a gallery for one query, Market-1501 protocol.

    Gallery entries with the query's identity AND camera are removed (not re-identification), as
    in ``bau.evaluation.metrics.evaluate_ranking``; ties keep gallery order (stable sort); a negative gallery
    pid (distractor) is never a match. Computed by ``bau.evaluation.metrics.top_k_gallery``.

    Args:
        distmat_row: ``[G]`` distances of the query to every gallery image (smaller = closer).
        q_pid, q_cam: the query's identity and camera.
        g_pids, g_cams: ``[G]`` gallery identities and cameras.
        topk: how many ranked entries to return (fewer if the filtered gallery is smaller).

    Returns:
        ``Ranking(indices, matches, distances)``.
    """
    dist = np.asarray(distmat_row.detach().cpu() if hasattr(distmat_row, "detach") else distmat_row,
                      dtype=np.float64).reshape(-1)
    g_pids = np.asarray(g_pids).reshape(-1)
    g_cams = np.asarray(g_cams).reshape(-1)
    if not (len(dist) == len(g_pids) == len(g_cams)):
        raise BauError(f"retrieval ranking: {len(dist)} distances but {len(g_pids)} gallery pids and "
                       f"{len(g_cams)} gallery cameras")
    if topk < 1:
        raise BauError(f"retrieval ranking: topk must be at least 1, got {topk}")
    order, matches = top_k_gallery(dist, q_pid, q_cam, g_pids, g_cams, topk)
    return Ranking(indices=order, matches=matches, distances=dist[order])


def _load_display(path: str, height: int, width: int) -> np.ndarray:
    from PIL import Image

    from bau.data.images import read_image

    img = read_image(path).resize((width, height), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 255.0


def plot_retrieval(query_path: str, gallery_paths: Sequence[str], matches: Sequence[bool],
                   distances: Optional[Sequence[float]] = None, height: int = 128, width: int = 64,
                   title: Optional[str] = None, panel_width: float = 0.7):
    """A query followed by its ranked gallery images, true matches framed green, false red.

    Args:
        query_path: the query image.
        gallery_paths: the ranked gallery images (e.g. ``[paths[i] for i in ranking.indices]``).
        matches: one bool per gallery image.
        distances: optional distances, shown as titles (``#rank d``).
        height, width: display size of every image.
        title: optional figure title.

    Returns:
        ``(fig, axes)``; ``axes[0]`` is the query.
    """
    from analysis.plotting import image_grid

    if len(gallery_paths) != len(matches):
        raise BauError(f"retrieval plot: {len(gallery_paths)} gallery images but {len(matches)} match flags")
    if distances is not None and len(distances) != len(gallery_paths):
        raise BauError(f"retrieval plot: {len(gallery_paths)} gallery images but {len(distances)} distances")
    images = [_load_display(query_path, height, width)] + [_load_display(p, height, width) for p in gallery_paths]
    titles = ["query"] + [f"#{r + 1}" + (f" {distances[r]:.2f}" if distances is not None else "")
                          for r in range(len(gallery_paths))]
    green, red = (0.0, 0.6, 0.0), (0.85, 0.0, 0.0)
    borders = [None] + [green if m else red for m in matches]
    fig, axes = image_grid(images, titles=titles, nrows=1, panel_width=panel_width, border_colors=borders,
                           title_colors=[None] + [green if m else red for m in matches], suptitle=title)
    return fig, axes
