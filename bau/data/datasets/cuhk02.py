"""CUHK02 (Li & Wang, CVPR 2013): 1,816 ids, 7,264 images, five camera pairs P1..P5.

Layout::

    ROOT/cuhk02/Dataset/P1/cam1/001_1.png     (the id is the part before the first '_')
    ROOT/cuhk02/Dataset/P1/cam2/...
    ...
    ROOT/cuhk02/Dataset/P5/...

Ids are only unique inside one P folder, so the dataset-wide id is the pair (P-index, id),
stored as the integer ``P * 100000 + id`` (``global_pid``). Each P folder has its own two
cameras: ``camid = 2 * (P - 1) + (0 for cam1, 1 for cam2)``, ten in all. Protocol: P1-P4 train,
P5 test with cam1 as query and cam2 as gallery (torchreid's convention); ``full:cuhk02`` trains
on P1-P5.
"""
from __future__ import annotations

import os
from typing import List

from bau.core.errors import BauError
from bau.data.base import Item, PublishedStats, ReIDDataset

NUM_PAIRS = 5
TEST_PAIR = 5
ID_RANGE = 100_000  # local ids must stay below this for global_pid to be unambiguous


def global_pid(pair: int, local_id: int) -> int:
    """The dataset-wide id of person ``local_id`` of folder ``P<pair>``."""
    return pair * ID_RANGE + local_id


def read_camera_folder(folder: str, pair: int, cam: int) -> List[Item]:
    """Every image of ``P<pair>/cam<cam>`` with its global pid and camid."""
    items = []
    for path in ReIDDataset.list_images(folder, exts=(".png",)):
        local = os.path.basename(path).split("_")[0]
        if "_" not in os.path.basename(path) or not local.isdigit() or int(local) >= ID_RANGE:
            raise BauError(f"image file {path}: name does not parse; "
                           "expected PID_IMG.png (numeric id before the first '_')")
        items.append((path, global_pid(pair, int(local)), 2 * (pair - 1) + (cam - 1)))
    return items


class CUHK02(ReIDDataset):
    name = "cuhk02"
    reference = "Wei Li and Xiaogang Wang. Locally aligned feature transforms across views. In CVPR, 2013."
    published = PublishedStats(ids=1816, images=7264, cameras=10)

    def __init__(self, root: str, split: int = 0, split_seed: int = 0, num_splits: int = 10):
        super().__init__(root, split=0)
        base = os.path.join(root, "cuhk02", "Dataset")
        cams = {(p, c): os.path.join(base, f"P{p}", f"cam{c}") for p in range(1, NUM_PAIRS + 1) for c in (1, 2)}
        self.require_dirs(base, *cams.values())
        images = {key: read_camera_folder(folder, *key) for key, folder in cams.items()}
        train = [it for (p, _), items in sorted(images.items()) if p != TEST_PAIR for it in items]
        self.train = self.relabel(train)
        self.query = images[(TEST_PAIR, 1)]
        self.gallery = images[(TEST_PAIR, 2)]
        self.labelled = train + self.query + self.gallery
        self.distractors = []
