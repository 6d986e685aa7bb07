"""What every dataset class produces: ``train``, ``query`` and ``gallery`` lists of
``(path, pid, camid)``, plus the helpers the classes share.

A dataset class is small and readable (torchreid style): its class attributes say what it is
(``name``, the paper ``reference``, the ``published`` statistics: the BAU paper's Table 1, or the
dataset paper's for a dataset Table 1 does not list) and its ``__init__`` checks the published
folder layout under ``root`` and fills the three lists. Labels are the dataset's own ids; the
training ids are relabelled to ``0..n-1`` by ``relabel`` so a classifier can use them directly.
Small datasets (PRID, GRID, VIPeR, iLIDS, CUHK01, CUHK02-test...) have several random
query/gallery splits: ``num_splits`` > 1 and ``split`` picks one.

Distractors are not an identity. Gallery images that show nobody of the query set, where a dataset
marks them with a shared file label (Market-1501's and GRID's pid 0), get the pid
``DISTRACTOR_PID`` (-2): negative, so evaluation counts them as matching no query, and analyses of
identity structure (alignment, positives) leave them out, while they still count as images
(uniformity, gallery size). A dataset also lists them in ``distractors``; they never enter
``train`` or ``labelled``. Junk boxes (Market's pid -1) are dropped everywhere.
"""
from __future__ import annotations

import json
import os
import random
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from bau.core.errors import BauError

Item = Tuple[str, int, int]  # (image path, person id, camera id)

# The pid of a gallery distractor in every list a dataset class returns. Negative: no query has it,
# and -1 stays free for the junk label it must not be confused with.
DISTRACTOR_PID = -2

TABLE1 = "BAU paper, Table 1"


class PublishedStats(NamedTuple):
    """A dataset's size as published: identities, images (distractors included), cameras."""

    ids: int
    images: int
    cameras: int
    source: str = TABLE1  # where the numbers come from


class ReIDDataset:
    """Base class. Subclasses set ``name``, ``reference`` and ``published`` and fill ``train``,
    ``query``, ``gallery`` in ``__init__``."""

    name: str = "dataset"
    reference: Optional[str] = None  # the dataset's paper, as the BAU paper cites it
    published: Optional[PublishedStats] = None  # its size as published (None: a home-made folder)
    num_splits: int = 1  # > 1 for the small datasets evaluated as a mean over random splits

    def __init__(self, root: str, split: int = 0, **kwargs):
        self.root = root
        self.split = split
        self.train: List[Item] = []
        self.query: List[Item] = []
        self.gallery: List[Item] = []

    # -- helpers for subclasses -------------------------------------------------------------
    @staticmethod
    def require_dirs(*paths: str) -> None:
        """One clear line naming the first missing folder or file of the published layout."""
        for p in paths:
            if not os.path.exists(p):
                raise BauError(f"dataset folder {p}: not found (expected the published layout; "
                               f"see `bau data inspect --help`)")

    @staticmethod
    def list_images(folder: str, exts: Sequence[str] = (".jpg", ".jpeg", ".png", ".bmp")) -> List[str]:
        if not os.path.isdir(folder):
            raise BauError(f"dataset folder {folder}: not found")
        return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(tuple(exts)))

    @staticmethod
    def relabel(items: List[Item]) -> List[Item]:
        """Map the pids of a training list to 0..n-1 (sorted by original pid, deterministic)."""
        pids = sorted({pid for _, pid, _ in items})
        mapping = {pid: i for i, pid in enumerate(pids)}
        return [(path, mapping[pid], cam) for path, pid, cam in items]

    # -- description ----------------------------------------------------------------------------
    @staticmethod
    def describe(items: List[Item]) -> Dict[str, int]:
        """Identities (distractors are not one), images (distractors included) and cameras of a list."""
        return {"ids": len({p for _, p, _ in items if p >= 0}), "images": len(items),
                "cameras": len({c for _, _, c in items})}

    def stats(self) -> Dict[str, Dict[str, int]]:
        return {"train": self.describe(self.train), "query": self.describe(self.query),
                "gallery": self.describe(self.gallery)}

    def __repr__(self) -> str:
        s = self.stats()
        return (f"{type(self).__name__}(train={s['train']}, query={s['query']}, gallery={s['gallery']}, "
                f"split={self.split}/{self.num_splits})")


def load_or_make_splits(path: str, make: Callable[[random.Random], list], num_splits: int, seed: int) -> list:
    """The community's fixed random splits: made once from ``seed``, stored as JSON next to the
    data, read back afterwards so every run (and every other toolkit reading the file) uses the
    same splits. If the folder is read-only the splits are made in memory (same seed, same splits).
    """
    if os.path.isfile(path):
        try:
            with open(path) as f:
                stored = json.load(f)
        except (OSError, json.JSONDecodeError):
            raise BauError(f"split file {path}: not valid JSON; delete it to regenerate the splits") from None
        if isinstance(stored, dict) and stored.get("seed") == seed and len(stored.get("splits", [])) == num_splits:
            return stored["splits"]
    rng = random.Random(seed)
    splits = [make(rng) for _ in range(num_splits)]
    try:
        from bau.core.atomic import atomic_write_json

        atomic_write_json(path, {"seed": seed, "splits": splits})
    except OSError:
        pass
    return splits


def split_of(splits: list, index: int, path: Optional[str] = None):
    if not 0 <= index < len(splits):
        raise BauError(f"split {index} out of range; expected 0..{len(splits) - 1}" + (f" ({path})" if path else ""))
    return splits[index]
