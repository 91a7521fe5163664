"""Draw a heatmap over a grayscale image (OpenCV colormaps)."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import ConfigError

COLORMAPS = {
    "jet": cv2.COLORMAP_JET, "turbo": cv2.COLORMAP_TURBO, "inferno": cv2.COLORMAP_INFERNO,
    "magma": cv2.COLORMAP_MAGMA, "plasma": cv2.COLORMAP_PLASMA, "viridis": cv2.COLORMAP_VIRIDIS,
    "hot": cv2.COLORMAP_HOT, "bone": cv2.COLORMAP_BONE,
}


def overlay(image: np.ndarray, heatmap: np.ndarray, opacity: float = 0.4, colormap: str = "jet") -> np.ndarray:
    """Blend a coloured heatmap over a grayscale image.

    image: float32 HxW in [0, 1]; heatmap: float32 in [0, 1] (resized to HxW if it differs);
    opacity: weight of the heatmap in [0, 1]; colormap: one of ``COLORMAPS``.
    Returns uint8 HxWx3 RGB.
    """
    if colormap not in COLORMAPS:
        raise ConfigError(f"unknown colormap {colormap!r}; choose one of: {', '.join(COLORMAPS)}")
    if not 0.0 <= float(opacity) <= 1.0:
        raise ConfigError(f"opacity {opacity!r} is out of range; choose a number from 0 to 1")
    image = np.clip(np.nan_to_num(np.asarray(image, np.float32)), 0.0, 1.0)
    if image.ndim != 2:
        raise ConfigError(f"expected a grayscale image HxW, got shape {image.shape}")
    heatmap = np.clip(np.nan_to_num(np.asarray(heatmap, np.float32)), 0.0, 1.0)
    h, w = image.shape
    if heatmap.shape != (h, w):
        heatmap = cv2.resize(heatmap, (w, h), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap(np.round(heatmap * 255).astype(np.uint8), COLORMAPS[colormap])
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB).astype(np.float32)
    grey = np.repeat(image[..., None] * 255.0, 3, axis=2)
    blended = (1.0 - opacity) * grey + opacity * colour
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
