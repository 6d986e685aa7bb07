"""Reading person images, with one clear line per broken file instead of a PIL traceback.

``read_image`` is what the training and evaluation loaders call; ``check_images`` is the quick
scan of the trainer's start-up check (``bau.engine.preflight``: it opens each file and verifies its
header without decoding the pixels, so it stays fast on the 126k images of MSMT17);
``DecodedImageCache`` keeps decoded training images in memory (``data.image_cache_mb``).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
from PIL import Image

from bau.core.errors import BauError


def _file_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be an image before even opening it, or None."""
    if not os.path.exists(path):
        return f"image {path}: not found"
    if not os.path.isfile(path):
        return f"image {path}: not a file"
    if os.path.getsize(path) == 0:
        return f"image {path}: zero-byte file"
    return None


def read_image(path: str) -> Image.Image:
    """The image at ``path`` as an RGB ``PIL.Image.Image``; a ``BauError`` naming the path otherwise."""
    problem = _file_problem(path)
    if problem:
        raise BauError(problem)
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError, SyntaxError):  # PIL's UnidentifiedImageError is an OSError
        raise BauError(f"image {path}: cannot be decoded as an image") from None


def check_images(paths: Iterable[str]) -> List[str]:
    """One line per missing, zero-byte or unreadable image, in the order given; empty when all are fine.

    Only the header is verified (``Image.verify``): cheap, and it catches files that are not
    images at all or whose header is damaged. A truncated pixel stream is only caught by
    ``read_image``.
    """
    problems = []
    for path in paths:
        problem = _file_problem(path)
        if problem is None:
            try:
                with Image.open(path) as im:
                    im.verify()
            except (OSError, ValueError, SyntaxError):
                problem = f"image {path}: cannot be decoded as an image"
        if problem:
            problems.append(problem)
    return problems


class DecodedImageCache:
    """Decoded RGB images kept in memory, so a training image is decoded once, not at every visit.

    ``fill`` decodes the images (in threads: PIL releases the GIL while decoding) in the main
    process before the loader's workers start; the workers are forked and share the arrays.
    Images past the memory budget are simply read from disk as before. ``get`` returns an image
    equal to ``read_image(path)``.
    """

    def __init__(self, budget_mb: float):
        self.budget_bytes = int(budget_mb * 2 ** 20)
        self.arrays: Dict[str, np.ndarray] = {}
        self.nbytes = 0

    def fill(self, paths: Sequence[str], workers: int = 8) -> "DecodedImageCache":
        """Decode ``paths`` in order until the budget is used up; returns ``self``."""
        todo = [p for p in dict.fromkeys(paths) if p not in self.arrays]
        chunk = max(1, 4 * max(1, workers))
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for start in range(0, len(todo), chunk):
                if self.nbytes >= self.budget_bytes:
                    break
                part = todo[start:start + chunk]
                for path, array in zip(part, pool.map(lambda p: np.asarray(read_image(p)), part)):
                    if self.nbytes + array.nbytes > self.budget_bytes:
                        return self
                    self.arrays[path] = array
                    self.nbytes += array.nbytes
        return self

    def get(self, path: str) -> Image.Image:
        array = self.arrays.get(path)
        return read_image(path) if array is None else Image.fromarray(array, mode="RGB")

    def __len__(self) -> int:
        return len(self.arrays)
