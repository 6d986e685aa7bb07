"""The command line: every sub-command on tiny data, and bad input as one clear line (exit 2)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bau.cli import main
from tests.conftest import tiny_overrides

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tiny_run(tiny_synth, tmp_path_factory):
    run = str(tmp_path_factory.mktemp("cli") / "run")
    assert main(["train", "--out", run, "--quiet", *tiny_overrides(tiny_synth, **{"train.epochs": 1})]) == 0
    return run


def test_train_eval_extract(tiny_synth, tiny_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", os.path.join(tiny_run, "last.pt"), "--target", "folder:synth_c",
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "mAP" in printed and "rank-1" in printed
    res = json.loads(out.read_text())["results"][0]
    assert res["dataset"] == "folder:synth_c" and 0 <= res["mAP"] <= 1 and len(res["splits"]) == 1
    # the same number as the training run's own final evaluation
    final = json.loads(open(os.path.join(tiny_run, "results.json")).read())["metrics"]["folder:synth_c"]
    assert res["mAP"] == pytest.approx(final["mAP"], abs=1e-6)
    # re-ranking runs and changes the distances
    assert main(["eval", "--checkpoint", tiny_run, "--target", "folder:synth_c", "--rerank",
                 "--out", str(tmp_path / "rr.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "rr.json").read_text())["results"][0]["rerank"] is True

    npz = tmp_path / "f.npz"
    assert main(["extract", "--checkpoint", tiny_run, "--dataset", "folder:synth_a", "folder:synth_c",
                 "--subset", "all", "--out", str(npz), "--quiet"]) == 0
    z = np.load(npz)
    n = len(z["pids"])
    assert z["features"].shape[0] == n and set(z["domains"]) == {0, 1}
    assert np.allclose(np.linalg.norm(z["features"], axis=1), 1, atol=1e-4)
    assert list(z["domain_names"]) == ["folder:synth_a", "folder:synth_c"]
    assert {"train", "query", "gallery"} == set(z["subsets"])


def test_data_inspect(tiny_synth, capsys):
    assert main(["data", "inspect", "--root", tiny_synth, "folder:synth_a"]) == 0
    assert "folder:synth_a" in capsys.readouterr().out
    # market1501 is not under the synthetic root: both are reported, and the exit status says so
    assert main(["data", "inspect", "--root", tiny_synth, "folder:synth_a", "market1501"]) == 2
    captured = capsys.readouterr()
    assert "folder:synth_a" in captured.out and "market1501: error:" in captured.out
    assert captured.err.startswith("error: data inspect:")


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--out", "x", "loss.k=abc"], "loss.k"),
    (["train", "--config", "missing.yaml", "--out", "x"], "missing.yaml"),
    (["train", "--resume", "/nonexistent/run"], "--resume"),
    (["eval", "--checkpoint", "/nonexistent.pt", "--target", "market1501"], "nonexistent.pt"),
    (["train", "--out", "x", "data.sources=nosuchset"], "nosuchset"),
])
def test_bad_input_is_one_line(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and fragment in err


def test_foreign_checkpoint_eval(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"PK\x03\x04 not really a checkpoint")
    assert main(["eval", "--checkpoint", str(bad), "--target", "market1501"]) == 2
    assert "not a bau checkpoint" in capsys.readouterr().err


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "bau", "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0
    for cmd in ("train", "eval", "extract", "synth", "data", "demo", "sweep", "app"):
        assert cmd in out.stdout
