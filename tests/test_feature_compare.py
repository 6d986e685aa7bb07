"""`bau analyze` with several models' feature files of the same images: the side-by-side comparison."""
import json

import numpy as np
import pytest

import analysis.plotting
from bau.cli import main
from tests.brute_geometry import brute_alignment, brute_uniformity
from tests.test_feature_report import brute_retrieval, clusters, write_with_snippet

pytestmark = pytest.mark.unit


@pytest.fixture
def two_models(tmp_path):
    """The same 22 images (5 ids x 4 + 2 distractors) as seen by a sharp and a blurry model."""
    feats_a, pids, camids, subsets = clusters(1, spread=0.3)
    rng = np.random.default_rng(7)
    feats_b = feats_a + 2.0 * rng.standard_normal(feats_a.shape)
    paths = {}
    for name, f in (("sharp", feats_a), ("blurry", feats_b)):
        paths[name] = str(tmp_path / f"{name}.npz")
        write_with_snippet(paths[name], f, pids, camids, subsets)
    return {"sharp": feats_a, "blurry": feats_b}, (pids, camids, subsets), paths


def test_same_images_give_one_side_by_side_report(two_models, tmp_path, monkeypatch, capsys):
    feats, (pids, camids, subsets), paths = two_models
    figures = {}
    real_save = analysis.plotting.save_figure

    def keep(fig, stem, data=None, close=True):
        figures[stem.rsplit("/", 1)[-1]] = fig
        return real_save(fig, stem, data, close)

    monkeypatch.setattr(analysis.plotting, "save_figure", keep)
    out = tmp_path / "cmp"
    assert main(["analyze", "--features", paths["sharp"], paths["blurry"], "--out", str(out), "--max-points", "20",
                 "--tsne-iters", "250", "--perplexity", "5", "--quiet"]) == 0
    numbers = json.loads((out / "report.json").read_text())
    assert [m["name"] for m in numbers["models"]] == ["sharp", "blurry"]
    for m in numbers["models"]:
        f = feats[m["name"]]
        ids = np.where(pids >= 0, pids, -1)
        assert m["geometry"]["alignment"] == pytest.approx(brute_alignment(f, ids), abs=1e-5)
        assert m["geometry"]["uniformity"] == pytest.approx(brute_uniformity(f), abs=1e-5)
        mAP, rank1 = brute_retrieval(f, pids, camids, subsets)
        assert m["retrieval"]["per_domain"]["market1501"]["mAP"] == pytest.approx(mAP, abs=1e-6)
        assert m["cmc"]["market1501"][0] == pytest.approx(rank1, abs=1e-6)
        assert np.all(np.diff(m["cmc"]["market1501"]) >= 0) and len(m["cmc"]["market1501"]) == 20
    sharp, blurry = numbers["models"]
    assert sharp["geometry"]["alignment"] < blurry["geometry"]["alignment"]  # the sharp model's ids are tighter
    # one table, one row per model
    report = (out / "report.md").read_text()
    header = "| model | dim | L_align | L_uniform | -L_uniform market1501 | mAP market1501 | Rank-1 market1501 |"
    assert header in report
    assert f"| sharp | 12 | {sharp['geometry']['alignment']:.4f} |" in report and "| blurry | 12 |" in report
    assert "![CMC curves](cmc.png)" in report and "![t-SNE per model](compare_tsne.png)" in report
    # the CMC curves of both models on one plot; the t-SNE panels share their axes limits
    (cmc_ax,) = figures["cmc"].axes
    assert len(cmc_ax.lines) == 2
    panels = [ax for ax in figures["compare_tsne"].axes if ax.collections]
    assert len(panels) == 2 and panels[0].get_xlim() == panels[1].get_xlim() == tuple(numbers["tsne"]["xlim"])
    assert panels[0].get_ylim() == panels[1].get_ylim()
    emb = json.loads((out / "compare_tsne.json").read_text())["embeddings"]
    pts = np.concatenate([np.asarray(e) for e in emb.values()])
    assert pts[:, 0].min() >= numbers["tsne"]["xlim"][0] and pts[:, 1].max() <= numbers["tsne"]["ylim"][1]
    assert "2 models on the same 22 images" in capsys.readouterr().out


def test_compare_refuses_files_of_other_images(two_models, tmp_path, capsys):
    _, _, paths = two_models
    other = tmp_path / "other.npz"
    f, pids, camids, subsets = clusters(5, ids=3)
    write_with_snippet(other, f, pids, camids, subsets)
    rc = main(["analyze", "--features", paths["sharp"], str(other), "--compare", "--out", str(tmp_path / "o"),
               "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "does not hold the same images" in err and "other.npz" in err
    assert not (tmp_path / "o").exists()
    assert main(["analyze", "--features", paths["sharp"], "--compare", "--domains", "--out", str(tmp_path / "o"),
                 "--quiet"]) == 2
