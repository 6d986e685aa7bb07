"""The app's Altair charts, built from plain DataFrames (Streamlit draws them with Vega-Lite).

Altair ships with Streamlit; Plotly is not a dependency of bau, so the hover images of the t-SNE
use Vega's tooltip: a tooltip field named ``image`` holding a ``data:image/jpeg;base64`` URL is
shown as a picture. The image bytes travel inside the chart, so hovering works offline and
never asks the server for a file.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import altair as alt
import pandas as pd


def loss_curves(long: pd.DataFrame, columns: int = 3) -> alt.FacetChart:
    """One small line chart per loss term (``term``, ``step``, ``value``), each with its own y scale,
    in the order the terms first appear (the log's order: ce, tri, align, uniform, domain, total)."""
    order = list(dict.fromkeys(long["term"]))
    base = alt.Chart(long).mark_line(strokeWidth=1.5).encode(
        x=alt.X("step:Q", title="step"),
        y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        tooltip=["term:N", "step:Q", "epoch:Q", alt.Tooltip("value:Q", format=".4f")],
    ).properties(width=230, height=140)
    return base.facet(facet=alt.Facet("term:N", title=None, sort=order), columns=columns).resolve_scale(y="independent")


def metric_curves(evals: pd.DataFrame, metrics: Sequence[str]) -> alt.Chart:
    """Evaluation metrics (in %) per epoch: colour = metric, dash = target dataset."""
    long = evals.melt(id_vars=["epoch", "target"], value_vars=list(metrics), var_name="metric", value_name="value")
    long["value"] = 100 * long["value"]
    return alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("epoch:Q", axis=alt.Axis(tickMinStep=1)),
        y=alt.Y("value:Q", title="%"),
        color=alt.Color("metric:N", sort=list(metrics)),
        strokeDash=alt.StrokeDash("target:N"),
        tooltip=["target:N", "epoch:Q", "metric:N", alt.Tooltip("value:Q", format=".2f")],
    ).properties(height=260)


def geometry_curves(long: pd.DataFrame) -> alt.Chart:
    """Alignment and uniformity over training (``step``, ``quantity``, ``value``, ``target``): one line per
    quantity, dashed per target; lower is more aligned / more uniform."""
    return alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("step:Q", title="step"),
        y=alt.Y("value:Q", title="lower: more aligned / uniform", scale=alt.Scale(zero=False)),
        color=alt.Color("quantity:N"),
        strokeDash=alt.StrokeDash("target:N"),
        tooltip=["target:N", "epoch:Q", "quantity:N", alt.Tooltip("value:Q", format=".4f")],
    ).properties(height=260)


def _plain(df: pd.DataFrame, columns: dict) -> pd.DataFrame:
    """Copy of ``df`` with the given columns renamed to plain field names.

    Column names like ``folder:synth_c/mAP`` or ``data.aug_prob`` mean something else to
    Vega-Lite (a type suffix, a nested field), so charts encode plain names and show the real
    ones as titles.
    """
    return df[list(columns)].rename(columns=columns)


def lines_by(df: pd.DataFrame, x: str, y: str, color: str, y_title: Optional[str] = None,
             points: bool = False) -> alt.Chart:
    """A line per value of ``color`` (e.g. one per run)."""
    data = _plain(df, {x: "x", y: "y", color: "series"})
    return alt.Chart(data).mark_line(point=points, strokeWidth=1.5).encode(
        x=alt.X("x:Q", title=x),
        y=alt.Y("y:Q", title=y_title or y, scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title=color, legend=alt.Legend(orient="right", labelLimit=360)),
        tooltip=[alt.Tooltip("series:N", title=color), alt.Tooltip("x:Q", title=x),
                 alt.Tooltip("y:Q", title=y_title or y, format=".4f")],
    ).properties(height=280)


def sweep_chart(points: pd.DataFrame, x: str, y: str, color: Optional[str]) -> alt.Chart:
    """A sweep's metric against one label (e.g. mAP vs aug_prob), one line per other label (e.g. method).

    ``points`` is ``app.runs.mean_over_seeds``: a point is the mean over seeds, the bar its std."""
    data = _plain(points, {x: "x", "mean": "y", "std": "std", "n": "n", **({color: "series"} if color else {})})
    data["low"], data["high"] = data["y"] - data["std"].fillna(0), data["y"] + data["std"].fillna(0)
    x_type = "x:Q" if pd.api.types.is_numeric_dtype(data["x"]) else "x:N"
    enc = dict(
        x=alt.X(x_type, title=x),
        y=alt.Y("y:Q", title=f"{y} (mean over seeds)", scale=alt.Scale(zero=False)),
        tooltip=[alt.Tooltip(x_type, title=x)] + ([alt.Tooltip("series:N", title=color)] if color else [])
        + [alt.Tooltip("y:Q", title=y, format=".4f"), alt.Tooltip("std:Q", format=".4f"), "n:Q"],
    )
    if color:
        enc["color"] = alt.Color("series:N", title=color)
    line = alt.Chart(data).mark_line(point=alt.OverlayMarkDef(size=60)).encode(**enc)
    bars = alt.Chart(data).mark_errorbar().encode(
        x=alt.X(x_type), y=alt.Y("low:Q", title=""), y2="high:Q", **({"color": enc["color"]} if color else {}))
    return (bars + line).properties(height=300)


def embedding_scatter(points: pd.DataFrame, color: str, tooltip: List[str], show_legend: bool = True,
                      palette: Optional[Dict[str, str]] = None,
                      limits: Optional[Sequence[Sequence[float]]] = None) -> alt.Chart:
    """t-SNE scatter (``x``, ``y``), coloured by ``color``; an ``image`` column becomes the hover picture.

    ``palette`` fixes the colour of each value (``{value: "#rrggbb"}``, e.g. the figures' domain
    colours); otherwise a 20-colour scheme, since identities outnumber the default 10 colours.
    ``limits`` ``((xmin, xmax), (ymin, ymax))`` fixes the axes (side-by-side panels share them).
    """
    tips = (["image"] if "image" in points.columns else []) + tooltip
    scale = alt.Scale(domain=list(palette), range=list(palette.values())) if palette else alt.Scale(scheme="tableau20")
    # aria=False: the screen-reader label of a point would otherwise spell out its image data URL
    return alt.Chart(points).mark_circle(size=40, opacity=0.8, aria=False).encode(
        x=alt.X("x:Q", axis=None, scale=_axis_scale(limits[0] if limits else None)),
        y=alt.Y("y:Q", axis=None, scale=_axis_scale(limits[1] if limits else None)),
        color=alt.Color(f"{color}:N", scale=scale,
                        legend=alt.Legend(orient="right", labelLimit=300) if show_legend else None),
        tooltip=tips,
    ).properties(
        height=560,
        # SVG marks (not one canvas): each point is an element the browser test can hover.
        usermeta={"embedOptions": {"renderer": "svg"}},
    ).interactive()


def _axis_scale(limits: Optional[Sequence[float]]) -> alt.Scale:
    if limits is None:
        return alt.Scale(zero=False, nice=False, padding=12)
    return alt.Scale(domain=[float(limits[0]), float(limits[1])], zero=False, nice=False)


def cmc_chart(curves: pd.DataFrame) -> alt.Chart:
    """CMC curves on one chart: ``curve`` (one per model and domain), ``rank``, ``matching rate (%)``."""
    return alt.Chart(curves).mark_line(point=True).encode(
        x=alt.X("rank:Q", scale=alt.Scale(domainMin=1)),
        y=alt.Y("matching rate (%):Q", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("curve:N", legend=alt.Legend(orient="bottom", labelLimit=400)),
        tooltip=["curve", "rank", "matching rate (%)"],
    ).properties(height=320)


def hex_colors(palette: Dict[str, Sequence[float]]) -> Dict[str, str]:
    """``{name: (r, g, b) in [0, 1]}`` -> ``{name: "#rrggbb"}``."""
    return {k: "#" + "".join(f"{round(255 * c):02x}" for c in rgb[:3]) for k, rgb in palette.items()}
