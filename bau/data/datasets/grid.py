"""GRID (Loy et al., CVPR 2009 / IJCV 2010): 250 paired ids from 8 underground-station cameras.

Layout::

    ROOT/underground_reid/probe/0001_1_25004_107_32_130_415.jpeg     (250 images)
    ROOT/underground_reid/gallery/...                                (1,025 images)
    ROOT/underground_reid/features_and_partitions.mat                (the official splits)

The first field of a name is the person id, the second the camera (1-8). The 775 gallery
images with id 0 belong to nobody in the probe set: they are distractors, always in the
gallery, with the pid ``DISTRACTOR_PID`` (-2): not an identity. Protocol (10 splits): 125 ids
train (their probe and gallery images); the other 125
are tested with their probe images as queries against their gallery images plus every
distractor.

The official train ids come from ``trainIdxAll`` in ``features_and_partitions.mat`` (read with
``scipy.io.loadmat``). If the file is absent, 10 random 125/125 id splits are made from
``split_seed`` instead and stored in ``ROOT/underground_reid/splits_seed<SEED>.json``; those are
*not* the published splits, so numbers are comparable to papers only with the .mat present.
"""
from __future__ import annotations

import os
import random
import re
from typing import List

import numpy as np

from bau.core.errors import BauError
from bau.data.base import DISTRACTOR_PID, Item, PublishedStats, ReIDDataset
from bau.data.datasets.splits import halve_ids, load_split

GRID_NAME = re.compile(r"^(\d+)_(\d+)_")
DISTRACTOR_FILE_PID = 0  # the file-name id of a distractor; returned as DISTRACTOR_PID
PARTITION_FIELD = 2  # trainIdxAll{i} is a struct whose third field holds the train ids (torchreid reads it so)


def parse_grid_name(path: str) -> Item:
    """``(path, pid, camid)``: camera 1-8 made 0-based, file id 0 returned as ``DISTRACTOR_PID``."""
    match = GRID_NAME.match(os.path.basename(path))
    if match is None or not 1 <= int(match.group(2)) <= 8:
        raise BauError(f"image file {path}: name does not parse; expected PPPP_C_....jpeg (person id, camera 1-8)")
    pid = int(match.group(1))
    return path, DISTRACTOR_PID if pid == DISTRACTOR_FILE_PID else pid, int(match.group(2)) - 1


def _train_ids_of(entry, mat_path: str) -> List[int]:
    """Unwrap one MATLAB cell of ``trainIdxAll`` (cells of 1x1 structs, or plain numbers) to its ids."""
    x = entry
    for _ in range(16):  # the nesting is a few levels deep; a bound keeps a corrupt file from looping
        if isinstance(x, np.void) and x.dtype.names:
            named = [n for n in x.dtype.names if "train" in n.lower()]
            if not named and len(x.dtype.names) <= PARTITION_FIELD:
                break
            x = x[named[0]] if named else x[PARTITION_FIELD]
        elif isinstance(x, np.ndarray) and (x.dtype == object or x.dtype.names) and x.size == 1:
            x = x.reshape(-1)[0]
        elif isinstance(x, np.ndarray) and x.dtype.kind in "iuf":
            return sorted(int(v) for v in x.ravel())
        else:
            break
    raise BauError(f"split file {mat_path}: trainIdxAll has an unexpected structure; expected 10 lists of train ids")


def read_grid_partitions(mat_path: str) -> List[List[int]]:
    """The official train-id partitions of GRID: one sorted id list per split."""
    from scipy.io import loadmat

    try:
        mat = loadmat(mat_path)
    except Exception as exc:  # scipy raises several types for a damaged file
        raise BauError(f"split file {mat_path}: cannot be read as a MATLAB file ({exc})") from None
    if "trainIdxAll" not in mat:
        raise BauError(f"split file {mat_path}: no 'trainIdxAll' variable; expected GRID's features_and_partitions.mat")
    cells = mat["trainIdxAll"]
    if cells.dtype.kind in "iuf":  # a plain numeric matrix: one partition per row
        return [sorted(int(v) for v in row) for row in np.atleast_2d(cells)]
    return [_train_ids_of(cell, mat_path) for cell in cells.ravel()]


class GRID(ReIDDataset):
    name = "grid"
    reference = ("Chen Change Loy, Tao Xiang, and Shaogang Gong. Multi-camera activity correlation analysis. "
                 "In CVPR, 2009.")
    published = PublishedStats(ids=250, images=1275, cameras=8)

    def __init__(self, root: str, split: int = 0, split_seed: int = 0, num_splits: int = 10):
        super().__init__(root, split=split)
        self.num_splits = num_splits
        folder = os.path.join(root, "underground_reid")
        probe_dir, gallery_dir = os.path.join(folder, "probe"), os.path.join(folder, "gallery")
        self.require_dirs(probe_dir, gallery_dir)
        probe = [parse_grid_name(p) for p in self.list_images(probe_dir)]
        gallery = [parse_grid_name(p) for p in self.list_images(gallery_dir)]
        ids = sorted({pid for _, pid, _ in probe + gallery if pid != DISTRACTOR_PID})

        mat_path = os.path.join(folder, "features_and_partitions.mat")
        self.official_splits = os.path.isfile(mat_path)
        if self.official_splits:
            partitions = read_grid_partitions(mat_path)
            if num_splits > len(partitions):
                raise BauError(f"split file {mat_path}: holds {len(partitions)} splits; "
                               f"expected at least num_splits={num_splits}")
            if not 0 <= split < num_splits:
                raise BauError(f"split {split} out of range; expected 0..{num_splits - 1} (option split / num_splits)")
            train_ids = set(partitions[split])
            if not train_ids <= set(ids):
                raise BauError(f"split file {mat_path}: split {split} names ids that are not in {folder}")
        else:
            def make(rng: random.Random) -> dict:
                return halve_ids(rng, ids, len(ids) // 2)

            chosen = load_split(folder, split_seed, num_splits, split, make, {"train": set(ids), "test": set(ids)})
            train_ids = set(chosen["train"])

        def is_test(pid: int) -> bool:
            return pid != DISTRACTOR_PID and pid not in train_ids

        self.train = self.relabel([it for it in probe + gallery if it[1] in train_ids])
        self.query = [it for it in probe if is_test(it[1])]
        self.distractors = [it for it in probe + gallery if it[1] == DISTRACTOR_PID]
        self.gallery = [it for it in gallery if is_test(it[1]) or it[1] == DISTRACTOR_PID]
        self.labelled = [it for it in probe + gallery if it[1] != DISTRACTOR_PID]
