"""t-SNE, geometry and retrieval numbers of a feature set, cached next to it: the Geometry page's
long computations after the features themselves (a checkpoint's ``bau.runs.features.feature_set``, or a
feature file, ``bau.runs.features.read_feature_file``, whose cache is next to the file).

Each result is stored in the features' cache (``bau.runs.cache``: ``.bau_cache`` next to the
checkpoint) under a key made of the checkpoint's identity, the features' key and every setting,
so revisiting the page with the same choices is a file read, and a retrained checkpoint drops
them together with its features. Functions that take long accept a ``progress(fraction, text)``
callback (the page passes a ``st.progress`` bar; tests pass nothing).
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

import numpy as np

from bau.runs.cache import cache_key
from bau.runs.features import FeatureSet, Progress, no_progress


def cached_tsne(fs: FeatureSet, max_points: int = 1500, perplexity: float = 30.0, seed: int = 0,
                progress: Progress = no_progress) -> Tuple[np.ndarray, np.ndarray]:
    """``(rows [M], embedding [M, 2])``: a seeded t-SNE of at most ``max_points`` rows of ``fs``."""
    from analysis.embedding import sample_rows, tsne

    cache = fs.cache()
    key = cache_key("tsne", fs.checkpoint, features=fs.key, max_points=max_points, perplexity=perplexity,
                    seed=seed)
    hit = cache.load_arrays(key, required=("rows", "embedding"))
    if hit is not None:
        progress(1.0, "t-SNE: from the cache")
        return hit["rows"], hit["embedding"]
    rows = sample_rows(len(fs), max_points, seed)
    progress(0.0, f"t-SNE of {len(rows)} points")
    emb = tsne(fs.features[rows], seed=seed, perplexity=perplexity, n_jobs=1)
    cache.save_arrays(key, {"rows": rows, "embedding": emb})
    progress(1.0, "t-SNE done")
    return rows, emb


def _cached_json(fs: FeatureSet, kind: str, compute: Callable[[], Dict[str, object]]) -> Dict[str, object]:
    cache = fs.cache()
    # the settings name what the numbers mean, so entries computed under another meaning are not reused
    key = cache_key(kind, fs.checkpoint, features=fs.key, numbers=NUMBERS_VERSION)
    hit = cache.load_json(key)
    if hit is not None:
        return hit
    out = compute()
    cache.save_json(key, out)
    return out


# What the cached numbers are (``analysis.feature_report``): identities per domain, negative pids none.
NUMBERS_VERSION = "feature_report-1"


def cached_geometry(fs: FeatureSet) -> Dict[str, object]:
    """``analysis.feature_report.geometry`` of ``fs``, cached: alignment (Eq. 1) over same-identity pairs
    within a domain, uniformity (Eq. 2), uniformity per domain."""
    from analysis.feature_report import geometry

    return _cached_json(fs, "geometry", lambda: geometry(fs))


def cached_retrieval(fs: FeatureSet) -> Dict[str, object]:
    """``analysis.feature_report.retrieval`` of ``fs``, cached: CMC / mAP per domain with query + gallery rows."""
    from analysis.feature_report import retrieval

    return _cached_json(fs, "retrieval", lambda: retrieval(fs))
