"""Sweeps on a Slurm cluster through submitit: ``bau sweep --launcher {slurm, submitit-local}``.

``slurm`` submits the sweep's pending runs as one Slurm job array (``--array-parallelism`` of them
at a time) through submitit's ``SlurmExecutor``; ``submitit-local`` runs the very same code path on
this machine (submitit's ``LocalExecutor``) and waits for its jobs. No scheduler of our own: Slurm
queues, submitit pickles the job and handles its signals, ``torch.distributed`` runs inside it.

Each job runs ``RunJob``: the single-run path of ``bau sweep`` (train the run, or resume it exactly
from its ``last.pt`` when it has one). ``RunJob.checkpoint`` is submitit's checkpoint hook: when
Slurm signals the job (``USR2``, ``SIGNAL_DELAY_S`` before its time limit, or on a preemption that
signals), submitit calls it and requeues the job with what it returns, a resubmission of the same
``RunJob``; the requeued job resumes from the last epoch's ``last.pt`` (written after every epoch)
with ``--resume``'s exact replay, which drops the log records past the checkpoint and retrains
them, so no logged step is repeated or lost. Up to one epoch of work is recomputed. A job that
Slurm requeues itself (``PreemptMode=REQUEUE``, no signal to handle) resumes the same way.

A run with several GPUs (``--gpus-per-run``, ``--nodes-per-run``) is one task per GPU; each task
maps submitit's job environment to the ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/
``MASTER_PORT`` variables that ``bau.engine.distributed`` reads, as ``torchrun`` would set them.

Files: ``OUT/.submitit/`` holds submitit's pickles and job logs (``JOB_0_log.out/.err``);
``OUT/jobs.json`` the job id of every submitted run; ``RUN/job.json`` the state its job last
wrote (running, preempted, finished, failed with the error's line). ``bau.engine.sweep_status`` reads them.
"""
from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Optional, Tuple

from bau.core.atomic import atomic_write_json
from bau.core.errors import BauError, one_line

LAUNCHERS = ("local", "slurm", "submitit-local")
JOBS_FOLDER = ".submitit"
SUBMITTED_FILE = "jobs.json"
JOB_FILE = "job.json"
SIGNAL_DELAY_S = 120  # Slurm sends USR2 this long before the time limit
MAX_TIMEOUT_REQUEUES = 50  # requeues at the time limit before submitit gives up (preemptions do not count)
DEFAULT_TIME_MIN = 24 * 60


def import_submitit(launcher: str):
    """The ``submitit`` module, or one line naming the extra that installs it."""
    try:
        import submitit
    except ImportError:
        raise BauError(f"--launcher {launcher}: needs the submitit package, which is not installed; "
                       f"install it with `pip install bau[cluster]`") from None
    return submitit


def job_error_line(stderr_path: Any) -> Optional[str]:
    """The last line of a job's stderr log that is not submitit's own logging (None without one)."""
    try:
        with open(str(stderr_path), "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if line and not line.startswith("submitit ") and not line.startswith("srun: "):
            return line
    return None


@dataclass
class LauncherOptions:
    """The resources of each run's job (the ``--partition`` ... options, or a sweep's ``launcher:``)."""

    partition: Optional[str] = None
    gpus_per_run: int = 0
    nodes_per_run: int = 1
    cpus_per_gpu: Optional[int] = None
    mem: Optional[str] = None  # per node, Slurm's syntax: 64G, 500M
    time: int = DEFAULT_TIME_MIN  # minutes
    array_parallelism: int = 64
    sbatch: Dict[str, str] = field(default_factory=dict)  # extra sbatch parameters, passed through

    @property
    def gpus_per_node(self) -> int:
        return self.gpus_per_run // self.nodes_per_run

    @property
    def tasks_per_node(self) -> int:
        return max(1, self.gpus_per_node)


OPTION_KEYS = tuple(f.name for f in fields(LauncherOptions))


def parse_minutes(value: Any, where: str) -> int:
    """Slurm's time forms -> minutes: ``90`` (minutes), ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``."""
    text = str(value).strip()
    days, _, rest = text.rpartition("-")
    parts = rest.split(":")
    if isinstance(value, bool) or not (days == "" or days.isdigit()) or not all(p.isdigit() for p in parts) \
            or len(parts) > 3 or "-" in days:
        raise BauError(f"{where} {value!r}: expected minutes or D-HH:MM:SS")
    n = [int(p) for p in parts]
    if days:
        h, m, s = (n + [0, 0])[:3]
    else:
        h, m, s = (0, n[0], 0) if len(n) == 1 else (0, n[0], n[1]) if len(n) == 2 else (n[0], n[1], n[2])
    minutes = int(days or 0) * 1440 + h * 60 + m + (1 if s else 0)
    if minutes < 1:
        raise BauError(f"{where} {value!r}: expected at least one minute")
    return minutes


def _positive_int(value: Any, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit() \
            or int(value) < minimum:
        raise BauError(f"{where} {value!r}: expected an integer >= {minimum}")
    return int(value)


def launcher_options(section: Optional[Dict[str, Any]], given: Dict[str, Any], where: str
                     ) -> Tuple[Optional[str], LauncherOptions]:
    """``(launcher named in the section or None, options)``: the sweep file's ``launcher:`` section
    (keys as ``OPTION_KEYS``, dashes or underscores, plus ``type``), overridden by the command line's
    ``given`` (None values are not given)."""
    merged: Dict[str, Any] = {}
    kind = None
    if section is not None:
        if not isinstance(section, dict):
            raise BauError(f"{where}: launcher: expected a mapping of {', '.join(('type',) + OPTION_KEYS)}")
        for key, value in section.items():
            key = str(key).replace("-", "_")
            if key == "type":
                kind = str(value)
            elif key in OPTION_KEYS:
                merged[key] = value
            else:
                raise BauError(f"{where}: launcher: unknown key {key!r}; expected {', '.join(('type',) + OPTION_KEYS)}")
        if kind is not None and kind not in LAUNCHERS:
            raise BauError(f"{where}: launcher: type {kind!r}; expected one of {', '.join(LAUNCHERS)}")
    merged.update({k: v for k, v in given.items() if v is not None})
    o = LauncherOptions()
    for key in ("gpus_per_run",):
        if key in merged:
            setattr(o, key, _positive_int(merged[key], f"--{key.replace('_', '-')}", minimum=0))
    for key in ("nodes_per_run", "cpus_per_gpu", "array_parallelism"):
        if key in merged:
            setattr(o, key, _positive_int(merged[key], f"--{key.replace('_', '-')}"))
    if "time" in merged:
        o.time = parse_minutes(merged["time"], "--time")
    if merged.get("partition") is not None:
        o.partition = str(merged["partition"])
    if merged.get("mem") is not None:
        o.mem = str(merged["mem"]).strip().upper().removesuffix("B")
        if not re.fullmatch(r"\d+[KMGT]?", o.mem):
            raise BauError(f"--mem {merged['mem']!r}: expected memory per node as Slurm writes it, e.g. 64G or 500M")
    if "sbatch" in merged:
        o.sbatch = parse_sbatch(merged["sbatch"])
    if o.gpus_per_run and o.gpus_per_run % o.nodes_per_run:
        raise BauError(f"--gpus-per-run {o.gpus_per_run} over --nodes-per-run {o.nodes_per_run}: expected the "
                       f"same number of GPUs on every node")
    return kind, o


def parse_sbatch(value: Any) -> Dict[str, str]:
    """``["qos=high", "account=proj"]`` or ``{"qos": "high"}`` -> ``{"qos": "high", ...}`` (sbatch's long names)."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    items = [value] if isinstance(value, str) else list(value or [])
    out = {}
    for item in items:
        key, sep, val = str(item).lstrip("-").partition("=")
        if not key:
            raise BauError(f"--sbatch {item!r}: expected KEY=VALUE, e.g. qos=high")
        out[key] = val if sep else ""
    return out


def slurm_parameters(o: LauncherOptions, name: str) -> Dict[str, Any]:
    """The ``SlurmExecutor.update_parameters`` of a run's job: one task per GPU on each node."""
    p: Dict[str, Any] = {"job_name": name, "time": o.time, "nodes": o.nodes_per_run,
                         "ntasks_per_node": o.tasks_per_node, "signal_delay_s": SIGNAL_DELAY_S,
                         "array_parallelism": o.array_parallelism}
    if o.gpus_per_node:
        p["gpus_per_node"] = o.gpus_per_node
    if o.partition:
        p["partition"] = o.partition
    if o.cpus_per_gpu:
        p["cpus_per_task"] = o.cpus_per_gpu
    if o.mem:
        p["mem"] = o.mem
    if o.sbatch:
        p["additional_parameters"] = dict(o.sbatch)
    return p


def rank_environment(job_env: Any) -> Dict[str, str]:
    """The ``torchrun`` variables ``bau.engine.distributed`` reads, from a submitit ``JobEnvironment``.

    The port is derived from the job id, so every task of a job (and of its requeued runs) agrees."""
    port = 20000 + int(hashlib.sha256(str(job_env.job_id).encode()).hexdigest(), 16) % 40000
    return {"RANK": str(job_env.global_rank), "WORLD_SIZE": str(job_env.num_tasks),
            "LOCAL_RANK": str(job_env.local_rank),
            "LOCAL_WORLD_SIZE": str(job_env.num_tasks // max(job_env.num_nodes, 1)),
            "MASTER_ADDR": str(job_env.hostnames[0]), "MASTER_PORT": str(os.environ.get("MASTER_PORT") or port)}


def write_job_state(run_dir: str, state: str, **extra: Any) -> None:
    """``RUN/job.json``: what the job last did (``running``, ``preempted``, ``finished``, ``failed``)."""
    os.makedirs(run_dir, exist_ok=True)
    atomic_write_json(os.path.join(run_dir, JOB_FILE), {"state": state, "host": socket.gethostname(),
                                                        "pid": os.getpid(), "updated": time.time(), **extra})


class RunJob:
    """One run's submitit job: ``__call__`` trains or resumes it; ``checkpoint`` requeues it."""

    def __init__(self, run_dir: str, cfg_dict: Optional[Dict[str, Any]], record: Dict[str, Any], launcher: str):
        self.run_dir, self.cfg_dict, self.record, self.launcher = run_dir, cfg_dict, record, launcher

    def _job(self) -> Tuple[str, bool]:
        """``(job id, rank 0?)``; exports the rank variables when the job has several tasks."""
        import submitit

        env = submitit.JobEnvironment()
        if env.num_tasks > 1:
            os.environ.update(rank_environment(env))
        return str(env.job_id), env.global_rank == 0

    def __call__(self) -> str:
        from bau.engine.trainer import train_run_folder
        from bau.runs.folder import run_status

        job_id, main = self._job()
        status = run_status(self.run_dir)
        if status == "finished":
            return "finished"
        if main:
            write_job_state(self.run_dir, "running", job_id=job_id, launcher=self.launcher)
        try:
            # A run with a last.pt resumes exactly from it (a requeued job, or an interrupted run).
            train_run_folder(self.run_dir, None if status == "interrupted" else self.cfg_dict,
                             self.record, False, print)
        except Exception as e:
            if main:
                line = one_line(e) if isinstance(e, BauError) else f"{type(e).__name__}: {one_line(e)}"
                write_job_state(self.run_dir, "failed", job_id=job_id, launcher=self.launcher, error=line)
            raise
        if main:
            write_job_state(self.run_dir, "finished", job_id=job_id, launcher=self.launcher)
        return "finished"

    def checkpoint(self):
        """submitit's hook on a preemption or time-limit signal: the same job again, which resumes.

        ``last.pt`` of the last finished epoch is already on disk (written atomically), so nothing
        needs saving here; the requeued job resumes from it exactly."""
        import submitit

        job_id = os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID") or ""
        write_job_state(self.run_dir, "preempted", job_id=job_id, launcher=self.launcher)
        return submitit.helpers.DelayedSubmission(RunJob(self.run_dir, self.cfg_dict, self.record, self.launcher))


def make_executor(launcher: str, out: str, o: LauncherOptions, name: str):
    """submitit's executor for ``launcher``, its jobs' files under ``OUT/.submitit``."""
    submitit = import_submitit(launcher)
    folder = os.path.join(os.path.abspath(out), JOBS_FOLDER)
    if launcher == "slurm":
        try:
            executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=MAX_TIMEOUT_REQUEUES)
        except RuntimeError as e:
            raise BauError(f"--launcher slurm: {one_line(e)}; submit from a machine of the Slurm cluster, or use "
                           f"--launcher submitit-local to try the same path on this machine") from None
        try:
            executor.update_parameters(**slurm_parameters(o, name))
        except ValueError as e:
            raise BauError(f"--launcher slurm: {one_line(e)}") from None
        return executor
    if o.nodes_per_run > 1:
        raise BauError(f"--nodes-per-run {o.nodes_per_run}: --launcher submitit-local runs on this machine only "
                       f"(one node)")
    executor = submitit.LocalExecutor(folder=folder, max_num_timeout=MAX_TIMEOUT_REQUEUES)
    executor.update_parameters(timeout_min=o.time, tasks_per_node=o.tasks_per_node, gpus_per_node=o.gpus_per_node,
                               signal_delay_s=SIGNAL_DELAY_S)
    return executor


def submit_runs(todo: List[Tuple[str, str, Optional[Dict[str, Any]], Dict[str, Any]]], out: str, launcher: str,
                o: LauncherOptions, echo=print) -> List[Any]:
    """Submit one job per ``(line, run_dir, cfg, record)`` of ``todo`` (one job array on Slurm);
    records their ids in ``OUT/jobs.json``; returns submitit's jobs."""
    if not todo:
        return []
    executor = make_executor(launcher, out, o, f"bau-{os.path.basename(os.path.abspath(out))}")
    try:
        jobs = executor.submit_array([RunJob(run_dir, cfg, record, launcher) for _, run_dir, cfg, record in todo])
    except Exception as e:  # sbatch refused (a bad partition, an account...): its message, on one line
        raise BauError(f"--launcher {launcher}: submission failed: {one_line(e)}") from None
    path = os.path.join(out, SUBMITTED_FILE)
    submitted = read_submitted(out)
    for (line, run_dir, _, _), job in zip(todo, jobs):
        name = os.path.basename(run_dir)
        submitted[name] = {"job_id": str(job.job_id), "launcher": launcher, "submitted": time.time(),
                           "folder": os.path.join(os.path.abspath(out), JOBS_FOLDER),
                           "resources": asdict(o)}
        echo(f"{line}: submitted as job {job.job_id}")
    atomic_write_json(path, submitted)
    return jobs


def read_submitted(out: str) -> Dict[str, Dict[str, Any]]:
    """``OUT/jobs.json``: ``{run name: {"job_id", "launcher", "folder", ...}}``; {} without one."""
    import json

    path = os.path.join(out, SUBMITTED_FILE)
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise BauError(f"{path}: unreadable ({one_line(e)}); it lists the sweep's submitted jobs") from None
    return data if isinstance(data, dict) else {}


def wait_for(jobs: List[Any], names: List[str], echo=print) -> List[str]:
    """Wait for local jobs (requeues included); ``["RUN: error line", ...]`` of those that failed."""
    failures = []
    for job, name in zip(jobs, names):
        try:
            job.result()
            echo(f"{name}: finished")
        except Exception as e:  # the job's own error is in RUN/job.json and the job's log

            line = job_error_line(job.paths.stderr) or one_line(e)
            failures.append(f"{name}: {line}")
            echo(f"{name}: failed: {line}")
    return failures
