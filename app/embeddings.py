"""t-SNE and geometry of a checkpoint's cached features, cached next to them: the Geometry page's
long computations after the features themselves (``bau.features.feature_set``).

Each result is stored in the features' cache (``bau.cache``: ``.bau_cache`` next to the
checkpoint) under a key made of the checkpoint's identity, the features' key and every setting,
so revisiting the page with the same choices is a file read, and a retrained checkpoint drops
them together with its features. Functions that take long accept a ``progress(fraction, text)``
callback (the page passes a ``st.progress`` bar; tests pass nothing).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import numpy as np

from bau.cache import cache_key
from bau.errors import BauError
from bau.features import FeatureSet

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, text: str) -> None:
    pass


def cached_tsne(fs: FeatureSet, max_points: int = 1500, perplexity: float = 30.0, seed: int = 0,
                progress: Progress = _no_progress) -> Tuple[np.ndarray, np.ndarray]:
    """``(rows [M], embedding [M, 2])``: a seeded t-SNE of at most ``max_points`` rows of ``fs``."""
    from analysis.embedding import sample_rows, tsne

    cache = fs.cache()
    key = cache_key("tsne", fs.checkpoint, features=fs.key, max_points=max_points, perplexity=perplexity,
                    seed=seed)
    hit = cache.load_arrays(key)
    if hit is not None:
        progress(1.0, "t-SNE: from the cache")
        return hit["rows"], hit["embedding"]
    rows = sample_rows(len(fs), max_points, seed)
    progress(0.0, f"t-SNE of {len(rows)} points")
    emb = tsne(fs.features[rows], seed=seed, perplexity=perplexity, n_jobs=1)
    cache.save_arrays(key, {"rows": rows, "embedding": emb})
    progress(1.0, "t-SNE done")
    return rows, emb


def cached_geometry(fs: FeatureSet) -> Dict[str, object]:
    """Alignment (Eq. 1) over same-identity pairs, uniformity (Eq. 2), and uniformity per domain.

    Returns ``{"alignment": float or None, "uniformity": float, "per_domain": {name: float},
    "num_images": int, "note": str}``; alignment is None (with a note) when no identity has two images.
    """
    from analysis.geometry import alignment, uniformity, uniformity_by_group

    cache = fs.cache()
    key = cache_key("geometry", fs.checkpoint, features=fs.key)
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
