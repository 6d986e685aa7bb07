"""The one on-disk cache of results derived from a checkpoint (features, t-SNE, geometry).

Where: ``.bau_cache/`` in the checkpoint's own (real) folder, i.e. inside the run folder. The
figure scripts and the app therefore share entries (the same checkpoint, dataset and settings
are one file), deleting a run folder deletes its cache, and ``discover_runs`` never lists it
(dot folders are skipped).

Keys: ``<kind>-<owner>-<version>-<settings>``, three hashes: ``owner`` of the checkpoint's real
path, ``version`` of its identity (``bau.runs.checkpoint.checkpoint_identity``: real path + mtime +
size, so a retrained or replaced file gives a new version), ``settings`` of everything else the
result depends on (datasets, subset, root, image cap, seed, ...). Saving an entry removes the
entries of the same checkpoint with another version, so a changed checkpoint leaves nothing
stale behind.

Entries are ``.npz`` (arrays) or ``.json`` files written atomically (``bau.core.atomic``): a crash or
a concurrent reader never sees half an entry, and an unreadable entry (truncated, not a zip, an
array missing) counts as missing: it is recomputed and overwritten. A folder that cannot be
written (read-only, full) simply keeps nothing: the result is computed and returned all the same.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, Optional, Sequence

import numpy as np

from bau.core.atomic import atomic_savez, atomic_write_json
from bau.core.errors import BauError

CACHE_DIR = ".bau_cache"


def _digest(obj: Any, length: int) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def cache_key(kind: str, checkpoint: Dict[str, Any], **settings: Any) -> str:
    """The file stem of a result of ``kind`` (a word without ``-``) computed from a checkpoint.

    Args:
        kind: ``features``, ``tsne``, ...
        checkpoint: its ``checkpoint_identity``.
        **settings: every other input of the computation (JSON-able; anything else is ``str()``-ed).
    """
    if not kind.isidentifier():
        raise ValueError(f"cache kind {kind!r}: expected a word (letters, digits, _)")
    return "-".join([kind, _digest(checkpoint["path"], 12), _digest(checkpoint, 12),
                     _digest({"kind": kind, **settings}, 20)])


class DiskCache:
    """``.npz`` and ``.json`` entries in one folder."""

    def __init__(self, folder: str):
        self.folder = folder

    @classmethod
    def for_checkpoint(cls, checkpoint: str) -> "DiskCache":
        """The cache next to a checkpoint: ``<its real folder>/.bau_cache``."""
        return cls(os.path.join(os.path.dirname(os.path.realpath(checkpoint)), CACHE_DIR))

    @property
    def enabled(self) -> bool:
        """Whether entries can be written (the folder, or the folder that would hold it, is writable)."""
        where = self.folder if os.path.isdir(self.folder) else os.path.dirname(self.folder)
        return os.access(where, os.W_OK)

    def _path(self, key: str, ext: str) -> str:
        return os.path.join(self.folder, f"{key}.{ext}")

    def load_arrays(self, key: str, required: Sequence[str] = ()) -> Optional[Dict[str, np.ndarray]]:
        """The arrays of entry ``key``, or None when it is missing, damaged or lacks one of ``required``."""
        path = self._path(key, "npz")
        if not os.path.isfile(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception:  # noqa: BLE001 - any damage (zip, zlib, header, I/O) is a miss, never a crash
            return None  # recomputed and overwritten
        return arrays if all(k in arrays for k in required) else None

    def save_arrays(self, key: str, arrays: Dict[str, np.ndarray]) -> None:
        def write(path: str) -> None:
            atomic_savez(path, **arrays)

        self._save(key, "npz", write)

    def load_json(self, key: str) -> Optional[Any]:
        try:
            with open(self._path(key, "json")) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def save_json(self, key: str, obj: Any) -> None:
        self._save(key, "json", lambda path: atomic_write_json(path, obj))

    def _save(self, key: str, ext: str, write) -> None:
        try:
            os.makedirs(self.folder, exist_ok=True)
            write(self._path(key, ext))
        except (OSError, BauError):  # ``bau.core.atomic`` reports a failed write as a BauError
            return  # read-only or full: a cache that cannot be written keeps nothing
        self._remove_other_versions(key)

    def _remove_other_versions(self, key: str) -> None:
        """Delete the entries of ``key``'s checkpoint computed from another version of the file."""
        parts = key.split("-")
        if len(parts) != 4:
            return  # not a ``cache_key``: no checkpoint to tidy up after
        owner, version = parts[1], parts[2]
        try:
            names = os.listdir(self.folder)
        except OSError:
            return
        for name in names:
            parts = name.split(".")[0].split("-")
            if len(parts) == 4 and parts[1] == owner and parts[2] != version:
                try:
                    os.remove(os.path.join(self.folder, name))
                except OSError:
                    pass
