"""The runs of a ``bau sweep`` folder, as the figure and table scripts see them.

A sweep folder (``bau sweep --config experiments/sweeps/demo.yaml --out runs/demo``) holds one
run folder per grid point and ``summary.json``, which lists every run with its LABELS (the grid
axes: ``method`` and ``aug_prob`` in the shipped sweeps). The scripts pick runs by label:

    method    baseline      CE + triplet, one view that gets the augmentations with probability p
              bau           the full objective (Eq. 9)
              bau_noweight  BAU with the unweighted alignment loss (Eq. 3 instead of Eq. 5)
              bau_nodomain  BAU without L_domain
              baseline_id   the baseline trained on the target domain's own training split (ID)
    aug_prob  p, the probability of each augmentation (``data.aug_prob``)

What this module gives them:

- ``load_runs`` / ``select_runs``: the runs of a sweep, filtered by labels, finished ones only
  (anything else is a ``BauError`` naming the run and what to do);
- ``Run``: one run folder: labels, resolved config, final metrics, its checkpoint (``last.pt``:
  the model the final metrics in ``results.json`` belong to; ``best.pt`` was picked on the
  target's test set and would flatter every method);
- ``run_features``: L2-normalised features of a run on some datasets' subset, extracted once and
  cached in the run folder as ``features_<datasets>_<subset>[_max<N>_seed<S>].npz`` (the
  ``bau extract`` layout plus the checkpoint's mtime: a changed checkpoint makes the cache stale
  and it is recomputed);
- ``target_geometry``: alignment (Eq. 1) and uniformity (Eq. 2) of a target's query + gallery
  features, positives = same identity;
- ``sweep_arguments`` / ``run_cli``: the command line the scripts share (``--sweep``, ``--out``,
  ``--target``, ``--data-root``, ``--device``) and the ``error: ...`` + exit 2 wrapper.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from bau.config import Config
from bau.errors import BauError

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

FEATURE_FILE_PREFIX = "features_"


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


def same_p(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a), float(b), abs_tol=1e-9)
    except (TypeError, ValueError):
        return False


@dataclass
class Run:
    """One run folder of a sweep."""

    name: str
    path: str
    labels: Dict[str, Any]
    status: str  # finished | interrupted | pending (bau.sweep.run_status, read when the sweep is loaded)
    _config: Optional[Config] = field(default=None, repr=False)

    @property
    def method(self) -> str:
        return str(self.labels.get(METHOD, ""))

    @property
    def p(self) -> float:
        """The run's augmentation probability (its ``aug_prob`` label, else its config)."""
        if P in self.labels:
            return float(self.labels[P])
        return float(self.config().data.aug_prob)

    @property
    def checkpoint(self) -> str:
        return os.path.join(self.path, "last.pt")

    def config(self) -> Config:
        """The resolved config the run was trained with (``config.yaml``)."""
        if self._config is None:
            import yaml

            from bau.config import config_from_dict

            path = os.path.join(self.path, "config.yaml")
            if not os.path.isfile(path):
                raise BauError(f"run {self.path}: no config.yaml (expected a run folder written by `bau train`)")
            try:
                with open(path) as f:
                    stored = yaml.safe_load(f) or {}
            except (OSError, yaml.YAMLError):
                raise BauError(f"run {self.path}: config.yaml cannot be read as YAML") from None
            self._config = config_from_dict(stored)
        return self._config

    def results(self) -> Dict[str, Any]:
        path = os.path.join(self.path, "results.json")
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, json.JSONDecodeError):
            raise BauError(f"run {self.path}: results.json missing or unreadable (is the run finished?)") from None

    def metric(self, target: str, key: str = "mAP") -> float:
        """Final ``key`` (a fraction in [0, 1]) on ``target`` from ``results.json``."""
        metrics = self.results().get("metrics", {})
        if target not in metrics or key not in metrics[target]:
            have = ", ".join(sorted(metrics)) or "none"
            raise BauError(f"run {self.path}: no {key} for target {target!r} in results.json (evaluated: {have})")
        return float(metrics[target][key])


def load_runs(sweep_dir: str) -> List[Run]:
    """Every run listed in ``sweep_dir/summary.json``, in summary order, with its current status."""
    from bau.sweep import read_summary, run_status

    if not os.path.isdir(sweep_dir):
        raise BauError(f"sweep folder {sweep_dir}: not found (expected the --out folder of `bau sweep`)")
    try:
        rows = read_summary(sweep_dir)
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        raise BauError(f"sweep folder {sweep_dir}: summary.json is unreadable "
                       f"(rerun `bau sweep` to rewrite it)") from None
    runs = []
    for row in rows:
        if not isinstance(row, dict) or "run" not in row:
            raise BauError(f"sweep folder {sweep_dir}: summary.json has a row without a run name")
        labels = {k: v for k, v in row.items() if k not in ("run", "status") and "/" not in k}
        path = os.path.join(sweep_dir, row["run"])
        runs.append(Run(name=row["run"], path=path, labels=labels, status=run_status(path)))
    return runs


def _matches(run: Run, labels: Dict[str, Any]) -> bool:
    for key, want in labels.items():
        if key not in run.labels:
            return False
        have = run.labels[key]
        if isinstance(want, (list, tuple, set)):
            if not any(_equal(have, w) for w in want):
                return False
        elif not _equal(have, want):
            return False
    return True


def _equal(have: Any, want: Any) -> bool:
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        return same_p(have, want)
    return str(have) == str(want)


def select_runs(runs: Sequence[Run], sweep_dir: str, required: bool = True, skip_unfinished: bool = False,
                **labels: Any) -> List[Run]:
    """The runs whose labels match ``labels`` (a value or a list of accepted values), sorted by p.

    Args:
        runs: from ``load_runs``.
        sweep_dir: for messages.
        required: no matching run is a ``BauError`` (else an empty list).
        skip_unfinished: leave unfinished runs out instead of raising.
        **labels: e.g. ``method="bau", aug_prob=0.5``.

    Raises:
        BauError: nothing matches (``required``), or a matching run is not finished.
    """
    chosen = [r for r in runs if _matches(r, labels)]
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
    return sorted(chosen, key=lambda r: (r.p, r.name))


def one_run(runs: Sequence[Run], sweep_dir: str, required: bool = True, skip_unfinished: bool = False,
            **labels: Any) -> Optional[Run]:
    """The single run with ``labels`` (``BauError`` if several match; None if none and not ``required``)."""
    chosen = select_runs(runs, sweep_dir, required=required, skip_unfinished=skip_unfinished, **labels)
    if len(chosen) > 1:
        want = ", ".join(f"{k}={v}" for k, v in labels.items())
        raise BauError(f"sweep folder {sweep_dir}: {len(chosen)} runs with {want} "
                       f"({', '.join(r.name for r in chosen)}); expected one")
    return chosen[0] if chosen else None


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
        if target not in r.results().get("metrics", {}):
            raise BauError(f"run {r.path}: was not evaluated on target {target!r} (evaluated: "
                           f"{', '.join(sorted(r.results().get('metrics', {}))) or 'none'}); pass --target NAME")
    return target


# ---------------------------------------------------------------------------------------------
# features
# ---------------------------------------------------------------------------------------------

def slug(text: str) -> str:
    """A file-name-safe version of a dataset name: ``folder:synth_d`` -> ``folder-synth_d``."""
    return re.sub(r"[^A-Za-z0-9_.+-]+", "-", text).strip("-") or "dataset"


def feature_cache_path(run: Run, names: Sequence[str], subset: str, max_per_domain: Optional[int] = None,
                       seed: int = 0) -> str:
    """``<run>/features_<datasets>_<subset>[_max<N>_seed<S>].npz``: a sample has its own file, so a
    figure that samples never evicts the full set another figure uses."""
    sample = "" if max_per_domain is None else f"_max{max_per_domain}_seed{seed}"
    return os.path.join(run.path, f"{FEATURE_FILE_PREFIX}{slug('+'.join(names))}_{subset}{sample}.npz")


def _subsample(domains: np.ndarray, max_per_domain: Optional[int], seed: int) -> np.ndarray:
    """Indices keeping at most ``max_per_domain`` items of each domain (seeded, in original order)."""
    if max_per_domain is None:
        return np.arange(len(domains))
    if max_per_domain < 2:
        raise BauError(f"--max-per-domain {max_per_domain}: expected at least 2 images per domain")
    rng = np.random.default_rng(seed)
    keep = []
    for d in np.unique(domains):
        idx = np.flatnonzero(domains == d)
        if len(idx) > max_per_domain:
            idx = np.sort(rng.choice(idx, size=max_per_domain, replace=False))
        keep.append(idx)
    return np.sort(np.concatenate(keep))


def _cache_valid(data: Dict[str, np.ndarray], checkpoint: str, names: Sequence[str],
                 max_per_domain: Optional[int], seed: int) -> bool:
    try:
        return (float(data["checkpoint_mtime"]) == os.path.getmtime(checkpoint)
                and str(data["checkpoint"]) == os.path.basename(checkpoint)
                and [str(n) for n in data["domain_names"]] == list(names)
                and int(data["max_per_domain"]) == (-1 if max_per_domain is None else max_per_domain)
                and int(data["sample_seed"]) == seed)
    except (KeyError, ValueError, TypeError):
        return False


@functools.lru_cache(maxsize=1)
def _load_model(checkpoint: str, mtime: float, device: str):
    """The last checkpoint's model, kept while the same run is asked for again (a figure usually
    wants several feature sets of one run in a row; loading a checkpoint costs more than a small
    extraction). One model at a time, so GPU memory holds one network."""
    from bau.checkpoint import model_from_checkpoint

    model, _, cfg = model_from_checkpoint(checkpoint, device)
    return model, cfg


def run_features(run: Run, names: Sequence[str], subset: str, root: Optional[str] = None,
                 device: str = "cpu", max_per_domain: Optional[int] = None, seed: int = 0,
                 echo: Callable[[str], None] = lambda s: None) -> Dict[str, np.ndarray]:
    """Features of ``run``'s checkpoint on ``subset`` of datasets ``names``, cached in the run folder.

    Args:
        run: the run (its ``last.pt`` is the model).
        names: dataset names as in a config (``folder:synth_d``, ``full:msmt17``, ``market1501``).
        subset: ``train``, ``query``, ``gallery``, ``test`` (query + gallery) or ``all``.
        root: data root (default: the run's ``data.root``).
        device: where to run the model.
        max_per_domain: keep at most this many images per dataset (seeded sample); None keeps all.
        seed: seed of that sample.
        echo: progress messages.

    Returns:
        The ``bau extract`` arrays: ``features [N, C]`` (float32, L2-normalised), ``pids``,
        ``camids``, ``domains`` (index into ``domain_names``), ``subsets``, ``paths``,
        ``domain_names``; plus ``checkpoint``, ``checkpoint_mtime``, ``max_per_domain`` (-1: all),
        ``sample_seed``.
    """
    from bau.atomic import atomic_path
    from bau.features import collect_items, load_npz

    checkpoint = run.checkpoint
    if not os.path.isfile(checkpoint):
        raise BauError(f"run {run.path}: no last.pt (the run never finished an epoch)")
    path = feature_cache_path(run, names, subset, max_per_domain, seed)
    if os.path.isfile(path):
        try:
            data = load_npz(path)
        except BauError:
            data = {}  # a damaged cache is recomputed like a stale one
        if _cache_valid(data, checkpoint, names, max_per_domain, seed):
            return data
    from bau.inference import extract_features
    from bau.device import resolve_device

    dev = resolve_device(device)
    mtime = os.path.getmtime(checkpoint)
    model, cfg = _load_model(checkpoint, mtime, str(dev))
    col = collect_items(list(names), root or cfg.data.root, subset, cfg)
    keep = _subsample(np.asarray(col["domains"]), max_per_domain, seed)
    items = [col["items"][i] for i in keep]
    echo(f"extracting {run.name} features on {'+'.join(names)} ({subset}, {len(items)} images)")
    feats = extract_features(model, items, cfg, dev)
    data = {
        "features": feats,
        "pids": np.array([it[1] for it in items], dtype=np.int64),
        "camids": np.array([it[2] for it in items], dtype=np.int64),
        "domains": np.asarray(col["domains"], dtype=np.int64)[keep],
        "subsets": np.asarray(col["subsets"])[keep],
        "paths": np.array([it[0] for it in items]),
        "domain_names": np.array(list(names)),
        "checkpoint": np.array(os.path.basename(checkpoint)),
        "checkpoint_mtime": np.array(mtime, dtype=np.float64),
        "max_per_domain": np.array(-1 if max_per_domain is None else max_per_domain, dtype=np.int64),
        "sample_seed": np.array(seed, dtype=np.int64),
    }
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **data)
    return data


def target_geometry(features: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Alignment (Eq. 1, positives = same pid) and uniformity (Eq. 2) of L2-normalised features."""
    from analysis.geometry import alignment_uniformity

    return alignment_uniformity(features["features"], features["pids"], normalize=True)


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
