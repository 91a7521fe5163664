"""How one case is laid out on the Diagnose page, in the order a clinician reads it:

1. the film and where the model looked (as large as the column allows, click to enlarge); a film without a
   verdict has no heatmap to show, so the call and its reason (2) take the heatmap's place beside it;
2. the three-class call in words, with the COVID-19 verdict as its second line;
3. what that verdict is worth, for negative verdicts too;
4. whether the model has been validated at this hospital;
5. the details (probabilities, rates, technical figures), folded away.

UI only: every figure comes from covid_core (case, verdict, report).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import ui
from covid_core.decode import apply_window
from covid_core.formatting import probability_pcts
from covid_core.report import case_report_html
from covid_core.verdict import (RATE_TERMS, SITE_PNEUMONIA_SCORE, VERDICT_RATE, headline, operating_threshold,
                                scored_by_site_head, validation_statement, verdict_caveat, verdict_limits,
                                withheld_reason)

TONES = {"positive": ("#a61e1e", "#ffe3e3"), "abnormal": ("#7a4a00", "#fff3d6"), "negative": ("#1e6b34", "#e6f4ea"),
         "withheld": ("#495057", "#f1f3f5"), "neutral": ("#1c3d5a", "#e7f0fa")}


def headline_card(prediction, site) -> None:
    """The call in words. A verdict of a model not validated at this hospital (``site`` None), or validated at a
    site where it did poorly or on too few films to know, is drawn with a dashed border and says so inside the card,
    so that it never looks as settled as a verdict of a model that did well on the hospital's own films."""
    h = headline(prediction)
    color, bg = TONES[h.tone]
    second = f'<div style="font-size:1.05rem;margin-top:0.2rem">{html.escape(h.covid_line)}</div>' if h.covid_line else ""
    confirmed = site is not None and site.confirmed
    border = f"2px solid {color}" if confirmed else f"2px dashed {color}"
    caveat = verdict_caveat(prediction, site)
    note = caveat and (
        f'<div style="font-size:0.9rem;margin-top:0.3rem;font-style:italic">{html.escape(caveat, quote=False)}</div>')
    st.markdown(f'<div style="background:{bg};color:{color};padding:0.8rem 1rem;border-radius:0.5rem;border:{border};'
                f'margin-bottom:0.6rem"><div style="font-size:1.6rem;font-weight:700">{html.escape(h.title)}</div>'
                f'{second}{note}</div>', unsafe_allow_html=True)


def windowed(image, key: str) -> np.ndarray:
    """The film with the reader's window/level (display only): DICOM in its raw units, any other film in [0, 1]."""
    dicom = image.raw is not None and image.window is not None
    values = image.raw if dicom else image.pixels
    lo, hi = float(np.min(values)), float(np.max(values))
    span = max(hi - lo, 1.0 if dicom else 1e-3)
    c0, w0 = image.window if dicom else ((lo + hi) / 2, span)
    with st.expander("Brightness and contrast (window/level)", expanded=dicom):
        c1, c2 = st.columns(2)
        center = c1.slider("Window level", lo, hi, float(np.clip(c0, lo, hi)), span / 200, key=f"wl_{key}")
        width = c2.slider("Window width", span / 100, span * 2, float(np.clip(w0, span / 100, span * 2)), span / 200,
                          key=f"ww_{key}")
        st.caption("Changes the display only; the model reads the film as stored.")
    invert = dicom and image.original_mode == "MONOCHROME1"
    return apply_window(values, center, width, invert=invert)


def films(case, shown: np.ndarray, overlay_rgb, explanation, denoised, beside=None) -> bool:
    """The film and where the model looked, side by side. A film shown alone (no heatmap: a film without a
    verdict) keeps the size it has beside a heatmap, and `beside()` draws in the other column, so that the call
    and its reason are seen with the film instead of below it. True if `beside` was drawn."""
    h, w = case.original_size
    panels = [(shown, f"The film ({case.image.format}, {w}x{h}; hover it for its full-screen button)")]
    if overlay_rgb is not None:
        p = case.prediction
        unconfirmed = p is not None and p.call_unconfirmed and p.covid_positive is False \
            and explanation.target_class == p.call  # the headline does not name this class: the site did not confirm it
        panels.append((overlay_rgb, f"Where the model looked (red: {explanation.pushed}"
                                    + (", a call your site's films did not confirm)" if unconfirmed else ")")))
    if denoised is not None:
        panels.append((denoised, "Denoised view (autoencoder)"))
    alone = beside is not None and len(panels) == 1
    columns = st.columns(2 if alone else len(panels), gap="small")
    for col, (img, caption) in zip(columns, panels):
        col.image(img, caption=caption, clamp=True, width="stretch")
    if alone:
        with columns[1]:
            beside()
    return alone


def heatmap_figures(explanation) -> None:
    e1, e2 = st.columns(2)
    e1.metric("Highlight inside the chest", ui.pct(explanation.thorax_share),
              help="Technical: share of the heatmap's energy inside the estimated thorax. Low values mean the "
                   "model looked at borders, markers or text rather than the lungs.")
    if explanation.faithfulness is not None:
        # the change of the class's probability (the same sign as the warning below): a fall means "yes"
        e2.metric("Hiding it lowers the call?",
                  f"{'yes' if explanation.faithfulness > 0 else 'no'}: {100 * -explanation.faithfulness + 0.0:+.1f} pts",
                  help=f"Technical: {explanation.faithfulness_name}. The change in the probability of the explained "
                       "class, in percentage points, when the most highlighted pixels are hidden.")
    for w in (explanation.shortcut_warning, explanation.faithfulness_warning):
        if w:
            st.warning(w, icon=":material/warning:")


def probability_chart(prediction, threshold_line: bool = True) -> go.Figure:
    classes = list(prediction.probabilities)
    probs = [prediction.probabilities[c] for c in classes]
    colors = ["#c92a2a" if c in ("covid19", "positive") else "#1c5d99" for c in classes]
    fig = go.Figure(go.Bar(x=probs, y=classes, orientation="h", marker_color=colors,
                           text=probability_pcts(*probs), textposition="auto"))
    if prediction.threshold is not None and threshold_line:
        fig.add_vline(x=prediction.threshold, line_dash="dash", line_color="#495057",
                      annotation_text=f"threshold {prediction.threshold:.2f}", annotation_position="top")
    fig.update_layout(height=60 + 45 * len(classes), margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(range=[0, 1], tickformat=".0%", dtick=0.25, title="calibrated probability"))
    return fig


def verdict_and_limits(prediction, classifier) -> None:
    headline_card(prediction, classifier.site)
    if prediction.withheld:
        st.warning(withheld_reason(prediction), icon=":material/help:")
        if prediction.not_validated:
            st.page_link("views/validate.py", label="Validate the model on your hospital's films",
                         icon=":material/fact_check:")
        return
    for sentence in verdict_limits(prediction, classifier.metadata, operating_threshold(classifier),
                                   site=classifier.site):
        st.info(sentence, icon=":material/balance:")


def details(case, classifier, key: str) -> None:
    prediction = case.prediction
    label = ("Raw model output (for researchers: not a finding)" if prediction.withheld
             else "Details: probabilities and measured rates")
    with st.expander(label, expanded=False):
        head = scored_by_site_head(classifier)  # its threshold is on another score than these probabilities
        st.plotly_chart(probability_chart(prediction, threshold_line=not head), key=f"probs_{key}",
                        config={"displayModeBar": False})
        threshold = operating_threshold(classifier)
        if prediction.threshold is not None and not prediction.withheld:
            table = ui.rates_table(threshold.get("test") or {}, emphasis=VERDICT_RATE.get(prediction.covid_call))
            if table:
                st.markdown(table)
            on = "" if threshold.get("site") else " on the COVID-19 probability"  # a site names its own score
            terms = f" {RATE_TERMS[0].upper()}{RATE_TERMS[1:]}." if table else ""
            st.caption(f"Operating threshold {prediction.threshold:.3f}{on} "
                       f"({ui.plain(threshold.get('rule', 'stored with the model'))}).{terms}")
        if prediction.pneumonia_probability is not None and not prediction.withheld:
            st.caption(f"{SITE_PNEUMONIA_SCORE}: {probability_pcts(prediction.pneumonia_probability)[0]}.")
        if prediction.ood_score is not None:
            st.caption(f"Familiarity score (out-of-distribution score) {prediction.ood_score:.2f}; above "
                       f"{float(classifier.ood.get('threshold', 1.0)):.2f} the film counts as unlike the training "
                       "X-rays and gets no verdict.")
        image = case.image
        if image.notes:
            st.caption("Decoding notes: " + "; ".join(image.notes))
        if image.dicom_info:
            ui.plain_table(pd.DataFrame(image.dicom_info.items(), columns=["DICOM field", "value"]))


def validation_state(classifier, prediction) -> None:
    statement = validation_statement(classifier.site, prediction, classifier.metadata)
    if classifier.site is None or not classifier.site.confirmed:
        st.warning(statement, icon=":material/domain:")
    else:
        st.success(statement, icon=":material/domain:")


def denoised_view(case, digest: str):
    """The denoising autoencoder's view of the case's display copy (cached per film), or None with why not."""
    dae, message = ui.dae_or_message()
    if dae is None:
        st.info(message, icon=":material/blur_off:")
        return None
    return ui.case_cache().get_or_make(("dae", str(ui.dae_path().stat().st_mtime_ns), digest),
                                       lambda: np.clip(dae.denoise(case.image.pixels), 0, 1).astype(np.float32))


def report_download(case, shown, classifier, entry, explanation, overlay_rgb, denoised, key: str) -> None:
    """Patient fields on request (DICOM), then the case report as a self-contained HTML download."""
    show_patient = False
    if case.image.patient_info:
        show_patient = st.checkbox("Show patient fields from the DICOM header", value=False, key=f"pt_{key}")
        if show_patient:
            ui.plain_table(pd.DataFrame(case.image.patient_info.items(), columns=["field", "value"]))
    report = case_report_html(
        name=case.name, image=shown, prediction=case.prediction, classifier=classifier, model_label=entry.label,
        model_fingerprint=entry.fingerprint, explanation=explanation, overlay_rgb=overlay_rgb, denoised=denoised,
        patient_info=case.image.patient_info, include_patient_info=show_patient)
    st.download_button("Download report (HTML)", report, file_name=f"{case.name.rsplit('.', 1)[0]}-report.html",
                       mime="text/html", icon=":material/download:", key=f"report_{key}",
                       help="A self-contained HTML file with the images, numbers, model version and disclaimer."
                            + (" Patient fields are included." if show_patient else " No patient fields."))
