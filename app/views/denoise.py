"""Denoise: add a noise model or not, compare DAE, classical filters and Deep Image Prior."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import streamlit as st

import ui
from covid_core.decode import decode_image
from covid_core.errors import CovidCoreError

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

upload = st.file_uploader("Chest X-ray (PNG, JPEG, TIFF, BMP or DICOM)",
                          type=["png", "jpg", "jpeg", "tif", "tiff", "bmp", "dcm"], key="dn_upload")
if upload is None:
    st.info("Upload an image. Add synthetic noise to measure each method against the clean original (PSNR/SSIM); "
            "without added noise the methods are compared by eye only.", icon=":material/upload:")
    st.stop()


@st.cache_data(max_entries=8, show_spinner=False)
def working_image(data: bytes, name: str, size: int) -> np.ndarray:
    """float32 in [0, 1], longer side ``size`` (DIP and NLM are slow on full-size films)."""
    pixels = decode_image(data, name).pixels
    scale = size / max(pixels.shape)
    if scale < 1:
        pixels = cv2.resize(pixels, (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale)),
                            interpolation=cv2.INTER_AREA)
    return np.clip(pixels, 0, 1).astype(np.float32)


@st.cache_data(max_entries=32, show_spinner=False)
def noisy_image(clean: np.ndarray, kind: str, level: float, seed: int) -> np.ndarray:
    return dn.add_noise(clean, kind, level, seed=seed)


@st.cache_data(max_entries=32, show_spinner=False)
def denoised(noisy: np.ndarray, method: str) -> np.ndarray:
    if method == "dae":
        dae, msg = ui.dae_or_message()
        if dae is None:
            raise FileNotFoundError(msg)
        return dae.denoise(noisy)
    return dn.denoise(noisy, method)


c1, c2, c3, c4 = st.columns(4)
size = c1.select_slider("Working size (px)", [128, 192, 256, 384, 512], value=256, key="dn_size")
kind = c2.selectbox("Add noise", ["none", *dn.NOISE_KINDS], index=1, key="dn_kind")
level = None
if kind != "none":
    lo, hi, default, step, meaning = NOISE_LEVELS.get(kind, (0.0, 1.0, 0.1, 0.01, "level"))
    level = c3.slider(f"Noise level ({meaning})", lo, hi, default, step, key="dn_level")
    seed = c4.number_input("Noise seed", 0, 10_000, 0, key="dn_seed")

try:
    clean = working_image(upload.getvalue(), upload.name, int(size))
except CovidCoreError as exc:
    st.error(f"**{upload.name}** could not be read: {exc}")
    st.stop()
noisy = noisy_image(clean, kind, float(level), int(seed)) if kind != "none" else clean
reference = clean if kind != "none" else None

fast_methods = [m for m in dn.METHODS if m != "dip"]
methods = st.multiselect("Methods", fast_methods, default=[m for m in ("dae", "nlm", "median", "gaussian")
                                                            if m in fast_methods],
                         format_func=lambda m: TITLES.get(m, m), key="dn_methods")


def quality(img: np.ndarray) -> str:
    if reference is None:
        return ""
    return f"PSNR {dn.psnr(reference, img):.2f} dB · SSIM {dn.ssim(reference, img):.3f}"


panels = [("Clean original" if reference is not None else "Input", clean, "")]
if reference is not None:
    panels.append((f"Noisy ({kind}, {level:g})", noisy, quality(noisy)))
for m in methods:
    try:
        with st.spinner(f"{TITLES.get(m, m)}..."):
            out = denoised(noisy, m)
    except (CovidCoreError, FileNotFoundError, ImportError) as exc:
        st.warning(f"{TITLES.get(m, m)}: {exc}")
        continue
    panels.append((TITLES.get(m, m), out, quality(out)))

cols = st.columns(min(len(panels), 4))
for i, (title, img, q) in enumerate(panels):
    with cols[i % len(cols)]:
        st.image(img, caption=title, clamp=True, width="stretch")
        if q:
            st.caption(q)

# ---- Deep Image Prior: slow, so it runs in a background thread and the page polls it ----
st.subheader("Deep Image Prior")
st.caption("DIP fits a fresh network to this one image; it takes tens of seconds to minutes on a CPU. "
           "It runs in the background: you can keep using the page and cancel it at any time.")
d1, d2 = st.columns(2)
max_iters = d1.slider("Maximum iterations", 100, 3000, 600, 100, key="dn_dip_iters")
budget = d2.slider("Time budget (s)", 10, 600, 90, 10, key="dn_dip_budget")


class DipJob:
    """State shared between the DIP thread and the page (plain attributes; no streamlit calls in the thread)."""

    def __init__(self, image: np.ndarray, max_iters: int, budget: float, clean: np.ndarray | None):
        self.max_iters, self.iteration, self.loss, self.preview = max_iters, 0, None, None
        self.result, self.error, self.cancelled, self.started = None, None, False, time.time()
        self.thread = threading.Thread(target=self._run, args=(image, max_iters, budget, clean), daemon=True)

    def _progress(self, iteration: int, loss: float, preview) -> bool:
        self.iteration, self.loss = iteration, loss
        if preview is not None:
            self.preview = preview
        return not self.cancelled

    def _run(self, image, max_iters, budget, clean):
        try:
            self.result = dn.run_dip(image, max_iters=max_iters, time_budget_s=budget, on_progress=self._progress,
                                     clean=clean)
        except Exception as exc:  # shown on the page; a crash here must not go unnoticed
            self.error = f"{type(exc).__name__}: {exc}"

    @property
    def running(self) -> bool:
        return self.thread.is_alive()


job: DipJob | None = st.session_state.get("dn_dip_job")
b1, b2 = st.columns([1, 5])
if b1.button("Run DIP", type="primary", icon=":material/play_arrow:", key="dn_dip_start",
             disabled=job is not None and job.running):
    job = DipJob(noisy, int(max_iters), float(budget), reference)
    st.session_state["dn_dip_job"] = job
    job.thread.start()


@st.fragment(run_every=1.0)
def dip_panel() -> None:
    job = st.session_state.get("dn_dip_job")
    if job is None:
        st.caption("Not started.")
        return
    elapsed = time.time() - job.started
    if job.running:
        st.progress(min(job.iteration / max(job.max_iters, 1), 1.0),
                    text=f"iteration {job.iteration}/{job.max_iters}, {elapsed:.0f} s"
                         + (f", loss {job.loss:.5f}" if job.loss is not None else ""))
        if st.button("Cancel DIP", icon=":material/stop:", key="dn_dip_cancel"):
            job.cancelled = True
        if job.preview is not None:
            st.image(np.clip(job.preview, 0, 1), caption="Live preview", clamp=True, width=320)
        return
    if job.error:
        st.error(f"DIP failed: {job.error}")
        return
    res = job.result
    st.success(f"DIP finished: {res.iterations} iterations ({res.stopped_reason}).", icon=":material/check:")
    st.image(res.image, caption="Deep Image Prior", clamp=True, width=320)
    if reference is not None and res.image.shape == reference.shape:
        st.caption(quality(res.image))


dip_panel()
