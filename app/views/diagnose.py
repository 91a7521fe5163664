"""Diagnose: upload chest X-rays, get the verdict, probabilities, Grad-CAM and a report."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import ui
from covid_core.case import explain_case, open_case
from covid_core.decode import apply_window
from covid_core.errors import CovidCoreError
from covid_core.model_card import positive_verdict_limits
from covid_core.report import RATE_TERMS, VERDICT_RATE, case_report_html, prediction_row

UPLOAD_TYPES = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "dcm"]

st.title("Diagnose")
ui.research_notice()

entries = ui.catalog()
usable = [e for e in entries if e.usable and e.kind == "classifier"]
unusable = [e for e in entries if not e.usable and e.kind != "denoiser"]

if not usable:
    ui.no_model_help()
    if unusable:
        with st.expander(f"{len(unusable)} checkpoint(s) could not be used"):
            for e in unusable:
                st.markdown(f"- `{e.label}`: {e.reason}")
    st.stop()

explain_mod, explain_error = ui.optional_module("covid_core.explain")

with st.sidebar:
    st.subheader("Model")
    by_path = {str(e.path): e for e in usable}  # options are strings: entries hold tensors, unsafe to compare
    entry = by_path[st.selectbox("Classifier", list(by_path), format_func=lambda p: by_path[p].summary(),
                                 key="diag_model", help="Checkpoints in the weights folder and finished training runs.")]
    if unusable:
        with st.expander(f"{len(unusable)} unusable checkpoint(s)"):
            for e in unusable:
                st.caption(f"`{e.label}`: {e.reason}")
    try:
        classifier = ui.classifier_for(entry)
    except CovidCoreError as exc:
        st.error(f"This checkpoint could not be loaded: {exc}")
        st.stop()
    st.subheader("Explanation")
    if explain_mod is not None:
        cam_method = st.selectbox("Grad-CAM method", explain_mod.CAM_METHODS, key="diag_cam")
        cam_target = st.selectbox("Explain class", ["predicted class", *classifier.classes], key="diag_target")
        opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05, key="diag_opacity")
    else:
        st.caption("Heatmaps unavailable: " + explain_error)
    show_dae = st.toggle("Show DAE-denoised image", value=False, key="diag_dae")

model_key = f"{entry.path}:{entry.fingerprint}"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Cases and heatmaps live in memory only, in one byte-capped cache per server process (ui.case_cache):
# uploads never reach the disk, and a refused file leaves nothing behind.
def analysed(digest: str, name: str, data: bytes):
    return ui.case_cache().get_or_make(("case", model_key, digest), lambda: open_case(data, name, classifier))


def explained(case, method: str, target: str | None):
    with st.spinner("Computing the heatmap..."):
        return ui.case_cache().get_or_make(("cam", model_key, case["digest"], method, target),
                                           lambda: explain_case(classifier, case["case"], method, target))


@st.cache_data(max_entries=16, show_spinner="Denoising...")
def dae_denoised(dae_key: str, digest: str, _dae, _pixels):
    return np.clip(_dae.denoise(_pixels), 0, 1).astype(np.float32)


uploads = st.file_uploader("Chest X-ray images (PNG, JPEG, TIFF, BMP or DICOM)", type=UPLOAD_TYPES,
                           accept_multiple_files=True, key="diag_upload",
                           help="Files stay in memory and are never written to disk.")
if not uploads:
    st.caption(f"Model in use: **{entry.label}** ({classifier.spec.name}, classes: {', '.join(classifier.classes)}). "
               "Upload one image for a full case view, or many for a results table.")
    st.stop()

cases = []
for up in ui.capped_uploads(uploads):
    data = up.getvalue()
    digest = _sha(data)
    case = {"name": up.name, "digest": digest, "image": None, "prediction": None, "error": None}
    try:
        case["case"] = analysed(digest, up.name, data)
        case["image"], case["prediction"] = case["case"].image, case["case"].prediction
    except CovidCoreError as exc:
        case["error"] = str(exc)
    cases.append(case)


def verdict_card(pred) -> None:
    if pred.ood_flagged:
        color, bg = "#495057", "#f1f3f5"
        sub = "The image is unlike the chest X-rays this model was trained on: its output is not a finding."
    elif pred.covid_positive is None:
        color, bg = "#1c3d5a", "#e7f0fa"
        sub = f"probability {100 * pred.probabilities[pred.label]:.1f}% (this model has no COVID-19 class)"
    else:
        color, bg = ("#a61e1e", "#ffe3e3") if pred.covid_positive else ("#1e6b34", "#e6f4ea")
        sub = (f"COVID-19 probability {100 * pred.covid_probability:.1f}% "
               f"{'&ge;' if pred.covid_positive else '&lt;'} operating threshold {100 * pred.threshold:.1f}%")
    st.markdown(f'<div style="background:{bg};color:{color};padding:0.7rem 1rem;border-radius:0.5rem;'
                f'margin-bottom:0.6rem"><div style="font-size:1.5rem;font-weight:700">{pred.verdict}</div>'
                f'<div style="font-size:0.95rem">{sub}</div></div>', unsafe_allow_html=True)


def probability_chart(pred) -> go.Figure:
    classes = list(pred.probabilities)
    probs = [pred.probabilities[c] for c in classes]
    colors = ["#c92a2a" if c in ("covid19", "positive") else "#1c5d99" for c in classes]
    fig = go.Figure(go.Bar(x=probs, y=classes, orientation="h", marker_color=colors,
                           text=[f"{100 * p:.1f}%" for p in probs], textposition="auto"))
    if pred.threshold is not None:
        fig.add_vline(x=pred.threshold, line_dash="dash", line_color="#495057",
                      annotation_text=f"threshold {pred.threshold:.2f}", annotation_position="top")
    fig.update_layout(height=60 + 45 * len(classes), margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%", dtick=0.25, title="calibrated probability"))
    return fig


def show_case(case) -> None:
    img, pred = case["image"], case["prediction"]
    key = case["digest"][:12]
    left, right = st.columns([1, 1], gap="large")
    with right:
        verdict_card(pred)
        thr, test = classifier.threshold or {}, (classifier.threshold or {}).get("test") or {}
        if pred.threshold is not None:
            table = "" if pred.ood_flagged else ui.rates_table(  # no verdict, so no verdict's reliability
                test, emphasis=VERDICT_RATE.get(pred.covid_call))
            if table:
                st.markdown(table)
            st.caption(f"Operating threshold {pred.threshold:.3f} on the COVID-19 probability "
                       f"({thr.get('rule', 'stored with the model')})."
                       + (f" {RATE_TERMS[0].upper()}{RATE_TERMS[1:]}." if table else ""))
            if pred.covid_call == "positive":
                limits = positive_verdict_limits(classifier.metadata, thr)
                if limits:
                    st.info("\n\n".join(limits), icon=":material/balance:")
        for w in pred.warnings:
            st.warning(w, icon=":material/report:")
        st.plotly_chart(probability_chart(pred), key=f"probs_{key}", config={"displayModeBar": False})

    explanation = overlay_rgb = None
    if explain_mod is not None:
        target = None if cam_target == "predicted class" else cam_target
        try:
            explanation = explained(case, cam_method, target)
            overlay_rgb = explain_mod.overlay(img.pixels, explanation.heatmap, opacity=opacity)
        except CovidCoreError as exc:
            st.error(f"Heatmap failed: {exc}")
    denoised, dae_msg = None, None
    if show_dae:
        dae, dae_msg = ui.dae_or_message()
        if dae is not None:
            try:
                denoised = dae_denoised(str(ui.dae_path().stat().st_mtime_ns), case["digest"], dae, img.pixels)
            except CovidCoreError as exc:
                dae_msg = f"Denoising failed: {exc}"

    with left:
        shown = img.pixels
        if img.raw is not None and img.window is not None:
            c0, w0 = img.window
            lo, hi = float(np.min(img.raw)), float(np.max(img.raw))
            span = max(hi - lo, 1.0)
            wc1, wc2 = st.columns(2)
            center = wc1.slider("Window level", lo, hi, float(np.clip(c0, lo, hi)), span / 200, key=f"wl_{key}")
            width = wc2.slider("Window width", span / 100, span * 2, float(np.clip(w0, span / 100, span * 2)),
                               span / 200, key=f"ww_{key}")
            shown = apply_window(img.raw, center, width, invert=img.original_mode == "MONOCHROME1")
            st.caption("Window/level changes the display only; the model sees the file's stored window.")
        n_cols = 1 + (overlay_rgb is not None) + (denoised is not None)
        cols = st.columns(n_cols)
        cols[0].image(shown, caption=f"Original ({img.format}, {case['case'].original_size[1]}x{case['case'].original_size[0]})", clamp=True,
                      width="stretch")
        i = 1
        if overlay_rgb is not None:
            cols[i].image(overlay_rgb, caption=f"{explanation.method}: evidence for '{explanation.target_class}'",
                          width="stretch")
            i += 1
        if denoised is not None:
            cols[i].image(denoised, caption="DAE-denoised", clamp=True, width="stretch")
        if dae_msg:
            st.info(dae_msg, icon=":material/blur_off:")
        if explanation is not None:
            e1, e2 = st.columns(2)
            if explanation.faithfulness is not None:
                e1.metric("Faithfulness", f"{100 * explanation.faithfulness:.1f} pts",
                          help=f"In percentage points: {explanation.faithfulness_name}.")
            e2.metric("In thorax", ui.pct(explanation.thorax_share),
                      help="Share of the heatmap's mass that falls inside the lung/thorax region.")
            for w in (explanation.shortcut_warning, explanation.faithfulness_warning):
                if w:
                    st.warning(w, icon=":material/warning:")
        if img.notes:
            st.caption("Decoding notes: " + "; ".join(img.notes))
        if img.dicom_info:
            with st.expander("DICOM header (technical fields)"):
                st.table(pd.DataFrame(img.dicom_info.items(), columns=["field", "value"]))
        show_patient = False
        if img.patient_info:
            show_patient = st.checkbox("Show patient fields from the DICOM header", value=False, key=f"pt_{key}")
            if show_patient:
                st.table(pd.DataFrame(img.patient_info.items(), columns=["field", "value"]))

    html = case_report_html(
        name=case["name"], image=shown, prediction=pred, classifier=classifier, model_label=entry.label,
        model_fingerprint=entry.fingerprint, explanation=explanation, overlay_rgb=overlay_rgb, denoised=denoised,
        patient_info=img.patient_info, include_patient_info=show_patient)
    right.download_button("Download report (HTML)", html, file_name=f"{case['name'].rsplit('.', 1)[0]}-report.html",
                          mime="text/html", icon=":material/download:", key=f"report_{key}",
                          help="A self-contained HTML file with the images, numbers, model version and disclaimer."
                               + (" Patient fields are included." if show_patient else " No patient fields."))


for case in cases:
    if case["error"]:
        st.error(f"**{case['name']}** could not be analysed: {case['error']}", icon=":material/broken_image:")

good = [c for c in cases if c["prediction"] is not None]
if len(cases) > 1:
    st.subheader(f"Results for {len(cases)} files")
    table = pd.DataFrame([prediction_row(c["name"], c["prediction"], c["error"]) for c in cases])
    st.dataframe(table, hide_index=True, column_config={
        "COVID-19 probability": st.column_config.NumberColumn(format="percent"),
        **{c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0, format="percent")
           for c in table.columns if c.startswith("p(")}})
    st.download_button("Download results (CSV)", table.to_csv(index=False), file_name="xray-results.csv",
                       mime="text/csv", icon=":material/download:", key="diag_csv")
    if good:
        st.divider()
        chosen = st.selectbox("Inspect one case", [c["name"] for c in good], key="diag_case")
        show_case(next(c for c in good if c["name"] == chosen))
elif good:
    st.subheader(good[0]["name"])
    show_case(good[0])
