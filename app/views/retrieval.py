"""Retrieval page: a query's ranked gallery (true matches marked, distances shown) and Grad-CAM overlays."""
from __future__ import annotations

import os

import numpy as np
import streamlit as st

from analysis.galleries import retrieval_ranking
from app.images import MATCH, MISMATCH, framed, load_rgb
from app.session import ProgressBar, context, model_in_use, show_errors
from bau.core.errors import BauError
from bau.evaluation.metrics import evaluate_ranking, pairwise_distance
from bau.runs.checkpoint import load_model
from bau.runs.features import feature_set

SIZE = (160, 80)
BORDER = 4

ctx = context()
st.title("Retrieval")
with show_errors():
    ckpt = ctx.require_checkpoint()
    data_cfg = ctx.run_config().get("data", {})
    known = list(dict.fromkeys(list(data_cfg.get("targets", [])) + list(data_cfg.get("sources", []))))
    root = ctx.data_root()
    c1, c2, c3 = st.columns([4, 1, 1])
    target = c1.selectbox("Dataset", known, key="ret_dataset")
    split = int(c2.number_input("Split", min_value=0, max_value=max(0, int(data_cfg.get("num_splits", 10)) - 1),
                                value=0, key="ret_split", help="query/gallery split of the small datasets"))
    top_k = int(c3.number_input("Top k", min_value=1, max_value=100, value=10, key="ret_topk"))

    bar = ProgressBar("Extracting query and gallery features")
    with model_in_use(ckpt):
        fs = feature_set(ckpt, [target], "test", root, split=split, device=ctx.device, workers=0, progress=bar)
    bar.done()
    q_rows, g_rows = fs.subset("query"), fs.subset("gallery")
    if len(q_rows) == 0 or len(g_rows) == 0:
        raise BauError(f"dataset {target}: needs both query and gallery images (split {split})")

    qi = st.selectbox(
        "Query", range(len(q_rows)), key="ret_query",
        format_func=lambda i: f"#{i} · id {fs.pids[q_rows[i]]} · cam {fs.camids[q_rows[i]]} · "
                              f"{os.path.basename(fs.paths[q_rows[i]])}")
    q = q_rows[qi]
    g_pids, g_cams = fs.pids[g_rows], fs.camids[g_rows]
    dist = pairwise_distance(fs.features[[q]], fs.features[g_rows])[0]
    ranking = retrieval_ranking(dist, fs.pids[q], fs.camids[q], g_pids, g_cams, topk=top_k)
    try:  # this query's own AP and first-match rank, exactly as the evaluation scores it
        scores = evaluate_ranking(dist[None], fs.pids[[q]], g_pids, fs.camids[[q]], g_cams, max_rank=len(g_rows))
        summary = (f"AP of this query {100 * scores['mAP']:.1f}% · first true match at rank "
                   f"{int(np.argmax(scores['cmc'] > 0)) + 1}")
    except ValueError:
        summary = "this query has no true match in the gallery (another camera)"

    st.caption(f"{len(q_rows)} queries · {len(g_rows)} gallery images · distance = squared Euclidean between "
               f"L2-normalised features (2 − 2 cos) · {summary} · frames: green ✓ same identity, red ✗ another "
               f"identity; the query's identity seen by the query's camera is left out, as in the metric")
    left, right = st.columns([1, 6])
    left.image(framed(load_rgb(fs.paths[q], SIZE), (40, 40, 40), SIZE, BORDER), caption=f"query · id {fs.pids[q]}",
               width="stretch")
    per_row = 10
    ranked = list(range(len(ranking.indices)))
    for start in range(0, len(ranked), per_row):
        cols = right.columns(per_row)
        for col, j in zip(cols, ranked[start:start + per_row]):
            g = g_rows[ranking.indices[j]]
            match = bool(ranking.matches[j])
            label = f"{'✓' if match else '✗'} #{j + 1} · id {fs.pids[g]} · d {ranking.distances[j]:.3g}"
            col.image(framed(load_rgb(fs.paths[g], SIZE), MATCH if match else MISMATCH, SIZE, BORDER), caption=label,
                      width="stretch")

    st.subheader("Grad-CAM")
    st.caption("Which regions make up the query's embedding, and which make the query and a gallery image "
               "match (the score is the feature's dot product with the other image's feature).")
    pick = st.selectbox("Gallery image", ranked, key="ret_gradcam_pick",
                        format_func=lambda j: f"rank {j + 1} · id {fs.pids[g_rows[ranking.indices[j]]]} · "
                                              f"{'same identity' if ranking.matches[j] else 'another identity'}")
    if pick is not None:
        from analysis.gradcam import MIN_CELLS, cam_layer, gradcam_map, load_test_image, overlay

        g = g_rows[ranking.indices[pick]]
        with st.spinner("Grad-CAM"), model_in_use(ckpt):
            model, cfg = load_model(ckpt, ctx.device)
            q_t, q_rgb = load_test_image(str(fs.paths[q]), cfg.data.height, cfg.data.width)
            g_t, g_rgb = load_test_image(str(fs.paths[g]), cfg.data.height, cfg.data.width)
            g_feat, q_feat = fs.features[g], fs.features[q]
            layer = cam_layer(model, cfg.data.height, cfg.data.width)  # Figure 2's rule, the same layer
            at = layer.module
            panels = [
                (q_rgb, "query"),
                (overlay(q_rgb, gradcam_map(model, q_t, target_layer=at)), "query: own embedding"),
                (overlay(q_rgb, gradcam_map(model, q_t, reference=g_feat, target_layer=at)), "query → gallery"),
                (overlay(g_rgb, gradcam_map(model, g_t, reference=q_feat, target_layer=at)), "gallery → query"),
                (g_rgb, "gallery"),
            ]
        cols = st.columns(len(panels) + 3)
        for col, (img, caption) in zip(cols, panels):
            col.image(framed(img, (255, 255, 255), SIZE, border=1), caption=caption, width="stretch")
        st.caption(f"Computed at {layer.describe()}: the deepest layer with at least {MIN_CELLS[0]}x{MIN_CELLS[1]} "
                   f"cells at {cfg.data.height}x{cfg.data.width}, upsampled to the image.")
