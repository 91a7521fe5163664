"""Explore data: counts, source x class, filled / not applicable / missing metadata, duplicates and leaks,
distributions, outliers, samples."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import ui
from explore_sources import source_section
from covid_core import eda, eda_charts
from covid_core.decode import decode_image
from covid_core.errors import CovidCoreError

st.title("Explore data")
data_dir = ui.data_folder_input("explore_data")
if data_dir is None:
    st.info("Give a data folder to explore: the Kaggle **CoronaHack - Chest X-Ray-Dataset** unpacked as it comes "
            "(the folder with `Chest_Xray_Corona_Metadata.csv`), `train/<class>/` + `test/<class>/` folders, or "
            "COVIDx. Set `COVID_XRAY_DATA` to fill this in by default.", icon=":material/folder_open:")
    st.stop()


@st.cache_data(show_spinner=False, max_entries=4)
def load_summary(root: str) -> eda.DataSummary:
    """Cached in memory per folder; eda.summarize also caches on disk by the data fingerprint."""
    bar = st.progress(0.0, text="Reading the data set...")

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"Computing image statistics (first time only): {done}/{total}")

    summary = eda.summarize(root, on_progress=progress)
    bar.empty()
    return summary


@st.cache_data(show_spinner=False, max_entries=256)
def thumb(path: str):
    return eda.thumbnail(path)


try:
    summary = load_summary(str(Path(data_dir).resolve()))
except CovidCoreError as exc:
    st.error(f"This folder cannot be read as a data set: {ui.plain(exc)}")
    st.stop()

stats = summary.stats
m = st.columns(4)
m[0].metric("Images", f"{len(stats):,}")
m[1].metric("Unreadable", int((stats["error"] != "").sum()))
m[2].metric("Duplicate files", len(summary.duplicates))
m[3].metric("Cross-split leaks", len(summary.leaks()))
st.caption(f"Layout `{summary.layout}` · data fingerprint `{summary.fingerprint}` · statistics "
           + "computed from the images the first time this folder was opened, then read from the disk cache until "
           "its files change")

tabs = st.tabs(["Counts & quality", "Distributions", "Mean images", "Outliers", "Samples", "Equalization"])

with tabs[0]:
    c1, c2 = st.columns(2)
    c1.plotly_chart(eda_charts.class_balance(summary), key="eda_balance")
    c2.plotly_chart(eda_charts.split_finding_heatmap(summary), key="eda_cooc")
    counts = summary.counts().pivot(index="finding", columns="split", values="images").fillna(0).astype(int)
    c1.dataframe(counts)
    # Full width, and the table without "applies to" (the caption below says it): in a 1024 px window the column
    # names and the missing share did not fit.
    st.plotly_chart(eda_charts.missing_values(summary), key="eda_missing")
    st.dataframe(summary.missing.drop(columns="applies_to").rename(columns={"not_applicable": "not applicable",
                                                                            "share": "missing share"}),
                 hide_index=True, column_config={"missing share": st.column_config.NumberColumn(
                     format="percent", help="Missing, as a share of the rows the column applies to.")})
    not_applicable = summary.missing.loc[summary.missing["not_applicable"] > 0, "column"].tolist()
    if not_applicable:
        st.caption(f"{', '.join(f'`{c}`' for c in not_applicable)} describe a pneumonia: on a Normal film they are "
                   "empty because they do not apply, and are counted as **not applicable**, not missing. "
                   "**Missing** counts empty values where a column applies, e.g. a pneumonia whose specific "
                   "pathogen is not given; its share is of the rows the column applies to (the non-Normal ones).")

    source_section(summary)
    st.subheader("Duplicates (identical bytes)")
    if len(summary.duplicates):
        if len(summary.leaks()):
            st.error(f"{len(summary.leaks())} files have identical copies in another split: TEST results are "
                     "inflated until they are removed.", icon=":material/warning:")
        st.dataframe(summary.duplicates, hide_index=True)
    else:
        st.success("No byte-identical duplicates, so no cross-split leaks by hash.", icon=":material/check:")
    errors = stats[stats["error"] != ""]
    if len(errors):
        st.subheader("Unreadable files")
        st.dataframe(errors[["filename", "split", "finding", "error"]], hide_index=True)

with tabs[1]:
    col, kind = st.columns(2)
    column = col.selectbox("Statistic", list(eda_charts.STAT_LABELS), format_func=eda_charts.STAT_LABELS.get,
                           index=3, key="eda_stat")
    kind = kind.radio("Chart", ["histogram", "violin"], horizontal=True, key="eda_kind")
    st.plotly_chart(eda_charts.distribution(summary, column, kind), key="eda_dist")
    # One under the other: side by side in a 1024 px window the scatter's legend left it a sliver of plot.
    st.plotly_chart(eda_charts.qq_plot(summary), key="eda_qq")
    st.plotly_chart(eda_charts.size_scatter(summary), key="eda_scatter")

with tabs[2]:
    st.plotly_chart(eda_charts.mean_images(summary), key="eda_mean")
    st.caption("Bottom row: where each class is brighter (red) or darker (blue) than the average of the classes. "
               "Differences outside the lungs (text, borders, position) hint at source shortcuts.")

with tabs[3]:
    out = summary.outliers()
    st.write(f"**{len(out)}** images flagged (near-blank, likely inverted, or intensity/contrast/size more than "
             f"{eda.ROBUST_Z} robust standard deviations from the median).")
    if len(out):
        # A long file name no longer pushes the finding and the reason off-screen (a cut name reads in full in its cell).
        st.dataframe(out[["filename", "split", "finding", "outlier", "mean", "std", "width", "height"]],
                     hide_index=True, column_config={"filename": st.column_config.TextColumn(width="medium"),
                                                     "mean": st.column_config.NumberColumn(format="%.3f"),
                                                     "std": st.column_config.NumberColumn(format="%.3f")})
        show = out.head(12)
        cols = st.columns(6)
        for i, r in enumerate(show.itertuples()):
            cols[i % 6].image(thumb(r.path), caption=f"{r.finding}: {r.outlier}", clamp=True, width="stretch")

with tabs[4]:
    per_class = st.slider("Images per class", 4, 16, 8, 4, key="eda_samples")
    seed = st.number_input("Sample seed", 0, 10_000, 0, key="eda_seed")
    for cls, paths in summary.sample_paths(per_class, int(seed)).items():
        st.markdown(f"**{cls}**")
        cols = st.columns(8)
        for i, p in enumerate(paths):
            cols[i % 8].image(thumb(p), clamp=True, width="stretch")

with tabs[5]:
    ok = stats[stats["error"] == ""]
    name = st.selectbox("Image", ok["filename"].head(300).tolist(), key="eda_eq_image")
    path = ok.loc[ok["filename"] == name, "path"].iloc[0]
    variants = eda.equalization_variants(decode_image(path).pixels)
    titles = {"none": "Original", "hist": "Histogram equalization", "clahe": "CLAHE"}
    cols = st.columns(len(variants))
    for col, (eq, img) in zip(cols, variants.items()):
        col.image(img, caption=titles.get(eq, eq), width="stretch")
