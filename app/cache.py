"""The app's disk cache: arrays and JSON under ``RUNS/.bau_cache/``, keyed by what produced them.

A key is the hash of the checkpoint's identity (real path + mtime + size: retraining or replacing
``best.pt`` changes it) and of every setting of the computation (dataset, subset, root, image
cap, seed, ...). A second visit with the same key reads the file instead of recomputing.
Files are written atomically (``bau.atomic``), so a crash or a concurrent visitor never sees a
half-written entry, and an unreadable entry is treated as missing. When the runs folder is
read-only the cache is simply off.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, Optional

import numpy as np

from bau.atomic import atomic_path, atomic_write_json

CACHE_DIR = ".bau_cache"


def file_identity(path: str) -> Dict[str, Any]:
    """What identifies a checkpoint's content cheaply: its real path, mtime (ns) and size."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return {"path": real, "mtime_ns": st.st_mtime_ns, "size": st.st_size}


def cache_key(kind: str, **settings: Any) -> str:
    """A stable file-name-safe key for ``kind`` (e.g. "features") computed with ``settings``."""
    text = json.dumps({"kind": kind, **settings}, sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


class DiskCache:
    """``.npz`` and ``.json`` entries in one folder; ``enabled`` is False when it cannot be written."""

    def __init__(self, folder: str):
        self.folder = folder
        try:
            os.makedirs(folder, exist_ok=True)
            self.enabled = os.access(folder, os.W_OK)
        except OSError:
            self.enabled = False

    @classmethod
    def for_runs(cls, runs_root: str) -> "DiskCache":
        return cls(os.path.join(runs_root, CACHE_DIR))

    def _path(self, key: str, ext: str) -> str:
        return os.path.join(self.folder, f"{key}.{ext}")

    def has(self, key: str, ext: str = "npz") -> bool:
        return os.path.isfile(self._path(key, ext))

    def load_arrays(self, key: str) -> Optional[Dict[str, np.ndarray]]:
        path = self._path(key, "npz")
        if not os.path.isfile(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError):
            return None  # damaged entry: recompute (and overwrite it)

    def save_arrays(self, key: str, arrays: Dict[str, np.ndarray]) -> None:
        if not self.enabled:
            return
        with atomic_path(self._path(key, "npz")) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    def load_json(self, key: str) -> Optional[Any]:
        try:
            with open(self._path(key, "json")) as f:
                return json.load(f)
        except (OSError, json.JSONDecodeError):
            return None

    def save_json(self, key: str, obj: Any) -> None:
        if self.enabled:
            atomic_write_json(self._path(key, "json"), obj)
