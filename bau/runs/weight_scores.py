"""Weight scores ``w`` (Eq. 4) of augmented views as a checkpoint sees them: Figure 5b and the app's
Augmentations page.

Eq. 4 is defined inside a mini-batch: ``w[i, j]`` is the Jaccard similarity of the k-reciprocal
neighbour sets of the augmented feature ``f~_i`` and the original feature ``f_j`` among the
batch's ``2B`` features. A single image has no weight on its own, so a batch is built the way
training builds one (``P`` identities x ``K`` images: ``training_batch`` is the training
sampler's first batch, ``batch_with`` one that holds a chosen image first), one (original,
augmented) pair is drawn per batch image with the run's two-view transform, and ``w[i, i]``
says how much the augmented view of image ``i`` still looks like its own original. Optionally
``num_views`` more pairs of the batch's first image are drawn, each scored in place of that
image's batch pair.

Features are computed in eval mode (BatchNorm running statistics), so they are the retrieval
features; training computes ``w`` with batch statistics, which differ slightly.

Randomness never comes from, or changes, the global state. The batch comes from local numpy
Generators (``PKSampler``, ``batch_with``). The views: torchvision's transforms draw from torch's
global generator and take no generator of their own, so every pair gets a seed from a local
``torch.Generator`` seeded with ``seed`` (like the training loader's per-sample seeds, a pair's
draws depend only on ``seed`` and its position) and is drawn inside ``torch.random.fork_rng``
with the global generator set to that seed's state. The global state is restored afterwards,
and a process-wide lock keeps the draws of two threads (two app sessions) from interleaving;
code that draws from torch's global generator in another thread at the same moment without
that lock is the one thing this cannot shield.
"""
from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from bau.core.config import Config
from bau.core.errors import BauError

# Held while torch's global generator is temporarily set to a pair's seed (see the module doc).
_GLOBAL_RNG_LOCK = threading.Lock()


@dataclass
class WeightedPair:
    """One batch image: its views and ``w[i, i]``."""

    path: str
    pid: int
    weight: float  # w[i, i] of Eq. 4: the augmented view's weight with its own original
    original: np.ndarray  # [H, W, 3] float RGB in [0, 1], the original view as the model saw it
    augmented: np.ndarray  # [H, W, 3] float RGB in [0, 1], the augmented view


@dataclass
class WeightScores:
    """Views are ``[n, H, W, 3]`` float RGB in [0, 1] for display."""

    batch: List[int]  # item indices of the batch, in batch order
    paths: List[str]  # [B] image of each batch position
    pids: List[int]  # [B] its identity
    originals: np.ndarray  # [B, H, W, 3] one original view per batch image
    augmented: np.ndarray  # [B, H, W, 3] its augmented view
    weights: np.ndarray  # [B] w[i, i] of each batch image
    view_originals: np.ndarray  # [V, H, W, 3] more original views of the first batch image
    view_augmented: np.ndarray  # [V, H, W, 3] their augmented views
    view_weights: np.ndarray  # [V] w of each of those augmented views

    def pairs(self) -> List[WeightedPair]:
        """One ``WeightedPair`` per batch image, by ascending weight (ties in batch order)."""
        order = sorted(range(len(self.batch)), key=lambda j: (self.weights[j], j))
        return [WeightedPair(path=self.paths[j], pid=self.pids[j], weight=float(self.weights[j]),
                             original=self.originals[j], augmented=self.augmented[j]) for j in order]


def training_batch(pids: Sequence[int], num_ids: int, num_instances: int, seed: int = 0) -> List[int]:
    """Item indices of the first ``P x K`` batch the training sampler (``PKSampler``) draws with ``seed``.

    A training set with fewer than ``P`` identities gives a smaller batch rather than an error.
    """
    from bau.data.samplers import PKSampler

    pids = [int(p) for p in pids]
    num_ids = min(num_ids, len(set(pids)))
    return PKSampler(pids, num_instances=num_instances, num_ids=num_ids, seed=seed).global_batches()[0]


def batch_with(pids: Sequence[int], index: int, num_ids: int, num_instances: int, seed: int = 0) -> List[int]:
    """Item indices of a ``P x K`` batch holding item ``index`` first, its identity's images next.

    ``K`` images of the chosen identity (``index`` first, the others drawn without replacement,
    or with replacement when the identity has fewer than ``K``), then ``P - 1`` other identities
    drawn uniformly, ``K`` images each, like the training sampler. Drawn from a local numpy
    Generator seeded with ``seed``: same inputs, same batch.
    """
    pids = np.asarray(pids)
    if not 0 <= index < len(pids):
        raise BauError(f"image index {index}: expected 0..{len(pids) - 1}")
    if num_ids < 1 or num_instances < 1:
        raise BauError(f"batch: expected P >= 1 and K >= 1, got P={num_ids}, K={num_instances}")
    rng = np.random.default_rng(seed)

    def draw(rows: np.ndarray, k: int) -> List[int]:
        return [int(r) for r in rng.choice(rows, size=k, replace=len(rows) < k)]

    own = np.flatnonzero(pids == pids[index])
    others_of_own = own[own != index]
    batch = [index] + (draw(others_of_own, num_instances - 1) if len(others_of_own) and num_instances > 1
                       else [index] * (num_instances - 1))
    other_ids = [p for p in np.unique(pids) if p != pids[index]]
    for p in rng.permutation(other_ids)[: num_ids - 1]:
        batch += draw(np.flatnonzero(pids == p), num_instances)
    return batch


def draw_views(transform: Callable, images: Sequence[Any], seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(originals [n, 3, H, W], augmented [n, 3, H, W])``: ``transform(images[j])`` for each j, pair j
    drawn from the j-th seed of a local ``torch.Generator(seed)``; torch's global state is untouched."""
    seeds = torch.randint(0, 2 ** 62, (len(images),), generator=torch.Generator().manual_seed(int(seed))).tolist()
    views = []
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
        for image, s in zip(images, seeds):
            torch.set_rng_state(torch.Generator().manual_seed(s).get_state())
            views.append(transform(image))
    if not views:
        raise BauError("weight scores: no images to draw views of")
    return torch.stack([v[0] for v in views]), torch.stack([v[1] for v in views])


def _display(t: torch.Tensor) -> np.ndarray:
    from bau.data.transforms import denormalize

    return denormalize(t).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def _features(model: torch.nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([model(images[s:s + batch_size].to(device)).float().cpu()
                      for s in range(0, len(images), max(1, batch_size))])


@torch.no_grad()
def weight_scores(model: torch.nn.Module, cfg: Config, items: Sequence[tuple], batch: Sequence[int],
                  aug_prob: Optional[float] = None, k: Optional[int] = None, num_views: int = 0, seed: int = 0,
                  transform: Optional[Callable] = None) -> WeightScores:
    """Eq. 4 weights ``w[i, i]`` of a batch's augmented views under ``model``.

    Args:
        model: a ``ReIDModel``; run in eval mode (its mode is restored afterwards).
        cfg: the run's config: image size, which augmentations are on, ``data.aug_prob``, ``loss.k``.
        items: training items ``(path, pid, camid[, domain])``.
        batch: item indices of the batch (``training_batch`` or ``batch_with``).
        aug_prob: ``p``, the probability of each augmentation (default ``cfg.data.aug_prob``).
        k: neighbourhood size of Eq. 4 (default ``cfg.loss.k``).
        num_views: more (original, augmented) pairs of ``items[batch[0]]`` to score.
        seed: seeds the augmentation draws (see the module doc; the global RNG is left as it was).
        transform: ``PIL image -> (original view, augmented view)``; default the run's
            two-view transform (``bau.data.transforms.build_train_transform``) at ``aug_prob``.
    """
    from bau.data.images import read_image
    from bau.data.transforms import build_train_transform
    from bau.method.losses import reciprocal_weights

    if not items or not batch:
        raise BauError("weight scores: no training images given")
    if num_views < 0:
        raise BauError(f"views: expected 0 or more, got {num_views}")
    k = cfg.loss.k if k is None else k
    if transform is None:
        p = cfg.data.aug_prob if aug_prob is None else aug_prob
        transform = build_train_transform(dataclasses.replace(cfg.data, aug_prob=p))
    images = {i: read_image(items[i][0]) for i in set(batch)}
    orig, aug = draw_views(transform, [images[i] for i in batch] + [images[batch[0]]] * num_views, seed)
    was_training = model.training
    model.eval()
    try:
        f_orig = _features(model, orig, cfg.eval.batch_size)
        f_aug = _features(model, aug, cfg.eval.batch_size)
    finally:
        model.train(was_training)
    b = len(batch)
    f_o, f_a = f_orig[:b], f_aug[:b]
    view_weights = []
    for j in range(b, b + num_views):
        # pair j of the first image takes the place of its batch pair (row 0); the rest stays
        o, a = f_o.clone(), f_a.clone()
        o[0], a[0] = f_orig[j], f_aug[j]
        view_weights.append(float(reciprocal_weights(o, a, k)[0, 0]))
    return WeightScores(batch=list(batch), paths=[str(items[i][0]) for i in batch],
                        pids=[int(items[i][1]) for i in batch],
                        originals=_display(orig[:b]), augmented=_display(aug[:b]),
                        weights=reciprocal_weights(f_o, f_a, k).diagonal().numpy(),
                        view_originals=_display(orig[b:]), view_augmented=_display(aug[b:]),
                        view_weights=np.array(view_weights, dtype=np.float64))


def checkpoint_weight_scores(checkpoint: str, root: Optional[str] = None, seed: int = 0,
                             device: str | torch.device = "cpu") -> WeightScores:
    """``weight_scores`` of a checkpoint on the training sampler's first batch of its own sources
    (data under ``root``, default the run's ``data.root``), with the run's P, K, p and k (Figure 5b)."""
    from bau.runs.checkpoint import load_model

    model, cfg = load_model(checkpoint, device)
    from bau.data.multisource import training_set

    items = training_set(cfg.data, root).train
    if not items:
        raise BauError(f"checkpoint {checkpoint}: its training sources have no images under {root or cfg.data.root}")
    batch = training_batch([it[1] for it in items], cfg.data.num_ids, cfg.data.num_instances, seed)
    return weight_scores(model, cfg, items, batch, seed=seed)
