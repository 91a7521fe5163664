"""Classical denoisers: OpenCV non-local means, Gaussian blur, median, and BM3D (``bm3d`` package).

Each takes float32 HxW in [0, 1] and returns float32 HxW in [0, 1]. Given no settings, a filter takes the ones
matched to the image's own noise (:func:`matched_settings`: its noise level estimated from the image, then the
settings the benchmark tuned for that level); explicit settings (DEFAULTS suit moderate noise, sigma ~25) are for
the benchmark, which tunes them per noise level.
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


#: Each filter's best setting for Gaussian noise of each sigma (0-255 scale), as (sigma, value) points: non-local
#: means, Gaussian blur and median tuned on 10 TRAIN films at 256 px, the Denoise page's working size, by
#: ``python bench/classical_strength.py --tune --n 10 --size 256``; BM3D (slow) as ``bench/denoise.py`` tuned it on
#: TRAIN crops of 512 px films, recorded on 2026-12-01 in weights/dae.pt (``test_benchmark.tuned``). Between the
#: points a setting is interpolated linearly; below the first, towards ``NO_FILTERING`` at sigma 0; above the last,
#: along the last segment.
TUNED_FOR_SIGMA = {
    "nlm": ("h", ((5, 5.0), (10, 11.0), (15, 14.0), (25, 22.0), (35, 33.0), (50, 50.0))),
    "gaussian": ("sigma", ((5, 0.75), (10, 1.0), (15, 1.5), (25, 2.0), (35, 2.5), (50, 3.0))),
    "median": ("ksize", ((5, 3), (10, 5), (15, 5), (25, 9), (35, 9), (50, 11))),
    "bm3d": ("sigma", ((15, 0.0588), (25, 0.1275), (50, 0.1961))),
}
#: Each setting at sigma 0 (a film without noise), and the least a filter is given (its smallest meaningful value).
NO_FILTERING = {"nlm": 0.0, "gaussian": 0.0, "median": 1, "bm3d": 0.0}
LEAST = {"nlm": 1.0, "gaussian": 0.3, "median": 3, "bm3d": 0.002}
#: A setting measured in pixels (a blur's sigma, a median's window) grows with the image, less than in proportion:
#: tuned the same way at 128, 256 and 512 px, the best blur and window grew by a factor of about 2 ** 0.4 (0.26 to
#: 0.49) each time the side doubled. They are scaled by (side / TUNED_AT_PX) ** PIXEL_EXPONENT.
TUNED_AT_PX = 256
PIXEL_EXPONENT = 0.4
IN_PIXELS = {"gaussian", "median"}


def estimate_noise_sigma(image: np.ndarray) -> float:
    """The image's noise standard deviation on the 0-255 scale, from its finest wavelet details (the median absolute
    deviation of Donoho and Johnstone, ``skimage.restoration.estimate_sigma``). About 0.4 on a clean 512 px JPEG
    film; within 10% of the added sigma from 5 to 25 (measured on a TEST film), lower above that, where clipping to
    [0, 1] removes some of the noise."""
    from skimage.restoration import estimate_sigma

    return float(estimate_sigma(check_image(image))) * 255.0


def settings_for_noise(method: str, sigma: float, side: float = TUNED_AT_PX) -> dict:
    """``method``'s settings for noise of standard deviation ``sigma`` (0-255 scale) in an image whose side is about
    ``side`` px, from TUNED_FOR_SIGMA."""
    if method not in TUNED_FOR_SIGMA:
        raise ConfigError(f"unknown classical method {method!r}; choose one of: {', '.join(FILTERS)}")
    name, points = TUNED_FOR_SIGMA[method]
    xs, ys = [0.0, *(x for x, _ in points)], [NO_FILTERING[method], *(y for _, y in points)]
    sigma = max(float(sigma), 0.0)
    if sigma <= xs[-1]:
        value = float(np.interp(sigma, xs, ys))
    else:
        value = ys[-1] + (sigma - xs[-1]) * (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    if method in IN_PIXELS:
        scale = (max(float(side), 1.0) / TUNED_AT_PX) ** PIXEL_EXPONENT
        value = NO_FILTERING[method] + (value - NO_FILTERING[method]) * scale
    value = max(value, LEAST[method])
    if method == "median":
        return {name: max(3, 2 * int(round((value - 1) / 2)) + 1)}  # the nearest odd size, at least 3
    return {name: round(value, 4 if method == "bm3d" else 2)}


def matched_settings(method: str, image: np.ndarray, sigma: float | None = None) -> tuple[dict, float]:
    """(``method``'s settings for ``image``'s own noise, that noise's estimated sigma on the 0-255 scale). ``sigma``:
    the image's :func:`estimate_noise_sigma` where the caller has it already (one estimate serves every filter)."""
    sigma = estimate_noise_sigma(image) if sigma is None else float(sigma)
    return settings_for_noise(method, sigma, side=float(np.sqrt(image.shape[0] * image.shape[1]))), sigma


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
    """One classical filter, with the settings given (the rest from DEFAULTS), or, given none, with the settings
    matched to each image's own noise (:func:`matched_settings`). Unknown names raise ConfigError listing the valid
    ones."""

    def __init__(self, method: str, **params):
        if method not in FILTERS:
            raise ConfigError(f"unknown classical method {method!r}; choose one of: {', '.join(FILTERS)}")
        unknown = set(params) - set(DEFAULTS[method])
        if unknown:
            raise ConfigError(f"unknown parameter(s) {', '.join(sorted(unknown))} for {method}; "
                              f"valid: {', '.join(DEFAULTS[method])}")
        self.name, self.params = method, ({**DEFAULTS[method], **params} if params else None)

    def denoise(self, image: np.ndarray) -> np.ndarray:
        image = check_image(image)
        params = self.params if self.params is not None else matched_settings(self.name, image)[0]
        return FILTERS[self.name](image, **params)
