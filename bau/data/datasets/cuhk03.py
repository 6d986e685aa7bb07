"""CUHK03 (Li et al., CVPR 2014) in the CUHK03-NP protocol of Zhong et al. (CVPR 2017).

Layout (Market naming, two cameras ``c1``/``c2``)::

    ROOT/cuhk03-np/detected/{bounding_box_train,bounding_box_test,query}/0001_c1_1.png
    ROOT/cuhk03-np/labeled/...

767 training ids and 700 test ids (disjoint). The boxes come in two flavours: ``detected`` (by a
pedestrian detector; the harder, default one, registered as ``cuhk03``) and ``labeled`` (hand
drawn; registered as ``cuhk03_labeled``).
"""
from __future__ import annotations

import os

from bau.data.base import PublishedStats
from bau.data.datasets.market1501 import MarketLayout


class CUHK03(MarketLayout):
    """CUHK03-NP, detected boxes."""

    name = "cuhk03"
    reference = ("Wei Li, Rui Zhao, Tong Xiao, and Xiaogang Wang. DeepReID: Deep filter pairing neural network "
                 "for person re-identification. In CVPR, 2014.")
    published = PublishedStats(ids=1467, images=14096, cameras=2)
    variant = "detected"

    def __init__(self, root: str, split: int = 0, split_seed: int = 0, num_splits: int = 10):
        super().__init__(root, split=0)
        self._load_market_folders(os.path.join(root, "cuhk03-np", self.variant))


class CUHK03Labeled(CUHK03):
    """CUHK03-NP, hand-labelled boxes."""

    name = "cuhk03_labeled"
    variant = "labeled"
