"""t-SNE embedding, the Figure 4b scatter, and the shared figure saving of analysis.plotting."""
import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis.embedding import available_backends, plot_tsne, tsne
from analysis.plotting import METHOD_COLORS, domain_palette, figure, method_color, save_figure
from bau.core.errors import BauError

pytestmark = pytest.mark.unit


def clusters(seed=0, per=25, k=3, d=20):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d)) * 10
    labels = np.repeat(np.arange(k), per)
    return (centers[labels] + rng.standard_normal((k * per, d))).astype(np.float32), labels


def nn_label_agreement(emb, labels):
    d = ((emb[:, None] - emb[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return float((labels[d.argmin(1)] == labels).mean())


def test_tsne_shape_seeded_and_keeps_clusters():
    x, labels = clusters()
    a = tsne(x, seed=3, perplexity=10, n_iter=300, backend="sklearn", n_jobs=1)
    b = tsne(x, seed=3, perplexity=10, n_iter=300, backend="sklearn", n_jobs=1)
    assert a.shape == (75, 2) and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert nn_label_agreement(a, labels) == 1.0


def test_tsne_pca_and_small_inputs():
    x, labels = clusters(per=6, d=300)
    # 18 points: perplexity 30 is capped, PCA to 10 dims keeps the clusters apart.
    emb = tsne(x, seed=0, pca_dims=10, n_iter=300, backend="sklearn", n_jobs=1)
    assert emb.shape == (18, 2)
    assert nn_label_agreement(emb, labels) == 1.0
    with pytest.raises(BauError, match="at least 4"):
        tsne(x[:3])
    with pytest.raises(BauError, match="2-D"):
        tsne(x[0])
    with pytest.raises(BauError, match="backend"):
        tsne(x, backend="umap")


def test_opentsne_backend_when_installed():
    x, labels = clusters()
    if "opentsne" not in available_backends():
        with pytest.raises(BauError, match="openTSNE is not installed"):
            tsne(x, backend="opentsne")
        return
    emb = tsne(x, seed=1, perplexity=10, n_iter=300, backend="opentsne", n_jobs=1)
    assert emb.shape == (75, 2) and np.isfinite(emb).all()
    assert nn_label_agreement(emb, labels) == 1.0


def test_plot_tsne_legend_shows_per_domain_uniformity(tmp_path):
    x, labels = clusters()
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((75, 2))
    names = ["msmt17", "cuhksysu", "cuhk03"]
    ax = plot_tsne(emb, labels, names, uniformity={"msmt17": 2.5, "cuhksysu": 3.125, "cuhk03": 1.0},
                   ids=np.arange(75) // 5, num_highlight=3, title="with L_domain")
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["msmt17 (2.50)", "cuhksysu (3.12)", "cuhk03 (1.00)"]
    # one scatter for the domains + one per highlighted identity
    assert len(ax.collections) == 1 + 3
    written = save_figure(ax.figure, str(tmp_path / "fig4b"), data={"emb": emb, "uniformity": {"msmt17": 2.5}})
    assert written == [str(tmp_path / f"fig4b.{e}") for e in ("png", "pdf", "json")]
    with Image.open(tmp_path / "fig4b.png") as im:
        assert im.size[0] > 300 and im.size[1] > 300
    assert (tmp_path / "fig4b.pdf").read_bytes().startswith(b"%PDF")
    saved = json.loads((tmp_path / "fig4b.json").read_text())
    assert np.allclose(saved["emb"], emb) and saved["uniformity"] == {"msmt17": 2.5}
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_plot_tsne_rejects_mismatched_labels():
    with pytest.raises(BauError, match="domain labels"):
        plot_tsne(np.zeros((5, 2)), [0, 1], ["a", "b"])
    with pytest.raises(BauError, match="index domain_names"):
        plot_tsne(np.zeros((2, 2)), [0, 2], ["a", "b"])
    with pytest.raises(BauError, match=r"\[N, 2\]"):
        plot_tsne(np.zeros((2, 3)), [0, 1], ["a", "b"])


def test_save_figure_dataframe_to_csv_and_nan_to_null(tmp_path):
    fig, axes = figure(2, 1)
    axes[0, 0].plot([0, 0.5, 1], [60, 55, 50], color=METHOD_COLORS["baseline"])
    df = pd.DataFrame({"p": [0, 0.5, 1.0], "mAP": [60.0, 55.0, 50.0]})
    out = save_figure(fig, str(tmp_path / "sub" / "fig1a.png"), data=df)  # an extension is forgiven
    assert out[-1] == str(tmp_path / "sub" / "fig1a.csv")
    assert pd.read_csv(out[-1]).equals(df)
    fig2, _ = figure()
    save_figure(fig2, str(tmp_path / "n"), data={"u": float("nan"), "v": np.float32(1.5)})
    assert json.loads((tmp_path / "n.json").read_text()) == {"u": None, "v": 1.5}


def test_palettes_are_stable_and_distinct():
    a = domain_palette(["msmt17", "cuhk03", "mydata"])
    b = domain_palette(["cuhk03", "mydata2", "msmt17", "mydata"])
    assert a["msmt17"] == b["msmt17"] and a["cuhk03"] == b["cuhk03"]
    assert len(set(b.values())) == 4
    assert method_color("BAU") == METHOD_COLORS["bau"]
    assert method_color("something new") == method_color("something new")
    assert METHOD_COLORS["bau"] != METHOD_COLORS["baseline"]
