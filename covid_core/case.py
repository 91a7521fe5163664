"""One path for a case: bytes -> decode -> classify -> (explain) -> what a reader is shown.

:func:`open_case` decodes a file and classifies it at full resolution, then keeps only a display copy
of the film (at most :data:`DISPLAY_MAX_SIDE` a side), so a case held in a cache costs a few MB whatever
the upload was. :func:`explain_case` makes the heatmap from the prediction's own model-space pixels (the
image is preprocessed once) and maps it onto the display copy. The Diagnose page, the ``predict`` and
``explain`` commands and the case report all go through these two functions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from .checkpoint import Classifier
from .decode import DecodedImage, decode_image
from .inference import Prediction, predict

#: Longest side of the film a case keeps for display (and for the display-only window/level of DICOM).
DISPLAY_MAX_SIDE = 1024


@dataclass(eq=False)  # holds arrays: compare by identity
class Case:
    """One analysed film.

    image: the decoded film, downscaled to at most DISPLAY_MAX_SIDE a side (pixels float32 HxW in [0, 1];
    ``raw`` likewise for DICOM). prediction: computed on the full-resolution film; its geometry maps model
    space onto ``image``. original_size: (height, width) of the file as decoded.
    """

    name: str
    image: DecodedImage
    prediction: Prediction
    original_size: tuple[int, int]


def _downscaled(array: np.ndarray | None, size: tuple[int, int]) -> np.ndarray | None:
    if array is None or array.shape == size:
        return array
    return cv2.resize(array, (size[1], size[0]), interpolation=cv2.INTER_AREA).astype(np.float32)


def display_copy(image: DecodedImage, max_side: int = DISPLAY_MAX_SIDE) -> DecodedImage:
    """The same film at most ``max_side`` a side (aspect ratio kept); the image itself if it is small enough."""
    h, w = image.pixels.shape
    scale = max_side / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    notes = [*image.notes, f"shown at {size[1]}x{size[0]} (decoded {w}x{h})"]
    return dataclasses.replace(image, pixels=_downscaled(image.pixels, size), raw=_downscaled(image.raw, size),
                               notes=notes)


def open_case(source, name: str, classifier: Classifier, max_side: int | None = DISPLAY_MAX_SIDE) -> Case:
    """Decode ``source`` (bytes or a path), classify it, keep a display copy of at most ``max_side`` a side
    (None: the film at its own size, as the command line writes it).

    Raises InvalidImageError (unreadable, too large, blank...) before anything is kept.
    """
    decoded = decode_image(source, name)
    prediction = predict(classifier, decoded)
    shown = decoded if max_side is None else display_copy(decoded, max_side)
    prediction.geometry = dataclasses.replace(prediction.geometry, orig_h=shown.height, orig_w=shown.width)
    return Case(name=name, image=shown, prediction=prediction, original_size=(decoded.height, decoded.width))


def explain_case(classifier: Classifier, case: Case, method: str = "gradcam", target_class: str | None = None,
                 with_faithfulness: bool = True):
    """The case's :class:`~covid_core.explain.Explanation`, heatmap at the display copy's size."""
    from .explain import explain_pixels

    p = case.prediction
    return explain_pixels(classifier, p.pixels_u8[None], [p.geometry], method, target_class, with_faithfulness)[0]
