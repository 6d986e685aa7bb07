"""The Runs page's tables: runs, loss curves and config differences as DataFrames.

Finding runs and reading their files is the run layer's (``bau.runs``); this module only shapes
what it reads for display. A run whose files are malformed (say ``results.json`` with metrics
that are not numbers) gets its message in the ``error`` column of its own row; every other row
is shown as usual.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pandas as pd

from bau.core.errors import BauError
from bau.runs.folder import Run
from bau.runs.statistics import spread

# Columns of a step record that are bookkeeping, not loss terms.
STEP_META = ("event", "epoch", "iter", "step", "lr", "time_s")


def log_frames(run: Run) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """``(steps, evals)`` of a run's ``log.jsonl``, one row per record (empty tables without a log)."""
    log = run.log()
    return pd.DataFrame(log.steps), pd.DataFrame(log.evals)


# The geometry every evaluation logs (bau.engine.trainer, eval.geometry): Eq. 1 and Eq. 2 of the target's
# features, Eq. 2 of the fixed source sample.
GEOMETRY_KEYS = {"L_align": "L_align (target)", "L_uniform": "L_uniform (target)",
                 "L_uniform_source": "L_uniform (source sample)"}


def geometry_long(evals: pd.DataFrame) -> pd.DataFrame:
    """``(step, epoch, target, quantity, value)`` rows of the geometry in a run's eval records; empty
    when the run logged none (trained before ``eval.geometry``, or with it off)."""
    keys = [k for k in GEOMETRY_KEYS if k in evals.columns]
    if evals.empty or not keys:
        return pd.DataFrame(columns=["step", "epoch", "target", "quantity", "value"])
    long = evals.melt(id_vars=["step", "epoch", "target"], value_vars=keys, var_name="quantity", value_name="value")
    long = long.dropna(subset=["value"])
    long["quantity"] = long["quantity"].map(GEOMETRY_KEYS)
    return long


def loss_terms(steps: pd.DataFrame) -> List[str]:
    """The numeric loss-term columns of a steps table (``ce``, ``tri``, ..., ``total``) in log order."""
    return [c for c in steps.columns if c not in STEP_META and pd.api.types.is_numeric_dtype(steps[c])]


def runs_table(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run: name, sweep, labels, status, checkpoints, error, then final metrics.

    ``error`` is empty for a run whose files read fine, else the message of what is wrong with it.
    """
    rows = []
    for r in runs:
        row: Dict[str, Any] = {"run": r.name, "sweep": r.sweep or "", **r.labels, "status": r.status,
                               "checkpoints": ", ".join(r.checkpoints()), "error": ""}
        try:
            row.update(r.final_metrics())
        except BauError as e:
            row["error"] = str(e)
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    if not table["error"].any():
        table = table.drop(columns=["error"])
    fixed = ("run", "sweep", "status", "checkpoints", "error")
    first = ["run", "sweep"] + [c for c in table.columns if c not in fixed and "/" not in c] + \
        [c for c in fixed[2:] if c in table.columns]
    return table[first + [c for c in table.columns if c not in first]]


def sweep_state_table(sweep_dir: str) -> pd.DataFrame:
    """``bau sweep --status`` of a sweep folder (``bau.engine.sweep_status``): one row per run with its state
    (pending, queued, running, preempted, finished, failed), job id, last logged step and detail."""
    from bau.engine.sweep_status import sweep_rows

    table = pd.DataFrame(sweep_rows(sweep_dir), columns=["run", "state", "job", "step", "detail"])
    return table.rename(columns={"step": "last step"})


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


def mean_over_seeds(table: pd.DataFrame, x: str, y: str, color: Optional[str] = None) -> pd.DataFrame:
    """One row per (``x``, ``color``) point of a sweep table: ``mean``, ``std`` (None for n = 1) and
    ``n`` of ``y`` over the runs' ``seed`` label (``bau.runs.statistics.spread``). Without a ``seed`` column
    (or when it is the x axis or the lines) every run is its own point, n = 1.
    """
    keys = [x] + ([color] if color else [])
    rows = []
    if "seed" not in table.columns or "seed" in keys:
        for _, r in table.iterrows():
            rows.append({**{k: r[k] for k in keys}, "mean": float(r[y]), "std": None, "n": 1})
        return pd.DataFrame(rows)
    for key, group in table.dropna(subset=[y]).groupby(keys, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        seeds = group["seed"].tolist()
        if len(set(seeds)) != len(seeds):
            where = ", ".join(f"{k}={v}" for k, v in zip(keys, key))
            raise BauError(f"sweep view: two runs with the same seed at {where} "
                           f"({', '.join(group['run'].astype(str))}); pick runs that differ in seed only")
        s = spread(dict(zip(seeds, group[y].astype(float))))
        rows.append({**dict(zip(keys, key)), "mean": s.mean, "std": s.std, "n": s.n})
    return pd.DataFrame(rows)
