"""``bau sweep --status --out DIR``: where every run of a sweep in flight stands.

One row per run of the sweep folder's ``sweep.yaml``: its state, job id, last logged step and,
for a failed run, the last line of its error. Read from the run layer (``results.json``,
``last.pt``, ``log.jsonl``, the ``.lock`` lease) and from the launcher's files (``bau.engine.cluster``:
``OUT/jobs.json``, ``RUN/job.json`` and submitit's job logs). It asks no scheduler, so it works
wherever the shared filesystem is mounted. The states:

- ``pending``: nothing trained and no job submitted;
- ``queued``: a job was submitted and has not started;
- ``running``: a trainer holds the run's lease (its heartbeat is fresh, or its process is alive
  on this host), or its job has just started;
- ``preempted``: stopped mid-run with a checkpoint to resume from: its job was signalled and
  requeued (it resumes when Slurm starts it again), or a local run was interrupted (``bau sweep``
  resumes it);
- ``finished``: ``results.json`` says so;
- ``failed``: its job reported an error, or stopped without finishing (killed, out of memory, a
  node failure); the error's last line is shown.
"""
from __future__ import annotations

import json
import os
import socket
import time
from typing import Any, Dict, List, Optional

import yaml

from bau.core.errors import BauError
from bau.engine.cluster import JOB_FILE, job_error_line, read_submitted
from bau.runs.folder import run_status
from bau.runs.lock import read_lock, stale_bound, stale_reason

STATES = ("pending", "queued", "running", "preempted", "finished", "failed")


def _read_json(path: str) -> Dict[str, Any]:
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def last_logged_step(run_dir: str) -> Optional[int]:
    """The ``step`` of the last record of ``log.jsonl`` that has one (None without)."""
    try:
        with open(os.path.join(run_dir, "log.jsonl"), "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            step = json.loads(line).get("step")
        except (ValueError, AttributeError):
            continue
        if isinstance(step, int) and not isinstance(step, bool):
            return step
    return None


def _job_running(job: Dict[str, Any], bound: float) -> bool:
    """A ``running`` job record whose process is alive here, or that another host wrote recently."""
    if job.get("state") != "running":
        return False
    if job.get("host") == socket.gethostname():
        return stale_reason({"host": job.get("host"), "pid": job.get("pid")}, bound) is None
    try:
        return time.time() - float(job["updated"]) < bound
    except (KeyError, TypeError, ValueError):
        return False


def run_row(out: str, name: str, submitted: Optional[Dict[str, Any]], bound: float) -> Dict[str, Any]:
    """``{"run", "state", "job", "step", "detail"}`` of one run of the sweep folder ``out``."""
    run_dir = os.path.join(out, name)
    status = run_status(run_dir)
    job = _read_json(os.path.join(run_dir, JOB_FILE))
    lease = read_lock(run_dir)
    sub_id = str((submitted or {}).get("job_id") or "") or None
    job_id = str(job.get("job_id") or "") or None
    row = {"run": name, "state": "pending", "job": sub_id or job_id or (lease or {}).get("job_id"),
           "step": last_logged_step(run_dir), "detail": ""}
    stderr = (os.path.join(submitted["folder"], f"{sub_id}_0_log.err") if submitted and submitted.get("folder")
              else None)
    if status == "finished":
        row["state"] = "finished"
    elif lease is not None and lease and stale_reason(lease, bound) is None:
        row["state"] = "running"
        row["job"] = lease.get("job_id") or row["job"]
        row["detail"] = f"pid {lease.get('pid')} on {lease.get('host')}"
    elif sub_id and job_id == sub_id and job.get("state") == "failed":
        row.update(state="failed", detail=str(job.get("error") or job_error_line(stderr) or "failed"))
    elif sub_id and job_id == sub_id and job.get("state") == "preempted":
        row.update(state="preempted", detail=f"requeued as job {sub_id}; resumes from last.pt when it starts")
    elif sub_id and job_id == sub_id and _job_running(job, bound):
        row.update(state="running", detail=f"starting on {job.get('host')}")
    elif sub_id and job_id == sub_id:
        line = job_error_line(stderr)
        row.update(state="failed", detail=f"the job stopped without finishing{': ' + line if line else ''}")
    elif sub_id:
        line = job_error_line(stderr) if stderr and os.path.exists(stderr) else None
        if line and ("Error" in line or "error" in line):
            row.update(state="failed", detail=line)
        else:
            row.update(state="queued", detail=f"submitted ({submitted.get('launcher')})")
    elif status == "interrupted":
        row.update(state="preempted", detail="interrupted; `bau sweep` resumes it from last.pt")
    if lease == {} and row["state"] != "running":
        row["detail"] = (row["detail"] + "; " if row["detail"] else "") + \
            f"{os.path.join(run_dir, '.lock')} is empty or unreadable (debris: the next trainer takes it over)"
    return row


def sweep_rows(out: str, stale_after: Optional[float] = None) -> List[Dict[str, Any]]:
    """One ``run_row`` per run of the sweep folder ``out`` (in ``sweep.yaml``'s order)."""
    path = os.path.join(out, "sweep.yaml")
    try:
        with open(path, encoding="utf-8") as f:
            sweep = yaml.safe_load(f)
        names = [str(r["name"]) for r in sweep["runs"]]
    except FileNotFoundError:
        raise BauError(f"--status --out {out}: no sweep.yaml there; expected a folder `bau sweep` wrote") from None
    except (OSError, ValueError, yaml.YAMLError, KeyError, TypeError):
        raise BauError(f"{path}: unreadable; expected the list of runs `bau sweep` wrote") from None
    submitted = read_submitted(out)
    bound = stale_bound(stale_after)
    return [run_row(out, n, submitted.get(n), bound) for n in names]


def format_rows(rows: List[Dict[str, Any]]) -> str:
    """A plain-text table (run, state, job, step, detail) and a count per state."""
    head = ("run", "state", "job", "step", "detail")
    cells = [[str(r[k]) if r[k] is not None else "-" for k in head] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(head[:-1])]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head[:-1], widths)) + "  detail"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell[:-1], widths)) + "  " + cell[-1] for cell in cells]
    counts = {s: sum(r["state"] == s for r in rows) for s in STATES}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no runs")
    return "\n".join(lines)
