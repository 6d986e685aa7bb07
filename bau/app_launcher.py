"""``bau app --runs RUNS``: serve the Streamlit app (``app/main.py``) on this machine.

The app runs in a child process, ``python -m streamlit run app/main.py -- --runs RUNS``, with the
same interpreter, so it sees the same installed packages. It listens on ``127.0.0.1`` by default:
the app reads checkpoints and images from disk and is meant for the researcher at this machine
(or behind an SSH tunnel), not for the network.

``bau app`` stays in the foreground while the server runs and forwards SIGTERM and SIGINT to it,
then waits for it: stopping ``bau app`` (Ctrl-C, ``kill``, a job scheduler) stops the server
too instead of leaving it running without a parent.
"""
from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import List, Sequence

from bau.core.errors import BauError

APP_MAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app", "main.py")


def streamlit_command(runs_dir: str, port: int = 8501, host: str = "127.0.0.1",
                      extra_args: Sequence[str] = ()) -> List[str]:
    """The command line ``launch`` runs (``extra_args`` are streamlit options, e.g. ``--server.headless=true``)."""
    return [sys.executable, "-m", "streamlit", "run", APP_MAIN, "--server.port", str(int(port)),
            "--server.address", host, "--browser.gatherUsageStats", "false",
            # no "Deploy" button: the app serves local files and is not meant for a cloud
            "--client.toolbarMode", "minimal", *extra_args,
            "--", "--runs", os.path.abspath(runs_dir)]


def launch(runs_dir: str, port: int = 8501, host: str = "127.0.0.1", extra_args: Sequence[str] = ()) -> int:
    """Serve the app on ``host:port`` for the runs folder ``runs_dir``; returns streamlit's exit status.

    Raises:
        BauError: ``runs_dir`` is not a folder, the port is invalid or already in use, or streamlit is
            not installed.
    """
    if not os.path.isdir(runs_dir):
        raise BauError(f"--runs {runs_dir}: not a folder (expected the folder holding run or sweep folders)")
    if not 0 < int(port) < 65536:
        raise BauError(f"--port {port}: expected a TCP port between 1 and 65535")
    if not os.path.isfile(APP_MAIN):
        raise BauError(f"bau app: {APP_MAIN} not found (the app ships with the repository)")
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise BauError("bau app: streamlit is not installed (pip install streamlit)") from None
    check_port_free(host, int(port))
    print(f"bau app: serving {os.path.abspath(runs_dir)} on http://{host}:{port} (Ctrl-C to stop)", flush=True)
    return run_forwarding_signals(streamlit_command(runs_dir, port, host, extra_args))


def check_port_free(host: str, port: int) -> None:
    """Raise one ``BauError`` when ``host:port`` cannot be listened on (another server has it, or
    ``host`` is not an address of this machine), instead of streamlit's own text and status 1.

    The probe binds with ``SO_REUSEADDR``, as the server will, so a port left in TIME_WAIT by a
    previous run is not mistaken for a busy one."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise BauError(f"--host {host}: not an address of this machine ({e.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise BauError(f"--port {port}: already in use on {host}; stop the server there or choose "
                               f"another --port") from None
            raise BauError(f"--host {host} --port {port}: cannot be listened on ({e.strerror or e})") from None


FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# After a forwarded signal, how long the server gets to shut down before it is killed.
STOP_GRACE_S = 10.0


def run_forwarding_signals(command: Sequence[str]) -> int:
    """Run ``command`` as a child, forward SIGTERM and SIGINT to it, wait for it; returns its exit status
    (``128 + N`` when a signal N ended it, as a shell reports it)."""
    child = subprocess.Popen(list(command))
    forwarded: List[int] = []

    def forward(signum, frame) -> None:
        forwarded.append(signum)
        if child.poll() is None:
            child.send_signal(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():  # handlers can only be set there
        previous = {s: signal.signal(s, forward) for s in FORWARDED_SIGNALS}
    deadline = None
    try:
        while True:
            try:
                code = child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if forwarded and deadline is None:
                    deadline = time.monotonic() + STOP_GRACE_S
                if deadline is not None and time.monotonic() > deadline:
                    child.kill()  # forwarded, but the server did not stop in time
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if child.poll() is None:  # an exception in this process: never leave the server behind
            child.kill()
            child.wait()
    return 128 - code if code < 0 else code
