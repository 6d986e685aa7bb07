"""Figure 4: alignment and uniformity of the baseline and BAU (Sec. 4.4).

    python -m analysis.figure4 --sweep runs/demo --out figures/

(a) ``figure4a``: alignment L_align (Eq. 1) and uniformity L_uniform (Eq. 2) of the features of
    the target's query + gallery images (positives = same identity) against the augmentation
    probability p, baseline vs BAU (lower is better for both). Computed per run, then each
    point is the mean over the runs' seeds (sweep label ``seed``) with ± std bars.
(b) ``figure4b``: t-SNE of the features of the source domains' training images and of the
    target's test images (at most --max-per-domain per domain, seeded), for BAU without and with
    L_domain at p = --p (default 0.5), the runs of ONE training seed (--run-seed, default the
    smallest; the panel titles say which). Each legend entry shows the domain's uniformity
    -L_uniform in parentheses (higher: more uniform), computed on the plotted features.

Runs are picked by their labels in the sweep's summary.json:

    method=baseline      at each p                  (a, required)
    method=bau           at each p                  (a, required; b: the run at --p, required)
    method=bau_nodomain  at --p                     (b, optional: without it (b) shows BAU only)
    aug_prob             p
    seed                 the training seed  (optional; runs differing only in it are aggregated)

Writes ``<out>/figure4a.{png,pdf,json}`` and ``<out>/figure4b.{png,pdf,json}`` (the JSON holds the
plotted numbers: per point the mean, std, n and per-seed values of alignment, uniformity and mAP
(``rows``) and the geometry of every run (``geometry_runs``); per panel the 2-D embedding,
domains and uniformities).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from analysis.sweep_data import (
    METHOD_NAMES,
    add_run_seed_option,
    cell_numbers,
    cells_by_p,
    choose_target,
    dataset_label,
    echo_for,
    line_style,
    method_of,
    one_run,
    p_of,
    recorded,
    run_cli,
    run_features,
    runs_of_seed,
    select_runs,
    sweep_arguments,
    target_geometry,
)
from bau.runs.folder import Run, sweep_runs
from bau.runs.statistics import seed_of

GEOMETRY_METHODS = ("baseline", "bau")


def compute_geometry(args: argparse.Namespace, runs: List[Run]) -> Dict[str, Any]:
    """Panel (a): ``{"target", "rows": [{method, p, seeds, runs, alignment_mean/std/n, ..., mAP_...}],
    "geometry_runs": [{method, p, seed, run, alignment, uniformity, mAP}]}``."""
    echo = echo_for(args)
    chosen = {m: select_runs(runs, args.sweep, skip_unfinished=args.skip_unfinished, method=m)
              for m in GEOMETRY_METHODS}
    target = choose_target(chosen["baseline"] + chosen["bau"], args.target)
    rows, per_run = [], {}
    for method in GEOMETRY_METHODS:
        for p, cell in cells_by_p(chosen[method], f"figure 4a: method={method}"):
            for seed, r in cell.items():
                geo = target_geometry(run_features(r, [target], "test", root=args.data_root, device=args.device,
                                                   echo=echo))
                per_run[r.name] = {"method": method, "p": p, "seed": seed, "run": r.name,
                                   "alignment": geo["alignment"], "uniformity": geo["uniformity"],
                                   "mAP": 100 * r.metric(target, "mAP")}
            rows.append({"method": method, "p": p,
                         **cell_numbers(cell, recorded(per_run, ("alignment", "uniformity", "mAP")))})
    return {"sweep": args.sweep, "target": target, "rows": rows, "geometry_runs": list(per_run.values())}


def tsne_panel(run: Run, target: str, args: argparse.Namespace) -> Dict[str, Any]:
    """Training features of ``run``'s sources + the target's test features, their t-SNE and per-domain uniformity."""
    from analysis.embedding import tsne
    from bau.evaluation.geometry import uniformity_by_group

    echo = echo_for(args)
    sources = list(run.config().data.sources)
    kw = dict(root=args.data_root, device=args.device, max_per_domain=args.max_per_domain, seed=args.seed, echo=echo)
    src = run_features(run, sources, "train", **kw)
    tgt = run_features(run, [target], "test", **kw)
    feats = np.concatenate([src.features, tgt.features])
    domains = np.concatenate([src.domains, np.full(len(tgt), len(sources))])
    names = [dataset_label(n) for n in sources] + [dataset_label(target) + " (target)"]
    neg_uniform = {k: -v for k, v in uniformity_by_group(feats, domains, names=names, normalize=True).items()}
    echo(f"t-SNE of {run.name} ({len(feats)} points)")
    emb = tsne(feats, seed=args.seed, perplexity=args.perplexity, n_iter=args.tsne_iters, n_jobs=1)
    return {"run": run.name, "method": method_of(run), "p": p_of(run), "seed": seed_of(run), "domain_names": names,
            "neg_uniformity": neg_uniform, "domains": domains, "embedding": emb}


def plot_geometry(data: Dict[str, Any]):
    from analysis.plotting import figure, method_color, plot_spreads, seeds_note

    fig, axes = figure(2, 1, width=5.0, aspect=0.95)
    ax_a, ax_u = axes[0]
    ps = sorted({row["p"] for row in data["rows"]})
    for method in GEOMETRY_METHODS:
        rows = [r for r in data["rows"] if r["method"] == method]
        label = METHOD_NAMES[method]
        for ax, key in ((ax_a, "alignment"), (ax_u, "uniformity")):
            plot_spreads(ax, rows, key, color=method_color(label), label=label, **line_style(method))
    target = dataset_label(data["target"])
    ax_a.set_ylabel(r"alignment $\mathcal{L}_{\mathrm{align}}$ (lower: more aligned)")
    ax_u.set_ylabel(r"uniformity $\mathcal{L}_{\mathrm{uniform}}$ (lower: more uniform)")
    ax_a.set_title(f"(a) alignment on {target}")
    ax_u.set_title(f"(a) uniformity on {target}")
    for ax in (ax_a, ax_u):
        ax.set_xticks(ps)
        ax.set_xlabel("augmentation probability $p$")
        ax.legend(loc="best")
    fig.suptitle(seeds_note(data["rows"], "alignment"), fontsize=7)
    fig.tight_layout(w_pad=2.0, rect=(0, 0, 1, 0.94))  # room for the note above
    return fig


def plot_tsne_panels(panels: List[Dict[str, Any]]):
    from analysis.embedding import plot_tsne
    from analysis.plotting import figure

    fig, axes = figure(len(panels), 1, width=3.0 * len(panels), aspect=1.0)
    for ax, panel in zip(axes[0], panels):
        title = ("w/o" if panel["method"] == "bau_nodomain" else "w/") + r" $\mathcal{L}_{\mathrm{domain}}$"
        title += f"  (p = {panel['p']:g}, seed {panel['seed']})"
        plot_tsne(panel["embedding"], panel["domains"], panel["domain_names"], uniformity=panel["neg_uniformity"],
                  ax=ax, point_size=4.0, title=title)
        # plot_tsne's legend (domain (uniformity)), moved under the panel so it never hides points
        legend = ax.get_legend()
        handles, labels = legend.legend_handles, [t.get_text() for t in legend.get_texts()]
        legend.remove()
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, frameon=False,
                  title=r"domain ($-\mathcal{L}_{\mathrm{uniform}}$: higher = more uniform)", title_fontsize=7,
                  handletextpad=0.2)
    fig.tight_layout(w_pad=1.0)
    return fig


def _body(args: argparse.Namespace) -> None:
    from analysis.plotting import save_figure

    echo = echo_for(args)
    runs = sweep_runs(args.sweep)
    # every run either panel needs is looked up before anything is computed or written
    shown, run_seed = runs_of_seed(runs, args.run_seed, args.sweep)
    with_domain = one_run(shown, args.sweep, skip_unfinished=args.skip_unfinished, method="bau", aug_prob=args.p)
    without = one_run(shown, args.sweep, required=False, skip_unfinished=args.skip_unfinished,
                      method="bau_nodomain", aug_prob=args.p)
    if without is None:
        echo(f"note: no method=bau_nodomain run at p={args.p:g}; panel (b) shows BAU only")
    geometry = compute_geometry(args, runs)
    written = save_figure(plot_geometry(geometry), os.path.join(args.out, f"{args.name}a"), geometry)
    target = geometry["target"]
    # BAU first: its model is still loaded from panel (a); drawn without -> with, as in the paper
    panels = [tsne_panel(r, target, args) for r in (with_domain, without) if r is not None][::-1]
    written += save_figure(plot_tsne_panels(panels), os.path.join(args.out, f"{args.name}b"),
                           {"sweep": args.sweep, "target": target, "run_seed": run_seed, "panels": panels})
    echo("wrote " + ", ".join(written))


def build_parser() -> argparse.ArgumentParser:
    from analysis.embedding import add_tsne_options

    parser = sweep_arguments(__doc__, "figure4")
    parser.add_argument("--p", type=float, default=0.5, help="p of the runs in the t-SNE panels (default 0.5)")
    parser.add_argument("--max-per-domain", type=int, default=2000,
                        help="images per domain in the t-SNE (seeded sample; default 2000)")
    add_tsne_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and the t-SNE (default 0)")
    add_run_seed_option(parser, "the t-SNE panels (b)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_cli(_body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
