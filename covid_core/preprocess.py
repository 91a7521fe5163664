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
from .stored_values import is_finite_number

EQUALIZE_CHOICES = ("none", "hist", "clahe")
FIT_CHOICES = ("pad", "crop", "thorax", "mask")
FIT_LABELS = {"pad": "whole film", "crop": "square crop", "thorax": "thorax crop", "mask": "thorax crop, masked"}
#: With fit "thorax" or "mask", the box around the estimated thorax grows by this share of its size on each side.
THORAX_MARGIN = 0.08


@dataclass(frozen=True)
class PreprocessConfig:
    """How a decoded image becomes model input.

    image_size: side S of the square model input, pixels.
    fit: "pad" keeps the whole image (letterbox with black), "crop" fills the square
    and cuts the longer side's ends, "thorax" first crops the film to the box around its estimated
    thorax (covid_core.thorax, plus THORAX_MARGIN), dropping borders, corner markers and text, then pads;
    "mask" crops as "thorax" does, then blacks out everything outside the ellipse inscribed in that box, so
    shoulders, neck, arms, collimation edges and markers in the box's corners cannot inform the network either.
    The mask has the same shape on every film (a traced lung outline would differ by hospital and age, and its
    shape could name the source).
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
        for name in ("clahe_clip", "mean", "std"):
            if not is_finite_number(getattr(self, name)):
                raise ConfigError(f"{name} {getattr(self, name)!r} is not a finite number")
        if not (-10 <= self.mean <= 10 and 0 < self.std <= 10 and 0 < self.clahe_clip <= 100):
            raise ConfigError("mean must be from -10 to 10, std above 0 and at most 10, and the CLAHE clip limit "
                              "above 0 and at most 100 (pixel values run from 0 to 1)")

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

    The original HxW image was first cut to the box (crop_top, crop_left, crop_h, crop_w) (the whole image
    unless fit is "thorax" or "mask"), that box scaled to (scaled_h, scaled_w), then placed with its top-left
    corner at (top, left) of the SxS square (negative = cropped).
    """

    orig_h: int
    orig_w: int
    scaled_h: int
    scaled_w: int
    top: int
    left: int
    size: int
    crop_top: int = 0
    crop_left: int = 0
    crop_h: int | None = None
    crop_w: int | None = None
    full_h: int | None = None  # the size the crop box refers to (orig_h/orig_w change for a display copy)
    full_w: int | None = None

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
        if self.crop_h is None or self.crop_w is None:
            return cv2.resize(canvas, (self.orig_w, self.orig_h), interpolation=cv2.INTER_LINEAR)
        # Heights and widths scale separately, so the box maps onto any size of the same film (a display copy).
        fy, fx = self.orig_h / self.crop_full_h, self.orig_w / self.crop_full_w
        t, l = round(self.crop_top * fy), round(self.crop_left * fx)
        h, w = max(1, min(round(self.crop_h * fy), self.orig_h - t)), max(1, min(round(self.crop_w * fx), self.orig_w - l))
        full = np.zeros((self.orig_h, self.orig_w), np.float32)
        full[t:t + h, l:l + w] = cv2.resize(canvas, (w, h), interpolation=cv2.INTER_LINEAR)
        return full

    @property
    def crop_full_h(self) -> int:
        """Height of the image the crop box was measured on."""
        return self.full_h or self.orig_h

    @property
    def crop_full_w(self) -> int:
        return self.full_w or self.orig_w

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


def inscribed_ellipse(h: int, w: int) -> np.ndarray:
    """bool HxW: the ellipse that touches the middle of each side of an HxW box."""
    yy, xx = np.ogrid[:h, :w]
    return ((yy + 0.5) / h - 0.5) ** 2 + ((xx + 0.5) / w - 0.5) ** 2 <= 0.25


def thorax_box(img_u8: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the estimated thorax of uint8 HxW, grown by THORAX_MARGIN a side."""
    from .thorax import estimate_thorax

    mask, method = estimate_thorax(img_u8)
    ys, xs = np.nonzero(mask)
    h, w = img_u8.shape
    if len(ys) == 0 or method != "lung fields":  # no lungs found: the fallback ellipse is a guess, keep the film
        return 0, 0, h, w
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    dy, dx = round(THORAX_MARGIN * (y1 - y0)), round(THORAX_MARGIN * (x1 - x0))
    y0, y1, x0, x1 = max(0, y0 - dy), min(h, y1 + dy), max(0, x0 - dx), min(w, x1 + dx)
    # The estimate sometimes finds one lung only: keep the box symmetric about the film's centre line (frontal
    # films are centred), so both lungs stay in; a box under half the film a side is not trusted at all.
    x0 = min(x0, w - x1)
    x1 = w - x0
    if (y1 - y0) < 0.5 * h or (x1 - x0) < 0.5 * w:
        return 0, 0, h, w
    return int(y0), int(x0), int(y1 - y0), int(x1 - x0)


def prepare_pixels(image: np.ndarray, config: PreprocessConfig) -> tuple[np.ndarray, Geometry]:
    """Decoded float32 HxW in [0, 1] -> (uint8 SxS, Geometry).

    Resizes with the aspect ratio kept (pad or centre-crop), then equalises the content
    (never the padding) if asked.
    """
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale image, got shape {image.shape}")
    full_h, full_w = image.shape
    img_u8 = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    crop = {}
    if config.fit in ("thorax", "mask"):
        ct, cl, ch, cw = thorax_box(img_u8)
        img_u8 = img_u8[ct:ct + ch, cl:cl + cw]
        if config.fit == "mask":
            img_u8 = np.where(inscribed_ellipse(ch, cw), img_u8, np.uint8(0))
        crop = dict(crop_top=ct, crop_left=cl, crop_h=ch, crop_w=cw, full_h=full_h, full_w=full_w)
    h, w = img_u8.shape
    s = config.image_size
    scale = s / min(h, w) if config.fit == "crop" else s / max(h, w)
    sh, sw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(img_u8, (sw, sh), interpolation=interp)
    resized = _equalize(resized, config)
    top, left = (s - sh) // 2, (s - sw) // 2
    geometry = Geometry(full_h, full_w, sh, sw, top, left, s, **crop)
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
