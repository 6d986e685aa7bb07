"""Diagnostics of any re-ID model's features: the numbers and pictures of ``bau analyze`` and the app.

The input is a ``bau.runs.features.FeatureSet``: a checkpoint's cached features, or a feature file
written by ``bau extract`` or by any other model (``bau.runs.feature_file``, docs/feature_files.md).
Every number is computed on the L2-normalised features (the unit hypersphere of Eqs. 1-2; the
retrieval distance is 2 - 2 cos, as in every re-ID evaluation):

- ``geometry``: alignment L_align (Eq. 1) over the pairs of images of one identity, where an
  identity is a (domain, pid) pair: pids are per dataset, so pid 3 of two domains are two
  people, and negative pids (distractors, junk) are no identity (``identity_labels``);
  uniformity L_uniform (Eq. 2) over all images, and per domain. Lower is better for both.
- ``retrieval``: CMC / mAP / mINP of each domain's query against its gallery (Market protocol,
  ``bau.evaluation.inference.rank_split``), for the domains whose ``subsets`` have both.
- ``domain_summary``: images, identities and subset sizes per domain.

``write_report`` writes what ``bau analyze`` promises: ``report.md`` (short, readable),
``report.json`` (every number), ``tsne.png`` / ``.pdf`` / ``.json`` (a seeded t-SNE of at most
``max_points`` images, coloured by domain with each domain's -L_uniform, and by identity).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from bau.core.errors import BauError
from bau.evaluation.metrics import METRIC_KEYS


def identity_labels(pids: np.ndarray, domains: np.ndarray) -> np.ndarray:
    """``[N]`` int64: one label per (domain, pid) with pid >= 0, numbered from 0; -1 for negative pids."""
    pids, domains = np.asarray(pids).reshape(-1), np.asarray(domains).reshape(-1)
    out = np.full(len(pids), -1, dtype=np.int64)
    keep = pids >= 0
    if keep.any():
        _, inverse = np.unique(np.stack([domains[keep], pids[keep]], axis=1), axis=0, return_inverse=True)
        out[keep] = inverse.reshape(-1)
    return out


def geometry(fs) -> Dict[str, Any]:
    """Alignment, uniformity and per-domain uniformity of a feature set.

    Returns:
        ``{"alignment": L_align or None, "uniformity": L_uniform, "per_domain": {domain name: L_uniform
        or None}, "num_images", "num_identities", "note"}``; alignment is None (and ``note`` says why)
        when no identity has two images; a domain with one image has no uniformity (None).
    """
    from bau.evaluation.geometry import alignment, uniformity, uniformity_by_group

    ids = identity_labels(fs.pids, fs.domains)
    note = ""
    try:
        align: Optional[float] = alignment(fs.features, ids, normalize=True)
    except BauError as e:
        align, note = None, str(e)
    per_domain = uniformity_by_group(fs.features, fs.domains, names=fs.domain_names, normalize=True)
    return {"alignment": align, "uniformity": uniformity(fs.features, normalize=True),
            "per_domain": {str(k): (None if np.isnan(v) else float(v)) for k, v in per_domain.items()},
            "num_images": len(fs), "num_identities": int(len(np.unique(ids[ids >= 0]))), "note": note}


def domain_summary(fs) -> List[Dict[str, Any]]:
    """Per domain: ``{"domain", "images", "identities", "train", "query", "gallery"}`` (pids >= 0 are identities)."""
    out = []
    for d, name in enumerate(fs.domain_names):
        rows = fs.domains == d
        pids = fs.pids[rows]
        out.append({"domain": str(name), "images": int(rows.sum()), "identities": int(len(np.unique(pids[pids >= 0]))),
                    **{s: int((fs.subsets[rows] == s).sum()) for s in ("train", "query", "gallery")}})
    return out


def retrieval(fs) -> Dict[str, Dict[str, Any]]:
    """CMC / mAP / mINP of each domain's query against its gallery (fractions in [0, 1]).

    Returns:
        ``{"per_domain": {name: {mAP, rank1, rank5, rank10, mINP, num_query, num_gallery}},
        "skipped": {name: why}}``: a domain without query or gallery images, or whose queries have no
        true match in another camera, is skipped with the reason.
    """
    from bau.evaluation.inference import rank_split

    per_domain, skipped = {}, {}
    items = list(zip(fs.paths, fs.pids.tolist(), fs.camids.tolist()))  # (path, pid, camid) as rank_split takes them
    for d, name in enumerate(fs.domain_names):
        q = np.flatnonzero((fs.domains == d) & (fs.subsets == "query"))
        g = np.flatnonzero((fs.domains == d) & (fs.subsets == "gallery"))
        if len(q) == 0 or len(g) == 0:
            skipped[str(name)] = "no query and gallery images (subsets)"
            continue
        try:
            per_domain[str(name)] = rank_split(fs.features[q], fs.features[g], [items[i] for i in q],
                                               [items[i] for i in g])
        except ValueError as e:  # no query has a true match in another camera
            skipped[str(name)] = str(e).split(": ", 1)[-1]
    return {"per_domain": per_domain, "skipped": skipped}


def _fmt(value: Optional[float], digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown_report(numbers: Dict[str, Any]) -> str:
    """The short Markdown summary of ``report.json``'s numbers."""
    geo = numbers["geometry"]
    lines = ["# Feature diagnostics", ""]
    lines += [f"Files: {', '.join(f'`{f}`' for f in numbers['files'])}. {geo['num_images']} images, "
              f"{numbers['dimension']}-d features (L2-normalised), {geo['num_identities']} identities "
              f"(a pid of one domain; negative pids are distractors, no identity).", ""]
    lines += ["## Alignment and uniformity", "",
              f"- alignment L_align (Eq. 1; same-identity pairs within a domain; lower = tighter identities): "
              f"**{_fmt(geo['alignment'])}**" + (f" ({geo['note']})" if geo["note"] else ""),
              f"- uniformity L_uniform (Eq. 2; all images; lower = more uniform on the sphere): "
              f"**{_fmt(geo['uniformity'])}**", "",
              "| domain | images | identities | train | query | gallery | -L_uniform (higher = more uniform) |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in numbers["domains"]:
        u = geo["per_domain"].get(row["domain"])
        lines.append(f"| {row['domain']} | {row['images']} | {row['identities']} | {row['train']} | {row['query']} | "
                     f"{row['gallery']} | {_fmt(None if u is None else -u)} |")
    ret = numbers["retrieval"]
    lines += ["", "## Retrieval (query vs gallery per domain)", ""]
    if ret["per_domain"]:
        lines += ["| domain | queries | gallery | mAP | Rank-1 | Rank-5 | Rank-10 | mINP |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, m in ret["per_domain"].items():
            lines.append(f"| {name} | {m['num_query']} | {m['num_gallery']} | " +
                         " | ".join(f"{100 * m[k]:.1f}" for k in METRIC_KEYS) + " |")
        lines.append("")
        lines.append("In %; a gallery image of the query's identity from the query's camera is not counted, as in "
                     "the Market-1501 protocol.")
    for name, why in ret["skipped"].items():
        lines.append(f"- {name}: not evaluated ({why})")
    tsne = numbers.get("tsne")
    if tsne:
        lines += ["", "## t-SNE", "",
                  "![t-SNE by domain and by identity](tsne.png)", "",
                  f"{tsne['points']} of {geo['num_images']} images (seeded sample, seed {tsne['seed']}), perplexity "
                  f"{tsne['perplexity']:g}; left: by domain (legend: -L_uniform), right: by identity."]
    return "\n".join(lines) + "\n"


def write_report(fs, files: Sequence[str], out: str, max_points: int = 2000, perplexity: float = 30.0,
                 seed: int = 0, tsne_iters: int = 750, echo: Callable[[str], None] = lambda s: None
                 ) -> Tuple[Dict[str, Any], List[str]]:
    """Write ``report.md``, ``report.json`` and ``tsne.{png,pdf,json}`` for feature set ``fs`` into ``out``.

    Args:
        fs: the features (``bau.runs.features.read_feature_file`` / ``combine_feature_sets``).
        files: the feature files it was read from (for the report).
        out: output folder (created).
        max_points: at most this many images in the t-SNE (``analysis.embedding.sample_rows``); 0: no t-SNE.
        perplexity, seed, tsne_iters: of the t-SNE (``analysis.embedding.tsne``); the seed also draws the sample.
        echo: progress messages.

    Returns:
        ``(numbers, paths)``: the numbers of ``report.json`` and the paths written.
    """
    from analysis.embedding import plot_tsne, plot_tsne_identities, sample_rows, tsne
    from analysis.plotting import figure, save_figure
    from bau.core.atomic import atomic_write_json, atomic_write_text

    if max_points < 0:
        raise BauError(f"--max-points {max_points}: expected 0 (no t-SNE) or a positive number")
    echo(f"geometry of {len(fs)} images")
    geo = geometry(fs)
    echo("retrieval")
    numbers: Dict[str, Any] = {"files": list(files), "num_images": len(fs), "dimension": int(fs.features.shape[1]),
                               "domains": domain_summary(fs), "geometry": geo, "retrieval": retrieval(fs)}
    os.makedirs(out, exist_ok=True)
    written = []
    if max_points and len(fs) >= 4:
        rows = sample_rows(len(fs), max_points, seed)
        echo(f"t-SNE of {len(rows)} points")
        emb = tsne(fs.features[rows], seed=seed, perplexity=perplexity, n_iter=tsne_iters, n_jobs=1)
        ids = identity_labels(fs.pids, fs.domains)[rows]
        fig, axes = figure(2, 1, width=6.6, aspect=1.0)
        neg_uniform = {k: -v for k, v in geo["per_domain"].items() if v is not None}
        plot_tsne(emb, fs.domains[rows], fs.domain_names, uniformity=neg_uniform, ax=axes[0, 0], point_size=4.0,
                  title="by domain (-L_uniform)")
        plot_tsne_identities(emb, ids, ax=axes[0, 1], point_size=4.0,
                             title=f"by identity ({len(np.unique(ids[ids >= 0]))}; colours repeat)")
        fig.tight_layout(w_pad=1.0)
        numbers["tsne"] = {"points": int(len(rows)), "max_points": max_points, "perplexity": perplexity,
                           "seed": seed, "iterations": tsne_iters}
        written += save_figure(fig, os.path.join(out, "tsne"),
                               {**numbers["tsne"], "rows": rows, "embedding": emb, "domains": fs.domains[rows],
                                "identities": ids, "domain_names": fs.domain_names})
    elif max_points:
        echo(f"note: {len(fs)} images; the t-SNE needs at least 4")
    atomic_write_json(os.path.join(out, "report.json"), numbers)
    atomic_write_text(os.path.join(out, "report.md"), markdown_report(numbers))
    return numbers, written + [os.path.join(out, "report.json"), os.path.join(out, "report.md")]
