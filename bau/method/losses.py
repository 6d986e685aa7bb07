"""The loss terms of BAU (Sec. 3.2, Eq. 9) plus the two standard re-ID losses it is added to.

    L_BAU = L_ce + L_tri + lambda * L_align + L_uniform + L_domain          (Eq. 9)

Every function is a pure map from tensors to a scalar (or a weight matrix); none keeps state. The
BAU terms expect L2-normalised features (they live on the unit hypersphere, as in Wang & Isola);
normalising is the caller's job so that the same features feed every term.

Squared distances are computed as ``|a|^2 + |b|^2 - 2 a.b`` clamped at 0: no square root, so the
gradient stays finite when two features coincide (``torch.pdist`` / ``cdist`` have NaN gradients at
zero distance), and no ``[B, B, d]`` difference tensor.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[n, d] x [m, d] -> [n, m]`` squared Euclidean distances, >= 0, finite gradients everywhere."""
    sq = (a * a).sum(1, keepdim=True) + (b * b).sum(1).unsqueeze(0) - 2.0 * (a @ b.t())
    return sq.clamp_min(0.0)


def _zero_like_graph(x: torch.Tensor) -> torch.Tensor:
    """A scalar 0 that is still connected to ``x`` (so ``backward()`` works and gives zero grads)."""
    return (x * 0.0).sum()


def reciprocal_weights(f_orig: torch.Tensor, f_aug: torch.Tensor, k: int) -> torch.Tensor:
    """Jaccard similarity of k-reciprocal neighbour sets between augmented and original features (Eq. 4).

    Neighbours are searched among the ``2B`` features of the batch (originals then augmented) by
    cosine similarity. ``N_k(x)`` is the ``k`` most similar points with ``x`` itself always included;
    ``R_k(x) = {y in N_k(x) : x in N_k(y)}``. Then ``w[i, j] = |R(f~_i) & R(f_j)| / |R(f~_i) | R(f_j)|``.

    Args:
        f_orig: ``[B, d]`` features of the original images.
        f_aug: ``[B, d]`` features of their augmented views (row i is the view of image i).
        k: neighbourhood size; values above ``2B`` are clamped to ``2B``.

    Returns:
        ``[B, B]`` weights in [0, 1], without gradient (the inputs are detached first). Row = augmented sample,
        column = original.
    """
    if f_orig.shape != f_aug.shape or f_orig.dim() != 2:
        raise ValueError(
            f"reciprocal_weights: expected two [B, d] tensors, got {tuple(f_orig.shape)} and {tuple(f_aug.shape)}"
        )
    if k < 1:
        raise ValueError(f"reciprocal_weights: k must be >= 1, got {k}")
    x = F.normalize(torch.cat([f_orig, f_aug], 0).detach().float(), dim=1)
    n = x.shape[0]
    sim = x @ x.t()
    # A point is its own nearest neighbour even if a duplicate ties with it.
    sim.fill_diagonal_(float("inf"))
    nearest = sim.topk(min(k, n), dim=1).indices
    in_knn = torch.zeros(n, n, dtype=torch.bool, device=x.device)
    in_knn.scatter_(1, nearest, True)
    reciprocal = (in_knn & in_knn.t()).float()  # reciprocal[x, y] = y in R_k(x)
    b = f_orig.shape[0]
    r_orig, r_aug = reciprocal[:b], reciprocal[b:]
    inter = r_aug @ r_orig.t()
    union = r_aug.sum(1, keepdim=True) + r_orig.sum(1).unsqueeze(0) - inter
    # Every set holds its own point, so union >= 1; the clamp only documents that.
    return (inter / union.clamp_min(1.0)).to(f_orig.dtype)


def alignment_loss(
    f_orig: torch.Tensor, f_aug: torch.Tensor, pids: torch.Tensor, weights: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """(Weighted) alignment between augmented and original features of the same identity (Eq. 3 / Eq. 5).

    ``L = sum_{i,j: pid_i = pid_j} w_ij ||f~_i - f_j||^2 / sum_{i,j: pid_i = pid_j} w_ij``; the pair
    ``i == j`` (an image and its own augmented view) is a positive pair too. ``weights=None`` means
    all ones, i.e. the plain mean over positive pairs of Eq. 3.

    Args:
        f_orig: ``[B, d]`` original features.
        f_aug: ``[B, d]`` augmented features (row i = view of image i).
        pids: ``[B]`` identity labels.
        weights: optional ``[B, B]`` (row = augmented, column = original), e.g. ``reciprocal_weights``;
            treated as constants.

    Returns:
        Scalar. If every positive pair has zero weight, a graph-connected zero (never NaN).
    """
    sq = _squared_distances(f_aug, f_orig)
    positive = (pids.view(-1, 1) == pids.view(1, -1)).to(sq.dtype)
    w = positive if weights is None else weights.detach().to(sq.dtype) * positive
    denom = w.sum()
    # With denom == 0 the numerator is exactly 0 too, so 0 / tiny = 0 and no branch (or GPU sync) is needed.
    return (w * sq).sum() / denom.clamp_min(torch.finfo(sq.dtype).tiny)


def uniformity_loss(f: torch.Tensor) -> torch.Tensor:
    """Uniformity of a batch on the hypersphere (Wang & Isola; Eq. 2, one term of Eq. 6).

    ``log( mean_{i != j} exp(-2 ||f_i - f_j||^2) )``, computed as a log-sum-exp. (Eq. 6 in the paper
    prints the unsquared norm; Eq. 2 and Wang & Isola use the squared one, which is used here.)
    Eq. 6 applies it to the original and to the augmented batch; the trainer combines the two.

    Args:
        f: ``[B, d]`` features, ``B >= 2``.

    Returns:
        Scalar, <= 0.
    """
    b = f.shape[0]
    if b < 2:
        raise ValueError(f"uniformity_loss: need at least 2 features, got {b}")
    sq = _squared_distances(f, f)
    off_diagonal = ~torch.eye(b, dtype=torch.bool, device=f.device)
    return torch.logsumexp(-2.0 * sq[off_diagonal], dim=0) - math.log(b * (b - 1))


def domain_uniformity_loss(
    f: torch.Tensor,
    prototypes: torch.Tensor,
    proto_domains: torch.Tensor,
    pids: torch.Tensor,
    dids: torch.Tensor,
    n_neighbors: Optional[int] = None,
) -> torch.Tensor:
    """Domain-specific uniformity between features and class prototypes (one view of Eq. 8).

    For each feature ``f_i``, ``N(f_i)`` is its ``n_neighbors`` nearest prototypes (squared Euclidean)
    among those of the same source domain (``proto_domains[j] == dids[i]``) and another class
    (``j != pids[i]``, the own class is excluded by label). The loss is
    ``log( sum_i sum_{j in N(f_i)} exp(-2 ||f_i - c_j||^2) / sum_i |N(f_i)| )``.
    If a domain has fewer other classes than ``n_neighbors``, all of them are used.

    The "global" variant of Table 6 (nearest prototypes regardless of domain) is this function
    called with all-zero ``proto_domains`` and ``dids``.

    Args:
        f: ``[B, d]`` features (original or augmented view).
        prototypes: ``[C, d]`` class prototypes (``PrototypeMemory.prototypes``); no gradient reaches them.
        proto_domains: ``[C]`` domain index of each prototype.
        pids: ``[B]`` class labels, which are row indices into ``prototypes``.
        dids: ``[B]`` domain index of each feature.
        n_neighbors: ``N`` in Eq. 8; defaults to the batch size ``B`` as in the paper.

    Returns:
        Scalar; a graph-connected zero if no feature has any eligible prototype.
    """
    b, c = f.shape[0], prototypes.shape[0]
    n = b if n_neighbors is None else n_neighbors
    if n < 1:
        raise ValueError(f"domain_uniformity_loss: n_neighbors must be >= 1, got {n}")
    sq = _squared_distances(f, prototypes.detach().to(f.dtype))
    same_domain = proto_domains.view(1, -1) == dids.view(-1, 1)
    other_class = torch.arange(c, device=f.device).view(1, -1) != pids.view(-1, 1)
    eligible = same_domain & other_class
    masked = sq.masked_fill(~eligible, float("inf"))
    nearest_sq, _ = masked.topk(min(n, c), dim=1, largest=False)
    selected = torch.isfinite(nearest_sq)  # inf marks padding where a domain has too few classes
    count = int(selected.sum())
    if count == 0:
        return _zero_like_graph(f)
    logits = (-2.0 * nearest_sq).masked_fill(~selected, float("-inf"))
    return torch.logsumexp(logits.flatten(), dim=0) - math.log(count)


def cross_entropy_ls(logits: torch.Tensor, targets: torch.Tensor, epsilon: float = 0.1) -> torch.Tensor:
    """Cross-entropy with label smoothing (Szegedy et al. 2016; L_ce in Eq. 9).

    Target distribution ``(1 - eps) * onehot + eps / C``, as in torchreid.

    Args:
        logits: ``[B, C]`` classifier outputs.
        targets: ``[B]`` class indices.
        epsilon: smoothing mass spread uniformly over the ``C`` classes.

    Returns:
        Scalar, mean over the batch.
    """
    log_probs = F.log_softmax(logits, dim=1)
    num_classes = logits.shape[1]
    smooth = torch.full_like(log_probs, epsilon / num_classes)
    smooth.scatter_add_(1, targets.view(-1, 1), torch.full_like(log_probs[:, :1], 1.0 - epsilon))
    return -(smooth * log_probs).sum(1).mean()


def batch_hard_triplet(features: torch.Tensor, pids: torch.Tensor, margin: float = 0.3) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017; L_tri in Eq. 9).

    For each anchor, the farthest same-identity sample and the closest other-identity sample
    (Euclidean distance) give ``max(0, d_ap - d_an + margin)``; the loss is the mean over anchors
    (each has a negative once the batch holds two identities). Applied to the pre-BNNeck feature.

    Args:
        features: ``[B, d]`` features (not necessarily normalised).
        pids: ``[B]`` identity labels.
        margin: triplet margin.

    Returns:
        Scalar; a graph-connected zero if no anchor has a negative (single-identity batch).
    """
    # Clamping before the sqrt keeps the gradient finite for the anchor-to-itself distance (0).
    dist = _squared_distances(features, features).clamp_min(1e-12).sqrt()
    same = pids.view(-1, 1) == pids.view(1, -1)
    hardest_pos = dist.masked_fill(~same, float("-inf")).max(1).values
    hardest_neg = dist.masked_fill(same, float("inf")).min(1).values
    if bool(same.all()):  # one identity: no anchor has a negative
        return _zero_like_graph(features)
    # With two identities or more, every anchor has a negative: the mean is over all anchors.
    return F.relu(hardest_pos - hardest_neg + margin).mean()
