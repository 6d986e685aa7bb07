"""MSMT17 (Wei et al., CVPR 2018): 4,101 ids, 126,441 images, 15 cameras.

Layout (V1; V2 is the same with ``MSMT17_V2/{mask_train_v2,mask_test_v2}``, auto-detected)::

    ROOT/MSMT17/train/0000/0000_000_01_0303morning_0015_0.jpg
    ROOT/MSMT17/test/...
    ROOT/MSMT17/list_train.txt   list_val.txt   list_query.txt   list_gallery.txt

Each list line is ``relative/path.jpg pid``, the path relative to ``train/`` (train and val lists)
or ``test/`` (query and gallery lists). The camera is the third field of the file name, 1-based.
Training uses list_train + list_val, the standard practice (val is a subset of the training
ids). Training ids (0..1040) and test ids (0..3059) are numbered separately, so ``labelled``
shifts the test ids past the training ones to keep every person one class.

MSMT17 has no distractors: every one of its 126,441 images shows one of its 4,101 identities
(1,041 train ids with 32,621 images; 3,060 test ids with 11,659 query and 82,161 gallery images),
and pid 0 in the list files is a real person (the first training or test id), not a
distractor label as in Market-1501. So pids are kept as listed and ``distractors`` is empty.
"""
from __future__ import annotations

import os
from typing import List

from bau.core.errors import BauError
from bau.data.base import Item, PublishedStats, ReIDDataset

MSMT_PATTERN = "PPPP_NNN_CC_NNNNxxxxx_NNNN_N.jpg"

# (dataset folder, train images folder, test images folder), tried in this order.
LAYOUTS = [("MSMT17", "train", "test"), ("MSMT17_V2", "mask_train_v2", "mask_test_v2")]


def msmt_camera(path: str) -> int:
    """0-based camera of ``0000_000_01_0303morning_0015_0.jpg`` (third field, 1-based)."""
    fields = os.path.basename(path).split("_")
    if len(fields) < 3 or not fields[2].isdigit() or int(fields[2]) < 1:
        raise BauError(f"image file {path}: name does not parse; expected {MSMT_PATTERN} (camera in the third field)")
    return int(fields[2]) - 1


def read_msmt_list(list_file: str, image_dir: str) -> List[Item]:
    """``(path, pid, camid)`` for every line ``relative/path.jpg pid`` of ``list_file``."""
    items = []
    with open(list_file) as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                raise BauError(f"list file {list_file} line {line_no}: expected 'relative/path.jpg PID', "
                               f"got {line.strip()!r}")
            path = os.path.join(image_dir, fields[0])
            items.append((path, int(fields[1]), msmt_camera(path)))
    return items


def find_msmt_layout(root: str):
    """The first of ``LAYOUTS`` present under ``root`` as absolute folders, or a clear error."""
    for folder, train, test in LAYOUTS:
        base = os.path.join(root, folder)
        if os.path.isdir(base):
            return base, os.path.join(base, train), os.path.join(base, test)
    tried = " or ".join(os.path.join(root, f) for f, _, _ in LAYOUTS)
    raise BauError(f"dataset folder {tried}: not found (expected the published MSMT17 layout)")


class MSMT17(ReIDDataset):
    name = "msmt17"
    reference = ("Longhui Wei, Shiliang Zhang, Wen Gao, and Qi Tian. Person transfer GAN to bridge domain gap "
                 "for person re-identification. In CVPR, 2018.")
    published = PublishedStats(ids=4101, images=126441, cameras=15)

    def __init__(self, root: str, split: int = 0, split_seed: int = 0, num_splits: int = 10):
        super().__init__(root, split=0)
        base, train_dir, test_dir = find_msmt_layout(root)
        lists = {n: os.path.join(base, f"list_{n}.txt") for n in ("train", "val", "query", "gallery")}
        self.require_dirs(train_dir, test_dir, *lists.values())
        train = read_msmt_list(lists["train"], train_dir) + read_msmt_list(lists["val"], train_dir)
        self.query = read_msmt_list(lists["query"], test_dir)
        self.gallery = read_msmt_list(lists["gallery"], test_dir)
        self.train = self.relabel(train)
        offset = max((pid for _, pid, _ in train), default=-1) + 1
        test = [(p, pid + offset, c) for p, pid, c in self.query + self.gallery]
        self.labelled = train + test
        self.distractors = []
