"""Entry point of the bau app: ``streamlit run app/main.py -- --runs RUNS`` (or ``bau app --runs RUNS``).

Draws the shared sidebar (run, checkpoint, dataset root) and hands over to the chosen page in
``app/views/``. Only the runs folder given here can be browsed (see ``app.paths``).
"""
from __future__ import annotations

import os
import sys

# Streamlit puts this file's folder on sys.path; the pages import ``app``, ``bau`` and ``analysis``
# from the repository root, installed or not.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import streamlit as st  # noqa: E402

from app.session import build_context, set_context  # noqa: E402
from bau.core.errors import BauError  # noqa: E402

st.set_page_config(page_title="bau", page_icon=":material/person_search:", layout="wide")

try:
    set_context(build_context())
except BauError as e:  # no or bad --runs: nothing to show but the reason
    st.error(str(e))
    st.stop()

_VIEWS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "views")
pages = [
    st.Page(os.path.join(_VIEWS, "runs.py"), title="Runs", icon=":material/table_chart:", default=True),
    st.Page(os.path.join(_VIEWS, "geometry.py"), title="Geometry", icon=":material/scatter_plot:"),
    st.Page(os.path.join(_VIEWS, "retrieval.py"), title="Retrieval", icon=":material/image_search:"),
    st.Page(os.path.join(_VIEWS, "augmentations.py"), title="Augmentations", icon=":material/auto_fix_high:"),
]
st.navigation(pages).run()
