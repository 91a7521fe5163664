"""The Models page's mean heatmap per class: where a model looks, on average, in each class of a data set."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import ui
from covid_core.errors import CovidCoreError


@st.cache_data(show_spinner=False, max_entries=8)
def _mean_maps(model_key: str, data: str, method: str, limit: int, _classifier):
    from covid_core.explain import mean_heatmaps_and_thorax_share

    bar = st.progress(0.0, text="Computing heatmaps...")

    def progress(done, total):
        bar.progress(done / max(total, 1), text=f"Computing heatmaps: {done}/{total} images")

    result = mean_heatmaps_and_thorax_share(_classifier, data, method=method, limit=limit or None,
                                            on_progress=progress)
    bar.empty()
    return result


def mean_heatmaps_section(entry) -> None:
    """Ask for a data folder, then draw each class's mean heatmap over its mean film with its thorax share."""
    meta = entry.metadata
    st.subheader("Mean heatmap per class")
    explain_mod, explain_error = ui.optional_module("covid_core.explain")
    if explain_mod is None:
        st.info(explain_error)
        return
    data_dir = ui.data_folder_input("models_data", "Data folder with a TEST split")
    if data_dir is None:
        st.caption("Give the data folder the model was tested on to see where it looks, on average, for each class.")
        return
    try:
        on_disk = ui.data_fingerprint(str(Path(data_dir).resolve()))
    except CovidCoreError as exc:
        st.error(f"This folder cannot be read as a data set: {ui.plain(exc)}")
        return
    if meta.get("data_fingerprint") and on_disk != meta["data_fingerprint"]:
        st.warning(f"This model was trained and tested on another version of the data (fingerprint "
                   f"`{meta['data_fingerprint']}`) than the folder given here (`{on_disk}`): its stored TEST figures "
                   "describe that other version. Re-evaluate it with `python -m covid_core model-card CHECKPOINT --data "
                   "DATA_DIR` or retrain it.", icon=":material/difference:")
    g1, g2 = st.columns(2)
    method = g1.selectbox("Method", explain_mod.CAM_METHODS, key="models_cam")
    limit = g2.number_input("Images per class (0 = all)", min_value=0, value=40, step=10, key="models_limit")

    key = (f"{entry.path}:{entry.fingerprint}", str(Path(data_dir).resolve()), method, int(limit))
    if st.button("Compute mean heatmaps", key="models_cam_go") or st.session_state.get("models_cam_done") == key:
        try:
            maps, shares, images, films = _mean_maps(*key, ui.classifier_for(entry))
        except CovidCoreError as exc:
            st.error(str(exc))
        else:
            st.session_state["models_cam_done"] = key
            cols = st.columns(max(len(maps), 1))
            for col, (cls, m) in zip(cols, maps.items()):
                col.image(explain_mod.overlay(images[cls], m, opacity=0.5), width="stretch",
                          caption=f"{cls}: {ui.pct(shares.get(cls))} inside the thorax ({len(films[cls])} films)")
            st.caption("Each map is the mean heatmap of the films drawn over their mean film; the share is the mean over "
                       "those films of each heatmap's share inside that film's estimated thorax. With a limit, the "
                       "films are a seeded random sample of the class, so they come from its sources in proportion.")
            floor = explain_mod.MIN_THORAX_SHARE
            low = [f"{cls} ({ui.pct(share)})" for cls, share in shares.items() if share < floor]
            if low:
                st.warning(f"Possible shortcut: for {', '.join(low)} less than {floor:.0%} of the heatmap lies inside "
                           "the estimated thorax, on average over these films. The model may rely on text markers, "
                           "borders or the patient's age rather than the lungs for that class.",
                           icon=":material/warning:")
