"""Classical denoisers: OpenCV non-local means, Gaussian blur, median, and BM3D (``bm3d`` package).

Each takes float32 HxW in [0, 1] and returns float32 HxW in [0, 1]; parameters are explicit
so the benchmark can tune them per noise level (DEFAULTS suit moderate noise, sigma ~25).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import ConfigError
from .base import Denoiser, check_image

DEFAULTS = {
    "nlm": {"h": 20.0, "template": 7, "search": 21},
    "gaussian": {"sigma": 1.5},
    "median": {"ksize": 5},
    "bm3d": {"sigma": 0.1},
}


def _u8(image: np.ndarray) -> np.ndarray:
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)


def nlm(image: np.ndarray, h: float = 20.0, template: int = 7, search: int = 21) -> np.ndarray:
    """OpenCV fastNlMeansDenoising on the 8-bit image; ``h`` is the filter strength (0-255 scale)."""
    return cv2.fastNlMeansDenoising(_u8(image), None, float(h), int(template), int(search)).astype(np.float32) / 255.0


def gaussian_blur(image: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel 6 sigma + 1 wide)."""
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(image, (k, k), float(sigma), borderType=cv2.BORDER_REFLECT)


def median(image: np.ndarray, ksize: int = 5) -> np.ndarray:
    """Median filter over an odd ``ksize`` x ``ksize`` window (on 8-bit for ksize > 5, as OpenCV requires)."""
    ksize = int(ksize)
    if ksize < 3 or ksize % 2 == 0:
        raise ConfigError(f"median ksize must be an odd number >= 3, got {ksize}")
    if ksize <= 5:
        return cv2.medianBlur(image, ksize)
    return cv2.medianBlur(_u8(image), ksize).astype(np.float32) / 255.0


def bm3d(image: np.ndarray, sigma: float = 0.1) -> np.ndarray:
    """BM3D (Dabov et al.) from the ``bm3d`` package; ``sigma`` = noise std on the 0-1 scale."""
    import bm3d as bm3d_package

    return np.clip(bm3d_package.bm3d(image, sigma_psd=float(sigma)), 0, 1).astype(np.float32)


FILTERS = {"nlm": nlm, "gaussian": gaussian_blur, "median": median, "bm3d": bm3d}


class ClassicalDenoiser(Denoiser):
    """One classical filter with fixed parameters (unknown names raise ConfigError listing the valid ones)."""

    def __init__(self, method: str, **params):
        if method not in FILTERS:
            raise ConfigError(f"unknown classical method {method!r}; choose one of: {', '.join(FILTERS)}")
        unknown = set(params) - set(DEFAULTS[method])
        if unknown:
            raise ConfigError(f"unknown parameter(s) {', '.join(sorted(unknown))} for {method}; "
                              f"valid: {', '.join(DEFAULTS[method])}")
        self.name, self.params = method, {**DEFAULTS[method], **params}

    def denoise(self, image: np.ndarray) -> np.ndarray:
        return FILTERS[self.name](check_image(image), **self.params)
