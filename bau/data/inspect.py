"""What ``bau data inspect --root ROOT NAME...`` prints: per dataset, the ids / images / cameras
of each subset next to the paper's Table 1, and every broken image file.

A pure function returning text (the CLI prints it). A dataset that fails to open is reported in
place and the others are still inspected, so one run shows every problem of a data folder.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from bau.data import images
from bau.data.base import Item, ReIDDataset
from bau.data.datasets import FULL_PREFIX, build_dataset
from bau.errors import BauError

# Paper Table 1: (ids, images, cameras) of each dataset as published.
PAPER_TABLE1: Dict[str, Tuple[int, int, int]] = {
    "market1501": (1501, 32217, 6),
    "msmt17": (4101, 126441, 15),
    "cuhk02": (1816, 7264, 10),
    "cuhk03": (1467, 14096, 2),
    "cuhk03_labeled": (1467, 14096, 2),
    "cuhksysu": (11934, 34574, 1),
    "prid": (200, 1134, 2),
    "grid": (250, 1275, 8),
    "viper": (632, 1264, 2),
    "ilids": (119, 476, 2),
}

TOTAL_NOTE = ("total = every image of a real identity (all subsets; all splits for the small datasets) "
              "plus distractors; distractors are not counted as ids")


def paper_numbers(name: str) -> Optional[Tuple[int, int, int]]:
    """Table 1 numbers for a registry name (``full:NAME`` looks up NAME), None if not in the table."""
    key = name.lower()
    while key.startswith(FULL_PREFIX):
        key = key[len(FULL_PREFIX):]
    return PAPER_TABLE1.get(key)


def dataset_totals(dataset: ReIDDataset) -> Tuple[int, int, int]:
    """``(ids, images, cameras)`` of the whole dataset, comparable with Table 1."""
    labelled: List[Item] = getattr(dataset, "labelled", dataset.train + dataset.query + dataset.gallery)
    distractors: List[Item] = getattr(dataset, "distractors", [])
    everything = labelled + distractors
    return (len({pid for _, pid, _ in labelled}), len({path for path, _, _ in everything}),
            len({cam for _, _, cam in everything}))


def _row(label: str, numbers: Sequence[int], suffix: str = "") -> str:
    ids, imgs, cams = (f"{n:,}" for n in numbers)
    return f"  {label:<8} {ids:>8} {imgs:>9} {cams:>8}{suffix}"


def _all_paths(dataset: ReIDDataset) -> List[str]:
    lists: Iterable[List[Item]] = (dataset.train, dataset.query, dataset.gallery,
                                   getattr(dataset, "labelled", []), getattr(dataset, "distractors", []))
    return sorted({path for items in lists for path, _, _ in items})


def inspect_dataset(root: str, name: str, split: int = 0, check_images: bool = True,
                    split_seed: int = 0, num_splits: int = 10) -> List[str]:
    """The report lines of one dataset (an ``error:`` line if it cannot be opened)."""
    try:
        dataset = build_dataset(name, root, split=split, split_seed=split_seed, num_splits=num_splits)
    except BauError as exc:
        return [f"{name}: error: {exc}"]
    lines = [f"{name} (split {dataset.split} of {dataset.num_splits})",
             f"  {'subset':<8} {'ids':>8} {'images':>9} {'cameras':>8}"]
    for subset, stats in dataset.stats().items():
        lines.append(_row(subset, (stats["ids"], stats["images"], stats["cameras"])))
    lines.append(_row("total", dataset_totals(dataset)))
    paper = paper_numbers(name)
    lines.append(_row("paper", paper, "   (Table 1)") if paper else "  paper: not in Table 1")
    if check_images:
        paths = _all_paths(dataset)
        problems = images.check_images(paths)
        lines.append(f"  images checked: {len(paths):,}, problems: {len(problems):,}")
        lines += [f"    {p}" for p in problems]
    return lines


def inspect_datasets(root: str, names: List[str], split: int = 0, check_images: bool = True,
                     split_seed: int = 0, num_splits: int = 10) -> str:
    """The text of ``bau data inspect``: one block per dataset, then a note on how totals are counted."""
    blocks = ["\n".join(inspect_dataset(root, n, split, check_images, split_seed, num_splits)) for n in names]
    return "\n\n".join(blocks + [TOTAL_NOTE]) + "\n"
