"""Check everything a run will read before its first step, so a typo or a broken file costs seconds.

Before training, ``check_run_inputs`` builds every target dataset (every query/gallery split of the
small ones) and checks the header of every source and target image, in parallel threads with a
progress bar. A wrong dataset name, a missing folder or an unreadable image is then one line at
start-up, instead of an exception in a loader worker mid-epoch or at the first evaluation
``eval_every`` epochs in.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, List, Sequence, Set

from tqdm import tqdm

from bau.core.config import Config
from bau.core.errors import BauError
from bau.data.datasets import build_dataset
from bau.data.images import check_images

_CHUNK = 256  # images per task: big enough to amortise the pool, small enough for a smooth bar


def target_image_paths(cfg: Config, names: Sequence[str], root: str) -> Set[str]:
    """Every query and gallery image of every split of the datasets ``names`` (built, so a wrong
    name or layout raises its one-line ``BauError`` here)."""
    paths: Set[str] = set()
    for name in names:
        first = build_dataset(name, root, split=0, split_seed=cfg.data.split_seed, num_splits=cfg.data.num_splits)
        for i in range(first.num_splits):
            ds = first if i == 0 else build_dataset(name, root, split=i, split_seed=cfg.data.split_seed,
                                                    num_splits=cfg.data.num_splits)
            if not ds.query or not ds.gallery:
                raise BauError(f"target dataset {name}: split {i} has {len(ds.query)} query and {len(ds.gallery)} "
                               f"gallery images; expected both to be non-empty")
            paths.update(it[0] for it in (*ds.query, *ds.gallery))
    return paths


def check_image_files(paths: Iterable[str], progress: bool = False, workers: int = 8,
                      desc: str = "checking images") -> None:
    """Raise one ``BauError`` naming the first bad image (and how many there are) among ``paths``."""
    paths = list(paths)
    chunks = [paths[i:i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    problems: List[str] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            tqdm(total=len(paths), desc=desc, disable=not progress, leave=False, unit="img") as bar:
        for chunk, found in zip(chunks, pool.map(check_images, chunks)):
            problems += found
            bar.update(len(chunk))
    if problems:
        more = f" (and {len(problems) - 1} more bad images)" if len(problems) > 1 else ""
        raise BauError(f"{problems[0]}{more}")


def check_run_inputs(cfg: Config, train_paths: Sequence[str], progress: bool = False) -> int:
    """Build the targets and check every source and target image; returns the number checked."""
    paths = sorted(set(train_paths) | target_image_paths(cfg, cfg.data.targets, cfg.data.root))
    check_image_files(paths, progress=progress)
    return len(paths)
