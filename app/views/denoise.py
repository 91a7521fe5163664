"""Denoise: add a noise model or not, compare DAE, classical filters and Deep Image Prior."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

import ui
from dip_panel import dip_section
from covid_core.case import display_copy
from covid_core.decode import decode_image
from covid_core.errors import CovidCoreError
from covid_core.report import png_bytes

st.title("Denoise")
dn, dn_error = ui.optional_module("covid_core.denoise")
if dn is None:
    st.error("Denoising is not available in this installation: " + dn_error)
    st.stop()

NOISE_LEVELS = {  # kind: (min, max, default, step, what the level means)
    "gaussian": (1.0, 60.0, 15.0, 1.0, "sigma on the 0-255 scale"),
    "poisson": (5.0, 500.0, 60.0, 5.0, "photons per pixel at full intensity (lower = noisier)"),
    "speckle": (0.005, 0.2, 0.04, 0.005, "variance"),
    "salt_pepper": (0.005, 0.2, 0.03, 0.005, "fraction of pixels"),
}
TITLES = {"dae": "Denoising autoencoder", "dip": "Deep Image Prior", "nlm": "Non-local means",
          "gaussian": "Gaussian blur", "median": "Median filter", "bm3d": "BM3D"}

upload = st.file_uploader("Chest X-ray (PNG, JPEG, TIFF, BMP or DICOM)", key="dn_upload",
                          help="DICOM files need no extension; a file that is not an image is refused with the reason.")


@st.cache_data(max_entries=8, show_spinner=False)
def working_image(data: bytes, name: str, size: int) -> np.ndarray:
    """float32 in [0, 1], longer side ``size`` (DIP and NLM are slow on full-size films)."""
    return np.clip(display_copy(decode_image(data, name), size).pixels, 0, 1).astype(np.float32)


@st.cache_data(max_entries=32, show_spinner=False)
def noisy_image(clean: np.ndarray, kind: str, level: float, seed: int) -> np.ndarray:
    return dn.add_noise(clean, kind, level, seed=seed)


@st.cache_data(max_entries=32, show_spinner=False)
def denoised(noisy: np.ndarray, method: str, settings: tuple = ()) -> np.ndarray:
    """``noisy`` denoised by ``method``; ``settings``: a classical filter's (name, value) pairs."""
    if method == "dae":
        dae, msg = ui.dae_or_message()
        if dae is None:
            raise FileNotFoundError(msg)
        return dae.denoise(noisy)
    return dn.denoise(noisy, method, **dict(settings))


# Every setting is drawn on every run, before the page can stop for want of a readable image. Replacing the
# uploaded file passes through a run with an empty uploader: a widget missing from that run is dropped by the
# browser, drawn again at its default, and that default is what the next run gets (a 90 s DIP after the user
# chose 10 s). So the images go into a container placed here and filled once the settings are all drawn.
c1, c2, c3, c4 = st.columns(4)
size = c1.select_slider("Working size (px)", [128, 192, 256, 384, 512], value=256, key="dn_size")
kind = c2.selectbox("Add synthetic noise first", ["none", *dn.NOISE_KINDS], index=0, key="dn_kind",
                    help="none: denoise the film as it is. A noise model adds noise to your film first, so that each "
                         "method can be measured (PSNR/SSIM) against the film as uploaded: a demonstration.")
level = None
if kind != "none":
    lo, hi, default, step, meaning = NOISE_LEVELS.get(kind, (0.0, 1.0, 0.1, 0.01, "level"))
    level = c3.slider(f"Noise level ({meaning})", lo, hi, default, step, key="dn_level")
    seed = c4.number_input("Noise seed", 0, 10_000, 0, key="dn_seed")
fast_methods = [m for m in dn.METHODS if m != "dip"]
methods = st.multiselect("Methods", fast_methods, default=[m for m in ("dae", "nlm", "median", "gaussian")
                                                            if m in fast_methods],
                         format_func=lambda m: TITLES.get(m, m), key="dn_methods")
results = st.container()  # the input and each method's output, or why there are none

# ---- Deep Image Prior: slow, so it runs in a background thread and the page polls it ----
st.subheader("Deep Image Prior")
st.caption("DIP fits a fresh network to this one image; it takes tens of seconds to minutes on a CPU. "
           "It runs in the background: you can keep using the page and cancel it at any time.")
d1, d2 = st.columns(2)
max_iters = d1.slider("Maximum iterations", 100, 3000, 600, 100, key="dn_dip_iters")
budget = d2.slider("Time budget (s)", 10, 600, 90, 10, key="dn_dip_budget")

if upload is None:
    results.info("Upload an image. Add synthetic noise to measure each method against the clean original "
                 "(PSNR/SSIM); without added noise the methods are compared by eye only.", icon=":material/upload:")
    st.stop()
try:
    clean = working_image(upload.getvalue(), upload.name, int(size))
except CovidCoreError as exc:
    results.error(f"**{ui.plain(upload.name)}** could not be read: {ui.plain(exc)}")
    st.stop()
noisy = noisy_image(clean, kind, float(level), int(seed)) if kind != "none" else clean
reference = clean if kind != "none" else None


def quality(img: np.ndarray) -> str:
    if reference is None:
        return ""
    return f"PSNR {dn.psnr(reference, img):.2f} dB · SSIM {dn.ssim(reference, img):.3f}"


sigma = dn.estimate_noise_sigma(noisy)  # once: every classical filter's settings follow it
settings = {m: tuple(dn.matched_settings(m, noisy, sigma)[0].items()) for m in methods if m in dn.CLASSICAL_DEFAULTS}


def settings_text(method: str) -> str:
    """A classical filter's settings for this input's noise, in words ("" for the DAE, which has none)."""
    return "settings: " + ", ".join(f"{k} {v:g}" for k, v in settings[method]) if method in settings else ""


panels = [("Clean original" if reference is not None else "Input", clean, "")]
if reference is not None:
    panels.append((f"Noisy ({kind}, {level:g})", noisy, quality(noisy)))
for m in methods:
    try:
        with results, st.spinner(f"{TITLES.get(m, m)}..."):
            out = denoised(noisy, m, settings.get(m, ()))
    except (CovidCoreError, FileNotFoundError, ImportError) as exc:
        results.warning(f"{TITLES.get(m, m)}: {ui.plain(exc)}")
        continue
    panels.append((TITLES.get(m, m), out, " · ".join(t for t in (quality(out), settings_text(m)) if t)))

if settings:
    results.caption(f"Noise estimated in the {'noisy copy' if reference is not None else 'input'}: sigma "
                    f"{sigma:.1f} on the 0-255 scale. Each classical filter's strength "
                    "follows it: the settings the benchmark tuned for that noise level, so a film with little noise "
                    "comes back nearly unchanged (`docs/denoising.md`).")
GRID_COLUMNS = 4
# One row of equal columns per GRID_COLUMNS panels: a panel placed under another column's taller caption
# would start lower than its neighbours, so every row starts level and every image has the same width.
for start in range(0, len(panels), GRID_COLUMNS):
    for col, (title, img, q) in zip(results.columns(GRID_COLUMNS), panels[start:start + GRID_COLUMNS]):
        with col:
            st.image(img, caption=title, clamp=True, width="stretch")
            if q:
                st.caption(q)
            if title not in ("Input", "Clean original") and not title.startswith("Noisy"):
                st.download_button("Download PNG", png_bytes(img), file_name=f"{Path(upload.name).stem}-"
                                   f"{title.split()[0].lower()}.png", mime="image/png", icon=":material/download:",
                                   key=f"dn_dl_{start}_{title}")


input_label = f"{upload.name}, {size} px, " + (f"{kind} noise {level:g}, seed {int(seed)}" if kind != "none"
                                                else "no added noise")
dip_section(noisy, reference, input_label, int(max_iters), float(budget), GRID_COLUMNS, quality)
