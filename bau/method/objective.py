"""The BAU objective of Eq. 9, wired from the pure loss functions of ``bau.method.losses``:

    L = L_ce + L_tri + lambda * L_align + L_uniform + L_domain

Every term can be switched off from ``LossConfig`` so the ablations of Tables 5, 6 and 8 are
configs. The trainer calls ``BAUObjective.__call__`` with the network outputs for the original and
(optionally) the augmented view and gets back the total and each term (for the log), losses only.
``view_features`` is the L2-normalised embedding the terms use; the step stores the original view's
in the memory (Eq. 7).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F

from bau.core.config import LossConfig
from bau.method.losses import (
    alignment_loss,
    batch_hard_triplet,
    cross_entropy_ls,
    domain_uniformity_loss,
    reciprocal_weights,
    uniformity_loss,
)
from bau.method.memory import PrototypeMemory


def view_features(out: Dict[str, torch.Tensor]) -> torch.Tensor:
    """The L2-normalised BNNeck features of one view's network outputs, in float32: what Eqs. 2-8 compare
    and what the memory stores (Eq. 7). Float32 even under autocast: exp(-2 d^2) and log-means
    underflow in half precision."""
    return F.normalize(out["bn"].float(), dim=1)


class BAUObjective:
    def __init__(self, cfg: LossConfig, memory: Optional[PrototypeMemory]):
        self.cfg = cfg
        self.memory = memory

    def __call__(self, out_orig: Dict[str, torch.Tensor], out_aug: Optional[Dict[str, torch.Tensor]],
                 pids: torch.Tensor, dids: torch.Tensor) -> Dict[str, torch.Tensor]:
        c = self.cfg
        terms: Dict[str, torch.Tensor] = {}
        f_o = view_features(out_orig)
        if c.ce:
            terms["ce"] = cross_entropy_ls(out_orig["logits"].float(), pids, c.label_smoothing)
        if c.triplet:
            terms["tri"] = batch_hard_triplet(out_orig["feat"].float(), pids, c.margin)
        f_a = None
        if out_aug is not None:
            f_a = view_features(out_aug)
            if c.ce_aug:
                terms["ce_aug"] = cross_entropy_ls(out_aug["logits"].float(), pids, c.label_smoothing)
            if c.align:
                w = reciprocal_weights(f_o.detach(), f_a.detach(), c.k) if c.weighting else None
                terms["align"] = alignment_loss(f_o, f_a, pids, w)
            if c.uniform:
                # Eq. 6 sums the two views; like the authors' code we average them (same optimum, and
                # L_uniform keeps the scale of Eq. 2 so the figures' values are comparable).
                terms["uniform"] = 0.5 * (uniformity_loss(f_o) + uniformity_loss(f_a))
        if c.domain and self.memory is not None:
            protos = self.memory.prototypes
            if c.domain_specific:
                proto_domains, feat_domains = self.memory.domains, dids
            else:  # Table 6 "w/o domain-specific prototypes": nearest prototypes over all domains
                proto_domains = torch.zeros_like(self.memory.domains)
                feat_domains = torch.zeros_like(dids)
            views = [f_o] + ([f_a] if f_a is not None else [])
            # Eq. 8 is applied to each view; averaged over views for the same reason as above.
            terms["domain"] = sum(domain_uniformity_loss(f, protos, proto_domains, pids, feat_domains,
                                                         c.n_neighbors) for f in views) / len(views)
        # Logged terms are the raw losses; lambda weights only the alignment term in the total (Eq. 9).
        terms["total"] = sum(c.lam * v if k == "align" else v for k, v in terms.items())
        return terms
