"""The figure and table scripts on a tiny sweep with the demo sweep's labels (reduced grid, p in {0, 0.5}).

Each script's plotted numbers are checked against the metric recomputed here from the run's own
files: features re-extracted from the checkpoint, alignment / uniformity by brute force over all
pairs, Grad-CAM maps and weight scores recomputed, mAP read from results.json.
"""
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch
import yaml

from analysis import figure1, figure2, figure4, figure5, tables
from analysis.sweep_data import one_run
from bau.features import lookup_features
from bau.runs import sweep_runs
from bau.sweep import run_sweep
from tests.conftest import tiny_overrides

PS = [0.0, 0.5]
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
    """9 runs: {baseline, bau, bau_noweight} x p, bau_nodomain at 0.5, baseline_id (trained on synth_c) x p.

    ImageNet MobileNetV2 (shipped with a dependency) at 64x32, one epoch of two steps: the features
    are not collapsed as a from-scratch net's would be, and Grad-CAM has an 8x4 map (features.6) to weigh.
    """
    tmp = tmp_path_factory.mktemp("figsweep")
    (tmp / "base.yaml").write_text("model:\n  backbone: mobilenetv2\n")
    overrides = tiny_overrides(tiny_synth, **{"train.epochs": 1, "train.eval_every": 0, "model.pretrained": "true",
                                              "data.height": 64, "data.width": 32})
    spec = {"base": "base.yaml", "overrides": overrides, "grids": [
        {"method": {"baseline": BASELINE, "bau": {}, "bau_noweight": {"loss.weighting": False}}, "data.aug_prob": PS},
        {"method": {"bau_nodomain": {"loss.domain": False}}, "data.aug_prob": [0.5]},
        {"method": {"baseline_id": {**BASELINE, "data.sources": ["folder:synth_c"]}}, "data.aug_prob": PS},
    ]}
    (tmp / "sweep.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    out = str(tmp / "sweep")
    rows = run_sweep(str(tmp / "sweep.yaml"), out, progress=False, echo=lambda s: None)
    assert len(rows) == 9 and all(r["status"] == "finished" for r in rows)
    return out


def run_dir(sweep, method, p):
    return os.path.join(sweep, f"method-{method}__aug_prob-{p}")


def metric(sweep, method, p, key="mAP", target=TARGET):
    with open(os.path.join(run_dir(sweep, method, p), "results.json")) as f:
        return 100 * json.load(f)["metrics"][target][key]


def brute_uniformity(f):
    """Eq. 2 over all pairs i < j, straight from the definition."""
    f = np.asarray(f, dtype=np.float64)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    i, j = np.triu_indices(len(f), k=1)
    return math.log(np.mean(np.exp(-2.0 * ((f[i] - f[j]) ** 2).sum(1))))


def brute_alignment(f, pids):
    """Eq. 1 over all positive pairs i < j (same pid)."""
    f = np.asarray(f, dtype=np.float64)
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    i, j = np.triu_indices(len(f), k=1)
    pos = pids[i] == pids[j]
    return math.log(np.mean(((f[i[pos]] - f[j[pos]]) ** 2).sum(1)))


def cached_features(sweep, method, p, names, subset, max_per_domain=None):
    """The features a figure script cached for a run (the cache test checks them against a fresh extraction)."""
    run = one_run(sweep_runs(sweep), sweep, method=method, aug_prob=p)
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
    perf = {(r["setting"], r["p"]): r["mAP"] for r in data["performance"]}
    assert set(perf) == {(s, p) for s in ("ID", "OOD") for p in PS}
    for p in PS:
        assert perf[("OOD", p)] == pytest.approx(metric(sweep, "baseline", p))
        assert perf[("ID", p)] == pytest.approx(metric(sweep, "baseline_id", p))
    geo = {r["p"]: r for r in data["geometry"]}
    assert sorted(geo) == PS
    for p in PS:
        feats, pids = cached_features(sweep, "baseline", p, [TARGET], "test")
        assert geo[p]["num_target_images"] == len(feats)
        assert geo[p]["alignment"] == pytest.approx(brute_alignment(feats, pids), abs=1e-4)
        assert geo[p]["uniformity"] == pytest.approx(brute_uniformity(feats), abs=1e-4)
        assert geo[p]["neg_uniformity_target"] == pytest.approx(-geo[p]["uniformity"])
        src, _ = cached_features(sweep, "baseline", p, SOURCES, "train", max_per_domain=2000)
        assert len(src) == geo[p]["num_source_images"] > len(feats)
        assert geo[p]["neg_uniformity_source"] == pytest.approx(-brute_uniformity(src), abs=1e-4)
    assert geo[0.0]["uniformity"] != geo[0.5]["uniformity"]  # the runs differ: not a constant


def test_feature_cache_is_reused_and_refreshed_when_the_checkpoint_changes(sweep, tmp_path):
    from analysis.sweep_data import run_features

    from bau.checkpoint import model_from_checkpoint
    from bau.features import collect_items
    from bau.inference import extract_features

    run = one_run(sweep_runs(sweep), sweep, method="baseline", aug_prob=0.5)
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
    from bau.checkpoint import model_from_checkpoint

    out = str(tmp_path / "fig")
    assert figure2.main(["--sweep", sweep, "--out", out, "--device", "cpu", "--num-images", "2", "--quiet"]) == 0
    data = outputs_exist(out, "figure2")
    assert data["methods"] == ["baseline", "bau"] and data["ps"] == PS and len(data["images"]) == 2
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
    feats, pids = cached_features(sweep, "bau", 0.0, [TARGET], "test")
    assert rows[("bau", 0.0)]["alignment"] == pytest.approx(brute_alignment(feats, pids), abs=1e-4)
    assert rows[("bau", 0.0)]["uniformity"] == pytest.approx(brute_uniformity(feats), abs=1e-4)
    assert rows[("bau", 0.5)]["mAP"] == pytest.approx(metric(sweep, "bau", 0.5))

    tsne = outputs_exist(out, "figure4b")
    panels = {p["method"]: p for p in tsne["panels"]}
    assert set(panels) == {"bau", "bau_nodomain"}
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
    from bau.weight_scores import checkpoint_weight_scores

    out = str(tmp_path / "fig")
    assert figure5.main(["--sweep", sweep, "--out", out, "--device", "cpu", "--columns", "4", "--quiet"]) == 0
    perf = outputs_exist(out, "figure5a")
    rows = {(r["method"], r["p"]): r["mAP"] for r in perf["rows"]}
    assert set(rows) == {(m, p) for m in ("bau", "bau_noweight") for p in PS}
    for (m, p), value in rows.items():
        assert value == pytest.approx(metric(sweep, m, p))
    gallery = outputs_exist(out, "figure5b")
    assert gallery["run"] == "method-bau__aug_prob-0.5" and sum(p["shown"] for p in gallery["pairs"]) == 4
    pairs = checkpoint_weight_scores(os.path.join(run_dir(sweep, "bau", 0.5), "last.pt"), seed=0).pairs()
    assert [p["path"] for p in gallery["pairs"]] == [p.path for p in pairs]
    np.testing.assert_allclose([p["weight"] for p in gallery["pairs"]], [p.weight for p in pairs], atol=1e-6)


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

    header, rows = read("table5")
    assert header == ["Method", "synth_a+synth_b \u2192 synth_c mAP", "synth_a+synth_b \u2192 synth_c Rank-1", "runs"]
    # the ID baseline (trained on synth_c) is not a DG row; p = 0 baseline, no-L_domain, full BAU at p = 0.5
    assert [(r[0], r[-1]) for r in rows] == [
        ("Baseline (w/o augmented images)", "method-baseline__aug_prob-0.0"),
        ("L_align + L_uniform", "method-bau_nodomain__aug_prob-0.5"),
        ("L_align + L_uniform + L_domain", "method-bau__aug_prob-0.5")]
    assert float(rows[0][1]) == pytest.approx(metric(sweep, "baseline", 0.0), abs=0.05)
    assert float(rows[0][2]) == pytest.approx(metric(sweep, "baseline", 0.0, "rank1"), abs=0.05)
    _, rows = read("table6")
    assert [(r[0], r[1], r[-1]) for r in rows] == [("", "\u2713", "method-bau_noweight__aug_prob-0.5"),
                                                   ("\u2713", "\u2713", "method-bau__aug_prob-0.5")]
    _, rows = read("table8")
    assert [(tuple(r[:3]), r[-1]) for r in rows] == [(("-", "-", "-"), "method-bau__aug_prob-0.0"),
                                                     (("\u2713",) * 3, "method-bau__aug_prob-0.5")]
    _, rows = read("table9")
    assert [(r[0], r[-1]) for r in rows] == [("0", "method-bau__aug_prob-0.0"), ("0.5", "method-bau__aug_prob-0.5")]
    assert float(rows[1][1]) == pytest.approx(metric(sweep, "bau", 0.5), abs=0.05)


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
        os.remove(os.path.join(copy, f"method-bau__aug_prob-{p}", "results.json"))
        open(os.path.join(copy, f"method-bau__aug_prob-{p}", "last.pt"), "w").close()
    assert figure4.main(["--sweep", copy, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not finished" in err and "method-bau__aug_prob-0.5 (interrupted)" in err
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
    from analysis.tables import TABLES, Setting, build_table
    from bau.runs import Run

    full = {"loss.two_view": True, "loss.ce_aug": False, "loss.align": True, "loss.uniform": True,
            "loss.domain": True, "loss.weighting": True, "loss.domain_specific": True, "data.aug_prob": 0.5,
            "data.random_erasing": True, "data.randaugment": True, "data.color_jitter": True}

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
    header, rows, _ = build_table(table5, entries, 0.5, notes.append)
    assert header == ["Method", "MS+CS+C3 \u2192 M mAP", "MS+CS+C3 \u2192 M Rank-1", "M+CS+C3 \u2192 MS mAP",
                      "M+CS+C3 \u2192 MS Rank-1", "Average mAP", "Average Rank-1", "runs"]
    assert rows == [["L_align + L_uniform", "", "", "25.1", "51.6", "", "", "c"],  # one setting only: no average
                    ["L_align + L_uniform + L_domain", "79.5", "91.1", "26.8", "54.3", "53.1", "72.7", "a b"]]
    assert notes == []
