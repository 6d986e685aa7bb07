"""TrainImageSet / TestImageSet and the DataLoaders, on a few tiny generated images."""
import random

import numpy as np
import pytest
import torch
from PIL import Image

from bau.core.config import DataConfig
from bau.core.errors import BauError
from bau.data.loader import (
    TestImageSet,
    TrainImageSet,
    build_test_loader,
    build_train_loader,
    collate_views,
    seed_worker,
)
from bau.data.randaugment import RELEASED_OPS, RandAugment
from bau.data.samplers import ImageGroupSampler, PKSampler
from bau.data.transforms import build_test_transform, build_transforms

pytestmark = pytest.mark.unit

H, W = 32, 16


@pytest.fixture
def items(tmp_path):
    """6 identities x 3 images, two domains, as (path, pid, camid, domain)."""
    rng = np.random.default_rng(0)
    out = []
    for pid in range(6):
        for j in range(3):
            path = tmp_path / f"{pid:02d}_c{j}_{j}.jpg"
            Image.fromarray(rng.integers(0, 256, size=(30 + pid, 14 + j, 3), dtype=np.uint8)).save(path)
            out.append((str(path), pid, j, pid % 2))
    return out


def small_cfg(workers=0, **kw):
    return DataConfig(height=H, width=W, num_ids=2, num_instances=2, workers=workers, **kw)


def test_train_set_returns_both_views_and_labels(items):
    ds = TrainImageSet(items, build_transforms(H, W))
    assert ds.two_view and len(ds) == 18
    sample = ds[4]
    assert set(sample) == {"orig", "aug", "pid", "camid", "domain", "index"}
    assert sample["orig"].shape == sample["aug"].shape == (3, H, W)
    assert (sample["pid"], sample["camid"], sample["domain"], sample["index"]) == (1, 1, 1, 4)


def test_three_tuples_get_domain_zero(items):
    ds = TrainImageSet([it[:3] for it in items], build_test_transform(H, W))
    sample = ds[5]
    assert not ds.two_view and "aug" not in sample
    assert sample["domain"] == 0 and sample["pid"] == 1 and sample["orig"].shape == (3, H, W)


def test_train_loader_batches_are_p_by_k_with_two_views(items):
    loader = build_train_loader(items, small_cfg(sampler="identity"), two_view=True, seed=1)
    assert isinstance(loader.sampler, PKSampler) and loader.batch_size == 4
    batches = list(loader)
    assert len(batches) == len(loader) == 3  # ceil(6 ids / P=2)
    seen = set()
    for b in batches:
        assert b["images"].shape == (8, 3, H, W)  # 4 originals, then their 4 augmented views
        pids = b["pid"].tolist()
        assert pids[0] == pids[1] and pids[2] == pids[3] and pids[0] != pids[2]
        assert b["domain"].tolist() == [p % 2 for p in pids]
        assert [items[i][1] for i in b["index"].tolist()] == pids
        seen.update(pids)
    assert seen == set(range(6))


def test_config_selects_the_image_sampler_and_the_released_op_set(items):
    loader = build_train_loader(items, small_cfg(sampler="image", randaugment_ops="released"), seed=1)
    sampler = loader.sampler
    assert isinstance(sampler, ImageGroupSampler) and loader.batch_size == 4
    # 6 ids x 3 images, K=2: one group each, P=2 -> one pass is 3 batches
    assert len(loader) == sampler.num_batches == 3
    rand_augment = loader.dataset.transform.aug.transforms[0].transforms[0]
    assert isinstance(rand_augment, RandAugment) and rand_augment.ops == RELEASED_OPS
    batches = list(loader)
    assert len(batches) == 3
    indices = [i for b in batches for i in b["index"].tolist()]
    assert indices == sampler.epoch_indices().tolist()
    assert [d for b in batches for d in b["domain"].tolist()] == [items[i][3] for i in indices]


def test_single_view_loader_has_one_view(items):
    loader = build_train_loader(items, small_cfg(aug_prob=1.0), two_view=False, seed=1)
    batch = next(iter(loader))
    assert batch["images"].shape == (4, 3, H, W) and batch["pid"].shape == (4,)


def test_collate_stacks_the_views_once_in_the_asked_memory_format(items):
    ds = TrainImageSet(items, build_transforms(H, W))
    samples = [ds[(i, 100 + i)] for i in range(3)]
    for channels_last in (False, True):
        batch = collate_views(samples, channels_last=channels_last)
        images = batch["images"]
        assert images.shape == (6, 3, H, W)
        assert images.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        assert torch.equal(images[:3], torch.stack([s["orig"] for s in samples]))
        assert torch.equal(images[3:], torch.stack([s["aug"] for s in samples]))
        assert batch["index"].tolist() == [0, 1, 2] and batch["pid"].dtype == torch.long


def test_decoded_image_cache_gives_the_same_images_within_its_budget(items):
    from bau.data.images import DecodedImageCache, read_image

    paths = [it[0] for it in items]
    one = np.asarray(read_image(paths[0])).nbytes
    cache = DecodedImageCache(budget_mb=2.5 * one / 2 ** 20).fill(paths)
    assert len(cache) == 2  # the budget holds two images; the rest are read from disk
    for p in paths[:4]:
        assert np.array_equal(np.asarray(cache.get(p)), np.asarray(read_image(p)))
    # the loader's batches are the same with and without the cache
    plain = next(iter(build_train_loader(items, small_cfg(image_cache_mb=0), seed=4)))
    cached = next(iter(build_train_loader(items, small_cfg(image_cache_mb=64), seed=4)))
    assert torch.equal(plain["images"], cached["images"])


def test_train_loader_with_workers_is_reproducible(items):
    def first_batch(seed):
        loader = build_train_loader(items, small_cfg(workers=2), two_view=True, seed=seed, epoch=2)
        assert loader.persistent_workers and loader.sampler.epoch == 2
        batch = next(iter(loader))
        del loader
        return batch

    a, b, c = first_batch(5), first_batch(5), first_batch(6)
    assert torch.equal(a["index"], b["index"])
    assert torch.equal(a["images"], b["images"])
    assert not torch.equal(a["images"], c["images"])


def test_sharded_loaders_split_each_batch(items):
    cfg = DataConfig(height=H, width=W, num_ids=4, num_instances=2, workers=0)
    full = build_train_loader(items, cfg, seed=3)
    shards = [build_train_loader(items, cfg, seed=3, rank=r, world_size=2) for r in range(2)]
    assert shards[0].batch_size == 4
    whole = [b["index"].tolist() for b in full]
    parts = [[b["index"].tolist() for b in s] for s in shards]
    assert [p0 + p1 for p0, p1 in zip(*parts)] == whole
    # each sample's augmentations are seeded by its place in the global batch: the shards hold
    # exactly the images of the single-process batch, and the worker count changes nothing
    first_full = next(iter(full))
    halves = [next(iter(s)) for s in shards]
    for view in range(2):  # originals, then augmented views
        full_view = first_full["images"][8 * view:8 * view + 8]
        assert torch.equal(torch.cat([h["images"][4 * view:4 * view + 4] for h in halves]), full_view)
    cfg_workers = DataConfig(height=H, width=W, num_ids=4, num_instances=2, workers=2)
    with_workers = next(iter(build_train_loader(items, cfg_workers, seed=3)))
    assert torch.equal(with_workers["images"], first_full["images"])


def test_test_set_and_loader_keep_order(items):
    test_items = [it[:3] for it in items[:7]]
    ds = TestImageSet(test_items, build_test_transform(H, W))
    sample = ds[2]
    assert set(sample) == {"img", "pid", "camid", "index"} and sample["img"].shape == (3, H, W)
    loader = build_test_loader(test_items, H, W, batch_size=3, workers=0)
    batches = list(loader)
    assert [len(b["index"]) for b in batches] == [3, 3, 1]
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(7))
    assert torch.equal(batches[0]["img"][2], sample["img"])


def test_bad_items_and_files_are_one_line_errors(items, tmp_path):
    with pytest.raises(BauError, match="item 0"):
        TrainImageSet([("a.jpg", 1)], build_test_transform(H, W))
    with pytest.raises(BauError, match="empty"):
        TrainImageSet([], build_test_transform(H, W))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    ds = TestImageSet([(str(bad), 0, 0)], build_test_transform(H, W))
    with pytest.raises(BauError, match="broken.jpg"):
        ds[0]
    with pytest.raises(BauError, match="num_ids"):
        build_train_loader(items, DataConfig(height=H, width=W, num_ids=8, workers=0))


def test_seed_worker_seeds_python_and_numpy_from_torch():
    torch.manual_seed(1234)
    seed_worker(0)
    got = (random.random(), np.random.random())
    assert got == (random.Random(1234).random(), np.random.RandomState(1234).random_sample())


def test_workers_are_forked_whatever_the_parents_start_method(items):
    """A sweep's --jobs worker is a spawned process: its loaders still fork their workers (a spawned
    worker costs seconds per evaluation), and the batches do not depend on how workers start."""
    import multiprocessing

    from bau.data.loader import worker_context

    assert worker_context(0) is None
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    assert worker_context(2).get_start_method() == "fork"
    cfg = small_cfg(workers=1)
    forked = build_train_loader(items, cfg, seed=3)
    assert forked.multiprocessing_context.get_start_method() == "fork"
    spawned = build_train_loader(items, cfg, seed=3)
    spawned.multiprocessing_context = multiprocessing.get_context("spawn")
    for a, b in zip(forked, spawned):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["images"], b["images"])
    test = build_test_loader([it[:3] for it in items], 16, 8, batch_size=4, workers=1)
    assert test.multiprocessing_context.get_start_method() == "fork"
