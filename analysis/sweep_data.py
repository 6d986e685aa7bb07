"""The runs of a ``bau sweep`` folder, as the figure and table scripts pick them.

A sweep folder (``bau sweep --config experiments/sweeps/demo.yaml --out runs/demo``) holds one
run folder per grid point and ``summary.json``, which lists every run with its LABELS (the grid
axes: ``method`` and ``aug_prob`` in the shipped sweeps). The scripts pick runs by label:

    method    baseline      CE + triplet, one view that gets the augmentations with probability p
              bau           the full objective (Eq. 9)
              bau_noweight  BAU with the unweighted alignment loss (Eq. 3 instead of Eq. 5)
              bau_nodomain  BAU without L_domain
              baseline_id   the baseline trained on the target domain's own training split (ID)
    aug_prob  p, the probability of each augmentation (``data.aug_prob``)

Reading runs (``bau.runs``: ``sweep_runs``, ``Run``), loading models and caching features
(``bau.runs.features.feature_set``, in ``.bau_cache`` next to each checkpoint) is the run layer's, shared
with ``bau sweep`` and the app. What this module adds for the scripts:

- ``select_runs`` / ``one_run`` / ``choose_target``: runs by label, finished ones only (anything
  else is a ``BauError`` naming the run and what to do), sorted by p;
- ``cells_by_p`` / ``spread_of``: the runs of a method grouped per p, each cell keyed by seed
  (``bau.runs.statistics.runs_by_seed``: runs that differ in more than the seed are an error naming both),
  and a number's mean, std and n over a cell's seeds; ``runs_of_seed``: the runs of one training
  seed, for the panels that show one model (a t-SNE, Grad-CAM, a weight gallery);
- ``run_features``: a run's features for a script: the run's ``last.pt`` (the model the final
  metrics in ``results.json`` belong to; ``best.pt`` was picked on the target's test set and
  would flatter every method), its ``data.root`` unless ``--data-root`` says otherwise;
- ``target_geometry``: alignment (Eq. 1) and uniformity (Eq. 2) of a target's query + gallery
  features, positives = same identity;
- the legend vocabulary (method names, line styles, dataset abbreviations);
- ``sweep_arguments`` / ``run_cli``: the command line the scripts share (``--sweep``, ``--out``,
  ``--target``, ``--data-root``, ``--device``) and the ``error: ...`` + exit 2 wrapper.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from bau.core.errors import BauError
from bau.runs.features import FeatureSet, feature_set
from bau.runs.folder import Run, same_value, select
from bau.runs.statistics import (
    SEED,
    Convergence,
    PairedDifference,
    Spread,
    convergence,
    paired_difference,
    runs_by_seed,
    seed_of,
    spread,
)

# A cell is flagged as still improving when its mean late gain in mAP exceeds the spread of its final
# mAP over seeds; with one seed (no spread) when it exceeds half a point.
CONVERGENCE_FLOOR = 0.005
UNCONVERGED_MARK = "\u2020"  # the dagger tables and captions put on a cell still improving at the end

METHOD = "method"  # label of the method axis
P = "aug_prob"  # label of the augmentation-probability axis (short name of data.aug_prob)

# Legend names of the method labels; analysis.plotting.method_color knows their colours.
METHOD_NAMES: Dict[str, str] = {
    "baseline": "baseline",
    "bau": "BAU",
    "bau_noweight": "BAU w/o weighting",
    "bau_nodomain": "BAU w/o L_domain",
    "baseline_id": "in-distribution",
}



def line_style(method: str) -> Dict[str, Any]:
    """Markers and dashes of a method's line: BAU solid with big circles, the variants dashed with
    small squares on top, so a variant that equals BAU at some p still shows both lines."""
    if method == "bau":
        return {"linestyle": "-", "marker": "o", "markersize": 6, "linewidth": 1.8, "zorder": 2}
    return {"linestyle": "--", "marker": "s", "markersize": 4, "linewidth": 1.2, "zorder": 3}


# Paper abbreviations of the datasets (Sec. 4.1); other names are shown as they are.
DATASET_ABBREVIATIONS: Dict[str, str] = {
    "market1501": "M", "msmt17": "MS", "cuhksysu": "CS", "cuhk03": "C3", "cuhk03_labeled": "C3",
    "cuhk02": "C2", "cuhk01": "C1", "prid": "PRID", "grid": "GRID", "viper": "VIPeR", "ilids": "iLIDs",
}


def dataset_label(name: str) -> str:
    """Short display name of a dataset: ``full:msmt17`` -> ``MS``, ``folder:synth_d`` -> ``synth_d``."""
    base = base_dataset(name)
    return DATASET_ABBREVIATIONS.get(base.lower(), base)


def base_dataset(name: str) -> str:
    """The dataset under a ``full:`` / ``folder:`` prefix (``folder:a/b`` -> ``b``)."""
    if name.lower().startswith("full:"):
        return base_dataset(name[len("full:"):])
    if name.lower().startswith("folder:"):
        return os.path.basename(os.path.normpath(name[len("folder:"):])) or name
    return name


def p_of(run: Run) -> float:
    """A run's augmentation probability: its ``aug_prob`` label, else its config's ``data.aug_prob``."""
    if P in run.labels:
        return float(run.labels[P])
    return float(run.config().data.aug_prob)


def method_of(run: Run) -> str:
    return str(run.labels.get(METHOD, ""))


def select_runs(runs: Sequence[Run], sweep_dir: str, required: bool = True, skip_unfinished: bool = False,
                **labels: Any) -> List[Run]:
    """The runs whose labels match ``labels`` (a value or a list of accepted values), sorted by p.

    Args:
        runs: from ``bau.runs.folder.sweep_runs``.
        sweep_dir: for messages.
        required: no matching run is a ``BauError`` (else an empty list).
        skip_unfinished: leave unfinished runs out instead of raising.
        **labels: e.g. ``method="bau", aug_prob=0.5``.

    Raises:
        BauError: nothing matches (``required``), or a matching run is not finished.
    """
    chosen = select(runs, **labels)
    unfinished = [r for r in chosen if r.status != "finished"]
    if unfinished and not skip_unfinished:
        names = ", ".join(f"{r.name} ({r.status})" for r in unfinished)
        raise BauError(f"sweep folder {sweep_dir}: runs not finished: {names}; finish them with "
                       f"`bau sweep --config ... --out {sweep_dir}` or pass --skip-unfinished")
    chosen = [r for r in chosen if r.status == "finished"]
    if not chosen and required:
        want = ", ".join(f"{k}={v}" for k, v in labels.items())
        have = sorted({", ".join(f"{k}={v}" for k, v in r.labels.items() if k in labels) for r in runs})
        raise BauError(f"sweep folder {sweep_dir}: no finished run with {want} (runs there have: "
                       f"{'; '.join(h for h in have if h) or 'no such labels'})")
    return sorted(chosen, key=lambda r: (p_of(r), r.name))


def one_run(runs: Sequence[Run], sweep_dir: str, required: bool = True, skip_unfinished: bool = False,
            **labels: Any) -> Optional[Run]:
    """The single run with ``labels`` (``BauError`` if several match; None if none and not ``required``)."""
    chosen = select_runs(runs, sweep_dir, required=required, skip_unfinished=skip_unfinished, **labels)
    if len(chosen) > 1:
        want = ", ".join(f"{k}={v}" for k, v in labels.items())
        raise BauError(f"sweep folder {sweep_dir}: {len(chosen)} runs with {want} "
                       f"({', '.join(r.name for r in chosen)}); expected one")
    return chosen[0] if chosen else None


def cells_by_p(runs: Sequence[Run], what: str) -> List[Tuple[float, Dict[int, Run]]]:
    """``[(p, {seed: run})]`` sorted by p: the runs of one method (from ``select_runs``) per p, over seeds.

    Raises:
        BauError: two runs at one p differ in more than the seed (``bau.runs.statistics.runs_by_seed``).
    """
    cells: List[Tuple[float, List[Run]]] = []
    for run in runs:
        p = p_of(run)
        for q, members in cells:
            if same_value(q, p):
                members.append(run)
                break
        else:
            cells.append((p, [run]))
    return [(p, runs_by_seed(members, f"{what} at p={p:g}")) for p, members in sorted(cells, key=lambda c: c[0])]


def spread_of(cell: Dict[int, Run], value: Callable[[Run], float]) -> Spread:
    """Mean, std and n of ``value(run)`` over the seeds of one cell (``{seed: run}``)."""
    return spread({s: value(r) for s, r in cell.items()})


def metric_percent(target: str, key: str) -> Callable[[Run], float]:
    """``run -> 100 * run.metric(target, key)``: a final metric of the run's ``results.json``, in %."""
    return lambda run: 100 * run.metric(target, key)


def recorded(per_run: Dict[str, Dict[str, Any]], keys: Sequence[str]) -> Dict[str, Callable[[Run], float]]:
    """``cell_numbers`` values that read ``key`` from ``per_run[run.name]`` (numbers computed once per run)."""
    return {k: (lambda r, k=k: per_run[r.name][k]) for k in keys}


def cell_numbers(cell: Dict[int, Run], values: Dict[str, Callable[[Run], float]]) -> Dict[str, Any]:
    """A data-file row of one cell: its ``seeds`` and ``runs``, and for each ``name: value`` of
    ``values`` the mean, std, n and per-seed values of ``value(run)`` (``Spread.columns``)."""
    row: Dict[str, Any] = {"seeds": list(cell), "runs": [r.name for r in cell.values()]}
    for name, value in values.items():
        row.update(spread_of(cell, value).columns(name))
    return row


def cell_convergence(cell: Dict[int, Run], target: str, key: str = "mAP") -> Convergence:
    """Whether the runs of a cell were still improving at the end: their learning curves of ``key`` on
    ``target`` (``Run.curve``, the logged evaluations) through ``bau.runs.statistics.convergence``."""
    return convergence({s: r.curve(target, key) for s, r in cell.items()}, floor=CONVERGENCE_FLOOR)


def convergence_columns(cell: Dict[int, Run], target: str) -> Dict[str, Any]:
    """A data-file row's convergence columns: ``mAP_late_gain`` (mean over seeds, fraction),
    ``mAP_late_threshold`` and ``mAP_still_improving`` (None: no curve long enough to judge)."""
    return cell_convergence(cell, target).columns("mAP")


def unconverged_note(rows: Sequence[Dict[str, Any]], describe: Callable[[Dict[str, Any]], str]) -> str:
    """A caption sentence naming the rows whose runs were still improving (empty when none was)."""
    late = [describe(r) for r in rows if r.get("mAP_still_improving")]
    if not late:
        return ""
    return (f"{UNCONVERGED_MARK} still improving at the end (last 20% of training raised mAP by more than the "
            f"seed spread): {', '.join(late)}")


def cell_at(cells: List[Tuple[float, Dict[int, Run]]], p: float) -> Optional[Dict[int, Run]]:
    """The cell of ``cells_by_p`` at aug_prob ``p`` (None if there is none)."""
    return next((cell for q, cell in cells if same_value(q, p)), None)


def paired_cells(reference: Dict[int, Run], treatment: Dict[int, Run], value: Callable[[Run], float]
                 ) -> PairedDifference:
    """``value(treatment run) - value(reference run)``, paired by seed."""
    return paired_difference({s: value(r) for s, r in reference.items()}, {s: value(r) for s, r in treatment.items()})


def paired_by_p(reference: List[Tuple[float, Dict[int, Run]]], treatment: List[Tuple[float, Dict[int, Run]]],
                value: Callable[[Run], float], name: str, echo: Callable[[str], None] = lambda s: None
                ) -> List[Dict[str, Any]]:
    """Data-file rows of ``value(treatment run) - value(reference run)`` paired by seed, at each p both have.

    Args:
        reference, treatment: ``cells_by_p`` of the two methods.
        value: the number compared (e.g. mAP in %).
        name: the column prefix (``PairedDifference.columns``).
        echo: told about seeds left out because the other method has no run of that seed.
    """
    rows = []
    for p, ref in reference:
        trt = cell_at(treatment, p)
        if trt is None:
            continue
        diff = paired_cells(ref, trt, value)
        if diff.unpaired:
            echo(f"note: p={p:g}: seeds {', '.join(map(str, diff.unpaired))} have a run of one method only; "
                 f"left out of the paired difference")
        rows.append({"p": p, "reference_runs": [r.name for r in ref.values()],
                     "treatment_runs": [r.name for r in trt.values()], **diff.columns(name)})
    return rows


def runs_of_seed(runs: Sequence[Run], seed: Optional[int], sweep_dir: str) -> Tuple[List[Run], Optional[int]]:
    """``(runs, seed)``: the runs of training seed ``seed`` (label ``seed``), default the sweep's smallest.

    Runs without a ``seed`` label (a grid without a seed axis) are kept: each is the only run of
    its cell. ``seed`` is None when no run has a seed label.

    Raises:
        BauError: ``seed`` was given and no run has it.
    """
    seeds = sorted({seed_of(r) for r in runs if SEED in r.labels})
    if seed is None:
        seed = seeds[0] if seeds else None
    elif seed not in seeds:
        raise BauError(f"--run-seed {seed}: sweep folder {sweep_dir} has no run of that seed "
                       f"(seeds there: {', '.join(map(str, seeds)) or 'none; leave --run-seed out'})")
    return [r for r in runs if SEED not in r.labels or seed_of(r) == seed], seed


def choose_target(runs: Sequence[Run], target: Optional[str] = None) -> str:
    """The target dataset to report: ``target`` if every run evaluated it, else the first run's first target."""
    if not runs:
        raise BauError("no runs to choose a target from")
    if target is None:
        targets = runs[0].config().data.targets
        if not targets:
            raise BauError(f"run {runs[0].path}: config has no data.targets; pass --target NAME")
        target = targets[0]
    for r in runs:
        evaluated = r.metrics()
        if target not in evaluated:
            raise BauError(f"run {r.path}: was not evaluated on target {target!r} (evaluated: "
                           f"{', '.join(sorted(evaluated)) or 'none'}); pass --target NAME")
    return target


def run_features(run: Run, names: Sequence[str], subset: str, root: Optional[str] = None,
                 device: str = "cpu", max_per_domain: Optional[int] = None, seed: int = 0,
                 echo: Callable[[str], None] = lambda s: None) -> FeatureSet:
    """Features of ``run``'s ``last.pt`` on ``subset`` of datasets ``names`` (``bau.runs.features.feature_set``).

    Args:
        run: the run.
        names: dataset names as in a config (``folder:synth_d``, ``full:msmt17``, ``market1501``).
        subset: ``train``, ``query``, ``gallery``, ``test`` (query + gallery) or ``all``.
        root: data root (default: the run's ``data.root``).
        device: where to run the model on a cache miss.
        max_per_domain: keep at most this many images per dataset (seeded sample); None keeps all.
        seed: seed of that sample.
        echo: progress messages.
    """
    from bau.core.device import resolve_device

    if max_per_domain is not None and max_per_domain < 2:
        raise BauError(f"--max-per-domain {max_per_domain}: expected at least 2 images per domain")
    label = f"{run.name} on {'+'.join(names)} ({subset})"
    return feature_set(run.checkpoint("last"), names, subset, root or run.config().data.root, cap=max_per_domain,
                       seed=seed, device=resolve_device(device), progress=lambda f, text: echo(f"{label}: {text}"))


def target_geometry(features: FeatureSet) -> Dict[str, float]:
    """Alignment (Eq. 1, positives = same pid) and uniformity (Eq. 2) of L2-normalised features."""
    from bau.evaluation.geometry import alignment_uniformity

    return alignment_uniformity(features.features, features.pids, normalize=True)


# ---------------------------------------------------------------------------------------------
# the shared command line
# ---------------------------------------------------------------------------------------------

def sweep_arguments(description: str, default_stem: str) -> argparse.ArgumentParser:
    """The options every figure script takes."""
    parser = argparse.ArgumentParser(prog=f"python -m analysis.{default_stem}", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", required=True, help="sweep folder written by `bau sweep` (with summary.json)")
    parser.add_argument("--out", default="figures", help="output folder (default: figures)")
    parser.add_argument("--name", default=default_stem, help=f"file name stem (default: {default_stem})")
    parser.add_argument("--target", default=None, help="target dataset to report (default: the runs' first target)")
    parser.add_argument("--data-root", default=None, help="data root (default: each run's data.root)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--skip-unfinished", action="store_true",
                        help="leave unfinished runs out instead of stopping with an error")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    return parser


def add_run_seed_option(parser: argparse.ArgumentParser, panels: str) -> None:
    """``--run-seed``: the training seed of the run(s) shown in ``panels`` (default: the smallest)."""
    parser.add_argument("--run-seed", type=int, default=None,
                        help=f"training seed (sweep label seed) of the run shown in {panels} "
                             f"(default: the sweep's smallest seed; the panel's title says which)")


def run_cli(body: Callable[[argparse.Namespace], Any], parser: argparse.ArgumentParser,
            argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv``, run ``body(args)``; a ``BauError`` becomes one ``error: ...`` line and exit 2."""
    args = parser.parse_args(argv)
    try:
        body(args)
    except BauError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def echo_for(args: argparse.Namespace) -> Callable[[str], None]:
    return (lambda s: None) if getattr(args, "quiet", False) else (lambda s: print(s, file=sys.stderr))
