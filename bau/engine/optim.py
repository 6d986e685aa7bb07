"""The optimiser and the learning-rate schedule of the released recipe (appendix A; docs/fidelity.md).

- ``lr_factor(epoch, cfg)``: linear warm-up over ``optim.warmup_epochs`` from ``optim.warmup_factor``, then
  x ``optim.gamma`` at each of ``optim.milestones`` (epochs, 0-based).
- ``build_optimizer(cfg, model)``: Adam on the trainable parameters with ``optim.lr`` and
  ``optim.weight_decay``, and a per-epoch ``LambdaLR`` of ``lr_factor``.
"""
from __future__ import annotations

from typing import Tuple

import torch

from bau.core.config import Config


def lr_factor(epoch: int, cfg: Config) -> float:
    """Linear warm-up from ``warmup_factor`` over ``warmup_epochs``, then x``gamma`` at each milestone.

    ``epoch`` is 0-based (the factor used during epoch ``epoch + 1``)."""
    o = cfg.optim
    factor = o.gamma ** sum(epoch >= m for m in o.milestones)
    if epoch < o.warmup_epochs:
        alpha = epoch / o.warmup_epochs
        factor *= o.warmup_factor * (1 - alpha) + alpha
    return factor


def build_optimizer(cfg: Config, model: torch.nn.Module
                    ) -> Tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """Adam on the trainable parameters, warm-up + step schedule per epoch (``lr_factor``)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, cfg))
    return optimizer, scheduler
