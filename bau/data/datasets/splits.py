"""The random train/test splits of the small datasets (CUHK01, PRID, GRID, VIPeR, iLIDS).

Their benchmark numbers are means over ``num_splits`` (10) random splits. The splits are made
once from ``split_seed`` and stored as ``splits_seed<SEED>.json`` in the dataset folder
(``bau.data.base.load_or_make_splits``), so every later run reads the same ones. A stored file
that names ids or images the folder does not have (the data changed since) is refused with a
clear message instead of silently producing a different protocol.
"""
from __future__ import annotations

import os
import random
from typing import Callable, Dict, Iterable, List

from bau.core.errors import BauError
from bau.data.base import load_or_make_splits, split_of

Split = Dict[str, list]


def split_path(folder: str, seed: int) -> str:
    return os.path.join(folder, f"splits_seed{seed}.json")


def halve_ids(rng: random.Random, ids: Iterable[int], num_train: int) -> Split:
    """``{"train": [...], "test": [...]}``: ``num_train`` ids drawn at random, the rest for testing."""
    ids = sorted(ids)
    train = sorted(rng.sample(ids, num_train))
    chosen = set(train)
    return {"train": train, "test": [i for i in ids if i not in chosen]}


def load_split(folder: str, seed: int, num_splits: int, split: int,
               make: Callable[[random.Random], Split], known: Dict[str, set]) -> Split:
    """Split number ``split`` of the stored (or newly made) splits of the dataset in ``folder``.

    ``known`` maps a key of the split dict to the values the dataset actually has (ids or file
    names); every stored value must be among them.
    """
    if not 0 <= split < num_splits:
        raise BauError(f"split {split} out of range; expected 0..{num_splits - 1} (option split / num_splits)")
    path = split_path(folder, seed)
    chosen = split_of(load_or_make_splits(path, make, num_splits, seed), split, path)
    for key, values in known.items():
        stored: List = chosen.get(key) if isinstance(chosen, dict) else None
        if stored is None or not set(stored) <= values:
            raise BauError(f"split file {path}: split {split} does not match the images in {folder} "
                           f"(key {key!r}); delete the file to regenerate the splits")
    return chosen
