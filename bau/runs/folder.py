"""Run folders: the contract between ``bau train`` / ``bau sweep`` and everything that reads them.

A run folder (``bau train --out RUN``, or one grid point of ``bau sweep``) holds::

    config.yaml      the resolved config the run trains with
    log.jsonl        one JSON record per logged step ({"event": "step", ...}), epoch ({"event": "epoch",
                     "domain_share": ...}) and evaluation ({"event": "eval", ...})
    last.pt, best.pt checkpoints (``bau.runs.checkpoint``)
    results.json     {"finished": true, "metrics": {TARGET: {METRIC: value}}, ...} once the run is complete
    sweep_run.json   (sweep runs) the sweep settings the run was trained with (``bau.engine.sweep``)
    .bau_cache/      results derived from its checkpoints: features, t-SNE, ... (``bau.runs.cache``)

A sweep folder holds one run folder per grid point and ``summary.json``, which lists the runs with
their LABELS (the grid axes, e.g. ``method`` and ``aug_prob``).

This module finds runs and reads those files; every malformed file is a ``BauError`` naming it. It
also prepares a folder for its writer (``bau.engine.trainer``): ``open_run_folder`` creates it,
``remove_orphan_temp_files`` clears what killed atomic writes left, and on a resume ``resume_config``
reads the run's config from ``last.pt`` and ``truncate_log`` drops the log records after it.
The rest of the run layer, shared by ``bau sweep``, ``analysis/`` and ``app/``:

- ``bau.runs.checkpoint.load_model``: a checkpoint's model, kept in memory per checkpoint identity;
- ``bau.runs.features.feature_set``: features of a checkpoint on some datasets, cached on disk in
  ``.bau_cache`` next to the checkpoint (``bau.runs.cache``), with ``subsample_per_domain``;
- ``bau.runs.weight_scores``: the Eq. 4 weight scores of augmented views.

Label values are compared as numbers when both sides are numbers (``0.5`` matches ``"0.5"``),
so a selection never depends on how YAML or JSON spelled a value. Nothing here picks one run of
several silently: ``select`` returns every match, in the order the runs were found.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from bau.core.atomic import atomic_write_text
from bau.core.config import Config, apply_overrides, config_from_dict
from bau.core.errors import BauError, describe_os_error
from bau.evaluation.metrics import METRIC_KEYS
from bau.runs.checkpoint import load_checkpoint

# Files whose presence (next to config.yaml) makes a folder a run folder.
RUN_MARKERS = ("log.jsonl", "results.json", "last.pt", "best.pt")
CHECKPOINTS = ("best", "last")


# What a sweep asked of a run (sweep file, base config, overrides, labels), written into its folder.
SWEEP_RUN_FILE = "sweep_run.json"
# What a run folder holds once a run has started; a new run never writes over any of them without --force.
RUN_ARTEFACTS = ("config.yaml", "log.jsonl", "results.json", "last.pt", "best.pt")

def run_status(run_dir: str) -> str:
    """``finished`` (results.json says so), ``interrupted`` (a last.pt but no final results) or ``pending``."""
    try:
        with open(os.path.join(run_dir, "results.json")) as f:
            results = json.load(f)
        if isinstance(results, dict) and results.get("finished"):
            return "finished"
    except (OSError, ValueError):
        pass
    return "interrupted" if os.path.isfile(os.path.join(run_dir, "last.pt")) else "pending"


def same_value(have: Any, want: Any) -> bool:
    """Label equality: numbers within 1e-9 (``0.5 == "0.5"``), anything else as text."""
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        try:
            return math.isclose(float(have), float(want), abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return str(have) == str(want)


def label_columns(row: Dict[str, Any]) -> Dict[str, Any]:
    """The label part of a ``summary.json`` row: everything but ``run``, ``status`` and ``TARGET/metric``."""
    return {k: v for k, v in row.items() if k not in ("run", "status") and "/" not in str(k)}


class RunLog(NamedTuple):
    """The records of ``log.jsonl``: ``steps`` (loss terms per step) and ``evals`` (metrics per evaluation)."""

    steps: List[Dict[str, Any]]
    evals: List[Dict[str, Any]]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Run:
    """One run folder.

    ``name`` is how the run is listed (its folder name in a sweep, its path relative to the
    browsed folder in ``discover_runs``), ``labels`` its sweep labels (empty for a lone run),
    ``sweep`` the sweep folder it belongs to (None for a lone run), ``status`` as ``run_status``
    saw it when the run was listed.
    """

    path: str
    name: str = ""
    labels: Dict[str, Any] = field(default_factory=dict)
    status: str = ""
    sweep: Optional[str] = None

    def __post_init__(self) -> None:
        self.name = self.name or os.path.basename(os.path.normpath(self.path))
        self.status = self.status or run_status(self.path)

    # -- labels --------------------------------------------------------------------------------
    def matches(self, **labels: Any) -> bool:
        """Whether the run has every label given (a value, or a list/tuple/set of accepted values)."""
        for key, want in labels.items():
            if key not in self.labels:
                return False
            wanted = want if isinstance(want, (list, tuple, set)) else [want]
            if not any(same_value(self.labels[key], w) for w in wanted):
                return False
        return True

    # -- files ---------------------------------------------------------------------------------
    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _mapping(self, name: str, parse: Callable[[Any], Any], missing: str, expected: str) -> Dict[str, Any]:
        """File ``name`` of the run parsed by ``parse``; a ``BauError`` naming it when missing, unreadable or
        not a mapping."""
        path = self._file(name)
        if not os.path.isfile(path):
            raise BauError(f"run {self.path}: no {name} ({missing})")
        try:
            with open(path) as f:
                data = parse(f)
        except Exception:  # OSError, or whatever the parser raises on a malformed file
            raise BauError(f"{name} of run {self.path}: cannot be read (expected {expected})") from None
        if not isinstance(data, dict):
            raise BauError(f"{name} of run {self.path}: holds a {type(data).__name__}, expected {expected}")
        return data

    def config_dict(self) -> Dict[str, Any]:
        """``config.yaml`` as a nested mapping, as stored (for display and comparison)."""
        import yaml

        return self._mapping("config.yaml", lambda f: yaml.safe_load(f) or {}, "expected a run folder written by "
                             "`bau train`", "YAML with a mapping of sections: data:, model:, ...")

    def config(self):
        """The resolved ``bau.core.config.Config`` the run was trained with (``config.yaml``)."""
        from bau.core.config import config_from_dict

        stored = self.config_dict()
        try:
            return config_from_dict(stored)
        except BauError as e:
            raise BauError(f"config.yaml of run {self.path}: {e}") from None

    def results(self) -> Dict[str, Any]:
        """``results.json`` (written when the run finishes)."""
        return self._mapping("results.json", json.load, "the run is not finished", "a JSON object")

    def metrics(self) -> Dict[str, Dict[str, float]]:
        """``{target: {metric: value}}`` from ``results.json``, each value a number (fraction in [0, 1]).

        Raises ``BauError`` naming the file when ``metrics`` is not a mapping of targets to
        mappings, or a metric of ``METRIC_KEYS`` is not a number; other keys are left out.
        """
        where = f"results.json of run {self.path}"
        metrics = self.results().get("metrics", {})
        expected = "expected {target: {metric: number}}"
        if not isinstance(metrics, dict):
            raise BauError(f"{where}: 'metrics' is a {type(metrics).__name__}, {expected}")
        out: Dict[str, Dict[str, float]] = {}
        for target, values in metrics.items():
            if not isinstance(values, dict):
                raise BauError(f"{where}: metrics of {target!r} are {values!r}, {expected}")
            for key in METRIC_KEYS:
                if key in values and not _number(values[key]):
                    raise BauError(f"{where}: {target}/{key} is {values[key]!r}, expected a number")
            out[str(target)] = {k: float(values[k]) for k in METRIC_KEYS if k in values}
        return out

    def metric(self, target: str, key: str = "mAP") -> float:
        """Final ``key`` on ``target`` from ``results.json``."""
        metrics = self.metrics()
        if key not in metrics.get(target, {}):
            have = ", ".join(sorted(metrics)) or "none"
            raise BauError(f"run {self.path}: no {key} for target {target!r} in results.json (evaluated: {have})")
        return metrics[target][key]

    def log(self) -> RunLog:
        """The step and eval records of ``log.jsonl``; cut or non-JSON lines (a run still writing) are skipped."""
        steps: List[Dict[str, Any]] = []
        evals: List[Dict[str, Any]] = []
        path = self._file("log.jsonl")
        if os.path.isfile(path):
            with open(path, errors="replace") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(rec, dict) and rec.get("event") == "step":
                        steps.append(rec)
                    elif isinstance(rec, dict) and rec.get("event") == "eval":
                        evals.append(rec)
        return RunLog(steps, evals)

    def curve(self, target: str, key: str = "mAP", x: str = "step") -> List[Tuple[int, float]]:
        """The learning curve ``[(x, value), ...]`` of ``key`` on ``target`` from the ``eval`` records of
        ``log.jsonl``, in order of ``x`` (``step`` or ``epoch``; one point per x: the last record wins).
        ``key`` is a metric (fraction) or a geometry record (``L_align``, ``L_uniform``,
        ``L_uniform_source``); records without a number for it are left out. Seeds of one setting
        evaluate at the same epochs but not always the same steps (a sampler's pass can differ in
        length by a batch), so curves are compared across seeds by epoch."""
        if x not in ("step", "epoch"):
            raise BauError(f"curve of run {self.path}: x must be 'step' or 'epoch', got {x!r}")
        points: Dict[int, float] = {}
        for rec in self.log().evals:
            if rec.get("target") == target and _number(rec.get(key)) and _number(rec.get(x)):
                points[int(rec[x])] = float(rec[key])
        return sorted(points.items())

    def final_metrics(self) -> Dict[str, float]:
        """``{"TARGET/metric": value}``: from ``results.json`` when it has metrics, else the last
        evaluation of each target in ``log.jsonl`` (a run still training). Malformed results are a
        ``BauError`` (see ``metrics``)."""
        if os.path.isfile(self._file("results.json")):
            metrics = self.metrics()
            if metrics:
                return {f"{t}/{k}": v for t, m in metrics.items() for k, v in m.items()}
        last: Dict[str, Dict[str, Any]] = {}
        for rec in self.log().evals:
            target = rec.get("target")
            if isinstance(target, str) and (target not in last or _step(rec) >= _step(last[target])):
                last[target] = rec
        return {f"{t}/{k}": float(r[k]) for t, r in last.items() for k in METRIC_KEYS if _number(r.get(k))}

    # -- checkpoints ---------------------------------------------------------------------------
    def checkpoints(self) -> List[str]:
        """The ``*.pt`` files of the run folder, ``best.pt`` first, then ``last.pt``, then the rest by name."""
        try:
            names = [f for f in os.listdir(self.path) if f.endswith(".pt")]
        except OSError:
            return []
        return sorted(names, key=lambda f: (f != "best.pt", f != "last.pt", f))

    def checkpoint(self, which: str = "last") -> str:
        """Path of ``<which>.pt``: ``last`` (the model the final metrics belong to) or ``best``
        (picked on the target's test set: it flatters every method, so figures use ``last``)."""
        if which not in CHECKPOINTS:
            raise BauError(f"checkpoint {which!r}: expected one of {', '.join(CHECKPOINTS)}")
        path = self._file(f"{which}.pt")
        if not os.path.isfile(path):
            raise BauError(f"run {self.path}: no {which}.pt" + (" (the run never finished an epoch)"
                                                                 if which == "last" else ""))
        return path


def _step(rec: Dict[str, Any]) -> float:
    return float(rec["step"]) if _number(rec.get("step")) else -1.0


def _is_run_folder(files: Sequence[str]) -> bool:
    return "config.yaml" in files and (any(m in files for m in RUN_MARKERS) or any(f.endswith(".pt") for f in files))


def read_summary(sweep_dir: str) -> List[Dict[str, Any]]:
    """The rows of a sweep's ``summary.json`` (for the figure scripts and the app)."""
    path = os.path.join(sweep_dir, "summary.json")
    if not os.path.isfile(path):
        raise BauError(f"sweep folder {sweep_dir}: no summary.json (expected a folder made by `bau sweep`)")
    with open(path) as f:
        return json.load(f)["runs"]


def _summary_labels(sweep_dir: str) -> Dict[str, Dict[str, Any]]:
    """``{run name: labels}`` of a sweep's ``summary.json`` (empty when it cannot be read)."""
    try:
        rows = read_summary(sweep_dir)
    except (BauError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    if not isinstance(rows, list):
        return {}
    return {str(r.get("run")): label_columns(r) for r in rows if isinstance(r, dict)}


def visible_walk(root: str) -> Iterator[Tuple[str, List[str]]]:
    """``(folder, file names)`` of ``root`` and every folder below it, in sorted order.

    Folders whose name starts with a dot (``.bau_cache``) are never visited, and symlinked folders
    are not followed (a symlink could lead anywhere).
    """
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(folder, d)))
        yield folder, files


def discover_runs(root: str) -> List[Run]:
    """Every run folder under ``root`` (recursively), sorted by name (its path relative to ``root``).

    Runs inside a sweep folder (one with ``summary.json``) get the sweep's labels. Folders whose
    name starts with a dot (``.bau_cache``) are never visited, and symlinked folders are not
    followed (a symlink could lead anywhere).
    """
    runs: List[Run] = []
    sweeps: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for folder, files in visible_walk(root):
        if "summary.json" in files:
            sweeps[folder] = _summary_labels(folder)
        if not _is_run_folder(files):
            continue
        rel = os.path.relpath(folder, root).replace(os.sep, "/")
        parent = os.path.dirname(folder)
        sweep = os.path.relpath(parent, root).replace(os.sep, "/") if parent in sweeps else None
        labels = sweeps.get(parent, {}).get(os.path.basename(folder), {})
        runs.append(Run(path=folder, name=rel, labels=labels, sweep=sweep))
    return sorted(runs, key=lambda r: r.name)


def sweep_runs(sweep_dir: str) -> List[Run]:
    """Every run listed in ``sweep_dir/summary.json``, in summary order, with its current status."""
    if not os.path.isdir(sweep_dir):
        raise BauError(f"sweep folder {sweep_dir}: not found (expected the --out folder of `bau sweep`)")
    try:
        rows = read_summary(sweep_dir)
    except (OSError, ValueError, KeyError, TypeError):
        raise BauError(f"sweep folder {sweep_dir}: summary.json is unreadable "
                       f"(rerun `bau sweep` to rewrite it)") from None
    runs = []
    for row in rows:
        if not isinstance(row, dict) or not isinstance(row.get("run"), str):
            raise BauError(f"sweep folder {sweep_dir}: summary.json has a row without a run name")
        runs.append(Run(path=os.path.join(sweep_dir, row["run"]), name=row["run"], labels=label_columns(row),
                        sweep=sweep_dir))
    return runs


def select(runs: Sequence[Run], **labels: Any) -> List[Run]:
    """The runs having every label given (see ``Run.matches``), in the order given."""
    return [r for r in runs if r.matches(**labels)]


def open_run_folder(run_dir: str) -> None:
    """Create ``run_dir`` (and its parents) or raise one line saying why it cannot be a run folder."""
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise BauError(f"run folder {run_dir}: is a file; expected a folder (or a path that does not exist yet)")
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as e:
        raise BauError(f"run folder {run_dir}: cannot be created ({e.strerror or e})") from None
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise BauError(f"run folder {run_dir}: not writable; expected a folder this user can write")


def clear_run_folder(run_dir: str, force: bool) -> List[str]:
    """Make ``run_dir`` ready for a new run: refuse (one line) when it holds any of ``RUN_ARTEFACTS``,
    or remove them when ``force``. Returns the names removed. Called with the folder's lock held."""
    found = [name for name in RUN_ARTEFACTS if os.path.lexists(os.path.join(run_dir, name))]
    if found and not force:
        raise BauError(f"run folder {run_dir} already holds a run ({', '.join(found)}); resume it with "
                       f"`bau train --resume {run_dir}`, overwrite it with --force, or choose another --out")
    for name in found:
        try:
            os.remove(os.path.join(run_dir, name))
        except OSError as e:
            raise BauError(f"run folder {run_dir}: {name} cannot be removed for --force "
                           f"({describe_os_error(e)})") from None
    return found


def nothing_trained(run_dir: str) -> bool:
    """Whether ``run_dir`` holds no checkpoint and no results: at most the config and log of a run
    stopped before its first checkpoint, which ``bau sweep`` and ``bau demo`` start again (``force``)."""
    return not any(os.path.lexists(os.path.join(run_dir, n)) for n in ("last.pt", "best.pt", "results.json"))


def remove_orphan_temp_files(run_dir: str) -> List[str]:
    """Delete the ``.NAME.*.tmp`` files an atomic write leaves when its process is killed mid-write.

    Only called with the run folder's lock held, so no live writer owns them."""
    removed = []
    for name in os.listdir(run_dir):
        if name.startswith(".") and name.endswith(".tmp"):
            try:
                os.remove(os.path.join(run_dir, name))
                removed.append(name)
            except OSError:
                pass
    return removed


def truncate_log(log_path: str, step: int, epoch: int, evaluated: bool = True) -> int:
    """Keep the log records of the first ``step`` steps and ``epoch`` epochs only, so a resumed run
    never repeats a step (records written after the checkpoint are replayed by the resume).

    ``evaluated=False``: the checkpoint's own epoch was not evaluated yet; its eval records go too.
    Lines that are not a JSON record with a numeric ``step`` / ``epoch`` (a line cut by the
    interruption, invalid bytes, a hand edit) are dropped; returns how many.
    """
    if not os.path.exists(log_path):
        return 0
    kept, dropped = [], 0
    with open(log_path, "rb") as f:
        for raw in f:
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode("utf-8"))
            except ValueError:  # invalid bytes or a line cut by the interruption
                rec = None
            event = rec.get("event") if isinstance(rec, dict) else None
            number = "step" if event == "step" else "epoch"
            value = rec.get(number, 0) if isinstance(rec, dict) else None
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                dropped += 1
                continue
            if event == "step":
                keep = value <= step
            elif event == "eval":
                keep = value < epoch or (evaluated and value == epoch)
            else:
                keep = value <= epoch
            if keep:
                kept.append(json.dumps(rec))
    atomic_write_text(log_path, "".join(k + "\n" for k in kept))
    return dropped


def resume_config(run_dir: str, overrides: Optional[List[str]] = None) -> Config:
    """The config of an existing run (from its last checkpoint), for ``bau train --resume``."""
    path = os.path.join(run_dir, "last.pt")
    if not os.path.isfile(path):
        raise BauError(f"--resume {run_dir}: no last.pt in that folder (nothing to resume; start it with --out)")
    cfg = config_from_dict(load_checkpoint(path)["config"])
    if overrides:
        apply_overrides(cfg, overrides)
    return cfg.validate()
