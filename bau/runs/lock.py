"""A run folder has one writer: ``RUN/.lock`` holds the pid and host of the process training it.

``bau train`` (and ``--resume``, and every run of ``bau sweep``) takes the lock before it writes
anything in the folder and gives it back when it stops, however it stops. A second trainer on
the same folder refuses with one line naming the holder. A lock whose process is gone (same
host, pid no longer alive: a ``kill -9``, a power cut) is stale and is taken over; a lock from
another host cannot be checked from here, so it is only taken over after the user removes it.
"""
from __future__ import annotations

import json
import os
import socket
import time
from typing import Any, Dict, Optional

from bau.core.errors import BauError

LOCK_NAME = ".lock"


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


def read_lock(run_dir: str) -> Optional[Dict[str, Any]]:
    """The lock's ``{"pid", "host", "since"}``, ``{}`` for an unreadable lock file, None without one."""
    path = os.path.join(run_dir, LOCK_NAME)
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _is_stale(holder: Dict[str, Any]) -> bool:
    if holder.get("host") != socket.gethostname():
        return False
    try:
        pid = int(holder["pid"])
    except (KeyError, TypeError, ValueError):
        return True  # a damaged lock file written on this host: nobody can be holding it
    return pid != os.getpid() and not _pid_alive(pid)


class RunLock:
    """``with RunLock(run_dir):`` or ``acquire()`` / ``release()``; the folder must exist."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, LOCK_NAME)
        self.held = False

    def acquire(self) -> "RunLock":
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = read_lock(self.run_dir)
                if holder is None:
                    continue  # released between our open and our read: try again
                if _is_stale(holder):
                    try:
                        os.remove(self.path)
                    except FileNotFoundError:
                        pass
                    continue
                who = (f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
                       if holder else "an unreadable lock file")
                raise BauError(f"run folder {self.run_dir}: another trainer is writing it ({who}); wait for it "
                               f"to stop, or remove {self.path} if that process is gone") from None
            except OSError as e:
                raise BauError(f"run folder {self.run_dir}: cannot be written ({e.strerror or e}); expected a "
                               f"writable folder") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise BauError(f"run folder {self.run_dir}: could not take the lock {self.path}; try again")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        holder = read_lock(self.run_dir)
        if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            try:
                os.remove(self.path)
            except OSError:
                pass

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
