"""``bau app --runs RUNS``: serve the Streamlit app (``app/main.py``) on this machine.

The app runs in a child process, ``python -m streamlit run app/main.py -- --runs RUNS``, with the
same interpreter, so it sees the same installed packages. It listens on ``127.0.0.1`` by default:
the app reads checkpoints and images from disk and is meant for the researcher at this machine
(or behind an SSH tunnel), not for the network.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import List, Sequence

from bau.errors import BauError

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
        BauError: ``runs_dir`` is not a folder, the port is invalid, or streamlit is not installed.
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
    print(f"bau app: serving {os.path.abspath(runs_dir)} on http://{host}:{port} (Ctrl-C to stop)", flush=True)
    try:
        return subprocess.call(streamlit_command(runs_dir, port, host, extra_args))
    except KeyboardInterrupt:
        return 0
