"""The re-ID datasets ``bau`` knows, by registry name, and ``build_dataset`` to open one.

Plain names (``market1501``, ``msmt17``, ...) open the published layout under ``root`` (see each
module's docstring). Two prefixes:

* ``full:NAME`` - all labelled images of NAME as training data (Protocols 1 and 3).
* ``folder:PATH`` - any Market-named folder (``PATH`` absolute, or relative to ``root``).
"""
from __future__ import annotations

import os

from bau.core.errors import BauError
from bau.core.registry import Registry
from bau.data.base import ReIDDataset
from bau.data.datasets.cuhk01 import CUHK01
from bau.data.datasets.cuhk02 import CUHK02
from bau.data.datasets.cuhk03 import CUHK03, CUHK03Labeled
from bau.data.datasets.cuhksysu import CUHKSYSU
from bau.data.datasets.folder import FolderDataset
from bau.data.datasets.full import FullDataset
from bau.data.datasets.grid import GRID
from bau.data.datasets.ilids import ILIDS
from bau.data.datasets.market1501 import Market1501
from bau.data.datasets.msmt17 import MSMT17
from bau.data.datasets.prid import PRID
from bau.data.datasets.viper import VIPeR

DATASETS = Registry("dataset")
for _cls in (Market1501, MSMT17, CUHK03, CUHK03Labeled, CUHK02, CUHK01, CUHKSYSU, PRID, GRID, VIPeR, ILIDS):
    DATASETS.register(_cls.name)(_cls)

FULL_PREFIX = "full:"
FOLDER_PREFIX = "folder:"


def build_dataset(name: str, root: str, split: int = 0, split_seed: int = 0, num_splits: int = 10) -> ReIDDataset:
    """Open dataset ``name`` (a registry name, ``full:NAME`` or ``folder:PATH``) under ``root``."""
    if name.lower().startswith(FULL_PREFIX):
        return FullDataset(build_dataset(name[len(FULL_PREFIX):], root, split, split_seed, num_splits))
    if name.lower().startswith(FOLDER_PREFIX):
        path = name[len(FOLDER_PREFIX):]
        if not path:
            raise BauError(f"dataset {name!r}: expected folder:PATH with a folder path")
        return FolderDataset(path if os.path.isabs(path) else os.path.join(root, path))
    if name not in DATASETS:
        raise BauError(f"unknown dataset {name!r}; expected one of: {', '.join(DATASETS.names())}, "
                       f"{FULL_PREFIX}NAME or {FOLDER_PREFIX}PATH")
    return DATASETS.get(name)(root, split=split, split_seed=split_seed, num_splits=num_splits)


__all__ = ["DATASETS", "build_dataset", "FullDataset", "FolderDataset", "Market1501", "MSMT17", "CUHK03",
           "CUHK03Labeled", "CUHK02", "CUHK01", "CUHKSYSU", "PRID", "GRID", "VIPeR", "ILIDS"]
