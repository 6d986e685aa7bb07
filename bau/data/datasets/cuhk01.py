"""CUHK01 (Li et al., ACCV 2012): 971 ids x 4 images from two campus cameras.

Layout::

    ROOT/cuhk01/campus/0001001.png      (NNNNIII.png: 4-digit id, 3-digit image number)

Images 001-002 of an id come from camera A, 003-004 from camera B. Protocol (the common
single-shot one, 10 random splits): 485 ids train (all their images), 486 ids test; for each
test id one randomly chosen camera-A image is the query and one randomly chosen camera-B image
is its single gallery entry. The ids and the chosen images of each split are stored in
``ROOT/cuhk01/splits_seed<SEED>.json``.
"""
from __future__ import annotations

import os
import random
import re
from collections import defaultdict
from typing import Dict, List

from bau.core.errors import BauError
from bau.data.base import Item, PublishedStats, ReIDDataset
from bau.data.datasets.splits import halve_ids, load_split

CUHK01_NAME = re.compile(r"^(\d{4})(\d{3})\.png$", re.IGNORECASE)


def parse_cuhk01_name(path: str) -> Item:
    """``(path, pid, camid)``: camera A (0) for images 1-2, camera B (1) for images 3-4."""
    match = CUHK01_NAME.match(os.path.basename(path))
    if match is None:
        raise BauError(f"image file {path}: name does not parse; "
                       "expected NNNNIII.png (4-digit id, 3-digit image number)")
    return path, int(match.group(1)), 0 if int(match.group(2)) <= 2 else 1


class CUHK01(ReIDDataset):
    name = "cuhk01"
    # Not used by the BAU paper (no Table 1 row): the numbers are the dataset paper's.
    reference = ("Wei Li, Rui Zhao, and Xiaogang Wang. Human reidentification with transferred metric "
                 "learning. In ACCV, 2012.")
    published = PublishedStats(ids=971, images=3884, cameras=2, source="Li et al., ACCV 2012 (not in BAU's Table 1)")

    def __init__(self, root: str, split: int = 0, split_seed: int = 0, num_splits: int = 10):
        super().__init__(root, split=split)
        self.num_splits = num_splits
        folder = os.path.join(root, "cuhk01")
        campus = os.path.join(folder, "campus")
        self.require_dirs(campus)
        items = [parse_cuhk01_name(p) for p in self.list_images(campus, exts=(".png",))]
        by_id_cam: Dict[int, List[List[str]]] = defaultdict(lambda: [[], []])
        for path, pid, cam in items:
            by_id_cam[pid][cam].append(os.path.basename(path))
        ids = sorted(by_id_cam)
        for pid in ids:
            if not all(by_id_cam[pid]):
                raise BauError(f"dataset folder {campus}: id {pid:04d} lacks a camera-A (001-002) "
                               f"or camera-B (003-004) image")

        def make(rng: random.Random) -> dict:
            split_ids = halve_ids(rng, ids, len(ids) // 2)
            split_ids["query"] = [rng.choice(by_id_cam[pid][0]) for pid in split_ids["test"]]
            split_ids["gallery"] = [rng.choice(by_id_cam[pid][1]) for pid in split_ids["test"]]
            return split_ids

        names = {os.path.basename(p) for p, _, _ in items}
        chosen = load_split(folder, split_seed, num_splits, split, make,
                            {"train": set(ids), "test": set(ids), "query": names, "gallery": names})
        train_ids, query_names, gallery_names = set(chosen["train"]), set(chosen["query"]), set(chosen["gallery"])
        self.train = self.relabel([it for it in items if it[1] in train_ids])
        self.query = [it for it in items if os.path.basename(it[0]) in query_names]
        self.gallery = [it for it in items if os.path.basename(it[0]) in gallery_names]
        self.labelled = items
        self.distractors = []
