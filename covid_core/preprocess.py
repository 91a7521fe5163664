"""Preprocess a decoded image for a model, and map model-space maps back.

Step 2 of the one image path. Training, evaluation, the CLI and the app all call
:func:`prepare_pixels` (decoded float image -> uint8 SxS, the form that is cached)
and :func:`to_model_input` (uint8 batch -> normalised float tensor). The settings are a
:class:`PreprocessConfig` saved inside every checkpoint, so inference cannot drift.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np
import torch

from .errors import ConfigError

EQUALIZE_CHOICES = ("none", "hist", "clahe")
FIT_CHOICES = ("pad", "crop")


@dataclass(frozen=True)
class PreprocessConfig:
    """How a decoded image becomes model input.

    image_size: side S of the square model input, pixels.
    fit: "pad" keeps the whole image (letterbox with black), "crop" fills the square
    and cuts the longer side's ends.
    equalize: "none", "hist" (global histogram equalisation) or "clahe".
    mean, std: normalisation applied to values in [0, 1].
    """

    image_size: int = 224
    fit: str = "pad"
    equalize: str = "none"
    clahe_clip: float = 2.0
    mean: float = 0.5
    std: float = 0.25

    def __post_init__(self):
        if not isinstance(self.image_size, int) or not 32 <= self.image_size <= 1024:
            raise ConfigError(f"image size {self.image_size!r} is out of range; choose a whole number from 32 to 1024")
        if self.fit not in FIT_CHOICES:
            raise ConfigError(f"unknown fit {self.fit!r}; choose one of: {', '.join(FIT_CHOICES)}")
        if self.equalize not in EQUALIZE_CHOICES:
            raise ConfigError(f"unknown equalize {self.equalize!r}; choose one of: {', '.join(EQUALIZE_CHOICES)}")
        if self.std <= 0:
            raise ConfigError("std must be positive")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def cache_key(self) -> str:
        """What changes the cached uint8 pixels (not mean/std, applied later)."""
        clip = f"-{self.clahe_clip:g}" if self.equalize == "clahe" else ""
        return f"s{self.image_size}-{self.fit}-{self.equalize}{clip}"


@dataclass(frozen=True)
class Geometry:
    """Where the original image sits inside the SxS model input.

    The original HxW image was scaled by ``scale`` to (scaled_h, scaled_w), then placed
    with its top-left corner at (top, left) of the SxS square (negative = cropped).
    """

    orig_h: int
    orig_w: int
    scaled_h: int
    scaled_w: int
    top: int
    left: int
    size: int

    def to_original(self, square: np.ndarray) -> np.ndarray:
        """Map an SxS float map (e.g. a heatmap) back to float32 orig_h x orig_w."""
        square = np.asarray(square, np.float32)
        if square.shape != (self.size, self.size):
            square = cv2.resize(square, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        canvas = np.zeros((self.scaled_h, self.scaled_w), np.float32)
        # The intersection of the scaled image with the square, in both frames.
        y0, x0 = max(self.top, 0), max(self.left, 0)
        y1, x1 = min(self.top + self.scaled_h, self.size), min(self.left + self.scaled_w, self.size)
        canvas[y0 - self.top:y1 - self.top, x0 - self.left:x1 - self.left] = square[y0:y1, x0:x1]
        return cv2.resize(canvas, (self.orig_w, self.orig_h), interpolation=cv2.INTER_LINEAR)

    def content_mask(self) -> np.ndarray:
        """bool SxS: True where the square holds image content, False on padding."""
        mask = np.zeros((self.size, self.size), bool)
        y0, x0 = max(self.top, 0), max(self.left, 0)
        mask[y0:min(self.top + self.scaled_h, self.size), x0:min(self.left + self.scaled_w, self.size)] = True
        return mask


def _equalize(img_u8: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    if config.equalize == "hist":
        return cv2.equalizeHist(img_u8)
    if config.equalize == "clahe":
        clahe = cv2.createCLAHE(clipLimit=config.clahe_clip, tileGridSize=(8, 8))
        return clahe.apply(img_u8)
    return img_u8


def prepare_pixels(image: np.ndarray, config: PreprocessConfig) -> tuple[np.ndarray, Geometry]:
    """Decoded float32 HxW in [0, 1] -> (uint8 SxS, Geometry).

    Resizes with the aspect ratio kept (pad or centre-crop), then equalises the content
    (never the padding) if asked.
    """
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {image.shape}")
    h, w = image.shape
    s = config.image_size
    scale = s / max(h, w) if config.fit == "pad" else s / min(h, w)
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    img_u8 = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(img_u8, (sw, sh), interpolation=interp)
    resized = _equalize(resized, config)
    top, left = (s - sh) // 2, (s - sw) // 2
    geometry = Geometry(h, w, sh, sw, top, left, s)
    out = np.zeros((s, s), np.uint8)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + sh, s), min(left + sw, s)
    out[y0:y1, x0:x1] = resized[y0 - top:y1 - top, x0 - left:x1 - left]
    return out, geometry


def normalize(x01: torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """float values in [0, 1] -> (x - mean) / std, the model's input scale (in place)."""
    return x01.sub_(config.mean).div_(config.std)


def to_model_input(batch_u8: np.ndarray | torch.Tensor, config: PreprocessConfig) -> torch.Tensor:
    """uint8 (B)xSxS -> float32 Bx1xSxS tensor, normalised with the config's mean/std."""
    if isinstance(batch_u8, np.ndarray) and not batch_u8.flags.writeable:
        batch_u8 = np.array(batch_u8)  # e.g. a read-only memmap slice; torch wants writable memory
    t = torch.as_tensor(batch_u8)
    if t.ndim == 2:
        t = t[None]
    return normalize(t[:, None].float().div_(255.0), config)


def preprocess(image: np.ndarray, config: PreprocessConfig) -> tuple[torch.Tensor, Geometry]:
    """Decoded float32 HxW in [0, 1] -> (float32 1x1xSxS model input, Geometry)."""
    pixels, geometry = prepare_pixels(image, config)
    return to_model_input(pixels, config), geometry
