"""bau checkpoints: plain ``state_dict``s plus the resolved config, written atomically and read
with ``torch.load(..., weights_only=True)`` so opening a checkpoint never runs pickled code.

Layout of the saved dict (all tensors, numbers, strings, lists and dicts)::

    format: "bau-checkpoint", version: 1,
    model, optimizer, scheduler, memory, scaler: state_dicts (all but model may be absent),
    epoch: last finished epoch (1-based), step: global step, config: resolved Config as a dict,
    num_classes, class_domains (checked by --resume against the rebuilt training set),
    domain_names, metrics: last evaluation results, best_map: best mean mAP so far,
    evaluated: False when the epoch's evaluation had not finished when the file was written

No RNG state is stored: every epoch re-seeds from ``(train.seed, epoch)``.

``load_model`` keeps the models of the last few checkpoints in memory, keyed by the checkpoint's
identity (``checkpoint_identity``: real path, mtime, size), so a retrained or replaced file is
loaded anew while a figure script or the app asking for the same model again gets it at once.
"""
from __future__ import annotations

import functools
import os
from typing import Any, Dict, Tuple

import torch

from bau.core.atomic import atomic_path
from bau.core.errors import BauError

FORMAT = "bau-checkpoint"
VERSION = 1


def save_checkpoint(path: str, payload: Dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (a crash leaves the previous file untouched)."""
    payload = {"format": FORMAT, "version": VERSION, **payload}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> Dict[str, Any]:
    """Load a bau checkpoint or raise one clear ``BauError`` (missing, corrupt, or foreign file)."""
    if os.path.isdir(path):
        candidate = os.path.join(path, "best.pt") if os.path.isfile(os.path.join(path, "best.pt")) else \
            os.path.join(path, "last.pt")
        path = candidate
    if not os.path.isfile(path):
        raise BauError(f"checkpoint {path}: file not found")
    if os.path.getsize(path) == 0:
        raise BauError(f"checkpoint {path}: zero-byte file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise BauError(f"checkpoint {path}: not a bau checkpoint (cannot be loaded with weights_only=True: "
                       f"{type(e).__name__})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise BauError(f"checkpoint {path}: not a bau checkpoint (expected a file written by `bau train`)")
    if obj.get("version", 0) > VERSION:
        raise BauError(f"checkpoint {path}: written by a newer bau (format version {obj['version']} > {VERSION})")
    for key in ("model", "config", "num_classes"):
        if key not in obj:
            raise BauError(f"checkpoint {path}: bau checkpoint without {key!r}; the file is incomplete")
    n = obj["num_classes"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise BauError(f"checkpoint {path}: num_classes is {n!r}; expected a whole number of classes >= 0 "
                       f"(the file is damaged or was not written by `bau train`)")
    obj["path"] = path
    return obj


def model_from_checkpoint(path: str, device: str | torch.device = "cpu"):
    """Rebuild the network of a checkpoint in eval mode. Returns ``(model, checkpoint_dict, config)``.

    The backbone is built without loading ImageNet weights (the checkpoint holds all of them), so
    evaluating a checkpoint needs no pretrained file on the machine.
    """
    from bau.core.config import config_from_dict
    from bau.models.reid import build_model

    ckpt = load_checkpoint(path)
    cfg = config_from_dict(ckpt["config"])
    cfg.model.pretrained = False
    model = build_model(cfg, ckpt["num_classes"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise BauError(f"checkpoint {ckpt['path']}: model weights do not match backbone "
                       f"{cfg.model.backbone} ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), ckpt, cfg


def checkpoint_identity(path: str) -> Dict[str, Any]:
    """What identifies a checkpoint's content cheaply: ``{"path": real path, "mtime_ns", "size"}``.

    Rewriting the file (retraining, replacing ``best.pt``) changes the mtime and usually the size,
    so anything keyed by the identity (``load_model``, ``bau.runs.cache``) is recomputed.
    """
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except (OSError, ValueError) as e:
        raise BauError(f"checkpoint {path!r}: cannot be opened ({type(e).__name__})") from None
    return {"path": real, "mtime_ns": st.st_mtime_ns, "size": st.st_size}


# Two models: a figure or an app page typically alternates between at most two checkpoints, and
# on a GPU each one holds device memory.
@functools.lru_cache(maxsize=2)
def _cached_model(path: str, mtime_ns: int, size: int, device: str) -> Tuple[torch.nn.Module, Any]:
    model, _, cfg = model_from_checkpoint(path, device)
    return model, cfg


def load_model(path: str, device: str | torch.device = "cpu") -> Tuple[torch.nn.Module, Any]:
    """``(model, config)`` of a checkpoint in eval mode, kept in memory per (identity, device).

    The model is shared by every caller asking for the same checkpoint: a caller that changes it
    (train mode, hooks) restores it, and callers in several threads hold a lock around their use
    (the app's ``model_in_use``). A failed load (``BauError``) is not cached, so fixing the file
    and asking again works.
    """
    from bau.core.device import resolve_device

    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    ident = checkpoint_identity(path)
    return _cached_model(ident["path"], ident["mtime_ns"], ident["size"], str(dev))
