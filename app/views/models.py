"""Models: a model card for every checkpoint in the weights folder and every finished run."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import ui
from mean_heatmaps import mean_heatmaps_section
from model_overview import denoiser_card, overview_section
from site_panel import site_section
from covid_core.cards.classifier import card_markdown
from covid_core.evaluation import TEXTURE_SWAP_NOTE, WITHIN_SOURCE_INTERVALS_NOTE, false_covid_calls, shortcut_rows
from covid_core.formatting import fixed, pct
from covid_core.goals import (GOAL_INTERVALS_NOTE, goal_figure_text, goal_met_text, goal_rows, interval_text,
                              new_hospital_caption, test_set_limit)
from covid_core.model_catalog import source_confounds
from covid_core.model_charts import confusion_figure, roc_figure
from covid_core.model_summary import measured_limits, model_facts, per_source_rows
from covid_core.targets import COVID_CLASS

st.title("Models")
entries = ui.catalog()
if not entries:
    ui.no_model_help()
    st.stop()

overview_section(entries)

cards = [e for e in entries if e.usable or (e.kind == "denoiser" and e.metadata)]
if not cards:
    st.stop()
by_path = {str(e.path): e for e in cards}  # options are strings: entries hold tensors, unsafe to compare
entry = by_path[st.selectbox("Model card", list(by_path), format_func=lambda p: by_path[p].summary(), key="models_pick")]
if entry.kind == "denoiser":
    denoiser_card(entry)
    st.stop()
meta = entry.metadata
metrics = meta.get("metrics") or {}
test = metrics.get("test") or {}
classes = list(meta.get("classes") or test.get("classes") or [])

st.header(ui.plain(entry.label))
for note in meta.get("damaged_sections") or []:
    st.warning(f"Not shown, damaged or laid out by another version: {ui.plain(note)}", icon=":material/broken_image:")
# Architecture and target as text: as metrics their names were cut ("resnet...") in a 1024 px window.
st.markdown(f"**{ui.plain(meta.get('model_name', '?'))}**, target **{ui.plain(meta.get('target', '?'))}**")
c = st.columns(3)
c[0].metric("TEST macro AUC", fixed(test.get("macro_auc")))
c[1].metric("TEST accuracy", pct(test.get("accuracy")))
c[2].metric("TEST ECE", fixed(test.get("ece")), help="Expected calibration error (lower is better)")
if test and (limit := test_set_limit(meta)):
    st.warning(limit, icon=":material/domain:")
facts = model_facts(entry, classes)
ui.plain_table(pd.DataFrame({"value": list(facts.values())}, index=list(facts)))

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
    st.caption(f"Chosen on VALIDATION: {ui.plain(thr.get('rule', '?'))} (validation sensitivity "
               f"{pct(thr.get('val_sensitivity'))}, specificity {pct(thr.get('val_specificity'))}).")
site_section(entry)

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
               "lungs can separate them: an AUC near 0.5 means the model reads the source, not the disease. "
               + WITHIN_SOURCE_INTERVALS_NOTE + " " + TEXTURE_SWAP_NOTE)
    # a static table: its long questions wrap, so every figure stays in view in a 1024 px window
    ui.plain_table(pd.DataFrame([{**r, "figure": fixed(r["figure"]), "interval": interval_text(r["interval"]),
                                  "positives labelled as such": "" if r["positives labelled as such"] is None
                                  else pct(r["positives labelled as such"])} for r in within])
                   .set_index("split").rename(columns={"interval": "95% interval"}))
else:
    st.info("This checkpoint holds no within-source figures: regenerate its card with "
            "`python -m covid_core model-card CHECKPOINT --data DATA_DIR`.")

goals = goal_rows(meta)
if goals:
    st.subheader("Goals")
    # static, as the table above: its cells wrap, so whether each goal is met stays in view in a 1024 px window
    ui.plain_table(pd.DataFrame([{"goal": r["goal"], "target": r["target"], "TEST (95% interval)": goal_figure_text(r),
                                  "met": goal_met_text(r)} for r in goals]).set_index("goal"))
    st.caption(f"{GOAL_INTERVALS_NOTE} {new_hospital_caption()}")

per_source = test.get("per_source") or {}
if per_source:
    st.subheader("TEST results per image source")
    st.dataframe(pd.DataFrame(per_source_rows(per_source, classes)), hide_index=True,
                 column_config={"accuracy": st.column_config.NumberColumn(format="%.3f")})
    for w in source_confounds(per_source):
        st.warning(f"Possible confound - {ui.plain(w)}.", icon=":material/warning:")

card = meta.get("card") or {}
covid_class = COVID_CLASS.get(meta.get("target"))
calls, at_threshold = false_covid_calls(meta)
called_how = ("given a COVID-19 positive verdict at the threshold" if at_threshold else
              f"whose most probable class was {covid_class}")
if card or calls:
    st.subheader("Limits measured on TEST")
    rows = measured_limits(card)
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
        ui.plain_table(pd.DataFrame({"value": [str(v) for v in train_config.values()]}, index=list(train_config)))

mean_heatmaps_section(entry)
