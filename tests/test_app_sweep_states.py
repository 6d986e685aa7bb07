"""The app's Runs page shows a sweep's job states as ``bau sweep --status`` does (``app.runs.sweep_state_table``)."""
import json
import os
import time

import pytest
import yaml

from app.paths import RUNS_ENV
from app.runs import sweep_state_table
from bau.core.config import load_config, save_config
from bau.engine.cluster import write_job_state
from tests.helpers import tiny_overrides

pytestmark = pytest.mark.integration

MAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app", "main.py")


def _sweep_in_flight(root, data_root):
    """RUNS/sweep: p-0.0 failed (its job's error), p-1.0 running (a fresh lease on node4), p-0.5 queued."""
    sweep = root / "sweep"
    names = ["p-0.0", "p-0.5", "p-1.0"]
    for name in ("p-0.0", "p-1.0"):
        (sweep / name).mkdir(parents=True)
        save_config(load_config(None, tiny_overrides(data_root)), str(sweep / name / "config.yaml"))
        (sweep / name / "log.jsonl").write_text(
            "".join(json.dumps({"event": "step", "epoch": 1, "iter": s, "step": s, "lr": 1e-4, "time_s": 0.1,
                                "total": 1.0 / s}) + "\n" for s in (1, 2, 3, 4)))
    (sweep / "summary.json").write_text(json.dumps({"runs": [{"run": n, "aug_prob": float(n[2:]), "status": "pending"}
                                                             for n in names]}))
    (sweep / "sweep.yaml").write_text(yaml.safe_dump({"runs": [{"name": n} for n in names]}))
    (sweep / "jobs.json").write_text(json.dumps({n: {"job_id": f"31_{i}", "launcher": "slurm",
                                                     "folder": str(sweep / ".submitit")} for i, n in enumerate(names)}))
    write_job_state(str(sweep / "p-0.0"), "failed", job_id="31_0", error="RuntimeError: NCCL timeout")
    (sweep / "p-1.0" / ".lock").write_text(json.dumps({"host": "node4", "pid": 12, "job_id": "31_2",
                                                       "heartbeat": time.time(), "since": "now"}))
    return sweep


def test_sweep_state_table(tiny_synth, tmp_path):
    table = sweep_state_table(str(_sweep_in_flight(tmp_path, tiny_synth)))
    assert list(table.columns) == ["run", "state", "job", "last step", "detail"]
    assert table.set_index("run")["state"].to_dict() == {"p-0.0": "failed", "p-0.5": "queued", "p-1.0": "running"}
    assert table.set_index("run").loc["p-0.0", "detail"] == "RuntimeError: NCCL timeout"


def test_runs_page_shows_the_sweep_states(tiny_synth, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    _sweep_in_flight(tmp_path, tiny_synth)
    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    at = AppTest.from_file(MAIN, default_timeout=90).run()
    at.selectbox(key="run").select("sweep/p-1.0").run()
    assert not at.exception
    shown = [d.value for d in at.dataframe if "state" in getattr(d.value, "columns", [])]
    assert len(shown) == 1
    assert shown[0].set_index("run")["state"].to_dict() == {"p-0.0": "failed", "p-0.5": "queued", "p-1.0": "running"}
