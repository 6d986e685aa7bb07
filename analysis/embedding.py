"""t-SNE of re-ID features and the domain-coloured scatter of Figure 4b.

``tsne`` reduces ``[N, d]`` features to ``[N, 2]``: an optional seeded PCA to ``pca_dims``
dimensions first (neighbour search in 2,048 dimensions is the slow part and the first 50
principal components keep the neighbourhoods), then t-SNE with a fixed seed and PCA
initialisation, so the same features and seed give the same picture. The default backend is
scikit-learn's Barnes-Hut t-SNE (already a dependency). openTSNE's FFT-accelerated t-SNE can be
chosen with ``backend="opentsne"`` where it is installed; measured here on 20,000 points (50 PCA
dims, 1,000 iterations, one thread) it took 296 s of CPU against scikit-learn's 378 s, a 1.3x
gain that does not justify a second dependency or figures that change with what is installed.

``plot_tsne`` draws the points coloured by domain, with each domain's uniformity in parentheses
in the legend as in Figure 4b, and can ring the points of a few identities in their own colours;
``plot_tsne_identities`` colours every point by its identity. ``sample_rows`` is the seeded subset
of rows a capped t-SNE is drawn on (``bau analyze --max-points``, the app's "Max points").
"""
from __future__ import annotations

import importlib.util
import os
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from bau.core.errors import BauError


def available_backends() -> list:
    """The t-SNE implementations importable here, fastest first."""
    backends = []
    if importlib.util.find_spec("openTSNE") is not None:
        backends.append("opentsne")
    backends.append("sklearn")
    return backends


def _as_array(features: Any) -> np.ndarray:
    if hasattr(features, "detach"):
        features = features.detach().cpu().numpy()
    x = np.asarray(features)
    if x.ndim != 2:
        raise BauError(f"t-SNE features: expected a 2-D array [N, d], got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise BauError("t-SNE features: expected finite real numbers")
    return x.astype(np.float32 if x.dtype != np.float64 else np.float64)


def tsne(features: Any, seed: int = 0, perplexity: float = 30.0, pca_dims: Optional[int] = 50,
         n_iter: int = 750, backend: str = "sklearn", n_jobs: int = -1) -> np.ndarray:
    """Seeded 2-D t-SNE embedding of ``features``.

    Args:
        features: ``[N, d]`` numpy array or torch tensor, ``N >= 4``.
        seed: seeds the PCA and t-SNE (same input + seed -> same embedding on the same machine).
        perplexity: t-SNE perplexity; lowered to ``(N - 1) / 3`` for tiny inputs, where the
            implementations would refuse it.
        pca_dims: reduce to this many principal components first (None: no PCA).
        n_iter: optimisation iterations after the early-exaggeration phase (250 steps).
        backend: ``"sklearn"`` (default), ``"opentsne"`` (needs openTSNE) or ``"auto"`` (openTSNE when
            installed, else scikit-learn).
        n_jobs: threads for every thread pool involved (-1: all cores).

    Returns:
        ``[N, 2]`` float32 embedding.
    """
    x = _as_array(features)
    n = x.shape[0]
    if n < 4:
        raise BauError(f"t-SNE: need at least 4 points, got {n}")
    if backend == "auto":
        backend = available_backends()[0]
    if backend not in ("opentsne", "sklearn"):
        raise BauError(f"t-SNE backend {backend!r}: expected 'auto', 'opentsne' or 'sklearn'")
    if backend == "opentsne" and "opentsne" not in available_backends():
        raise BauError("t-SNE backend 'opentsne': openTSNE is not installed (pip install openTSNE), "
                       "or use backend='sklearn'")
    threads = n_jobs if n_jobs > 0 else (os.cpu_count() or 1)
    import sklearn.manifold  # noqa: F401  (loads the OpenMP runtime, so the limit below reaches it)
    # One limit for every thread pool (BLAS in the PCA, OpenMP in t-SNE): BLAS and OpenMP threads
    # spinning side by side oversubscribe the cores; on a busy 2-core machine 2 uncapped threads
    # ran 300 points 10x slower than one.
    with threadpool_limits(limits=threads):
        return _tsne(x, seed, perplexity, pca_dims, n_iter, backend, threads)


def _tsne(x: np.ndarray, seed: int, perplexity: float, pca_dims: Optional[int], n_iter: int, backend: str,
          threads: int) -> np.ndarray:
    n = x.shape[0]
    if pca_dims is not None and pca_dims < x.shape[1] and pca_dims < n:
        from sklearn.decomposition import PCA

        x = PCA(n_components=pca_dims, svd_solver="randomized", random_state=seed).fit_transform(x)
    perplexity = float(min(perplexity, (n - 1) / 3.0))
    x = np.ascontiguousarray(x, dtype=np.float64 if backend == "opentsne" else np.float32)
    if backend == "opentsne":
        from openTSNE import TSNE as OpenTSNE

        emb = OpenTSNE(n_components=2, perplexity=perplexity, initialization="pca", random_state=seed,
                       n_iter=n_iter, n_jobs=threads, negative_gradient_method="fft", verbose=False).fit(x)
        return np.asarray(emb, dtype=np.float32)
    from sklearn.manifold import TSNE

    # sklearn counts the 250 early-exaggeration steps in max_iter.
    model = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed,
                 max_iter=n_iter + 250, n_jobs=threads, method="barnes_hut")
    return model.fit_transform(x).astype(np.float32)


def add_tsne_options(parser) -> None:
    """``--perplexity`` and ``--tsne-iters`` (of ``tsne``) on an ``argparse`` parser: one spelling and
    one default for every command that draws a t-SNE (``bau analyze``, Figure 4)."""
    parser.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default 30)")
    parser.add_argument("--tsne-iters", type=int, default=750,
                        help="t-SNE iterations after the 250 early-exaggeration ones (default 750)")


def sample_rows(n: int, max_points: int, seed: int = 0) -> np.ndarray:
    """Sorted ``[M]`` row indices: all ``n`` rows, or ``max_points`` of them drawn without replacement
    from a local generator seeded with ``seed`` (same inputs, same rows)."""
    if max_points < 1:
        raise BauError(f"max points {max_points}: expected a positive number")
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def _pick_ids(ids: np.ndarray, num: int, seed: int = 0) -> list:
    """``num`` identities drawn with a fixed seed among those with at least two points (a cluster
    needs two), so the highlighted ones spread over the domains rather than all being the lowest ids."""
    values, counts = np.unique(ids, return_counts=True)
    pool = values[counts >= 2] if np.any(counts >= 2) else values
    chosen = np.sort(np.random.default_rng(seed).choice(len(pool), size=min(num, len(pool)), replace=False))
    return [v.item() if isinstance(v, np.generic) else v for v in pool[chosen]]


def plot_tsne(emb: np.ndarray, domains: Sequence[int], domain_names: Sequence[str],
              uniformity: Optional[Mapping[str, float]] = None, ids: Optional[Sequence[Any]] = None,
              highlight_ids: Optional[Sequence[Any]] = None, num_highlight: int = 8, ax=None,
              point_size: float = 3.0, title: Optional[str] = None, legend: bool = True):
    """Scatter of a t-SNE embedding coloured by domain (Figure 4b).

    Args:
        emb: ``[N, 2]`` embedding from ``tsne``.
        domains: ``[N]`` domain index of each point (into ``domain_names``).
        domain_names: name of each domain.
        uniformity: optional ``{domain name: value}``; the value is shown in parentheses after the
            domain's name in the legend, formatted ``.2f`` (pass ``-L_uniform`` for the paper's
            sign, where larger means more uniform).
        ids: optional ``[N]`` identity labels; with them a few identities are drawn on top with
            their own colours and a black edge (``highlight_ids``, or the ``num_highlight``
            identities drawn with a fixed seed among those with two or more points).
        highlight_ids: which identities to highlight.
        num_highlight: how many to pick when ``highlight_ids`` is None.
        ax: matplotlib Axes to draw into (a new paper-size figure when None).
        point_size, title, legend: cosmetics.

    Returns:
        The Axes.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    from analysis.plotting import domain_palette, figure

    emb = np.asarray(emb)
    dom = np.asarray(domains).reshape(-1)
    if emb.ndim != 2 or emb.shape[1] != 2:
        raise BauError(f"t-SNE plot: expected an [N, 2] embedding, got shape {emb.shape}")
    if len(dom) != len(emb):
        raise BauError(f"t-SNE plot: {len(emb)} points but {len(dom)} domain labels")
    if len(dom) and (dom.min() < 0 or dom.max() >= len(domain_names)):
        raise BauError(f"t-SNE plot: domain labels must index domain_names (0..{len(domain_names) - 1}), "
                       f"got {dom.min()}..{dom.max()}")
    if ax is None:
        _, axes = figure(1, 1, width=3.3, aspect=1.0)
        ax = axes[0, 0]
    palette = domain_palette([str(n) for n in domain_names])
    # Draw domains in a seeded random order of points so the last domain does not cover the others.
    order = np.random.default_rng(0).permutation(len(emb))
    colors = np.array([palette[str(domain_names[d])] for d in dom[order]]) if len(order) else np.zeros((0, 3))
    ax.scatter(emb[order, 0], emb[order, 1], c=colors, s=point_size, linewidths=0, alpha=0.7, rasterized=True)
    handles = []
    for d, name in enumerate(domain_names):
        if not np.any(dom == d):
            continue
        label = str(name)
        if uniformity is not None and str(name) in uniformity:
            label = f"{name} ({uniformity[str(name)]:.2f})"
        handles.append(plt.Line2D([], [], marker="o", linestyle="", markersize=5, color=palette[str(name)],
                                  label=label))
    if ids is not None:
        pid = np.asarray(ids).reshape(-1)
        if len(pid) != len(emb):
            raise BauError(f"t-SNE plot: {len(emb)} points but {len(pid)} identity labels")
        chosen = list(highlight_ids) if highlight_ids is not None else _pick_ids(pid, num_highlight)
        id_colors = sns.color_palette("husl", max(len(chosen), 1))
        for color, p in zip(id_colors, chosen):
            m = pid == p
            ax.scatter(emb[m, 0], emb[m, 1], color=color, s=point_size * 15, edgecolors="black", linewidths=0.4,
                       marker="*", zorder=3)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    if legend and handles:
        ax.legend(handles=handles, loc="best", frameon=True, markerscale=1.0, handletextpad=0.2)
    return ax


def plot_tsne_identities(emb: np.ndarray, ids: Sequence[Any], ax=None, point_size: float = 3.0,
                         title: Optional[str] = None):
    """Scatter of a t-SNE embedding with one colour per identity (colours repeat beyond 20 identities);
    points whose id is negative (distractors, no identity) are light grey, drawn first.

    Args:
        emb: ``[N, 2]`` embedding from ``tsne``.
        ids: ``[N]`` integer identity labels (``analysis.feature_report.identity_labels``).
        ax, point_size, title: as for ``plot_tsne``.

    Returns:
        The Axes.
    """
    import seaborn as sns

    from analysis.plotting import figure

    emb = np.asarray(emb)
    ids = np.asarray(ids).reshape(-1)
    if emb.ndim != 2 or emb.shape[1] != 2 or len(ids) != len(emb):
        raise BauError(f"t-SNE plot: expected an [N, 2] embedding and N identity labels, got {emb.shape} and "
                       f"{len(ids)}")
    if ax is None:
        _, axes = figure(1, 1, width=3.3, aspect=1.0)
        ax = axes[0, 0]
    none = ids < 0
    ax.scatter(emb[none, 0], emb[none, 1], color="0.85", s=point_size, linewidths=0, rasterized=True)
    palette = np.array(sns.color_palette("tab20", 20))
    values = np.unique(ids[~none])
    # identities get the palette's colours in a seeded order, so neighbours in id do not share a hue
    colour_of = {v: palette[i % 20] for i, v in enumerate(np.random.default_rng(0).permutation(values))}
    order = np.random.default_rng(0).permutation(np.flatnonzero(~none))
    colors = np.array([colour_of[v] for v in ids[order]]) if len(order) else np.zeros((0, 3))
    ax.scatter(emb[order, 0], emb[order, 1], c=colors, s=point_size, linewidths=0, alpha=0.8, rasterized=True)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        ax.set_title(title)
    return ax
