"""Faults found by trying the run layer as a new user would (issue 17): each test reproduces one.

Nothing is lost (a finished run is never written over, a resume never continues on other data)
and nothing fails silently or with a traceback (one ``error: ...`` line, exit status 2).
"""
import json
import os
import shutil

import pytest

from bau.core.config import load_config
from bau.core.errors import BauError
from bau.engine.trainer import Trainer
from bau.runs.checkpoint import load_checkpoint, save_checkpoint
from bau.runs.folder import resume_config
from tests.helpers import tiny_overrides

pytestmark = pytest.mark.integration


def _trainer(root, run_dir, force=False, **extra):
    cfg = load_config(None, tiny_overrides(root, **extra))
    return Trainer(cfg, str(run_dir), progress=False, echo=lambda s: None, **({"force": True} if force else {}))


# -- 1. a finished run is never written over without --resume or --force ----------------------------
@pytest.mark.parametrize("kept", ["best.pt", "results.json", "log.jsonl", "config.yaml"])
def test_a_run_folder_without_last_pt_is_not_overwritten(tiny_synth, tmp_path, kept):
    run = tmp_path / "run"
    _trainer(tiny_synth, run, **{"train.epochs": 1}).fit()
    for name in ("config.yaml", "log.jsonl", "results.json", "last.pt", "best.pt"):
        if name != kept:
            os.remove(run / name)
    before = (run / kept).read_bytes()
    with pytest.raises(BauError, match=f"already holds a run.*{kept}.*--force"):
        _trainer(tiny_synth, run, **{"train.epochs": 1})
    assert (run / kept).read_bytes() == before
    assert not (run / "last.pt").exists() and not (run / ".lock").exists()


def test_force_overwrites_every_artefact_of_the_old_run(tiny_synth, tmp_path):
    run = tmp_path / "run"
    _trainer(tiny_synth, run, **{"train.epochs": 1}).fit()
    os.remove(run / "last.pt")
    # the new run has no targets, so it writes no best.pt: the old one must not survive it
    _trainer(tiny_synth, run, force=True, **{"train.epochs": 1, "data.targets": ""}).fit()
    assert not (run / "best.pt").exists()
    assert json.loads((run / "results.json").read_text())["metrics"] == {}
    assert not any('"eval"' in line for line in (run / "log.jsonl").read_text().splitlines())


def test_cli_force_flag(tiny_synth, tmp_path, capsys):
    from bau.cli import main

    run = tmp_path / "run"
    args = ["train", "--out", str(run), "--quiet", *tiny_overrides(tiny_synth, **{"train.epochs": 1})]
    assert main(args) == 0
    os.remove(run / "last.pt")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: run folder") and err.count("\n") == 1 and "--force" in err
    assert main(args + ["--force"]) == 0 and (run / "last.pt").is_file()


# -- 2. --resume refuses changed training data even when the identity count is the same -------------
def test_resume_refuses_another_source_with_the_same_number_of_ids(tiny_synth, tmp_path):
    run = tmp_path / "run"
    _trainer(tiny_synth, run, **{"train.epochs": 1}).fit()
    cfg = resume_config(str(run), ["train.epochs=2", "data.sources=folder:synth_a,folder:synth_c"])
    with pytest.raises(BauError, match="training data changed") as info:
        Trainer(cfg, str(run), resume=True, progress=False, echo=lambda s: None)
    assert "\n" not in str(info.value)
    assert load_checkpoint(str(run / "last.pt"))["epoch"] == 1


def test_resume_refuses_removed_images(tiny_synth, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tiny_synth, root)
    run = tmp_path / "run"
    _trainer(str(root), run, **{"train.epochs": 1}).fit()
    images = sorted((root / "synth_a" / "bounding_box_train").iterdir())
    same_id = [p for p in images if p.name.split("_")[0] == images[0].name.split("_")[0]]
    assert len(same_id) > 2  # the identity stays: the class count does not change
    os.remove(same_id[0])
    cfg = resume_config(str(run), ["train.epochs=2"])
    with pytest.raises(BauError, match="training data changed"):
        Trainer(cfg, str(run), resume=True, progress=False, echo=lambda s: None)


def test_resume_of_an_old_checkpoint_without_fingerprint_says_so(tiny_synth, tmp_path):
    run = tmp_path / "run"
    _trainer(tiny_synth, run, **{"train.epochs": 1}).fit()
    ckpt = load_checkpoint(str(run / "last.pt"))
    del ckpt["data_fingerprint"], ckpt["path"]
    save_checkpoint(str(run / "last.pt"), ckpt)
    said = []
    cfg = resume_config(str(run), ["train.epochs=2"])
    Trainer(cfg, str(run), resume=True, progress=False, echo=said.append).fit()
    notices = [s for s in said if "fingerprint" in s]
    assert len(notices) == 1 and "\n" not in notices[0]
    assert load_checkpoint(str(run / "last.pt"))["epoch"] == 2


# -- 5, 6, 8: the on-disk cache never breaks a page or a figure script --------------------------------
def _feature_file(tmp_path, scale=1.0):
    import numpy as np

    from bau.runs.features import read_feature_file

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((6, 8))
    feats = np.repeat(centres, 4, axis=0) + 0.3 * rng.standard_normal((24, 8))
    pids = np.repeat(np.arange(6), 4)
    path = tmp_path / "feats.npz"
    np.savez(path, features=(feats * scale).astype(np.float32), pids=pids, camids=np.tile(np.arange(4), 6))
    return read_feature_file(str(path))


def _cache_entries(fs, kind):
    folder = fs.cache().folder
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(kind + "-"))


@pytest.mark.parametrize("damage", ["truncated", "empty", "other arrays"])
def test_a_damaged_cache_entry_is_a_miss_and_is_replaced(tmp_path, damage):
    import numpy as np

    from app.embeddings import cached_tsne

    fs = _feature_file(tmp_path)
    rows, emb = cached_tsne(fs, max_points=24, perplexity=5.0)
    (entry,) = _cache_entries(fs, "tsne")
    data = open(entry, "rb").read()
    if damage == "truncated":
        open(entry, "wb").write(data[: len(data) // 2])
    elif damage == "empty":
        open(entry, "wb").write(b"")
    else:
        np.savez(entry, unrelated=np.zeros(3))
    rows2, emb2 = cached_tsne(fs, max_points=24, perplexity=5.0)
    np.testing.assert_array_equal(rows, rows2)
    np.testing.assert_allclose(emb, emb2, atol=1e-5)
    assert open(entry, "rb").read() == data  # recomputed and replaced


def test_a_read_only_cache_computes_without_caching(tmp_path, monkeypatch):
    import tempfile

    import bau.core.atomic
    from app.embeddings import cached_geometry, cached_tsne

    fs = _feature_file(tmp_path)
    os.makedirs(fs.cache().folder)
    real = tempfile.mkstemp

    def read_only(*a, dir=None, **k):  # root ignores permission bits: refuse where the write happens
        if dir and ".bau_cache" in str(dir):
            raise OSError(30, "Read-only file system", dir)
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(bau.core.atomic.tempfile, "mkstemp", read_only)
    rows, emb = cached_tsne(fs, max_points=24, perplexity=5.0)
    assert emb.shape == (24, 2)
    from analysis.feature_report import geometry

    assert cached_geometry(fs) == geometry(fs)
    assert os.listdir(fs.cache().folder) == []


def test_feature_set_with_a_read_only_or_damaged_cache(tiny_synth, tmp_path, monkeypatch):
    import tempfile

    import numpy as np

    import bau.core.atomic
    from bau.runs.features import feature_set

    run = tmp_path / "run"
    _trainer(tiny_synth, run, **{"train.epochs": 1, "data.targets": ""}).fit()
    ckpt = str(run / "last.pt")
    real = tempfile.mkstemp

    def read_only(*a, dir=None, **k):
        if dir and ".bau_cache" in str(dir):
            raise PermissionError(13, "Permission denied", dir)
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(bau.core.atomic.tempfile, "mkstemp", read_only)
    fs = feature_set(ckpt, ["folder:synth_c"], "test", tiny_synth, workers=0)
    assert len(fs) > 0 and not os.listdir(run / ".bau_cache")
    monkeypatch.setattr(bau.core.atomic.tempfile, "mkstemp", real)
    fs = feature_set(ckpt, ["folder:synth_c"], "test", tiny_synth, workers=0)
    (entry,) = os.listdir(run / ".bau_cache")
    np.savez(run / ".bau_cache" / entry, features=fs.features)  # an entry without its other arrays
    again = feature_set(ckpt, ["folder:synth_c"], "test", tiny_synth, workers=0)
    np.testing.assert_array_equal(again.pids, fs.pids)


# -- 9. features of any scale give finite geometry ------------------------------------------------
@pytest.mark.parametrize("scale", [1e20, 1e-25])
def test_extreme_feature_scales_give_the_same_geometry(tmp_path, scale):
    from analysis.feature_report import geometry

    ref = geometry(_feature_file(tmp_path))
    (tmp_path / "s").mkdir()
    got = geometry(_feature_file(tmp_path / "s", scale=scale))
    assert got["alignment"] == pytest.approx(ref["alignment"], rel=1e-4)
    assert got["uniformity"] == pytest.approx(ref["uniformity"], rel=1e-4)


# -- 7. one killed --jobs worker does not abort the other runs ------------------------------------
def test_a_killed_sweep_worker_fails_only_its_own_run(tiny_synth, tmp_path):
    import multiprocessing
    import signal
    import threading
    import time

    import yaml

    from bau.engine.sweep import run_sweep

    (tmp_path / "base.yaml").write_text("model:\n  backbone: mobilenetv2\n")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", "overrides": tiny_overrides(tiny_synth),
                                    "grids": [{"data.aug_prob": [0.0, 1.0]}]}))
    out = tmp_path / "sweep"
    outcome = {}

    def sweep():
        try:
            outcome["rows"] = run_sweep(str(path), str(out), progress=False, echo=lambda s: None, jobs=2)
        except BauError as e:
            outcome["error"] = str(e)

    thread = threading.Thread(target=sweep)
    thread.start()
    deadline = time.time() + 120
    while time.time() < deadline and len(multiprocessing.active_children()) < 2:
        time.sleep(0.01)
    # one of the two workers dies at once (as under the OOM killer); the other run is in its first seconds
    victim = multiprocessing.active_children()[0]
    os.kill(victim.pid, signal.SIGKILL)
    thread.join(600)
    assert "error" in outcome, outcome
    summary = json.loads((out / "summary.json").read_text())
    finished = [r["run"] for r in summary["runs"] if r["status"] == "finished"]
    assert len(finished) == 1, summary
    failed = ({"aug_prob-0.0", "aug_prob-1.0"} - set(finished)).pop()
    assert f"1 of 2 runs failed: {failed} (killed by signal 9" in outcome["error"]
    assert "\n" not in outcome["error"]


def test_cli_sweep_with_a_failed_run_exits_2(tiny_synth, tmp_path, capsys, monkeypatch):
    import bau.engine.sweep
    from bau.cli import main

    monkeypatch.setattr(bau.engine.sweep, "_train_in_processes", lambda todo, jobs, echo, **k: [("run-x", "boom")])
    (tmp_path / "base.yaml").write_text("model:\n  backbone: mobilenetv2\n")
    (tmp_path / "s.yaml").write_text("base: base.yaml\ngrids:\n  - data.aug_prob: [0.0, 1.0]\n")
    assert main(["sweep", "--config", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "o"), "--jobs", "2",
                 "--quiet", *tiny_overrides(tiny_synth)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: sweep folder") and "run-x (boom)" in err and err.count("\n") == 1


# -- 8. bad bytes and bad types are one line, never a traceback ---------------------------------
def _one_line_exit_2(capsys, argv):
    from bau.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_config_or_sweep_file_that_is_not_utf8(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"train:\n  epochs: 2\n# caf\xe9 latin-1\n")
    err = _one_line_exit_2(capsys, ["train", "--config", str(bad), "--out", str(tmp_path / "run")])
    assert "bad.yaml" in err and "UTF-8" in err
    err = _one_line_exit_2(capsys, ["sweep", "--config", str(bad), "--out", str(tmp_path / "sw")])
    assert "bad.yaml" in err and "UTF-8" in err


def test_resume_skips_unreadable_log_lines_and_says_how_many(tiny_synth, tmp_path):
    run = tmp_path / "run"
    _trainer(tiny_synth, run, **{"train.epochs": 1}).fit()
    with open(run / "log.jsonl", "ab") as f:
        f.write(b'{"event": "step", "step": 1, "note": "\xff\xfe"}\n')
        f.write(b'{"event": "step", "step": "three"}\n')
        f.write(b'{"event": "epoch", "epoch": null}\n')
    said = []
    Trainer(resume_config(str(run), ["train.epochs=2"]), str(run), resume=True, progress=False,
            echo=said.append).fit()
    assert [s for s in said if "log.jsonl" in s] == [f"notice: {run / 'log.jsonl'}: 3 unreadable line(s) dropped"]
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "step"] == [1, 2, 3, 4]


@pytest.mark.parametrize("value", ["7", 7.5, None, True, -1])
def test_a_checkpoint_whose_num_classes_is_not_an_int(tiny_synth, tmp_path, capsys, value):
    run = tmp_path / "run"
    _trainer(tiny_synth, run, **{"train.epochs": 1, "data.targets": ""}).fit()
    ckpt = load_checkpoint(str(run / "last.pt"))
    del ckpt["path"]
    ckpt["num_classes"] = value
    save_checkpoint(str(run / "bad.pt"), ckpt)
    err = _one_line_exit_2(capsys, ["eval", "--checkpoint", str(run / "bad.pt"), "--target", "folder:synth_c",
                                    "--data-root", tiny_synth, "--quiet"])
    assert "bad.pt" in err and "num_classes" in err


# -- 9. the smaller ones --------------------------------------------------------------------------
@pytest.mark.parametrize("option", ["optim.lr=inf", "optim.weight_decay=inf", "loss.lam=inf", "loss.margin=nan",
                                    "optim.lr=-inf", "model.gem_p=inf", "loss.lam=nan"])
def test_non_finite_numbers_are_refused(option):
    with pytest.raises(BauError, match=f"config option {option.split('=')[0]}: expected a finite number"):
        load_config(None, [option])


def test_app_port_in_use_is_one_line(tmp_path, capsys):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        err = _one_line_exit_2(capsys, ["app", "--runs", str(tmp_path), "--port", str(port)])
    assert f"--port {port}" in err and "in use" in err
