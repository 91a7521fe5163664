"""Deep Image Prior as a background job for the Denoise page: its state, its input's identity, its outcome in words.

No Streamlit here: the page starts a :class:`DipJob`, polls its plain attributes and shows :func:`dip_outcome`.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Callable

import numpy as np

#: A run whose page has been gone this long (closed or reloaded: its session no longer connected) is cancelled, so
#: that nobody's CPU goes to a result nobody will see; a shorter break in the connection does not end it.
ABANDONED_AFTER_S = 15.0


def input_digest(noisy: np.ndarray, reference: np.ndarray | None) -> str:
    """Digest of the pixels DIP denoises and of the clean reference its PSNR is measured against.

    A DIP result belongs to exactly these pixels: another file, working size or noise setting gives
    another digest, so an old result is never shown (or scored) as if it were computed from the new input.
    """
    h = hashlib.blake2b(digest_size=16)
    for arr in (noisy, reference):
        if arr is None:
            h.update(b"none")
        else:
            h.update(repr(arr.shape).encode())
            h.update(np.ascontiguousarray(arr, dtype=np.float32).tobytes())
    return h.hexdigest()


class DipJob:
    """State shared between the DIP thread and the page (plain attributes; no streamlit calls in the thread).

    ``label`` says which input it runs on (file, working size, noise); ``cancel_reason`` why it was cancelled.
    ``watched()``, called from the run's thread, says whether the page that started it is still open (None: always
    taken as open); a run unwatched for ABANDONED_AFTER_S seconds cancels itself.
    """

    def __init__(self, image: np.ndarray, max_iters: int, budget: float, clean: np.ndarray | None, label: str,
                 watched: Callable[[], bool] | None = None):
        self.max_iters, self.budget, self.label, self.watched = max_iters, budget, label, watched
        self.iteration, self.loss, self.preview = 0, None, None
        self.result, self.error, self.cancelled, self.cancel_reason = None, None, False, ""
        self.started, self._unwatched_since = time.time(), None
        self.thread = threading.Thread(target=self._run, args=(image, max_iters, budget, clean), daemon=True)

    def cancel(self, reason: str = "") -> None:
        self.cancelled, self.cancel_reason = True, reason

    def _progress(self, iteration: int, loss: float, preview) -> bool:
        self.iteration, self.loss = iteration, loss
        if preview is not None:
            self.preview = preview
        if self.watched is not None and not self.watched():
            now = time.monotonic()
            self._unwatched_since = self._unwatched_since or now
            if now - self._unwatched_since >= ABANDONED_AFTER_S:
                self.cancel("the page that started it was closed")
        else:
            self._unwatched_since = None
        return not self.cancelled

    def _run(self, image, max_iters, budget, clean):
        try:
            import covid_core.denoise as dn  # looked up at call time, so a test can stand in for run_dip

            self.result = dn.run_dip(image, max_iters=max_iters, time_budget_s=budget, on_progress=self._progress,
                                     clean=clean)
        except Exception as exc:  # shown on the page; a crash here must not go unnoticed
            self.error = f"{type(exc).__name__}: {exc}"

    @property
    def running(self) -> bool:
        return self.thread.is_alive()


class DipJobs:
    """A session's DIP jobs, one per input digest, the newest ``keep`` kept (going back to an image shows its
    result). Starting one cancels any other still running: its result would belong to an input no longer shown,
    and it would take the CPU from this one."""

    def __init__(self, keep: int = 4):
        self.keep, self.jobs, self.last = keep, {}, ""

    def get(self, key: str) -> DipJob | None:
        return self.jobs.get(key)

    def last_other(self, key: str) -> DipJob | None:
        """The most recently started job, when it ran on another input than ``key``."""
        return self.jobs.get(self.last) if self.last != key else None

    def cancel_others(self, key: str) -> None:
        for other_key, other in self.jobs.items():
            if other_key != key and other.running and not other.cancelled:
                other.cancel("the input changed while it ran")

    def start(self, key: str, job: DipJob) -> DipJob:
        self.jobs.pop(key, None)
        self.jobs[key] = job
        while len(self.jobs) > self.keep:
            self.jobs.pop(next(iter(self.jobs)))
        self.last = key
        job.thread.start()
        return job


def dip_outcome(job: DipJob, psnr_dip: float | None, psnr_noisy: float | None) -> tuple[str, str, str | None]:
    """(tone, message, worse-than-input warning or None) for a job that ended; tone is "success" or "warning".

    Only a run whose early-stopping rule fired is a success: a run cut short by the time budget, the
    iteration cap or Cancel returns an estimate that may still be blurry, and one scoring below the
    noisy input (when a clean reference exists) is worse than not denoising at all.
    """
    res = job.result
    n, reason = res.iterations, res.stopped_reason
    why = f": {job.cancel_reason}" if reason == "cancelled" and job.cancel_reason else ""
    # A cancelled run did not finish: it "stopped"; every other run ended on its own and "finished".
    head = f"DIP {'stopped' if reason == 'cancelled' else 'finished'}: {n} iterations ({reason}{why})"
    if reason == "early stop":
        tone, text = "success", (f"{head}: the early-stopping rule fired when the output stopped improving; "
                                  f"the estimate is the one from iteration {res.best_iteration}.")
    elif reason == "time budget":
        tone, text = "warning", (f"{head}: the {job.budget:g} s time budget ran out after {n} of {job.max_iters} "
                                  "iterations, before the early-stopping rule fired. The estimate may still be "
                                  "blurry or unfinished: run it again with a larger time budget (or a smaller "
                                  "working size).")
    elif reason == "max iterations":
        tone, text = "warning", (f"{head}: it reached the cap of {job.max_iters} iterations before the "
                                  "early-stopping rule fired. The estimate may still be blurry or unfinished: "
                                  "run it again with more iterations.")
    elif reason == "cancelled":
        tone, text = "warning", f"{head}: the estimate is unfinished."
    else:
        tone, text = "warning", f"{head}."
    worse = None
    if psnr_dip is not None and psnr_noisy is not None and psnr_dip < psnr_noisy:
        tone = "warning"
        worse = (f"The DIP output is worse than the noisy input: PSNR {psnr_dip:.2f} dB against "
                 f"{psnr_noisy:.2f} dB for the noisy image. Do not use it; "
                 + ("give DIP a larger time budget." if reason == "time budget" else
                    "run it with more iterations." if reason == "max iterations" else
                    "compare with the other methods above."))
    return tone, text, worse
