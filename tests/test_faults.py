"""Faults found by trying the run layer as a new user would (issue 17): each test reproduces one.

Nothing is lost (a finished run is never written over, a resume never continues on other data)
and nothing fails silently or with a traceback (one ``error: ...`` line, exit status 2).
"""
import json
import os
import shutil

import pytest

from bau.checkpoint import load_checkpoint, save_checkpoint
from bau.config import load_config
from bau.errors import BauError
from bau.trainer import Trainer, resume_config
from tests.conftest import tiny_overrides


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

    from bau.feature_file import read_feature_file

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

    import bau.atomic

    from app.embeddings import cached_geometry, cached_tsne

    fs = _feature_file(tmp_path)
    os.makedirs(fs.cache().folder)
    real = tempfile.mkstemp

    def read_only(*a, dir=None, **k):  # root ignores permission bits: refuse where the write happens
        if dir and ".bau_cache" in str(dir):
            raise OSError(30, "Read-only file system", dir)
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(bau.atomic.tempfile, "mkstemp", read_only)
    rows, emb = cached_tsne(fs, max_points=24, perplexity=5.0)
    assert emb.shape == (24, 2)
    from analysis.feature_report import geometry

    assert cached_geometry(fs) == geometry(fs)
    assert os.listdir(fs.cache().folder) == []


def test_feature_set_with_a_read_only_or_damaged_cache(tiny_synth, tmp_path, monkeypatch):
    import tempfile

    import numpy as np

    import bau.atomic
    from bau.features import feature_set

    run = tmp_path / "run"
    _trainer(tiny_synth, run, **{"train.epochs": 1, "data.targets": ""}).fit()
    ckpt = str(run / "last.pt")
    real = tempfile.mkstemp

    def read_only(*a, dir=None, **k):
        if dir and ".bau_cache" in str(dir):
            raise PermissionError(13, "Permission denied", dir)
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(bau.atomic.tempfile, "mkstemp", read_only)
    fs = feature_set(ckpt, ["folder:synth_c"], "test", tiny_synth, workers=0)
    assert len(fs) > 0 and not os.listdir(run / ".bau_cache")
    monkeypatch.setattr(bau.atomic.tempfile, "mkstemp", real)
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
