import json
import os

import pytest
import yaml

from bau.core.errors import BauError
from bau.engine.sweep import expand_grid, load_sweep, run_sweep
from bau.runs.folder import read_summary
from tests.helpers import tiny_overrides

pytestmark = pytest.mark.integration


def test_expand_grid_names_labels_overrides():
    runs = expand_grid({"method": {"baseline": {"loss.align": False}, "bau": {}},
                        "data.aug_prob": [0.0, 0.5]}, "x")
    assert [r.name for r in runs] == ["method-baseline__aug_prob-0.0", "method-baseline__aug_prob-0.5",
                                      "method-bau__aug_prob-0.0", "method-bau__aug_prob-0.5"]
    assert runs[0].labels == {"method": "baseline", "aug_prob": 0.0}
    assert runs[0].overrides == ["loss.align=false", "data.aug_prob=0.0"]
    with pytest.raises(BauError, match="axis"):
        expand_grid({"data.aug_prob": 3}, "x")


def _write_sweep(tmp_path, root):
    base = tmp_path / "base.yaml"
    base.write_text("model:\n  backbone: mobilenetv2\n")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({
        "base": "base.yaml",
        "overrides": tiny_overrides(root, **{"train.epochs": 1}),
        "grids": [{"method": {"baseline": {"loss.two_view": False, "loss.align": False, "loss.uniform": False,
                                           "loss.domain": False}, "bau": {}},
                   "data.aug_prob": [0.0, 1.0]}],
    }, sort_keys=False))
    return str(sweep)


def test_sweep_trains_skips_and_resumes(tiny_synth, tmp_path):
    path = _write_sweep(tmp_path, tiny_synth)
    out = str(tmp_path / "sweep")
    rows = run_sweep(path, out, progress=False, only=["method-bau__aug_prob-1.0"], echo=lambda s: None)
    status = {r["run"]: r["status"] for r in rows}
    assert status["method-bau__aug_prob-1.0"] == "finished"
    assert sum(s == "pending" for s in status.values()) == 3
    mtime = os.path.getmtime(os.path.join(out, "method-bau__aug_prob-1.0", "last.pt"))

    # an interrupted run (results.json missing) is resumed, finished ones are skipped
    messages = []
    os.remove(os.path.join(out, "method-bau__aug_prob-1.0", "results.json"))
    run_sweep(path, out, progress=False, only=["method-bau__aug_prob-1.0", "method-baseline__aug_prob-0.0"],
              echo=messages.append)
    assert any("method-bau__aug_prob-1.0: resuming" in m for m in messages)
    messages.clear()
    rows = run_sweep(path, out, progress=False, echo=messages.append)
    assert any("method-baseline__aug_prob-0.0: finished, skipped" in m for m in messages)
    assert all(r["status"] == "finished" for r in rows)
    assert os.path.getmtime(os.path.join(out, "method-bau__aug_prob-1.0", "last.pt")) >= mtime
    summary = read_summary(out)
    row = next(r for r in summary if r["run"] == "method-baseline__aug_prob-0.0")
    assert row["method"] == "baseline" and row["aug_prob"] == 0.0 and 0 <= row["folder:synth_c/mAP"] <= 1
    assert open(os.path.join(out, "summary.csv")).readline().startswith("run,method,aug_prob,status")


def test_bad_sweep_files(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("grids: []\n")
    with pytest.raises(BauError, match="base"):
        load_sweep(str(p))
    p.write_text("base: nope.yaml\ngrids: [{a: [1]}]\n")
    with pytest.raises(BauError, match="not found"):
        load_sweep(str(p))
    (tmp_path / "b.yaml").write_text("{}\n")
    p.write_text("base: b.yaml\ngrids: [{loss.k: [abc]}]\n")
    with pytest.raises(BauError, match="loss.k"):
        load_sweep(str(p))


def _summary_text(out):
    with open(os.path.join(out, "summary.json")) as f:
        return f.read()


def test_changed_settings_refuse_stale_runs_and_force_retrains(tiny_synth, tmp_path, capsys):
    from bau.cli import main

    path = _write_sweep(tmp_path, tiny_synth)
    out = str(tmp_path / "sweep")
    name = "method-bau__aug_prob-1.0"
    run_sweep(path, out, progress=False, only=[name], echo=lambda s: None)
    stored = json.load(open(os.path.join(out, name, "sweep_run.json")))
    assert "train.epochs=1" in stored["overrides"] and stored["labels"] == {"method": "bau", "aug_prob": 1.0}
    before = _summary_text(out), open(os.path.join(out, "sweep.yaml")).read()

    # the same sweep with another epoch count: the finished run is not reported as done for it
    for only in (None, [name], ["method-baseline__aug_prob-0.0"]):
        with pytest.raises(BauError, match=rf"run {name} was trained with other settings than asked now "
                                           rf"\(train.epochs 1 -> 2\).*--force"):
            run_sweep(path, out, ["train.epochs=2"], progress=False, only=only, echo=lambda s: None)
    assert (_summary_text(out), open(os.path.join(out, "sweep.yaml")).read()) == before  # nothing rewritten
    assert main(["sweep", "--config", path, "--out", out, "--quiet", "train.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: sweep folder {out}: run {name}") and err.count("\n") == 1
    # --force retrains only the runs it may: a stale run left out of --only still stops the sweep
    with pytest.raises(BauError, match=f"run {name} .*add it to --only"):
        run_sweep(path, out, ["train.epochs=2"], progress=False, only=["method-baseline__aug_prob-0.0"], force=True,
                  echo=lambda s: None)
    # settings that only change how a run computes are not compared
    run_sweep(path, out, ["train.threads=1"], progress=False, only=[name], echo=lambda s: None)

    messages = []
    rows = run_sweep(path, out, ["train.epochs=2"], progress=False, only=[name], force=True, echo=messages.append)
    assert any(f"{name}: trained with other settings, removed (--force)" in m for m in messages)
    assert next(r for r in rows if r["run"] == name)["status"] == "finished"
    results = json.load(open(os.path.join(out, name, "results.json")))
    assert results["epochs"] == 2
    assert yaml.safe_load(open(os.path.join(out, name, "config.yaml")))["train"]["epochs"] == 2
    assert "train.epochs=2" in json.load(open(os.path.join(out, name, "sweep_run.json")))["overrides"]
    assert "train.epochs=2" in json.load(open(os.path.join(out, "summary.json")))["overrides"]
    assert not [n for n in os.listdir(out) if n.startswith(".")]  # the removed folder is gone
    messages.clear()
    run_sweep(path, out, ["train.epochs=2"], progress=False, only=[name], echo=messages.append)
    assert any(f"{name}: finished, skipped" in m for m in messages)


def test_only_with_an_unknown_run_is_an_error(tiny_synth, tmp_path, capsys):
    from bau.cli import main

    path = _write_sweep(tmp_path, tiny_synth)
    out = str(tmp_path / "sweep")
    with pytest.raises(BauError, match=r"--only no-such-run: not a run of sweep file .*; its runs are: "
                                       r"method-baseline__aug_prob-0.0, "):
        run_sweep(path, out, progress=False, only=["method-bau__aug_prob-1.0", "no-such-run"], echo=lambda s: None)
    assert not os.path.exists(out)  # nothing trained or written
    assert main(["sweep", "--config", path, "--out", out, "--only", "no-such-run", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --only no-such-run") and "method-bau__aug_prob-1.0" in err and err.count("\n") == 1


def test_force_refuses_a_run_another_trainer_is_writing(tiny_synth, tmp_path):
    from bau.runs.lock import RunLock

    path = _write_sweep(tmp_path, tiny_synth)
    out = str(tmp_path / "sweep")
    name = "method-bau__aug_prob-1.0"
    run_sweep(path, out, progress=False, only=[name], echo=lambda s: None)
    with RunLock(os.path.join(out, name)):  # a trainer still writing that run
        with pytest.raises(BauError, match="another trainer is writing it"):
            run_sweep(path, out, ["train.epochs=2"], progress=False, only=[name], force=True, echo=lambda s: None)
    assert os.path.isfile(os.path.join(out, name, "results.json"))  # nothing removed


def test_seeds_repeat_every_run_with_its_own_seed_label(tmp_path):
    from bau.engine.sweep import load_sweep

    base = tmp_path / "base.yaml"
    base.write_text("data:\n  sources: [folder:a]\n")
    path = tmp_path / "s.yaml"
    path.write_text("base: base.yaml\nseeds: [1, 2]\ngrids:\n  - method: {x: {}, y: {loss.lam: 1.0}}\n")
    runs = load_sweep(str(path))["runs"]
    assert [r.name for r in runs] == ["method-x__seed-1", "method-x__seed-2", "method-y__seed-1", "method-y__seed-2"]
    assert runs[3].labels == {"method": "y", "seed": 2} and runs[3].overrides == ["loss.lam=1.0", "train.seed=2"]
    # a train.seed axis inside a grid gives the same label
    path.write_text("base: base.yaml\ngrids:\n  - method: {x: {}}\n    train.seed: [3, 4]\n")
    assert [r.labels for r in load_sweep(str(path))["runs"]] == [{"method": "x", "seed": 3}, {"method": "x", "seed": 4}]
    for bad in ("[1, 1]", "[]", "[-1]", "seven"):
        path.write_text(f"base: base.yaml\nseeds: {bad}\ngrids:\n  - method: {{x: {{}}}}\n")
        with pytest.raises(BauError, match="seeds: expected a list of distinct integers"):
            load_sweep(str(path))


def test_jobs_train_runs_in_parallel_processes(tiny_synth, tmp_path):
    path = _write_sweep(tmp_path, tiny_synth)
    out = str(tmp_path / "sweep")
    names = ["method-bau__aug_prob-1.0", "method-baseline__aug_prob-0.0"]
    messages = []
    rows = run_sweep(path, out, progress=False, only=names, echo=messages.append, jobs=2)
    assert {r["run"]: r["status"] for r in rows if r["run"] in names} == dict.fromkeys(names, "finished")
    assert sum("in a worker process" in m for m in messages) == 2
    for name in names:
        assert not os.path.exists(os.path.join(out, name, ".lock"))
    with pytest.raises(BauError, match="--jobs 0"):
        run_sweep(path, out, only=names, jobs=0)
