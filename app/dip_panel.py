"""The Denoise page's Deep Image Prior: started in a background thread, polled by a fragment, one job per input."""

from __future__ import annotations

import time

import numpy as np
import streamlit as st

import ui
from covid_core.denoise import psnr
from covid_core.denoise.dip_job import DipJob, DipJobs, dip_outcome, input_digest


def dip_section(noisy: np.ndarray, reference: np.ndarray | None, label: str, max_iters: int, budget: float,
                grid_columns: int, quality) -> None:
    """The Run DIP button and the live panel for this input (``quality(img)`` is the PSNR/SSIM caption)."""
    jobs: DipJobs = st.session_state.setdefault("dn_dip_jobs", DipJobs())
    input_key = input_digest(noisy, reference)
    jobs.cancel_others(input_key)
    job = jobs.get(input_key)
    # As wide as its label: in a 1 : 5 column pair it was cut to "Ru..." in a 1024 px window.
    if st.button("Run DIP", type="primary", icon=":material/play_arrow:", key="dn_dip_start",
                 disabled=job is not None and job.running):
        jobs.start(input_key, DipJob(noisy, max_iters, budget, reference, label, watched=ui.page_watch()))

    def dip_image(img: np.ndarray, caption: str) -> None:
        """The DIP image at the size of the grid's images above."""
        with st.columns(grid_columns)[0]:
            st.image(np.clip(img, 0, 1), caption=caption, clamp=True, width="stretch")

    @st.fragment(run_every=1.0)
    @ui.guarded("the Deep Image Prior panel")
    def dip_panel() -> None:
        job = jobs.get(input_key)
        if job is None:
            last = jobs.last_other(input_key)
            if last is not None:
                why = f" (cancelled: {last.cancel_reason})" if last.cancel_reason else ""
                st.info(f"The last DIP run was for another input: {ui.plain(last.label)}{why}. Its result is not "
                        "shown for this image; run DIP to denoise this one.", icon=":material/info:")
            st.caption("Not started.")
            return
        st.caption(f"Input: {ui.plain(job.label)}, at most {job.max_iters} iterations, {job.budget:g} s budget.")
        if job.running:
            st.progress(min(job.iteration / max(job.max_iters, 1), 1.0),
                        text=f"iteration {job.iteration}/{job.max_iters}, {time.time() - job.started:.0f} s"
                             + (f", loss {job.loss:.5f}" if job.loss is not None else ""))
            if st.button("Cancel DIP", icon=":material/stop:", key="dn_dip_cancel"):
                job.cancel()
            if job.preview is not None:
                dip_image(job.preview, "Live preview")
            return
        if job.error or job.result is None:
            st.error(f"DIP failed: {ui.plain(job.error or 'it stopped without a result')}")
            return
        res = job.result
        scored = reference is not None and res.image.shape == reference.shape
        tone, text, worse = dip_outcome(job, psnr(reference, res.image) if scored else None,
                                        psnr(reference, noisy) if scored else None)
        (st.success if tone == "success" else st.warning)(text, icon=":material/check:" if tone == "success"
                                                          else ":material/warning:")
        if worse:
            st.warning(worse, icon=":material/warning:")
        dip_image(res.image, "Deep Image Prior")
        if scored:
            st.caption(quality(res.image))

    dip_panel()
