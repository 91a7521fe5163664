"""Small shared UI helpers: cached loaders, the notice, the data-folder picker.

Nothing here computes; the computations live in covid_core.
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path

import pandas as pd
import streamlit as st

from covid_core.byte_cache import ByteCappedCache
from covid_core.csv_safe import safe_cell
from covid_core.data_roots import check_data_folder
from covid_core.errors import CovidCoreError
from covid_core.formatting import (code_span, markdown_plain as plain, pct,  # noqa: F401 (views use ui.plain, ui.pct)
                                   possessive)
from covid_core.model_catalog import CatalogEntry, list_checkpoints, site_file_for, weights_dir
from covid_core.report import DISCLAIMER, site_validation_text
from covid_core.site_file import load_classifier_at_site
from covid_core.verdict import THRESHOLD_RATES, call_caveat, rate_text, site_doubt_sentence

REPO_ROOT = Path(__file__).resolve().parents[1]

# A training run's state as an icon (Train page)
STATE_ICONS = {"starting": ":material/hourglass_top:", "preparing": ":material/hourglass_top:",
               "running": ":material/play_circle:", "evaluating": ":material/science:",
               "finished": ":material/check_circle:", "failed": ":material/error:", "cancelled": ":material/stop_circle:",
               "stopped": ":material/warning:", "unknown": ":material/help:"}


def unexpected_error(exc: Exception, where: str, part: str = "page") -> None:
    """What a user sees when ``where`` (a page, or a live panel: ``part``) fails in a way no check foresaw: its kind
    and what it did not touch, never a traceback with server paths, which goes to the server's log."""
    import logging

    logging.getLogger("covid_xray_app").error("%s failed", where, exc_info=exc)
    st.error(f"This {part} stopped on an unexpected error "
             f"({type(exc).__name__}). Models, site files and training runs on the server are not affected; try "
             "again, or reload the page. The details are in the server's log.", icon=":material/error:")


def guarded(where: str):
    """Decorator for a live panel (an ``st.fragment``), which reruns on its own, outside the page's own guard: an
    unexpected error becomes :func:`unexpected_error`'s message."""
    def wrap(panel):
        @functools.wraps(panel)
        def run(*args, **kwargs):
            try:
                return panel(*args, **kwargs)
            except Exception as exc:
                unexpected_error(exc, where, part="panel")
        return run
    return wrap


def research_notice() -> None:
    st.warning(f"**Research use only - not for diagnosis.** {DISCLAIMER.split('. ', 1)[1]}", icon=":material/info:")


def plain_table(frame: pd.DataFrame) -> None:
    """``st.table`` of ``frame`` with every text cell, row name and column name shown as it is: the table renders
    Markdown, and a DICOM header or a checkpoint from elsewhere could otherwise show a link, or an image that the
    browser fetches from another host. A cell keeps to one line."""
    def shown(value):
        return plain(" ".join(value.split())) if isinstance(value, str) else value

    st.table(frame.map(shown).rename(index=shown, columns=shown))


def optional_module(name: str):
    """(module, None) or (None, message) when a part of covid_core is missing or broken."""
    try:
        return importlib.import_module(name), None
    except Exception as exc:  # the page degrades instead of crashing
        return None, f"`{name}` is not available ({type(exc).__name__}: {exc})."


@st.cache_resource(show_spinner="Loading model...", max_entries=4)
def cached_classifier(path: str, mtime_ns: int, site: str | None = None, site_mtime_ns: int = 0,
                      verdicts_unvalidated: bool = False):
    """Loaded once per checkpoint (and site file) version: the mtimes in the key reload a changed file."""
    return load_classifier_at_site(path, site=site, verdicts_unvalidated=verdicts_unvalidated)


@st.cache_resource
def case_cache() -> ByteCappedCache:
    """Analysed cases and heatmaps of every session in this server process, capped in bytes
    ($COVID_XRAY_CACHE_MB, default 512): memory stays flat whatever users upload."""
    return ByteCappedCache(int(float(os.environ.get("COVID_XRAY_CACHE_MB", "512")) * 2**20))


def classifier_for(entry: CatalogEntry, verdicts_unvalidated: bool = False):
    """The entry's classifier with its active site file applied (``<name>.site.json`` beside it); a site file
    that does not fit is reported on the page and left out. Without a site file its COVID-19 verdicts are withheld
    unless ``verdicts_unvalidated`` (research use)."""
    site = site_file_for(entry.path)
    if site is not None:
        try:
            return cached_classifier(str(entry.path), entry.path.stat().st_mtime_ns, str(site), site.stat().st_mtime_ns)
        except CovidCoreError as exc:
            st.warning(f"The site file {code_span(site.name)} was not applied: {plain(exc)}",
                       icon=":material/domain_disabled:")
    return cached_classifier(str(entry.path), entry.path.stat().st_mtime_ns, verdicts_unvalidated=verdicts_unvalidated)


def case_key(entry: CatalogEntry, classifier) -> str:
    """What a case scored with ``classifier`` depends on besides the film: the weights, the site file applied
    (its version) and whether verdicts are withheld for want of one. Cached cases are keyed by it."""
    from covid_core.inference import verdict_needs_site  # the scoring modules load with the first film, not at start

    site = classifier.site.version if classifier.site is not None else "no site"
    return f"{entry.path}:{entry.fingerprint}:{site}:{verdict_needs_site(classifier)}"


def page_watch():
    """A check, safe to call from any thread, that this browser page (its session) is still connected; None outside
    a running server (a test's AppTest)."""
    from streamlit.runtime import Runtime, exists
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not exists():
        return None
    runtime, session = Runtime.instance(), ctx.session_id
    return lambda: runtime.is_active_session(session)


def validation_jobs():
    """The server's site validations (covid_core.site_job.ValidationJobs), shared by every session; finished ones
    are saved in the runs folder's ``site-validations``, so the newest of each model outlives a restart."""
    from covid_core.runs import default_runs_dir

    return _validation_jobs(str(default_runs_dir() / "site-validations"))


@st.cache_resource
def _validation_jobs(store: str):
    from covid_core.site_job import ValidationJobs

    return ValidationJobs(store=store)


@st.cache_resource(show_spinner="Loading the denoising autoencoder...", max_entries=2)
def cached_dae(path: str, mtime_ns: int):
    from covid_core.denoise import load_dae

    return load_dae(path)


def dae_path() -> Path:
    return weights_dir() / "dae.pt"


def dae_or_message():
    """(loaded DAE, None) or (None, message saying what is missing and how to get it)."""
    path = dae_path()
    if not path.is_file():
        return None, (f"No denoising autoencoder found at `{path}`. Train one on the **Train** page "
                      "(task: denoiser) and copy its `best.pt` there as `dae.pt`.")
    mod, err = optional_module("covid_core.denoise")
    if mod is None:
        return None, err
    try:
        return cached_dae(str(path), path.stat().st_mtime_ns), None
    except Exception as exc:
        return None, f"The denoiser at {code_span(path)} could not be loaded: {plain(str(exc))}"


def catalog() -> list[CatalogEntry]:
    return list_checkpoints()


def no_model_help() -> None:
    st.info(
        f"No usable classifier checkpoint was found. Put a checkpoint (e.g. `resnet18.pt`) in `{weights_dir()}` "
        "(or point `COVID_XRAY_WEIGHTS` at a folder that holds one), or train one on the **Train** page: "
        "finished runs appear here automatically.", icon=":material/model_training:")


def data_folder_input(key: str, label: str = "Data folder") -> Path | None:
    """A text box for the data folder (default ``$COVID_XRAY_DATA``); None until it names a folder."""
    default = st.session_state.get("data_folder") or os.environ.get("COVID_XRAY_DATA", "")
    value = st.text_input(label, value=default, key=key, placeholder="/path/to/coronahack",
                          help="A folder in a layout covid_core reads: CoronaHack (Kaggle), "
                               "train/<class>/ + test/<class>/ folders, or COVIDx. "
                               "It must lie inside a configured data folder (COVID_XRAY_DATA_ROOTS). "
                               "Default: the COVID_XRAY_DATA environment variable.").strip()
    if not value:
        return None
    try:  # the same rule as the Train and Validate pages: only folders inside the configured data roots
        path = check_data_folder(value)
    except CovidCoreError as exc:
        st.error(str(exc)[0].upper() + str(exc)[1:] + ".")
        return None
    st.session_state["data_folder"] = value
    return path


@st.cache_data(show_spinner=False, max_entries=8, ttl=60)
def data_fingerprint(folder: str) -> str:
    """The data set fingerprint of a folder (file list, sizes, splits, findings), as checkpoints store it."""
    from covid_core.datasets import load_dataset

    return load_dataset(folder).fingerprint()


def capped_uploads(uploads: list) -> list:
    """The first files of a batch within the batch limits; says what was left out.

    Each file's size is capped by server.maxUploadSize (.streamlit/config.toml); these limits cap one batch
    ($COVID_XRAY_MAX_FILES files, default 100; $COVID_XRAY_MAX_BATCH_MB, default 500), so a session never
    holds more than that in memory.
    """
    max_files = int(os.environ.get("COVID_XRAY_MAX_FILES", "100"))
    max_mb = float(os.environ.get("COVID_XRAY_MAX_BATCH_MB", "500"))
    kept, total = [], 0
    for up in uploads:
        if len(kept) >= max_files or total + up.size > max_mb * 2**20:
            break
        kept.append(up)
        total += up.size
    if len(kept) < len(uploads):
        st.warning(f"{len(uploads)} files uploaded; only the first {len(kept)} are analysed (limit: "
                   f"{max_files} files and {max_mb:.0f} MB per batch). Remove some files or "
                   f"analyse the rest in another batch. Left out: {', '.join(u.name for u in uploads[len(kept):][:5])}"
                   f"{' ...' if len(uploads) - len(kept) > 5 else ''}.", icon=":material/block:")
    return kept


def distinct_names(uploads: list) -> list[tuple[str, object]]:
    """(name shown, upload) per file. The browser gives only file names, so two files called 1.png (from two
    folders) would look the same in the results and the case picker; the second is shown as "1.png (2)"."""
    seen: dict[str, int] = {}
    named = []
    for up in uploads:
        seen[up.name] = seen.get(up.name, 0) + 1
        named.append((up.name if seen[up.name] == 1 else f"{up.name} ({seen[up.name]})", up))
    return named


def rates_table(rates: dict, emphasis: str | None = None, title: str = "On TEST at this threshold") -> str:
    """Markdown table of a threshold's TEST rates with their counts; the ``emphasis`` rate ("ppv", "npv") in bold.
    A table, not st.metric columns: it stays readable in a narrow column or window."""
    rows = [f"| {'**' + name + '**' if key == emphasis else name} | {rate_text(rates, key)} |"
            for key, name in THRESHOLD_RATES if rates.get(key) is not None]
    return f"| {title} | |\n| --- | --- |\n" + "\n".join(rows) if rows else ""


def results_csv(table, entry, classifier) -> str:
    """The results table as CSV, every row naming the model (its weights fingerprint) and the site validation in
    force, so that a saved file can be traced to what produced it."""
    return table.assign(model=safe_cell(f"{entry.label} ({entry.fingerprint})"),
                        **{"site validation": safe_cell(site_validation_text(classifier.site))}).to_csv(
        index=False, float_format="%.4f")


def results_table(table, site=None) -> None:
    """The many-files results table. A column that holds nothing for any file is left out of view (before site
    validation no probability is shown; without a bad file there is no error), so "None" never fills a column, and
    the COVID-19 probability is shown once when it is a class's probability; the CSV keeps every column, so its
    readers see the same columns every time. Under the table, a caption names unconfirmed verdicts and, at an
    active ``site`` whose films do not confirm the model, why (the poor figures, or too few films)."""
    filled = [c for c in table.columns if c == "file" or table[c].map(lambda v: pd.notna(v) and v != "").any()]
    figures = [c for c in filled if c.startswith("p(")]  # without them, the room goes to a withheld verdict's reason
    score = table["COVID-19 probability"]
    if "COVID-19 probability" in filled and any(
            ((table[c] - score).abs() < 1e-9).where(score.notna(), True).all() for c in figures):
        filled.remove("COVID-19 probability")  # the same figure as a class's column (no site head): shown once
    own_score = "COVID-19 probability" in filled  # a site's head scored the verdicts: a column of its own
    verdict_width = 140 if own_score else 215 if figures else 380  # all fit in 938 px
    class_help = ("The network's own probability of this class. The verdict uses the COVID-19 probability column, "
                  "which the site's validation adapted" if own_score else "The network's probability of this class")
    st.dataframe(table, hide_index=True, width="stretch", column_order=filled, column_config={
        "file": st.column_config.TextColumn(width=165, pinned=True),
        "call": st.column_config.TextColumn(width=190),
        "verdict": st.column_config.TextColumn(width=verdict_width),
        "COVID-19 probability": st.column_config.ProgressColumn(  # a bar, as the class columns: a film without a
            min_value=0.0, max_value=1.0, format="percent", width=130,  # verdict has an empty cell, not "None"
            help="The probability the COVID-19 verdict compares with its operating threshold"),
        "out of distribution": st.column_config.CheckboxColumn(
            "unfamiliar", width=80, help="The film is unlike the X-rays the model learned from (or looks turned or "
                                         "inverted): no verdict is given for it"),
        **{c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0, format="percent",
                                             width=75 if own_score else 85, help=class_help)
           for c in table.columns if c.startswith("p(")}})
    if table["verdict"].str.endswith("(unconfirmed)").any():
        st.caption(":material/warning: Verdicts marked unconfirmed come from a model not validated at your hospital "
                   "(research use): at hospitals it never saw, such models call many normal adults COVID-19.")
    caveat = call_caveat(site)  # for the calls of a model without a COVID-19 class
    if caveat and table["verdict"].str.startswith("Most probable:").any():
        st.caption(f":material/warning: {caveat}")
    if site is not None and not site.confirmed and table["verdict"].str.startswith("COVID-19:").any():
        whose = possessive(plain(site.name))
        st.caption(f":material/warning: {'Often wrong here' if site.poor else 'Unconfirmed here'}: "
                   f"{site_doubt_sentence(site, whose)}.")
