"""Models: a model card for every checkpoint in the weights folder and every finished run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

import ui
from covid_core.errors import CovidCoreError
from covid_core.cards.classifier import card_markdown
from covid_core.evaluation import false_covid_calls, shortcut_rows
from covid_core.model_catalog import source_confounds, weights_dir
from covid_core.model_charts import confusion_figure, roc_figure
from covid_core.targets import COVID_CLASS


def overview_row(e) -> dict:
    test = (e.metadata.get("metrics") or {}).get("test") or {}
    at_threshold = (e.metadata.get("threshold") or {}).get("test") or {}
    # A denoiser is not a classifier, but it is not broken either: say where it is used, not what is "wrong".
    used_on = "Diagnose" if e.usable else ("Denoise" if e.kind == "denoiser" else None)
    return {"checkpoint": e.label, "used on": used_on or "unusable", "kind": e.kind,
            "architecture": e.metadata.get("model_name", ""), "target": e.metadata.get("target", ""),
            "TEST macro AUC": test.get("macro_auc"), "TEST accuracy": test.get("accuracy"), "TEST ECE": test.get("ece"),
            "COVID-19 sensitivity": at_threshold.get("sensitivity"), "COVID-19 PPV": at_threshold.get("ppv"),
            "fingerprint": e.fingerprint, "size (MB)": round(e.size_mb, 1),
            "problem": "" if used_on else e.reason or ""}


st.title("Models")
entries = ui.catalog()
if not entries:
    ui.no_model_help()
    st.stop()

threshold_help = "On TEST at the COVID-19 operating threshold chosen on VALIDATION"
st.dataframe(pd.DataFrame([overview_row(e) for e in entries]), hide_index=True, column_config={
    **{name: st.column_config.NumberColumn(format="%.3f") for name in ("TEST macro AUC", "TEST accuracy", "TEST ECE")},
    **{name: st.column_config.NumberColumn(format="%.3f", help=threshold_help)
       for name in ("COVID-19 sensitivity", "COVID-19 PPV")}})
st.caption(f"Weights folder: `{weights_dir()}` (set `COVID_XRAY_WEIGHTS` to change); finished training runs are "
           "listed too.")

cards = [e for e in entries if e.usable]
if not cards:
    st.stop()
by_path = {str(e.path): e for e in cards}  # options are strings: entries hold tensors, unsafe to compare
entry = by_path[st.selectbox("Model card", list(by_path), format_func=lambda p: by_path[p].summary(), key="models_pick")]
meta = entry.metadata
metrics = meta.get("metrics") or {}
test = metrics.get("test") or {}
classes = list(meta.get("classes") or test.get("classes") or [])

st.header(entry.label)
c = st.columns(4)
c[0].metric("Architecture", meta.get("model_name", "?"))
c[1].metric("Target", meta.get("target", "?"))
c[2].metric("TEST macro AUC", "n/a" if test.get("macro_auc") is None else f"{test['macro_auc']:.3f}")
c[3].metric("TEST accuracy", ui.pct(test.get("accuracy")))
facts = {"classes": ", ".join(classes), "weights fingerprint (SHA-256)": entry.fingerprint,
         "data set fingerprint": meta.get("data_fingerprint", "n/a"), "created": meta.get("created", "n/a"),
         "training time (s)": meta.get("training_time_s", "n/a"), "hardware": meta.get("hardware", "n/a"),
         "input": f"{(meta.get('preprocess') or {}).get('image_size', '?')} px, "
                  f"fit {(meta.get('preprocess') or {}).get('fit', '?')}, "
                  f"equalize {(meta.get('preprocess') or {}).get('equalize', '?')}",
         "temperature (calibration)": f"{meta['temperature']:.3f}" if meta.get("temperature") else "n/a",
         "file": str(entry.path)}
st.table(pd.DataFrame({"value": [str(v) for v in facts.values()]}, index=list(facts)))

if not test:
    st.warning("This checkpoint holds no TEST metrics (training was cancelled before evaluation, or it was made "
               "elsewhere). Treat it as unvalidated.")

thr = meta.get("threshold") or {}
if thr:
    st.subheader("Operating threshold")
    st.markdown(f"COVID-19 positive when p({thr.get('class', '?')}) >= **{thr.get('value', 0):.3f}**")
    table = ui.rates_table(thr.get("test") or {})
    if table:
        st.markdown(table)
    st.caption(f"Chosen on VALIDATION: {thr.get('rule', '?')} (validation sensitivity "
               f"{ui.pct(thr.get('val_sensitivity'))}, specificity {ui.pct(thr.get('val_specificity'))}).")

left, right = st.columns(2)
roc = metrics.get("test_roc") or {}
if roc:
    left.plotly_chart(roc_figure(roc, test.get("per_class") or {}), key="models_roc")
if test.get("confusion_matrix"):
    right.plotly_chart(confusion_figure(test["confusion_matrix"], classes), key="models_cm")

per_class = test.get("per_class") or {}
if per_class:
    st.subheader("TEST metrics per class")
    st.dataframe(pd.DataFrame(per_class).T, column_config={
        k: st.column_config.NumberColumn(format="%.3f") for k in ("sensitivity", "specificity", "ppv", "auc")})

within = shortcut_rows(meta)
if within:
    st.subheader("Disease or hospital? (within-source figures)")
    st.caption("Within one source the hospital, age group and markers are the same for both answers, so only the "
               "lungs can separate them: an AUC near 0.5 means the model reads the source, not the disease.")
    st.dataframe(pd.DataFrame(within), hide_index=True, width="stretch",
                 column_config={"AUC / accuracy": st.column_config.NumberColumn(format="%.3f")})
else:
    st.info("This checkpoint holds no within-source figures: regenerate its card with "
            "`python -m covid_core model-card CHECKPOINT --data DATA_DIR`.")

per_source = test.get("per_source") or {}
if per_source:
    st.subheader("TEST results per image source")
    rows = [{"source": s, "images": v.get("n"), "accuracy": v.get("accuracy"),
             **{f"true {c}": (v.get("true") or {}).get(c, 0) for c in classes}} for s, v in per_source.items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True,
                 column_config={"accuracy": st.column_config.NumberColumn(format="%.3f")})
    for w in source_confounds(per_source):
        st.warning(f"Possible confound - {w}.", icon=":material/warning:")

card = meta.get("card") or {}
covid_class = COVID_CLASS.get(meta.get("target"))
calls, at_threshold = false_covid_calls(meta)
called_how = ("given a COVID-19 positive verdict at the threshold" if at_threshold else
              f"whose most probable class was {covid_class}")
if card or calls:
    st.subheader("Limits measured on TEST")
    rows = []
    pair = card.get("normal_vs_pneumonia")
    if pair:
        rows.append(("normal vs pneumonia", f"AUC {pair['auc']:.3f}, accuracy {ui.pct(pair.get('accuracy'))} "
                                            f"({pair['n']} films whose true class is one of the two)"))
    thorax = card.get("thorax_share") or {}
    if thorax:
        rows.append(("Grad-CAM energy inside the thorax", ", ".join(f"{c} {ui.pct(v)}" for c, v in thorax.items())
                     + f" (mean over at most {card.get('thorax_n', '?')} films per class; evidence outside the chest "
                       "is a shortcut warning sign)"))
    check = card.get("ood_check")
    if check:
        rows.append(("flagged as unlike the training X-rays",
                     f"{ui.pct(check['non_xray_flagged'])} of {check['non_xray_n']} non-X-rays, "
                     f"{ui.pct(check['transformed_xray_flagged'])} of {check['transformed_xray_n']} rotated or "
                     f"inverted X-rays, {ui.pct(check['test_flagged'])} of {check['test_n']} TEST X-rays"))
    if rows:
        st.markdown("| measure | on TEST |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in rows))
    if calls:
        st.dataframe(pd.DataFrame(calls), hide_index=True, column_config={
            "share": st.column_config.ProgressColumn("share called COVID-19", format="percent", min_value=0,
                                                     max_value=1)})
        st.caption(f"Non-COVID TEST films {called_how}, by source and true class. Adult normals (nih) and adult "
                   "non-COVID pneumonias (cohen) called COVID-19 far more often than paediatric films (kermany) mean "
                   "the model partly learned age or source.")
    with st.expander("Known limits and the full model card"):
        md = card_markdown(meta, entry.path.name, f"weights/{entry.path.name}")
        st.markdown(md)
        st.download_button("Download model card (Markdown)", md, file_name=f"{entry.path.stem}.md",
                           mime="text/markdown", key="models_card_dl")

train_config = meta.get("train_config") or {}
if train_config:
    with st.expander("Training settings"):
        st.table(pd.DataFrame({"value": [str(v) for v in train_config.values()]}, index=list(train_config)))

st.subheader("Mean Grad-CAM per class")
explain_mod, explain_error = ui.optional_module("covid_core.explain")
if explain_mod is None:
    st.info(explain_error)
    st.stop()
data_dir = ui.data_folder_input("models_data", "Data folder with a TEST split")
if data_dir is None:
    st.caption("Give the data folder the model was tested on to see where it looks, on average, for each class.")
    st.stop()
try:
    on_disk = ui.data_fingerprint(str(Path(data_dir).resolve()))
except CovidCoreError as exc:
    st.error(f"This folder cannot be read as a data set: {exc}")
    st.stop()
if meta.get("data_fingerprint") and on_disk != meta["data_fingerprint"]:
    st.warning(f"This model was trained and tested on another version of the data (fingerprint "
               f"`{meta['data_fingerprint']}`) than the folder given here (`{on_disk}`): its stored TEST figures "
               "describe that other version. Re-evaluate it with `python -m covid_core model-card CHECKPOINT --data "
               "DATA_DIR` or retrain it.", icon=":material/difference:")
g1, g2 = st.columns(2)
method = g1.selectbox("Method", explain_mod.CAM_METHODS, key="models_cam")
limit = g2.number_input("Images per class (0 = all)", min_value=0, value=40, step=10, key="models_limit")


@st.cache_data(show_spinner=False, max_entries=8)
def mean_maps(model_key: str, data: str, method: str, limit: int, _classifier):
    bar = st.progress(0.0, text="Computing heatmaps...")

    def progress(done, total):
        bar.progress(done / max(total, 1), text=f"Computing heatmaps: {done}/{total} images")

    result = explain_mod.mean_heatmaps_and_thorax_share(_classifier, data, method=method, limit=limit or None,
                                                        on_progress=progress)
    bar.empty()
    return result


key = (f"{entry.path}:{entry.fingerprint}", str(Path(data_dir).resolve()), method, int(limit))
if st.button("Compute mean heatmaps", key="models_cam_go") or st.session_state.get("models_cam_done") == key:
    try:
        maps, shares, images, films = mean_maps(*key, ui.classifier_for(entry))
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
