"""The class-prototype memory bank of BAU (Sec. 3.2, Eq. 7), used by the domain-specific uniformity loss.

One L2-normalised prototype per training identity (all source domains together) and the source
domain each identity belongs to. Prototypes are buffers, not parameters: no gradient reaches them,
they move only through the momentum update, and they are saved in ``state_dict``.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F

from bau.core.errors import BauError


class PrototypeMemory(torch.nn.Module):
    """Memory bank ``M = {c_1, ..., c_C}`` of class prototypes with their source domains.

    Buffers:
        prototypes: ``[C, d]`` float, unit-norm rows once initialised.
        domains: ``[C]`` long, ``domains[c]`` is the source-domain index of class ``c``.
    """

    prototypes: torch.Tensor
    domains: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        dim: int,
        class_domains: Union[Sequence[int], torch.Tensor],
        momentum: float = 0.1,
    ):
        super().__init__()
        domains = torch.as_tensor(class_domains, dtype=torch.long).reshape(-1)
        if domains.numel() != num_classes:
            raise ValueError(
                f"PrototypeMemory: class_domains has {domains.numel()} entries, expected num_classes={num_classes}"
            )
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"PrototypeMemory: momentum must be in [0, 1], got {momentum}")
        self.momentum = float(momentum)
        self.register_buffer("prototypes", torch.zeros(num_classes, dim))
        self.register_buffer("domains", domains)

    @property
    def num_classes(self) -> int:
        return self.prototypes.shape[0]

    def _class_sums(self, features: torch.Tensor, pids: torch.Tensor):
        """Per-class feature sums ``[C, d]`` and counts ``[C]`` of a batch, by ``index_add_``, both in the
        prototypes' dtype and on their device."""
        features = features.detach().to(self.prototypes.dtype)
        pids = pids.to(self.prototypes.device).long().reshape(-1)
        if features.dim() != 2 or features.shape[1] != self.prototypes.shape[1] or len(pids) != len(features):
            raise ValueError(
                f"PrototypeMemory: expected features [n, {self.prototypes.shape[1]}] and pids [n], "
                f"got {tuple(features.shape)} and {tuple(pids.shape)}"
            )
        if len(pids) and (int(pids.min()) < 0 or int(pids.max()) >= self.num_classes):
            raise ValueError(
                f"PrototypeMemory: pids must lie in [0, {self.num_classes}), "
                f"got [{int(pids.min())}, {int(pids.max())}]"
            )
        sums = torch.zeros_like(self.prototypes).index_add_(0, pids, features.to(self.prototypes.device))
        counts = torch.zeros(self.num_classes, device=self.prototypes.device, dtype=self.prototypes.dtype)
        counts.index_add_(0, pids, torch.ones_like(pids, dtype=counts.dtype))
        return sums, counts

    def initialise(self, features: torch.Tensor, pids: torch.Tensor) -> None:
        """Set each prototype to the L2-normalised mean feature of its class.

        Args:
            features: ``[n, d]`` features of (typically) every training image.
            pids: ``[n]`` class index of each feature; every class must appear at least once.
        """
        with torch.no_grad():
            sums, counts = self._class_sums(features, pids)
            missing = (counts == 0).nonzero().flatten()
            if len(missing):
                raise BauError(
                    f"PrototypeMemory.initialise: {len(missing)} of {self.num_classes} classes have no feature "
                    f"(first: class {int(missing[0])}); every training identity needs at least one image"
                )
            self.prototypes.copy_(F.normalize(sums / counts.unsqueeze(1), dim=1))

    def update(self, features: torch.Tensor, pids: torch.Tensor) -> None:
        """Momentum update of the classes present in the batch (Eq. 7), then renormalise.

        ``c <- mu * c + (1 - mu) * f`` with ``f`` the *mean* batch feature of the class. A P x K
        batch holds K images per identity; updating once per sample would make the result depend
        on the order of the K images (and need a sequential loop), while one update with their mean
        is order-free and vectorised. Classes absent from the batch are untouched.

        Args:
            features: ``[n, d]`` features of the original images (no gradient is kept).
            pids: ``[n]`` class indices.
        """
        with torch.no_grad():
            sums, counts = self._class_sums(features, pids)
            present = counts > 0
            means = sums[present] / counts[present].unsqueeze(1)
            mixed = self.momentum * self.prototypes[present] + (1.0 - self.momentum) * means
            self.prototypes[present] = F.normalize(mixed, dim=1)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, dim={self.prototypes.shape[1]}, momentum={self.momentum}"
