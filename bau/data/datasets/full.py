"""``full:NAME``: every labelled image of a dataset used for training (Protocols 1 and 3).

Protocol-1 trains on Full-(M+C2+C3+CS) and Protocol-3 on Full-(M+MS+CS) (paper Sec. 4.1,
Table 2): the training *and* testing images of each source. A dataset class lists those images
in ``labelled`` with dataset-wide ids (train and test ids are disjoint, or shifted apart where a
dataset numbers them separately, like MSMT17), junk and distractors left out. ``FullDataset``
relabels them jointly to 0..n-1; its query and gallery are empty. It shows its base dataset's
``reference`` and ``published`` statistics (the same images).
"""
from __future__ import annotations

from bau.core.errors import BauError
from bau.data.base import ReIDDataset


class FullDataset(ReIDDataset):
    def __init__(self, base: ReIDDataset):
        super().__init__(base.root, split=0)
        labelled = getattr(base, "labelled", None)
        if labelled is None:
            raise BauError(f"dataset full:{base.name}: {type(base).__name__} does not list its labelled images; "
                           f"no full variant available")
        self.name = f"full:{base.name}"
        self.reference = base.reference
        self.published = base.published
        self.base = base
        self.labelled = list(labelled)
        self.distractors = list(getattr(base, "distractors", []))
        self.train = self.relabel(self.labelled)
