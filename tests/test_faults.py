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
