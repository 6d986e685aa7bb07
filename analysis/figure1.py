"""Figure 1: the polarized effect of data augmentation (Sec. 3.1).

    python -m analysis.figure1 --sweep runs/demo --out figures/

Panels, all against the augmentation probability p:

(a) mAP (%) on the target of the baseline trained on the target's own training split
    (in-distribution, ID) and of the baseline trained on the source domains (OOD);
(b) alignment L_align (Eq. 1) and uniformity L_uniform (Eq. 2) of the OOD baseline's features
    on the target's query + gallery images (positives = same identity; lower is better for both);
(c) uniformity -L_uniform (higher = more uniform) of the OOD baseline's features on the source
    domains' training images (pooled; at most --max-per-domain per domain) and on the target;
(d) when the sweep has BAU runs: the paired difference BAU - OOD baseline in target mAP per p
    (per seed, then the mean and its 95 % t-interval; ``bau.runs.statistics.paired_difference``).

A second figure, ``figure1_training``, shows the same quantities OVER TRAINING for the lowest and
the highest p, by epoch, from the evaluations every run logged (``log.jsonl``; ``eval.geometry``): (e) target
mAP of the ID and OOD baselines (their learning curves: did they reach a plateau?), (f) L_align and
L_uniform of the OOD baseline's target features, (g) -L_uniform of its fixed source sample and of
the target. Each curve is the mean over seeds at each evaluated step, with a ± std band.

A cell whose runs were still improving at the end (the last 20 % of training raised mAP by more
than the seed spread: ``analysis.sweep_data.cell_convergence``) is marked in the data
(``mAP_still_improving``) and named in the caption above the panels.

Every point is the mean over the seeds of its runs (sweep label ``seed``) with ± std bars; the
geometry of (b) and (c) is computed per run, then aggregated the same way. The line above the
panels says over how many seeds.

Runs are picked by their labels in the sweep's summary.json:

    method=baseline     the OOD baseline at each p            (required)
    method=baseline_id  the ID baseline at each p             (optional: without it (a) is OOD only)
    method=bau          BAU at each p                         (optional: panel (d))
    aug_prob            p
    seed                the training seed                     (optional; runs differing only in it are aggregated)

Writes ``<out>/figure1.png``, ``.pdf`` and ``.json``: per plotted point the mean, std, n and per-seed
values with the runs they come from (``performance``, ``geometry``, ``difference``), and the
geometry of every run (``geometry_runs``). Features are extracted once per run and cached next to
its checkpoint (``bau.runs.features.feature_set``).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from analysis.sweep_data import (
    cell_numbers,
    cells_by_p,
    choose_target,
    convergence_columns,
    dataset_label,
    echo_for,
    metric_percent,
    p_of,
    paired_by_p,
    recorded,
    run_cli,
    run_features,
    select_runs,
    sweep_arguments,
    target_geometry,
    unconverged_note,
)
from bau.runs.folder import Run, sweep_runs
from bau.runs.statistics import seed_of

# Colours of the two quantities of panel (b): neither is a method, a domain or ID/OOD, so not
# the blue/orange those have in panels (a) and (c): near-black and the colour-blind palette's purple.
ALIGN_COLOR = (0.15, 0.15, 0.15)
UNIFORM_COLOR = (0.8, 0.471, 0.737)


def _run_geometry(r: Run, target: str, args: argparse.Namespace, echo) -> Dict[str, Any]:
    """Panels (b) and (c) of one run: its target geometry and source/target uniformity."""
    from bau.evaluation.geometry import uniformity

    tf = run_features(r, [target], "test", root=args.data_root, device=args.device, echo=echo)
    geo = target_geometry(tf)
    sources = list(r.config().data.sources)
    sf = run_features(r, sources, "train", root=args.data_root, device=args.device,
                      max_per_domain=args.max_per_domain, seed=args.seed, echo=echo)
    per_source = {}
    for d, name in enumerate(sources):
        feats = sf.features[sf.domains == d]
        per_source[name] = -uniformity(feats, normalize=True) if len(feats) >= 2 else float("nan")
    return {"p": p_of(r), "seed": seed_of(r), "run": r.name, "alignment": geo["alignment"],
            "uniformity": geo["uniformity"], "neg_uniformity_target": -geo["uniformity"],
            "neg_uniformity_source": -uniformity(sf.features, normalize=True),
            "neg_uniformity_per_source": per_source, "num_target_images": len(tf), "num_source_images": len(sf)}


GEOMETRY_KEYS = ("alignment", "uniformity", "neg_uniformity_target", "neg_uniformity_source")


def compute(args: argparse.Namespace) -> Dict[str, Any]:
    """The numbers of Figure 1: per point mean, std, n over seeds, with the runs they come from."""
    echo = echo_for(args)
    runs = sweep_runs(args.sweep)
    pick = dict(skip_unfinished=args.skip_unfinished)
    ood = select_runs(runs, args.sweep, method="baseline", **pick)
    ident = select_runs(runs, args.sweep, required=False, method="baseline_id", **pick)
    bau = select_runs(runs, args.sweep, required=False, method="bau", **pick)
    target = choose_target(ood, args.target)
    for extra in (ident, bau):
        if extra:
            choose_target(extra, target)
    if not ident:
        echo("note: no method=baseline_id runs in the sweep; panel (a) shows the OOD baseline only")
    ood_cells = cells_by_p(ood, "figure 1: method=baseline")

    mAP, rank1 = metric_percent(target, "mAP"), metric_percent(target, "rank1")
    performance: List[Dict[str, Any]] = []
    for setting, method, chosen in (("ID", "baseline_id", ident), ("OOD", "baseline", ood)):
        for p, cell in cells_by_p(chosen, f"figure 1: method={method}"):
            performance.append({"setting": setting, "p": p, **cell_numbers(cell, {"mAP": mAP, "rank1": rank1}),
                                **convergence_columns(cell, target)})
    per_run = {r.name: _run_geometry(r, target, args, echo) for _, cell in ood_cells for r in cell.values()}
    geometry = [{"p": p, **cell_numbers(cell, recorded(per_run, GEOMETRY_KEYS))}
                for p, cell in ood_cells]
    difference = paired_by_p(ood_cells, cells_by_p(bau, "figure 1: method=bau"), mAP, "mAP_difference", echo)
    training = []
    for setting, method, chosen in (("ID", "baseline_id", ident), ("OOD", "baseline", ood)):
        cells = cells_by_p(chosen, f"figure 1: method={method}")
        for p, cell in cells[:1] + cells[1:][-1:]:  # the lowest and the highest p
            training.append({"setting": setting, "p": p, "runs": [r.name for r in cell.values()],
                             "curves": training_curves(cell, target)})
    return {"sweep": args.sweep, "target": target, "sources": list(ood[0].config().data.sources),
            "performance": performance, "geometry": geometry, "geometry_runs": list(per_run.values()),
            "difference": difference, "difference_of": "bau - baseline (OOD), target mAP in %",
            "training": training}


TRAINING_KEYS = ("mAP", "L_align", "L_uniform", "L_uniform_source")


def training_curves(cell: Dict[int, Run], target: str) -> Dict[str, List[Dict[str, Any]]]:
    """Per logged quantity (``TRAINING_KEYS``), ``[{"epoch", "mean", "std", "n"}, ...]`` over the cell's
    seeds at every epoch all of them evaluated (``Run.curve`` by epoch: seeds share epochs, not steps)."""
    from bau.runs.statistics import spread

    out: Dict[str, List[Dict[str, Any]]] = {}
    for key in TRAINING_KEYS:
        curves = {s: dict(r.curve(target, key, x="epoch")) for s, r in cell.items()}
        epochs = sorted(set.intersection(*(set(c) for c in curves.values()))) if curves else []
        points = []
        for epoch in epochs:
            sp = spread({s: c[epoch] for s, c in curves.items()})
            points.append({"epoch": epoch, "mean": sp.mean, "std": sp.std, "n": sp.n})
        out[key] = points
    return out


def plot(data: Dict[str, Any]):
    """Panels (a) (b) (c) side by side, and (d) when there are paired differences; returns the figure."""
    from matplotlib.ticker import MaxNLocator

    from analysis.plotting import figure, method_color, plot_differences, plot_spreads, seeds_note

    diffs = [d for d in data["difference"] if d["mAP_difference_n"]]
    ncols = 4 if diffs else 3
    fig, axes = figure(ncols, 1, width=2.53 * ncols, aspect=1.3)
    ax_a, ax_b, ax_c = axes[0][:3]
    target = dataset_label(data["target"])
    sources = "+".join(dataset_label(s) for s in data["sources"])
    ps = sorted({row["p"] for row in data["performance"]} | {row["p"] for row in data["geometry"]})
    below = dict(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)

    for setting, color_key, label in (("ID", "in-distribution", f"ID: {target} \u2192 {target}"),
                                      ("OOD", "out-of-distribution", f"OOD: {sources} \u2192 {target}")):
        rows = [r for r in data["performance"] if r["setting"] == setting]
        if rows:
            plot_spreads(ax_a, rows, "mAP", marker="o", color=method_color(color_key), label=label)
    ax_a.set_ylabel("mAP (%)")
    ax_a.set_title(f"(a) mAP on {target}")
    ax_a.legend(**below)

    geo = data["geometry"]
    la = plot_spreads(ax_b, geo, "alignment", marker="o", color=ALIGN_COLOR,
                      label=r"alignment $\mathcal{L}_{\mathrm{align}}$ (lower: more aligned)")
    ax_b.set_ylabel(r"alignment $\mathcal{L}_{\mathrm{align}}$", color=ALIGN_COLOR)
    ax_b.tick_params(axis="y", colors=ALIGN_COLOR)
    ax_u = ax_b.twinx()
    ax_u.grid(False)
    lu = plot_spreads(ax_u, geo, "uniformity", marker="s", color=UNIFORM_COLOR,
                      label=r"uniformity $\mathcal{L}_{\mathrm{uniform}}$ (lower: more uniform)")
    ax_u.set_ylabel(r"uniformity $\mathcal{L}_{\mathrm{uniform}}$", color=UNIFORM_COLOR)
    ax_u.tick_params(axis="y", labelsize=7, colors=UNIFORM_COLOR)
    ax_u.yaxis.set_major_locator(MaxNLocator(5))
    ax_b.set_title(f"(b) OOD features on {target}")
    ax_b.legend(handles=[la, lu], **below)

    plot_spreads(ax_c, geo, "neg_uniformity_source", marker="o", color=method_color("source"),
                 label=f"source: {sources} (train)")
    plot_spreads(ax_c, geo, "neg_uniformity_target", marker="s", color=method_color("target"),
                 label=f"target: {target} (query + gallery)")
    ax_c.set_ylabel(r"uniformity $-\mathcal{L}_{\mathrm{uniform}}$")
    ax_c.set_title("(c) uniformity, OOD model")
    ax_c.legend(title="higher: more uniform", title_fontsize=7, **below)
    note = seeds_note(data["performance"], "mAP")
    late = unconverged_note(data["performance"], lambda r: f"{r['setting']} p={r['p']:g}")
    if late:
        note += "\n" + late
    if diffs:
        ax_d = axes[0][3]
        plot_differences(ax_d, diffs, "mAP_difference", color=method_color("BAU"),
                         label="BAU \u2212 baseline, paired by seed")
        ax_d.set_ylabel("\u0394 mAP (percentage points)")
        ax_d.set_title(f"(d) BAU \u2212 OOD baseline on {target}")
        ax_d.legend(title="mean, 95% t-interval", title_fontsize=7, **below)
        note += "; (d) mean paired difference with its 95% t-interval"
    for ax in axes[0]:
        ax.set_xticks(ps)
        ax.set_xlabel("augmentation probability $p$")
    fig.suptitle(note, fontsize=7, y=1.0, va="bottom")
    # room under each panel for its legend; savefig(bbox_inches="tight") trims the rest
    fig.subplots_adjust(bottom=0.3, wspace=1.25)
    return fig


def plot_training(data: Dict[str, Any]):
    """Panels (e) (f) (g): mAP, the OOD target geometry and source/target uniformity over training, for
    the lowest and highest p (solid and dashed); None when no run logged its evaluations."""
    from analysis.plotting import figure, method_color

    rows = [r for r in data.get("training", []) if r["curves"].get("mAP")]
    if not rows:
        return None
    fig, axes = figure(3, 1, width=7.6, aspect=1.0)
    ax_e, ax_f, ax_g = axes[0]
    ps = sorted({r["p"] for r in rows})
    dash = {p: ("-" if p == ps[0] else "--") for p in ps}

    def line(ax, points, scale, color, label, style):
        if not points:
            return
        x = np.array([pt["epoch"] for pt in points], dtype=float)
        y = scale * np.array([pt["mean"] for pt in points], dtype=float)
        sd = np.array([np.nan if pt["std"] is None else abs(scale) * pt["std"] for pt in points], dtype=float)
        ax.plot(x, y, linestyle=style, color=color, label=label, linewidth=1.2)
        if np.isfinite(sd).any():
            ax.fill_between(x, y - sd, y + sd, color=color, alpha=0.15, linewidth=0)

    for r in rows:
        c, style = r["curves"], dash[r["p"]]
        color = method_color("in-distribution" if r["setting"] == "ID" else "out-of-distribution")
        line(ax_e, c["mAP"], 100.0, color, f"{r['setting']} p={r['p']:g}", style)
        if r["setting"] == "OOD":
            line(ax_f, c.get("L_align", []), 1.0, ALIGN_COLOR, f"$\\mathcal{{L}}_{{align}}$ p={r['p']:g}", style)
            line(ax_f, c.get("L_uniform", []), 1.0, UNIFORM_COLOR, f"$\\mathcal{{L}}_{{uniform}}$ p={r['p']:g}", style)
            line(ax_g, c.get("L_uniform_source", []), -1.0, method_color("source"), f"source p={r['p']:g}", style)
            line(ax_g, c.get("L_uniform", []), -1.0, method_color("target"), f"target p={r['p']:g}", style)
    target = dataset_label(data["target"])
    ax_e.set_title(f"(e) mAP on {target} over training")
    ax_e.set_ylabel("mAP (%)")
    ax_f.set_title(f"(f) OOD geometry on {target}")
    ax_f.set_ylabel("lower: more aligned / uniform")
    ax_g.set_title("(g) uniformity, OOD model")
    ax_g.set_ylabel(r"$-\mathcal{L}_{\mathrm{uniform}}$")
    for ax in axes[0]:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=6, frameon=False)
    fig.suptitle("mean over seeds at each evaluation, \u00b1 std band; solid: lowest p, dashed: highest p",
                 fontsize=7, y=1.0, va="bottom")
    fig.subplots_adjust(wspace=0.45)
    return fig


def _body(args: argparse.Namespace) -> None:
    import os

    from analysis.plotting import save_figure

    data = compute(args)
    fig = plot(data)
    written = save_figure(fig, os.path.join(args.out, args.name), data)
    over_training = plot_training(data)
    if over_training is not None:
        written += save_figure(over_training, os.path.join(args.out, f"{args.name}_training"))
    echo_for(args)("wrote " + ", ".join(written))


def build_parser() -> argparse.ArgumentParser:
    parser = sweep_arguments(__doc__, "figure1")
    parser.add_argument("--max-per-domain", type=int, default=2000,
                        help="source training images per domain for panel (c) (seeded sample; default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of that sample (default 0)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_cli(_body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
