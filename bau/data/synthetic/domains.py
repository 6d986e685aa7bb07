"""Domains on disk: their names, and the plan of which files each one holds in the Market layout."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from bau.data.synthetic.styles import DomainStyle

SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def domain_names(num_domains: int) -> List[str]:
    """``synth_a``, ``synth_b``, ... ``synth_z``, ``synth_aa``, ``synth_ab``, ..."""
    names = []
    for i in range(num_domains):
        letters, k = "", i
        while True:
            letters = chr(ord("a") + k % 26) + letters
            k = k // 26 - 1
            if k < 0:
                break
        names.append(f"synth_{letters}")
    return names


@dataclass
class Shot:
    """One image to render: its file, identity, camera (0-based) and index within the identity."""

    split: str
    filename: str
    pid: int
    cam: int
    index: int


def plan_domain(rng: np.random.Generator, style: DomainStyle, num_ids: int, num_cameras: int,
                images_per_id: Optional[int]) -> List[Shot]:
    """Split ids into train/test, choose cameras, image counts, frame numbers and query images.

    Every id gets >= 2 cameras and >= 2 images per camera, so after taking one query per camera
    each query still has gallery images of its id from another camera.
    """
    pids = rng.permutation(np.arange(1, num_ids + 1))
    train_ids = set(int(p) for p in pids[: num_ids // 2])
    shots: List[Shot] = []
    for pid in range(1, num_ids + 1):
        if images_per_id is None:
            lo, hi = style.cams_per_id
            n_cams = int(rng.integers(max(2, lo), max(2, min(hi, num_cameras)) + 1))
            counts = rng.integers(style.imgs_per_cam[0], style.imgs_per_cam[1] + 1, n_cams)
        else:
            n_cams = min(num_cameras, images_per_id // 2)
            counts = np.full(n_cams, images_per_id // n_cams)
            counts[: images_per_id - int(counts.sum())] += 1
        cams = np.sort(rng.choice(num_cameras, size=n_cams, replace=False))
        index = 0
        for cam, count in zip(cams.tolist(), counts.tolist()):
            # Increasing frame numbers within (id, camera): names are unique and look like video.
            frames = int(rng.integers(1, 20000)) + np.cumsum(rng.integers(25, 3000, count))
            query_k = -1 if pid in train_ids else int(rng.integers(count))
            for k, frame in enumerate(frames.tolist()):
                split = "train" if pid in train_ids else ("query" if k == query_k else "gallery")
                seq = min(6, 1 + frame // 25000)
                name = f"{pid:04d}_c{cam + 1}s{seq}_{frame:06d}_01.jpg"
                shots.append(Shot(split, name, pid, cam, index))
                index += 1
    return shots
