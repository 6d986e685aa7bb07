"""Augmentations page: original vs augmented views of an image at probability p, and their weights w (Eq. 4)."""
from __future__ import annotations

import os

import numpy as np
import streamlit as st

from app.images import framed
from app.session import context, model_in_use, show_errors
from bau.core.errors import BauError
from bau.data.datasets import build_dataset
from bau.runs.checkpoint import load_model
from bau.runs.weight_scores import batch_with, weight_scores

SIZE = (160, 80)


@st.cache_data(show_spinner=False, max_entries=16)
def _train_items(name: str, root: str, split_seed: int, num_splits: int) -> list:
    ds = build_dataset(name, root, split=0, split_seed=split_seed, num_splits=num_splits)
    return [tuple(it[:3]) for it in ds.train]


def _row(images: np.ndarray, captions: list, border=(255, 255, 255), per_row: int = 12) -> None:
    for start in range(0, len(images), per_row):
        cols = st.columns(per_row)
        for col, img, cap in zip(cols, images[start:start + per_row], captions[start:start + per_row]):
            col.image(framed(img, border, SIZE, border=1), caption=cap, width="stretch")


ctx = context()
st.title("Augmentations")
with show_errors():
    ckpt = ctx.require_checkpoint()
    data_cfg = ctx.run_config().get("data", {})
    loss_cfg = ctx.run_config().get("loss", {})
    root = ctx.data_root()
    known = list(dict.fromkeys(list(data_cfg.get("sources", [])) + list(data_cfg.get("targets", []))))
    c1, c2, c3 = st.columns([3, 2, 1])
    name = c1.selectbox("Dataset (training images)", known, key="aug_dataset")
    items = _train_items(name, root, int(data_cfg.get("split_seed", 0)), int(data_cfg.get("num_splits", 10)))
    if not items:
        raise BauError(f"dataset {name}: no training images under {root}")
    index = c2.selectbox("Image", range(len(items)), key="aug_image",
                         format_func=lambda i: f"#{i} · id {items[i][1]} · cam {items[i][2]} · "
                                               f"{os.path.basename(items[i][0])}")
    seed = int(c3.number_input("Seed", min_value=0, value=0, key="aug_seed"))
    d1, d2, d3, d4, d5 = st.columns(5)
    p = d1.slider("p (augmentation probability)", 0.0, 1.0, float(data_cfg.get("aug_prob", 0.5)), 0.05, key="aug_p")
    views = int(d2.number_input("Augmented views", min_value=1, max_value=24, value=8, key="aug_views"))
    k = int(d3.number_input("k (Eq. 4)", min_value=1, value=int(loss_cfg.get("k", 10)), key="aug_k"))
    num_ids = int(d4.number_input("P identities", min_value=2, value=min(int(data_cfg.get("num_ids", 16)), 16),
                                  key="aug_P"))
    num_inst = int(d5.number_input("K images each", min_value=1, value=min(int(data_cfg.get("num_instances", 4)), 4),
                                   key="aug_K"))

    with st.spinner("Drawing views and computing weights"), model_in_use(ckpt):
        model, cfg = load_model(ckpt, ctx.device)
        batch = batch_with([it[1] for it in items], index, num_ids, num_inst, seed)
        ws = weight_scores(model, cfg, items, batch, aug_prob=p, k=k, num_views=views, seed=seed)

    st.subheader("The chosen image")
    st.caption(f"Each pair is one draw of the run's two-view transform at p = {p:.2f} (RandAugment, ColorJitter, "
               f"Random Erasing each with probability p); w is the Jaccard similarity of the k-reciprocal "
               f"neighbours of the augmented and the original view inside a {num_ids}×{num_inst} batch.")
    order = np.argsort(ws.view_weights, kind="stable")
    _row(ws.view_originals[order], ["original"] * len(order))
    _row(ws.view_augmented[order], [f"w = {ws.view_weights[j]:.2f}" for j in order])

    st.subheader("The whole batch, by weight")
    st.caption("Top: original views; bottom: their augmented views with w[i, i], lowest weight first "
               "(Fig. 5b). Low weights mark augmentations that no longer look like their original.")
    order = np.argsort(ws.weights, kind="stable")
    _row(ws.originals[order], [f"id {ws.pids[j]}" + (" (chosen)" if j == 0 else "") for j in order])
    _row(ws.augmented[order], [f"w = {ws.weights[j]:.2f}" for j in order])
    st.caption("Features in eval mode (BatchNorm running statistics); training computes w with batch statistics.")
