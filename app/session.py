"""What every page shares: the runs folder, the sidebar choices, the model lock, error display.

``main.py`` calls ``build_context()`` once per script run (it draws the sidebar) and stores the
result in ``st.session_state``; the pages read it back with ``context()``. The choices are also
mirrored into the URL (``?run=NAME``) so a view can be shared; a ``run`` parameter is checked
like any typed path (it must lead inside the runs folder).

Errors a user can cause (a corrupt checkpoint, a path outside the runs folder or with a NUL byte,
a missing dataset) are ``BauError``s: ``show_errors`` turns them into an ``st.error`` box in the
page and the app keeps running.

Runs, models and cached features come from the run layer (``bau.runs``, ``bau.runs.checkpoint.load_model``,
``bau.runs.features.feature_set``); what is Streamlit's here is the short-lived cache of the run list
(``st.cache_data``) and one lock per checkpoint shared by all sessions (``st.cache_resource``).
"""
from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, List, Optional

import streamlit as st
import torch

from app.paths import resolve_data_root, resolve_inside, runs_root_from
from bau.core.errors import BauError
from bau.runs.cache import DiskCache
from bau.runs.folder import Run, discover_runs

OTHER_CHECKPOINT = "other file..."
_KEY = "_bau_context"


@dataclass
class AppContext:
    runs_root: str
    runs: List[Run]
    device: str
    run: Optional[Run] = None
    checkpoint: Optional[str] = None  # a real path under runs_root
    data_root_override: str = ""
    problems: List[str] = field(default_factory=list)  # sidebar errors, shown on every page

    def run_config(self) -> dict:
        if self.run is None:
            raise BauError("no run selected (pick one in the sidebar)")
        return self.run.config_dict()

    def data_root(self) -> str:
        cfg = self.run_config()
        return resolve_data_root(str(cfg.get("data", {}).get("root", "")), self.data_root_override,
                                 self.run.path if self.run else None)

    def require_checkpoint(self) -> str:
        if self.checkpoint is None:
            raise BauError("no checkpoint selected (pick a run with a checkpoint in the sidebar)")
        return self.checkpoint


@st.cache_data(ttl=5, show_spinner=False)
def _discover(root: str) -> List[Run]:
    return discover_runs(root)


@st.cache_resource(show_spinner=False)
def _lock_for(path: str) -> threading.Lock:
    return threading.Lock()


@contextmanager
def model_in_use(path: str) -> Iterator[None]:
    """Hold while using a checkpoint's in-memory model: it is shared by every browser session, and
    Grad-CAM's hooks and the eval/train switches of two sessions must not interleave."""
    with _lock_for(os.path.realpath(path)):
        yield


def build_context() -> AppContext:
    """Read the runs folder given at start and draw the shared sidebar."""
    root = runs_root_from(sys.argv[1:] if "--runs" in sys.argv else [])
    sb = st.sidebar.container()  # filled below; the reload button under it is read first
    if st.sidebar.button("Reload run list", help="Look for new runs under the runs folder"):
        _discover.clear()
    ctx = AppContext(runs_root=root, runs=_discover(root), device="cuda" if torch.cuda.is_available() else "cpu")
    sb.caption(f"Runs folder: `{root}`  \n{len(ctx.runs)} run{'' if len(ctx.runs) == 1 else 's'} · "
               f"device {ctx.device}")
    if not ctx.runs:
        return ctx
    names = [r.name for r in ctx.runs]
    wanted = st.query_params.get("run")
    if wanted and "run" not in st.session_state:
        try:
            real = resolve_inside(root, wanted, "run")
            match = [r.name for r in ctx.runs if os.path.realpath(r.path) == real]
            if not match:
                raise BauError(f"run {wanted}: not a run folder under the runs folder {root}")
            st.session_state["run"] = match[0]
        except BauError as e:
            ctx.problems.append(str(e))
    name = sb.selectbox("Run", names, key="run")
    ctx.run = next(r for r in ctx.runs if r.name == name)
    if st.query_params.get("run") != name:
        st.query_params["run"] = name

    options = ctx.run.checkpoints() + [OTHER_CHECKPOINT]
    choice = sb.selectbox("Checkpoint", options, key="checkpoint_choice")
    typed = ""
    if choice == OTHER_CHECKPOINT:
        typed = sb.text_input("Checkpoint path (under the runs folder)", key="checkpoint_path",
                              placeholder=f"{ctx.run.name}/best.pt").strip()
    candidate = typed if choice == OTHER_CHECKPOINT else os.path.join(ctx.run.path, choice)
    if candidate:
        try:  # a listed checkpoint can be a symlink leading out too: same check as a typed path
            ctx.checkpoint = resolve_inside(root, candidate, "checkpoint")
            if not os.path.isfile(ctx.checkpoint):
                raise BauError(f"checkpoint {candidate}: file not found")
        except BauError as e:
            ctx.checkpoint = None
            ctx.problems.append(str(e))
    if ctx.checkpoint and not DiskCache.for_checkpoint(ctx.checkpoint).enabled:
        sb.caption("Cache off: the checkpoint's folder is not writable, so features are recomputed on every visit.")

    try:
        configured = str(ctx.run_config().get("data", {}).get("root", ""))
    except BauError as e:
        configured = ""
        ctx.problems.append(str(e))
    ctx.data_root_override = sb.text_input("Dataset root", key="data_root", placeholder=configured,
                                           help="Empty: the run's data.root. Must be an existing folder.")
    return ctx


def set_context(ctx: AppContext) -> None:
    st.session_state[_KEY] = ctx


def context() -> AppContext:
    """The context ``main.py`` built in this script run."""
    ctx = st.session_state.get(_KEY)
    if ctx is None:
        st.error("Open the app through app/main.py (`bau app --runs RUNS`).")
        st.stop()
    for problem in ctx.problems:
        st.error(problem)
    return ctx


@contextmanager
def show_errors() -> Iterator[None]:
    """Show a ``BauError`` raised inside as an ``st.error`` box; the rest of the app keeps running."""
    try:
        yield
    except BauError as e:
        st.error(str(e))


class ProgressBar:
    """A ``progress(fraction, text)`` callback drawing one ``st.progress`` bar, removed when done."""

    def __init__(self, label: str):
        self.slot = st.empty()
        self.label = label

    def __call__(self, fraction: float, text: str) -> None:
        self.slot.progress(min(max(float(fraction), 0.0), 1.0), text=f"{self.label}: {text}")

    def done(self) -> None:
        self.slot.empty()
