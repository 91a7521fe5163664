"""Image quality metrics through scikit-image (both images float32 HxW in [0, 1])."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidImageError


def _pair(clean: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(clean, np.float64), np.asarray(test, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise InvalidImageError(f"images must be 2-D and the same shape, got {a.shape} and {b.shape}")
    return a, b


def psnr(clean: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (data range 1); inf for identical images."""
    from skimage.metrics import peak_signal_noise_ratio

    a, b = _pair(clean, test)
    if np.array_equal(a, b):
        return float("inf")
    return float(peak_signal_noise_ratio(a, b, data_range=1.0))


def ssim(clean: np.ndarray, test: np.ndarray) -> float:
    """Structural similarity in [-1, 1] (1 = identical), data range 1, default 7x7 window."""
    from skimage.metrics import structural_similarity

    a, b = _pair(clean, test)
    if min(a.shape) < 7:
        raise InvalidImageError(f"SSIM needs images of at least 7x7 pixels, got {a.shape}")
    return float(structural_similarity(a, b, data_range=1.0))
