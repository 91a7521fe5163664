"""The Models page's overview of every checkpoint, and the card of a denoiser (which has no TEST figures)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import ui
from covid_core.cards.dae import dae_card_markdown
from covid_core.model_catalog import weights_dir
from covid_core.model_summary import overview_rows, unusable_reasons


def overview_section(entries) -> None:
    """One row per checkpoint (where it is used, its TEST figures), then why each unusable one cannot be used."""
    threshold_help = "On TEST at the COVID-19 operating threshold chosen on VALIDATION"
    st.dataframe(pd.DataFrame(overview_rows(entries)), hide_index=True, placeholder="—", column_config={
        "AUC": st.column_config.NumberColumn(format="%.3f", help="Macro AUC on TEST"),  # a denoiser's: "—"
        "accuracy": st.column_config.NumberColumn(format="%.3f", help="Accuracy on TEST"),
        "COVID sens.": st.column_config.NumberColumn(format="%.3f", help=f"COVID-19 sensitivity. {threshold_help}"),
        "PPV": st.column_config.NumberColumn(format="%.3f", help=f"COVID-19 PPV. {threshold_help}")})
    st.caption("AUC (macro) and accuracy on TEST; COVID-19 sensitivity and PPV on TEST at the operating threshold. "
               f"Weights folder: `{weights_dir()}` (set `COVID_XRAY_WEIGHTS` to change); finished training runs are "
               "listed too.")
    for reason in unusable_reasons(entries):
        st.warning(f"Cannot be used: {ui.plain(reason)}")  # a checkpoint's own text can be quoted in it


def denoiser_card(entry) -> None:
    """A denoising autoencoder's model card (what ``model-card`` writes for it), shown and downloadable."""
    st.header(ui.plain(entry.label))
    md = dae_card_markdown(entry.metadata, entry.path.name)  # its checkpoint's own text in code spans
    st.markdown(md)
    st.download_button("Download model card (Markdown)", md, file_name=f"{entry.path.stem}.md",
                       mime="text/markdown", key="models_dae_card_dl")
