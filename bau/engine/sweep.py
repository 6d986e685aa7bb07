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

Seeds are an axis like any other: ``seeds: [1, 2, 3]`` at the top of a sweep file repeats every
run of the grids with ``train.seed`` = each value (label ``seed``, folder suffix ``__seed-1``);
a ``train.seed: [...]`` axis inside a grid does the same for that grid. The figure scripts and
tables aggregate over the ``seed`` label (mean, spread, n) and never pick one seed silently.

``--jobs N`` trains N runs at once, each in its own process (give each run
``train.threads`` = cores / N); the run folders' locks keep two processes off one run.
``--launcher slurm`` submits the runs as a Slurm job array instead, and ``--launcher
submitit-local`` runs the same jobs on this machine (``bau.engine.cluster``; a sweep file's ``launcher:``
section holds the same options); ``bau sweep --status`` shows where each run stands
(``bau.engine.sweep_status``). A run
whose process fails or dies (killed, out of memory) fails alone: the others finish, and the sweep
then stops with one line naming every failed run and why (``bau sweep`` exits with status 2).

A sweep folder holds one setting. Each run folder keeps the config it trained with
(``config.yaml``) and the sweep settings that asked for it (``sweep_run.json``: sweep file,
base config, overrides, labels). Before anything is trained, every run that has trained (finished
or interrupted) is compared with the config the sweep asks for now; a difference (say
``train.epochs=5`` on the command line after a sweep of 4 epochs) stops the sweep with one line
naming the run and the differing options, so a finished run is never reported for settings it
did not train. ``--force`` retrains such runs from scratch (their folder is removed first, cached
features included). Settings that only change how fast a run computes (``RUNTIME_KEYS``) are not
compared. ``--only`` with a name that is not a run of the sweep is an error.
"""
from __future__ import annotations

import csv
import io
import itertools
import os
import shutil
import signal
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import yaml

from bau.core.atomic import atomic_write_json, atomic_write_text
from bau.core.config import Config, load_config, load_yaml
from bau.core.errors import BauError, one_line
from bau.engine.trainer import train_run_folder
from bau.runs.folder import Run, run_status

# Options that change where or how fast a run computes, not what it learns: not compared.
RUNTIME_KEYS = frozenset({"data.workers", "data.image_cache_mb", "train.threads", "train.device", "train.channels_last",
                          "eval.batch_size"})


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


def with_seeds(runs: List[RunSpec], seeds: Any, where: str) -> List[RunSpec]:
    """Every run once per seed of the sweep's ``seeds:`` list (label ``seed``, ``train.seed=S``)."""
    if seeds is None:
        return runs
    if (not isinstance(seeds, list) or not seeds or len(set(map(str, seeds))) != len(seeds)
            or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in seeds)):
        raise BauError(f"{where}: seeds: expected a list of distinct integers >= 0, got {seeds!r}")
    out = []
    for r in runs:
        if "seed" in r.labels:
            raise BauError(f"{where}: run {r.name} has a train.seed axis and the file a seeds: list; use one")
        out += [RunSpec(f"{r.name}__seed-{s}", {**r.labels, "seed": s}, r.overrides + [f"train.seed={s}"])
                for s in seeds]
    return out


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
    runs = with_seeds(runs, data.get("seeds"), f"sweep file {path}")
    names = [r.name for r in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BauError(f"sweep file {path}: runs {dupes} appear in more than one grid")
    for r in runs:  # fail before training anything if any run's config is invalid
        load_config(base, common + r.overrides)
    return {"base": base, "overrides": common, "runs": runs, "path": path, "launcher": data.get("launcher")}


def write_summary(out: str, sweep: Dict[str, Any]) -> List[Dict[str, Any]]:
    rows = []
    for r in sweep["runs"]:
        run = Run(os.path.join(out, r.name), r.name, r.labels)
        row: Dict[str, Any] = {"run": r.name, **r.labels, "status": run.status}
        if run.status == "finished":
            row.update(run.final_metrics())
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


def _flat(cfg: Config) -> Dict[str, Any]:
    return {f"{section}.{key}": value for section, values in cfg.to_dict().items() for key, value in values.items()}


def trained_config(run_dir: str) -> Config:
    """The config a run trained with: its ``config.yaml``, else its ``last.pt``'s."""
    from bau.core.config import config_from_dict
    from bau.runs.checkpoint import load_checkpoint

    if os.path.isfile(os.path.join(run_dir, "config.yaml")):
        return Run(run_dir).config()
    return config_from_dict(load_checkpoint(os.path.join(run_dir, "last.pt"))["config"])


def config_changes(trained: Config, wanted: Config) -> List[str]:
    """``["train.epochs 4 -> 5", ...]``: the options (but ``RUNTIME_KEYS``) whose values differ."""
    have, want = _flat(trained), _flat(wanted)
    return [f"{k} {have.get(k)!r} -> {want.get(k)!r}" for k in sorted(set(have) | set(want))
            if k not in RUNTIME_KEYS and have.get(k) != want.get(k)]


def _stale_runs(sweep: Dict[str, Any], out: str) -> Dict[str, str]:
    """``{run name: what differs}`` for every run that trained with other settings than ``sweep`` asks for."""
    stale = {}
    for r in sweep["runs"]:
        run_dir = os.path.join(out, r.name)
        if run_status(run_dir) == "pending":
            continue
        try:
            wanted = load_config(sweep["base"], sweep["overrides"] + r.overrides)
            changes = config_changes(trained_config(run_dir), wanted)
        except BauError as e:
            changes = [f"its stored config cannot be read ({e})"]
        if changes:
            shown = ", ".join(changes[:4]) + (f" and {len(changes) - 4} more" if len(changes) > 4 else "")
            stale[r.name] = shown
    return stale


def _check_stale(stale: Dict[str, str], selected: List[str], force: bool, out: str) -> List[str]:
    """The stale runs ``--force`` retrains; any other stale run is a ``BauError`` (one line)."""
    if not stale:
        return []
    blocking = [n for n in stale if not (force and n in selected)]
    if not blocking:
        return [n for n in selected if n in stale]
    name = blocking[0]
    more = f" ({len(blocking) - 1} more runs differ: {', '.join(blocking[1:])})" if len(blocking) > 1 else ""
    fix = ("add it to --only to retrain it, or use another --out" if force
           else "rerun with --force to retrain it from scratch, or use another --out")
    raise BauError(f"sweep folder {out}: run {name} was trained with other settings than asked now "
                   f"({stale[name]}){more}; {fix}")


def _remove_run(run_dir: str) -> None:
    """Remove a stale run folder: renamed away first, so a crash never leaves half a folder under its name.

    Refused (one line naming the holder) while another trainer holds the folder's lock."""
    from bau.runs.lock import RunLock

    with RunLock(run_dir):  # nobody is writing it now
        pass
    parked = os.path.join(os.path.dirname(run_dir), f".{os.path.basename(run_dir)}.stale-{os.getpid()}")
    try:
        os.replace(run_dir, parked)
        shutil.rmtree(parked)
    except OSError as e:
        raise BauError(f"run folder {run_dir}: cannot be removed for retraining ({e.strerror})") from None


def _quiet(line: str) -> None:
    pass


def _launch(todo, out: str, sweep: Dict[str, Any], launcher: str, options, echo) -> List[Dict[str, Any]]:
    """Submit ``todo`` through submitit (``bau.engine.cluster``); wait for ``submitit-local`` jobs only."""
    from bau.engine.cluster import read_submitted, submit_runs, wait_for
    from bau.engine.sweep_status import run_row
    from bau.runs.lock import stale_bound

    submitted, bound, fresh = read_submitted(out), stale_bound(), []
    for item in todo:  # a run whose job is queued or running is not submitted twice
        name = os.path.basename(item[1])
        row = run_row(out, name, submitted.get(name), bound)
        if row["state"] in ("queued", "running"):
            echo(f"{item[0].split(':')[0]}: {row['state']} (job {row['job']}), not submitted again")
        else:
            fresh.append(item)
    todo = fresh
    jobs = submit_runs(todo, out, launcher, options, echo)
    if launcher == "slurm":
        echo(f"{len(jobs)} job(s) submitted; watch them with `bau sweep --status --out {out}`")
        return write_summary(out, sweep)
    failures = wait_for(jobs, [os.path.basename(t[1]) for t in todo], echo)
    rows = write_summary(out, sweep)
    if failures:
        raise BauError(f"sweep folder {out}: {len(failures)} run(s) failed; first: {failures[0]}")
    return rows


def _worker(run_dir: str, cfg_dict: Optional[Dict[str, Any]], record: Dict[str, Any], conn) -> None:
    """The body of a ``--jobs`` process: train one run, send ``None`` or the error's line back."""
    try:
        train_run_folder(run_dir, cfg_dict, record, False, _quiet)
        conn.send(None)
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which names the run
        conn.send(one_line(e) or type(e).__name__)
        raise SystemExit(2)


def _train_in_processes(todo: List[tuple], jobs: int, echo,
                        on_done: Callable[[], Any] = lambda: None) -> List[Tuple[str, str]]:
    """Train the ``todo`` runs, ``jobs`` at a time, each in its own fresh (spawned) process.

    Each run has its own process, so a process that dies (killed, out of memory) fails its own run
    only; the others go on. ``on_done()`` is called after each run ends (the sweep's summary is
    rewritten). Returns ``[(run name, why)]`` for the runs that failed."""
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("spawn")  # fresh interpreters, not forks of running thread pools
    pending, running, failures = list(todo), {}, []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                line, run_dir, cfg, record = pending.pop(0)
                receive, send = ctx.Pipe(duplex=False)
                process = ctx.Process(target=_worker, args=(run_dir, cfg, record, send))
                process.start()
                send.close()
                running[process.sentinel] = (process, receive, os.path.basename(run_dir))
                echo(f"{line} (in a worker process)")
            for sentinel in wait(list(running)):
                process, receive, name = running.pop(sentinel)
                process.join()
                try:
                    error = receive.recv() if receive.poll() else None
                except (EOFError, OSError):
                    error = None
                receive.close()
                on_done()
                if process.exitcode == 0 and error is None:
                    echo(f"{name}: finished")
                    continue
                if error is None:
                    code = process.exitcode
                    error = (f"killed by signal {-code} ({signal.Signals(-code).name})" if code < 0
                             else f"its process exited with status {code}")
                failures.append((name, error))
                echo(f"{name}: failed: {error}")
    finally:
        for process, _, _ in running.values():  # interrupted: never leave a worker behind
            process.terminate()
            process.join()
    return failures


def run_sweep(path: str, out: str, extra_overrides: Optional[List[str]] = None, progress: bool = True,
              only: Optional[List[str]] = None, echo=print, force: bool = False,
              jobs: int = 1, launcher: Optional[str] = None,
              launcher_given: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    """Train the sweep's runs into ``out`` (skip finished, resume interrupted); returns the summary rows.

    Args:
        path: the sweep file.
        out: the sweep folder.
        extra_overrides: ``section.key=value`` for every run (after the sweep file's).
        only: train only these runs (names as in the sweep); an unknown name is a ``BauError``.
        force: retrain (from scratch) the selected runs that trained with other settings.
        jobs: runs trained at once, each in its own process (``launcher`` local).
        launcher: ``local`` (this process, or ``jobs`` processes), ``slurm`` (submit a job array and
            return) or ``submitit-local`` (the same jobs on this machine, waited for): ``bau.engine.cluster``;
            None: the sweep file's ``launcher: {type: ...}``, else ``local``.
        launcher_given: the command line's launcher options (``bau.engine.cluster.OPTION_KEYS``; None: not given),
            over the sweep file's ``launcher:`` section.

    Raises:
        BauError: an unknown ``only`` name, or a run trained with other settings (without ``force``).
    """
    if jobs < 1:
        raise BauError(f"--jobs {jobs}: expected at least 1 run at a time")
    sweep = load_sweep(path)
    from bau.engine.cluster import LAUNCHERS, launcher_options

    kind, options = launcher_options(sweep["launcher"], launcher_given or {}, f"sweep file {path}")
    launcher = launcher or kind or "local"
    if launcher not in LAUNCHERS:
        raise BauError(f"--launcher {launcher}: expected one of {', '.join(LAUNCHERS)}")
    if launcher != "local" and jobs != 1:
        raise BauError(f"--jobs {jobs}: only for --launcher local; with --launcher {launcher} every run is a job "
                       f"(--array-parallelism sets how many run at once)")
    if extra_overrides:
        sweep["overrides"] = sweep["overrides"] + list(extra_overrides)
    names = [r.name for r in sweep["runs"]]
    unknown = [n for n in (only or []) if n not in names]
    if unknown:
        raise BauError(f"--only {' '.join(unknown)}: not a run of sweep file {path}; its runs are: {', '.join(names)}")
    runs = [r for r in sweep["runs"] if not only or r.name in only]
    retrain = set(_check_stale(_stale_runs(sweep, out), [r.name for r in runs], force, out))
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, "sweep.yaml"), yaml.safe_dump(
        {"source": path, "base": sweep["base"], "overrides": sweep["overrides"],
         "runs": [{"name": r.name, "labels": r.labels, "overrides": r.overrides} for r in sweep["runs"]]},
        sort_keys=False))
    todo = []
    for i, r in enumerate(runs, 1):
        run_dir = os.path.join(out, r.name)
        if r.name in retrain:
            echo(f"[{i}/{len(runs)}] {r.name}: trained with other settings, removed (--force)")
            _remove_run(run_dir)
        status = run_status(run_dir)
        if status == "finished":
            echo(f"[{i}/{len(runs)}] {r.name}: finished, skipped")
            continue
        cfg = (None if status == "interrupted"
               else load_config(sweep["base"], sweep["overrides"] + r.overrides).to_dict())
        record = {"sweep": path, "base": sweep["base"], "overrides": sweep["overrides"] + r.overrides,
                  "labels": r.labels}
        todo.append((f"[{i}/{len(runs)}] {r.name}: {'resuming' if cfg is None else 'training'}", run_dir, cfg, record))
    if launcher != "local":
        return _launch(todo, out, sweep, launcher, options, echo)
    if jobs == 1 or len(todo) <= 1:
        for line, run_dir, cfg, record in todo:
            echo(line)
            train_run_folder(run_dir, cfg, record, progress, echo)
            write_summary(out, sweep)
        return write_summary(out, sweep)
    failures = _train_in_processes(todo, jobs, echo, on_done=lambda: write_summary(out, sweep))
    if failures:
        listed = ", ".join(f"{name} ({why})" for name, why in failures)
        raise BauError(f"sweep folder {out}: {len(failures)} of {len(todo)} runs failed: {listed}; "
                       f"the other runs finished (summary in {out}/summary.csv)")
    return write_summary(out, sweep)


