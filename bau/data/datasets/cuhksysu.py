"""CUHK-SYSU (Xiao et al., CVPR 2017), the person-search dataset cropped for re-ID.

Layout::

    ROOT/CUHK-SYSU/bounding_box_train/00001_c1_....jpg   (Market naming)

11,934 ids and 34,574 images. The photos come from moving cameras and movie frames, so the
dataset has no meaningful camera labels: every image gets camera 0, and the camera part of the
name is not required. It is a training-only source (the DG protocols never test on it), so
``query`` and ``gallery`` are empty. File pids 0 (distractor) and -1 (junk) in the Market naming
are not identities and are left out.
"""
from __future__ import annotations

import os
import re

from bau.core.errors import BauError
from bau.data.base import PublishedStats, ReIDDataset
from bau.data.datasets.market1501 import DISTRACTOR_FILE_PID

PID_PREFIX = re.compile(r"^(-?\d+)_")


class CUHKSYSU(ReIDDataset):
    name = "cuhksysu"
    reference = ("Tong Xiao, Shuang Li, Bochao Wang, Liang Lin, and Xiaogang Wang. Joint detection and "
                 "identification feature learning for person search. In CVPR, 2017.")
    published = PublishedStats(ids=11934, images=34574, cameras=1)

    def __init__(self, root: str, split: int = 0, split_seed: int = 0, num_splits: int = 10):
        super().__init__(root, split=0)
        folder = os.path.join(root, "CUHK-SYSU", "bounding_box_train")
        self.require_dirs(folder)
        items = []
        for path in self.list_images(folder):
            match = PID_PREFIX.match(os.path.basename(path))
            if match is None:
                raise BauError(f"image file {path}: name does not parse; "
                               "expected NNNN_....jpg (the person id, then '_')")
            pid = int(match.group(1))
            if pid > DISTRACTOR_FILE_PID:
                items.append((path, pid, 0))
        self.labelled = items
        self.distractors = []
        self.train = self.relabel(items)
