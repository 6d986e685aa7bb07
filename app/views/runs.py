"""Runs page: every run under the runs folder, one run in detail, and selected runs side by side."""
from __future__ import annotations

import os

import pandas as pd
import streamlit as st
import yaml

from app import charts
from app.runs import (
    config_differences,
    downsample_steps,
    geometry_long,
    log_frames,
    long_steps,
    loss_terms,
    mean_over_seeds,
    runs_table,
    short_names,
    sweep_state_table,
)
from app.session import context, show_errors
from bau.evaluation.metrics import METRIC_KEYS

ctx = context()
st.title("Runs")

if not ctx.runs:
    st.info(f"No run folders under `{ctx.runs_root}` yet. A run folder is what `bau train --out` or "
            f"`bau sweep` writes (config.yaml + log.jsonl + checkpoints).")
    st.stop()

st.dataframe(runs_table(ctx.runs), hide_index=True, width="stretch", key="runs_table")

detail, compare = st.tabs(["Selected run", "Compare runs"])

with detail, show_errors():
    run = ctx.run
    st.subheader(run.name)
    metrics = run.final_metrics()
    cols = st.columns(max(1, min(4, len(metrics))) if metrics else 1)
    for i, (k, v) in enumerate(list(metrics.items())[:4]):
        cols[i].metric(k, f"{100 * v:.1f}%")
    st.caption(f"status: {run.status} · checkpoints: {', '.join(run.checkpoints()) or 'none'}"
               + (f" · sweep {run.sweep}: " + ", ".join(f"{k}={v}" for k, v in run.labels.items())
                  if run.sweep else ""))
    sweep_dir = os.path.join(ctx.runs_root, run.sweep) if run.sweep else None
    if sweep_dir and os.path.isfile(os.path.join(sweep_dir, "sweep.yaml")):
        with st.expander(f"Sweep {run.sweep}: every run's state (as `bau sweep --status`)"):
            st.dataframe(sweep_state_table(sweep_dir), hide_index=True, width="stretch", key="sweep_states")
    steps, evals = log_frames(run)
    st.markdown("**Training curves** (each loss term of Eq. 9 as logged; window means when long)")
    if steps.empty:
        st.info("No step records in log.jsonl yet.")
    else:
        terms = loss_terms(steps)
        st.altair_chart(charts.loss_curves(long_steps(downsample_steps(steps), terms)))
    st.markdown("**Evaluation per epoch**")
    if evals.empty:
        st.info("No evaluation records in log.jsonl yet.")
    else:
        shown = st.multiselect("Metrics", list(METRIC_KEYS), default=["mAP", "rank1"], key="detail_metrics")
        geometry = geometry_long(evals)
        left, right = st.columns(2) if not geometry.empty else (st.container(), None)
        if shown:
            left.altair_chart(charts.metric_curves(evals, shown), width="stretch")
        if right is not None:
            right.markdown("Geometry over training: alignment (Eq. 1) and uniformity (Eq. 2) of the features "
                           "at each evaluation")
            right.altair_chart(charts.geometry_curves(geometry), width="stretch")
        table = evals[["epoch", "step", "target", *METRIC_KEYS]].copy()
        table[list(METRIC_KEYS)] = (100 * table[list(METRIC_KEYS)]).round(2)
        st.dataframe(table, hide_index=True, width="stretch")
    with st.expander("Config (config.yaml)"):
        st.code(yaml.safe_dump(run.config_dict(), sort_keys=False), language="yaml")

with compare, show_errors():
    names = [r.name for r in ctx.runs]
    same_sweep = [r.name for r in ctx.runs if ctx.run.sweep and r.sweep == ctx.run.sweep]
    if st.session_state.get("_compare_for") != ctx.run.name:
        # a new focus run brings its sweep (or itself) into the comparison
        st.session_state["compare_runs"] = same_sweep or [ctx.run.name]
        st.session_state["_compare_for"] = ctx.run.name
    chosen = st.multiselect("Runs to compare", names, key="compare_runs")
    picked = [r for r in ctx.runs if r.name in chosen]
    if not picked:
        st.info("Pick runs to compare.")
    else:
        table = runs_table(picked).drop(columns=["checkpoints"])
        st.dataframe(table, hide_index=True, width="stretch")

        labels = sorted({k for r in picked for k in r.labels})
        metric_cols = [c for c in table.columns if "/" in c]
        if labels and metric_cols:
            st.markdown("**Sweep view** (a metric against one label, a line per another)")
            c1, c2, c3 = st.columns(3)
            numeric = [c for c in labels if pd.api.types.is_numeric_dtype(table[c])]
            x = c1.selectbox("x", labels, index=labels.index(numeric[0]) if numeric else 0, key="sweep_x")
            others = [c for c in labels if c != x]
            color = c2.selectbox("lines", ["(none)"] + others, index=1 if others else 0, key="sweep_color")
            y = c3.selectbox("metric", metric_cols, key="sweep_y")
            lines = None if color == "(none)" else color
            with show_errors():
                points = mean_over_seeds(table, x, y, lines)
                st.altair_chart(charts.sweep_chart(points, x, y, lines), width="stretch")
                if "seed" in table.columns and "seed" not in (x, lines):
                    st.caption("Each point is the mean over the runs' seeds; the bar is the standard deviation.")

        label = short_names([r.name for r in picked])
        logs = {label[r.name]: log_frames(r) for r in picked}
        all_terms = list(dict.fromkeys(t for s, _ in logs.values() if not s.empty for t in loss_terms(s)))
        c1, c2 = st.columns(2)
        term = c1.selectbox("Loss term", all_terms, index=all_terms.index("total") if "total" in all_terms else 0,
                            key="compare_term") if all_terms else None
        metric = c2.selectbox("Evaluation metric", list(METRIC_KEYS), key="compare_metric")
        frames = [downsample_steps(s)[["step", term]].assign(run=n) for n, (s, _) in logs.items()
                  if term and not s.empty and term in s.columns]
        if frames:
            st.altair_chart(charts.lines_by(pd.concat(frames), "step", term, "run"), width="stretch")
        evals = [e.assign(run=n) for n, (_, e) in logs.items() if not e.empty]
        if evals:
            ev = pd.concat(evals)
            many_targets = ev["target"].nunique() > 1
            ev = ev.assign(series=ev["run"] + (" → " + ev["target"] if many_targets else ""), value=100 * ev[metric])
            st.altair_chart(charts.lines_by(ev, "epoch", "value", "series", y_title=f"{metric} (%)", points=True),
                            width="stretch")
        if len(picked) > 1:
            diff = config_differences({r.name: r.config_dict() for r in picked})
            st.markdown("**Config options that differ**")
            if diff.empty:
                st.caption("The configs are identical.")
            else:
                st.dataframe(diff, hide_index=True, width="stretch")
