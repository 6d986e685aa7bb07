"""What every benchmark script shares: timing, peak memory, a description of the machine, output.

* ``time_repeated(fn, repeats, warmup)``: wall-clock times of several calls and their median (the
  median, not the mean, because the machines these run on are often shared and a single
  descheduled run should not move the figure).
* ``measure_memory(fn)``: two peak-memory figures for one call:

  - ``traced_peak_mb``: the peak of the allocations ``tracemalloc`` sees during the call, i.e.
    Python objects and NumPy / SciPy arrays (NumPy reports its buffers to tracemalloc). Torch
    tensors are *not* seen, so this under-counts code that computes in torch.
  - ``rss_growth_mb``: the process's peak resident memory during the call minus its resident
    memory just before it. On Linux the kernel's peak (``VmHWM``) is reset first through
    ``/proc/self/clear_refs``, so the figure belongs to this call alone and covers every
    allocator (NumPy, torch, BLAS). Elsewhere it falls back to ``getrusage().ru_maxrss``, which
    only ever grows, so it is exact only for the first large call in a fresh process.

* ``in_fresh_process(fn, *args)``: run ``fn`` in a new process (forked from a clean fork server,
  or spawned) and return its result,
  so that memory freed by an earlier measurement, and still held by the allocator, cannot hide
  the next one's peak. ``fn`` must be a module-level function.
* ``machine_description()``: CPU, core count, thread settings, library versions, load average.
* ``print_table`` / ``write_json``: the common output.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bau.core.atomic import atomic_write_json  # noqa: E402

MB = 2.0**20


@dataclass
class Timing:
    """Wall-clock seconds of ``repeats`` calls (after the warm-up calls, which are not kept)."""

    times: List[float]
    last_result: Any = field(default=None, repr=False)  # what the last timed call returned

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)

    def to_dict(self) -> Dict[str, Any]:
        return {"median_s": self.median, "min_s": self.best, "times_s": list(self.times)}


def peak_of(memory: Optional[Dict[str, Any]]) -> Optional[float]:
    """The conservative peak of a ``Memory.to_dict()``: the larger of the traced and the RSS figure.

    The two disagree both ways: RSS misses allocations that are never touched (``np.zeros`` pages)
    or that reuse memory the process already held; tracemalloc misses torch and BLAS buffers.
    """
    if memory is None:
        return None
    return max(memory["traced_peak_mb"], memory["rss_growth_mb"])


def time_repeated(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; keeps the last result."""
    if repeats < 1:
        raise ValueError(f"time_repeated: repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return Timing(times, result)


# -- memory -------------------------------------------------------------------------------------
def _proc_status_mb(key: str) -> Optional[float]:
    """A ``kB`` line of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MiB, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def maxrss_mb() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MiB: the process's peak resident memory so far.

    Linux reports kilobytes, macOS bytes. In a spawned child on Linux it starts at the parent's
    resident size at the time of the spawn (the kernel carries it across exec).
    """
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value / MB if sys.platform == "darwin" else value / 1024.0


def current_rss_mb() -> float:
    rss = _proc_status_mb("VmRSS")
    return rss if rss is not None else maxrss_mb()


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (``VmHWM``) of this process; False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _proc_status_mb("VmHWM") is not None
    except OSError:
        return False


def peak_rss_mb() -> float:
    hwm = _proc_status_mb("VmHWM")
    return hwm if hwm is not None else maxrss_mb()


@dataclass
class Memory:
    """Peak memory of one call, in MiB (see the module docstring)."""

    traced_peak_mb: float
    rss_growth_mb: float
    rss_before_mb: float
    rss_peak_mb: float
    maxrss_mb: float
    exact_rss: bool  # True: VmHWM was reset before the call; False: ru_maxrss fallback

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def measure_memory(fn: Callable[[], Any]) -> Tuple[Any, Memory]:
    """Call ``fn`` once and return its result and its peak memory."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    traced_before, _ = tracemalloc.get_traced_memory()
    exact = reset_peak_rss()
    rss_before = current_rss_mb()
    try:
        result = fn()
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    rss_peak = peak_rss_mb()
    memory = Memory(
        traced_peak_mb=max(0.0, (traced_peak - traced_before) / MB),
        rss_growth_mb=max(0.0, rss_peak - rss_before),
        rss_before_mb=rss_before,
        rss_peak_mb=rss_peak,
        maxrss_mb=maxrss_mb(),
        exact_rss=exact,
    )
    return result, memory


def _fresh_context() -> multiprocessing.context.BaseContext:
    """forkserver where available, else spawn; never plain fork.

    A plain fork of a process that has already run torch's OpenMP thread pool hangs in the child
    (GNU libgomp is not fork-safe). The fork server is a clean interpreter that has imported
    NumPy, torch and bau but run nothing, so its forks start in a fraction of a second.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["numpy", "torch", "bau"])
        return context
    return multiprocessing.get_context("spawn")


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a new process that shares no allocator state with this one.

    ``fn`` must be a module-level function; its arguments and return value must pickle.
    """
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=_fresh_context()) as pool:
        return pool.submit(fn, *args).result()


# -- the machine ----------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> Optional[Tuple[float, float, float]]:
    try:
        return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]
    except OSError:
        return None


def machine_description() -> Dict[str, Any]:
    """What a reader needs to judge the numbers: CPU, cores, threads, versions, current load."""
    import numpy as np

    info: Dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "load_average": load_average(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover - torch is a dependency of bau
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(("MemTotal", "MemAvailable")):
                    key, value = line.split(":")
                    info[key] = f"{int(value.split()[0]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return info


def describe_machine_line(info: Dict[str, Any]) -> str:
    load = info.get("load_average")
    load_text = "/".join(f"{x:.2f}" for x in load) if load else "n/a"
    return (f"machine: {info['cpu']}, {info['cores']} cores, torch {info.get('torch', '?')} "
            f"({info.get('torch_threads', '?')} threads), numpy {info['numpy']}, "
            f"{info.get('MemAvailable', '?')} free of {info.get('MemTotal', '?')}, "
            f"load average {load_text} (1/5/15 min)")


# -- output ---------------------------------------------------------------------------------------
def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain fixed-width table; floats with 4 significant digits."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
        return str(value)

    table = [[cell(v) for v in header]] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def write_json(path: Optional[str], payload: Dict[str, Any]) -> None:
    """Write the numbers (atomically) when ``--json PATH`` was given."""
    if path:
        atomic_write_json(path, payload)
        print(f"wrote {path}")


@dataclass
class Report:
    """The numbers a script prints and, with ``--json``, writes."""

    benchmark: str
    machine: Dict[str, Any] = field(default_factory=machine_description)
    size: Dict[str, Any] = field(default_factory=dict)
    results: Dict[str, Any] = field(default_factory=dict)
    checks: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        out = asdict(self)
        out["machine"]["load_average_end"] = load_average()
        return out

    def finish(self, json_path: Optional[str]) -> Dict[str, Any]:
        """Close a benchmark: print the final load average, write ``--json`` if asked, return the payload."""
        payload = self.to_dict()
        print(f"load average at the end: {payload['machine']['load_average_end']}")
        write_json(json_path, payload)
        return payload
