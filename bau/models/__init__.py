"""Models: backbones, the GeM + BNNeck re-ID head, two-view BatchNorm and pretrained weights.

What it offers (re-exported here; each module's docstring says more):

- ``pretrained``: finding and loading pretrained weights: ``resolve_weights``.
- ``backbones``: the backbones by registry name (``model.backbone``): ``BACKBONES``.
- ``batchnorm``: BatchNorm over the two views: joint or split statistics (``model.bn_views``):
  ``views_per_batchnorm``.
- ``reid``: ``ReIDModel``: backbone + GeM + BNNeck: ``GeM``, ``ReIDModel``, ``build_model``.
"""
from bau.models.backbones import BACKBONES
from bau.models.batchnorm import views_per_batchnorm
from bau.models.pretrained import resolve_weights
from bau.models.reid import GeM, ReIDModel, build_model

__all__ = [
    "resolve_weights", "BACKBONES", "views_per_batchnorm", "GeM", "ReIDModel", "build_model",
]
