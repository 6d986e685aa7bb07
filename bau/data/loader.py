"""Torch datasets over ``(path, pid, camid[, domain])`` lists, and the DataLoaders built on them.

Training: ``TrainImageSet`` reads an image and returns its original view and, for BAU, its
augmented view (Fig. 3a: both go through the network); ``build_train_loader`` batches it with
the P x K sampler ``data.sampler`` names (``PKSampler`` or ``ImageGroupSampler``). Evaluation:
``TestImageSet`` and ``build_test_loader`` (no augmentation, fixed order).

Reproducibility: the sampler's batches depend only on ``seed + epoch``, and it hands every index
out with a seed of its own (from the sample's place in the epoch's global batches), which seeds
torch's, Python's and NumPy's generators before that sample's augmentations. A sample's views
therefore do not depend on the number of loader workers, on which worker draws it, or on the
number of ranks, and the workers can persist across epochs.

Speed: ``collate_views`` stacks a batch's views once into the tensor the network takes
(``images``: the originals, then the augmented views, channels_last when asked), in the
worker; ``data.image_cache_mb`` keeps decoded training images in memory
(``bau.data.images.DecodedImageCache``), filled before the workers fork so they share it.
"""
from __future__ import annotations

import multiprocessing
import random
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bau.core.config import DataConfig
from bau.core.errors import BauError
from bau.data.images import DecodedImageCache, read_image
from bau.data.samplers import build_sampler
from bau.data.transforms import TwoViewTransform, build_test_transform, build_train_transform

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

    def __init__(self, items: Sequence[tuple], transform: Callable, images: Optional[DecodedImageCache] = None):
        self.items = _as_train_items(items)
        self.transform = transform
        self.images = images

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
            # The CPU generator alone (torch.manual_seed would also queue a CUDA re-seed and record
            # a stack trace each call: a quarter of the loader's time on small images).
            torch.default_generator.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
        path, pid, camid, domain = self.items[index]
        img = read_image(path) if self.images is None else self.images.get(path)
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


def collate_views(samples: List[Dict], channels_last: bool = False) -> Dict[str, torch.Tensor]:
    """A list of ``TrainImageSet`` samples -> one batch.

    ``images`` is ``[V * B, 3, H, W]``: the B original views, then (two views) the B augmented ones,
    written once into the memory layout the network takes. ``pid``, ``camid``, ``domain`` and
    ``index`` are ``[B]`` long tensors.
    """
    views = ["orig", "aug"] if "aug" in samples[0] else ["orig"]
    b = len(samples)
    c, h, w = samples[0]["orig"].shape
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    images = torch.empty((len(views) * b, c, h, w), dtype=samples[0]["orig"].dtype, memory_format=fmt)
    for v, view in enumerate(views):
        for i, sample in enumerate(samples):
            images[v * b + i].copy_(sample[view])
    batch = {"images": images}
    for key in ("pid", "camid", "domain", "index"):
        batch[key] = torch.tensor([s[key] for s in samples], dtype=torch.long)
    return batch


def build_train_loader(items: Sequence[tuple], cfg_data: DataConfig, two_view: bool = True, seed: int = 0,
                       epoch: int = 0, num_iters: int = 0, rank: int = 0, world_size: int = 1,
                       augment_original: bool = False, channels_last: bool = False) -> DataLoader:
    """The training DataLoader: P x K batches (``loader.sampler`` is the sampler ``cfg_data.sampler``
    names, a ``PKSampler`` or an ``ImageGroupSampler``; call its ``set_epoch`` before each epoch).

    Args:
        items: ``(path, pid, camid[, domain])``; pids must be unique across domains.
        cfg_data: image size, P, K, the sampler, p, the augmentation switches and op set, workers,
            the decoded-image cache budget.
        two_view: BAU's original + augmented views; False = the single-view baseline whose one
            view gets the augmentations with probability p.
        seed, epoch: the sampler's seed and first epoch.
        num_iters: batches per epoch (``train.iters_per_epoch``; 0 = the sampler's one pass).
        rank, world_size: this process's shard of each global batch.
        channels_last: batches in the channels_last memory format (``train.channels_last``).

    Batches are ``collate_views`` dicts: ``images`` ``[V * B, 3, H, W]``, ``pid``, ``camid``,
    ``domain``, ``index``.
    """
    d = cfg_data
    if d.workers < 0:
        raise BauError(f"data.workers: expected 0 or more loader processes, got {d.workers}")
    images = None
    if d.image_cache_mb > 0:
        images = DecodedImageCache(d.image_cache_mb).fill([str(it[0]) for it in items])
    dataset = TrainImageSet(items, build_train_transform(d, two_view=two_view, augment_original=augment_original),
                            images=images)
    sampler = build_sampler(d.sampler, dataset.pids, num_instances=d.num_instances, num_ids=d.num_ids, seed=seed,
                            num_iters=num_iters, rank=rank, world_size=world_size, seeded=True)
    sampler.set_epoch(epoch)
    return DataLoader(
        dataset,
        batch_size=sampler.batch_size,
        sampler=sampler,
        num_workers=d.workers,
        collate_fn=partial(collate_views, channels_last=channels_last),
        drop_last=True,
        pin_memory=torch.cuda.is_available(),
        # Every sample carries its own seed (see the module doc), so workers may live across epochs
        # (and keep the forked image cache) without changing a single draw.
        persistent_workers=d.workers > 0,
        multiprocessing_context=worker_context(d.workers),
        worker_init_fn=seed_worker,
        generator=_generator(seed, epoch),
    )


def worker_context(workers: int):
    """How loader worker processes start: forked where the platform can (Linux), whatever the parent's
    default. A ``bau sweep --jobs`` run lives in a spawned process, whose default would start every
    worker as a fresh interpreter: ~7 s per evaluation instead of ~0.1 s. The draws do not depend on it
    (every sample carries its own seed)."""
    if workers > 0 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return None


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
        multiprocessing_context=worker_context(workers),
        drop_last=False,
        pin_memory=torch.cuda.is_available(),
    )
