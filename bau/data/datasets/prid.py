"""PRID 2011 (Hirzer et al., SCIA 2011), single-shot version.

Layout::

    ROOT/prid_2011/single_shot/cam_a/person_0001.png    (385 persons)
    ROOT/prid_2011/single_shot/cam_b/person_0001.png    (749 persons)

Persons 1-200 appear in both cameras; every other file shows someone seen by one camera only
(``cam_a/person_0201`` and ``cam_b/person_0201`` are different people). Protocol (10 random
splits): 100 of the 200 shared ids train with both views; the other 100 are tested with their
camera-A image as query against a gallery of their camera-B images plus all 549 single-view
camera-B persons (201-749) as distractors. Camera-A persons 201-385 are not used. The ids of each
split are stored in ``ROOT/prid_2011/splits_seed<SEED>.json``. ``full:prid`` trains on the 200
shared ids only (the single-view persons are the protocol's distractors).
"""
from __future__ import annotations

import os
import random
import re
from typing import Dict

from bau.core.errors import BauError
from bau.data.base import Item, PublishedStats, ReIDDataset
from bau.data.datasets.splits import halve_ids, load_split

PRID_NAME = re.compile(r"^person_(\d+)\.png$", re.IGNORECASE)
NUM_SHARED = 200  # persons 1..200 are the ones seen by both cameras


def read_prid_camera(folder: str, camid: int) -> Dict[int, Item]:
    """``{pid: (path, pid, camid)}`` for ``person_XXXX.png`` files (one image per person)."""
    items = {}
    for path in ReIDDataset.list_images(folder, exts=(".png",)):
        match = PRID_NAME.match(os.path.basename(path))
        if match is None:
            raise BauError(f"image file {path}: name does not parse; expected person_NNNN.png")
        pid = int(match.group(1))
        items[pid] = (path, pid, camid)
    return items


class PRID(ReIDDataset):
    name = "prid"
    reference = ("Martin Hirzer, Csaba Beleznai, Peter M Roth, and Horst Bischof. Person re-identification by "
                 "descriptive and discriminative classification. In SCIA, 2011.")
    published = PublishedStats(ids=200, images=1134, cameras=2)

    def __init__(self, root: str, split: int = 0, split_seed: int = 0, num_splits: int = 10):
        super().__init__(root, split=split)
        self.num_splits = num_splits
        folder = os.path.join(root, "prid_2011")
        cam_a_dir, cam_b_dir = (os.path.join(folder, "single_shot", c) for c in ("cam_a", "cam_b"))
        self.require_dirs(cam_a_dir, cam_b_dir)
        cam_a, cam_b = read_prid_camera(cam_a_dir, 0), read_prid_camera(cam_b_dir, 1)
        shared = list(range(1, NUM_SHARED + 1))
        for pid in shared:
            if pid not in cam_a or pid not in cam_b:
                missing = cam_a_dir if pid not in cam_a else cam_b_dir
                raise BauError(f"dataset folder {missing}: person_{pid:04d}.png not found "
                               f"(persons 1-{NUM_SHARED} must appear in both cameras)")

        def make(rng: random.Random) -> dict:
            return halve_ids(rng, shared, len(shared) // 2)

        chosen = load_split(folder, split_seed, num_splits, split, make,
                            {"train": set(shared), "test": set(shared)})
        train = [cam[pid] for pid in chosen["train"] for cam in (cam_a, cam_b)]
        self.train = self.relabel(train)
        self.query = [cam_a[pid] for pid in chosen["test"]]
        self.distractors = ([cam_a[pid] for pid in sorted(cam_a) if pid > NUM_SHARED]
                            + [cam_b[pid] for pid in sorted(cam_b) if pid > NUM_SHARED])
        self.gallery = ([cam_b[pid] for pid in chosen["test"]]
                        + [cam_b[pid] for pid in sorted(cam_b) if pid > NUM_SHARED])
        self.labelled = [cam[pid] for pid in shared for cam in (cam_a, cam_b)]
