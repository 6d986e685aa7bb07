"""Image galleries: the weight scores of augmented views (Figure 5b) and ranked retrieval lists.

Weight gallery: a P x K batch of training images is drawn the way training draws one (the P x K
sampler), each image gets its original and augmented view from the run's transforms, both go
through the model in eval mode, and ``bau.losses.reciprocal_weights`` (Eq. 4) gives the
``[B, B]`` Jaccard weights; the gallery shows, per image, the weight of its augmented view with
its own original, ``w[i, i]``. Sorted by ``w``, badly corrupted views come first.

Retrieval: one query's gallery ranked by distance with the Market-1501 filter of
``bau.evaluation`` (gallery images of the query's identity taken by the query's camera are
dropped), and a plot with true matches framed in green and false ones in red.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, List, NamedTuple, Optional, Sequence

import numpy as np
import torch

from bau.config import Config
from bau.errors import BauError
from bau.evaluation import top_k_gallery


@dataclass
class WeightedPair:
    """One training image of the weight gallery."""

    path: str
    pid: int
    weight: float  # w[i, i] of Eq. 4: the augmented view's weight with its own original
    original: np.ndarray  # [H, W, 3] float RGB in [0, 1], the original view as the model saw it
    augmented: np.ndarray  # [H, W, 3] float RGB in [0, 1], the augmented view


@torch.no_grad()
def _features(model: torch.nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([model(images[s:s + batch_size].to(device)).float().cpu()
                      for s in range(0, len(images), batch_size)])


def weight_scores(model: torch.nn.Module, items: Sequence[tuple], cfg: Config, num_ids: Optional[int] = None,
                  num_instances: Optional[int] = None, k: Optional[int] = None, seed: int = 0,
                  transform: Optional[Callable] = None) -> List[WeightedPair]:
    """Weights ``w[i, i]`` (Eq. 4) of a P x K batch of training images, lowest first (Figure 5b).

    Args:
        model: a ``ReIDModel``; run in eval mode (its mode is restored afterwards).
        items: training items ``(path, pid, camid[, domain])``.
        cfg: the run's config: image size, augmentation settings, ``loss.k``, P and K defaults.
        num_ids, num_instances: P and K of the batch (default: the config's).
        k: neighbourhood size of Eq. 4 (default ``cfg.loss.k``).
        seed: seeds the batch choice and the augmentation draws; the global torch RNG is left as it was.
        transform: ``PIL image -> (original view, augmented view)``; default the run's
            ``bau.data.transforms.build_transforms``.

    Returns:
        One ``WeightedPair`` per image of the batch, sorted by ascending weight.
    """
    from bau.data.images import read_image
    from bau.data.samplers import PKSampler
    from bau.data.transforms import build_transforms, denormalize
    from bau.losses import reciprocal_weights

    if not items:
        raise BauError("weight gallery: no training items given")
    p = cfg.data.num_ids if num_ids is None else num_ids
    kk = cfg.data.num_instances if num_instances is None else num_instances
    k = cfg.loss.k if k is None else k
    pids = [int(it[1]) for it in items]
    p = min(p, len(set(pids)))  # a small training set gives a smaller batch rather than an error
    batch = PKSampler(pids, num_instances=kk, num_ids=p, seed=seed).global_batches()[0]
    if transform is None:
        d = cfg.data
        transform = build_transforms(d.height, d.width, d.aug_prob, d.randaugment, d.color_jitter, d.random_erasing)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        views = [transform(read_image(items[i][0])) for i in batch]
    originals = torch.stack([v[0] for v in views])
    augmented = torch.stack([v[1] for v in views])
    was_training = model.training
    model.eval()
    try:
        f_orig = _features(model, originals, cfg.eval.batch_size)
        f_aug = _features(model, augmented, cfg.eval.batch_size)
    finally:
        model.train(was_training)
    w = reciprocal_weights(f_orig, f_aug, k).diagonal()
    pairs = [WeightedPair(path=str(items[i][0]), pid=pids[i], weight=float(w[j]),
                          original=denormalize(originals[j]).permute(1, 2, 0).numpy(),
                          augmented=denormalize(augmented[j]).permute(1, 2, 0).numpy())
             for j, i in enumerate(batch)]
    order = sorted(range(len(pairs)), key=lambda j: (pairs[j].weight, j))
    return [pairs[j] for j in order]


def training_items(cfg: Config, root: Optional[str] = None) -> List[tuple]:
    """The merged training list ``(path, pid, camid, domain)`` of a run's ``data.sources``."""
    from bau.data.datasets import build_dataset
    from bau.data.multisource import combine

    root = cfg.data.root if root is None else root
    sources = [build_dataset(n, root, split=0, split_seed=cfg.data.split_seed, num_splits=cfg.data.num_splits)
               for n in cfg.data.sources]
    return combine(sources, list(cfg.data.sources)).train


def weight_scores_from_checkpoint(checkpoint: str, root: Optional[str] = None, seed: int = 0,
                                  device: str | torch.device = "cpu", **kwargs: Any) -> List[WeightedPair]:
    """``weight_scores`` for a checkpoint on its own training sources (data under ``root`` or the run's ``data.root``)."""
    from bau.checkpoint import model_from_checkpoint

    model, _, cfg = model_from_checkpoint(checkpoint, device)
    return weight_scores(model, training_items(cfg, root), cfg, seed=seed, **kwargs)


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
        pairs: from ``weight_scores`` (sorted by weight).
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
    in ``bau.evaluation.evaluate_ranking``; ties keep gallery order (stable sort); a negative gallery
    pid (distractor) is never a match. Computed by ``bau.evaluation.top_k_gallery``.

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
