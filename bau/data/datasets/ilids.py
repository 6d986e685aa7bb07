"""QMUL iLIDS (Zheng et al., BMVC 2009): 119 persons, 476 images from an airport hall.

Layout::

    ROOT/QMUL-iLIDS/i-LIDS_Pedestrian/Persons/0001001.jpg    (PPPPCCC.jpg: 4-digit id, 3-digit image)

The file names carry no camera, so training images get camera 0. Protocol (10 random splits):
60 ids train (all their images), 59 test; for each test id one randomly chosen image is the
query (camera 0) and a different randomly chosen image its single gallery entry (camera 1, so
the usual same-camera filtering of the evaluation never removes it). The ids and the chosen
images of each split are stored in ``ROOT/QMUL-iLIDS/splits_seed<SEED>.json``.
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

ILIDS_NAME = re.compile(r"^(\d{4})(\d{3})\.jpg$", re.IGNORECASE)


def parse_ilids_name(path: str) -> Item:
    match = ILIDS_NAME.match(os.path.basename(path))
    if match is None:
        raise BauError(f"image file {path}: name does not parse; "
                       "expected PPPPCCC.jpg (4-digit id, 3-digit image number)")
    return path, int(match.group(1)), 0


class ILIDS(ReIDDataset):
    name = "ilids"
    reference = "Wei-Shi Zheng, Shaogang Gong, and Tao Xiang. Associating groups of people. In BMVC, 2009."
    published = PublishedStats(ids=119, images=476, cameras=2)

    def __init__(self, root: str, split: int = 0, split_seed: int = 0, num_splits: int = 10):
        super().__init__(root, split=split)
        self.num_splits = num_splits
        folder = os.path.join(root, "QMUL-iLIDS")
        persons = os.path.join(folder, "i-LIDS_Pedestrian", "Persons")
        self.require_dirs(persons)
        items = [parse_ilids_name(p) for p in self.list_images(persons, exts=(".jpg",))]
        by_id: Dict[int, List[str]] = defaultdict(list)
        for path, pid, _ in items:
            by_id[pid].append(os.path.basename(path))
        ids = sorted(by_id)
        for pid in ids:
            if len(by_id[pid]) < 2:
                raise BauError(f"dataset folder {persons}: id {pid:04d} has one image; expected at least 2 per person")

        def make(rng: random.Random) -> dict:
            split_ids = halve_ids(rng, ids, len(ids) - len(ids) // 2)  # 60 of 119
            pairs = [rng.sample(by_id[pid], 2) for pid in split_ids["test"]]
            split_ids["query"] = [q for q, _ in pairs]
            split_ids["gallery"] = [g for _, g in pairs]
            return split_ids

        names = {os.path.basename(p) for p, _, _ in items}
        chosen = load_split(folder, split_seed, num_splits, split, make,
                            {"train": set(ids), "test": set(ids), "query": names, "gallery": names})
        train_ids, query_names, gallery_names = set(chosen["train"]), set(chosen["query"]), set(chosen["gallery"])
        self.train = self.relabel([it for it in items if it[1] in train_ids])
        self.query = [(p, pid, 0) for p, pid, _ in items if os.path.basename(p) in query_names]
        self.gallery = [(p, pid, 1) for p, pid, _ in items if os.path.basename(p) in gallery_names]
        self.labelled = items
        self.distractors = []
