"""The shared look of bau's figures and the one way to save them.

Every figure script uses the same colour for the same method (``METHOD_COLORS``) and for the
same dataset (``domain_palette``), paper-sized canvases (``figure``), the same marks for numbers
over seeds (``plot_spreads``: mean and ± std bars; ``plot_differences``: paired differences with
their 95 % interval; ``seeds_note``: what the bars are), and ``save_figure``, which
writes ``<stem>.png`` (200 dpi), ``<stem>.pdf`` and the plotted numbers (``<stem>.csv`` for a
table, ``<stem>.json`` otherwise) so a figure can always be checked or re-drawn from its data.
Each file is written atomically: a crash never leaves a half-written figure next to good ones.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window (headless machines, CI)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from bau.core.atomic import atomic_path  # noqa: E402
from bau.core.errors import BauError  # noqa: E402

# One colour per method across all figures (colour-blind-safe "colorblind" palette entries).
_CB = sns.color_palette("colorblind", 10)
METHOD_COLORS: Dict[str, Tuple[float, float, float]] = {
    "baseline": _CB[7],  # grey: the reference everything is compared with
    "bau": _CB[3],  # red-orange: the method
    "bau w/o weighting": _CB[0],  # blue
    "bau w/o L_domain": _CB[2],  # green
    "bau global prototypes": _CB[4],  # purple
    "bau w/o weighting, global prototypes": _CB[5],  # brown
    "in-distribution": _CB[0],
    "out-of-distribution": _CB[3],
    "source": _CB[0],
    "target": _CB[3],
}

# Paper dataset names in a fixed order, so e.g. MSMT17 has the same colour in every figure.
KNOWN_DOMAINS: List[str] = ["market1501", "msmt17", "cuhksysu", "cuhk03", "cuhk02", "cuhk01", "prid", "grid",
                            "viper", "ilids"]

# Paper column width and text width in inches (NeurIPS: 5.5 in text width).
COLUMN_WIDTH = 2.75
TEXT_WIDTH = 5.5
PNG_DPI = 200


def method_color(name: str) -> Tuple[float, float, float]:
    """The colour of method ``name`` (case-insensitive); unknown names get a stable colour from their text."""
    key = name.lower()
    for known, color in METHOD_COLORS.items():
        if known.lower() == key:
            return color
    return _CB[sum(map(ord, key)) % len(_CB)]


def domain_palette(names: Sequence[str]) -> Dict[str, Tuple[float, float, float]]:
    """A colour per domain name; paper datasets always get the same colour, others the next free ones.

    Args:
        names: domain names (e.g. a feature file's ``domain_names``).

    Returns:
        ``{name: (r, g, b)}`` in [0, 1], distinct colours for distinct names (up to 20 names).
    """
    colors = sns.color_palette("tab10", 10) + sns.color_palette("Set2", 8) + sns.color_palette("Dark2", 8)
    palette: Dict[str, Tuple[float, float, float]] = {}
    used = set()
    for name in names:
        idx = KNOWN_DOMAINS.index(name.lower()) if name.lower() in KNOWN_DOMAINS else None
        if idx is not None and idx not in used:
            palette[name] = colors[idx]
            used.add(idx)
    free = (i for i in range(len(colors)) if i not in used)
    for name in names:
        if name not in palette:
            i = next(free, None)
            palette[name] = colors[i] if i is not None else colors[sum(map(ord, name)) % len(colors)]
            if i is not None:
                used.add(i)
    return palette


def set_style() -> None:
    """Paper style: white grid, small fonts that stay readable at column width."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=0.9,
                  rc={"figure.dpi": 100, "savefig.bbox": "tight", "axes.titlesize": 9, "legend.fontsize": 7,
                      "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7})


def figure(ncols: int = 1, nrows: int = 1, width: float = TEXT_WIDTH, aspect: float = 0.75, **kwargs):
    """``plt.subplots`` at paper width: each panel ``width / ncols`` wide, ``aspect`` tall for wide."""
    set_style()
    panel = width / ncols
    return plt.subplots(nrows, ncols, figsize=(width, panel * aspect * nrows), squeeze=False, **kwargs)


def plot_spreads(ax, rows: Sequence[Mapping[str, Any]], name: str, x: str = "p", **style: Any):
    """A line through ``rows``' means of ``name`` against ``x``, with ± std error bars (none where n = 1).

    Args:
        rows: data-file rows with ``x``, ``{name}_mean`` and ``{name}_std`` (``bau.runs.statistics.Spread.columns``).
        style: ``color``, ``label``, ``marker``, ``linestyle``, ... as for ``ax.plot``.
    """
    std = [np.nan if r[f"{name}_std"] is None else r[f"{name}_std"] for r in rows]
    return ax.errorbar([r[x] for r in rows], [r[f"{name}_mean"] for r in rows], yerr=std, capsize=2.0,
                       elinewidth=0.8, **style)


def plot_differences(ax, rows: Sequence[Mapping[str, Any]], name: str, x: str = "p", **style: Any):
    """Paired differences (treatment - reference) against ``x``: the mean, bars = 95 % t-interval, a zero line.

    Args:
        rows: data-file rows with ``{name}_mean``, ``{name}_ci_low``, ``{name}_ci_high``, ``{name}_n``
            (``bau.runs.statistics.PairedDifference.columns``). Rows without a paired seed are left out; with
            one pair there is a point and no bar.
    """
    ax.axhline(0.0, color="0.35", linewidth=0.8, linestyle=":", zorder=1)
    kept = [r for r in rows if r[f"{name}_n"]]
    mean = [r[f"{name}_mean"] for r in kept]
    low = [np.nan if r[f"{name}_ci_low"] is None else m - r[f"{name}_ci_low"] for r, m in zip(kept, mean)]
    high = [np.nan if r[f"{name}_ci_high"] is None else r[f"{name}_ci_high"] - m for r, m in zip(kept, mean)]
    return ax.errorbar([r[x] for r in kept], mean, yerr=[low, high], capsize=2.5, elinewidth=1.0, marker="D",
                       markersize=4, linestyle="none", **style)


def seeds_note(rows: Sequence[Mapping[str, Any]], name: str) -> str:
    """What the bars of ``rows``' ``name`` show, from their ``{name}_n``: ``mean ± std over 3 seeds``."""
    ns = sorted({int(r[f"{name}_n"]) for r in rows if r[f"{name}_n"]})
    if not ns or ns == [1]:
        return "one seed per point (no spread to show)"
    counts = f"{ns[0]}" if len(ns) == 1 else f"{ns[0]}\u2013{ns[-1]}"
    return f"mean \u00b1 std over {counts} seeds" + ("; n = 1: no bar" if ns[0] == 1 else "")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no NaN/inf; null says "no value"
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def save_figure(fig, out_stem: str, data: Any = None, close: bool = True) -> List[str]:
    """Write ``out_stem.png`` (200 dpi), ``out_stem.pdf`` and the plotted numbers, each atomically.

    Args:
        fig: a matplotlib Figure.
        out_stem: output path without extension (folders are created).
        data: the numbers shown: a pandas DataFrame -> ``out_stem.csv``; anything else JSON-able
            (dicts, lists, numpy arrays) -> ``out_stem.json``; None -> no data file.
        close: close the figure afterwards (figure scripts make many).

    Returns:
        The paths written.
    """
    if not out_stem or out_stem.endswith(os.sep):
        raise BauError(f"figure output {out_stem!r}: expected a file path without extension, e.g. figures/fig4b")
    stem, ext = os.path.splitext(out_stem)
    if ext.lower() in (".png", ".pdf", ".csv", ".json"):
        out_stem = stem  # forgive "fig.png": the stem is what was meant
    written = []
    for ext in ("png", "pdf"):
        path = f"{out_stem}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=PNG_DPI, bbox_inches="tight")
        written.append(path)
    if data is not None:
        if hasattr(data, "to_csv"):
            path = f"{out_stem}.csv"
            with atomic_path(path) as tmp:
                data.to_csv(tmp, index=False)
        else:
            path = f"{out_stem}.json"
            with atomic_path(path) as tmp:
                with open(tmp, "w") as f:
                    json.dump(_jsonable(data), f, indent=2)
                    f.write("\n")
        written.append(path)
    if close:
        plt.close(fig)
    return written


def image_grid(images: Sequence[np.ndarray], titles: Optional[Sequence[str]] = None, nrows: int = 1,
               panel_width: float = 0.8, title_colors: Optional[Sequence[Any]] = None,
               border_colors: Optional[Sequence[Any]] = None, suptitle: Optional[str] = None):
    """A figure of images laid out row-major in ``nrows`` rows, no axes, optional titles and coloured borders.

    Args:
        images: ``[H, W, 3]`` arrays (uint8 or float in [0, 1]).
        titles: one per image (or None).
        nrows: rows; columns = ceil(len / nrows).
        panel_width: inches per image column (re-ID crops are 2:1 tall).
        title_colors, border_colors: one matplotlib colour (or None) per image.
        suptitle: optional title above the whole grid.

    Returns:
        ``(fig, axes)`` with ``axes`` a flat list.
    """
    n = len(images)
    if n == 0:
        raise BauError("image grid: no images to draw")
    set_style()
    ncols = math.ceil(n / nrows)
    h, w = images[0].shape[:2]
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_width * ncols, panel_width * h / w * nrows + 0.3 * nrows),
                             squeeze=False)
    flat = list(axes.ravel())
    for i, ax in enumerate(flat):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(images[i])
        if titles is not None and titles[i] is not None:
            color = title_colors[i] if title_colors is not None and title_colors[i] is not None else "black"
            ax.set_title(titles[i], fontsize=7, color=color)
        edge = border_colors[i] if border_colors is not None else None
        for spine in ax.spines.values():
            spine.set_visible(edge is not None)
            if edge is not None:
                spine.set_edgecolor(edge)
                spine.set_linewidth(3)
    if suptitle:
        fig.suptitle(suptitle, fontsize=8)
    # leave room for the suptitle so it never overlaps the panel titles
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 0.9 if suptitle else 1))
    return fig, flat
