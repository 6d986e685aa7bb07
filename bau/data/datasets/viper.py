"""VIPeR (Gray & Tao, ECCV 2008): 632 persons, one image in each of two cameras.

Layout::

    ROOT/VIPeR/cam_a/000_45.bmp    ROOT/VIPeR/cam_b/000_90.bmp    (632 files each)

The i-th file of ``cam_a`` (sorted by name) and the i-th of ``cam_b`` show the same person; the
person id is that index, 0..631 (so, unlike Market, id 0 is a real person here). Protocol (10
random splits): 316 ids train, 316 test with camera A as query and camera B as gallery. The ids
of each split are stored in ``ROOT/VIPeR/splits_seed<SEED>.json``.
"""
from __future__ import annotations

import os
import random

from bau.core.errors import BauError
from bau.data.base import PublishedStats, ReIDDataset
from bau.data.datasets.splits import halve_ids, load_split


class VIPeR(ReIDDataset):
    name = "viper"
    reference = ("Douglas Gray and Hai Tao. Viewpoint invariant pedestrian recognition with an ensemble of "
                 "localized features. In ECCV, 2008.")
    published = PublishedStats(ids=632, images=1264, cameras=2)

    def __init__(self, root: str, split: int = 0, split_seed: int = 0, num_splits: int = 10):
        super().__init__(root, split=split)
        self.num_splits = num_splits
        folder = os.path.join(root, "VIPeR")
        cam_a_dir, cam_b_dir = os.path.join(folder, "cam_a"), os.path.join(folder, "cam_b")
        self.require_dirs(cam_a_dir, cam_b_dir)
        cam_a = self.list_images(cam_a_dir, exts=(".bmp",))
        cam_b = self.list_images(cam_b_dir, exts=(".bmp",))
        if len(cam_a) != len(cam_b):
            raise BauError(f"dataset folder {folder}: cam_a has {len(cam_a)} .bmp images and cam_b {len(cam_b)}; "
                           f"expected the same number (the i-th of each is one person)")
        ids = list(range(len(cam_a)))

        def make(rng: random.Random) -> dict:
            return halve_ids(rng, ids, len(ids) // 2)

        chosen = load_split(folder, split_seed, num_splits, split, make, {"train": set(ids), "test": set(ids)})
        self.train = self.relabel([(cam[pid], pid, c) for pid in chosen["train"]
                                   for c, cam in enumerate((cam_a, cam_b))])
        self.query = [(cam_a[pid], pid, 0) for pid in chosen["test"]]
        self.gallery = [(cam_b[pid], pid, 1) for pid in chosen["test"]]
        self.labelled = [(cam[pid], pid, c) for pid in ids for c, cam in enumerate((cam_a, cam_b))]
        self.distractors = []
