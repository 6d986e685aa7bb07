"""Where computation runs: ``train.device`` / ``--device`` strings -> a ``torch.device``.

One small module because the trainer, the CLI, the demo, the analysis scripts and the app all
resolve the same option the same way. torch is imported when a device is resolved, so that the
core (``bau.core``, which the CLI loads before it parses its arguments) stays free of it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from bau.core.errors import BauError

if TYPE_CHECKING:
    import torch


def resolve_device(spec: str) -> "torch.device":
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N`` -> ``torch.device``.

    Raises ``BauError`` for an unknown spelling or a CUDA device this machine does not have.
    """
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise BauError(f"device {spec}: CUDA is not available on this machine (use cpu or auto)")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise BauError(f"device {spec!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise BauError(f"device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device
