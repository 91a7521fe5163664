"""Plotly figures of a :class:`covid_core.eda.DataSummary` (no streamlit here)."""

from __future__ import annotations

import html
from statistics import NormalDist

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .eda import QUANTILES, DataSummary

STAT_LABELS = {"width": "width (px)", "height": "height (px)", "aspect": "aspect ratio (width / height)",
               "mean": "mean intensity", "std": "contrast (intensity std)"}
_LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=360)
# A legend in rows along the bottom of the figure: at the right it took a third of a half-width chart (so the x
# labels were turned and cut); placed on the plot's own scale (y=-0.25) it covered the axis labels.
_LEGEND_BELOW = dict(orientation="h", yref="container", yanchor="bottom", y=0, xanchor="left", x=0,
                     traceorder="normal")


def chart_text(text) -> str:
    """A name the data set chose (a source, a CSV column), as plotly shows it: its characters, not a link or another
    of the few HTML tags plotly draws in labels (it decodes these entities back)."""
    return html.escape(str(text), quote=False)


def class_balance(summary: DataSummary) -> go.Figure:
    counts = summary.counts()
    fig = px.bar(counts, x="finding", y="images", color="split", barmode="group", text="images",
                 title="Images per class and split")
    # Counts level above the bars: inside a half-width column plotly shrank and turned them sideways.
    fig.update_traces(textposition="outside", textangle=0, cliponaxis=False)
    return fig.update_layout(**_LAYOUT, legend=_LEGEND_BELOW)


COMPLETENESS_LABELS = {"filled": "filled", "not_applicable": "not applicable (Normal film)",
                       "missing": "missing (applies, but empty)"}
_COMPLETENESS_COLOURS = {"filled": "#4C78A8", "not_applicable": "#BAB0AC", "missing": "#E45756"}


def missing_values(summary: DataSummary) -> go.Figure:
    """Horizontal stacked bars, one per metadata column (full name on the y axis, top to bottom in the CSV's
    order): rows filled, not applicable (a pneumonia sub-category on a Normal film) and missing (empty where
    the column applies)."""
    m = summary.missing
    fig = go.Figure()
    for part, label in COMPLETENESS_LABELS.items():
        if part in m:
            fig.add_trace(go.Bar(y=m["column"].map(chart_text), x=m[part], name=label, orientation="h",
                                 text=[n if n else "" for n in m[part]],
                                 marker_color=_COMPLETENESS_COLOURS[part], insidetextanchor="middle",
                                 hovertemplate="%{y}: %{x} rows " + label + "<extra></extra>"))
    fig.update_layout(barmode="stack", title="Metadata completeness", xaxis_title="rows",
                      yaxis=dict(autorange="reversed", automargin=True), legend=_LEGEND_BELOW,
                      **{**_LAYOUT, "height": 140 + 36 * len(m)})
    return fig


def source_class(summary: DataSummary) -> go.Figure:
    """Stacked bars: images per class, coloured by source, one panel per split (train left of test)."""
    counts = summary.source_counts()
    counts["source"] = counts["source"].map(chart_text)
    splits = [s for s in ("train", "val", "test") if s in set(counts["split"])]
    # Each split on its own scale (TEST is a sixth of TRAIN), numbers only on segments tall enough to read;
    # hover and the page's table give every count.
    tallest = counts.groupby(["split", "finding"])["images"].sum().groupby("split").max()
    counts["label"] = [str(n) if n >= 0.05 * tallest[s] else "" for n, s in zip(counts["images"], counts["split"])]
    fig = px.bar(counts, x="finding", y="images", color="source", facet_col="split", text="label",
                 category_orders={"split": splits, "finding": sorted(counts["finding"].unique()),
                                  "source": sorted(counts["source"].unique())},
                 color_discrete_sequence=px.colors.qualitative.Safe, hover_data={"label": False},
                 facet_col_spacing=0.06, title="Images per class and source")
    fig.update_traces(textposition="inside", textangle=0)
    fig.update_yaxes(matches=None, showticklabels=True)
    fig.for_each_annotation(lambda a: a.update(text=a.text.replace("split=", "").upper()))
    return fig.update_layout(barmode="stack", **_LAYOUT)


def distribution(summary: DataSummary, column: str, kind: str = "histogram") -> go.Figure:
    """Per-class distribution of one per-image statistic: 'histogram' or 'violin'."""
    stats = summary.stats[summary.stats["error"] == ""]
    label = STAT_LABELS.get(column, column)
    if kind == "violin":
        fig = px.violin(stats, x="finding", y=column, color="finding", box=True, points=False,
                        labels={column: label}, title=f"{label} per class")
    else:
        fig = px.histogram(stats, x=column, color="finding", barmode="overlay", opacity=0.6, nbins=50,
                           histnorm="probability density", labels={column: label}, title=f"{label} per class")
    return fig.update_layout(**_LAYOUT)


def qq_plot(summary: DataSummary) -> go.Figure:
    """Pooled pixel-intensity quantiles per class against a normal distribution's quantiles."""
    z = np.array([NormalDist().inv_cdf(q) for q in QUANTILES])
    fig = go.Figure()
    for cls, q in sorted(summary.quantiles.items()):
        fig.add_trace(go.Scatter(x=z, y=q, mode="markers", name=cls, marker=dict(size=5)))
        # the reference line of a normal distribution with this class's median and IQR-based spread
        q25, q50, q75 = np.interp([0.25, 0.5, 0.75], QUANTILES, q)
        sigma = (q75 - q25) / 1.349
        fig.add_trace(go.Scatter(x=z, y=q50 + sigma * z, mode="lines", line=dict(dash="dot", width=1),
                                 name=f"{cls} normal ref.", showlegend=False))
    fig.update_layout(title="Q-Q plot of pixel intensities vs a normal distribution",
                      xaxis_title="normal quantile", yaxis_title="intensity quantile", **_LAYOUT)
    return fig


def mean_images(summary: DataSummary) -> go.Figure:
    """Heatmaps of the mean image per class (same colour scale), plus each minus the overall mean."""
    classes = sorted(summary.mean_images)
    if not classes:
        return go.Figure()
    overall = np.mean([summary.mean_images[c] for c in classes], axis=0)
    fig = make_subplots(rows=2, cols=len(classes), horizontal_spacing=0.02, vertical_spacing=0.08,
                        subplot_titles=[f"mean {c}" for c in classes] + [f"{c} - overall" for c in classes])
    for j, c in enumerate(classes, start=1):
        fig.add_trace(go.Heatmap(z=summary.mean_images[c], colorscale="gray", zmin=0, zmax=1, showscale=False),
                      row=1, col=j)
        fig.add_trace(go.Heatmap(z=summary.mean_images[c] - overall, colorscale="RdBu_r", zmid=0, zmin=-0.15,
                                 zmax=0.15, showscale=j == len(classes)), row=2, col=j)
    # Each panel square on its own axes: anchoring every y axis to the first x axis kept only the first panel
    # square and stretched the others wider, so the classes' mean images were shown at different sizes.
    for k in range(1, 2 * len(classes) + 1):
        suffix = "" if k == 1 else str(k)
        fig.layout[f"xaxis{suffix}"].update(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
        fig.layout[f"yaxis{suffix}"].update(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed",
                                            scaleanchor=f"x{suffix}", constrain="domain")
    fig.update_layout(title="Mean image per class", margin=dict(l=10, r=10, t=60, b=10), height=520)
    return fig


def split_finding_heatmap(summary: DataSummary) -> go.Figure:
    table = pd.crosstab(summary.stats["split"], summary.stats["finding"])
    fig = px.imshow(table, text_auto=True, color_continuous_scale="Blues", title="Split x class co-occurrence",
                    aspect="auto")
    return fig.update_layout(**_LAYOUT)


def size_scatter(summary: DataSummary) -> go.Figure:
    stats = summary.stats[summary.stats["error"] == ""].copy()
    stats["outlier"] = stats["outlier"].replace("", "none")
    fig = px.scatter(stats, x="mean", y="std", color="finding", symbol="outlier", hover_data=["filename", "split"],
                     labels={"mean": STAT_LABELS["mean"], "std": STAT_LABELS["std"]},
                     title="Intensity vs contrast (outliers marked)")
    return fig.update_layout(**_LAYOUT)
