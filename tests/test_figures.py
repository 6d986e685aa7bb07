"""The figure and table scripts on a tiny sweep with the demo sweep's labels (reduced grid, p in {0, 0.5},
two training seeds for the main grid, one for the rest).

Each script's plotted numbers are checked against the metric recomputed here from the run's own
files: features re-extracted from the checkpoint, alignment / uniformity by brute force over all
pairs, Grad-CAM maps and weight scores recomputed, mAP read from results.json; then mean, sample
std and n over the seeds, and BAU minus baseline per seed, computed here by hand.
"""
import json
import math
import os
import shutil
import statistics

import numpy as np
import pytest
import torch
import yaml

from analysis import figure1, figure2, figure4, figure5, tables
from analysis.sweep_data import one_run
from bau.engine.sweep import run_sweep
from bau.runs.features import lookup_features
from bau.runs.folder import Run, sweep_runs
from tests.brute_geometry import brute_alignment, brute_uniformity
from tests.helpers import tiny_overrides

pytestmark = pytest.mark.integration

PS = [0.0, 0.5]
SEEDS = [1, 2]
BASELINE = {"loss.two_view": False, "loss.align": False, "loss.uniform": False, "loss.domain": False}
TARGET = "folder:synth_c"
SOURCES = ["folder:synth_a", "folder:synth_b"]


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """t-SNE's PCA calls LAPACK; its thread pool spin-waits on a busy 2-core machine (seconds per tiny QR)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def sweep(tiny_synth, tmp_path_factory):
    """15 runs: {baseline, bau, bau_noweight} x p x train.seed {1, 2}, bau_nodomain at 0.5 and baseline_id
    (trained on synth_c) x p without a seed axis (one run each, seed 1 from the config).

    ImageNet MobileNetV2 (shipped with a dependency) at 64x32, one epoch of two steps: the features
    are not collapsed as a from-scratch net's would be, and Grad-CAM has an 8x4 map (features.6) to weigh.
    """
    tmp = tmp_path_factory.mktemp("figsweep")
    (tmp / "base.yaml").write_text("model:\n  backbone: mobilenetv2\n")
    overrides = tiny_overrides(tiny_synth, **{"train.epochs": 1, "train.eval_every": 0, "model.pretrained": "true",
                                              "data.height": 64, "data.width": 32})
    spec = {"base": "base.yaml", "overrides": overrides, "grids": [
        {"method": {"baseline": BASELINE, "bau": {}, "bau_noweight": {"loss.weighting": False}}, "data.aug_prob": PS,
         "train.seed": SEEDS},
        {"method": {"bau_nodomain": {"loss.domain": False}}, "data.aug_prob": [0.5]},
        {"method": {"baseline_id": {**BASELINE, "data.sources": ["folder:synth_c"]}}, "data.aug_prob": PS},
    ]}
    (tmp / "sweep.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    out = str(tmp / "sweep")
    rows = run_sweep(str(tmp / "sweep.yaml"), out, progress=False, echo=lambda s: None)
    assert len(rows) == 15 and all(r["status"] == "finished" for r in rows)
    return out


SEEDED = ("baseline", "bau", "bau_noweight")  # the methods with a seed axis


def run_name(method, p, seed=None):
    return f"method-{method}__aug_prob-{p}" + (f"__seed-{seed}" if method in SEEDED else "")


def run_dir(sweep, method, p, seed=1):
    return os.path.join(sweep, run_name(method, p, seed))


def metric(sweep, method, p, key="mAP", target=TARGET, seed=1):
    with open(os.path.join(run_dir(sweep, method, p, seed), "results.json")) as f:
        return 100 * json.load(f)["metrics"][target][key]


def seed_values(sweep, method, p, key="mAP"):
    return [metric(sweep, method, p, key, seed=s) for s in SEEDS]


def assert_spread(row, name, values):
    """``row`` holds mean, sample std and n of ``values`` (computed here by hand) under ``name``."""
    assert row[f"{name}_n"] == len(values)
    assert row[f"{name}_mean"] == pytest.approx(sum(values) / len(values), abs=1e-9)
    if len(values) == 1:
        assert row[f"{name}_std"] is None
    else:
        assert row[f"{name}_std"] == pytest.approx(statistics.stdev(values), abs=1e-9)
    assert row[f"{name}_values"] == pytest.approx(values, abs=1e-9)


def assert_paired(row, name, reference, treatment):
    """``row`` holds treatment - reference per seed (SEEDS), its mean and 95 % t-interval (t from scipy)."""
    from scipy.stats import t

    diffs = [b - a for a, b in zip(reference, treatment)]
    mean = sum(diffs) / len(diffs)
    half = t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    assert row[f"{name}_seeds"] == SEEDS and row[f"{name}_values"] == pytest.approx(diffs, abs=1e-9)
    assert row[f"{name}_mean"] == pytest.approx(mean, abs=1e-9) and row[f"{name}_n"] == len(diffs)
    assert row[f"{name}_ci_low"] == pytest.approx(mean - half, abs=1e-9)
    assert row[f"{name}_ci_high"] == pytest.approx(mean + half, abs=1e-9)


def cached_features(sweep, method, p, names, subset, max_per_domain=None, seed=1):
    """The features a figure script cached for a run (the cache test checks them against a fresh extraction)."""
    labels = {"seed": seed} if method in SEEDED else {}
    run = one_run(sweep_runs(sweep), sweep, method=method, aug_prob=p, **labels)
    fs = lookup_features(run.checkpoint("last"), names, subset, run.config().data.root, cap=max_per_domain)
    assert fs is not None, f"{run.name}: no cached features on {names} ({subset})"
    return fs.features, fs.pids


def outputs_exist(out, stem, data_ext="json"):
    for ext in ("png", "pdf", data_ext):
        path = os.path.join(out, f"{stem}.{ext}")
        assert os.path.isfile(path) and os.path.getsize(path) > 0, path
    if data_ext == "json":
        with open(os.path.join(out, f"{stem}.json")) as f:
            return json.load(f)


def test_figure1_numbers_match_recomputed_metrics(sweep, tmp_path):
    out = str(tmp_path / "fig")
    assert figure1.main(["--sweep", sweep, "--out", out, "--device", "cpu", "--quiet"]) == 0
    data = outputs_exist(out, "figure1")
    assert data["target"] == TARGET
    perf = {(r["setting"], r["p"]): r for r in data["performance"]}
    assert set(perf) == {(s, p) for s in ("ID", "OOD") for p in PS}
    for p in PS:
        # OOD: both seeds, never one of them; ID: one run, no spread
        assert perf[("OOD", p)]["runs"] == [run_name("baseline", p, s) for s in SEEDS]
        assert_spread(perf[("OOD", p)], "mAP", seed_values(sweep, "baseline", p))
        assert_spread(perf[("OOD", p)], "rank1", seed_values(sweep, "baseline", p, "rank1"))
        assert_spread(perf[("ID", p)], "mAP", [metric(sweep, "baseline_id", p)])
    geo = {r["p"]: r for r in data["geometry"]}
    per_run = {r["run"]: r for r in data["geometry_runs"]}
    assert sorted(geo) == PS and len(per_run) == len(PS) * len(SEEDS)
    for p in PS:
        by_seed = {}
        for s in SEEDS:
            feats, pids = cached_features(sweep, "baseline", p, [TARGET], "test", seed=s)
            src, _ = cached_features(sweep, "baseline", p, SOURCES, "train", max_per_domain=2000, seed=s)
            by_seed[s] = {"alignment": brute_alignment(feats, pids), "uniformity": brute_uniformity(feats),
                          "neg_uniformity_source": -brute_uniformity(src)}
            r = per_run[run_name("baseline", p, s)]
            assert r["seed"] == s and r["num_target_images"] == len(feats) and len(src) == r["num_source_images"]
            for key, value in by_seed[s].items():
                assert r[key] == pytest.approx(value, abs=1e-4)
        for key in ("alignment", "uniformity", "neg_uniformity_source"):
            values = [by_seed[s][key] for s in SEEDS]
            assert geo[p][f"{key}_mean"] == pytest.approx(sum(values) / 2, abs=1e-4)
            assert geo[p][f"{key}_std"] == pytest.approx(statistics.stdev(values), abs=1e-4) and geo[p][f"{key}_n"] == 2
        assert geo[p]["neg_uniformity_target_mean"] == pytest.approx(-geo[p]["uniformity_mean"])
    assert geo[0.0]["uniformity_mean"] != geo[0.5]["uniformity_mean"]  # the runs differ: not a constant
    # (d): BAU - baseline per seed at each p, and its 95 % interval
    diff = {r["p"]: r for r in data["difference"]}
    assert sorted(diff) == PS
    for p in PS:
        assert_paired(diff[p], "mAP_difference", seed_values(sweep, "baseline", p), seed_values(sweep, "bau", p))
    # convergence of each cell from its logged learning curves, and the curves over training (lowest and
    # highest p) as the mean over seeds of the logged eval records
    from analysis.sweep_data import cell_convergence

    for p in PS:
        cell = {s: Run(os.path.join(sweep, run_name("baseline", p, s))) for s in SEEDS}
        assert perf[("OOD", p)]["mAP_still_improving"] == cell_convergence(cell, TARGET).still_improving
    training = {(r["setting"], r["p"]): r["curves"] for r in data["training"]}
    assert set(training) == {(s, p) for s in ("ID", "OOD") for p in (min(PS), max(PS))}
    ood_low = training[("OOD", min(PS))]
    curves = [Run(os.path.join(sweep, run_name("baseline", min(PS), s))).curve(TARGET, "L_uniform", x="epoch")
              for s in SEEDS]
    assert [pt["epoch"] for pt in ood_low["L_uniform"]] == [e for e, _ in curves[0]]
    assert ood_low["L_uniform"][-1]["mean"] == pytest.approx((curves[0][-1][1] + curves[1][-1][1]) / 2)
    assert os.path.isfile(os.path.join(out, "figure1_training.png"))


def test_feature_cache_is_reused_and_refreshed_when_the_checkpoint_changes(sweep, tmp_path):
    from analysis.sweep_data import run_features
    from bau.evaluation.inference import extract_features
    from bau.runs.checkpoint import model_from_checkpoint
    from bau.runs.features import collect_items

    run = one_run(sweep_runs(sweep), sweep, method="baseline", aug_prob=0.5, seed=1)
    checkpoint = run.checkpoint("last")
    first = run_features(run, [TARGET], "test", device="cpu")
    # the cached features are the checkpoint's features of the target's query + gallery, in order
    model, _, cfg = model_from_checkpoint(checkpoint, "cpu")
    col = collect_items([TARGET], cfg.data.root, "test", cfg)
    np.testing.assert_allclose(first.features, extract_features(model, col["items"], cfg, torch.device("cpu")),
                               atol=1e-6)
    assert first.pids.tolist() == [it[1] for it in col["items"]]
    assert set(first.subsets.tolist()) == {"query", "gallery"}
    cache = os.path.join(run.path, ".bau_cache")
    path = os.path.join(cache, f"{first.key}.npz")
    assert os.path.isfile(path) and first.checkpoint["mtime_ns"] == os.stat(checkpoint).st_mtime_ns
    stamp = os.path.getmtime(path)
    assert run_features(run, [TARGET], "test", device="cpu").key == first.key
    assert os.path.getmtime(path) == stamp  # fresh cache: not rewritten
    ckpt_time = os.path.getmtime(checkpoint)
    os.utime(checkpoint, (ckpt_time + 10, ckpt_time + 10))  # a retrained checkpoint makes it stale
    try:
        again = run_features(run, [TARGET], "test", device="cpu")
        assert again.key != first.key and os.path.isfile(os.path.join(cache, f"{again.key}.npz"))
        assert not os.path.exists(path)  # the stale entry is gone, not left next to the new one
        np.testing.assert_allclose(again.features, first.features, atol=1e-6)
    finally:
        os.utime(checkpoint, (ckpt_time, ckpt_time))


def test_figure2_maps_match_gradcam(sweep, tmp_path):
    from analysis.gradcam import gradcam_map, load_test_image
    from bau.runs.checkpoint import model_from_checkpoint

    out = str(tmp_path / "fig")
    assert figure2.main(["--sweep", sweep, "--out", out, "--device", "cpu", "--num-images", "2", "--quiet"]) == 0
    data = outputs_exist(out, "figure2")
    assert data["methods"] == ["baseline", "bau"] and data["ps"] == PS and len(data["images"]) == 2
    # one model per panel: the runs of the smallest seed (--run-seed)
    assert data["run_seed"] == 1 and {r["run"] for r in data["records"]} == {
        run_name(m, p, 1) for m in ("baseline", "bau") for p in PS}
    with np.load(os.path.join(out, "figure2_maps.npz")) as z:
        maps = z["maps"]
    assert maps.shape == (2, 2, 2, 64, 32)
    assert len(data["records"]) == 8
    model, _, cfg = model_from_checkpoint(os.path.join(run_dir(sweep, "bau", 0.5), "last.pt"), "cpu")
    tensor, _ = load_test_image(data["images"][1], cfg.data.height, cfg.data.width)
    cam = gradcam_map(model, tensor)
    np.testing.assert_allclose(maps[1, 1, 1], cam, atol=1e-5)
    rec = next(r for r in data["records"] if r["image"] == data["images"][1] and r["method"] == "bau" and r["p"] == 0.5)
    assert rec["cam_mean"] == pytest.approx(float(cam.mean()), abs=1e-6) and rec["cam_mean"] > 0
    # the layer and its map size, per record and in the caption: MobileNetV2 at 64x32 -> 8x4 cells
    assert {(r["cam_layer"], tuple(r["cam_cells"])) for r in data["records"]} == {("backbone.features.6", (8, 4))}
    assert data["cam_layers"] == ["backbone.features.6, 8x4 cells"]
    assert "at backbone.features.6, 8x4 cells (the deepest layer with at least 8x4 cells at 64x32)" in data["caption"]
    # not two horizontal bands: the 8x8-pixel block means vary across the width
    blocks = maps[1, 1, 1].reshape(8, 8, 4, 8).mean(axis=(1, 3))
    assert sum(len(np.unique(row.round(6))) > 1 for row in blocks) >= 4


def test_figure4_geometry_and_tsne_uniformity(sweep, tmp_path):
    out = str(tmp_path / "fig")
    assert figure4.main(["--sweep", sweep, "--out", out, "--device", "cpu", "--tsne-iters", "100", "--quiet"]) == 0
    geo = outputs_exist(out, "figure4a")
    rows = {(r["method"], r["p"]): r for r in geo["rows"]}
    assert set(rows) == {(m, p) for m in ("baseline", "bau") for p in PS}
    align, uniform = [], []
    for s in SEEDS:
        feats, pids = cached_features(sweep, "bau", 0.0, [TARGET], "test", seed=s)
        align.append(brute_alignment(feats, pids))
        uniform.append(brute_uniformity(feats))
    for key, values in (("alignment", align), ("uniformity", uniform)):
        assert rows[("bau", 0.0)][f"{key}_n"] == 2
        assert rows[("bau", 0.0)][f"{key}_mean"] == pytest.approx(sum(values) / 2, abs=1e-4)
        assert rows[("bau", 0.0)][f"{key}_std"] == pytest.approx(statistics.stdev(values), abs=1e-4)
    assert_spread(rows[("bau", 0.5)], "mAP", seed_values(sweep, "bau", 0.5))
    assert len(geo["geometry_runs"]) == 2 * len(PS) * len(SEEDS)

    tsne = outputs_exist(out, "figure4b")
    panels = {p["method"]: p for p in tsne["panels"]}
    assert set(panels) == {"bau", "bau_nodomain"} and tsne["run_seed"] == 1
    assert panels["bau"]["run"] == run_name("bau", 0.5, 1) and panels["bau"]["seed"] == 1
    panel = panels["bau_nodomain"]
    assert panel["domain_names"] == ["synth_a", "synth_b", "synth_c (target)"]
    src, _ = cached_features(sweep, "bau_nodomain", 0.5, SOURCES, "train", max_per_domain=2000)
    tgt, _ = cached_features(sweep, "bau_nodomain", 0.5, [TARGET], "test", max_per_domain=2000)
    col_domains = np.asarray(panel["domains"])
    assert len(panel["embedding"]) == len(src) + len(tgt) == len(col_domains)
    assert np.asarray(panel["embedding"]).shape[1] == 2
    both = np.concatenate([src, tgt])
    for d, name in enumerate(panel["domain_names"]):
        assert panel["neg_uniformity"][name] == pytest.approx(-brute_uniformity(both[col_domains == d]), abs=1e-4)


def test_figure5_map_and_weight_scores(sweep, tmp_path):
    from bau.runs.weight_scores import checkpoint_weight_scores

    out = str(tmp_path / "fig")
    assert figure5.main(["--sweep", sweep, "--out", out, "--device", "cpu", "--columns", "4", "--quiet"]) == 0
    perf = outputs_exist(out, "figure5a")
    rows = {(r["method"], r["p"]): r for r in perf["rows"]}
    assert set(rows) == {(m, p) for m in ("bau", "bau_noweight") for p in PS}
    for (m, p), row in rows.items():
        assert_spread(row, "mAP", seed_values(sweep, m, p))
    diff = {r["p"]: r for r in perf["difference"]}
    assert sorted(diff) == PS
    for p in PS:
        assert_paired(diff[p], "mAP_difference", seed_values(sweep, "bau_noweight", p), seed_values(sweep, "bau", p))
    gallery = outputs_exist(out, "figure5b")
    assert gallery["run"] == run_name("bau", 0.5, 1) and gallery["run_seed"] == 1
    assert sum(p["shown"] for p in gallery["pairs"]) == 4
    pairs = checkpoint_weight_scores(os.path.join(run_dir(sweep, "bau", 0.5), "last.pt"), seed=0).pairs()
    assert [p["path"] for p in gallery["pairs"]] == [p.path for p in pairs]
    np.testing.assert_allclose([p["weight"] for p in gallery["pairs"]], [p.weight for p in pairs], atol=1e-6)
    # another training seed's checkpoint on request
    assert figure5.main(["--sweep", sweep, "--out", out, "--device", "cpu", "--columns", "4", "--run-seed", "2",
                         "--quiet"]) == 0
    assert outputs_exist(out, "figure5b")["run"] == run_name("bau", 0.5, 2)


SETTING = "synth_a+synth_b \u2192 synth_c"


def test_tables_rows_from_configs(sweep, tmp_path, capsys):
    out = str(tmp_path / "tables")
    assert tables.main(["--sweep", sweep, "--out", out, "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "### Table 5" in printed and "### Table 9" in printed
    with open(os.path.join(out, "tables.md")) as f:
        assert f.read() == printed

    def read(key):
        import csv

        with open(os.path.join(out, f"{key}.csv")) as f:
            rows = list(csv.reader(f))
        return rows[0], rows[1:]

    def check(cells, values):
        """CSV mean, std, n of values (4 decimals); std empty for one seed."""
        assert float(cells[0]) == pytest.approx(sum(values) / len(values), abs=1e-4) and int(cells[2]) == len(values)
        assert cells[1] == "" if len(values) == 1 else float(cells[1]) == pytest.approx(statistics.stdev(values),
                                                                                         abs=1e-4)

    def names(method, p):
        return " ".join(run_name(method, p, s) for s in (SEEDS if method in SEEDED else [None]))

    header, rows = read("table5")
    assert header == (["Method"] + [f"{SETTING} mAP {k}" for k in ("mean", "std", "n")]
                      + [f"{SETTING} mAP still_improving"]
                      + [f"{SETTING} Rank-1 {k}" for k in ("mean", "std", "n")] + ["runs"])
    # the ID baseline (trained on synth_c) is not a DG row; p = 0 baseline, no-L_domain, full BAU at p = 0.5;
    # every seed of a cell is in it
    assert [(r[0], r[-1]) for r in rows] == [
        ("Baseline (w/o augmented images)", names("baseline", 0.0)),
        ("L_align + L_uniform", names("bau_nodomain", 0.5)),
        ("L_align + L_uniform + L_domain", names("bau", 0.5))]
    check(rows[0][1:4], seed_values(sweep, "baseline", 0.0))
    from analysis.sweep_data import cell_convergence  # the convergence flag of the cell's learning curves

    late = cell_convergence({s: Run(os.path.join(sweep, run_name("baseline", 0.0, s))) for s in SEEDS},
                            TARGET).still_improving
    assert rows[0][4] == ("" if late is None else str(int(late)))
    check(rows[0][5:8], seed_values(sweep, "baseline", 0.0, "rank1"))
    check(rows[1][1:4], [metric(sweep, "bau_nodomain", 0.5)])
    values = seed_values(sweep, "baseline", 0.0)
    mean, std = sum(values) / 2, statistics.stdev(values)
    assert f"| Baseline (w/o augmented images) | {mean:.1f} \u00b1 {std:.1f} (n=2) |" in printed
    assert f"| L_align + L_uniform | {metric(sweep, 'bau_nodomain', 0.5):.1f} (n=1) |" in printed
    _, rows = read("table6")
    assert [(r[0], r[1], r[-1]) for r in rows] == [("", "\u2713", names("bau_noweight", 0.5)),
                                                   ("\u2713", "\u2713", names("bau", 0.5))]
    _, rows = read("table8")
    assert [(tuple(r[:3]), r[-1]) for r in rows] == [(("-", "-", "-"), names("bau", 0.0)),
                                                     (("\u2713",) * 3, names("bau", 0.5))]
    header, rows = read("table9")
    assert header[-6:] == [f"{SETTING} \u0394mAP vs baseline {k}" for k in ("mean", "ci_low", "ci_high", "n")] + [
        "runs", "baseline runs"]
    assert [(r[0], r[-2], r[-1]) for r in rows] == [("0", names("bau", 0.0), names("baseline", 0.0)),
                                                    ("0.5", names("bau", 0.5), names("baseline", 0.5))]
    from scipy.stats import t

    for row, p in zip(rows, PS):
        check(row[1:4], seed_values(sweep, "bau", p))
        diffs = [b - a for a, b in zip(seed_values(sweep, "baseline", p), seed_values(sweep, "bau", p))]
        half = t.ppf(0.975, 1) * statistics.stdev(diffs) / math.sqrt(2)
        mean = sum(diffs) / 2
        assert [float(x) for x in row[8:11]] == pytest.approx([mean, mean - half, mean + half], abs=1e-4)
        assert row[11] == "2"
        assert f"| {p:g} | " in printed and f"{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}] (n=2)" in printed


def _copy_with_run(sweep, tmp_path, source, name, **labels):
    """A copy of the sweep (no checkpoints) with run ``source`` copied again as ``name`` with ``labels``."""
    copy = str(tmp_path / "sweep")
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("*.pt", ".bau_cache"))
    shutil.copytree(os.path.join(copy, source), os.path.join(copy, name))
    with open(os.path.join(copy, "summary.json")) as f:
        summary = json.load(f)
    row = next(r for r in summary["runs"] if r["run"] == source)
    summary["runs"].append({**row, "run": name, **labels})
    with open(os.path.join(copy, "summary.json"), "w") as f:
        json.dump(summary, f)
    return copy


@pytest.mark.parametrize("module", [figure5, tables])
def test_two_runs_in_one_cell_that_differ_in_more_than_seed_are_one_error_line(module, sweep, tmp_path, capsys):
    source = run_name("bau", 0.5, 1)
    copy = _copy_with_run(sweep, tmp_path, source, source + "__lam-2", lam=2)
    assert module.main(["--sweep", copy, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert os.path.join(copy, source) + " and " + os.path.join(copy, source + "__lam-2") in err
    assert "differ in more than the seed" in err


def test_the_same_seed_twice_in_one_cell_is_one_error_line(sweep, tmp_path, capsys):
    source = run_name("bau", 0.5, 2)
    copy = _copy_with_run(sweep, tmp_path, source, "bau-again")
    assert tables.main(["--sweep", copy, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "both match with seed 2" in err and "bau-again" in err and source in err


def test_two_sweeps_matching_one_cell_is_one_error_line(sweep, tmp_path, capsys):
    copy = str(tmp_path / "again")
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("*.pt", ".bau_cache"))
    assert tables.main(["--sweep", sweep, "--sweep", copy, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"sweep {sweep} vs {copy}" in err
    # the same folder twice is one sweep, not an ambiguity
    assert tables.main(["--sweep", sweep, "--sweep", sweep + "/", "--out", str(tmp_path / "o"), "--quiet"]) == 0


def test_table_rows_match_by_config_not_label():
    from analysis.tables import TABLES, matches

    def cfg(**kw):
        base = {"loss.two_view": True, "loss.ce_aug": False, "loss.align": True, "loss.uniform": True,
                "loss.domain": True, "loss.weighting": True, "loss.domain_specific": True, "data.aug_prob": 0.5,
                "data.random_erasing": True, "data.randaugment": True, "data.color_jitter": True}
        return {**base, **{k.replace("__", "."): v for k, v in kw.items()}}

    table8 = next(t for t in TABLES if t.key == "table8").rows(0.5, [])
    none_row = next(r for r in table8 if r.cells == ("-", "-", "-"))
    re_only = next(r for r in table8 if r.cells == ("\u2713", "-", "-"))
    off = cfg(data__random_erasing=False, data__randaugment=False, data__color_jitter=False)
    assert matches(off, none_row.specs[0], 0.5)
    assert matches(cfg(data__aug_prob=0.0), none_row.specs[0], 0.5)  # all on at p = 0: nothing applied
    assert not matches(cfg(), none_row.specs[0], 0.5)
    assert matches(cfg(data__randaugment=False, data__color_jitter=False), re_only.specs[0], 0.5)
    assert not matches(cfg(data__randaugment=False, data__color_jitter=False, data__aug_prob=0.25),
                       re_only.specs[0], 0.5)
    table5 = next(t for t in TABLES if t.key == "table5").rows(0.5, [])
    ce = next(r for r in table5 if r.cells == ("L_ce",))
    assert matches(cfg(loss__ce_aug=True, loss__align=False, loss__uniform=False, loss__domain=False,
                       loss__weighting=False), ce.specs[0], 0.5)
    assert not matches(cfg(), ce.specs[0], 0.5)
    assert [r.cells for r in table8][:4] == [("-", "-", "-"), ("\u2713", "-", "-"), ("-", "\u2713", "-"),
                                             ("-", "-", "\u2713")]


@pytest.mark.parametrize("module", [figure1, figure2, figure4, figure5, tables])
def test_missing_sweep_folder_is_one_error_line(module, tmp_path, capsys):
    assert module.main(["--sweep", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: sweep folder") and "not found" in err and err.count("\n") == 1


def test_unfinished_and_missing_runs_are_one_error_line(sweep, tmp_path, capsys):
    # a copy of the sweep whose bau runs are interrupted (results.json gone) and without bau_noweight
    copy = str(tmp_path / "sweep")
    shutil.copytree(sweep, copy, ignore=shutil.ignore_patterns("*.pt", ".bau_cache"))
    for p in PS:
        for seed in SEEDS:
            os.remove(os.path.join(copy, run_name("bau", p, seed), "results.json"))
            open(os.path.join(copy, run_name("bau", p, seed), "last.pt"), "w").close()
    assert figure4.main(["--sweep", copy, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not finished" in err and f"{run_name('bau', 0.5, 1)} (interrupted)" in err
    assert err.count("\n") == 1

    with open(os.path.join(copy, "summary.json")) as f:
        summary = json.load(f)
    summary["runs"] = [r for r in summary["runs"] if r["method"] != "bau_noweight"]
    with open(os.path.join(copy, "summary.json"), "w") as f:
        json.dump(summary, f)
    assert figure5.main(["--sweep", copy, "--out", str(tmp_path / "o"), "--skip-unfinished", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no finished run with method=bau" in err and err.count("\n") == 1


def test_table_columns_per_setting_with_average(tmp_path):
    from analysis.tables import TABLES, Setting, build_table, markdown_rows
    from bau.runs.folder import Run

    full = {"loss.two_view": True, "loss.ce_aug": False, "loss.align": True, "loss.uniform": True,
            "loss.domain": True, "loss.weighting": True, "loss.domain_specific": True, "data.aug_prob": 0.5,
            "data.random_erasing": True, "data.randaugment": True, "data.color_jitter": True, "train.seed": 1}

    def entry(name, sources, target, m, r1, **cfg):
        path = tmp_path / name
        path.mkdir()
        (path / "results.json").write_text(json.dumps({"finished": True, "metrics": {target: {"mAP": m, "rank1": r1}}}))
        return Setting(tuple(sources), target), Run(str(path), name, {}, "finished"), {**full, **cfg}

    entries = [entry("a", ["full:msmt17", "full:cuhksysu", "full:cuhk03"], "market1501", 0.795, 0.911),
               entry("b", ["market1501", "full:cuhksysu", "full:cuhk03"], "msmt17", 0.268, 0.543),
               entry("c", ["market1501", "full:cuhksysu", "full:cuhk03"], "msmt17", 0.251, 0.516,
                     **{"loss.domain": False})]
    table5 = next(t for t in TABLES if t.key == "table5")
    notes = []
    header, rows = markdown_rows(build_table(table5, entries, 0.5, notes.append))
    assert header == ["Method", "MS+CS+C3 \u2192 M mAP", "MS+CS+C3 \u2192 M Rank-1", "M+CS+C3 \u2192 MS mAP",
                      "M+CS+C3 \u2192 MS Rank-1", "Average mAP", "Average Rank-1", "runs"]
    # one run per cell (train.seed 1 from the config): n=1, no spread; one setting only: no average
    assert rows == [["L_align + L_uniform", "", "", "25.1 (n=1)", "51.6 (n=1)", "", "", "c"],
                    ["L_align + L_uniform + L_domain", "79.5 (n=1)", "91.1 (n=1)", "26.8 (n=1)", "54.3 (n=1)",
                     "53.1 (n=1)", "72.7 (n=1)", "a b"]]
    assert notes == []


def test_table_average_over_settings_is_over_the_seeds_both_have(tmp_path):
    """Average column: per seed the mean over settings, then mean ± std over the seeds every setting has."""
    from analysis.tables import TABLES, Setting, build_table, csv_rows, markdown_rows
    from bau.runs.folder import Run

    cfg = {"loss.two_view": True, "loss.ce_aug": False, "loss.align": True, "loss.uniform": True,
           "loss.domain": True, "loss.weighting": True, "loss.domain_specific": True, "data.aug_prob": 0.5,
           "data.random_erasing": True, "data.randaugment": True, "data.color_jitter": True, "train.seed": 0}

    def entry(sweep, target, seed, m):
        path = tmp_path / sweep / f"s{seed}"
        path.mkdir(parents=True)
        (path / "results.json").write_text(json.dumps({"finished": True, "metrics": {target: {"mAP": m, "rank1": m}}}))
        run = Run(str(path), f"{sweep}-s{seed}", {"method": "bau", "seed": seed}, "finished", sweep)
        return Setting(("a",), target), run, cfg

    # setting x: seeds 1, 2, 3 = 30, 32, 34 %; setting y: seeds 1, 2 = 10, 14 % (seed 3 missing)
    entries = [entry("x", "x", 1, 0.30), entry("x", "x", 2, 0.32), entry("x", "x", 3, 0.34),
               entry("y", "y", 2, 0.14), entry("y", "y", 1, 0.10)]
    table5 = next(t for t in TABLES if t.key == "table5")
    notes = []
    content = build_table(table5, entries, 0.5, notes.append)
    _, rows = markdown_rows(content)
    # per seed: (30 + 10) / 2 = 20, (32 + 14) / 2 = 23; mean 21.5, std |23 - 20| / sqrt(2) = 2.1213
    assert rows == [["L_align + L_uniform + L_domain", "32.0 \u00b1 2.0 (n=3)", "32.0 \u00b1 2.0 (n=3)",
                     "12.0 \u00b1 2.8 (n=2)", "12.0 \u00b1 2.8 (n=2)", "21.5 \u00b1 2.1 (n=2)",
                     "21.5 \u00b1 2.1 (n=2)", "x-s1 x-s2 x-s3 y-s1 y-s2"]]
    assert notes == ["note: table5 row L_align + L_uniform + L_domain: seeds 3 are not in every setting; "
                     "left out of the average"]
    header, rows = csv_rows(content)
    assert header[-4:] == ["Average Rank-1 mean", "Average Rank-1 std", "Average Rank-1 n", "runs"]
    assert rows[0][1:4] == ["32.0000", "2.0000", "3"] and rows[0][15:18] == ["21.5000", "2.1213", "2"]
    assert header[4] == "a \u2192 x mAP still_improving" and rows[0][4] == ""  # no learning curve: nothing to judge


def test_run_seed_that_the_sweep_lacks_is_one_error_line(sweep, tmp_path, capsys):
    assert figure4.main(["--sweep", sweep, "--out", str(tmp_path / "o"), "--run-seed", "9", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--run-seed 9: sweep folder" in err and "(seeds there: 1, 2)" in err


def test_effects_verdicts_and_paired_numbers(sweep, tmp_path, capsys):
    from analysis import effects
    from bau.runs.statistics import paired_difference

    # the verdict of a claimed sign against an interval, by hand
    up = paired_difference({1: 0.0, 2: 0.0, 3: 0.0}, {1: 2.0, 2: 3.0, 3: 4.0})  # +3 [+0.52, +5.48]
    assert effects.verdict(up, +1) == "holds" and effects.verdict(up, -1) == "contradicted"
    wide = paired_difference({1: 0.0, 2: 0.0, 3: 0.0}, {1: -5.0, 2: 1.0, 3: 7.0})
    assert effects.verdict(wide, +1) == effects.verdict(wide, -1) == "not shown"
    one = paired_difference({1: 0.0}, {1: 9.0})
    assert effects.verdict(one, +1) == "not shown"  # no interval from one seed

    assert effects.main(["--sweep", sweep, "--out", str(tmp_path), "--quiet"]) == 0
    data = json.loads((tmp_path / "effects.json").read_text())
    rows = {r["effect"]: r for r in data["effects"]}
    bau_half = next(r for e, r in rows.items() if e.startswith("BAU beats the OOD baseline at p=0.5"))
    assert_paired(bau_half, "difference", seed_values(sweep, "baseline", 0.5), seed_values(sweep, "bau", 0.5))
    assert bau_half["verdict"] == effects.verdict(paired_difference(
        dict(zip(SEEDS, seed_values(sweep, "baseline", 0.5))), dict(zip(SEEDS, seed_values(sweep, "bau", 0.5)))), +1)
    # the ID baseline of the test sweep has one seed: no interval, so not shown
    assert next(r for e, r in rows.items() if "in-distribution" in e)["verdict"] == "not shown"
    assert bau_half["difference_detectable"] == pytest.approx(paired_difference(
        dict(zip(SEEDS, seed_values(sweep, "baseline", 0.5))),
        dict(zip(SEEDS, seed_values(sweep, "bau", 0.5)))).detectable)
    assert bau_half["detectable"] == f"{bau_half['difference_detectable']:.1f}"
    assert "| effect | difference | detectable | verdict |" in (tmp_path / "effects.md").read_text()
    assert "BAU beats the OOD baseline" in capsys.readouterr().out
