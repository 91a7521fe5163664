"""Diagnose: upload chest X-rays; see the film, where the model looked, the call in words and what it is worth."""

from __future__ import annotations

import hashlib
from functools import partial

import pandas as pd
import streamlit as st

import case_view
import ui
from covid_core.case import explain_case, open_case
from covid_core.errors import CovidCoreError
from covid_core.formatting import code_span
from covid_core.model_catalog import held_back_reasons
from covid_core.report import prediction_row

st.title("Diagnose")
ui.research_notice()
# The uploader comes first: the page is usable at once, and the model loads only when a film arrives.
# Any file name: PACS exports often name DICOM films without an extension (IM000001); a file that is not an
# image is refused by its content, with the reason.
uploads = st.file_uploader("Chest X-ray images (PNG, JPEG, TIFF, BMP or DICOM)", accept_multiple_files=True,
                           key="diag_upload", help="Files stay in memory and are never written to disk. DICOM files "
                                                   "need no extension.")

entries = ui.catalog()
classifiers = [e for e in entries if e.usable and e.kind == "classifier"]
unusable = [e for e in entries if not e.usable and e.kind != "denoiser"]
with st.sidebar:
    st.subheader("Model")
    research = st.toggle("Research mode", value=False, key="diag_research",
                         help="Also offer trial runs and models that score below the shipped ones on TEST. Their "
                              "verdicts are less reliable than the shipped models'.")
    held_back = held_back_reasons(entries)
    offered = [e for e in classifiers if research or str(e.path) not in held_back]
    by_path = {str(e.path): e for e in offered}  # options are strings: entries hold tensors, unsafe to compare
    if offered:
        entry = by_path[st.selectbox("Classifier", list(by_path), format_func=lambda p: by_path[p].summary(),
                                     key="diag_model", help="Checkpoints in the weights folder and finished runs.")]
        st.caption(ui.plain(entry.details()))
    hidden = [e for e in classifiers if e not in offered]
    if hidden:
        st.caption(f"{len(hidden)} trial or weaker model(s) hidden; turn on research mode to use them.")
    if unusable:
        with st.expander(f"{len(unusable)} unusable checkpoint(s)"):
            for e in unusable:
                st.caption(f"{code_span(e.label)}: {ui.plain(e.reason)}")  # a checkpoint's own text, as it is
    unvalidated = st.toggle("Verdicts before site validation", value=False, key="diag_unvalidated",
                            help="Research use. Without a site file from the Validate page, a COVID-19 model gives "
                                 "no verdict: at hospitals it never saw, such models call most normal adults "
                                 "COVID-19. On: verdicts are shown anyway, marked unconfirmed.")
    show_dae = st.toggle("Show a denoised view", value=False, key="diag_dae")
    explain_mod, explain_error = ui.optional_module("covid_core.explain")
    with st.expander("Heatmap settings (expert)"):
        if explain_mod is not None and offered:
            cam_method = st.selectbox("Method", explain_mod.CAM_METHODS, key="diag_cam",
                                      help="The first, the default, showed the most of what the model uses.")
            cam_target = st.selectbox("Explain class", ["the call's class", *entry.metadata.get("classes", [])],
                                      key="diag_target")
            opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05, key="diag_opacity")
        elif explain_mod is None:
            st.caption("Heatmaps unavailable: " + explain_error)

if not offered:
    ui.no_model_help()
    st.stop()
if not uploads:
    st.caption(f"Model in use: **{ui.plain(entry.label)}** ({ui.plain(entry.details())}). Upload one film for a "
               "full case view, or many for a results table.")
    st.stop()
try:
    classifier = ui.classifier_for(entry, verdicts_unvalidated=unvalidated)
except CovidCoreError as exc:
    st.error(f"This checkpoint could not be loaded: {ui.plain(exc)}")
    st.stop()
model_key = ui.case_key(entry, classifier)


def analysed(digest: str, name: str, data: bytes):
    """The case from the byte-capped cache of this server process (ui.case_cache): memory stays flat, uploads
    never reach the disk, and a refused file leaves nothing behind."""
    return ui.case_cache().get_or_make(("case", model_key, digest), lambda: open_case(data, name, classifier))


def explained(case, digest: str):
    target = case.prediction.call if cam_target == "the call's class" else cam_target
    with st.spinner("Finding where the model looked..."):
        return ui.case_cache().get_or_make(("cam", model_key, digest, cam_method, target),
                                           lambda: explain_case(classifier, case, cam_method, target))


cases = []
for name, up in ui.distinct_names(ui.capped_uploads(uploads)):
    data = up.getvalue()
    item = {"name": name, "digest": hashlib.sha256(data).hexdigest(), "case": None, "error": None}
    try:
        item["case"] = analysed(item["digest"], name, data)
    except CovidCoreError as exc:
        item["error"] = str(exc)
    cases.append(item)


def show_case(item, title: str | None = None) -> None:
    case, key = item["case"], item["digest"][:12]
    head, control = st.columns([3, 2], vertical_alignment="center") if title else (None, st.container())
    if title:  # the file's name and the window/level control share a row: the call stays near the top
        head.subheader(ui.plain(title))
    prediction = case.prediction
    explanation = overlay_rgb = denoised = None
    if explain_mod is not None and (not prediction.withheld or st.toggle(
            "Show where the model looked anyway (researchers)", value=False, key=f"cam_anyway_{key}")):
        try:
            explanation = explained(case, item["digest"])
            overlay_rgb = explain_mod.overlay(case.image.pixels, explanation.heatmap, opacity=opacity)
        except CovidCoreError as exc:
            st.error(f"The heatmap failed: {ui.plain(exc)}")
    if show_dae:
        denoised = case_view.denoised_view(case, item["digest"])
    with control:
        shown = case_view.windowed(case.image, key)
    call = partial(case_view.verdict_and_limits, prediction, classifier)
    beside = case_view.films(case, shown, overlay_rgb, explanation, denoised, beside=call)
    if not beside:
        call()
    case_view.validation_state(classifier, prediction)
    if explanation is not None:
        case_view.heatmap_figures(explanation)
    case_view.details(case, classifier, key)
    case_view.report_download(case, shown, classifier, entry, explanation, overlay_rgb, denoised, key)

for item in cases:
    if item["error"]:
        st.error(f"**{ui.plain(item['name'])}** could not be analysed: {ui.plain(item['error'])}",
                 icon=":material/broken_image:")

good = [c for c in cases if c["case"] is not None]
if len(cases) > 1:
    st.subheader(f"Results for {len(cases)} files")
    table = pd.DataFrame([prediction_row(c["name"], c["case"] and c["case"].prediction, c["error"]) for c in cases])
    ui.results_table(table, classifier.site)
    st.download_button("Download results (CSV)", ui.results_csv(table, entry, classifier),
                       file_name="xray-results.csv", mime="text/csv", icon=":material/download:", key="diag_csv")
    if good:
        st.divider()
        chosen = st.selectbox("Inspect one case", [c["name"] for c in good], key="diag_case")
        show_case(next(c for c in good if c["name"] == chosen))
elif good:
    show_case(good[0], title=good[0]["name"])
