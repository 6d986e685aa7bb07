"""Figure 1: the polarized effect of data augmentation (Sec. 3.1).

    python -m analysis.figure1 --sweep runs/demo --out figures/

Panels, all against the augmentation probability p:

(a) mAP (%) on the target of the baseline trained on the target's own training split
    (in-distribution, ID) and of the baseline trained on the source domains (OOD);
(b) alignment L_align (Eq. 1) and uniformity L_uniform (Eq. 2) of the OOD baseline's features
    on the target's query + gallery images (positives = same identity; lower is better for both);
(c) uniformity -L_uniform (higher = more uniform) of the OOD baseline's features on the source
    domains' training images (pooled; at most --max-per-domain per domain) and on the target.

Runs are picked by their labels in the sweep's summary.json:

    method=baseline     the OOD baseline at each p            (required)
    method=baseline_id  the ID baseline at each p             (optional: without it (a) is OOD only)
    aug_prob            p

Writes ``<out>/figure1.png``, ``.pdf`` and ``.json`` (every plotted number, with the run it comes
from). Features are extracted once per run and cached next to its checkpoint (``bau.features.feature_set``).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Optional, Sequence

from analysis.sweep_data import (choose_target, dataset_label, echo_for, p_of, run_cli, run_features, select_runs,
                                 sweep_arguments, target_geometry)
from bau.runs import sweep_runs

# Colours of the two quantities of panel (b): neither is a method, a domain or ID/OOD, so not
# the blue/orange those have in panels (a) and (c): near-black and the colour-blind palette's purple.
ALIGN_COLOR = (0.15, 0.15, 0.15)
UNIFORM_COLOR = (0.8, 0.471, 0.737)


def compute(args: argparse.Namespace) -> Dict[str, Any]:
    """The numbers of Figure 1 (every value with the run it comes from)."""
    from analysis.geometry import uniformity

    echo = echo_for(args)
    runs = sweep_runs(args.sweep)
    ood = select_runs(runs, args.sweep, skip_unfinished=args.skip_unfinished, method="baseline")
    ident = select_runs(runs, args.sweep, required=False, skip_unfinished=args.skip_unfinished,
                        method="baseline_id")
    target = choose_target(ood, args.target)
    if ident:
        choose_target(ident, target)
    else:
        echo("note: no method=baseline_id runs in the sweep; panel (a) shows the OOD baseline only")

    performance: List[Dict[str, Any]] = []
    for setting, chosen in (("ID", ident), ("OOD", ood)):
        for r in chosen:
            performance.append({"setting": setting, "p": p_of(r), "run": r.name, "mAP": 100 * r.metric(target, "mAP"),
                                "rank1": 100 * r.metric(target, "rank1")})
    geometry: List[Dict[str, Any]] = []
    for r in ood:
        tf = run_features(r, [target], "test", root=args.data_root, device=args.device, echo=echo)
        geo = target_geometry(tf)
        sources = list(r.config().data.sources)
        sf = run_features(r, sources, "train", root=args.data_root, device=args.device,
                          max_per_domain=args.max_per_domain, seed=args.seed, echo=echo)
        per_source = {}
        for d, name in enumerate(sources):
            feats = sf.features[sf.domains == d]
            per_source[name] = -uniformity(feats, normalize=True) if len(feats) >= 2 else float("nan")
        geometry.append({"p": p_of(r), "run": r.name, "alignment": geo["alignment"], "uniformity": geo["uniformity"],
                         "neg_uniformity_target": -geo["uniformity"],
                         "neg_uniformity_source": -uniformity(sf.features, normalize=True),
                         "neg_uniformity_per_source": per_source,
                         "num_target_images": len(tf),
                         "num_source_images": len(sf)})
    return {"sweep": args.sweep, "target": target, "sources": list(ood[0].config().data.sources),
            "performance": performance, "geometry": geometry}


def plot(data: Dict[str, Any]):
    """Three panels (a) (b) (c) side by side; returns the figure."""
    from matplotlib.ticker import MaxNLocator

    from analysis.plotting import figure, method_color

    fig, axes = figure(3, 1, width=7.6, aspect=1.3)
    ax_a, ax_b, ax_c = axes[0]
    target = dataset_label(data["target"])
    sources = "+".join(dataset_label(s) for s in data["sources"])
    ps = sorted({row["p"] for row in data["performance"]} | {row["p"] for row in data["geometry"]})
    below = dict(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)

    for setting, color_key, label in (("ID", "in-distribution", f"ID: {target} \u2192 {target}"),
                                      ("OOD", "out-of-distribution", f"OOD: {sources} \u2192 {target}")):
        rows = [r for r in data["performance"] if r["setting"] == setting]
        if rows:
            ax_a.plot([r["p"] for r in rows], [r["mAP"] for r in rows], marker="o", color=method_color(color_key),
                      label=label)
    ax_a.set_ylabel("mAP (%)")
    ax_a.set_title(f"(a) mAP on {target}")
    ax_a.legend(**below)

    geo = data["geometry"]
    p_geo = [g["p"] for g in geo]
    la = ax_b.plot(p_geo, [g["alignment"] for g in geo], marker="o", color=ALIGN_COLOR,
                   label=r"alignment $\mathcal{L}_{\mathrm{align}}$ (lower: more aligned)")
    ax_b.set_ylabel(r"alignment $\mathcal{L}_{\mathrm{align}}$", color=ALIGN_COLOR)
    ax_b.tick_params(axis="y", colors=ALIGN_COLOR)
    ax_u = ax_b.twinx()
    ax_u.grid(False)
    lu = ax_u.plot(p_geo, [g["uniformity"] for g in geo], marker="s", color=UNIFORM_COLOR,
                   label=r"uniformity $\mathcal{L}_{\mathrm{uniform}}$ (lower: more uniform)")
    ax_u.set_ylabel(r"uniformity $\mathcal{L}_{\mathrm{uniform}}$", color=UNIFORM_COLOR)
    ax_u.tick_params(axis="y", labelsize=7, colors=UNIFORM_COLOR)
    ax_u.yaxis.set_major_locator(MaxNLocator(5))
    ax_b.set_title(f"(b) OOD features on {target}")
    ax_b.legend(handles=la + lu, **below)

    ax_c.plot(p_geo, [g["neg_uniformity_source"] for g in geo], marker="o", color=method_color("source"),
              label=f"source: {sources} (train)")
    ax_c.plot(p_geo, [g["neg_uniformity_target"] for g in geo], marker="s", color=method_color("target"),
              label=f"target: {target} (query + gallery)")
    ax_c.set_ylabel(r"uniformity $-\mathcal{L}_{\mathrm{uniform}}$")
    ax_c.set_title("(c) uniformity, OOD model")
    ax_c.legend(title="higher: more uniform", title_fontsize=7, **below)
    for ax in (ax_a, ax_b, ax_c):
        ax.set_xticks(ps)
        ax.set_xlabel("augmentation probability $p$")
    # room under each panel for its legend; savefig(bbox_inches="tight") trims the rest
    fig.subplots_adjust(bottom=0.3, wspace=1.25)
    return fig


def _body(args: argparse.Namespace) -> None:
    import os

    from analysis.plotting import save_figure

    data = compute(args)
    fig = plot(data)
    written = save_figure(fig, os.path.join(args.out, args.name), data)
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
