"""Which folder the app may show, and the one check every user-supplied path goes through.

The app is started on one runs folder. Everything it opens (run folders, checkpoints, the
``run`` query parameter, a path typed into the sidebar) is resolved with ``os.path.realpath``
(so ``..`` and symlinks are followed to where they really lead) and must stay under the real
runs folder (``os.path.commonpath``); anything else is refused with a ``BauError``.

The dataset root is the exception by design: images live outside the runs folder. It only has
to be an existing folder; the dataset classes then read their own layouts from it.

Every path the user gives goes through ``checked_path`` first: a NUL byte, another control
character or text the file system cannot encode is a ``BauError`` saying so, shown in the page,
never a traceback from deep inside ``os``.
"""
from __future__ import annotations

import argparse
import os
from typing import List, Optional, Sequence

from bau.core.errors import BauError
from bau.runs.folder import visible_walk

# Set by ``bau.app_launcher`` / the tests when ``--runs`` cannot be passed on the command line.
RUNS_ENV = "BAU_APP_RUNS"


def checked_path(path: str, what: str = "path") -> str:
    """``path`` with surrounding blanks removed, or a ``BauError`` when it is empty or cannot be a file name.

    Refused: NUL and other control characters (``\\x00``-``\\x1f``, ``\\x7f``), and characters the
    file system's encoding cannot represent (e.g. a lone surrogate from a malformed URL).
    """
    path = str(path).strip()
    if not path:
        raise BauError(f"{what}: empty path")
    bad = sorted({c for c in path if ord(c) < 32 or ord(c) == 127})
    if bad:
        names = ", ".join("NUL" if c == "\x00" else f"\\x{ord(c):02x}" for c in bad)
        raise BauError(f"{what} {path!r}: contains the control character{'s' if len(bad) > 1 else ''} {names}; "
                       f"expected a file path")
    try:
        os.fsencode(path)
    except UnicodeError:
        raise BauError(f"{what} {path!r}: contains characters that cannot be part of a file path here") from None
    return path


def runs_root_from(argv: Sequence[str], env: Optional[dict] = None) -> str:
    """The runs folder given at start: ``--runs RUNS`` in ``argv``, else ``$BAU_APP_RUNS``.

    Returns the real (symlink-free) absolute path. Raises ``BauError`` when none was given or it
    is not a folder.
    """
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs", default=None)
    args, _ = parser.parse_known_args(list(argv))
    given = args.runs or env.get(RUNS_ENV)
    if not given:
        raise BauError("runs folder: none given; start the app with `bau app --runs RUNS` "
                       "or `streamlit run app/main.py -- --runs RUNS`")
    given = checked_path(given, "runs folder")
    real = os.path.realpath(os.path.expanduser(given))
    if not os.path.isdir(real):
        raise BauError(f"runs folder {given}: not a folder (expected the folder holding run or sweep folders)")
    return real


def is_inside(root: str, path: str) -> bool:
    """Whether the real ``path`` is ``root`` or below it (``root`` must already be real)."""
    real = os.path.realpath(path)
    try:
        return os.path.commonpath([root, real]) == root
    except ValueError:  # different drives on Windows
        return False


def resolve_inside(root: str, path: str, what: str = "path") -> str:
    """``path`` (absolute, or relative to ``root``) as a real path under ``root``, or a ``BauError``.

    Args:
        root: the real runs folder (from ``runs_root_from``).
        path: what the user typed or passed.
        what: how the message names the path ("checkpoint", "run", ...).
    """
    path = checked_path(path, what)
    candidate = path if os.path.isabs(path) else os.path.join(root, path)
    real = os.path.realpath(candidate)
    if not is_inside(root, real):
        raise BauError(f"{what} {path}: outside the runs folder {root}; only files under it can be opened")
    return real


def feature_files(root: str) -> List[str]:
    """Every ``.npz`` under the runs folder ``root``, as paths relative to it, sorted.

    The folders visited are ``bau.runs.folder.discover_runs``' (``visible_walk``). A listed file is still
    opened through ``resolve_inside`` (it may be a symlink leading out).
    """
    found = []
    for folder, files in visible_walk(root):
        found += [os.path.relpath(os.path.join(folder, f), root).replace(os.sep, "/")
                  for f in files if f.endswith(".npz") and not f.startswith(".")]
    return sorted(found)


def resolve_data_root(configured: str, override: str = "", run_dir: Optional[str] = None) -> str:
    """The dataset root of a run: the sidebar ``override`` if given, else the run's ``data.root``.

    A relative ``data.root`` is tried against the current folder (where ``bau train`` usually
    ran), then against the run folder. The result must be an existing folder.
    """
    if override.strip():
        given = checked_path(override, "dataset root")
        real = os.path.realpath(os.path.expanduser(given))
        if not os.path.isdir(real):
            raise BauError(f"dataset root {given}: not a folder (expected the folder holding the datasets)")
        return real
    candidates = [configured] if os.path.isabs(configured) else [configured] + (
        [os.path.join(run_dir, configured)] if run_dir else [])
    for c in candidates:
        if os.path.isdir(c):
            return os.path.realpath(c)
    raise BauError(f"dataset root {configured} (data.root of the run): not a folder here; "
                   f"set the dataset root in the sidebar")
