"""Builders of tiny fake copies of every dataset layout ``bau`` reads, for tests.

Each ``make_*`` writes a handful of 16x8 solid-colour images (in the dataset's own file format)
under ``root`` in the published folder structure and returns what a correct reader must find,
so tests can compare against it. ``make_all`` builds every layout under one root.
"""
from __future__ import annotations

import itertools
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

HEIGHT, WIDTH = 16, 8


def write_image(path: str, index: int = 0) -> str:
    """A 16x8 solid-colour image at ``path`` (format from the extension); the colour varies with ``index``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    colour = ((37 * index) % 256, (91 * index + 40) % 256, (53 * index + 80) % 256)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP"}[os.path.splitext(path)[1].lower()]
    Image.new("RGB", (WIDTH, HEIGHT), colour).save(path, fmt)
    return path


def market_name(pid: int, cam: int, index: int, ext: str = ".jpg") -> str:
    """``0002_c1s1_000451_03.jpg``-style name (``-1_c1s1_...`` for junk, as Market writes it)."""
    prefix = "-1" if pid == -1 else f"{pid:04d}"
    return f"{prefix}_c{cam}s1_{index:06d}_00{ext}"


def make_market_style(folder: str, train: Sequence[Tuple[int, int]], query: Sequence[Tuple[int, int]],
                      gallery: Sequence[Tuple[int, int]], ext: str = ".jpg") -> str:
    """A Market-named folder; each subset is a list of ``(pid, 1-based camera)``, one image each."""
    index = 0
    for sub, entries in (("bounding_box_train", train), ("query", query), ("bounding_box_test", gallery)):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
        for pid, cam in entries:
            index += 1
            write_image(os.path.join(folder, sub, market_name(pid, cam, index, ext)), index)
    return folder


# Market-1501: train ids 2 and 7; test ids 10 and 11; one distractor (0) and one junk (-1) box.
MARKET_TRAIN = [(2, 1), (2, 2), (7, 1), (7, 3), (7, 3)]
MARKET_QUERY = [(10, 1), (11, 2), (-1, 1)]
MARKET_GALLERY = [(10, 2), (10, 4), (11, 5), (0, 6), (-1, 3)]


def make_market(root: str) -> str:
    return make_market_style(os.path.join(root, "Market-1501-v15.09.15"), MARKET_TRAIN, MARKET_QUERY, MARKET_GALLERY)


# CUHK03-NP: detected and labeled differ (labeled has an extra test id) so a test can tell them apart.
def make_cuhk03(root: str) -> str:
    base = os.path.join(root, "cuhk03-np")
    for variant, extra in (("detected", []), ("labeled", [(5, 1)])):
        folder = os.path.join(base, variant)
        train, query, gallery = [(1, 1), (1, 2), (2, 1), (2, 2)], [(3, 1), (4, 1)] + extra, [(3, 2), (4, 2), (5, 2)]
        index = 0
        for sub, entries in (("bounding_box_train", train), ("query", query), ("bounding_box_test", gallery)):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
            for pid, cam in entries:
                index += 1
                write_image(os.path.join(folder, sub, f"{pid:04d}_c{cam}_{index}.png"), index)
    return base


def make_cuhksysu(root: str) -> str:
    folder = os.path.join(root, "CUHK-SYSU", "bounding_box_train")
    for i, pid in enumerate([1, 1, 5, 5, 9]):
        write_image(os.path.join(folder, f"{pid:05d}_c1_{i:04d}.jpg"), i)
    return folder


def msmt_name(pid: int, index: int, cam: int) -> str:
    return f"{pid:04d}/{pid:04d}_{index:03d}_{cam:02d}_0303morning_{index:04d}_0.jpg"


# MSMT17 lists: (pid, camera 1-based) per line. Train ids 0-1 (+ val), test ids 0-2 (numbered apart).
MSMT_LISTS = {
    "train": [(0, 1), (0, 2), (1, 3)],
    "val": [(1, 15)],
    "query": [(0, 4), (1, 5), (2, 6)],
    "gallery": [(0, 7), (1, 8), (2, 9), (2, 10)],
}


def make_msmt17(root: str, v2: bool = False) -> str:
    base = os.path.join(root, "MSMT17_V2" if v2 else "MSMT17")
    train_dir, test_dir = ("mask_train_v2", "mask_test_v2") if v2 else ("train", "test")
    index = 0
    for list_name, entries in MSMT_LISTS.items():
        image_dir = os.path.join(base, train_dir if list_name in ("train", "val") else test_dir)
        lines = []
        for pid, cam in entries:
            index += 1
            rel = msmt_name(pid, index, cam)
            write_image(os.path.join(image_dir, rel), index)
            lines.append(f"{rel} {pid}\n")
        with open(os.path.join(base, f"list_{list_name}.txt"), "w") as f:
            f.writelines(lines)
    return base


# CUHK02: the same local ids (1, 2) in every P folder -> different people; P5 has ids 1-3.
def make_cuhk02(root: str) -> str:
    base = os.path.join(root, "cuhk02", "Dataset")
    index = 0
    for pair in range(1, 6):
        local_ids = [1, 2, 3] if pair == 5 else [1, 2]
        for cam in (1, 2):
            for local in local_ids:
                for shot in (1, 2) if cam == 1 else (3,):
                    index += 1
                    write_image(os.path.join(base, f"P{pair}", f"cam{cam}", f"{local:03d}_{shot}.png"), index)
    return base


def make_cuhk01(root: str, num_ids: int = 10) -> str:
    folder = os.path.join(root, "cuhk01", "campus")
    for pid in range(1, num_ids + 1):
        for shot in range(1, 5):
            write_image(os.path.join(folder, f"{pid:04d}{shot:03d}.png"), 4 * pid + shot)
    return folder


PRID_CAM_A, PRID_CAM_B = 205, 210  # persons 1-200 in both; 201+ single-view (5 in A, 10 in B)


def make_prid(root: str) -> str:
    base = os.path.join(root, "prid_2011", "single_shot")
    for cam, count in (("cam_a", PRID_CAM_A), ("cam_b", PRID_CAM_B)):
        for pid in range(1, count + 1):
            write_image(os.path.join(base, cam, f"person_{pid:04d}.png"), pid)
    return base


GRID_IDS = 6
GRID_DISTRACTORS = 3


def grid_partitions(num_ids: int = GRID_IDS, num_splits: int = 10) -> List[List[int]]:
    """``num_splits`` distinct half-size train-id sets over ids 1..num_ids (the first combinations)."""
    combos = itertools.combinations(range(1, num_ids + 1), num_ids // 2)
    return [list(c) for c in itertools.islice(combos, num_splits)]


def make_grid(root: str, with_mat: bool = True, mat_layout: str = "structs") -> Tuple[str, Optional[List[List[int]]]]:
    """GRID with ids 1..6 (probe + gallery) and 3 pid-0 gallery distractors.

    ``mat_layout``: ``"structs"`` writes ``trainIdxAll`` like the published file (a 1x10 cell
    of structs whose third field holds the ids); ``"matrix"`` writes a plain 10 x n matrix.
    Returns the folder and the partitions written (None without the .mat).
    """
    from scipy.io import savemat

    base = os.path.join(root, "underground_reid")
    index = 0
    for pid in range(1, GRID_IDS + 1):
        index += 1
        write_image(os.path.join(base, "probe", f"{pid:04d}_{pid % 8 + 1}_25004_107_32_130_{index}.jpeg"), index)
        index += 1
        write_image(os.path.join(base, "gallery", f"{pid:04d}_{(pid + 3) % 8 + 1}_25004_107_32_130_{index}.jpeg"),
                    index)
    for d in range(GRID_DISTRACTORS):
        index += 1
        write_image(os.path.join(base, "gallery", f"0000_{d + 1}_25004_107_32_130_{index}.jpeg"), index)
    if not with_mat:
        return base, None
    partitions = grid_partitions()
    if mat_layout == "matrix":
        cells = np.array(partitions, dtype=np.float64)
    else:
        cells = np.empty((1, len(partitions)), dtype=object)
        for s, ids in enumerate(partitions):
            cells[0, s] = {"idxProbe": np.arange(1, 4), "idxGallery": np.arange(1, 4),
                           "idxPartition": np.array(ids, dtype=np.float64)}
    savemat(os.path.join(base, "features_and_partitions.mat"), {"trainIdxAll": cells})
    return base, partitions


def make_viper(root: str, num_ids: int = 10) -> str:
    base = os.path.join(root, "VIPeR")
    for i in range(num_ids):
        write_image(os.path.join(base, "cam_a", f"{i * 7:03d}_45.bmp"), i)
        write_image(os.path.join(base, "cam_b", f"{i * 7:03d}_90.bmp"), i + 50)
    return base


ILIDS_IMAGES = {1: 2, 2: 3, 3: 4, 4: 2, 5: 3, 6: 4, 7: 2, 8: 3, 9: 4}  # id -> number of images


def make_ilids(root: str) -> str:
    folder = os.path.join(root, "QMUL-iLIDS", "i-LIDS_Pedestrian", "Persons")
    for pid, count in ILIDS_IMAGES.items():
        for shot in range(1, count + 1):
            write_image(os.path.join(folder, f"{pid:04d}{shot:03d}.jpg"), 5 * pid + shot)
    return folder


def make_all(root: str) -> Dict[str, str]:
    """Every layout under ``root``; returns registry name -> dataset folder."""
    return {
        "market1501": make_market(root),
        "msmt17": make_msmt17(root),
        "cuhk03": make_cuhk03(root),
        "cuhk02": make_cuhk02(root),
        "cuhk01": make_cuhk01(root),
        "cuhksysu": make_cuhksysu(root),
        "prid": make_prid(root),
        "grid": make_grid(root)[0],
        "viper": make_viper(root),
        "ilids": make_ilids(root),
    }
