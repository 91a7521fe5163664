"""The one interface every denoiser implements (DAE, DIP and the classical filters)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..errors import InvalidImageError


def check_image(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as float32 HxW in [0, 1]; raise InvalidImageError if it is not a 2-D image."""
    arr = np.asarray(image)
    if arr.ndim != 2 or min(arr.shape) < 1:
        raise InvalidImageError(f"expected a 2-D grayscale image (HxW), got shape {arr.shape}; "
                                "decode it with covid_core.decode.decode_image first")
    if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
        raise InvalidImageError("the image holds non-numeric, NaN or infinite values")
    return np.clip(arr.astype(np.float32, copy=False), 0.0, 1.0)


class Denoiser(ABC):
    """``denoise(float32 HxW in [0, 1]) -> float32 HxW in [0, 1]`` of the same shape."""

    name: str = ""

    @abstractmethod
    def denoise(self, image: np.ndarray) -> np.ndarray:
        """Denoise float32 HxW in [0, 1]; returns float32 HxW in [0, 1]."""

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return self.denoise(image)
