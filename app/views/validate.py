"""Validate at your site: measure a model on your hospital's labelled films, adapt it, make the result active."""

from __future__ import annotations

import json
import shutil
import time

import pandas as pd
import streamlit as st

import ui
from covid_core.errors import CovidCoreError
from covid_core.formatting import code_span, counts_text
from covid_core.model_catalog import activate_site_file, site_file_for
from covid_core.model_charts import site_calibration_figure, site_roc_figure
from covid_core.site_file import MAX_NAME_CHARS
from covid_core.site_job import call_only, films_to_review, films_used_text
from site_panel import site_figures
from site_sources import LIMITS, chosen_films

st.title("Validate at your site")
st.markdown("No model trained on public collections can promise its accuracy at your hospital. Label a few dozen "
            "of your own films (at least 10 COVID-19 and 10 other films; more is better), put them in a folder as "
            "`normal/`, `pneumonia/` and `covid19/` (or any layout the app reads), and measure the model on them. "
            "What can be adapted safely (the decision threshold, the calibration, the familiarity reference, small "
            "heads on the frozen network for the verdict and for the call between normal and pneumonia) is adapted "
            "only where cross-validation by patient shows a gain. Until a validation is made the active site, "
            "Diagnose shows no COVID-19 verdict from this model. A normal/pneumonia model, which gives no COVID-19 "
            "verdict, is checked on its call (at least 10 normal and 10 pneumonia films; COVID-19 films count as "
            "pneumonia), and its calls are marked unconfirmed until then.")

classifiers = [e for e in ui.catalog() if e.usable and e.kind == "classifier"]
if not classifiers:
    ui.no_model_help()
    st.stop()
by_path = {str(e.path): e for e in classifiers}
with st.form("site_form", enter_to_submit=False):  # Enter in a field must not start minutes of work
    entry = by_path[st.selectbox("Model", list(by_path), format_func=lambda p: by_path[p].summary(), key="site_model")]
    folder = st.text_input("Folder of your labelled films (on this server)", key="site_folder",
                           help="It must lie inside a configured data folder (COVID_XRAY_DATA_ROOTS).")
    zipped = st.file_uploader("... or a zip of them (folders normal/, pneumonia/, covid19/ inside)", type=["zip"],
                              key="site_zip", help=f"At most {st.get_option('server.maxUploadSize')} MB (the "
                              "server's upload limit; for a larger set choose its folder below). Unpacked into a "
                              f"temporary folder, deleted when the validation ends; {LIMITS}.")
    picked = st.file_uploader("... or choose the folder on your computer (with normal/, pneumonia/, covid19/ inside)",
                              accept_multiple_files="directory", key="site_dir",
                              help="Your browser sends each of its files (at most "
                              f"{st.get_option('server.maxUploadSize')} MB each); they are written into a temporary "
                              f"folder, deleted when the validation ends; {LIMITS}.")
    c1, c2 = st.columns(2)
    name = c1.text_input("Site name", key="site_name", placeholder="e.g. St Elsewhere radiology",
                         max_chars=MAX_NAME_CHARS)
    target = c2.slider("COVID-19 sensitivity to aim for", 0.70, 0.98, 0.90, 0.01, key="site_target",
                       help="Not used for a model without a COVID-19 class.")
    go_validate = st.form_submit_button("Validate", type="primary", icon=":material/fact_check:")

jobs = ui.validation_jobs()  # the server's: a reloaded page or another tab finds a validation where it left it
if go_validate:
    unpacked = None
    try:
        path, label, unpacked = chosen_films(folder, zipped, picked)
        shipped = ui.cached_classifier(str(entry.path), entry.path.stat().st_mtime_ns)  # no site file applied
        jobs.start(shipped, path, model=str(entry.path), name=name.strip() or label or "site", target=float(target),
                   cleanup=unpacked)
    except CovidCoreError as exc:
        if unpacked:
            shutil.rmtree(unpacked, ignore_errors=True)
        st.error(f"Not validated: {ui.plain(exc)}", icon=":material/block:")

job = jobs.newest(str(entry.path))
if job is not None and job.running:
    @st.fragment(run_every=1)
    @ui.guarded("the validation progress panel")
    def progress() -> None:
        if job.running:
            share = job.done / job.total if job.total else 0.0
            st.progress(share, text=f"Scoring your films: {job.done} of {job.total or '?'}; then "
                                    "cross-validating the adaptation. You can keep using the app.")
        else:
            st.rerun()

    progress()
    st.stop()
if job is not None:
    st.caption(f"The newest validation of this model: site {code_span(job.name)}, started "
               f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(job.started))}. It stays on this page, for everyone "
               "using this server, until the next validation of this model, also after the server restarts.")
if job is not None and job.error:
    st.error(f"Not validated: {ui.plain(job.error)}", icon=":material/block:")
if job is None or job.error:
    active = site_file_for(entry.path)
    st.caption(f"Active site file for this model: {code_span(active.name)}. Its figures, its history and the button "
               "that retires it are on the Models page." if active else
               "This model has no active site file: Diagnose says it is not validated at your hospital.")
    st.stop()
report, films = job.report, job.films


st.subheader(f"{report['site']}: {films_used_text(report)}")
st.caption(f"By label: {counts_text(report['counts'])}. "
           + (f"{len(report['problems'])} file(s) skipped." if report["problems"] else ""))
poor = site_figures(report, width="stretch")
for line in report["adapted"]:
    st.success(line, icon=":material/tune:")
for line in report["skipped"]:
    st.info(line, icon=":material/do_not_disturb_on:")
if report["problems"]:
    with st.expander(f"{len(report['problems'])} skipped file(s)"):
        st.dataframe(pd.DataFrame(report["problems"]), hide_index=True)
for key, figure in (("site_roc", site_roc_figure(report)), ("site_calibration", site_calibration_figure(report))):
    if figure is not None:
        st.plotly_chart(figure, key=key)
wrong = films_to_review(films)
kind = "a wrong call, or no call" if call_only(report) else "a wrong verdict or call, or without a verdict"
with st.expander(f"Your films one by one: {len(wrong)} with {kind}, after adaptation"):
    st.dataframe(wrong, hide_index=True)
    st.caption("Where something was adapted, the scores and verdicts after adaptation are held out: each film is "
               "scored by what was fitted without its fold. The download has every film; the site file names none.")
text = json.dumps(report, indent=2)
c1, c2, c3 = st.columns(3)
c1.download_button("Download site.json", text, file_name="site.json", mime="application/json",
                   icon=":material/download:", key="site_download")
c2.download_button("Download per-film results (CSV)", films.to_csv(index=False), file_name="site-films.csv",
                   mime="text/csv", icon=":material/download:", key="site_films_download")
anyway = c3.checkbox("Make it active despite the warning above", key="site_poor_ok") if poor else True
if c3.button("Make it the active site for this model", key="site_activate", icon=":material/domain_verification:",
             disabled=not anyway):
    try:
        target_file, retired = activate_site_file(entry.path, text)
    except OSError as exc:
        st.error(f"Could not write the site file beside `{entry.path.name}`: {exc.strerror or exc}")
    else:
        st.success(f"Saved as `{target_file.name}` beside the model: Diagnose now states this validation with every "
                   + ("call and makes the call as adapted here." if call_only(report) else
                      "verdict and uses the adapted operating point.")
                   + (f" The previous site file was kept as `{retired.name}`." if retired else ""))
