"""Validate at your site: measure a model on your hospital's labelled films, adapt it, make the result active."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import ui
from covid_core.archive import extract_labelled_zip
from covid_core.data_roots import check_data_folder
from covid_core.errors import CovidCoreError
from covid_core.model_catalog import site_file_for
from covid_core.site import validate_site

st.title("Validate at your site")
st.markdown("No model trained on public collections can promise its accuracy at your hospital. Label a few dozen "
            "of your own films (at least 10 COVID-19 and 10 other films; more is better), put them in a folder as "
            "`normal/`, `pneumonia/` and `covid19/` (or any layout the app reads), and measure the model on them. "
            "What can be adapted safely (the decision threshold, the calibration, the familiarity reference, a "
            "small head on the frozen network) is adapted only where cross-validation by patient shows a gain.")

classifiers = [e for e in ui.catalog() if e.usable and e.kind == "classifier"]
if not classifiers:
    ui.no_model_help()
    st.stop()
by_path = {str(e.path): e for e in classifiers}
with st.form("site_form"):
    entry = by_path[st.selectbox("Model", list(by_path), format_func=lambda p: by_path[p].summary(), key="site_model")]
    folder = st.text_input("Folder of your labelled films (on this server)", key="site_folder",
                           help="It must lie inside a configured data folder (COVID_XRAY_DATA_ROOTS).")
    zipped = st.file_uploader("... or a zip of them (folders normal/, pneumonia/, covid19/ inside)", type=["zip"],
                              key="site_zip", help="Unpacked into a temporary folder, deleted when the validation "
                                                   "ends; at most 5,000 files and 1 GB.")
    c1, c2 = st.columns(2)
    name = c1.text_input("Site name", key="site_name", placeholder="e.g. St Elsewhere radiology")
    target = c2.slider("COVID-19 sensitivity to aim for", 0.70, 0.98, 0.90, 0.01, key="site_target")
    go_validate = st.form_submit_button("Validate", type="primary", icon=":material/fact_check:")

def _validate(job: dict, shipped, path, name: str, target: float, cleanup: str | None) -> None:
    """The validation, in a thread of its own: the page stays usable and shows its progress."""
    try:
        job["report"] = validate_site(shipped, path, name=name, target_sensitivity=target,
                                      on_progress=lambda done, total: job.update(done=done, total=total))
    except CovidCoreError as exc:
        job["error"] = str(exc)
    except Exception as exc:  # never a traceback in the page
        job["error"] = f"the validation failed ({type(exc).__name__}: {str(exc)[:200]})"
    finally:
        if cleanup:
            shutil.rmtree(cleanup, ignore_errors=True)


if go_validate and not (st.session_state.get("site_job") or {}).get("thread", threading.Thread()).is_alive():
    unpacked = None
    try:
        if zipped is not None:
            unpacked = tempfile.mkdtemp(prefix="site_")  # removed by the job when it ends
            path, skipped = extract_labelled_zip(zipped.getvalue(), unpacked)
            label = Path(zipped.name).stem
            for line in skipped:
                st.warning(line, icon=":material/folder_off:")
        else:
            path = check_data_folder(folder)
            label = path.name
    except CovidCoreError as exc:
        if unpacked:
            shutil.rmtree(unpacked, ignore_errors=True)
        st.error(f"Not validated: {exc}", icon=":material/block:")
    else:
        shipped = ui.cached_classifier(str(entry.path), entry.path.stat().st_mtime_ns)  # no site file applied
        job = {"model": str(entry.path), "done": 0, "total": 0, "report": None, "error": None}
        job["thread"] = threading.Thread(target=_validate, daemon=True, args=(
            job, shipped, path, name.strip() or label, float(target), unpacked))
        job["thread"].start()
        st.session_state["site_job"] = job

job = st.session_state.get("site_job")
if job is not None and job["thread"].is_alive():
    @st.fragment(run_every=1)
    def progress() -> None:
        if job["thread"].is_alive():
            share = job["done"] / job["total"] if job["total"] else 0.0
            st.progress(share, text=f"Scoring your films: {job['done']} of {job['total'] or '?'}; then "
                                    "cross-validating the adaptation. You can keep using the app.")
        else:
            st.rerun()

    progress()
    st.stop()
if job is not None:
    del st.session_state["site_job"]
    if job["error"]:
        st.error(f"Not validated: {job['error']}", icon=":material/block:")
    else:
        st.session_state["site_report"] = (job["model"], job["report"])

saved = st.session_state.get("site_report")
if not saved or saved[0] != str(entry.path):
    active = site_file_for(entry.path)
    st.caption(f"Active site file for this model: `{active.name}`." if active else
               "This model has no active site file: Diagnose says it is not validated at your hospital.")
    st.stop()
report = saved[1]


def ci(f: dict | None) -> str:
    if not f or f.get("value") is None:
        return "n/a"
    return f"{100 * f['value']:.1f}%" + (f" ({100 * f['low']:.0f}-{100 * f['high']:.0f}%)" if f.get("low") is not None
                                         else "")


st.subheader(f"{report['site']}: {report['films_used']} films")
st.caption(f"Counts: {report['counts']}. " + (f"{len(report['problems'])} file(s) skipped." if report["problems"] else ""))
rows = []
for when in ("before", "after"):
    f = report[when]
    rows.append({"": "shipped model" if when == "before" else "after adaptation (cross-validated)",
                 "COVID-19 sensitivity (95% CI)": ci(f.get("sensitivity")),
                 "specificity (95% CI)": ci(f.get("specificity")),
                 "AUC": "n/a" if (f.get("auc") or {}).get("value") is None else f"{f['auc']['value']:.3f}",
                 "calibration error": "n/a" if f.get("ece") is None else f"{f['ece']:.3f}",
                 "counts (TP / FN / FP / TN)": " / ".join(str((f.get("counts") or {}).get(k, "-"))
                                                          for k in ("tp", "fn", "fp", "tn"))})
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
if report["before"].get("ood_flagged") is not None:
    st.caption(f"Films the familiarity check called unlike the training X-rays: "
               f"{100 * report['before']['ood_flagged']:.0f}% before adaptation.")
for line in report["adapted"]:
    st.success(line, icon=":material/tune:")
for line in report["skipped"]:
    st.info(line, icon=":material/do_not_disturb_on:")
if report["problems"]:
    with st.expander(f"{len(report['problems'])} skipped file(s)"):
        st.dataframe(pd.DataFrame(report["problems"]), hide_index=True)
curves = [(w, report[w]["roc"]) for w in ("before", "after") if report[w].get("roc")]
if curves:
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
    st.plotly_chart(fig, key="site_roc")
curves = [(w, report[w]["reliability"]) for w in ("before", "after") if report[w].get("reliability")]
if curves:
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#adb5bd"),
                               name="perfect calibration"))
    for when, r in curves:
        fig.add_trace(go.Scatter(x=r["confidence"], y=r["accuracy"], mode="lines+markers", text=r["n"],
                                 hovertemplate="confidence %{x:.2f}, right %{y:.0%} of %{text} films",
                                 name="shipped calibration" if when == "before" else "site calibration"))
    fig.update_layout(title="Calibration on your films: confidence against how often it was right",
                      xaxis_title="confidence of the most probable class", yaxis_title="share right",
                      height=360, margin=dict(l=10, r=10, t=40, b=10))
    st.plotly_chart(fig, key="site_calibration")
text = json.dumps(report, indent=2)
c1, c2 = st.columns(2)
c1.download_button("Download site.json", text, file_name="site.json", mime="application/json",
                   icon=":material/download:", key="site_download")
if c2.button("Make it the active site for this model", key="site_activate", icon=":material/domain_verification:"):
    target_file = entry.path.with_name(entry.path.stem + ".site.json")
    try:
        target_file.write_text(text)
    except OSError as exc:
        st.error(f"Could not write `{target_file}`: {exc.strerror or exc}")
    else:
        st.success(f"Saved as `{target_file.name}` beside the model: Diagnose now states this validation with every "
                   "verdict and uses the adapted operating point.")
