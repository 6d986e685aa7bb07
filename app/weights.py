"""Weight scores ``w`` (Eq. 4) of augmented views, as a checkpoint sees them: the Augmentations page.

Eq. 4 is defined inside a mini-batch: ``w[i, j]`` is the Jaccard similarity of the k-reciprocal
neighbour sets of the augmented feature ``f~_i`` and the original feature ``f_j`` among the
batch's ``2B`` features. A single image has no weight on its own, so the page builds a batch the
way training does (``P`` identities x ``K`` images, the chosen image among them), draws one
(original, augmented) pair per batch image with the run's two-view transform at probability
``p``, and reports ``w[i, i]``: how much the augmented view of image ``i`` still looks like
its own original (Fig. 5b shows these). For the chosen image several pairs are drawn, each
scored inside the same batch.

Features are computed in eval mode (BatchNorm running statistics), so they are the retrieval
features; training computes ``w`` with batch statistics, which differ slightly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import numpy as np
import torch

from bau.config import Config
from bau.data.images import read_image
from bau.data.transforms import build_transforms, denormalize
from bau.errors import BauError
from bau.losses import reciprocal_weights


@dataclass
class WeightScores:
    """Views are ``[n, H, W, 3]`` float RGB in [0, 1] for display."""

    batch: List[int]  # item indices of the batch; batch[0] is the chosen image
    batch_orig: np.ndarray  # [B, H, W, 3] one original view per batch image
    batch_aug: np.ndarray  # [B, H, W, 3] its augmented view
    batch_w: np.ndarray  # [B] w[i, i] of each batch image
    views_orig: np.ndarray  # [V, H, W, 3] original views of the chosen image
    views_aug: np.ndarray  # [V, H, W, 3] augmented views of the chosen image
    views_w: np.ndarray  # [V] w of each augmented view of the chosen image


def pk_batch(pids: Sequence[int], index: int, num_ids: int, num_instances: int, seed: int = 0) -> List[int]:
    """Item indices of a ``P x K`` batch holding item ``index``: its identity's images first.

    ``K`` images of the chosen identity (``index`` first, others drawn without replacement, or with
    replacement when the identity has fewer than ``K``), then ``P - 1`` other identities drawn
    uniformly, ``K`` images each, like the training sampler. Seeded: same inputs, same batch.
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


def _display(t: torch.Tensor) -> np.ndarray:
    return denormalize(t).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def weight_scores(model: torch.nn.Module, cfg: Config, items: Sequence[tuple], index: int, aug_prob: float,
                  num_views: int = 6, k: int = 10, num_ids: int = 8, num_instances: int = 4,
                  seed: int = 0) -> WeightScores:
    """Eq. 4 weights of augmented views of ``items[index]`` (and of its batch) under ``model``.

    Args:
        model: a ``ReIDModel`` (run in eval mode; its mode is restored).
        cfg: the run's config (image size and which augmentations are on).
        items: ``(path, pid, camid)`` images to build the batch from (a dataset's train list).
        index: the chosen image.
        aug_prob: ``p``, the probability of each augmentation.
        num_views: augmented views drawn for the chosen image.
        k: neighbourhood size of Eq. 4 (``loss.k`` of the run by default on the page).
        num_ids, num_instances: ``P`` and ``K`` of the batch.
        seed: seeds the batch and the augmentations.
    """
    if num_views < 1:
        raise BauError(f"views: expected at least 1, got {num_views}")
    d = cfg.data
    transform = build_transforms(d.height, d.width, aug_prob, d.randaugment, d.color_jitter, d.random_erasing)
    batch = pk_batch([it[1] for it in items], index, num_ids, num_instances, seed)
    images = {i: read_image(items[i][0]) for i in set(batch)}
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        torch.manual_seed(seed)
        pairs = [transform(images[i]) for i in batch]
        orig = torch.stack([p[0] for p in pairs])
        aug = torch.stack([p[1] for p in pairs])
        views = [transform(images[index]) for _ in range(num_views)]
        v_orig = torch.stack([v[0] for v in views])
        v_aug = torch.stack([v[1] for v in views])
        feats = model(torch.cat([orig, aug, v_orig, v_aug]).to(device)).float().cpu()
    finally:
        model.train(was_training)
    b, v = len(batch), num_views
    f_o, f_a = feats[:b], feats[b:2 * b]
    fv_o, fv_a = feats[2 * b:2 * b + v], feats[2 * b + v:]
    batch_w = reciprocal_weights(f_o, f_a, k).diagonal().numpy()
    views_w = []
    for j in range(v):
        # the chosen image's pair j takes the place of its batch pair (row 0), the rest stays
        o, a = f_o.clone(), f_a.clone()
        o[0], a[0] = fv_o[j], fv_a[j]
        views_w.append(float(reciprocal_weights(o, a, k)[0, 0]))
    return WeightScores(batch=batch, batch_orig=_display(orig), batch_aug=_display(aug), batch_w=batch_w,
                        views_orig=_display(v_orig), views_aug=_display(v_aug), views_w=np.array(views_w))
