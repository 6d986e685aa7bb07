"""Features of a checkpoint on datasets: ``bau extract`` files and the run layer's cached feature sets.

Both hold the same arrays (the file format, versioned and validated on reading, is ``bau.runs.feature_file``)::

    features [N, C] float32 (L2-normalised retrieval features), pids [N], camids [N],
    domains [N] (index into ``domain_names``), subsets [N] ("train" / "query" / "gallery"),
    paths [N], domain_names [D]

pids are the datasets' own ids (not relabelled), so identities stay comparable across subsets.

``feature_set`` is what the figure scripts and the app use: the features of a checkpoint on a
subset of some datasets (optionally at most ``cap`` images per dataset, ``subsample_per_domain``),
computed once and kept in the checkpoint's ``.bau_cache`` (``bau.runs.cache``) under a key made of the
checkpoint's identity and every setting. The checkpoint's own config (image size, split seed)
is implied by its identity. The device is not part of the key: the same weights give the same
features up to float rounding wherever they run.

``read_feature_file`` makes the same ``FeatureSet`` of a feature file (any model's features, its cache next
to the file), and ``combine_feature_sets`` puts several such sets side by side as several domains.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from bau.core.config import Config
from bau.core.errors import BauError
from bau.data.datasets import build_dataset
from bau.evaluation.inference import extract_features
from bau.runs.cache import DiskCache, cache_key
from bau.runs.checkpoint import checkpoint_identity, load_model
from bau.runs.feature_file import read_arrays, write_feature_file

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
    """Write the features of ``subset`` of datasets ``names`` to the feature file ``out_path``
    (``bau.runs.feature_file``: the versioned format ``bau analyze`` and the app read); returns the row count."""

    if not out_path.endswith(".npz"):
        raise BauError(f"--out {out_path}: expected a file name ending in .npz")
    col = collect_items(names, root, subset, cfg, split)
    device = next(model.parameters()).device
    feats = extract_features(model, col["items"], cfg, device, progress=progress)
    write_feature_file(out_path, feature_arrays(col, np.arange(len(col["items"])), feats, names))
    return len(col["items"])


# The arrays of a feature set (``_arrays``); a cache entry without one of them is a miss.
FEATURE_ARRAYS = ("features", "pids", "camids", "domains", "subsets", "paths", "domain_names")


def feature_arrays(col: Dict[str, List], keep: np.ndarray, feats: np.ndarray,
                   names: Sequence[str]) -> Dict[str, np.ndarray]:
    """The feature-file arrays of rows ``keep`` of ``collect_items``' lists, with their features."""
    items = [col["items"][i] for i in keep]
    return {
        "features": np.asarray(feats, dtype=np.float32),
        "pids": np.array([it[1] for it in items], dtype=np.int64),
        "camids": np.array([it[2] for it in items], dtype=np.int64),
        "domains": np.array([col["domains"][i] for i in keep], dtype=np.int64),
        "subsets": np.array([col["subsets"][i] for i in keep], dtype=str),
        "paths": np.array([it[0] for it in items], dtype=str),
        "domain_names": np.array(list(names), dtype=str),
    }


# ---------------------------------------------------------------------------------------------
# cached feature sets (the run layer)
# ---------------------------------------------------------------------------------------------

Progress = Callable[[float, str], None]


def no_progress(fraction: float, text: str) -> None:
    pass


@dataclass
class FeatureSet:
    """Features of a list of images and their labels (every array has one row per image)."""

    key: str  # the cache key (``bau.runs.cache``); derived results key on it
    checkpoint: Dict[str, Any]  # the checkpoint's identity (``bau.runs.checkpoint.checkpoint_identity``)
    features: np.ndarray  # [N, C] float32, L2-normalised
    paths: np.ndarray  # [N] str
    pids: np.ndarray  # [N] int, the datasets' own ids
    camids: np.ndarray  # [N] int
    domains: np.ndarray  # [N] int, index into domain_names
    subsets: np.ndarray  # [N] str: train / query / gallery
    domain_names: List[str]

    def __len__(self) -> int:
        return len(self.paths)

    def identities(self) -> np.ndarray:
        """``[N]`` str identity labels that never collide across datasets: ``"domain:pid"``."""
        return np.array([f"{self.domain_names[d]}:{p}" for d, p in zip(self.domains, self.pids)])

    def subset(self, name: str) -> np.ndarray:
        """Row indices of one subset ("query", "gallery", ...)."""
        return np.flatnonzero(self.subsets == name)

    def cache(self) -> DiskCache:
        """The cache this set lives in (results derived from it go there too)."""
        return DiskCache.for_checkpoint(self.checkpoint["path"])


def subsample_per_domain(domains: Sequence[int], cap: Optional[int], seed: int = 0) -> np.ndarray:
    """Sorted row indices keeping at most ``cap`` rows of each domain.

    ``cap`` None or 0 keeps every row. The sample is drawn from a local ``numpy`` Generator
    seeded with ``seed`` (the same inputs give the same rows; no global state is touched).
    """
    domains = np.asarray(domains)
    if not cap:
        return np.arange(len(domains))
    if cap < 0:
        raise BauError(f"images per dataset {cap}: expected 0 (all) or a positive number")
    rng = np.random.default_rng(seed)
    keep = []
    for d in np.unique(domains):
        rows = np.flatnonzero(domains == d)
        keep.append(rows if len(rows) <= cap else rng.choice(rows, size=cap, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def _key(ident: Dict[str, Any], names: Sequence[str], subset: str, root: str, split: int, cap: Optional[int],
         seed: int) -> str:
    """The cache key of ``feature_set`` of a checkpoint with identity ``ident`` and these settings."""
    cap = int(cap or 0)  # None and 0 both mean every image; the seed only matters for a sample
    return cache_key("features", ident, names=[str(n) for n in names], subset=subset, root=os.path.realpath(root),
                     split=int(split), cap=cap, seed=int(seed) if cap else 0)


def feature_set_from_arrays(key: str, checkpoint: Dict[str, Any], a: Dict[str, np.ndarray]) -> FeatureSet:
    """A ``FeatureSet`` from the arrays of a cache entry or a feature file (``feature_arrays``' keys)."""
    return FeatureSet(key=key, checkpoint=checkpoint, features=a["features"], paths=a["paths"].astype(str),
                      pids=a["pids"], camids=a["camids"], domains=a["domains"], subsets=a["subsets"].astype(str),
                      domain_names=[str(n) for n in a["domain_names"]])


def lookup_features(checkpoint: str, names: Sequence[str], subset: str, root: str, split: int = 0,
                    cap: Optional[int] = None, seed: int = 0) -> Optional[FeatureSet]:
    """The cached ``feature_set`` with these settings, or None (nothing is computed or loaded)."""
    ident = checkpoint_identity(checkpoint)
    key = _key(ident, names, subset, root, split, cap, seed)
    hit = DiskCache.for_checkpoint(checkpoint).load_arrays(key, required=FEATURE_ARRAYS)
    return None if hit is None else feature_set_from_arrays(key, ident, hit)


def extract_in_chunks(model: torch.nn.Module, cfg: Config, items: Sequence[tuple], progress: Progress = no_progress,
                      chunk_batches: int = 4) -> np.ndarray:
    """``[N, C]`` features of ``items``, reporting ``progress`` after every ``chunk_batches`` batches.

    With loader workers (``data.workers > 0``) everything is one chunk, so the workers start once.
    """
    device = next(model.parameters()).device
    step = max(1, cfg.eval.batch_size * chunk_batches) if cfg.data.workers == 0 else max(1, len(items))
    parts = []
    for start in range(0, len(items), step):
        parts.append(extract_features(model, items[start:start + step], cfg, device))
        done = min(start + step, len(items))
        progress(done / max(len(items), 1), f"features: {done}/{len(items)} images")
    if not parts:
        raise BauError("feature extraction: no images selected")
    return np.concatenate(parts)


def feature_set(checkpoint: str, names: Sequence[str], subset: str, root: str, split: int = 0,
                cap: Optional[int] = None, seed: int = 0, device: str | torch.device = "cpu",
                workers: Optional[int] = None, progress: Progress = no_progress) -> FeatureSet:
    """Features of ``subset`` of datasets ``names`` under ``root`` for ``checkpoint``, from the cache if there.

    Args:
        checkpoint: the checkpoint file; its identity keys the cache entry, its model
            (``bau.runs.checkpoint.load_model``) is only loaded on a cache miss.
        names: dataset names (``market1501``, ``folder:PATH``, ...); their order defines domain indices.
        subset: ``train``, ``query``, ``gallery``, ``test`` (query + gallery) or ``all``.
        root: the datasets' root folder.
        split: query/gallery split of the small datasets.
        cap: at most this many images per dataset (``subsample_per_domain``; None or 0: all).
        seed: seed of that sample.
        device: where the model runs on a miss.
        workers: image-loading processes (default: the checkpoint's ``data.workers``); 0 reads
            in the calling thread, which a threaded server needs (forking there can deadlock).
        progress: ``progress(fraction, text)``.
    """
    ident = checkpoint_identity(checkpoint)
    key = _key(ident, names, subset, root, split, cap, seed)
    cache = DiskCache.for_checkpoint(checkpoint)
    hit = cache.load_arrays(key, required=FEATURE_ARRAYS)
    if hit is not None:
        progress(1.0, "features: from the cache")
        return feature_set_from_arrays(key, ident, hit)
    model, cfg = load_model(checkpoint, device)
    if workers is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, workers=workers))
    progress(0.0, "listing images")
    col = collect_items(list(names), root, subset, cfg, split)
    keep = subsample_per_domain(col["domains"], cap, seed)
    progress(0.0, f"features of {len(keep)} images")
    feats = extract_in_chunks(model, cfg, [col["items"][i] for i in keep], progress)
    arrays = feature_arrays(col, keep, feats, names)
    cache.save_arrays(key, arrays)
    return feature_set_from_arrays(key, ident, arrays)


def read_feature_file(path: str) -> FeatureSet:
    """Feature file ``path`` (``bau.runs.feature_file``) as a ``FeatureSet`` whose cache lives next to the file."""
    arrays = read_arrays(path)  # first: a missing or malformed file is its own one-line error
    ident = checkpoint_identity(path)
    return feature_set_from_arrays(cache_key("featurefile", ident), ident, arrays)


def combine_feature_sets(sets: Sequence[FeatureSet], files: Sequence[str]) -> FeatureSet:
    """Several feature sets (one per file) as one, each file's domains after the previous files'.

    A domain name that occurs in two files is prefixed with its file's name (``A:market1501``), so
    every domain stays its own. Feature sizes must agree.
    """
    if len(sets) == 1:
        return sets[0]
    dims = {fs.features.shape[1] for fs in sets}
    if len(dims) > 1:
        sizes = ", ".join(f"{f}: {fs.features.shape[1]}" for f, fs in zip(files, sets))
        raise BauError(f"feature files have different feature sizes ({sizes}); expected features of one model")
    all_names = [n for fs in sets for n in fs.domain_names]
    names: List[str] = []
    offsets = []
    for f, fs in zip(files, sets):
        offsets.append(len(names))
        stem = os.path.splitext(os.path.basename(f))[0]
        names += [f"{stem}:{n}" if all_names.count(n) > 1 else n for n in fs.domain_names]
    if len(set(names)) != len(names):
        raise BauError(f"feature files {', '.join(files)}: domain names collide even with their file names; "
                       f"give the files distinct names")

    def cat(field: str) -> np.ndarray:
        return np.concatenate([getattr(fs, field) for fs in sets])

    return FeatureSet(key="", checkpoint={"files": [fs.checkpoint for fs in sets]}, features=cat("features"),
                      paths=cat("paths"), pids=cat("pids"), camids=cat("camids"),
                      domains=np.concatenate([fs.domains + o for fs, o in zip(sets, offsets)]), subsets=cat("subsets"),
                      domain_names=names)
