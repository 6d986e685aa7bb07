"""Which of the paper's effects hold on a seeded sweep, at 95% confidence.

    python -m analysis.effects --sweep runs/sweep_demo --out figures/

Each effect is a paired comparison per training seed (``bau.runs.statistics.paired_difference``: the
difference of two runs that share a seed, then its mean and 95% t-interval over the seeds). An
effect *holds* when the whole interval lies on the side the paper claims, *is contradicted* when
it lies entirely on the other side, and is *not shown* otherwise. The effects, as the paper states
them (Sec. 3.1, 4.3, Figures 1, 4, 5):

1. augmentation helps the in-distribution model (Fig. 1a: ID baseline, p = 1 vs p = 0, mAP up);
2. augmentation hurts the out-of-distribution baseline (Fig. 1a: OOD baseline, p = 1 vs 0, mAP down);
3. augmentation makes the OOD baseline's target features more aligned (Fig. 1b: L_align down);
4. ... and less uniform (Fig. 1b: L_uniform up);
5. BAU beats the OOD baseline at every p (Fig. 4a, Table 9: mAP up), one line per p the sweep has BAU at;
6. the weighting of Eq. 5 helps at high p (Fig. 5a: BAU vs BAU w/o weighting at p >= 0.75, mAP up);
7. L_domain makes the target's features more uniform (Fig. 4b: -L_uniform up, BAU vs BAU w/o
   L_domain at the sweep's p of the latter).

Each row also gives the smallest difference the design could detect (80 % power, 5 % level, from
the observed spread of the paired differences: ``PairedDifference.detectable``), so *not shown*
reads "smaller than X", and flags a comparison whose runs were still improving at the end of
training (``analysis.sweep_data.cell_convergence``): its verdict is about unconverged models.

Runs are found by the sweep labels of the figure scripts (``method``, ``aug_prob``, ``seed``); an
effect whose runs the sweep lacks is listed as not tested. Writes ``<out>/effects.md`` and
``<out>/effects.json`` and prints the Markdown.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence

from analysis.sweep_data import (
    UNCONVERGED_MARK,
    cell_at,
    cell_convergence,
    cells_by_p,
    choose_target,
    dataset_label,
    echo_for,
    metric_percent,
    paired_cells,
    run_cli,
    run_features,
    select_runs,
    sweep_arguments,
    target_geometry,
)
from bau.core.atomic import atomic_write_json, atomic_write_text
from bau.runs.folder import Run, sweep_runs
from bau.runs.statistics import PairedDifference


def verdict(diff: PairedDifference, claimed_sign: int) -> str:
    """``holds`` / ``contradicted`` / ``not shown`` for a claimed sign (+1: treatment > reference)."""
    if diff.ci_low is None or diff.ci_high is None:
        return "not shown"
    low, high = diff.ci_low * claimed_sign, diff.ci_high * claimed_sign
    lo, hi = min(low, high), max(low, high)
    if lo > 0:
        return "holds"
    if hi < 0:
        return "contradicted"
    return "not shown"


def _compare(reference: Optional[Dict[int, Run]], treatment: Optional[Dict[int, Run]],
             value: Callable[[Run], float]) -> Optional[PairedDifference]:
    return paired_cells(reference, treatment, value) if reference and treatment else None


def compute(args: argparse.Namespace) -> Dict[str, Any]:
    echo = echo_for(args)
    runs = sweep_runs(args.sweep)
    pick = dict(required=False, skip_unfinished=args.skip_unfinished)
    methods = {m: cells_by_p(select_runs(runs, args.sweep, method=m, **pick), m)
               for m in ("baseline", "baseline_id", "bau", "bau_noweight", "bau_nodomain")}
    if not methods["baseline"]:
        select_runs(runs, args.sweep, method="baseline", skip_unfinished=args.skip_unfinished)  # the one-line error
    target = choose_target([r for c in methods["baseline"] for r in c[1].values()], args.target)
    ps = [p for p, _ in methods["baseline"]]
    p_low, p_high = min(ps), max(ps)
    geometry: Dict[str, Dict[str, float]] = {}

    def geo(run: Run) -> Dict[str, float]:
        if run.path not in geometry:
            geometry[run.path] = target_geometry(run_features(run, [target], "test", root=args.data_root,
                                                              device=args.device, echo=echo))
        return geometry[run.path]

    m_ap = metric_percent(target, "mAP")

    rows: List[Dict[str, Any]] = []

    def add(effect: str, reference: Optional[Dict[int, Run]], treatment: Optional[Dict[int, Run]],
            value: Callable[[Run], float], sign: int, unit: str) -> None:
        diff = _compare(reference, treatment, value)
        digits = 2 if unit != "mAP points" else 1
        late = [c for c in (reference, treatment) if c and cell_convergence(c, target).still_improving]
        detectable = None if diff is None else diff.detectable
        rows.append({"effect": effect, "unit": unit, "claimed_sign": sign,
                     "verdict": "not tested (runs missing)" if diff is None else verdict(diff, sign),
                     "difference": None if diff is None else diff.text(digits),
                     "detectable": None if detectable is None else f"{detectable:.{digits}f}",
                     "still_improving": bool(late),
                     **({} if diff is None else diff.columns("difference"))})

    base, ident = methods["baseline"], methods["baseline_id"]
    add(f"augmentation helps the in-distribution model (ID baseline mAP, p={p_high:g} - p={p_low:g})",
        cell_at(ident, p_low), cell_at(ident, p_high), m_ap, +1, "mAP points")
    add(f"augmentation hurts the out-of-distribution baseline (OOD baseline mAP, p={p_high:g} - p={p_low:g})",
        cell_at(base, p_low), cell_at(base, p_high), m_ap, -1, "mAP points")
    add(f"augmentation makes the OOD baseline's target features more aligned (L_align, p={p_high:g} - p={p_low:g})",
        cell_at(base, p_low), cell_at(base, p_high), lambda r: geo(r)["alignment"], -1, "L_align")
    add(f"augmentation makes the OOD baseline's target features less uniform (L_uniform, p={p_high:g} - p={p_low:g})",
        cell_at(base, p_low), cell_at(base, p_high), lambda r: geo(r)["uniformity"], +1, "L_uniform")
    # at every p the sweep has BAU runs (every p of the baseline when it has none: "not tested")
    for p in [q for q, _ in methods["bau"]] or ps:
        add(f"BAU beats the OOD baseline at p={p:g} (mAP, BAU - baseline)",
            cell_at(base, p), cell_at(methods["bau"], p), m_ap, +1, "mAP points")
    for p in [q for q, _ in methods["bau_noweight"] if q >= 0.75]:
        add(f"the weighting of Eq. 5 helps at p={p:g} (mAP, BAU - BAU w/o weighting)",
            cell_at(methods["bau_noweight"], p), cell_at(methods["bau"], p), m_ap, +1, "mAP points")
    for p, cell in methods["bau_nodomain"]:
        add(f"L_domain makes the target more uniform at p={p:g} (-L_uniform on the target, BAU - BAU w/o L_domain)",
            cell, cell_at(methods["bau"], p), lambda r: -geo(r)["uniformity"], +1, "-L_uniform")
    return {"sweep": args.sweep, "target": target, "effects": rows}


def markdown(data: Dict[str, Any]) -> str:
    lines = [f"Effects of the paper on `{data['sweep']}` (target {dataset_label(data['target'])}): paired by "
             f"training seed, mean difference [95% t-interval] (n seeds). *holds*: the interval lies on the "
             f"side the paper claims; *contradicted*: on the other side; *not shown*: it contains 0. "
             f"*detectable*: the smallest true difference this design detects with 80% power at the 5% level "
             f"(from the observed spread), so *not shown* means smaller than that. {UNCONVERGED_MARK}: a cell's "
             f"runs were still improving at the end of training.", "",
             "| effect | difference | detectable | verdict |", "| --- | --- | --- | --- |"]
    for row in data["effects"]:
        mark = f" {UNCONVERGED_MARK}" if row.get("still_improving") else ""
        lines.append(f"| {row['effect']}{mark} | {row['difference'] or '-'} | {row.get('detectable') or '-'} "
                     f"| {row['verdict']} |")
    return "\n".join(lines) + "\n"


def _body(args: argparse.Namespace) -> None:
    data = compute(args)
    text = markdown(data)
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, f"{args.name}.md"), text)
    atomic_write_json(os.path.join(args.out, f"{args.name}.json"), data)
    print(text)


def build_parser() -> argparse.ArgumentParser:
    return sweep_arguments(__doc__, "effects")


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_cli(_body, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
