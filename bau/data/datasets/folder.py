"""``folder:PATH``: any folder laid out like Market-1501 (what ``bau``'s synthetic generator writes).

Layout::

    PATH/bounding_box_train/0001_c1s1_000001_00.jpg
    PATH/query/...
    PATH/bounding_box_test/...

The Market rules apply unchanged (``market1501.read_market_split``): file pid -1 is junk and
dropped, file pid 0 a gallery distractor (returned with pid ``DISTRACTOR_PID``). A pid 0 inside
``bounding_box_train`` is refused rather than silently dropped, because in a home-made folder it
almost always means identities were numbered from 0 by mistake. A home-made folder has no
published statistics.
"""
from __future__ import annotations

import os

from bau.core.errors import BauError
from bau.data.datasets.market1501 import DISTRACTOR_FILE_PID, MarketLayout, read_market_folder


class FolderDataset(MarketLayout):
    """A Market-named folder; ``root`` is the folder itself (``build_dataset`` resolves ``folder:PATH``)."""

    def __init__(self, root: str, split: int = 0, split_seed: int = 0, num_splits: int = 10):
        super().__init__(root, split=0)
        self.name = f"folder:{root}"
        train_dir = os.path.join(root, "bounding_box_train")
        self.require_dirs(root, train_dir)
        for path, pid, _ in read_market_folder(train_dir):
            if pid == DISTRACTOR_FILE_PID:
                raise BauError(f"image file {path}: pid 0 is reserved for gallery distractors "
                               f"(Market-1501 convention); number training identities from 1")
        self._load_market_folders(root)
