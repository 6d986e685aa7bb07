"""Geometry page: alignment / uniformity (Eqs. 1-2), per domain, and a t-SNE of a checkpoint's features,
or of a feature file of any model (an ``.npz`` under the runs folder, docs/feature_files.md), for which
it also shows CMC / mAP per domain: the numbers of ``bau analyze`` (``analysis.feature_report``); or two or
more feature files of the same images side by side (``app.compare``)."""
from __future__ import annotations

import os
from typing import Tuple

import pandas as pd
import streamlit as st

from analysis.feature_report import domain_summary
from analysis.plotting import domain_palette
from app import charts
from app.embeddings import cached_geometry, cached_retrieval, cached_tsne
from app.images import thumbnail_data_url
from app.paths import feature_files, resolve_inside
from app.session import ProgressBar, context, model_in_use, show_errors
from bau.evaluation.metrics import METRIC_KEYS
from bau.runs.checkpoint import checkpoint_identity
from bau.runs.features import FeatureSet, feature_set, read_feature_file

SUBSETS = ["query", "gallery", "test", "train", "all"]
SOURCES = ["checkpoint", "feature file (.npz)", "compare feature files"]


@st.cache_data(show_spinner=False, max_entries=8)
def _thumbnails(paths: tuple) -> list:
    return [thumbnail_data_url(p) for p in paths]


@st.cache_resource(show_spinner=False, max_entries=2)
def _read(path: str, mtime_ns: int, size: int) -> FeatureSet:
    """A feature file, read and validated once per version of the file (shared by the sessions)."""
    return read_feature_file(path)


def checkpoint_features(ctx) -> Tuple[FeatureSet, int]:
    """``(features, seed)``: the sidebar checkpoint's features on the datasets, split and sample chosen here."""
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
    return fs, seed


def file_features(ctx) -> Tuple[FeatureSet, int]:
    """``(features, seed 0)``: a feature file picked among the ``.npz`` files under the runs folder
    (nothing outside it is opened)."""
    files = feature_files(ctx.runs_root)
    if not files:
        st.info(f"No `.npz` file under the runs folder `{ctx.runs_root}`. Write one with `bau extract`, or from "
                f"any re-ID model as docs/feature_files.md shows.")
        st.stop()
    chosen = st.selectbox("Feature file (under the runs folder)", files, key="geo_file")
    path = resolve_inside(ctx.runs_root, chosen, "feature file")
    ident = checkpoint_identity(path)
    fs = _read(path, ident["mtime_ns"], ident["size"])
    st.caption(f"feature file `{chosen}` · {len(fs)} images · {fs.features.shape[1]}-d features · "
               f"{len(fs.domain_names)} domain{'s' if len(fs.domain_names) != 1 else ''} · "
               "format: docs/feature_files.md")
    return fs, 0


ctx = context()
st.title("Geometry")
with show_errors():
    source = st.radio("Features of", SOURCES, horizontal=True, key="geo_source",
                      help="the sidebar's checkpoint, a feature file (.npz) of any model under the runs folder, or "
                           "several feature files of the same images side by side")
    if source == SOURCES[2]:
        from app.compare import render_comparison

        render_comparison(ctx)
        st.stop()
    from_file = source == SOURCES[1]
    fs, seed = file_features(ctx) if from_file else checkpoint_features(ctx)
    geo = cached_geometry(fs)

    st.subheader("Alignment and uniformity")
    m1, m2, m3 = st.columns(3)
    m1.metric("Alignment L_align", "n/a" if geo["alignment"] is None else f"{geo['alignment']:.4g}",
              help="Eq. 1: log of the mean squared distance between features of the same identity (a pid of one "
                   "domain; negative pids are distractors); lower = identities more tightly clustered")
    m2.metric("Uniformity −L_uniform", f"{-geo['uniformity']:.4g}",
              help="Eq. 2 negated, as the paper plots it: higher = features spread more uniformly on the sphere")
    m3.metric("images", geo["num_images"])
    if geo["note"]:
        st.caption(geo["note"])
    per_domain = pd.DataFrame([{**row, "−L_uniform": None if geo["per_domain"].get(row["domain"]) is None
                                else -geo["per_domain"][row["domain"]]} for row in domain_summary(fs)])
    st.dataframe(per_domain, hide_index=True, key="geo_per_domain")

    if from_file:
        st.subheader("Retrieval")
        ret = cached_retrieval(fs)
        if ret["per_domain"]:
            table = pd.DataFrame([{"domain": name, **{k: 100 * m[k] for k in METRIC_KEYS},
                                   "queries": m["num_query"], "gallery": m["num_gallery"]}
                                  for name, m in ret["per_domain"].items()])
            st.dataframe(table, hide_index=True, key="geo_retrieval")
            st.caption("In %, each domain's queries against its gallery (Market-1501 protocol: the query's identity "
                       "seen by the query's camera is left out)")
        for name, why in ret["skipped"].items():
            st.caption(f"{name}: not evaluated ({why})")

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
    })
    if not from_file:  # a feature file's images may live anywhere, or nowhere on this machine
        points["image"] = _thumbnails(tuple(fs.paths[rows]))
    many = points[colour].nunique() > 20
    # the same colour per dataset as in the paper figures (analysis.plotting)
    palette = charts.hex_colors(domain_palette(fs.domain_names)) if colour == "domain" else None
    st.altair_chart(charts.embedding_scatter(points, colour, ["domain", "identity", "camera", "file"],
                                             show_legend=not many, palette=palette), width="stretch", key="tsne_chart")
    st.caption(f"{len(rows)} of {len(fs)} images" + ("" if from_file else "; hover a point to see its image")
               + (f" ({points[colour].nunique()} identities, legend hidden)" if many else ""))
