"""Does the familiarity (out-of-distribution) score flag what it should? Probe images and the check.

Kept apart from :mod:`covid_core.ood` (the score itself, a bottom layer) because the check classifies images
through :func:`covid_core.inference.predict`, which uses the score.
"""

from __future__ import annotations

import numpy as np

from .inference import predict


def probe_images(xrays: list[np.ndarray], n_synthetic: int = 40, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Images that must NOT be taken for a frontal chest X-ray, each float32 HxW in [0, 1].

    "non_xray": noise, gradients, checkerboards, text renders and photo-like scenes of random shapes;
    "transformed_xray": the given X-rays rotated by 90/180/270 degrees and inverted.
    """
    import cv2

    rng = np.random.default_rng(seed)
    non_xray = []
    for i in range(n_synthetic):
        size = int(rng.integers(200, 600))
        kind = i % 5
        if kind == 0:
            img = rng.random((size, size))
        elif kind == 1:
            yy, xx = np.mgrid[:size, :size] / size
            img = (np.sin(xx * rng.uniform(1, 6)) + np.cos(yy * rng.uniform(1, 6))) / 4 + 0.5
        elif kind == 2:
            cell = int(rng.integers(8, 64))
            yy, xx = np.mgrid[:size, :size] // cell
            img = ((yy + xx) % 2).astype(float)
        elif kind == 3:
            canvas = np.full((size, size), int(rng.integers(180, 255)), np.uint8)  # putText draws on 8-bit only
            for line in range(int(rng.integers(3, 12))):
                cv2.putText(canvas, "Lorem ipsum %d" % rng.integers(1e6), (5, 30 + 35 * line), cv2.FONT_HERSHEY_SIMPLEX,
                            rng.uniform(0.6, 1.2), int(rng.integers(0, 80)), 2)
            img = canvas / 255.0
        else:
            img = np.full((size, size), rng.uniform(0.2, 0.8))
            for _ in range(int(rng.integers(5, 20))):
                center = tuple(int(v) for v in rng.integers(0, size, 2))
                axes = tuple(int(v) for v in rng.integers(10, size // 3, 2))
                cv2.ellipse(img, center, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.random()), -1)
            img = cv2.GaussianBlur(img, (0, 0), 2)
        non_xray.append(np.clip(img, 0, 1).astype(np.float32))
    transformed = []
    for x in xrays:
        transformed += [np.rot90(x, k).copy() for k in (1, 2, 3)] + [1.0 - x]
    return {"non_xray": non_xray, "transformed_xray": transformed}


def ood_check(classifier, test_xrays: list[np.ndarray], seed: int = 0) -> dict:
    """Share of probe images flagged (should be high) and of TEST X-rays flagged (should be low)."""
    def flagged_share(images):
        flags = [predict(classifier, img).ood_flagged for img in images]
        return float(np.mean(flags)) if flags else None

    probes = probe_images(test_xrays[:20], seed=seed)
    return {"non_xray_flagged": flagged_share(probes["non_xray"]), "non_xray_n": len(probes["non_xray"]),
            "transformed_xray_flagged": flagged_share(probes["transformed_xray"]),
            "transformed_xray_n": len(probes["transformed_xray"]),
            "test_flagged": flagged_share(test_xrays), "test_n": len(test_xrays)}
