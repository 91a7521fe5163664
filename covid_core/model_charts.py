"""Plotly figures of a model's stored results and of a run's training curves, for the Models and Train pages
(no Streamlit here)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def roc_figure(roc: dict, per_class: dict) -> go.Figure:
    """One-vs-rest ROC curves: ``roc`` is metrics["test_roc"] ({class: {"fpr", "tpr"}}), ``per_class`` gives AUCs."""
    fig = go.Figure()
    for cls, pts in roc.items():
        auc = (per_class.get(cls) or {}).get("auc")
        fig.add_trace(go.Scatter(x=pts["fpr"], y=pts["tpr"], mode="lines",
                                 name=f"{cls}" + (f" (AUC {auc:.3f})" if auc is not None else "")))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#adb5bd"),
                             showlegend=False))
    fig.update_layout(title="TEST ROC (one class vs rest)", xaxis_title="1 - specificity",
                      yaxis_title="sensitivity", height=380, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def confusion_figure(confusion, classes) -> go.Figure:
    """The confusion matrix (rows true class) as a heatmap of row shares, each cell labelled with count and share."""
    cm = np.asarray(confusion)
    row_share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig = go.Figure(go.Heatmap(z=row_share, x=list(classes), y=list(classes), colorscale="Blues", zmin=0, zmax=1,
                               text=[[f"{n}<br>{100 * s:.0f}%" for n, s in zip(r, rs)] for r, rs in zip(cm, row_share)],
                               texttemplate="%{text}", showscale=False))
    fig.update_layout(title="TEST confusion matrix (rows: true class)", xaxis_title="predicted",
                      yaxis_title="true", yaxis_autorange="reversed", height=380, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def training_curves(rows: list[dict]) -> go.Figure:
    """A run's metrics.jsonl rows: the training loss (left axis) and the validation figures (right axis) per epoch."""
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    epochs = [r.get("epoch") for r in rows]
    loss_key = "train_loss" if any("train_loss" in r for r in rows) else next(
        (k for k in (rows[0] if rows else {}) if "loss" in k), None)
    if loss_key:
        fig.add_trace(go.Scatter(x=epochs, y=[r.get(loss_key) for r in rows], name=loss_key.replace("_", " "),
                                 mode="lines+markers"), secondary_y=False)
    for key in ("val_macro_auc", "val_accuracy", "val_psnr_mean", "val_ssim"):
        if any(r.get(key) is not None for r in rows):
            fig.add_trace(go.Scatter(x=epochs, y=[r.get(key) for r in rows], name=key.replace("_", " "),
                                     mode="lines+markers"), secondary_y=True)
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title="epoch", dtick=1)
    return fig


def site_roc_figure(report: dict) -> go.Figure | None:
    """COVID-19 ROC on a site's films, shipped and adapted, with each operating point; None without curves."""
    curves = [(w, report[w]["roc"]) for w in ("before", "after") if report[w].get("roc")]
    if not curves:
        return None
    fig = go.Figure()
    for when, roc in curves:
        fig.add_trace(go.Scatter(x=roc["fpr"], y=roc["tpr"], mode="lines",
                                 name="shipped" if when == "before" else "adapted (cross-validated)"))
    for when, label in (("before", "shipped operating point"), ("after", "site operating point")):
        f = report[when]
        if f["sensitivity"]["value"] is not None and f["specificity"]["value"] is not None:
            fig.add_trace(go.Scatter(x=[1 - f["specificity"]["value"]], y=[f["sensitivity"]["value"]], mode="markers",
                                     marker=dict(size=11), name=label))
    fig.update_layout(title="COVID-19 ROC on your films", xaxis_title="1 - specificity", yaxis_title="sensitivity",
                      height=380, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def site_calibration_figure(report: dict) -> go.Figure | None:
    """Reliability on a site's films (confidence against how often it was right), shipped and site calibration."""
    curves = [(w, report[w]["reliability"]) for w in ("before", "after") if report[w].get("reliability")]
    if not curves:
        return None
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#adb5bd"),
                               name="perfect calibration"))
    for when, r in curves:
        fig.add_trace(go.Scatter(x=r["confidence"], y=r["accuracy"], mode="lines+markers", text=r["n"],
                                 hovertemplate="confidence %{x:.2f}, right %{y:.0%} of %{text} films",
                                 name="shipped calibration" if when == "before" else "site calibration"))
    fig.update_layout(title="Calibration on your films: confidence against how often it was right",
                      xaxis_title="confidence of the most probable class", yaxis_title="share right",
                      height=360, margin=dict(l=10, r=10, t=40, b=10))
    return fig
