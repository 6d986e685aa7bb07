"""Atomic file writes: a temp file in the same folder, fsync, then ``os.replace``.

A crash or Ctrl-C mid-write leaves the previous file intact (never a half-written checkpoint or
results file); readers only ever see a complete old or a complete new version. A write that fails
(a full disk, a read-only folder) removes its temp file and raises one ``BauError`` naming the
file and the reason; a process killed mid-write leaves a ``.NAME.*.tmp`` file that the trainer
removes the next time it opens the run folder.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator

from bau.core.errors import BauError, describe_os_error


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temp path next to ``path``; on success it replaces ``path``, on error it is removed.

    ``OSError`` and ``RuntimeError`` raised while writing (``torch.save`` reports a full disk as a
    ``RuntimeError``) become a ``BauError``; ``path`` keeps its previous content.
    """
    folder = os.path.dirname(os.path.abspath(path))
    try:
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise BauError(f"{path}: cannot be written; {folder} is a file, expected a folder")
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
        os.close(fd)
    except OSError as e:
        raise BauError(f"{path}: cannot be written ({describe_os_error(e)})") from None
    try:
        try:
            yield tmp
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            # mkstemp creates 0600 files; give the result the permissions a plain open() would have.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
        except (OSError, RuntimeError) as e:
            kept = " (the previous version is intact)" if os.path.exists(path) else ""
            raise BauError(f"{path}: could not be written: {describe_os_error(e)}{kept}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str, text: str) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_savez(path: str, **arrays: Any) -> None:
    """``numpy.savez(path, **arrays)``, atomically (no pickled objects: load with the default)."""
    import numpy as np

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
