"""BatchNorm over BAU's two views: one set of batch statistics, or one per view (``model.bn_views``).

BAU forwards the original and the augmented images of a batch together (Fig. 3a). How their
BatchNorm statistics are formed is not in the paper; it matters because the augmented views have
other colour and occlusion statistics than the originals:

- ``joint``: one forward of ``[originals; augmented]``; every BatchNorm layer normalises with the
  statistics of both views together and its running statistics average them too.
- ``split``: what the authors' released two-GPU ``DataParallel`` run does. ``DataParallel`` cuts the
  concatenated batch in two along the batch dimension, so one GPU gets the originals and the
  other the augmented views; each replica's BatchNorm normalises its half with that half's own
  statistics, and only the replica on device 0 (the originals) writes back its running
  statistics. Here: in train mode each BatchNorm layer normalises every view chunk with its own
  batch statistics, and the running statistics are updated from the first chunk (the
  originals) only.

``views_per_batchnorm(model, 2)`` switches this on for the duration of one forward pass; nothing in
the model's structure or ``state_dict`` changes, so checkpoints and DDP wrapping are the same in
both modes. Synchronised BatchNorm (``SyncBatchNorm``, ``CrossRankBatchNorm``) is handled the same
way: each view chunk is synchronised across ranks on its own.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, List

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

_RUNNING = ("running_mean", "running_var", "num_batches_tracked")


def _split_forward(bn: _BatchNorm, views: int, x: torch.Tensor) -> torch.Tensor:
    """``bn`` applied to each of ``views`` equal chunks of ``x`` [views * b, C, ...] on its own.

    The first chunk updates the running statistics as a plain forward would; the later chunks
    leave them (and ``num_batches_tracked``) exactly as the first chunk left them.
    """
    forward = type(bn).forward
    if not bn.training or x.shape[0] % views:
        return forward(bn, x)
    chunks = x.chunk(views)
    out: List[torch.Tensor] = [forward(bn, chunks[0])]
    kept = {n: b for n, b in bn._buffers.items() if b is not None and n in _RUNNING}
    try:
        for chunk in chunks[1:]:
            # The later views update throw-away copies of the running statistics. The originals are
            # swapped out rather than restored in place: autograd may have saved them for backward.
            for n, b in kept.items():
                bn._buffers[n] = b.clone()
            out.append(forward(bn, chunk))
    finally:
        bn._buffers.update(kept)
    return torch.cat(out)


@contextmanager
def views_per_batchnorm(model: nn.Module, views: int) -> Iterator[None]:
    """Inside the block, every BatchNorm of ``model`` normalises each of ``views`` equal batch
    chunks with its own statistics (train mode; running statistics from the first chunk only).

    ``views=1`` leaves the model untouched (the ``joint`` mode).
    """
    if views <= 1:
        yield
        return
    patched = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    for m in patched:
        # An instance attribute shadows the class's forward for this one module, for this block.
        m.forward = (lambda x, _m=m: _split_forward(_m, views, x))
    try:
        yield
    finally:
        for m in patched:
            del m.forward
