"""One optimisation step of BAU: forward both views, Eq. 9, backward, Adam, memory update (Eq. 7).

``TrainStep`` holds the pieces a step needs and nothing about epochs, logging or checkpoints, so
the trainer, the benchmarks and the GPU check run the very same step::

    step = TrainStep(cfg, model, objective, optimizer, memory, device)
    values, domains = step(batch)          # loss values (floats) and the global batch's domain ids

A batch is what the training loader yields: ``images`` ``[V*B, 3, H, W]`` (the B originals, then
for BAU their B augmented views, stacked once by the loader's collate), ``pid`` and ``domain``
``[B]``. Distributed training passes the DDP-wrapped ``net`` and the ``DistContext``: every rank
gathers the global batch's outputs with gradients and computes the single-process loss of it.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch

from bau.core.config import Config
from bau.core.errors import BauError
from bau.engine.distributed import DistContext, gather_no_grad, gather_with_grad
from bau.method.memory import PrototypeMemory
from bau.method.objective import BAUObjective, view_features
from bau.models.batchnorm import views_per_batchnorm
from bau.models.reid import input_memory_format


class NonFiniteLoss(BauError):
    """A loss term became NaN or inf (``term`` names it); the step did not update anything."""

    def __init__(self, term: str, value: float):
        super().__init__(f"loss term {term!r} became {value}")
        self.term, self.value = term, value


class TrainStep:
    def __init__(self, cfg: Config, model: torch.nn.Module, objective: BAUObjective,
                 optimizer: torch.optim.Optimizer, memory: Optional[PrototypeMemory], device: torch.device,
                 net: Optional[torch.nn.Module] = None, dist: Optional[DistContext] = None):
        self.cfg, self.model, self.objective, self.optimizer = cfg, model, objective, optimizer
        self.memory, self.device = memory, device
        self.net = net if net is not None else model  # what the forward calls (DDP-wrapped when distributed)
        self.dist = dist or DistContext()
        self.use_amp = cfg.train.amp and device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.memory_format = input_memory_format(cfg)

    def forward(self, images: torch.Tensor, views: int) -> Dict[str, torch.Tensor]:
        """Network outputs for ``images`` [views * B, ...]; BatchNorm statistics per ``model.bn_views``:
        one set for both views (joint) or one per view, running statistics from the originals
        (split, what the released two-GPU DataParallel run does; ``bau.models.batchnorm``)."""
        split = views if self.cfg.model.bn_views == "split" else 1
        images = images.to(self.device, non_blocking=True, memory_format=self.memory_format)
        with views_per_batchnorm(self.model, split), \
                torch.autocast(device_type=self.device.type, enabled=self.use_amp):
            return self.net(images)

    def losses(self, batch: Dict[str, torch.Tensor]
               ) -> Tuple[Dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 9's terms for ``batch``, the global batch's original-view features ``[B, d]`` (detached: what
        Eq. 7 stores in the memory) and its identity and domain ids ``[B]``; no backward, no update."""
        dev = self.device
        pids = batch["pid"].to(dev, non_blocking=True)
        dids = batch["domain"].to(dev, non_blocking=True)
        b = pids.shape[0]
        views = batch["images"].shape[0] // b
        out = self.forward(batch["images"], views)
        # Distributed: every rank rebuilds the global batch (rank order = the single-process order,
        # since the sampler hands each rank a contiguous slice), with gradients.
        out_o = {k: gather_with_grad(v[:b], self.dist) for k, v in out.items()}
        out_a = {k: gather_with_grad(v[b:], self.dist) for k, v in out.items()} if views == 2 else None
        pids, dids = gather_no_grad(pids, self.dist), gather_no_grad(dids, self.dist)
        return self.objective(out_o, out_a, pids, dids), view_features(out_o).detach(), pids, dids

    def __call__(self, batch: Dict[str, torch.Tensor]) -> Tuple[Dict[str, float], torch.Tensor]:
        """One step on ``batch``; returns the loss values and the global batch's domain ids ``[B]`` (on CPU).

        Raises ``NonFiniteLoss`` before any update if a term is NaN or inf.
        """
        terms, f_orig, pids, dids = self.losses(batch)
        # One device-to-host copy for every logged value (and the finiteness check) per step.
        values = dict(zip(terms, torch.stack([v.detach().float() for v in terms.values()]).tolist()))
        dids = dids.cpu()  # the stream was just synchronised: no second wait after the update
        for name, value in values.items():
            if not math.isfinite(value):
                raise NonFiniteLoss(name, value)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms["total"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.memory is not None:
            self.memory.update(f_orig, pids)  # Eq. 7, original-view features only
        return values, dids
