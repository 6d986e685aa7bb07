"""Market-1501 (Zheng et al., ICCV 2015) and the Market naming shared by several other datasets.

Layout::

    ROOT/Market-1501-v15.09.15/bounding_box_train/0002_c1s1_000451_03.jpg
    ROOT/Market-1501-v15.09.15/bounding_box_test/...
    ROOT/Market-1501-v15.09.15/query/...

A file name starts with ``PID_cC``: the person id, then the camera (1-based). Two special ids:
``-1`` marks junk boxes (dropped everywhere, they are not counted by the benchmark) and ``0``
marks distractors. Distractors are not an identity: they stay in the gallery with the pid
``DISTRACTOR_PID`` (-2, ``bau.data.base``), so they make retrieval harder, exactly as the benchmark
intends, without forming one big "person 0"; they are never used for training. CUHK03-NP,
CUHK-SYSU and ``folder:PATH`` datasets use the same naming, so they reuse ``parse_market_name``
and ``read_market_split``.
"""
from __future__ import annotations

import os
import re
from typing import List, Tuple

from bau.core.errors import BauError
from bau.data.base import DISTRACTOR_PID, Item, PublishedStats, ReIDDataset

MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")
MARKET_PATTERN = "NNNN_cNsN_NNNNNN_NN.jpg"  # what the error message shows the user
# The two special ids in Market file names; what the readers return for them is another matter
# (junk: dropped; distractors: DISTRACTOR_PID).
JUNK_FILE_PID = -1
DISTRACTOR_FILE_PID = 0


def parse_market_name(path: str) -> Tuple[int, int]:
    """``(pid, camid)`` of a Market-named file, camid made 0-based (``c1`` -> 0)."""
    match = MARKET_NAME.match(os.path.basename(path))
    if match is None or int(match.group(2)) < 1:
        raise BauError(f"image file {path}: name does not parse; expected {MARKET_PATTERN} (Market-1501 naming)")
    return int(match.group(1)), int(match.group(2)) - 1


def read_market_folder(folder: str) -> List[Item]:
    """Every image of ``folder`` as ``(path, pid, camid)`` with the original ids, junk included."""
    return [(path, *parse_market_name(path)) for path in ReIDDataset.list_images(folder)]


def read_market_split(train_dir: str, query_dir: str, gallery_dir: str
                      ) -> Tuple[List[Item], List[Item], List[Item], List[Item]]:
    """The standard Market protocol on three folders.

    Returns ``(train, query, gallery, distractors)`` with original pids: junk (file pid -1) dropped
    everywhere; distractors (file pid 0) kept in the gallery only, with pid ``DISTRACTOR_PID``, and
    also returned on their own so a dataset can report them. ``train`` is not relabelled yet.
    """
    ReIDDataset.require_dirs(train_dir, query_dir, gallery_dir)
    train = [it for it in read_market_folder(train_dir) if it[1] > DISTRACTOR_FILE_PID]
    query = [it for it in read_market_folder(query_dir) if it[1] > DISTRACTOR_FILE_PID]
    gallery = [(path, DISTRACTOR_PID if pid == DISTRACTOR_FILE_PID else pid, cam)
               for path, pid, cam in read_market_folder(gallery_dir) if pid != JUNK_FILE_PID]
    distractors = [it for it in gallery if it[1] == DISTRACTOR_PID]
    return train, query, gallery, distractors


class MarketLayout(ReIDDataset):
    """A dataset whose three Market-named folders live in ``self.folder`` (set by the subclass).

    Besides ``train``/``query``/``gallery`` it fills ``labelled`` (every image of a real identity,
    original pids: train and test ids are disjoint in these datasets, so the union is the
    ``full:`` training set of Protocols 1 and 3) and ``distractors`` (the file-pid-0 images, pid
    ``DISTRACTOR_PID``).
    """

    def _load_market_folders(self, folder: str) -> None:
        train, query, gallery, distractors = read_market_split(
            os.path.join(folder, "bounding_box_train"), os.path.join(folder, "query"),
            os.path.join(folder, "bounding_box_test"))
        self.train = self.relabel(train)
        self.query = query
        self.gallery = gallery
        self.distractors = distractors
        self.labelled = train + query + [it for it in gallery if it[1] != DISTRACTOR_PID]


class Market1501(MarketLayout):
    """Market-1501: 751 training ids (12,936 images), 750 test ids, 6 cameras."""

    name = "market1501"
    reference = ("Liang Zheng, Liyue Shen, Lu Tian, Shengjin Wang, Jingdong Wang, and Qi Tian. "
                 "Scalable person re-identification: A benchmark. In ICCV, 2015.")
    published = PublishedStats(ids=1501, images=32217, cameras=6)
    folder_name = "Market-1501-v15.09.15"

    def __init__(self, root: str, split: int = 0, split_seed: int = 0, num_splits: int = 10):
        super().__init__(root, split=0)
        self._load_market_folders(os.path.join(root, self.folder_name))
