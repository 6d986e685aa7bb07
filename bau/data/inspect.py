"""What ``bau data inspect --root ROOT NAME...`` prints: per dataset, the ids / images / cameras
of each subset next to the published numbers the dataset class carries (``published``: the
paper's Table 1), its reference, and every broken image file.

Pure functions returning an ``InspectReport`` (the CLI prints its text and exits with status 2 when
a dataset could not be opened or an image is broken). A dataset that fails to open is reported in
place and the others are still inspected, so one run shows every problem of a data folder. The
image check decodes every image completely, so a truncated file is caught, not only a damaged
header.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, List, Sequence, Tuple

from bau.core.errors import BauError
from bau.data.base import Item, ReIDDataset
from bau.data.datasets import build_dataset
from bau.data.images import read_image

TOTAL_NOTE = ("total = every image of a real identity (all subsets; all splits for the small datasets) "
              "plus distractors; distractors are not counted as ids")


@dataclass
class InspectReport:
    """The text of ``bau data inspect``, the names that could not be opened, and the image problems."""

    text: str
    failed: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.problems

    def summary(self) -> str:
        """One line on what went wrong (empty when nothing did)."""
        parts = []
        if self.failed:
            parts.append(f"{len(self.failed)} dataset(s) could not be opened ({', '.join(self.failed)})")
        if self.problems:
            parts.append(f"{len(self.problems)} image file(s) cannot be read")
        return "; ".join(parts)


def dataset_totals(dataset: ReIDDataset) -> Tuple[int, int, int]:
    """``(ids, images, cameras)`` of the whole dataset, comparable with the published numbers."""
    labelled: List[Item] = getattr(dataset, "labelled", dataset.train + dataset.query + dataset.gallery)
    distractors: List[Item] = getattr(dataset, "distractors", [])
    everything = labelled + distractors
    return (len({pid for _, pid, _ in labelled if pid >= 0}), len({path for path, _, _ in everything}),
            len({cam for _, _, cam in everything}))


def decode_problems(paths: Iterable[str]) -> List[str]:
    """One line per image that is missing, empty, or cannot be decoded in full (e.g. a truncated
    JPEG), in the order given; empty when every image decodes."""
    problems = []
    for path in paths:
        try:
            read_image(path)  # opens and converts to RGB: every pixel is decoded
        except BauError as exc:
            problems.append(str(exc))
    return problems


def _row(label: str, numbers: Sequence[int], suffix: str = "") -> str:
    ids, imgs, cams = (f"{n:,}" for n in numbers)
    return f"  {label:<8} {ids:>8} {imgs:>9} {cams:>8}{suffix}"


def _all_paths(dataset: ReIDDataset) -> List[str]:
    lists: Iterable[List[Item]] = (dataset.train, dataset.query, dataset.gallery,
                                   getattr(dataset, "labelled", []), getattr(dataset, "distractors", []))
    return sorted({path for items in lists for path, _, _ in items})


def inspect_dataset(root: str, name: str, split: int = 0, check_images: bool = True, split_seed: int = 0,
                    num_splits: int = 10) -> InspectReport:
    """The report of one dataset (an ``error:`` line, and ``failed = [name]``, if it cannot be opened)."""
    try:
        dataset = build_dataset(name, root, split=split, split_seed=split_seed, num_splits=num_splits)
    except BauError as exc:
        return InspectReport(text=f"{name}: error: {exc}", failed=[name])
    lines = [f"{name} (split {dataset.split} of {dataset.num_splits})",
             f"  {'subset':<8} {'ids':>8} {'images':>9} {'cameras':>8}"]
    for subset, stats in dataset.stats().items():
        lines.append(_row(subset, (stats["ids"], stats["images"], stats["cameras"])))
    lines.append(_row("total", dataset_totals(dataset)))
    published = dataset.published
    lines.append(_row("paper", published[:3], f"   ({published.source})") if published
                 else "  paper: no published numbers (not a published dataset)")
    if dataset.reference:
        lines.append(f"  reference: {dataset.reference}")
    problems: List[str] = []
    if check_images:
        paths = _all_paths(dataset)
        problems = decode_problems(paths)
        lines.append(f"  images decoded: {len(paths):,}, problems: {len(problems):,}")
        lines += [f"    {p}" for p in problems]
    return InspectReport(text="\n".join(lines), problems=problems)


def inspect_datasets(root: str, names: List[str], split: int = 0, check_images: bool = True,
                     split_seed: int = 0, num_splits: int = 10) -> InspectReport:
    """``bau data inspect``: one block per dataset, then a note on how totals are counted."""
    reports = [inspect_dataset(root, n, split, check_images, split_seed, num_splits) for n in names]
    return InspectReport(text="\n\n".join([r.text for r in reports] + [TOTAL_NOTE]) + "\n",
                         failed=[n for r in reports for n in r.failed],
                         problems=[p for r in reports for p in r.problems])
