"""The Streamlit app: its pure modules, and each page driven by streamlit's AppTest on a tiny run.

One tiny run is trained per module (~3 s); a "sweep" is made of copies of it with a summary.json,
plus a run whose best.pt is corrupt and one whose best.pt is a foreign torch file.
"""
import json
import os
import shutil

import numpy as np
import pytest
import torch
import yaml

from analysis.feature_report import geometry, identity_labels, retrieval
from app.embeddings import cached_geometry, cached_tsne
from app.paths import (
    RUNS_ENV,
    checked_path,
    feature_files,
    is_inside,
    resolve_data_root,
    resolve_inside,
    runs_root_from,
)
from app.runs import config_differences, downsample_steps, flatten, log_frames, loss_terms, runs_table, short_names
from bau.core.config import load_config
from bau.core.errors import BauError
from bau.engine.trainer import Trainer
from bau.method.losses import reciprocal_weights
from bau.runs.cache import DiskCache, cache_key
from bau.runs.checkpoint import checkpoint_identity, model_from_checkpoint
from bau.runs.features import feature_set, subsample_per_domain
from bau.runs.folder import Run, discover_runs
from bau.runs.weight_scores import batch_with, weight_scores
from tests.helpers import tiny_overrides

pytestmark = pytest.mark.integration

MAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app", "main.py")
SYNTH = ["folder:synth_a", "folder:synth_b", "folder:synth_c"]


@pytest.fixture(scope="module")
def runs(tiny_synth, tmp_path_factory):
    """RUNS/{solo, sweep/{p-0.0, p-1.0}, broken, foreign} and a checkpoint outside RUNS."""
    base = tmp_path_factory.mktemp("app")
    root = base / "runs"
    cfg = load_config(None, tiny_overrides(tiny_synth))
    Trainer(cfg, str(root / "solo"), progress=False, echo=lambda s: None).fit()
    sweep = root / "sweep"
    rows = []
    for p in (0.0, 1.0):
        name = f"p-{p}"
        shutil.copytree(root / "solo", sweep / name)
        conf = yaml.safe_load((sweep / name / "config.yaml").read_text())
        conf["data"]["aug_prob"] = p
        (sweep / name / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
        rows.append({"run": name, "method": "bau", "aug_prob": p, "status": "finished",
                     "folder:synth_c/mAP": 0.1 + p})
    (sweep / "summary.json").write_text(json.dumps({"runs": rows}))
    for name, payload in (("broken", b"\x80\x02 this is not a zip archive"), ("foreign", None)):
        (root / name).mkdir()
        shutil.copy(root / "solo" / "config.yaml", root / name / "config.yaml")
        if payload is None:
            torch.save({"weights": torch.zeros(2)}, root / name / "best.pt")
        else:
            (root / name / "best.pt").write_bytes(payload)
    shutil.copy(root / "solo" / "best.pt", base / "outside.pt")
    os.symlink(base / "outside.pt", root / "escape.pt")
    # a run folder whose listed checkpoint is a symlink leading out of the runs folder
    (root / "linked").mkdir()
    shutil.copy(root / "solo" / "config.yaml", root / "linked" / "config.yaml")
    os.symlink(base / "outside.pt", root / "linked" / "best.pt")
    # feature files of no bau model: a good one, one with NaN features, one symlinked from outside
    (root / "features").mkdir()
    np.savez(root / "features" / "foreign.npz", **foreign_features())
    np.savez(root / "features" / "broken.npz", **{**foreign_features(), "features": np.full((26, 8), np.nan)})
    np.savez(base / "elsewhere.npz", **foreign_features())
    os.symlink(base / "elsewhere.npz", root / "features" / "outside.npz")
    return {"root": str(root), "outside": str(base / "outside.pt"), "data": tiny_synth}


def foreign_features():
    """Two domains x 4 identities (Gaussian clusters, same pid numbers in both), query + gallery, a distractor."""
    rng = np.random.default_rng(5)
    feats, pids, camids, domains, subsets = [], [], [], [], []
    for d in range(2):
        centres = rng.standard_normal((4, 8))
        for pid in range(4):
            for j in range(3):
                feats.append(centres[pid] + 0.8 * rng.standard_normal(8))
                pids.append(pid)
                camids.append(j)
                domains.append(d)
                subsets.append("query" if j == 0 else "gallery")
        feats.append(rng.standard_normal(8))
        pids.append(-1)
        camids.append(1)
        domains.append(d)
        subsets.append("gallery")
    return {"bau_features_version": np.int64(1), "features": np.array(feats, np.float32), "pids": np.array(pids),
            "camids": np.array(camids), "domains": np.array(domains), "domain_names": np.array(["north", "south"]),
            "subsets": np.array(subsets)}


# -- paths -------------------------------------------------------------------------------------

def test_resolve_inside_refuses_paths_leading_out(tmp_path):
    root = tmp_path / "runs"
    (root / "a").mkdir(parents=True)
    (tmp_path / "secret").write_text("x")
    os.symlink(tmp_path / "secret", root / "link")
    real = os.path.realpath(root)
    assert resolve_inside(real, "a") == os.path.join(real, "a")
    assert resolve_inside(real, str(root / "a" / ".." / "a")) == os.path.join(real, "a")
    for bad in ("../secret", str(tmp_path / "secret"), "a/../../secret", "link", "/etc/passwd"):
        with pytest.raises(BauError, match="outside the runs folder"):
            resolve_inside(real, bad, "checkpoint")
    # a sibling whose name starts with the root's name is not inside it (commonpath, not startswith)
    (tmp_path / "runs2").mkdir()
    assert not is_inside(real, str(tmp_path / "runs2"))


@pytest.mark.parametrize("bad, message", [("solo\x00", "control character NUL"), ("so\nlo", "control character .x0a"),
                                          ("\ud800run", "cannot be part of a file path")])
def test_invalid_characters_in_paths_are_a_clear_error(tmp_path, bad, message):
    real = os.path.realpath(tmp_path)
    for call in (lambda: resolve_inside(real, bad, "run"), lambda: resolve_data_root("x", override=bad),
                 lambda: runs_root_from(["--runs", bad], env={})):
        with pytest.raises(BauError, match=message):
            call()
    assert checked_path("  sweep/é  ") == "sweep/é"


def test_runs_root_from_argv_env_and_errors(tmp_path):
    assert runs_root_from(["--runs", str(tmp_path)], env={}) == os.path.realpath(tmp_path)
    assert runs_root_from([], env={RUNS_ENV: str(tmp_path)}) == os.path.realpath(tmp_path)
    with pytest.raises(BauError, match="none given"):
        runs_root_from([], env={})
    with pytest.raises(BauError, match="not a folder"):
        runs_root_from(["--runs", str(tmp_path / "missing")], env={})


def test_resolve_data_root(tmp_path):
    assert resolve_data_root(str(tmp_path)) == os.path.realpath(tmp_path)
    assert resolve_data_root("nowhere", override=str(tmp_path)) == os.path.realpath(tmp_path)
    with pytest.raises(BauError, match="dataset root .*not a folder"):
        resolve_data_root(str(tmp_path), override=str(tmp_path / "missing"))
    with pytest.raises(BauError, match="set the dataset root in the sidebar"):
        resolve_data_root("relative/missing", run_dir=str(tmp_path))


# -- runs --------------------------------------------------------------------------------------

def test_discover_runs_finds_nested_runs_with_sweep_labels(runs, tmp_path):
    found = {r.name: r for r in discover_runs(runs["root"])}
    assert set(found) == {"solo", "sweep/p-0.0", "sweep/p-1.0", "broken", "foreign", "linked"}
    assert found["sweep/p-1.0"].labels == {"method": "bau", "aug_prob": 1.0}
    assert found["sweep/p-1.0"].sweep == "sweep" and found["solo"].sweep is None
    assert found["solo"].checkpoints() == ["best.pt", "last.pt"] and found["solo"].status == "finished"
    table = runs_table(list(found.values()))
    assert list(table.columns[:4]) == ["run", "sweep", "method", "aug_prob"]
    # the app's own cache folder and symlinked folders are never visited
    other = tmp_path / "r"
    shutil.copytree(os.path.join(runs["root"], "solo"), other / ".bau_cache" / "x")
    os.symlink(os.path.join(runs["root"], "solo"), other / "linked")
    assert discover_runs(str(other)) == []


def test_read_log_skips_cut_lines_and_final_metrics(tmp_path):
    (tmp_path / "config.yaml").write_text("data: {}\n")
    lines = [{"event": "step", "epoch": 1, "iter": 1, "step": 1, "lr": 0.1, "time_s": 0.1, "ce": 2.0, "total": 2.0},
             {"event": "eval", "epoch": 1, "step": 1, "target": "m", "mAP": 0.5, "rank1": 0.6, "rank5": 0.7,
              "rank10": 0.8, "mINP": 0.2}]
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + '\n{"event": "step", "ep')
    steps, evals = log_frames(Run(str(tmp_path)))
    assert len(steps) == 1 and len(evals) == 1 and loss_terms(steps) == ["ce", "total"]
    run = discover_runs(str(tmp_path))[0]
    assert run.final_metrics() == {"m/mAP": 0.5, "m/rank1": 0.6, "m/rank5": 0.7, "m/rank10": 0.8, "m/mINP": 0.2}


MALFORMED_METRICS = {"list": [0.5, 0.6], "text": {"x": "oops"}, "value": {"x": {"mAP": "oops", "rank1": 0.5}}}


@pytest.fixture
def malformed_runs(runs, tmp_path):
    """RUNS/{solo, bad-list, bad-text, bad-value}: a good run and three whose results.json has malformed metrics."""
    root = tmp_path / "runs"
    ignore = shutil.ignore_patterns(".bau_cache")
    shutil.copytree(os.path.join(runs["root"], "solo"), root / "solo", ignore=ignore)
    for name, metrics in MALFORMED_METRICS.items():
        shutil.copytree(os.path.join(runs["root"], "solo"), root / f"bad-{name}", ignore=ignore)
        (root / f"bad-{name}" / "results.json").write_text(json.dumps({"finished": True, "metrics": metrics}))
    return str(root)


def test_malformed_metrics_are_an_error_in_their_own_row(malformed_runs):
    table = runs_table(discover_runs(malformed_runs)).set_index("run")
    good = table.loc["solo"]
    assert good["error"] == "" and 0 <= good["folder:synth_c/mAP"] <= 1
    for name in MALFORMED_METRICS:
        row = table.loc[f"bad-{name}"]
        assert "results.json" in row["error"] and "expected" in row["error"]
        assert np.isnan(row["folder:synth_c/mAP"])
    with pytest.raises(BauError, match="x/mAP is 'oops', expected a number"):
        Run(os.path.join(malformed_runs, "bad-value")).metric("x")


def test_geometry_long_has_the_logged_geometry_per_evaluation():
    import pandas as pd

    from app.runs import geometry_long

    evals = pd.DataFrame([{"event": "eval", "epoch": 1, "step": 4, "target": "t", "mAP": 0.1, "L_align": -1.0,
                           "L_uniform": -2.0, "L_uniform_source": -3.0},
                          {"event": "eval", "epoch": 2, "step": 8, "target": "t", "mAP": 0.2, "L_align": -1.5,
                           "L_uniform": -2.5, "L_uniform_source": -3.5}])
    long = geometry_long(evals)
    assert len(long) == 6 and set(long["quantity"]) == {"L_align (target)", "L_uniform (target)",
                                                         "L_uniform (source sample)"}
    assert long[(long.step == 8) & (long.quantity == "L_uniform (source sample)")]["value"].item() == -3.5
    assert geometry_long(evals[["event", "epoch", "step", "target", "mAP"]]).empty  # a run logged before it


def test_downsample_steps_window_means():
    import pandas as pd

    steps = pd.DataFrame({"step": np.arange(1, 11), "epoch": [1] * 10, "ce": np.arange(10, dtype=float)})
    out = downsample_steps(steps, max_points=4)  # window ceil(10 / 4) = 3
    assert out["ce"].tolist() == [1.0, 4.0, 7.0, 9.0]
    assert out["step"].tolist() == [3, 6, 9, 10]
    assert downsample_steps(steps, max_points=100) is steps


def test_short_names_drop_shared_folders():
    assert short_names(["sw/a", "sw/b"]) == {"sw/a": "a", "sw/b": "b"}
    assert short_names(["sw/x/a", "sw/x/b"]) == {"sw/x/a": "a", "sw/x/b": "b"}
    assert short_names(["solo", "sw/b"]) == {"solo": "solo", "sw/b": "sw/b"}
    assert short_names(["sw/a"]) == {"sw/a": "a"} and short_names([]) == {}


def test_hex_colors_by_hand():
    from app.charts import hex_colors

    assert hex_colors({"a": (1.0, 0.0, 0.5), "b": (0.0, 1.0, 1.0, 0.3)}) == {"a": "#ff0080", "b": "#00ffff"}


def test_config_differences_lists_only_differing_options():
    a = {"data": {"aug_prob": 0.5, "sources": ["x", "y"]}, "loss": {"k": 10}}
    b = {"data": {"aug_prob": 1.0, "sources": ["x", "y"]}, "loss": {"k": 10}}
    diff = config_differences({"a": a, "b": b})
    assert diff.to_dict("records") == [{"option": "data.aug_prob", "a": "0.5", "b": "1.0"}]
    assert flatten(a) == {"data.aug_prob": 0.5, "data.sources": "x,y", "loss.k": 10}


# -- cache and cached computations -----------------------------------------------------------------

def test_cache_key_follows_checkpoint_identity(tmp_path):
    f = tmp_path / "c.pt"
    f.write_bytes(b"1234")
    k1 = cache_key("features", checkpoint_identity(str(f)), subset="test")
    assert k1 == cache_key("features", checkpoint_identity(str(f)), subset="test")
    assert k1 != cache_key("features", checkpoint_identity(str(f)), subset="train")
    f.write_bytes(b"12345")  # same path, new content: new size (and mtime)
    assert k1 != cache_key("features", checkpoint_identity(str(f)), subset="test")


def test_disk_cache_roundtrip_and_damaged_entry(tmp_path):
    cache = DiskCache.for_checkpoint(str(tmp_path / "c.pt"))
    assert cache.folder == os.path.join(os.path.realpath(tmp_path), ".bau_cache")
    cache.save_arrays("k", {"a": np.arange(3)})
    assert cache.load_arrays("k")["a"].tolist() == [0, 1, 2]
    (tmp_path / ".bau_cache" / "k.npz").write_bytes(b"garbage")
    assert cache.load_arrays("k") is None and cache.load_arrays("missing") is None
    cache.save_json("j", {"x": 1})
    assert cache.load_json("j") == {"x": 1}
    assert not [n for n in os.listdir(tmp_path / ".bau_cache") if n.endswith(".tmp")]


def test_a_changed_checkpoint_drops_its_old_entries_only(tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"1234")
    b.write_bytes(b"5678")
    cache = DiskCache.for_checkpoint(str(a))
    old = cache_key("features", checkpoint_identity(str(a)), subset="test")
    derived = cache_key("tsne", checkpoint_identity(str(a)), features=old)
    other = cache_key("features", checkpoint_identity(str(b)), subset="test")
    for key in (old, other):
        cache.save_arrays(key, {"a": np.arange(3)})
    cache.save_json(derived, {"x": 1})
    a.write_bytes(b"123456")  # retrained: new version of a.pt
    new = cache_key("features", checkpoint_identity(str(a)), subset="test")
    cache.save_arrays(new, {"a": np.arange(4)})
    assert sorted(os.listdir(cache.folder)) == sorted([f"{new}.npz", f"{other}.npz"])


def test_subsample_per_domain_caps_and_is_seeded():
    domains = np.array([0] * 10 + [1] * 3 + [2] * 7)
    rows = subsample_per_domain(domains, cap=4, seed=1)
    assert np.bincount(domains[rows]).tolist() == [4, 3, 4]
    assert rows.tolist() == sorted(rows.tolist())
    assert rows.tolist() == subsample_per_domain(domains, cap=4, seed=1).tolist()
    assert subsample_per_domain(domains, cap=0, seed=1).tolist() == list(range(20))


def test_feature_set_second_call_reads_the_cache(runs, tmp_path, monkeypatch):
    import bau.runs.checkpoint
    from bau.evaluation.geometry import alignment, uniformity

    ckpt = str(tmp_path / "best.pt")  # a copy of its own, so its cache starts empty
    shutil.copy2(os.path.join(runs["root"], "solo", "best.pt"), ckpt)
    seen = []
    fs = feature_set(ckpt, SYNTH, "test", runs["data"], cap=20, seed=0, workers=0, progress=lambda f, t: seen.append(f))
    assert seen[-1] == 1.0 and [n.split("-")[0] for n in os.listdir(tmp_path / ".bau_cache")] == ["features"]
    assert np.bincount(fs.domains).max() <= 20 and set(fs.subsets) <= {"query", "gallery"}
    assert np.allclose(np.linalg.norm(fs.features, axis=1), 1.0, atol=1e-5)

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not be built on a cache hit")

    bau.runs.checkpoint._cached_model.cache_clear()
    monkeypatch.setattr(bau.runs.checkpoint, "model_from_checkpoint", no_model)
    again = feature_set(ckpt, SYNTH, "test", runs["data"], cap=20, seed=0)
    assert np.array_equal(again.features, fs.features) and again.paths.tolist() == fs.paths.tolist()

    geo = cached_geometry(fs)
    # analysis.feature_report's numbers: on L2-normalised features, identities per domain
    assert geo["uniformity"] == pytest.approx(uniformity(fs.features, normalize=True))
    assert geo["alignment"] == pytest.approx(alignment(fs.features, identity_labels(fs.pids, fs.domains),
                                                       normalize=True))
    assert set(geo["per_domain"]) == set(SYNTH) and geo["num_images"] == len(fs)
    rows, emb = cached_tsne(fs, max_points=30, perplexity=5.0)
    assert emb.shape == (30, 2) and len(set(rows.tolist())) == 30
    rows2, emb2 = cached_tsne(fs, max_points=30, perplexity=5.0)
    assert np.array_equal(emb, emb2) and np.array_equal(rows, rows2)
    assert sorted(n.split("-")[0] for n in os.listdir(tmp_path / ".bau_cache")) == ["features", "geometry", "tsne"]


# -- weights ---------------------------------------------------------------------------------

def test_batch_with_holds_the_chosen_image_and_p_identities():
    pids = [0, 0, 0, 1, 1, 2, 2, 2, 3]
    b = batch_with(pids, index=1, num_ids=3, num_instances=2, seed=0)
    assert b[0] == 1 and len(b) == 6 and pids[b[1]] == 0 and b[1] != 1
    ids = [pids[i] for i in b]
    assert len(set(ids)) == 3 and all(ids.count(p) == 2 for p in set(ids))
    assert b == batch_with(pids, index=1, num_ids=3, num_instances=2, seed=0)
    assert batch_with([5, 6], index=0, num_ids=2, num_instances=2, seed=0)[:2] == [0, 0]  # one image: repeated
    with pytest.raises(BauError):
        batch_with(pids, index=9, num_ids=2, num_instances=2)


def test_weight_scores_are_eq4_inside_the_batch(runs):
    from bau.data.datasets import build_dataset
    from bau.models.reid import build_model

    # a freshly initialised network: its features are spread out (the tiny trained one's nearly coincide,
    # so its neighbour sets would hinge on rounding)
    _, _, cfg = model_from_checkpoint(os.path.join(runs["root"], "solo", "best.pt"))
    torch.manual_seed(0)
    model = build_model(cfg, 4).eval()
    items = build_dataset("folder:synth_a", runs["data"]).train
    batch = batch_with([it[1] for it in items], 3, num_ids=3, num_instances=2, seed=5)
    ws = weight_scores(model, cfg, items, batch, aug_prob=1.0, k=4, num_views=3, seed=5)
    assert ws.batch[0] == 3 and len(ws.batch) == 6
    assert ws.view_augmented.shape == (3, cfg.data.height, cfg.data.width, 3) and ws.originals.shape[0] == 6
    assert np.all((0 <= ws.view_weights) & (ws.view_weights <= 1)) and np.all((0 <= ws.weights) & (ws.weights <= 1))
    # the batch weights are Eq. 4 (bau.method.losses.reciprocal_weights) of the displayed views' features
    from bau.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    def feats(views):
        x = (torch.from_numpy(views).permute(0, 3, 1, 2) - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) \
            / torch.tensor(IMAGENET_STD).view(3, 1, 1)
        with torch.no_grad():
            return model(x.float())

    w = reciprocal_weights(feats(ws.originals), feats(ws.augmented), 4).diagonal().numpy()
    assert np.allclose(w, ws.weights, atol=1e-6)
    # view j of the chosen image, scored in place of its batch pair
    o, a = feats(ws.originals), feats(ws.augmented)
    o[0], a[0] = feats(ws.view_originals[1:2])[0], feats(ws.view_augmented[1:2])[0]
    assert float(reciprocal_weights(o, a, 4)[0, 0]) == pytest.approx(ws.view_weights[1], abs=1e-6)
    again = weight_scores(model, cfg, items, batch, aug_prob=1.0, k=4, num_views=3, seed=5)
    assert np.array_equal(again.view_weights, ws.view_weights) and np.array_equal(again.view_augmented,
                                                                                  ws.view_augmented)


def test_weight_scores_leave_the_global_random_state_alone(runs):
    """Two app sessions share one process: a session's draws must neither reseed nor depend on torch's
    global generator, and concurrent sessions get what each would get alone."""
    import threading

    from bau.data.datasets import build_dataset

    model, _, cfg = model_from_checkpoint(os.path.join(runs["root"], "solo", "best.pt"))
    items = build_dataset("folder:synth_a", runs["data"]).train
    batch = batch_with([it[1] for it in items], 0, num_ids=3, num_instances=2, seed=0)

    def draw(seed):
        return weight_scores(model, cfg, items, batch, aug_prob=1.0, k=4, num_views=2, seed=seed)

    torch.manual_seed(1234)
    state, seed = torch.get_rng_state(), torch.initial_seed()
    alone = {s: draw(s) for s in (1, 2)}
    assert torch.equal(torch.get_rng_state(), state) and torch.initial_seed() == seed
    torch.manual_seed(99)  # another global state: the same draws
    assert np.array_equal(draw(1).augmented, alone[1].augmented)
    assert not np.array_equal(alone[1].augmented, alone[2].augmented)
    together = {}
    threads = [threading.Thread(target=lambda s=s: together.__setitem__(s, draw(s))) for s in (1, 2) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in (1, 2):
        assert np.array_equal(together[s].augmented, alone[s].augmented)
        assert np.array_equal(together[s].view_augmented, alone[s].view_augmented)


# -- the pages (AppTest) -----------------------------------------------------------------------------

def _app(runs_root, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv(RUNS_ENV, runs_root)
    return AppTest.from_file(MAIN, default_timeout=90)


def _kinds(at):
    out = []

    def walk(node):
        for child in getattr(node, "children", {}).values():
            out.append(child.type)
            walk(child)

    walk(at._tree)
    return out


def _errors(at):
    return [e.value for e in at.error]


def test_runs_page(runs, monkeypatch):
    at = _app(runs["root"], monkeypatch).run()
    assert not at.exception and not _errors(at)
    assert [t.value for t in at.title] == ["Runs"]
    assert at.selectbox(key="run").value == "broken"  # first by name; it has no log: no curves, no crash
    at.selectbox(key="run").select("solo").run()
    kinds = _kinds(at)
    assert kinds.count("dataframe") >= 2 and kinds.count("vega_lite_chart") >= 4
    assert any(m.value.startswith("Geometry over training") for m in at.markdown)  # next to the mAP curve
    assert at.selectbox(key="run").options == ["broken", "foreign", "linked", "solo", "sweep/p-0.0", "sweep/p-1.0"]
    # a sweep run: the comparison defaults to its sweep and shows the sweep chart and config differences
    at.selectbox(key="run").select("sweep/p-1.0").run()
    assert not at.exception
    assert at.multiselect(key="compare_runs").value == ["sweep/p-0.0", "sweep/p-1.0"]
    assert at.selectbox(key="sweep_x").value == "aug_prob"
    assert any("differ" in m.value for m in at.markdown)
    assert at.query_params["run"] == "sweep/p-1.0"


def test_geometry_page(runs, monkeypatch):
    at = _app(runs["root"], monkeypatch).run()
    at.selectbox(key="run").select("solo").run()
    at.switch_page("views/geometry.py").run()
    assert not at.exception and not _errors(at)
    assert [t.value for t in at.title] == ["Geometry"]
    assert len(at.metric) == 3 and "vega_lite_chart" in _kinds(at)
    assert [h.value for h in at.subheader] == ["Alignment and uniformity", "t-SNE"]
    # the features are cached next to the checkpoint (solo/.bau_cache), not in the runs folder itself
    assert any(n.startswith("features-") for n in os.listdir(os.path.join(runs["root"], "solo", ".bau_cache")))
    assert not os.path.exists(os.path.join(runs["root"], ".bau_cache"))


def test_geometry_page_opens_a_feature_file_of_any_model(runs, monkeypatch):
    from bau.runs.features import read_feature_file

    assert feature_files(runs["root"]) == ["features/broken.npz", "features/foreign.npz", "features/outside.npz"]
    at = _app(runs["root"], monkeypatch).run()
    at.switch_page("views/geometry.py").run()
    at.radio(key="geo_source").set_value("feature file (.npz)").run()
    at.selectbox(key="geo_file").select("features/foreign.npz").run()
    assert not at.exception and not _errors(at), _errors(at)
    assert [h.value for h in at.subheader] == ["Alignment and uniformity", "Retrieval", "t-SNE"]
    # the numbers of `bau analyze` (analysis.feature_report) on the same file
    fs = read_feature_file(os.path.join(runs["root"], "features", "foreign.npz"))
    geo, ret = geometry(fs), retrieval(fs)
    assert [m.value for m in at.metric] == [f"{geo['alignment']:.4g}", f"{-geo['uniformity']:.4g}", "26"]
    per_domain, table = (d.value for d in at.dataframe)  # per domain, then retrieval
    assert per_domain["domain"].tolist() == ["north", "south"] and per_domain["identities"].tolist() == [4, 4]
    assert per_domain["−L_uniform"].tolist() == pytest.approx([-geo["per_domain"]["north"],
                                                               -geo["per_domain"]["south"]])
    table = table.set_index("domain")
    for name in ("north", "south"):
        assert table.loc[name, "mAP"] == pytest.approx(100 * ret["per_domain"][name]["mAP"])
        assert table.loc[name, "queries"] == 4 and table.loc[name, "gallery"] == 9
    assert "vega_lite_chart" in _kinds(at)
    # its results are cached next to the file, inside the runs folder
    assert {n.split("-")[0] for n in os.listdir(os.path.join(runs["root"], "features", ".bau_cache"))} == {
        "geometry", "retrieval", "tsne"}
    # a malformed file is its one-line error; a file leading out of the runs folder is refused
    at.selectbox(key="geo_file").select("features/broken.npz").run()
    assert not at.exception and not at.metric
    assert any("broken.npz: features has NaN" in e for e in _errors(at)), _errors(at)
    at.selectbox(key="geo_file").select("features/outside.npz").run()
    assert not at.exception and not at.metric
    assert any("outside the runs folder" in e for e in _errors(at)), _errors(at)


def test_retrieval_page(runs, monkeypatch):
    at = _app(runs["root"], monkeypatch).run()
    at.selectbox(key="run").select("solo").run()
    at.switch_page("views/retrieval.py").run()
    assert not at.exception and not _errors(at)
    assert [t.value for t in at.title] == ["Retrieval"]
    # query + top 10 + five Grad-CAM panels (query, 3 overlays, gallery)
    assert _kinds(at).count("image") == 1 + 10 + 5
    assert any("AP of this query" in c.value for c in at.caption)
    # the Grad-CAM layer rule's choice for the run's MobileNetV2 at 32x16 (the end of the stride-4 stage)
    assert any(c.value.startswith("Computed at backbone.features.3, 8x4 cells: the deepest layer with at least "
                                  "8x4 cells at 32x16") for c in at.caption)
    at.number_input(key="ret_topk").set_value(3).run()
    assert not at.exception and _kinds(at).count("image") == 1 + 3 + 5


def test_augmentations_page(runs, monkeypatch):
    at = _app(runs["root"], monkeypatch).run()
    at.selectbox(key="run").select("solo").run()
    at.switch_page("views/augmentations.py").run()
    assert not at.exception and not _errors(at)
    assert [t.value for t in at.title] == ["Augmentations"]
    views = at.number_input(key="aug_views").value
    batch = at.number_input(key="aug_P").value * at.number_input(key="aug_K").value
    assert _kinds(at).count("image") == 2 * views + 2 * batch
    assert sum("w = " in str(c) for c in _captions(at)) == views + batch


def _captions(at):
    out = []

    def walk(node):
        for child in getattr(node, "children", {}).values():
            if child.type == "image":
                out.extend(img.caption for img in child.proto.imgs)
            walk(child)

    walk(at._tree)
    return out


@pytest.mark.parametrize("run,message", [("broken", "not a bau checkpoint"), ("foreign", "not a bau checkpoint")])
def test_bad_checkpoint_shows_an_error_and_the_app_keeps_running(runs, monkeypatch, run, message):
    at = _app(runs["root"], monkeypatch).run()
    at.selectbox(key="run").select(run).run()
    for page in ("views/geometry.py", "views/retrieval.py", "views/augmentations.py"):
        at.switch_page(page).run()
        assert not at.exception, page
        assert any(message in e for e in _errors(at)), (page, _errors(at))
    at.selectbox(key="run").select("solo").run()  # still alive: a good run renders
    at.switch_page("views/geometry.py").run()
    assert not at.exception and not _errors(at) and len(at.metric) == 3


@pytest.mark.parametrize("typed", ["../outside.pt", "escape.pt", "sweep/../../outside.pt"])
def test_typed_checkpoint_outside_the_runs_folder_is_refused(runs, monkeypatch, typed):
    at = _app(runs["root"], monkeypatch).run()
    at.selectbox(key="run").select("solo").run()
    at.selectbox(key="checkpoint_choice").select("other file...").run()
    at.text_input(key="checkpoint_path").input(typed).run()
    at.switch_page("views/geometry.py").run()
    assert not at.exception
    assert any("outside the runs folder" in e for e in _errors(at)), _errors(at)
    assert not at.metric  # nothing was computed from it
    at.text_input(key="checkpoint_path").input("solo/last.pt").run()
    assert not at.exception and not _errors(at) and len(at.metric) == 3


def test_listed_checkpoint_symlinked_outside_is_refused(runs, monkeypatch):
    at = _app(runs["root"], monkeypatch).run()
    at.selectbox(key="run").select("linked").run()
    at.switch_page("views/geometry.py").run()
    assert not at.exception and not at.metric
    assert any("outside the runs folder" in e for e in _errors(at)), _errors(at)


def test_malformed_run_shows_its_error_and_the_runs_table_stays(malformed_runs, monkeypatch):
    at = _app(malformed_runs, monkeypatch).run()
    assert not at.exception
    assert at.selectbox(key="run").value == "bad-list"
    table = at.dataframe[0].value.set_index("run")  # the runs table comes first
    assert list(table.index) == ["bad-list", "bad-text", "bad-value", "solo"]
    assert table.loc["solo", "error"] == "" and table.loc["solo", "folder:synth_c/mAP"] > 0
    assert all("results.json" in table.loc[f"bad-{n}", "error"] for n in MALFORMED_METRICS)
    assert len(_errors(at)) == 1 and "'metrics' is a list" in _errors(at)[0]  # the detail of the selected run
    at.selectbox(key="run").select("solo").run()
    assert not at.exception and not _errors(at)


@pytest.mark.parametrize("wanted", ["solo\x00", "sweep/\x00../..", "so\x07lo"])
def test_run_query_parameter_with_invalid_characters_is_an_error(runs, monkeypatch, wanted):
    at = _app(runs["root"], monkeypatch)
    at.query_params["run"] = wanted
    at.run()
    assert not at.exception
    assert any(e.startswith("run ") and "control character" in e for e in _errors(at)), _errors(at)
    assert at.selectbox(key="run").value == "broken"  # nothing chosen from it; the app works on


def test_run_query_parameter_outside_is_refused(runs, monkeypatch):
    at = _app(runs["root"], monkeypatch)
    at.query_params["run"] = "../.."
    at.run()
    assert not at.exception
    assert any("outside the runs folder" in e for e in _errors(at))
    at2 = _app(runs["root"], monkeypatch)
    at2.query_params["run"] = "sweep/p-0.0"
    at2.run()
    assert at2.selectbox(key="run").value == "sweep/p-0.0" and not _errors(at2)


def test_dataset_root_override_must_be_a_folder(runs, monkeypatch):
    at = _app(runs["root"], monkeypatch).run()
    at.selectbox(key="run").select("solo").run()
    at.text_input(key="data_root").input(os.path.join(runs["root"], "no-such-folder")).run()
    at.switch_page("views/retrieval.py").run()
    assert not at.exception
    assert any("dataset root" in e and "not a folder" in e for e in _errors(at))


def test_missing_runs_folder_is_an_error_not_a_crash(tmp_path, monkeypatch):
    at = _app(str(tmp_path / "missing"), monkeypatch).run()
    assert not at.exception and any("not a folder" in e for e in _errors(at))
    empty = _app(str(tmp_path), monkeypatch).run()
    assert not empty.exception and any("No run folders" in i.value for i in empty.info)


# -- the launcher --------------------------------------------------------------------------------------

def test_launcher_command_and_refusals(tmp_path, monkeypatch):
    from bau import app_launcher

    cmd = app_launcher.streamlit_command(str(tmp_path), port=9999, extra_args=["--server.headless", "true"])
    assert cmd[:4] == [app_launcher.sys.executable, "-m", "streamlit", "run"] and os.path.isfile(cmd[4])
    assert cmd[cmd.index("--server.port") + 1] == "9999" and cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[-3:] == ["--", "--runs", str(tmp_path)] and "--server.headless" in cmd[:cmd.index("--")]
    with pytest.raises(BauError, match="not a folder"):
        app_launcher.launch(str(tmp_path / "missing"))
    with pytest.raises(BauError, match="port"):
        app_launcher.launch(str(tmp_path), port=70000)
    seen = []
    monkeypatch.setattr(app_launcher, "run_forwarding_signals", lambda c: seen.append(c) or 0)
    assert app_launcher.launch(str(tmp_path), port=8600) == 0 and seen[0][-1] == str(tmp_path)


FAKE_SERVER = """
import os, signal, sys, time
def stop(signum, frame):
    open(sys.argv[1] + ".signal", "w").write(str(signum))
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
open(sys.argv[1] + ".pid", "w").write(str(os.getpid()))  # ready: the handlers are in place
while True:
    time.sleep(0.05)
"""

LAUNCHER = """
import sys
from bau import app_launcher
app_launcher.streamlit_command = lambda *a, **k: [sys.executable, sys.argv[1], sys.argv[2]]
app_launcher.check_port_free = lambda host, port: None  # the stand-in listens on no port
sys.exit(app_launcher.launch(sys.argv[3]))
"""


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_bau_app_forwards_sigterm_and_sigint_to_its_server(tmp_path, signum):
    """A stand-in server (a child that records the signal it gets) under the real launcher in its own process."""
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "server.py").write_text(FAKE_SERVER)
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    mark = str(tmp_path / "server")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    launcher = subprocess.Popen([sys.executable, str(tmp_path / "launcher.py"), str(tmp_path / "server.py"), mark,
                                 str(tmp_path)], cwd=repo, env={**os.environ, "PYTHONPATH": repo},
                                stdout=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    while not (os.path.exists(mark + ".pid") and os.path.getsize(mark + ".pid")) and time.monotonic() < deadline:
        time.sleep(0.05)
    server = int(open(mark + ".pid").read())
    try:
        launcher.send_signal(getattr(signal, signum))
        assert launcher.wait(timeout=30) == 0  # the server's own exit status
        assert open(mark + ".signal").read() == str(int(getattr(signal, signum)))
        with pytest.raises(ProcessLookupError):  # stopped and reaped, not left running
            os.kill(server, 0)
    finally:
        for pid in (server, launcher.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_sweep_view_points_are_means_over_seeds():
    import pandas as pd

    from app.runs import mean_over_seeds

    table = pd.DataFrame({"run": ["a1", "a2", "b1", "c1"], "method": ["bau", "bau", "bau", "base"],
                          "aug_prob": [0.5, 0.5, 1.0, 0.5], "seed": [1, 2, 1, 1], "m/mAP": [0.30, 0.32, 0.2, 0.1]})
    points = mean_over_seeds(table, "aug_prob", "m/mAP", "method").set_index(["aug_prob", "method"])
    assert points.loc[(0.5, "bau"), "mean"] == pytest.approx(0.31)
    assert points.loc[(0.5, "bau"), "std"] == pytest.approx(0.0141421, rel=1e-5) and points.loc[(0.5, "bau"), "n"] == 2
    assert points.loc[(1.0, "bau"), "n"] == 1 and pd.isna(points.loc[(1.0, "bau"), "std"])  # no spread for n = 1
    # seed as the x axis: every run is its own point
    assert len(mean_over_seeds(table, "seed", "m/mAP", "method")) == 4
    with pytest.raises(BauError, match="two runs with the same seed"):
        mean_over_seeds(pd.concat([table, table.iloc[:1]]), "aug_prob", "m/mAP", "method")
