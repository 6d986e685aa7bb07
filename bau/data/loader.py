"""Torch datasets over ``(path, pid, camid[, domain])`` lists, and the DataLoaders built on them.

Training: ``TrainImageSet`` reads an image and returns its original view and, for BAU, its
augmented view (Fig. 3a: both go through the network); ``build_train_loader`` batches it with
the P x K sampler ``data.sampler`` names (``PKSampler`` or ``ImageGroupSampler``). Evaluation:
``TestImageSet`` and ``build_test_loader`` (no augmentation, fixed order).

Reproducibility: the sampler's batches depend only on ``seed + epoch``. The augmentations use
torch's global generator; in DataLoader workers torch seeds it from the loader's ``generator``
(seeded here from ``seed`` and ``epoch``), and ``seed_worker`` derives Python's and NumPy's seeds
from it, so a run with the same seed, epoch and number of workers draws the same augmentations.
With ``workers=0`` the draws come from the main process's generator (``torch.manual_seed``).
"""
from __future__ import annotations

import random
from typing import Callable, Dict, List, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bau.config import DataConfig
from bau.data.images import read_image
from bau.data.samplers import build_sampler
from bau.data.transforms import TwoViewTransform, build_test_transform, build_train_transform
from bau.errors import BauError

TrainItem = Tuple[str, int, int, int]  # (image path, pid, camid, domain)


def _as_train_items(items: Sequence[tuple]) -> List[TrainItem]:
    """Accept ``(path, pid, camid, domain)`` or ``(path, pid, camid)`` (domain 0)."""
    out: List[TrainItem] = []
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) not in (3, 4):
            raise BauError(f"training list item {i}: expected (path, pid, camid[, domain]), got {item!r}")
        path, pid, camid = item[0], int(item[1]), int(item[2])
        domain = int(item[3]) if len(item) == 4 else 0
        out.append((str(path), pid, camid, domain))
    if not out:
        raise BauError("training list: empty; expected at least one (path, pid, camid[, domain]) item")
    return out


class TrainImageSet(Dataset):
    """Training images -> ``{"orig", "aug" (two views only), "pid", "camid", "domain", "index"}``.

    ``transform`` is a ``TwoViewTransform`` (BAU: ``orig`` and ``aug`` views, each ``[3, H, W]``)
    or a single-view callable (the baseline: only ``orig``, which is then whatever that callable
    makes, e.g. the augmented pipeline with probability p).
    """

    def __init__(self, items: Sequence[tuple], transform: Callable):
        self.items = _as_train_items(items)
        self.transform = transform

    @property
    def two_view(self) -> bool:
        return isinstance(self.transform, TwoViewTransform)

    @property
    def pids(self) -> List[int]:
        return [pid for _, pid, _, _ in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index) -> Dict[str, Union[torch.Tensor, int]]:
        if isinstance(index, (tuple, list)):  # (index, seed) from a seeded sampler
            index, seed = index
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
        path, pid, camid, domain = self.items[index]
        img = read_image(path)
        sample: Dict[str, Union[torch.Tensor, int]] = {"pid": pid, "camid": camid, "domain": domain, "index": index}
        if self.two_view:
            sample["orig"], sample["aug"] = self.transform(img)
        else:
            sample["orig"] = self.transform(img)
        return sample


class TestImageSet(Dataset):
    """Query/gallery images -> ``{"img": [3, H, W], "pid", "camid", "index"}``."""

    __test__ = False  # the name starts with "Test"; keep pytest from collecting it

    def __init__(self, items: Sequence[tuple], transform: Callable):
        self.items: List[Tuple[str, int, int]] = []
        for i, item in enumerate(items):
            if not isinstance(item, (tuple, list)) or len(item) not in (3, 4):
                raise BauError(f"evaluation list item {i}: expected (path, pid, camid), got {item!r}")
            self.items.append((str(item[0]), int(item[1]), int(item[2])))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Dict[str, Union[torch.Tensor, int]]:
        path, pid, camid = self.items[index]
        return {"img": self.transform(read_image(path)), "pid": pid, "camid": camid, "index": index}


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed Python's and NumPy's generators from the worker's torch seed
    (``base_seed + worker_id``, itself drawn from the loader's generator)."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _generator(seed: int, epoch: int) -> torch.Generator:
    # Mix seed and epoch so a loader rebuilt when resuming at epoch e does not replay epoch 0's draws.
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)


def build_train_loader(items: Sequence[tuple], cfg_data: DataConfig, two_view: bool = True, seed: int = 0,
                       epoch: int = 0, num_iters: int = 0, rank: int = 0, world_size: int = 1,
                       augment_original: bool = False) -> DataLoader:
    """The training DataLoader: P x K batches (``loader.sampler`` is the sampler ``cfg_data.sampler``
    names, a ``PKSampler`` or an ``ImageGroupSampler``; call its ``set_epoch`` before each epoch).

    Args:
        items: ``(path, pid, camid[, domain])``; pids must be unique across domains.
        cfg_data: image size, P, K, the sampler, p, the augmentation switches and op set, workers.
        two_view: BAU's original + augmented views; False = the single-view baseline whose one
            view gets the augmentations with probability p.
        seed, epoch: the sampler's and the workers' seeds.
        num_iters: batches per epoch (``train.iters_per_epoch``; 0 = the sampler's one pass).
        rank, world_size: this process's shard of each global batch.
    """
    d = cfg_data
    if d.workers < 0:
        raise BauError(f"data.workers: expected 0 or more loader processes, got {d.workers}")
    dataset = TrainImageSet(items, build_train_transform(d, two_view=two_view, augment_original=augment_original))
    sampler = build_sampler(d.sampler, dataset.pids, num_instances=d.num_instances, num_ids=d.num_ids, seed=seed,
                            num_iters=num_iters, rank=rank, world_size=world_size, seeded=True)
    sampler.set_epoch(epoch)
    return DataLoader(
        dataset,
        batch_size=sampler.batch_size,
        sampler=sampler,
        num_workers=d.workers,
        drop_last=True,
        pin_memory=torch.cuda.is_available(),
        # Not persistent: workers are re-created each epoch and re-seeded from the generator, which
        # the trainer re-seeds from (seed, epoch) - that is what makes a resumed run exact.
        persistent_workers=False,
        worker_init_fn=seed_worker,
        generator=_generator(seed, epoch),
    )


def build_test_loader(items: Sequence[tuple], height: int, width: int, batch_size: int = 128,
                      workers: int = 4) -> DataLoader:
    """Query/gallery images in the given order, without augmentation."""
    if batch_size < 1:
        raise BauError(f"eval.batch_size: expected a positive batch size, got {batch_size}")
    if workers < 0:
        raise BauError(f"data.workers: expected 0 or more loader processes, got {workers}")
    return DataLoader(
        TestImageSet(items, build_test_transform(height, width)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        drop_last=False,
        pin_memory=torch.cuda.is_available(),
    )
