"""The run folder's lease (``bau.runs.lock``): stale rules, atomic takeover, atomic writes, heartbeat."""
import errno
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time

import pytest

from bau.core.errors import BauError
from bau.runs.lock import RunLock, read_lock, stale_reason

pytestmark = pytest.mark.integration


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _write_lease(run_dir, **fields):
    lease = {"host": socket.gethostname(), "pid": os.getpid(), "job_id": None, "since": "then",
             "heartbeat": time.time(), "token": "theirs"}
    lease.update(fields)
    with open(os.path.join(run_dir, ".lock"), "w") as f:
        json.dump(lease, f)


def _contend(run_dir, barrier, results):
    """One contender: all start together, the winner holds the lease until every contender has tried."""
    lock = RunLock(run_dir, stale_after=60, echo=lambda s: None)
    barrier.wait()
    try:
        lock.acquire()
        results.put("won")
    except BauError as e:
        results.put("lost: " + str(e))
    barrier.wait()
    lock.release()


def _race(run_dir, n=4):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(run_dir, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return outcomes


@pytest.mark.parametrize("kind", ["dead pid on this host", "old heartbeat from another host"])
def test_racing_processes_take_over_a_stale_lease_with_exactly_one_winner(tmp_path, kind):
    trials = 20 if kind.startswith("dead") else 10
    for trial in range(trials):
        run = tmp_path / f"run{trial}"
        run.mkdir()
        if kind.startswith("dead"):
            _write_lease(str(run), pid=_dead_pid())
        else:
            _write_lease(str(run), host="node-that-died", pid=1, heartbeat=time.time() - 3600)
        outcomes = _race(str(run))
        assert outcomes.count("won") == 1, (trial, outcomes)
        assert all("another trainer is writing it" in o for o in outcomes if o != "won")
        assert not (run / ".lock").exists()  # the winner released it


def test_a_live_process_on_this_host_is_never_taken_over(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lease(str(tmp_path), pid=sleeper.pid, heartbeat=time.time() - 10 ** 6)
        with pytest.raises(BauError, match=rf"another trainer is writing it \(pid {sleeper.pid} on"):
            RunLock(str(tmp_path), stale_after=1).acquire()
        assert read_lock(str(tmp_path))["pid"] == sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stale_rules(monkeypatch):
    now = time.time()
    other = {"host": "elsewhere", "pid": 7, "job_id": "99", "heartbeat": now - 100}
    assert stale_reason(other, stale_after=300, now=now) is None  # fresh heartbeat from another host
    assert "heartbeat from elsewhere is 400 s old" in stale_reason(other, stale_after=300, now=now + 300)
    monkeypatch.setenv("SLURM_JOB_ID", "99")  # a requeued job finds its own earlier run's lease
    assert "earlier run of this job (99)" in stale_reason(other, stale_after=300, now=now)
    monkeypatch.setenv("SLURM_JOB_ID", "100")
    assert stale_reason(other, stale_after=300, now=now) is None
    assert "empty or unreadable" in stale_reason({}, stale_after=300)
    assert "is gone" in stale_reason({"host": socket.gethostname(), "pid": _dead_pid()}, stale_after=300)


def test_a_fresh_lease_from_another_host_refuses_and_an_old_one_is_taken_over(tmp_path):
    _write_lease(str(tmp_path), host="node7", pid=123, job_id="4242", heartbeat=time.time() - 30)
    with pytest.raises(BauError, match="another trainer is writing it \\(pid 123 on node7, job 4242"):
        RunLock(str(tmp_path), stale_after=60).acquire()
    _write_lease(str(tmp_path), host="node7", pid=123, job_id="4242", heartbeat=time.time() - 90)
    said = []
    lock = RunLock(str(tmp_path), stale_after=60, echo=said.append).acquire()
    assert read_lock(str(tmp_path))["token"] == lock.token
    assert len(said) == 1 and "took over the stale lock" in said[0] and "heartbeat from node7" in said[0]
    lock.release()
    assert not (tmp_path / ".lock").exists()


def test_a_zero_byte_lock_is_debris_taken_over_with_one_line(tmp_path):
    (tmp_path / ".lock").write_bytes(b"")
    said = []
    with RunLock(str(tmp_path), echo=said.append) as lock:
        assert read_lock(str(tmp_path))["pid"] == os.getpid() and lock.held
    assert said == [f"run folder {tmp_path}: took over the stale lock {tmp_path / '.lock'}: "
                    f"empty or unreadable (the debris of an interrupted write)"]


class _FullDisk:
    """What ``os.fdopen`` returns on a full disk: writes fail with ENOSPC."""

    def __init__(self, fd, *a, **k):
        os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    flush = close = lambda self: None


def test_a_full_disk_at_lease_write_leaves_no_lock_file(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fdopen", _FullDisk)
    with pytest.raises(BauError, match="cannot be written \\(no space left on the device\\)"):
        RunLock(str(tmp_path)).acquire()
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no zero-byte .lock, no temp file
    with RunLock(str(tmp_path)):  # and the next trainer is not blocked
        pass


def test_the_heartbeat_renews_the_lease_and_a_full_disk_keeps_the_previous_one(tmp_path, monkeypatch):
    lock = RunLock(str(tmp_path), stale_after=0.4).acquire()
    try:
        first = read_lock(str(tmp_path))["heartbeat"]
        time.sleep(0.5)
        renewed = read_lock(str(tmp_path))["heartbeat"]
        assert renewed > first  # the daemon thread renewed it (every stale_after / 4 s)
        monkeypatch.setattr(os, "fdopen", _FullDisk)
        with pytest.raises(OSError):
            lock.renew()
        monkeypatch.undo()
        assert read_lock(str(tmp_path))["token"] == lock.token  # still whole and ours
    finally:
        lock.release()


def test_a_holder_whose_lease_was_taken_over_stops(tmp_path):
    lock = RunLock(str(tmp_path), stale_after=60).acquire()
    try:
        _write_lease(str(tmp_path), host="node9", pid=5, token="new holder")  # another host took it over
        lock.renew()
        with pytest.raises(BauError, match="was taken over \\(pid 5 on node9"):
            lock.check()
    finally:
        lock.release()
    assert read_lock(str(tmp_path))["token"] == "new holder"  # the release left the new lease alone


def test_a_bad_stale_bound_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("BAU_LEASE_STALE_S", "soon")
    with pytest.raises(BauError, match="BAU_LEASE_STALE_S='soon': expected a number of seconds"):
        RunLock(str(tmp_path))
    monkeypatch.setenv("BAU_LEASE_STALE_S", "12")
    assert RunLock(str(tmp_path)).stale_after == 12.0
