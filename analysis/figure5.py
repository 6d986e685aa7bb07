"""Figure 5: the weighting strategy of the alignment loss (Eqs. 4-5, Sec. 4.4).

    python -m analysis.figure5 --sweep runs/demo --out figures/

(a) ``figure5a``: mAP (%) on the target against the augmentation probability p, BAU with and
    without the weighting (Eq. 5 vs Eq. 3): the mean over the runs' seeds (sweep label ``seed``)
    with ± std bars; next to it the paired difference BAU - BAU w/o weighting per p (per seed,
    then the mean and its 95 % t-interval; ``bau.runs.statistics.paired_difference``).
(b) ``figure5b``: the weight scores w (Eq. 4) of one P x K batch of training images drawn as in
    training (seeded by --seed): original views on top, their augmented views below, with w of
    each augmented view with its own original, ordered from low to high w (--columns of them,
    picked evenly). From the BAU checkpoint at p = --p (default 0.5) of ONE training seed
    (--run-seed, default the smallest; the title says which).

Runs are picked by their labels in the sweep's summary.json:

    method=bau           at each p (a), and at --p (b)      (required)
    method=bau_noweight  at each p (a)                      (required)
    aug_prob             p
    seed                 the training seed  (optional; runs differing only in it are aggregated)

Writes ``<out>/figure5a.{png,pdf,json}`` (per point mAP and rank-1 mean, std, n and per-seed values
with their runs (``rows``); the paired differences (``difference``)) and
``<out>/figure5b.{png,pdf,json}`` (every pair of the batch: image, identity, w; which were shown).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, Optional, Sequence

from analysis.sweep_data import (
    METHOD_NAMES,
    add_run_seed_option,
    cell_numbers,
    cells_by_p,
    choose_target,
    convergence_columns,
    dataset_label,
    echo_for,
    line_style,
    metric_percent,
    one_run,
    p_of,
    paired_by_p,
    run_cli,
    runs_of_seed,
    select_runs,
    sweep_arguments,
    unconverged_note,
)
from bau.runs.folder import sweep_runs
from bau.runs.statistics import seed_of

WEIGHTING_METHODS = ("bau", "bau_noweight")


def compute_performance(args: argparse.Namespace, runs) -> Dict[str, Any]:
    echo = echo_for(args)
    chosen = {m: select_runs(runs, args.sweep, skip_unfinished=args.skip_unfinished, method=m)
              for m in WEIGHTING_METHODS}
    target = choose_target(chosen["bau"] + chosen["bau_noweight"], args.target)

    mAP, rank1 = metric_percent(target, "mAP"), metric_percent(target, "rank1")
    cells = {m: cells_by_p(chosen[m], f"figure 5a: method={m}") for m in WEIGHTING_METHODS}
    rows = [{"method": m, "p": p, **cell_numbers(cell, {"mAP": mAP, "rank1": rank1}),
             **convergence_columns(cell, target)}
            for m in WEIGHTING_METHODS for p, cell in cells[m]]
    difference = paired_by_p(cells["bau_noweight"], cells["bau"], mAP, "mAP_difference", echo)
    return {"sweep": args.sweep, "target": target, "rows": rows, "difference": difference,
            "difference_of": "bau - bau_noweight, target mAP in %"}


def plot_performance(data: Dict[str, Any]):
    from analysis.plotting import COLUMN_WIDTH, figure, method_color, plot_differences, plot_spreads, seeds_note

    diffs = [d for d in data["difference"] if d["mAP_difference_n"]]
    fig, axes = figure(2 if diffs else 1, 1, width=COLUMN_WIDTH * (2.0 if diffs else 1.1), aspect=0.85)
    ax = axes[0, 0]
    ps = sorted({r["p"] for r in data["rows"]})
    for method in WEIGHTING_METHODS:
        rows = [r for r in data["rows"] if r["method"] == method]
        label = METHOD_NAMES[method]
        plot_spreads(ax, rows, "mAP", color=method_color(label), label=label, **line_style(method))
    target = dataset_label(data["target"])
    ax.set_ylabel(f"mAP on {target} (%)")
    ax.set_title("(a) with vs. without weighting")
    ax.legend(loc="best")
    note = seeds_note(data["rows"], "mAP")
    late = unconverged_note(data["rows"], lambda r: f"{METHOD_NAMES[r['method']]} p={r['p']:g}")
    if diffs:
        ax_d = axes[0, 1]
        plot_differences(ax_d, diffs, "mAP_difference", color=method_color("BAU"))
        ax_d.set_ylabel("\u0394 mAP (percentage points)")
        ax_d.set_title("(a) BAU \u2212 BAU w/o weighting")
        note += "; right: mean paired difference, 95% t-interval"
    if late:
        note += "\n" + late
    for a in axes[0]:
        a.set_xticks(ps)
        a.set_xlabel("augmentation probability $p$")
    fig.suptitle(note, fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.93))  # room for the note above
    return fig


def _body(args: argparse.Namespace) -> None:
    from analysis.galleries import plot_weight_gallery, select_evenly
    from analysis.plotting import save_figure
    from bau.core.device import resolve_device
    from bau.runs.weight_scores import checkpoint_weight_scores

    echo = echo_for(args)

    runs = sweep_runs(args.sweep)
    performance = compute_performance(args, runs)
    shown, _ = runs_of_seed(runs, args.run_seed, args.sweep)
    run = one_run(shown, args.sweep, skip_unfinished=args.skip_unfinished, method="bau", aug_prob=args.p)
    written = save_figure(plot_performance(performance), os.path.join(args.out, f"{args.name}a"), performance)

    echo(f"weight scores of {run.name}")
    checkpoint = run.checkpoint("last")
    pairs = checkpoint_weight_scores(checkpoint, root=args.data_root, seed=args.seed,
                                     device=resolve_device(args.device)).pairs()
    shown = select_evenly(pairs, args.columns)
    fig, axes = plot_weight_gallery(shown, num=None)
    fig.suptitle(f"(b) weight score $w$ of augmented views (BAU, p = {p_of(run):g}, seed {seed_of(run)})", fontsize=8)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 0.92))
    shown_ids = {id(p) for p in shown}
    data = {"sweep": args.sweep, "run": run.name, "run_seed": seed_of(run), "checkpoint": checkpoint, "seed": args.seed,
            "pairs": [{"path": p.path, "pid": p.pid, "weight": p.weight, "shown": id(p) in shown_ids} for p in pairs]}
    written += save_figure(fig, os.path.join(args.out, f"{args.name}b"), data)
    echo("wrote " + ", ".join(written))


def build_parser() -> argparse.ArgumentParser:
    parser = sweep_arguments(__doc__, "figure5")
    parser.add_argument("--p", type=float, default=0.5, help="p of the BAU checkpoint of panel (b) (default 0.5)")
    parser.add_argument("--columns", type=int, default=8, help="image pairs shown in panel (b) (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the batch and its augmentations (default 0)")
    add_run_seed_option(parser, "panel (b)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_cli(_body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
