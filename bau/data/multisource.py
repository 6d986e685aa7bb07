"""Several source datasets merged into one training set, each source a "domain".

BAU trains on several sources at once (e.g. MS+CS+C3 in Protocol-2). Every dataset relabels
its own training ids to 0..n-1, so merging shifts each dataset's ids past the previous ones
(one class per person, no collisions) and does the same for cameras. The memory bank of the
domain-specific uniformity loss (paper Eq. 7-8) needs the domain of every class, kept in
``class_domains``.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Tuple

from bau.core.errors import BauError
from bau.data.base import ReIDDataset

if TYPE_CHECKING:
    from bau.core.config import DataConfig

DomainItem = Tuple[str, int, int, int]  # (image path, global pid, global camid, domain index)


@dataclass
class MultiSourceTrainSet:
    """The merged training list and what the losses need to know about its classes.

    ``train``: ``(path, pid, camid, domain)`` with pids in 0..num_classes-1 and cameras unique
    across domains. ``class_domains[pid]`` is the domain index of class ``pid``;
    ``domain_names[d]`` the name of domain ``d``.
    """

    train: List[DomainItem]
    class_domains: List[int]
    num_classes: int
    num_cameras: int
    domain_names: List[str]

    def __len__(self) -> int:
        return len(self.train)


def combine(datasets: List[ReIDDataset], names: List[str]) -> MultiSourceTrainSet:
    """Merge the training lists of ``datasets`` (domain ``d`` = ``datasets[d]``, called ``names[d]``)."""
    if len(datasets) != len(names):
        raise ValueError(f"combine: {len(datasets)} datasets but {len(names)} names")
    if not datasets:
        raise BauError("training sources: none given; expected at least one dataset name")
    train: List[DomainItem] = []
    class_domains: List[int] = []
    pid_offset = cam_offset = 0
    for domain, (dataset, name) in enumerate(zip(datasets, names)):
        if not dataset.train:
            raise BauError(f"dataset {name}: no training images; expected a dataset with a training split "
                           f"to use it as a training source")
        # Relabel again so a dataset whose train ids are not exactly 0..n-1 still gets n classes.
        items = ReIDDataset.relabel(dataset.train)
        num_ids = len({pid for _, pid, _ in items})
        cams = sorted({cam for _, _, cam in items})
        cam_index = {cam: i for i, cam in enumerate(cams)}
        train += [(path, pid + pid_offset, cam_index[cam] + cam_offset, domain) for path, pid, cam in items]
        class_domains += [domain] * num_ids
        pid_offset += num_ids
        cam_offset += len(cams)
    return MultiSourceTrainSet(train=train, class_domains=class_domains, num_classes=pid_offset,
                               num_cameras=cam_offset, domain_names=list(names))


def training_set(data: "DataConfig", root: Optional[str] = None) -> MultiSourceTrainSet:
    """The merged training set of a run's ``data.sources`` (under ``root``, default ``data.root``):
    what the trainer trains on and what the weight-score gallery draws its batch from."""
    from bau.data.datasets import build_dataset

    root = data.root if root is None else root
    sources = [build_dataset(n, root, split=0, split_seed=data.split_seed, num_splits=data.num_splits)
               for n in data.sources]
    return combine(sources, list(data.sources))


def training_fingerprint(items: List[DomainItem]) -> str:
    """A sha256 over the training list: every image's path, pid, size and mtime, in list order.

    Stored in the checkpoints (``data_fingerprint``): ``--resume`` refuses to continue on other
    data, even when the number of identities and their domains are the same (another source with
    as many ids, an image removed or replaced). A file that cannot be read enters as size -1.
    """
    digest = hashlib.sha256()
    for path, pid, _camid, domain in items:
        try:
            st = os.stat(path)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, -1
        digest.update(f"{path}\t{pid}\t{domain}\t{size}\t{mtime}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()
