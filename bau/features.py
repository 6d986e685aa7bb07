"""Feature files for the analysis tools: ``bau extract`` writes one ``.npz`` with

    features [N, C] float32 (L2-normalised retrieval features), pids [N], camids [N],
    domains [N] (index into ``domain_names``), subsets [N] ("train" / "query" / "gallery"),
    paths [N], domain_names [D]

pids are the datasets' own ids (not relabelled), so identities stay comparable across subsets.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
import torch

from bau.atomic import atomic_path
from bau.config import Config
from bau.data.datasets import build_dataset
from bau.errors import BauError
from bau.inference import extract_features

SUBSETS = {"train": ("train",), "query": ("query",), "gallery": ("gallery",), "test": ("query", "gallery"),
           "all": ("train", "query", "gallery")}


def collect_items(names: Sequence[str], root: str, subset: str, cfg: Config, split: int = 0) -> Dict[str, List]:
    """The ``(path, pid, camid)`` items of ``subset`` of each dataset, with their domain and subset labels."""
    if subset not in SUBSETS:
        raise BauError(f"subset {subset!r}: expected one of {', '.join(SUBSETS)}")
    out: Dict[str, List] = {"items": [], "domains": [], "subsets": []}
    for d, name in enumerate(names):
        ds = build_dataset(name, root, split=split, split_seed=cfg.data.split_seed, num_splits=cfg.data.num_splits)
        for part in SUBSETS[subset]:
            items = getattr(ds, part)
            out["items"] += [tuple(it[:3]) for it in items]
            out["domains"] += [d] * len(items)
            out["subsets"] += [part] * len(items)
    if not out["items"]:
        raise BauError(f"datasets {', '.join(names)}: no images in subset {subset!r}")
    return out


def extract_to_npz(model: torch.nn.Module, cfg: Config, names: Sequence[str], root: str, subset: str, out_path: str,
                   split: int = 0, progress: bool = False) -> int:
    if not out_path.endswith(".npz"):
        raise BauError(f"--out {out_path}: expected a file name ending in .npz")
    col = collect_items(names, root, subset, cfg, split)
    device = next(model.parameters()).device
    feats = extract_features(model, col["items"], cfg, device, progress=progress)
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, features=feats,
                     pids=np.array([it[1] for it in col["items"]], dtype=np.int64),
                     camids=np.array([it[2] for it in col["items"]], dtype=np.int64),
                     domains=np.array(col["domains"], dtype=np.int64),
                     subsets=np.array(col["subsets"]),
                     paths=np.array([it[0] for it in col["items"]]),
                     domain_names=np.array(list(names)))
    return len(col["items"])


def load_npz(path: str) -> Dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise BauError(f"feature file {path}: cannot be read as a bau .npz ({type(e).__name__})") from None
    missing = {"features", "pids", "camids", "domains"} - set(data)
    if missing:
        raise BauError(f"feature file {path}: missing arrays {sorted(missing)} (expected a file from `bau extract`)")
    return data
