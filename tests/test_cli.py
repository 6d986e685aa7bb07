"""The command line: every sub-command on tiny data, and bad input as one clear line (exit 2)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bau.cli import main
from tests.helpers import tiny_overrides

pytestmark = pytest.mark.integration

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
    assert int(z["bau_features_version"]) == 1  # the versioned format of docs/feature_files.md
    from bau.runs.features import read_feature_file

    fs = read_feature_file(str(npz))
    assert fs.domain_names == ["folder:synth_a", "folder:synth_c"] and np.array_equal(fs.features, z["features"])
    # the same file without the version field (as bau extract wrote it before) reads the same
    old = tmp_path / "old.npz"
    np.savez(old, **{k: z[k] for k in z.files if k != "bau_features_version"})
    assert np.array_equal(read_feature_file(str(old)).pids, fs.pids)
    # and `bau analyze` reads it: the target's query/gallery give the mAP the training run reported
    report = tmp_path / "report"
    assert main(["analyze", "--features", str(npz), "--out", str(report), "--max-points", "0", "--quiet"]) == 0
    numbers = json.loads((report / "report.json").read_text())
    assert numbers["retrieval"]["per_domain"]["folder:synth_c"]["mAP"] == pytest.approx(final["mAP"], abs=1e-6)


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
    for cmd in ("train", "eval", "extract", "analyze", "synth", "data", "demo", "sweep", "app"):
        assert cmd in out.stdout


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_out_that_is_a_file_is_one_line(tiny_synth, tmp_path, capsys):
    out = tmp_path / "results.txt"
    out.write_text("keep me")
    assert main(["train", "--out", str(out), "--quiet", *tiny_overrides(tiny_synth)]) == 2
    assert "is a file" in _one_error_line(capsys) and out.read_text() == "keep me"


def test_unwritable_out_is_one_line(tiny_synth, tmp_path, capsys, monkeypatch):
    # Root ignores permission bits, so the refusal of a read-only folder is simulated where it
    # happens: creating the run folder's first file.
    import bau.runs.lock as run_lock

    real_open = run_lock.os.open

    def read_only(path, *a, **k):
        if str(path).startswith(str(tmp_path / "ro")):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *a, **k)

    monkeypatch.setattr(run_lock.os, "open", read_only)
    assert main(["train", "--out", str(tmp_path / "ro"), "--quiet", *tiny_overrides(tiny_synth)]) == 2
    assert "cannot be written (Permission denied)" in _one_error_line(capsys)


def test_full_disk_is_one_line_and_keeps_the_last_checkpoint(tiny_synth, tiny_run, tmp_path, capsys, monkeypatch):
    import shutil

    import torch

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = (run / "last.pt").read_bytes()

    def full_disk(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"\0" * 1000)
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 1000 vs 2345")

    monkeypatch.setattr(torch, "save", full_disk)
    assert main(["train", "--resume", str(run), "--quiet", "train.epochs=2"]) == 2
    err = _one_error_line(capsys)
    assert "last.pt: could not be written" in err and "disk full" in err
    assert (run / "last.pt").read_bytes() == before and not list(run.glob(".*.tmp"))


def test_a_loader_worker_error_is_unwrapped_to_its_one_line():
    from torch.utils.data import DataLoader, Dataset

    from bau.core.errors import BauError, one_line

    class Broken(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            raise BauError("image /data/x.jpg: cannot be decoded as an image")

    with pytest.raises(BauError) as info:
        next(iter(DataLoader(Broken(), num_workers=1)))
    assert "Traceback" in str(info.value)  # what PyTorch re-raises in the main process
    assert one_line(info.value) == "image /data/x.jpg: cannot be decoded as an image"
