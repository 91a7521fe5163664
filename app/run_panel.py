"""The Train page's list of runs: each run's settings, progress, curves, TEST figures and log, refreshed live."""

from __future__ import annotations

import time

import streamlit as st

import ui
from covid_core import jobs
from covid_core.errors import ConfigError
from covid_core.formatting import code_span, fixed
from covid_core.model_catalog import diagnose_offer
from covid_core.model_charts import training_curves
from covid_core.runs import RunDir, default_runs_dir


RUNS_SHOWN = 30  # the newest runs the panel shows, refreshed every 2 s


def show_job(job: jobs.Job, models) -> None:
    """One run's panel; ``models``: the catalog (where Diagnose offers a finished run's model)."""
    status = job.status
    title = f"`{job.run_id}` - {job.task}, {job.state}"
    with st.expander(title, expanded=job.active, icon=ui.STATE_ICONS.get(job.state, ui.STATE_ICONS["unknown"])):
        if job.config:
            st.caption(job.settings_text())
        if job.active:
            st.progress(job.progress, text=job.progress_text())
            if st.button("Cancel", key=f"cancel_{job.run_id}", icon=":material/stop:"):
                if jobs.cancel(job):
                    st.toast(f"Stopping {job.run_id}; it finishes the current step and evaluates what it has.")
        if job.state == "failed" and status.get("error"):
            st.error(ui.plain(status["error"]))  # may quote a data set's file or CSV cell
        if job.state == "unknown":
            st.warning("Its status file is missing, damaged or written by another version, so how this run went is "
                       "unknown; its log below may say.", icon=":material/help:")
        if job.state == "stopped":
            resumable = (job.path / "last.pt").is_file()
            st.warning("Its process is gone (killed or the machine restarted) although it never reported an end. "
                       + (f"Resume it with `python train.py --resume {job.path}`." if resumable else
                          "No epoch had finished, so there is nothing to resume: start it again."))
        rows = RunDir(job.path).metrics()
        if rows:
            st.plotly_chart(training_curves(rows), key=f"curves_{job.run_id}_{len(rows)}", config={"displayModeBar": False})
        test = RunDir(job.path).test_figures()
        if test:
            m = st.columns(4)
            m[0].metric("TEST accuracy", ui.pct(test["accuracy"]))
            m[1].metric("TEST macro AUC", fixed(test["macro_auc"]))
            m[2].metric("TEST sensitivity (COVID)", ui.pct(test["sensitivity"]))
            m[3].metric("TEST specificity (COVID)", ui.pct(test["specificity"]))
            if job.state == "finished" and job.task == "classify":
                st.caption(diagnose_offer(job.path / "best.pt", models))
        log = jobs.tail_log(job, 30)
        if log:
            with st.expander("Log (last 30 lines)", expanded=job.active):
                st.code(log, language=None)
        if not job.active:
            sure = st.checkbox("Delete this run for good: its folder, checkpoints, log and figures, and any site "
                               "validation of its model", key=f"delete_ok_{job.run_id}")
            if st.button("Delete run", key=f"delete_{job.run_id}", icon=":material/delete:", disabled=not sure):
                try:
                    jobs.delete(job)
                except (ConfigError, OSError) as exc:
                    st.error(f"Not deleted: {ui.plain(exc)}", icon=":material/block:")
                else:
                    st.toast(f"Deleted run {job.run_id}.")
                    st.rerun()


@st.fragment(run_every=2)
@ui.guarded("the runs panel")
def runs_panel() -> None:
    all_jobs = jobs.list_jobs()
    st.subheader(f"Runs ({len(all_jobs)})")
    if not all_jobs:
        st.caption("No runs yet. Fill in the form above to start one.")
    models = ui.catalog() if any(j.state == "finished" for j in all_jobs[:RUNS_SHOWN]) else []
    for job in all_jobs[:RUNS_SHOWN]:
        show_job(job, models)
    if len(all_jobs) > RUNS_SHOWN:
        st.caption(f"The newest {RUNS_SHOWN} of {len(all_jobs)} runs are shown; the others are in "
                   f"{code_span(default_runs_dir().resolve())}.")
    st.caption(f"Updated {time.strftime('%H:%M:%S')}")

