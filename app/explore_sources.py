"""Explore's source x class section: where each class comes from, and what that confound means."""

from __future__ import annotations

import streamlit as st

from covid_core import eda, eda_charts


def source_section(summary: eda.DataSummary) -> None:
    """Images per class coloured by source, the findings in words, or why sources are unknown."""
    stats = summary.stats
    st.subheader("Where each class comes from (source x class)")
    if summary.has_sources:
        st.caption("Images per class, coloured by the source they come from (`provenance.csv`), for each split. "
                   "When a class comes mostly from sources that hold few images of the other classes, a model can "
                   "learn the source (patients' age, hospital, text markers, image quality) instead of the disease, "
                   "and its TEST score, drawn from the same sources, will not show it.")
        st.plotly_chart(eda_charts.source_class(summary), key="eda_sources")
        st.markdown("\n".join(f"- {sentence}" for sentence in summary.source_findings()))
        unknown = int((stats["source"] == eda.UNKNOWN_SOURCE).sum())
        if unknown:
            st.warning(f"{unknown:,} images are not in `provenance.csv`: they are counted under source "
                       "\"unknown\".", icon=":material/help:")
        st.dataframe(summary.source_table())
    else:
        st.info("Sources unknown: no image of this data set has a source, because there is no `provenance.csv` "
                "in the data folder (or it has no `source` column for these files; columns `X_ray_image_name`, "
                "`source`, `patient`). So the source-by-class confound cannot be checked here: a class drawn "
                "from one hospital or age group cannot be told apart from a real difference between diseases.",
                icon=":material/help:")
