"""TensorBoard mirror of a run's ``log.jsonl`` (``train.tensorboard: true``).

``log.jsonl`` stays the source of truth; this writes the same numbers as TensorBoard scalars into
the run folder (an ``events.out.tfevents.*`` file), so ``tensorboard --logdir runs`` shows them.
Every numeric value of every record becomes one scalar at the record's global ``step``; nested
dicts (``domain_share``) become one scalar per key. Tags, per record event::

    step   train/<key>                     every loss term and lr (time_s too)
    epoch  epoch/<key>                     mean_<term>, lr, time_s, iters;
           epoch/domain_share/<source>     the fraction of the batch slots each source filled
    eval   eval/<target>/<key>             mAP, rank1, ..., and any other numeric key an eval
                                           record carries (geometry: align, uniform_*, ...)

Records of other events go under ``<event>/<key>``. ``tensorboard`` is an optional extra
(``pip install 'bau[tensorboard]'``); the writer is ``torch.utils.tensorboard.SummaryWriter``.
"""
from __future__ import annotations

import importlib.util
import math
from typing import Dict, Iterator, Tuple

from bau.core.errors import BauError

# Record keys that say where a record belongs rather than what was measured.
META_KEYS = ("event", "epoch", "iter", "step", "target")
EXTRA = "pip install 'bau[tensorboard]'"


def _numbers(value, prefix: str) -> Iterator[Tuple[str, float]]:
    """``(tag, value)`` for a number, or for every number inside a (nested) dict."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        if math.isfinite(value):
            yield prefix, float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{prefix}/{k}")


def record_scalars(record: Dict) -> Dict[str, float]:
    """``{tag: value}`` of one ``log.jsonl`` record (the tags of the module docstring)."""
    event = str(record.get("event", "record"))
    if event == "step":
        prefix = "train"
    elif event == "eval":
        prefix = f"eval/{record.get('target', 'target')}"
    else:
        prefix = event
    out: Dict[str, float] = {}
    for key, value in record.items():
        if key not in META_KEYS:
            out.update(_numbers(value, f"{prefix}/{key}"))
    return out


def require_tensorboard() -> None:
    """Raise one line naming the extra when the ``tensorboard`` package is not installed."""
    if importlib.util.find_spec("tensorboard") is None:
        raise BauError(f"train.tensorboard: true needs the tensorboard package, which is not installed: {EXTRA}")


class TensorBoardLog:
    """Writes each ``log.jsonl`` record's scalars to an event file in ``run_dir``.

    ``first_step``: on a resumed run, the first step this writer logs; TensorBoard hides the
    events of the earlier file(s) at or past it (``purge_step``), as ``log.jsonl`` drops them.
    """

    def __init__(self, run_dir: str, first_step: int = 0):
        require_tensorboard()
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=run_dir, purge_step=first_step or None, flush_secs=30)

    def write(self, record: Dict) -> None:
        """Add the scalars of ``record`` at its ``step``; epoch and eval records are flushed at once."""
        step = int(record.get("step", 0))
        for tag, value in record_scalars(record).items():
            self.writer.add_scalar(tag, value, step)
        if record.get("event") != "step":
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()
