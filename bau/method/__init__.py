"""BAU's method as tensor functions: the losses (Eq. 1-8), the prototype memory (Eq. 7) and Eq. 9.

What it offers (re-exported here; each module's docstring says more):

- ``losses``: Eq. 2-8 and the two supervised losses, tensor in, tensor out: ``alignment_loss``,
  ``batch_hard_triplet``, ``cross_entropy_ls``, ``domain_uniformity_loss``, ``reciprocal_weights``,
  ``uniformity_loss``.
- ``memory``: the per-identity prototype memory with its momentum update (Eq. 7): ``PrototypeMemory``.
- ``objective``: Eq. 9 wired from the losses, every term switchable (the ablations are configs): ``BAUObjective``,
  ``view_features``.
"""
from bau.method.losses import (
    alignment_loss,
    batch_hard_triplet,
    cross_entropy_ls,
    domain_uniformity_loss,
    reciprocal_weights,
    uniformity_loss,
)
from bau.method.memory import PrototypeMemory
from bau.method.objective import BAUObjective, view_features

__all__ = [
    "alignment_loss", "batch_hard_triplet", "cross_entropy_ls", "domain_uniformity_loss", "reciprocal_weights",
    "uniformity_loss", "PrototypeMemory", "BAUObjective", "view_features",
]
