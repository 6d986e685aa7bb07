import json
import os

import pytest
import torch

from bau.core.config import load_config
from bau.core.errors import BauError
from bau.engine.trainer import Trainer, TrainingDiverged
from bau.runs.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from bau.runs.folder import resume_config
from tests.helpers import tiny_overrides

pytestmark = pytest.mark.integration


def _train(root, run_dir, **extra):
    cfg = load_config(None, tiny_overrides(root, **extra))
    return Trainer(cfg, str(run_dir), progress=False, echo=lambda s: None).fit()


def test_run_folder_contents(tiny_synth, tmp_path):
    result = _train(tiny_synth, tmp_path / "run")
    run = tmp_path / "run"
    assert result["finished"] and set(result["metrics"]) == {"folder:synth_c"}
    for name in ("config.yaml", "log.jsonl", "last.pt", "best.pt", "results.json"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["event"] == "step"]
    evals = [r for r in records if r["event"] == "eval"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert {"ce", "tri", "align", "uniform", "domain", "total"} <= set(steps[0])
    assert [r["epoch"] for r in evals] == [1, 2] and 0 <= evals[-1]["mAP"] <= 1
    # the stored config is the resolved one and rebuilds the same run
    again = load_config(str(run / "config.yaml"))
    assert again.data.sources == ["folder:synth_a", "folder:synth_b"] and again.data.height == 32
    ckpt = load_checkpoint(str(run / "last.pt"))
    assert ckpt["epoch"] == 2 and ckpt["step"] == 4 and "memory" in ckpt and "optimizer" in ckpt
    model, _, _ = model_from_checkpoint(str(run / "last.pt"))
    assert not model.training
    with pytest.raises(BauError, match="already holds a run"):
        _train(tiny_synth, run)


def test_resume_after_kill_gives_identical_weights(tiny_synth, tmp_path, monkeypatch):
    _train(tiny_synth, tmp_path / "full", **{"train.epochs": 3})

    # "kill" the second run right after its epoch-1 checkpoint: the process dies in epoch 2
    import bau.engine.trainer as trainer_mod

    real_save = trainer_mod.save_checkpoint
    calls = {"n": 0}

    def save_then_die(path, payload):
        real_save(path, payload)
        if path.endswith("last.pt"):
            calls["n"] += 1
            if calls["n"] == 1:
                raise KeyboardInterrupt

    monkeypatch.setattr(trainer_mod, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_synth, tmp_path / "killed", **{"train.epochs": 3})
    monkeypatch.setattr(trainer_mod, "save_checkpoint", real_save)
    assert load_checkpoint(str(tmp_path / "killed" / "last.pt"))["epoch"] == 1

    cfg = resume_config(str(tmp_path / "killed"))
    Trainer(cfg, str(tmp_path / "killed"), resume=True, progress=False, echo=lambda s: None).fit()
    a = load_checkpoint(str(tmp_path / "full" / "last.pt"))
    b = load_checkpoint(str(tmp_path / "killed" / "last.pt"))
    assert a["step"] == b["step"] == 6
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert torch.equal(a["memory"]["prototypes"], b["memory"]["prototypes"])
    steps = [json.loads(line)["step"] for line in open(tmp_path / "killed" / "log.jsonl") if '"step"' in line and
             json.loads(line)["event"] == "step"]
    assert steps == list(range(1, 7))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_synth, tmp_path, monkeypatch):
    run = tmp_path / "run"
    _train(tiny_synth, run, **{"train.epochs": 1})
    before = (run / "last.pt").read_bytes()

    import bau.method.objective as objective_mod

    real = objective_mod.uniformity_loss
    monkeypatch.setattr(objective_mod, "uniformity_loss", lambda f: real(f) * float("nan"))
    cfg = resume_config(str(run), ["train.epochs=2"])
    with pytest.raises(TrainingDiverged, match="'uniform' became nan"):
        Trainer(cfg, str(run), resume=True, progress=False, echo=lambda s: None).fit()
    assert (run / "last.pt").read_bytes() == before


def test_foreign_and_corrupt_checkpoints_are_refused(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(BauError, match="not a bau checkpoint"):
        load_checkpoint(str(plain))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "bau-checkpoint", "x": Evil()}, evil)
    with pytest.raises(BauError, match="weights_only"):
        load_checkpoint(str(evil))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(BauError, match="junk.pt"):
        load_checkpoint(str(junk))
    with pytest.raises(BauError, match="not found"):
        load_checkpoint(str(tmp_path / "none.pt"))


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(str(path), {"model": {}, "config": {}, "num_classes": 1})
    before = path.read_bytes()

    def broken_save(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(BauError, match="last.pt: could not be written: disk full .the previous version is intact"):
        save_checkpoint(str(path), {"model": {"w": torch.ones(1)}, "config": {}, "num_classes": 1})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]

    # torch.save reports a full disk as a RuntimeError from its zip writer
    def full_disk(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 4096 vs 1234")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(BauError, match="is the disk full"):
        save_checkpoint(str(path), {"model": {}, "config": {}, "num_classes": 1})
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_single_view_baseline_and_ablation_switches(tiny_synth, tmp_path):
    r = _train(tiny_synth, tmp_path / "base", **{"loss.two_view": "false", "loss.align": "false",
                                                  "loss.uniform": "false", "loss.domain": "false",
                                                  "train.epochs": 1})
    assert r["finished"]
    rec = _records(tmp_path / "base", "step")[0]
    assert {"ce", "tri", "total"} <= set(rec) and "align" not in rec and "domain" not in rec
    r = _train(tiny_synth, tmp_path / "ceaug", **{"loss.ce_aug": "true", "loss.weighting": "false",
                                                   "loss.domain_specific": "false", "train.epochs": 1})
    rec = _records(tmp_path / "ceaug", "step")[0]
    assert {"ce_aug", "align", "domain"} <= set(rec)
    assert rec["total"] == pytest.approx(rec["ce"] + rec["tri"] + rec["ce_aug"] + 1.5 * rec["align"]
                                         + rec["uniform"] + rec["domain"], rel=1e-4)


def _records(run_dir, event):
    return [r for r in (json.loads(line) for line in open(os.path.join(run_dir, "log.jsonl"))) if r["event"] == event]


def test_epoch_records_carry_the_domain_share(tiny_synth, tmp_path):
    _train(tiny_synth, tmp_path / "run", **{"train.epochs": 1, "train.iters_per_epoch": 3})
    (epoch,) = _records(tmp_path / "run", "epoch")
    share = epoch["domain_share"]
    assert set(share) == {"folder:synth_a", "folder:synth_b"} and sum(share.values()) == pytest.approx(1.0, abs=1e-3)
    # the shares are those of the batches the sampler really drew (3 batches x 4 ids x 2 images)
    cfg = load_config(None, tiny_overrides(tiny_synth, **{"train.iters_per_epoch": 3}))
    train_set, loader = Trainer.build_data(cfg)
    loader.sampler.set_epoch(1)
    domains = [train_set.train[i][3] for i, _ in loader.sampler]
    assert share["folder:synth_a"] == pytest.approx(domains.count(0) / len(domains), abs=1e-4)
    assert epoch["iters"] == 3 and epoch["step"] == 3 and "mean_total" in epoch


def test_a_second_trainer_on_the_same_folder_refuses(tiny_synth, tmp_path):
    from bau.runs.lock import RunLock

    run = tmp_path / "run"
    run.mkdir()
    holder = RunLock(str(run)).acquire()  # another trainer, alive, in this very process
    with pytest.raises(BauError, match=r"another trainer is writing it \(pid %d" % os.getpid()):
        _train(tiny_synth, run)
    assert not (run / "last.pt").exists() and not (run / "log.jsonl").exists()
    holder.release()
    assert not (run / ".lock").exists()


def test_a_stale_lock_is_taken_over_and_released(tiny_synth, tmp_path):
    import socket
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": "then"}))
    _train(tiny_synth, run, **{"train.epochs": 1})
    assert (run / "results.json").is_file() and not (run / ".lock").exists()


def test_the_lock_is_released_when_training_fails(tiny_synth, tmp_path, monkeypatch):
    import bau.engine.trainer as trainer_mod

    def boom(*a, **k):
        raise BauError("evaluation broke")

    monkeypatch.setattr(trainer_mod, "evaluate_target", boom)
    with pytest.raises(BauError, match="evaluation broke"):
        _train(tiny_synth, tmp_path / "run", **{"train.epochs": 1})
    assert not (tmp_path / "run" / ".lock").exists()


def test_last_checkpoint_is_saved_before_evaluation_and_resume_finishes_it(tiny_synth, tmp_path, monkeypatch):
    import bau.engine.trainer as trainer_mod

    run = tmp_path / "run"
    real = trainer_mod.evaluate_target
    monkeypatch.setattr(trainer_mod, "evaluate_target", lambda *a, **k: (_ for _ in ()).throw(BauError("no eval")))
    with pytest.raises(BauError):
        _train(tiny_synth, run, **{"train.epochs": 1})
    ckpt = load_checkpoint(str(run / "last.pt"))
    assert ckpt["epoch"] == 1 and ckpt["evaluated"] is False  # the epoch's training is kept
    monkeypatch.setattr(trainer_mod, "evaluate_target", real)
    result = Trainer(resume_config(str(run)), str(run), resume=True, progress=False, echo=lambda s: None).fit()
    assert result["finished"] and "folder:synth_c" in result["metrics"]
    assert [r["epoch"] for r in _records(run, "eval")] == [1]
    assert load_checkpoint(str(run / "last.pt"))["evaluated"] is True


def test_resume_with_overrides_rewrites_config_and_never_repeats_a_step(tiny_synth, tmp_path):
    run = tmp_path / "run"
    _train(tiny_synth, run, **{"train.epochs": 1})
    # records a killed run wrote after its checkpoint (and a line cut in half)
    with open(run / "log.jsonl", "a") as f:
        f.write(json.dumps({"event": "step", "epoch": 2, "iter": 1, "step": 3}) + "\n")
        f.write('{"event": "step", "ep')
    (run / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")  # a save killed mid-write
    cfg = resume_config(str(run), ["train.epochs=2"])
    Trainer(cfg, str(run), resume=True, progress=False, echo=lambda s: None).fit()
    assert load_config(str(run / "config.yaml")).train.epochs == 2
    assert [r["step"] for r in _records(run, "step")] == [1, 2, 3, 4]
    assert [r["epoch"] for r in _records(run, "epoch")] == [1, 2]
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))


def test_resume_refuses_changed_training_data(tiny_synth, tmp_path):
    run = tmp_path / "run"
    _train(tiny_synth, run, **{"train.epochs": 1})
    cfg = resume_config(str(run), ["train.epochs=2", "data.sources=folder:synth_a"])
    with pytest.raises(BauError, match="training data changed"):
        Trainer(cfg, str(run), resume=True, progress=False, echo=lambda s: None)


@pytest.mark.parametrize("extra, fragment", [
    ({"data.targets": "folder:no_such_domain"}, "no_such_domain"),
    ({"eval.max_rank": 0}, "eval.max_rank"),
])
def test_bad_targets_fail_before_the_first_step(tiny_synth, tmp_path, extra, fragment):
    with pytest.raises(BauError, match=fragment):
        _train(tiny_synth, tmp_path / "run", **extra)
    assert not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("workers", [0, 1])
def test_a_broken_image_fails_before_the_first_step(tiny_synth, tmp_path, workers):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(tiny_synth, root)
    victim = sorted((root / "synth_b" / "bounding_box_train").iterdir())[3]
    victim.write_bytes(b"not a jpeg at all")
    baseline = {"loss.two_view": "false", "loss.align": "false", "loss.uniform": "false", "loss.domain": "false"}
    cfg = load_config(None, tiny_overrides(str(root), **{"data.workers": workers, **baseline}))
    with pytest.raises(BauError) as info:
        Trainer(cfg, str(tmp_path / "run"), progress=False, echo=lambda s: None)
    assert victim.name in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "run" / "log.jsonl").exists()


def test_every_evaluation_logs_the_geometry_of_its_features(tiny_synth, tmp_path):
    """Eq. 1 / Eq. 2 of the target's query + gallery features and Eq. 2 of the fixed source sample, in
    each eval record, equal the brute-force definitions on the features of the model at that moment."""
    import numpy as np

    from bau.data.datasets import build_dataset
    from bau.data.multisource import training_set
    from bau.engine.trainer import source_geometry_sample
    from bau.evaluation.inference import extract_features
    from tests.brute_geometry import brute_alignment, brute_uniformity

    run = tmp_path / "run"
    # ImageNet weights: a from-scratch tiny model maps every image to nearly one point, where Eq. 1 is
    # rounding noise; these features are spread out
    _train(tiny_synth, run, **{"model.pretrained": "true"})
    evals = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"eval"' in line]
    assert len(evals) == 2
    for rec in evals:
        assert {"L_align", "L_uniform", "L_uniform_source", "eval_s", "geometry_s"} <= set(rec)
        assert 0 <= rec["geometry_s"] <= rec["eval_s"]
    model, _, cfg = model_from_checkpoint(str(run / "last.pt"))
    ds = build_dataset("folder:synth_c", tiny_synth)
    items = list(dict.fromkeys((it[0], it[1]) for it in (*ds.query, *ds.gallery)))
    feats = extract_features(model, [(p, 0, 0) for p, _ in items], cfg, torch.device("cpu"))
    pids = np.array([pid for _, pid in items])
    assert evals[-1]["L_align"] == pytest.approx(brute_alignment(feats, pids), abs=2e-6)
    assert evals[-1]["L_uniform"] == pytest.approx(brute_uniformity(feats), abs=2e-6)
    train = training_set(cfg.data).train
    sample = source_geometry_sample(train, 0, len(items))
    assert len(sample) == min(16, len(train)) and sample == source_geometry_sample(train, 0, len(items))
    src = extract_features(model, sample, cfg, torch.device("cpu"))
    assert evals[-1]["L_uniform_source"] == pytest.approx(brute_uniformity(src), abs=2e-6)
    # the sample does not depend on the run's seed, and eval.geometry=false logs none of it
    _train(tiny_synth, tmp_path / "plain", **{"eval.geometry": "false"})
    plain = [json.loads(line) for line in (tmp_path / "plain" / "log.jsonl").read_text().splitlines()
             if '"eval"' in line]
    assert plain and not {"L_align", "L_uniform", "L_uniform_source"} & set(plain[-1])
