"""``bau sweep``: train a grid of runs (e.g. baseline and BAU x p in {0, .25, .5, .75, 1}), skip the
finished ones, resume interrupted ones, and keep one summary table up to date.

A sweep file::

    base: ../demo.yaml                 # the config every run starts from (relative to this file)
    overrides: [train.epochs=4]        # applied to every run
    grids:                             # the runs are the union of the grids' products
      - method:                        # a named axis: label -> overrides
          baseline: {loss.two_view: false, loss.align: false, loss.uniform: false, loss.domain: false}
          bau: {}
        data.aug_prob: [0.0, 0.5, 1.0]  # a key axis: one run per value

Run folders are named after their labels (``method-bau__aug_prob-0.5``); ``summary.json`` and
``summary.csv`` list every run with its labels, status and metrics, and the figure scripts find
runs by label through them.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import yaml

from bau.atomic import atomic_write_json, atomic_write_text
from bau.config import load_config, load_yaml
from bau.errors import BauError


@dataclass
class RunSpec:
    name: str
    labels: Dict[str, Any]
    overrides: List[str] = field(default_factory=list)


def _format_value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return str(v)


def expand_grid(grid: Dict[str, Any], where: str) -> List[RunSpec]:
    if not isinstance(grid, dict) or not grid:
        raise BauError(f"{where}: expected a non-empty mapping of axes")
    axes = []
    for axis, values in grid.items():
        if isinstance(values, dict):  # named variants
            choices = []
            for label, ov in values.items():
                if ov is not None and not isinstance(ov, dict):
                    raise BauError(f"{where}: variant {axis}.{label} must be a mapping of key: value overrides")
                choices.append((str(label), [f"{k}={_format_value(v)}" for k, v in (ov or {}).items()]))
            axes.append((axis, choices, True))
        elif isinstance(values, list) and values:
            axes.append((axis, [(v, [f"{axis}={_format_value(v)}"]) for v in values], False))
        else:
            raise BauError(f"{where}: axis {axis!r} must be a list of values or a mapping of named variants")
    runs = []
    for combo in itertools.product(*[a[1] for a in axes]):
        labels, overrides, parts = {}, [], []
        for (axis, _, named), (label, ov) in zip(axes, combo):
            short = axis.rsplit(".", 1)[-1]
            labels[short] = label
            overrides += ov
            parts.append(f"{short}-{_format_value(label)}")
        runs.append(RunSpec("__".join(parts), labels, overrides))
    return runs


def load_sweep(path: str) -> Dict[str, Any]:
    data = load_yaml(path)
    if "base" not in data or "grids" not in data:
        raise BauError(f"sweep file {path}: expected keys 'base' (a config file) and 'grids' (a list of grids)")
    base = os.path.join(os.path.dirname(path), data["base"])
    if not os.path.isfile(base):
        raise BauError(f"sweep file {path}: base config {base} not found")
    common = [str(o) for o in data.get("overrides", []) or []]
    grids = data["grids"] if isinstance(data["grids"], list) else [data["grids"]]
    runs: List[RunSpec] = []
    for i, g in enumerate(grids):
        runs += expand_grid(g, f"sweep file {path}: grids[{i}]")
    names = [r.name for r in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BauError(f"sweep file {path}: runs {dupes} appear in more than one grid")
    for r in runs:  # fail before training anything if any run's config is invalid
        load_config(base, common + r.overrides)
    return {"base": base, "overrides": common, "runs": runs, "path": path}


def run_status(run_dir: str) -> str:
    results = os.path.join(run_dir, "results.json")
    if os.path.isfile(results):
        try:
            with open(results) as f:
                if json.load(f).get("finished"):
                    return "finished"
        except (OSError, json.JSONDecodeError):
            pass
    return "interrupted" if os.path.isfile(os.path.join(run_dir, "last.pt")) else "pending"


def write_summary(out: str, sweep: Dict[str, Any]) -> List[Dict[str, Any]]:
    rows = []
    for r in sweep["runs"]:
        run_dir = os.path.join(out, r.name)
        row: Dict[str, Any] = {"run": r.name, **r.labels, "status": run_status(run_dir)}
        if row["status"] == "finished":
            with open(os.path.join(run_dir, "results.json")) as f:
                res = json.load(f)
            for target, m in res.get("metrics", {}).items():
                for k, v in m.items():
                    row[f"{target}/{k}"] = v
        rows.append(row)
    atomic_write_json(os.path.join(out, "summary.json"), {"sweep": sweep["path"], "base": sweep["base"],
                                                          "overrides": sweep["overrides"], "runs": rows})
    keys: List[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(os.path.join(out, "summary.csv"), buf.getvalue())
    return rows


def run_sweep(path: str, out: str, extra_overrides: Optional[List[str]] = None, progress: bool = True,
              only: Optional[List[str]] = None, echo=print) -> List[Dict[str, Any]]:
    from bau.trainer import Trainer, resume_config

    sweep = load_sweep(path)
    if extra_overrides:
        sweep["overrides"] = sweep["overrides"] + list(extra_overrides)
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, "sweep.yaml"), yaml.safe_dump(
        {"source": path, "base": sweep["base"], "overrides": sweep["overrides"],
         "runs": [{"name": r.name, "labels": r.labels, "overrides": r.overrides} for r in sweep["runs"]]},
        sort_keys=False))
    runs = [r for r in sweep["runs"] if not only or r.name in only]
    for i, r in enumerate(runs, 1):
        run_dir = os.path.join(out, r.name)
        status = run_status(run_dir)
        if status == "finished":
            echo(f"[{i}/{len(runs)}] {r.name}: finished, skipped")
            continue
        if status == "interrupted":
            echo(f"[{i}/{len(runs)}] {r.name}: resuming")
            Trainer(resume_config(run_dir), run_dir, resume=True, progress=progress, echo=echo).fit()
        else:
            echo(f"[{i}/{len(runs)}] {r.name}: training")
            cfg = load_config(sweep["base"], sweep["overrides"] + r.overrides)
            Trainer(cfg, run_dir, progress=progress, echo=echo).fit()
        write_summary(out, sweep)
    return write_summary(out, sweep)


def read_summary(sweep_dir: str) -> List[Dict[str, Any]]:
    """The rows of a sweep's ``summary.json`` (for the figure scripts and the app)."""
    path = os.path.join(sweep_dir, "summary.json")
    if not os.path.isfile(path):
        raise BauError(f"sweep folder {sweep_dir}: no summary.json (expected a folder made by `bau sweep`)")
    with open(path) as f:
        return json.load(f)["runs"]
