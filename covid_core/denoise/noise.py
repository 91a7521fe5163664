"""Seeded noise models for training and evaluating denoisers.

Every function takes and returns float32 HxW in [0, 1]; the same seed gives the same noise,
so every benchmark is repeatable.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

NOISE_KINDS = ("gaussian", "poisson", "speckle", "salt_pepper")

# What ``level`` means for each kind, and the values that make sense.
LEVEL_MEANING = {
    "gaussian": ("standard deviation on the 0-255 scale", 0.0, 255.0),
    "poisson": ("photon count per pixel at full intensity (lower = noisier, lower dose)", 0.01, 1e7),
    "speckle": ("variance of the multiplicative noise", 0.0, 10.0),
    "salt_pepper": ("fraction of pixels set to black or white", 0.0, 1.0),
}


def check_noise(kind: str, level: float) -> None:
    """Raise ConfigError unless ``kind`` is a known noise model and ``level`` is in its range."""
    if kind not in NOISE_KINDS:
        raise ConfigError(f"unknown noise {kind!r}; choose one of: {', '.join(NOISE_KINDS)}")
    meaning, low, high = LEVEL_MEANING[kind]
    if not np.isfinite(level) or not low <= level <= high:
        raise ConfigError(f"{kind} noise level {level!r} is out of range; it is the {meaning}, from {low:g} to {high:g}")


def add_noise(image: np.ndarray, kind: str, level: float, seed: int = 0) -> np.ndarray:
    """Corrupt float32 HxW in [0, 1] with ``kind`` noise; returns float32 HxW in [0, 1].

    gaussian: ``level`` = sigma on the 0-255 scale (additive, then clipped).
    poisson: ``level`` = photons per pixel at full intensity; counts ~ Poisson(image * level),
    rescaled by 1/level, so noise std at intensity x is sqrt(x / level) (quantum noise).
    speckle: ``level`` = variance v; image * (1 + N(0, v)).
    salt_pepper: ``level`` = fraction of pixels replaced, half by 0 and half by 1.
    """
    check_noise(kind, float(level))
    img = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        out = img + rng.normal(0.0, level / 255.0, img.shape)
    elif kind == "poisson":
        out = rng.poisson(img.astype(np.float64) * level) / level
    elif kind == "speckle":
        out = img * (1.0 + rng.normal(0.0, np.sqrt(level), img.shape))
    else:
        out = img.copy()
        hit = rng.random(img.shape) < level
        out[hit] = (rng.random(int(hit.sum())) < 0.5).astype(np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def parse_noise(text: str) -> tuple[str, float]:
    """'gaussian:25' -> ("gaussian", 25.0); raises ConfigError naming the valid kinds."""
    kind, _, level = text.partition(":")
    try:
        value = float(level)
    except ValueError:
        raise ConfigError(f"noise {text!r} must look like KIND:LEVEL, e.g. gaussian:25 or poisson:30; "
                          f"kinds: {', '.join(NOISE_KINDS)}") from None
    check_noise(kind, value)
    return kind, value
