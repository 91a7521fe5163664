"""A site report's figures as the pages show them, and the Models page's "Validation at your site" section: a
model's active site file, and retiring it."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

import ui
from covid_core.errors import CovidCoreError
from covid_core.formatting import code_span, counts_text
from covid_core.model_catalog import retire_site_file, retired_site_files, site_file_for
from covid_core.site_file import load_site
from covid_core.site_job import (adaptation_lines, call_only, call_rows, call_text, comparison_rows, given_rates_text,
                                 poor_site_warning, predictive_values_text, report_counts, sample_size_text,
                                 site_history_rows)
from covid_core.targets import COVID_CLASS


def site_figures(report: dict, **table) -> str:
    """The before/after table of a site report, its sentences (verdicts given, PPV and NPV) and, where the model
    does poorly there, the warning; returns that warning ("" without one). ``table``: st.dataframe options."""
    st.dataframe(pd.DataFrame(comparison_rows(report)), hide_index=True, **table)
    for text in (given_rates_text(report), predictive_values_text(report), sample_size_text(report)):
        if text:
            st.caption(text)
    poor = poor_site_warning(report)
    if poor:
        st.warning(poor, icon=":material/report:")
    calls = call_rows(report)
    if calls:
        st.markdown(f"**The call in words on your films** (films given a {'call' if call_only(report) else 'verdict'})")
        st.dataframe(pd.DataFrame(calls), hide_index=True, **table)
        st.caption(call_text(report))
    return poor


def site_section(entry) -> None:
    """Where this model was validated (the site file Diagnose applies) and how well: its COVID-19 verdicts, or for a
    model without a COVID-19 class its call between normal and pneumonia."""
    covid = COVID_CLASS.get(entry.metadata.get("target")) is not None
    until = ("gives no COVID-19 verdict from this model" if covid
             else "marks this model's calls between normal and pneumonia unconfirmed")
    st.subheader("Validation at your site")
    done = st.session_state.pop("models_site_retired", None)
    if done:
        st.success(done, icon=":material/domain_disabled:")
    path = site_file_for(entry.path)
    if path is None:
        st.info(f"Not validated at your hospital: Diagnose {until} until a validation on your own labelled films "
                "is made its active site.", icon=":material/domain:")
        st.page_link("views/validate.py", label="Validate it on your hospital's films", icon=":material/fact_check:")
        history(entry)
        return
    try:
        site = load_site(path, entry.path)  # its name read back as plain words
        report = json.loads(path.read_text())
    except (CovidCoreError, OSError, ValueError) as exc:
        st.warning(f"{code_span(path.name)} is not applied: {ui.plain(exc)}", icon=":material/domain_disabled:")
    else:
        made = str(report.get("created", "at an unknown time")).replace("T", " ")
        st.markdown(f"Active site file `{path.name}`: **{site.name}**, made {ui.plain(made)} from "
                    f"{ui.plain(counts_text(report_counts(report)))}.")
        if "before" in report and "after" in report:
            site_figures(report)
        for word, line in adaptation_lines(report):
            st.caption(f"{word}: {ui.plain(line)}")  # the file's own words, shown as they are
    history(entry)
    if st.button("Retire this site file", key="models_site_retire", icon=":material/domain_disabled:",
                 help=f"Renamed beside the model (kept, not deleted). Diagnose then {until} until another "
                      "validation is made active."):
        try:
            retired = retire_site_file(entry.path)
        except OSError as exc:
            st.error(f"`{path.name}` could not be renamed: {exc.strerror or exc}")
        else:
            st.session_state["models_site_retired"] = (f"`{path.name}` is retired (now `{retired.name}`): Diagnose "
                                                       f"{until} until another validation is made active.")
            st.rerun()


def history(entry) -> None:
    """The model's earlier, retired site files, newest first (kept beside it, never deleted)."""
    earlier = retired_site_files(entry.path)
    if earlier:
        with st.expander(f"Earlier site files ({len(earlier)}, retired)"):
            st.dataframe(pd.DataFrame(site_history_rows(earlier)), hide_index=True)
            st.caption("Kept beside the model. To use one again, rename it to "
                       f"`{entry.path.stem}.site.json` (after retiring the active one).")
