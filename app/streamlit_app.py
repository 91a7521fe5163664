"""Chest X-ray COVID-19 / pneumonia research app: the router.

Run from the repository root:  streamlit run app/streamlit_app.py

Environment variables:
  COVID_XRAY_WEIGHTS  folder of classifier checkpoints (and dae.pt for denoising); default <repo>/weights
  COVID_XRAY_DATA     default data folder for the Explore and Train pages; default none (the page asks for a path)
  COVID_CORE_RUNS     folder of training runs (started from the Train page); default ./runs
  COVID_CORE_CACHE    folder for decoded-image and data-statistics caches; default ~/.cache/covid_core
  COVID_XRAY_MAX_FILES, COVID_XRAY_MAX_BATCH_MB  files and MB analysed per upload batch; default 100 and 500
  (one file's size is capped by server.maxUploadSize in .streamlit/config.toml)

Every page is UI only; the computations live in covid_core. The page files live in app/views/, not
app/pages/: Streamlit treats a pages/ folder beside the main script as an old-style (v1) multipage app,
and a reload or deep link to /train would then run the page without this router (no notice, no layout).
"""

from __future__ import annotations

import streamlit as st

# `streamlit run app/streamlit_app.py` puts app/ on sys.path (for `import ui`); covid_core is installed with
# `pip install -e .` (see the README).


def _tab_icon():
    """The tab icon, drawn here: a material-icon name would make the browser fetch it from Google's font
    server, a request to a third party that a hospital network may block or log."""
    from PIL import Image, ImageDraw

    icon = Image.new("RGB", (64, 64), "#1c5d99")
    draw = ImageDraw.Draw(icon)
    draw.ellipse((10, 12, 30, 54), fill="#e7f0fa")
    draw.ellipse((34, 12, 54, 54), fill="#e7f0fa")
    draw.rectangle((30, 6, 34, 40), fill="#e7f0fa")
    return icon


@st.cache_resource
def _freed_memory_release():
    """Once per server: hand memory freed by let-go uploads back to the system (covid_core.freed_memory)."""
    from covid_core.freed_memory import start_releasing

    return start_releasing()


st.set_page_config(page_title="Chest X-ray AI (research)", page_icon=_tab_icon(), layout="wide")
_freed_memory_release()

pages = [
    st.Page("views/diagnose.py", title="Diagnose", icon=":material/stethoscope:", default=True),
    st.Page("views/validate.py", title="Validate at your site", icon=":material/fact_check:"),
    st.Page("views/denoise.py", title="Denoise", icon=":material/blur_off:"),
    st.Page("views/explore.py", title="Explore data", icon=":material/query_stats:"),
    st.Page("views/train.py", title="Train", icon=":material/model_training:"),
    st.Page("views/models.py", title="Models", icon=":material/inventory_2:"),
]
page = st.navigation(pages)
with st.sidebar:
    st.caption(":material/warning: **Research use only - not for diagnosis.**")
try:
    page.run()
except Exception as exc:  # the last line of defence: a user sees what happened, never a traceback
    import ui

    ui.unexpected_error(exc, f"the {page.title} page")
