"""Finding the runs under the runs folder and reading what ``bau train`` / ``bau sweep`` wrote.

A run folder holds ``config.yaml`` plus at least one of ``log.jsonl``, ``results.json`` or a
``*.pt`` checkpoint. A sweep folder holds ``summary.json`` and its runs as sub-folders; the
runs inherit the sweep's labels (``method``, ``aug_prob``, ...) so they can be compared by them.
Folders whose name starts with a dot (the app's own ``.bau_cache``) are never visited, and
symlinked folders are not followed (a symlink could lead outside the runs folder).

Everything here tolerates half-written files: a run being trained right now has a log whose
last line may be cut; such lines are skipped.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import pandas as pd
import yaml

from bau.errors import BauError
from bau.evaluation import METRIC_KEYS
from bau.sweep import run_status

RUN_MARKERS = ("log.jsonl", "results.json", "last.pt", "best.pt")
# Columns of a step record that are bookkeeping, not loss terms.
STEP_META = ("event", "epoch", "iter", "step", "lr", "time_s")
METRICS = METRIC_KEYS


@dataclass
class RunInfo:
    """One run folder. ``name`` is its path relative to the runs folder (with ``/``)."""

    path: str
    name: str
    status: str
    checkpoints: List[str]
    sweep: Optional[str] = None
    labels: Dict[str, Any] = field(default_factory=dict)


def _is_run_folder(files: List[str]) -> bool:
    return "config.yaml" in files and (any(m in files for m in RUN_MARKERS) or any(f.endswith(".pt") for f in files))


def _sweep_labels(sweep_dir: str) -> Dict[str, Dict[str, Any]]:
    """``{run name: its label columns}`` from a sweep's ``summary.json`` (empty if unreadable)."""
    try:
        with open(os.path.join(sweep_dir, "summary.json")) as f:
            rows = json.load(f).get("runs", [])
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}
    return {str(r.get("run")): label_columns(r) for r in rows if isinstance(r, dict)}


def label_columns(row: Dict[str, Any]) -> Dict[str, Any]:
    """The label part of a summary row: everything but ``run``, ``status`` and ``TARGET/metric``."""
    return {k: v for k, v in row.items() if k not in ("run", "status") and "/" not in k}


def discover_runs(root: str) -> List[RunInfo]:
    """Every run folder under ``root`` (recursively), sorted by name."""
    runs: List[RunInfo] = []
    sweeps: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(folder, d)))
        if "summary.json" in files:
            sweeps[folder] = _sweep_labels(folder)
        if not _is_run_folder(files):
            continue
        rel = os.path.relpath(folder, root).replace(os.sep, "/")
        parent = os.path.dirname(folder)
        sweep = os.path.relpath(parent, root).replace(os.sep, "/") if parent in sweeps else None
        labels = sweeps.get(parent, {}).get(os.path.basename(folder), {})
        ckpts = sorted(f for f in files if f.endswith(".pt"))
        # best first: it is the checkpoint a researcher usually wants to look at
        ckpts.sort(key=lambda f: (f != "best.pt", f != "last.pt", f))
        runs.append(RunInfo(path=folder, name="." if rel == "." else rel, status=run_status(folder),
                            checkpoints=ckpts, sweep=sweep, labels=labels))
    return sorted(runs, key=lambda r: r.name)


def read_config(run_dir: str) -> Dict[str, Any]:
    """The run's resolved ``config.yaml`` as a nested dict."""
    path = os.path.join(run_dir, "config.yaml")
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        raise BauError(f"config file {path}: cannot be read as YAML") from None
    if not isinstance(data, dict):
        raise BauError(f"config file {path}: expected a mapping of sections")
    return data


def flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """``{"data": {"root": x}} -> {"data.root": x}``; lists become comma-joined strings."""
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = ",".join(map(str, v)) if isinstance(v, list) else v
    return out


def read_log(run_dir: str) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """``(steps, evals)`` from ``log.jsonl``: one row per step record / per evaluation record.

    Cut or non-JSON lines (a run still writing) are skipped; a missing log gives empty tables.
    """
    steps: List[Dict[str, Any]] = []
    evals: List[Dict[str, Any]] = []
    path = os.path.join(run_dir, "log.jsonl")
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if not isinstance(rec, dict):
                    continue
                if rec.get("event") == "step":
                    steps.append(rec)
                elif rec.get("event") == "eval":
                    evals.append(rec)
    return pd.DataFrame(steps), pd.DataFrame(evals)


def loss_terms(steps: pd.DataFrame) -> List[str]:
    """The numeric loss-term columns of a steps table (``ce``, ``tri``, ..., ``total``) in log order."""
    return [c for c in steps.columns if c not in STEP_META and pd.api.types.is_numeric_dtype(steps[c])]


def read_results(run_dir: str) -> Dict[str, Any]:
    """``results.json`` of a finished run, or ``{}``."""
    try:
        with open(os.path.join(run_dir, "results.json")) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}


def final_metrics(run: RunInfo) -> Dict[str, float]:
    """``{"TARGET/metric": value}`` of a run: from ``results.json``, else its last eval records."""
    metrics = read_results(run.path).get("metrics") or {}
    out = {f"{t}/{k}": v for t, m in metrics.items() if isinstance(m, dict) for k, v in m.items() if k in METRICS}
    if out:
        return out
    _, evals = read_log(run.path)
    if evals.empty:
        return {}
    last = evals.sort_values("step").groupby("target").tail(1)
    return {f"{r['target']}/{k}": r[k] for _, r in last.iterrows() for k in METRICS if k in r}


def runs_table(runs: List[RunInfo]) -> pd.DataFrame:
    """One row per run: name, sweep, labels, status, checkpoints, then final metrics (for overviews)."""
    rows = [{"run": r.name, "sweep": r.sweep or "", **r.labels, "status": r.status,
             "checkpoints": ", ".join(r.checkpoints), **final_metrics(r)} for r in runs]
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    first = ["run", "sweep"] + [c for c in table.columns if c not in ("run", "sweep", "status", "checkpoints")
                                and "/" not in c] + ["status", "checkpoints"]
    return table[first + [c for c in table.columns if c not in first]]


def config_differences(configs: Dict[str, Dict[str, Any]]) -> pd.DataFrame:
    """The config options whose values differ between runs: rows = option, columns = run."""
    flat = {name: flatten(c) for name, c in configs.items()}
    keys = sorted({k for f in flat.values() for k in f})
    rows = []
    for k in keys:
        values = [flat[n].get(k) for n in flat]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            rows.append({"option": k, **{n: str(flat[n].get(k)) for n in flat}})
    return pd.DataFrame(rows)


def downsample_steps(steps: pd.DataFrame, max_points: int = 1500) -> pd.DataFrame:
    """At most ``max_points`` rows of a steps table: means over consecutive equal-size step windows.

    A 60-epoch run logs tens of thousands of steps; a browser chart of all of them is slow and
    the window mean is what one reads off a noisy loss curve anyway.
    """
    if len(steps) <= max_points or max_points < 1:
        return steps
    window = -(-len(steps) // max_points)  # ceil
    numeric = steps.select_dtypes("number").reset_index(drop=True)
    out = numeric.groupby(numeric.index // window).mean()
    out["step"] = numeric["step"].groupby(numeric.index // window).max().to_numpy()
    return out


def long_steps(steps: pd.DataFrame, terms: List[str]) -> pd.DataFrame:
    """Steps in long form (``step``, ``epoch``, ``term``, ``value``) for one chart per loss term."""
    cols = [c for c in ("step", "epoch") if c in steps.columns]
    return steps[cols + terms].melt(id_vars=cols, value_vars=terms, var_name="term", value_name="value")


def short_names(names: List[str]) -> Dict[str, str]:
    """``{name: label}`` without the folders all names share (``sweep/a``, ``sweep/b`` -> ``a``, ``b``)."""
    parts = [n.split("/") for n in names]
    common = 0
    while parts and all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    return {n: "/".join(p[common:]) for n, p in zip(names, parts)}
