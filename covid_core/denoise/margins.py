"""How far the denoising autoencoder beats the tuned classical methods of bench/denoise.py, with a paired
interval per noise setting (the DAE card and the benchmark share these)."""

from __future__ import annotations

import numpy as np


# Row names of bench/denoise.py's method x noise table (it imports them from here), which --record stores.
CLASSICAL_DENOISERS = ("gaussian", "median", "nlm", "bm3d")
DAE_ON_BM3D_IMAGES = "dae (BM3D's images)"  # the DAE on the first k images, the only ones BM3D runs on
DAE_GOAL_DB = 1.0  # the denoising issue's goal: beat the best tuned classical method by this much


def paired_interval(better: list[float], worse: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """Two-sided ``level`` t-interval (dB) of the mean per-image difference ``better - worse`` (same images, same
    order); None when there are fewer than 2 pairs or the lists differ in length."""
    from scipy import stats

    if len(better) != len(worse) or len(better) < 2:
        return None
    d = np.asarray(better, float) - np.asarray(worse, float)
    half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def dae_margins(bench: dict) -> dict:
    """{noise: {"best": classical method the DAE is closest to, "margin": DAE minus it in dB, "n": images,
    "interval": 95% interval of the margin or None}} from ``bench/denoise.py --record``'s rows. Each classical
    method is compared with the DAE on the same images: BM3D may run on the first k images only and then has its
    own DAE_ON_BM3D_IMAGES row. The interval needs the rows' per-image PSNRs (``psnr_each``, recorded since
    2026-12-01); it is paired by image, so it measures how sure the margin is, not how the images vary."""
    rows = bench.get("rows", [])
    out = {}
    for noise in dict.fromkeys(r["noise"] for r in rows):
        mine = {r["method"]: r for r in rows if r["noise"] == noise}
        if "dae" not in mine:
            continue
        pairs = []
        for method in CLASSICAL_DENOISERS:
            if method in mine:
                dae = mine["dae"]
                if mine[method]["n"] != dae["n"]:
                    dae = mine.get(DAE_ON_BM3D_IMAGES, {"n": None})
                if dae["n"] == mine[method]["n"]:
                    interval = paired_interval(dae.get("psnr_each", []), mine[method].get("psnr_each", []))
                    pairs.append((dae["psnr"] - mine[method]["psnr"], method, mine[method]["n"], interval))
        if pairs:
            margin, method, n, interval = min(pairs, key=lambda p: p[0])
            out[noise] = {"best": method, "margin": margin, "n": n, "interval": interval}
    return out
