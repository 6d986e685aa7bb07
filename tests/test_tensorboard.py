"""train.tensorboard: the event file holds log.jsonl's scalars, read back with tensorboard's own reader."""
import glob
import importlib.util
import json

import pytest

from bau.cli import main
from bau.core.config import load_config
from bau.engine.tensorboard_log import record_scalars
from bau.engine.trainer import Trainer
from tests.helpers import tiny_overrides

pytestmark = pytest.mark.integration


def test_record_scalars_takes_every_numeric_key():
    step = {"event": "step", "epoch": 1, "iter": 2, "step": 7, "lr": 0.1, "time_s": 0.5, "ce": 2.0, "total": 3.5}
    assert record_scalars(step) == {"train/lr": 0.1, "train/time_s": 0.5, "train/ce": 2.0, "train/total": 3.5}
    epoch = {"event": "epoch", "epoch": 1, "step": 7, "lr": 0.1, "domain_share": {"a": 0.25, "b": 0.75},
             "mean_ce": 2.0}
    assert record_scalars(epoch) == {"epoch/lr": 0.1, "epoch/domain_share/a": 0.25, "epoch/domain_share/b": 0.75,
                                     "epoch/mean_ce": 2.0}
    # geometry keys an eval record may carry are picked up without the writer knowing them; text is not a scalar
    ev = {"event": "eval", "epoch": 1, "step": 7, "target": "market1501", "mAP": 0.5, "align": -1.2,
          "uniform_target": -3.0, "note": "x", "finished": True}
    assert record_scalars(ev) == {"eval/market1501/mAP": 0.5, "eval/market1501/align": -1.2,
                                  "eval/market1501/uniform_target": -3.0}


def test_event_file_holds_the_logged_scalars(tiny_synth, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    cfg = load_config(None, tiny_overrides(tiny_synth, **{"train.tensorboard": "true"}))
    Trainer(cfg, str(run), progress=False, echo=lambda s: None).fit()
    (event_file,) = glob.glob(str(run / "events.out.tfevents.*"))
    acc = EventAccumulator(event_file, size_guidance={"scalars": 0})
    acc.Reload()
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    expected = {}
    for rec in records:
        for tag, value in record_scalars(rec).items():
            expected.setdefault(tag, []).append((rec["step"], value))
    assert set(acc.Tags()["scalars"]) == set(expected)
    for tag in ("train/total", "train/lr", "epoch/domain_share/folder:synth_a", "eval/folder:synth_c/mAP"):
        assert tag in expected
    for tag, want in expected.items():
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in want], tag
        assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6, abs=1e-7), tag


def test_missing_tensorboard_is_one_line_naming_the_extra(tiny_synth, tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    run = tmp_path / "run"
    rc = main(["train", "--out", str(run), "--quiet"] + tiny_overrides(tiny_synth, **{"train.tensorboard": "true"}))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "bau[tensorboard]" in err and "train.tensorboard" in err
    assert not run.exists()
