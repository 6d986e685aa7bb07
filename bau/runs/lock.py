"""A run folder has one writer: ``RUN/.lock`` is a lease held by the process training it.

``bau train`` (and ``--resume``, and every run of ``bau sweep``, on any launcher) takes the lease
before it writes anything in the folder and gives it back when it stops, however it stops. A
second trainer on the same folder refuses with one line naming the holder.

The lease is a small JSON file on the (shared) filesystem naming its holder: ``host``, ``pid``,
``job_id`` (``SLURM_JOB_ID``, else submitit's local job id, when set), ``since``, a random
``token``, and ``heartbeat``: when the holder last renewed it (seconds since the epoch). While the
lease is held, a daemon thread renews the heartbeat every ``stale_after / 4`` seconds.

A lease is stale, and is taken over, when

- it is empty or unreadable: leases are written whole (a temp file, then a hard link or an atomic
  rename), so such a file can only be debris; this is said in one line naming the file;
- it was written on this host by a process that is gone (a ``kill -9``, a power cut);
- it was written on another host by an earlier run of this very job (a requeued Slurm job keeps
  its job id: the earlier run is over);
- its heartbeat is older than ``stale_after`` seconds (default ``DEFAULT_STALE_S``, or the
  environment's ``BAU_LEASE_STALE_S``), whatever host wrote it (a host that died). Hosts compare
  their clocks here: keep them synchronised (NTP) well within the bound.

A lease held by a live process on this host is never taken over, however old its heartbeat.

Taking a free lease is atomic: the lease is written to a temp file and hard-linked to ``.lock``,
which fails when a lease exists (also on NFS). Taking over a stale lease happens under an
exclusive ``fcntl.flock`` on the sidecar ``.lock.guard``: the contender re-reads the lease, judges
it again, removes it and links its own, so however many processes contend, one wins. Renewals and
the release take the same flock and first check the token, so a holder whose lease was taken over
(it stalled past the bound) never writes over the new holder's lease: ``check`` then raises.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Optional

from bau.core.errors import BauError, describe_os_error

LOCK_NAME = ".lock"
GUARD_NAME = ".lock.guard"
DEFAULT_STALE_S = 300.0
STALE_ENV = "BAU_LEASE_STALE_S"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except (OSError, ValueError, OverflowError):
        return False
    return True


def current_job_id() -> Optional[str]:
    """The scheduler's id of the job this process runs in: ``SLURM_JOB_ID``, else submitit's local id."""
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID") or None


def stale_bound(stale_after: Optional[float] = None) -> float:
    """``stale_after``, else ``BAU_LEASE_STALE_S`` from the environment, else ``DEFAULT_STALE_S`` seconds."""
    if stale_after is None:
        text = os.environ.get(STALE_ENV, "")
        if not text:
            return DEFAULT_STALE_S
        try:
            stale_after = float(text)
        except ValueError:
            raise BauError(f"{STALE_ENV}={text!r}: expected a number of seconds") from None
    if not stale_after > 0 or stale_after == float("inf"):
        raise BauError(f"lease stale bound {stale_after!r}: expected a positive number of seconds")
    return float(stale_after)


def read_lock(run_dir: str) -> Optional[Dict[str, Any]]:
    """The lease's fields, ``{}`` for an empty or unreadable lock file, None without one."""
    path = os.path.join(run_dir, LOCK_NAME)
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def stale_reason(holder: Dict[str, Any], stale_after: float, now: Optional[float] = None) -> Optional[str]:
    """Why the lease ``holder`` (as ``read_lock`` returns it) may be taken over; None while it holds."""
    if not holder:
        return "empty or unreadable (the debris of an interrupted write)"
    host = holder.get("host")
    if host == socket.gethostname():
        try:
            pid = int(holder["pid"])
        except (KeyError, TypeError, ValueError):
            return "written on this host without a valid pid"
        return None if _pid_alive(pid) else f"its process (pid {pid} on this host) is gone"
    job = current_job_id()
    if job and str(holder.get("job_id") or "") == job:
        return f"written on {host} by an earlier run of this job ({job})"
    try:
        age = (time.time() if now is None else now) - float(holder["heartbeat"])
    except (KeyError, TypeError, ValueError):
        return None  # a lock from another host without a heartbeat (an older bau): wait for its user
    if age > stale_after:
        return f"its heartbeat from {host} is {age:.0f} s old (bound {stale_after:.0f} s)"
    return None


class RunLock:
    """``with RunLock(run_dir):`` or ``acquire()`` / ``check()`` / ``release()``; the folder must exist.

    Args:
        run_dir: the run folder.
        stale_after: seconds after which a lease whose heartbeat was not renewed is stale
            (default: ``stale_bound()``).
        echo: where the one-line notice of a takeover goes (default: stderr).
    """

    def __init__(self, run_dir: str, stale_after: Optional[float] = None,
                 echo: Optional[Callable[[str], None]] = None):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, LOCK_NAME)
        self.guard_path = os.path.join(run_dir, GUARD_NAME)
        self.stale_after = stale_bound(stale_after)
        self.echo = echo or (lambda line: print(line, file=sys.stderr))
        self.held = False
        self.lost: Optional[str] = None  # why the lease was lost to another process while held
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # -- the lease file --------------------------------------------------------------------------
    def _lease(self) -> Dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid(), "job_id": current_job_id(),
                "since": self._since, "heartbeat": time.time(), "token": self.token}

    def _write_temp(self) -> str:
        """The lease written whole (and synced) to a new temp file next to ``.lock``; its path."""
        tmp = os.path.join(self.run_dir, f".lock.{self.token}.{uuid.uuid4().hex[:8]}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(self._lease()))
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            _remove(tmp)
            raise
        return tmp

    def _link_new(self) -> bool:
        """Create ``.lock`` holding our lease if there is none; False when a lease exists."""
        tmp = self._write_temp()
        try:
            os.link(tmp, self.path)
            return True
        except (FileExistsError, FileNotFoundError):  # a lease exists, or our temp file was cleared away
            return False
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
                raise
            return self._create_without_links()  # a filesystem without hard links
        finally:
            _remove(tmp)

    def _create_without_links(self) -> bool:
        """``O_EXCL`` creation, then the whole lease renamed over it: readers see an empty file for an
        instant at most, which only ever happens on filesystems without hard links."""
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            return False
        try:
            os.replace(self._write_temp(), self.path)
        except BaseException:
            _remove(self.path)
            raise
        return True

    @contextmanager
    def _guarded(self) -> Iterator[None]:
        """An exclusive ``flock`` on ``.lock.guard``: takeovers, renewals and releases one at a time."""
        fd = os.open(self.guard_path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    # -- acquire / check / release ---------------------------------------------------------------
    def acquire(self) -> "RunLock":
        self._since = time.strftime("%Y-%m-%d %H:%M:%S")
        try:
            for _ in range(5):
                if self._link_new():
                    return self._start()
                holder = read_lock(self.run_dir)
                if holder is None:
                    continue  # released between our link and our read: try again
                reason = stale_reason(holder, self.stale_after)
                if reason is None:
                    raise BauError(f"run folder {self.run_dir}: another trainer is writing it "
                                   f"({_describe(holder)}); wait for it to stop, or remove {self.path} if that "
                                   f"process is gone") from None
                if self._take_over():
                    return self._start()
        except OSError as e:
            raise BauError(f"run folder {self.run_dir}: cannot be written ({describe_os_error(e)}); expected a "
                           f"writable folder with free space") from None
        raise BauError(f"run folder {self.run_dir}: could not take the lock {self.path}; try again")

    def _take_over(self) -> bool:
        """Replace a stale lease by ours under the guard; False when another process won (or it holds)."""
        with self._guarded():
            holder = read_lock(self.run_dir)
            if holder is None:
                return self._link_new()
            reason = stale_reason(holder, self.stale_after)
            if reason is None:
                return False
            _remove(self.path)
            if not self._link_new():
                return False
        who = f" ({_describe(holder)})" if holder else ""
        self.echo(f"run folder {self.run_dir}: took over the stale lock {self.path}{who}: {reason}")
        return True

    def _start(self) -> "RunLock":
        self.held, self.lost = True, None
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name=f"bau-lease {self.run_dir}", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.stale_after / 4):
            try:
                self.renew()
            except (OSError, BauError):
                pass  # a full disk or a network hiccup: the previous lease stays intact; try again later
            if self.lost:
                return

    def renew(self) -> None:
        """Write a fresh heartbeat (atomically); notes in ``lost`` when another process took the lease."""
        with self._guarded():
            holder = read_lock(self.run_dir)
            if not holder or holder.get("token") != self.token:
                self.lost = _describe(holder) if holder else "the lock file was removed"
                return
            os.replace(self._write_temp(), self.path)

    def check(self) -> None:
        """Raise a ``BauError`` when the lease was taken over while held (this process stalled)."""
        if self.held and self.lost:
            raise BauError(f"run folder {self.run_dir}: this trainer's lock {self.path} was taken over "
                           f"({self.lost}) while it stalled for more than {self.stale_after:.0f} s; stopped "
                           f"so that two trainers never write one folder")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        try:
            with self._guarded():
                holder = read_lock(self.run_dir)
                if holder and holder.get("token") == self.token:
                    _remove(self.path)
        except OSError:
            pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _describe(holder: Dict[str, Any]) -> str:
    if not holder:
        return "an unreadable lock file"
    job = f", job {holder['job_id']}" if holder.get("job_id") else ""
    return f"pid {holder.get('pid')} on {holder.get('host')}{job} since {holder.get('since')}"


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
