"""Geometry page: alignment / uniformity (Eqs. 1-2) of a checkpoint's features, per domain, and a t-SNE."""
from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from analysis.plotting import domain_palette
from app import charts
from app.embeddings import cached_geometry, cached_tsne
from app.images import thumbnail_data_url
from app.session import ProgressBar, context, model_in_use, show_errors
from bau.features import feature_set

SUBSETS = ["query", "gallery", "test", "train", "all"]


@st.cache_data(show_spinner=False, max_entries=8)
def _thumbnails(paths: tuple) -> list:
    return [thumbnail_data_url(p) for p in paths]


ctx = context()
st.title("Geometry")
with show_errors():
    ckpt = ctx.require_checkpoint()
    data_cfg = ctx.run_config().get("data", {})
    known = list(dict.fromkeys(list(data_cfg.get("sources", [])) + list(data_cfg.get("targets", []))))
    root = ctx.data_root()
    st.caption(f"checkpoint `{os.path.relpath(ckpt, ctx.runs_root)}` · dataset root `{root}`")

    c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
    names = c1.multiselect("Datasets (domains)", known, default=known, key="geo_datasets")
    subset = c2.selectbox("Split", SUBSETS, index=SUBSETS.index("test"), key="geo_subset",
                          help="test = query + gallery; all = train + query + gallery")
    cap = int(c3.number_input("Images per dataset", min_value=0, value=300, step=100, key="geo_cap",
                              help="A seeded random subset of each dataset; 0 = all images"))
    seed = int(c4.number_input("Seed", min_value=0, value=0, key="geo_seed"))
    if not names:
        st.info("Pick at least one dataset.")
        st.stop()

    bar = ProgressBar("Extracting features")
    with model_in_use(ckpt):
        fs = feature_set(ckpt, names, subset, root, cap=cap, seed=seed, device=ctx.device, workers=0, progress=bar)
    bar.done()
    geo = cached_geometry(fs)

    st.subheader("Alignment and uniformity")
    m1, m2, m3 = st.columns(3)
    m1.metric("Alignment L_align", "n/a" if geo["alignment"] is None else f"{geo['alignment']:.4g}",
              help="Eq. 1: log of the mean squared distance between features of the same identity; "
                   "lower = identities more tightly clustered")
    m2.metric("Uniformity −L_uniform", f"{-geo['uniformity']:.4g}",
              help="Eq. 2 negated, as the paper plots it: higher = features spread more uniformly on the sphere")
    m3.metric("images", geo["num_images"])
    if geo["note"]:
        st.caption(geo["note"])
    per_domain = pd.DataFrame([{"domain": k, "−L_uniform": None if v is None else -v,
                                "images": int((fs.domains == fs.domain_names.index(k)).sum())}
                               for k, v in geo["per_domain"].items()])
    st.dataframe(per_domain, hide_index=True, key="geo_per_domain")

    st.subheader("t-SNE")
    t1, t2, t3 = st.columns(3)
    colour = t1.radio("Colour by", ["domain", "identity"], horizontal=True, key="tsne_colour")
    max_points = int(t2.number_input("Max points", min_value=10, value=1500, step=250, key="tsne_points"))
    perplexity = float(t3.number_input("Perplexity", min_value=2.0, value=30.0, step=5.0, key="tsne_perplexity"))
    if len(fs) < 4:
        st.info("t-SNE needs at least 4 images.")
        st.stop()
    bar = ProgressBar("t-SNE")
    rows, emb = cached_tsne(fs, max_points=max_points, perplexity=perplexity, seed=seed, progress=bar)
    bar.done()
    points = pd.DataFrame({
        "x": emb[:, 0], "y": emb[:, 1],
        "domain": [fs.domain_names[d] for d in fs.domains[rows]],
        "identity": fs.identities()[rows],
        "camera": fs.camids[rows],
        "file": [os.path.basename(p) for p in fs.paths[rows]],
        "image": _thumbnails(tuple(fs.paths[rows])),
    })
    many = points[colour].nunique() > 20
    # the same colour per dataset as in the paper figures (analysis.plotting)
    palette = charts.hex_colors(domain_palette(fs.domain_names)) if colour == "domain" else None
    st.altair_chart(charts.embedding_scatter(points, colour, ["domain", "identity", "camera", "file"],
                                             show_legend=not many, palette=palette), width="stretch", key="tsne_chart")
    st.caption(f"{len(rows)} of {len(fs)} images; hover a point to see its image"
               + (f" ({points[colour].nunique()} identities, legend hidden)" if many else ""))
