"""The Geometry page's comparison: two or more feature files of the same images, side by side.

The numbers and pictures of ``bau analyze`` with several files (``analysis.feature_compare``): one
table (alignment, uniformity, -L_uniform and mAP / Rank-1 per domain, a row per model), the CMC
curves of every model on one chart, and one t-SNE per model of the same rows with the same axes
limits. Geometry, retrieval and t-SNE come from each file's cache (``app.embeddings``).
"""
from __future__ import annotations

from typing import List

import pandas as pd
import streamlit as st

from analysis.feature_compare import check_same_images, cmc_curves, comparison_table, model_names, shared_limits
from analysis.plotting import domain_palette
from app import charts
from app.embeddings import cached_geometry, cached_retrieval, cached_tsne
from app.paths import feature_files, resolve_inside
from app.session import ProgressBar
from bau.runs.checkpoint import checkpoint_identity
from bau.runs.features import FeatureSet, read_feature_file


@st.cache_resource(show_spinner=False, max_entries=8)
def _read(path: str, mtime_ns: int, size: int) -> FeatureSet:
    """A feature file, read and validated once per version of the file (shared by the sessions)."""
    return read_feature_file(path)


def _open(runs_root: str, chosen: List[str]) -> List[FeatureSet]:
    sets = []
    for rel in chosen:
        path = resolve_inside(runs_root, rel, "feature file")
        ident = checkpoint_identity(path)
        sets.append(_read(path, ident["mtime_ns"], ident["size"]))
    return sets


def render_comparison(ctx) -> None:
    """Pick feature files under the runs folder and show them side by side (``st.stop`` until two are picked)."""
    files = feature_files(ctx.runs_root)
    chosen = st.multiselect("Feature files of the same images (one per model)", files, key="cmp_files",
                            help="e.g. `bau extract` of two checkpoints, or of a torchreid model and a BAU checkpoint, "
                                 "on the same dataset")
    if len(chosen) < 2:
        st.info("Pick two or more feature files (`.npz` under the runs folder) of the same images.")
        st.stop()
    sets = _open(ctx.runs_root, chosen)
    check_same_images(sets, chosen)
    names = model_names(chosen)
    domain_names = list(sets[0].domain_names)
    numbers = {"models": [{"name": n, "dimension": int(fs.features.shape[1]), "geometry": cached_geometry(fs),
                           "retrieval": cached_retrieval(fs), "cmc": cmc_curves(fs)} for fs, n in zip(sets, names)]}
    st.caption(f"{len(sets)} models on the same {len(sets[0])} images · features L2-normalised")

    st.subheader("Alignment and uniformity")
    header, rows = comparison_table(numbers, domain_names)
    st.dataframe(pd.DataFrame(rows, columns=header), hide_index=True, key="cmp_table")
    st.caption("L_align (Eq. 1), L_uniform (Eq. 2): lower is better; −L_uniform per domain: higher = more uniform; "
               "mAP and Rank-1 in %, Market-1501 protocol")

    curves = pd.DataFrame([{"curve": f"{m['name']} · {d}", "rank": r + 1, "matching rate (%)": 100 * v}
                           for m in numbers["models"] for d, c in m["cmc"].items() for r, v in enumerate(c)])
    if len(curves):
        st.subheader("CMC")
        st.altair_chart(charts.cmc_chart(curves), width="stretch", key="cmp_cmc")

    st.subheader("t-SNE")
    t1, t2 = st.columns(2)
    max_points = int(t1.number_input("Max points", min_value=10, value=1500, step=250, key="cmp_points"))
    perplexity = float(t2.number_input("Perplexity", min_value=2.0, value=30.0, step=5.0, key="cmp_perplexity"))
    if len(sets[0]) < 4:
        st.info("t-SNE needs at least 4 images.")
        st.stop()
    embs = []
    for fs, n in zip(sets, names):
        bar = ProgressBar(f"t-SNE of {n}")
        rows_, emb = cached_tsne(fs, max_points=max_points, perplexity=perplexity, seed=0, progress=bar)
        bar.done()
        embs.append(emb)
    limits = shared_limits(embs)
    palette = charts.hex_colors(domain_palette(domain_names))
    for col, fs, n, emb in zip(st.columns(len(sets)), sets, names, embs):
        points = pd.DataFrame({"x": emb[:, 0], "y": emb[:, 1], "domain": [domain_names[d] for d in fs.domains[rows_]],
                               "identity": fs.identities()[rows_], "model": n})
        col.markdown(f"**{n}**")
        col.altair_chart(charts.embedding_scatter(points, "domain", ["domain", "identity", "model"], palette=palette,
                                                  limits=limits), width="stretch", key=f"cmp_tsne_{n}")
    st.caption(f"The same {len(rows_)} images in every panel (seeded sample), coloured by domain; every panel has "
               f"the same axes limits")
