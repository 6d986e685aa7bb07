"""Features, t-SNE and geometry of one checkpoint on one dataset selection, cached on disk.

These are the app's long computations. Each takes a ``progress(fraction, text)`` callback (the
pages pass a ``st.progress`` bar; tests pass nothing) and stores its result in the ``DiskCache``
under a key made of the checkpoint's identity (real path, mtime, size: see ``app.cache``) and
every setting, so revisiting a page with the same choices is a file read. The checkpoint's own
config (image size, split seed) is implied by its identity, so it is not part of the key.

The model is only built on a cache miss: ``get_model`` is a callable, so a cached page never
loads a checkpoint.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from app.cache import DiskCache, cache_key, file_identity
from bau.config import Config
from bau.errors import BauError
from bau.features import collect_items
from bau.inference import extract_features

Progress = Callable[[float, str], None]
ModelGetter = Callable[[], Tuple[torch.nn.Module, Config]]


def _no_progress(fraction: float, text: str) -> None:
    pass


@dataclass
class FeatureSet:
    """Features of a list of images and their labels (all arrays have one row per image)."""

    key: str
    features: np.ndarray  # [N, C] float32, L2-normalised
    paths: np.ndarray  # [N] str
    pids: np.ndarray  # [N] int, the dataset's own ids
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


def subsample_per_domain(domains: Sequence[int], cap: int, seed: int) -> np.ndarray:
    """Sorted row indices keeping at most ``cap`` rows of each domain (seeded; ``cap <= 0``: all)."""
    domains = np.asarray(domains)
    if cap <= 0:
        return np.arange(len(domains))
    rng = np.random.default_rng(seed)
    keep = []
    for d in np.unique(domains):
        rows = np.flatnonzero(domains == d)
        keep.append(rows if len(rows) <= cap else rng.choice(rows, size=cap, replace=False))
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def extract_with_progress(model: torch.nn.Module, cfg: Config, items: Sequence[tuple],
                          progress: Progress = _no_progress, chunk_batches: int = 4) -> np.ndarray:
    """``[N, C]`` features of ``items`` in chunks of a few batches, reporting progress after each.

    Images are read in the calling thread (``data.workers = 0``): forking loader processes from a
    threaded web server can deadlock.
    """
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, workers=0))
    device = next(model.parameters()).device
    step = max(1, cfg.eval.batch_size * chunk_batches)
    parts = []
    for start in range(0, len(items), step):
        parts.append(extract_features(model, items[start:start + step], cfg, device))
        done = min(start + step, len(items))
        progress(done / max(len(items), 1), f"features: {done}/{len(items)} images")
    if not parts:
        raise BauError("feature extraction: no images selected")
    return np.concatenate(parts)


def features_key(checkpoint: str, names: Sequence[str], root: str, subset: str, split: int = 0,
                 cap: int = 0, seed: int = 0) -> str:
    return cache_key("features", checkpoint=file_identity(checkpoint), names=list(names), root=root,
                     subset=subset, split=split, cap=cap, seed=seed)


def cached_features(cache: DiskCache, checkpoint: str, get_model: ModelGetter, names: Sequence[str], root: str,
                    subset: str, split: int = 0, cap: int = 0, seed: int = 0,
                    progress: Progress = _no_progress) -> FeatureSet:
    """Features of ``subset`` of datasets ``names`` under ``root`` for ``checkpoint``, from the cache if there.

    Args:
        cache: where entries live.
        checkpoint: the checkpoint file (its identity keys the entry).
        get_model: builds ``(model, cfg)`` of that checkpoint; only called on a cache miss.
        names: dataset names (``market1501``, ``folder:PATH``, ...); their order defines domain indices.
        root: dataset root.
        subset: ``train``, ``query``, ``gallery``, ``test`` (query + gallery) or ``all``.
        split: query/gallery split of the small datasets.
        cap: at most this many images per dataset (seeded subsample; 0 = all).
        seed: seed of the subsample.
        progress: ``progress(fraction, text)``.
    """
    key = features_key(checkpoint, names, root, subset, split, cap, seed)
    hit = cache.load_arrays(key)
    if hit is not None:
        progress(1.0, "features: from the cache")
        return _feature_set(key, hit)
    model, cfg = get_model()
    progress(0.0, "listing images")
    col = collect_items(list(names), root, subset, cfg, split)
    keep = subsample_per_domain(col["domains"], cap, seed)
    items = [col["items"][i] for i in keep]
    feats = extract_with_progress(model, cfg, items, progress)
    arrays = {
        "features": feats.astype(np.float32),
        "paths": np.array([it[0] for it in items]),
        "pids": np.array([it[1] for it in items], dtype=np.int64),
        "camids": np.array([it[2] for it in items], dtype=np.int64),
        "domains": np.array([col["domains"][i] for i in keep], dtype=np.int64),
        "subsets": np.array([col["subsets"][i] for i in keep]),
        "domain_names": np.array(list(names)),
    }
    cache.save_arrays(key, arrays)
    return _feature_set(key, arrays)


def _feature_set(key: str, a: Dict[str, np.ndarray]) -> FeatureSet:
    return FeatureSet(key=key, features=a["features"], paths=a["paths"].astype(str), pids=a["pids"],
                      camids=a["camids"], domains=a["domains"], subsets=a["subsets"].astype(str),
                      domain_names=[str(n) for n in a["domain_names"]])


def cached_tsne(cache: DiskCache, fs: FeatureSet, max_points: int = 1500, perplexity: float = 30.0, seed: int = 0,
                progress: Progress = _no_progress) -> Tuple[np.ndarray, np.ndarray]:
    """``(rows [M], embedding [M, 2])``: a seeded t-SNE of at most ``max_points`` rows of ``fs``."""
    from analysis.embedding import tsne

    key = cache_key("tsne", features=fs.key, max_points=max_points, perplexity=perplexity, seed=seed)
    hit = cache.load_arrays(key)
    if hit is not None:
        progress(1.0, "t-SNE: from the cache")
        return hit["rows"], hit["embedding"]
    n = len(fs)
    rows = np.arange(n) if n <= max_points else np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))
    progress(0.0, f"t-SNE of {len(rows)} points")
    emb = tsne(fs.features[rows], seed=seed, perplexity=perplexity, n_jobs=1)
    cache.save_arrays(key, {"rows": rows, "embedding": emb})
    progress(1.0, "t-SNE done")
    return rows, emb


def cached_geometry(cache: DiskCache, fs: FeatureSet) -> Dict[str, object]:
    """Alignment (Eq. 1) over same-identity pairs, uniformity (Eq. 2), and uniformity per domain.

    Returns ``{"alignment": float or None, "uniformity": float, "per_domain": {name: float},
    "num_images": int, "note": str}``; alignment is None (with a note) when no identity has two images.
    """
    from analysis.geometry import alignment, uniformity, uniformity_by_group

    key = cache_key("geometry", features=fs.key)
    hit = cache.load_json(key)
    if hit is not None:
        return hit
    note = ""
    try:
        align: Optional[float] = alignment(fs.features, fs.identities())
    except BauError as e:
        align, note = None, str(e)
    out = {
        "alignment": align,
        "uniformity": uniformity(fs.features),
        "per_domain": {str(k): (None if np.isnan(v) else float(v))
                       for k, v in uniformity_by_group(fs.features, fs.domains, names=fs.domain_names).items()},
        "num_images": len(fs),
        "note": note,
    }
    cache.save_json(key, out)
    return out
