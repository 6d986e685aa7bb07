"""Side by side: several models' features of the same images (``bau analyze --features a.npz b.npz``).

Feature files hold one model's features; two files of the **same images** (the same rows: domain
names, domains, pids, camids and subsets agree row by row; ``same_images``) are two models to
compare, not two domains. ``write_comparison`` writes into one folder:

- ``report.md`` / ``report.json``: one table with, per model, alignment L_align (Eq. 1), uniformity
  L_uniform (Eq. 2), -L_uniform of each domain and mAP / Rank-1 of each domain (the numbers of
  ``analysis.feature_report.geometry`` and ``retrieval`` on each file);
- ``compare_tsne.png`` / ``.pdf`` / ``.json``: one t-SNE panel per model, of the same seeded
  sample of rows, coloured by domain, every panel with the same axes limits;
- ``cmc.png`` / ``.pdf`` / ``.json``: the CMC curves (Rank-1..``max_rank``) of every model and
  domain on one plot (``bau.evaluation.metrics.evaluate_features``, Market protocol).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from bau.core.errors import BauError

LABEL_FIELDS = ("pids", "camids", "domains", "subsets")


def model_names(files: Sequence[str]) -> List[str]:
    """A short distinct name per file: its name without ``.npz`` (the path when two names clash)."""
    stems = [os.path.splitext(os.path.basename(f))[0] for f in files]
    return [s if stems.count(s) == 1 else os.path.splitext(f)[0] for s, f in zip(stems, files)]


def same_images(sets: Sequence) -> bool:
    """True when every feature set holds the same rows (same domains, labels and subsets, in order)."""
    first = sets[0]
    for fs in sets[1:]:
        if len(fs) != len(first) or list(fs.domain_names) != list(first.domain_names):
            return False
        if not all(np.array_equal(getattr(fs, k), getattr(first, k)) for k in LABEL_FIELDS):
            return False
    return True


def check_same_images(sets: Sequence, files: Sequence[str]) -> None:
    """Raise one line naming the first file whose rows differ from the first file's."""
    first = sets[0]
    for fs, f in zip(sets[1:], files[1:]):
        if not same_images([first, fs]):
            raise BauError(f"--compare: feature file {f} does not hold the same images as {files[0]} ({len(fs)} vs "
                           f"{len(first)} rows; domain names, pids, camids and subsets must agree row by row)")


def cmc_curves(fs, max_rank: int = 20) -> Dict[str, List[float]]:
    """``{domain: [Rank-1, ..., Rank-max_rank]}`` (fractions) for each domain with query and gallery rows."""
    from bau.evaluation.metrics import evaluate_features

    out = {}
    for d, name in enumerate(fs.domain_names):
        q = np.flatnonzero((fs.domains == d) & (fs.subsets == "query"))
        g = np.flatnonzero((fs.domains == d) & (fs.subsets == "gallery"))
        if len(q) == 0 or len(g) == 0:
            continue
        try:
            r = evaluate_features(fs.features[q], fs.features[g], fs.pids[q], fs.pids[g], fs.camids[q], fs.camids[g],
                                  max_rank=max_rank)
        except ValueError:  # no query has a true match in another camera
            continue
        out[str(name)] = [float(v) for v in r["cmc"]]
    return out


def comparison_numbers(sets: Sequence, names: Sequence[str], max_rank: int = 20) -> Dict[str, Any]:
    """Per model: ``{"name", "dimension", "geometry", "retrieval", "cmc"}`` (``feature_report``'s numbers)."""
    from analysis.feature_report import geometry, retrieval

    return {"models": [{"name": n, "dimension": int(fs.features.shape[1]), "geometry": geometry(fs),
                        "retrieval": retrieval(fs), "cmc": cmc_curves(fs, max_rank)} for fs, n in zip(sets, names)]}


def _fmt(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def comparison_table(numbers: Dict[str, Any], domain_names: Sequence[str]) -> Tuple[List[str], List[List[str]]]:
    """``(header, rows)`` of the side-by-side table: one row per model."""
    header = ["model", "dim", "L_align", "L_uniform"] + [f"-L_uniform {d}" for d in domain_names]
    evaluated = [d for d in domain_names if any(d in m["retrieval"]["per_domain"] for m in numbers["models"])]
    header += [f"{k} {d}" for d in evaluated for k in ("mAP", "Rank-1")]
    rows = []
    for m in numbers["models"]:
        geo, ret = m["geometry"], m["retrieval"]["per_domain"]
        row = [m["name"], str(m["dimension"]), _fmt(geo["alignment"]), _fmt(geo["uniformity"])]
        row += [_fmt(None if geo["per_domain"].get(d) is None else -geo["per_domain"][d]) for d in domain_names]
        row += ["n/a" if d not in ret else f"{100 * ret[d][k]:.1f}" for d in evaluated for k in ("mAP", "rank1")]
        rows.append(row)
    return header, rows


def markdown_comparison(numbers: Dict[str, Any], files: Sequence[str], domain_names: Sequence[str]) -> str:
    """The Markdown of ``report.md`` for a comparison."""
    header, rows = comparison_table(numbers, domain_names)
    lines = ["# Feature diagnostics: comparison", "",
             f"{len(files)} models on the same {numbers['num_images']} images: " +
             ", ".join(f"`{f}`" for f in files) + ". Features L2-normalised.", "",
             "| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "L_align (Eq. 1) and L_uniform (Eq. 2): lower is better; -L_uniform per domain: higher = more "
              "uniform. mAP and Rank-1 in %, each domain's queries against its gallery (Market-1501 protocol)."]
    if numbers.get("cmc_plot"):
        lines += ["", "## CMC", "", "![CMC curves](cmc.png)"]
    if numbers.get("tsne"):
        t = numbers["tsne"]
        lines += ["", "## t-SNE", "", "![t-SNE per model](compare_tsne.png)", "",
                  f"The same {t['points']} images (seeded sample, seed {t['seed']}) in every panel, perplexity "
                  f"{t['perplexity']:g}, coloured by domain; every panel has the same axes limits."]
    return "\n".join(lines) + "\n"


def shared_limits(embeddings: Sequence[np.ndarray], margin: float = 0.05) -> Tuple[Tuple[float, float], ...]:
    """``((xmin, xmax), (ymin, ymax))`` holding every embedding, widened by ``margin`` of the span."""
    allpts = np.concatenate(embeddings)
    lo, hi = allpts.min(axis=0), allpts.max(axis=0)
    pad = (hi - lo) * margin
    return (float(lo[0] - pad[0]), float(hi[0] + pad[0])), (float(lo[1] - pad[1]), float(hi[1] + pad[1]))


def write_comparison(sets: Sequence, files: Sequence[str], out: str, max_points: int = 2000,
                     perplexity: float = 30.0, seed: int = 0, tsne_iters: int = 750, max_rank: int = 20,
                     echo: Callable[[str], None] = lambda s: None) -> Tuple[Dict[str, Any], List[str]]:
    """Write the comparison of the feature sets ``sets`` (same images, one per model) into ``out``.

    Returns ``(numbers, paths)``: the numbers of ``report.json`` and the files written.
    """
    from matplotlib.ticker import MaxNLocator

    from analysis.embedding import plot_tsne, sample_rows, tsne
    from analysis.plotting import figure, save_figure
    from bau.core.atomic import atomic_write_json, atomic_write_text

    if max_points < 0:
        raise BauError(f"--max-points {max_points}: expected 0 (no t-SNE) or a positive number")
    check_same_images(sets, files)
    names = model_names(files)
    domain_names = list(sets[0].domain_names)
    echo(f"geometry and retrieval of {len(sets)} models")
    numbers = {"files": list(files), "num_images": len(sets[0]), "domain_names": domain_names,
               **comparison_numbers(sets, names, max_rank)}
    os.makedirs(out, exist_ok=True)
    written: List[str] = []
    curves = [(f"{m['name']} · {d}", c) for m in numbers["models"] for d, c in m["cmc"].items()]
    if curves:
        fig, axes = figure(1, 1, width=4.5, aspect=0.8)
        ax = axes[0, 0]
        for label, c in curves:
            ax.plot(np.arange(1, len(c) + 1), 100 * np.asarray(c), marker="o", markersize=2.5, label=label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("rank")
        ax.set_ylabel("matching rate (%)")
        ax.set_title("CMC")
        ax.legend(fontsize=6)
        numbers["cmc_plot"] = True
        written += save_figure(fig, os.path.join(out, "cmc"), {"curves": dict(curves)})
    if max_points and len(sets[0]) >= 4:
        rows = sample_rows(len(sets[0]), max_points, seed)
        embs = []
        for fs, n in zip(sets, names):
            echo(f"t-SNE of {len(rows)} points: {n}")
            embs.append(tsne(fs.features[rows], seed=seed, perplexity=perplexity, n_iter=tsne_iters, n_jobs=1))
        (x0, x1), (y0, y1) = shared_limits(embs)
        fig, axes = figure(len(sets), 1, width=3.3 * len(sets), aspect=1.0)
        for i, (fs, m, emb) in enumerate(zip(sets, numbers["models"], embs)):
            neg = {k: -v for k, v in m["geometry"]["per_domain"].items() if v is not None}
            plot_tsne(emb, fs.domains[rows], domain_names, uniformity=neg, ax=axes[0, i], point_size=4.0,
                      title=m["name"])
            axes[0, i].set_aspect("equal", adjustable="box")  # keep the limits: the panel's box adapts
            axes[0, i].set_xlim(x0, x1)
            axes[0, i].set_ylim(y0, y1)
        fig.tight_layout(w_pad=1.0)
        numbers["tsne"] = {"points": int(len(rows)), "perplexity": perplexity, "seed": seed, "iterations": tsne_iters,
                           "xlim": [x0, x1], "ylim": [y0, y1]}
        written += save_figure(fig, os.path.join(out, "compare_tsne"),
                               {**numbers["tsne"], "rows": rows, "embeddings": {n: e for n, e in zip(names, embs)}})
    atomic_write_json(os.path.join(out, "report.json"), numbers)
    atomic_write_text(os.path.join(out, "report.md"), markdown_comparison(numbers, files, domain_names))
    return numbers, written + [os.path.join(out, "report.json"), os.path.join(out, "report.md")]
