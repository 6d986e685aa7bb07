"""The re-ID network: backbone -> GeM pooling -> BNNeck (bias frozen) -> linear classifier (no bias).

The BNNeck output, L2-normalised, is the retrieval feature and the feature on which BAU's
alignment, uniformity and domain losses live (the unit hypersphere of Eqs. 1-8); the triplet loss
uses the pooled feature before the BNNeck and cross-entropy the classifier logits (BoT/fast-reid).
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

from bau.core.config import Config
from bau.models.backbones import BACKBONES


class GeM(nn.Module):
    """Generalised-mean pooling, ``(mean x^p)^(1/p)`` over the spatial map; p is learnable."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, h, w] -> [B, C]
        p = self.p.clamp(min=1.0)
        return x.clamp(min=self.eps).pow(p).mean(dim=(2, 3)).pow(1.0 / p)


class ReIDModel(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, gem_p: float = 3.0):
        super().__init__()
        self.backbone = backbone
        self.is_token = getattr(backbone, "is_token", False)
        self.pool = nn.Identity() if self.is_token else GeM(gem_p)
        dim = backbone.out_channels
        self.feat_dim = dim
        self.bnneck = nn.BatchNorm1d(dim)
        self.bnneck.bias.requires_grad_(False)  # BNNeck: a frozen-bias BN before the classifier
        nn.init.ones_(self.bnneck.weight)
        nn.init.zeros_(self.bnneck.bias)
        # PyTorch's default Linear initialisation, as the released code leaves it (BoT's std-0.001
        # normal init is not used there; docs/fidelity.md).
        self.classifier = nn.Linear(dim, num_classes, bias=False) if num_classes > 0 else None

    def forward_features(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        pooled = self.pool(self.backbone(x))
        return {"feat": pooled, "bn": self.bnneck(pooled)}

    def forward(self, x: torch.Tensor) -> torch.Tensor | Dict[str, torch.Tensor]:
        """Training: dict with ``feat`` [B, C] (pre-BNNeck), ``bn`` [B, C], ``logits`` [B, num_classes].
        Evaluation: the L2-normalised BNNeck feature [B, C]."""
        out = self.forward_features(x)
        if not self.training:
            return F.normalize(out["bn"].float(), dim=1)
        if self.classifier is not None:
            out["logits"] = self.classifier(out["bn"])
        return out


def input_memory_format(cfg: Config) -> torch.memory_format:
    """The memory format a model built from ``cfg`` wants its image batches in."""
    return torch.channels_last if cfg.train.channels_last else torch.contiguous_format


def build_model(cfg: Config, num_classes: int) -> ReIDModel:
    factory = BACKBONES.get(cfg.model.backbone)
    backbone = factory(pretrained=cfg.model.pretrained, pretrained_path=cfg.model.pretrained_path,
                       height=cfg.data.height, width=cfg.data.width, last_stride=cfg.model.last_stride)
    model = ReIDModel(backbone, num_classes, gem_p=cfg.model.gem_p)
    # channels_last (NHWC) weights: faster convolutions on CPUs and tensor cores, same results.
    return model.to(memory_format=input_memory_format(cfg))
