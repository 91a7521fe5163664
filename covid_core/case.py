"""One path for a case: bytes -> decode -> classify -> (explain) -> what a reader is shown.

:func:`open_case` (one file) and :func:`open_cases` (many, scored in batches; a bad file never stops the
rest) decode a file and classify it at full resolution, then keep only a display copy
of the film (at most :data:`DISPLAY_MAX_SIDE` a side), so a case held in a cache costs a few MB whatever
the upload was. :func:`explain_case` makes the heatmap from the prediction's own model-space pixels (the
image is preprocessed once) and maps it onto the display copy. The Diagnose page, the ``predict`` and
``explain`` commands and the case report all go through these functions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from .checkpoint import Classifier
from .decode import DecodedImage, decode_image
from .dicom_header import why_no_verdict
from .explain.cam import DEFAULT_METHOD
from .errors import CovidCoreError
from .inference import (Prediction, check_not_blank, predict, prediction_at, score_pixels,
                        withheld_by_header)
from .preprocess import prepare_pixels

#: Longest side of the film a case keeps for display (and for the display-only window/level of DICOM).
DISPLAY_MAX_SIDE = 1024


@dataclass(eq=False)  # holds arrays: compare by identity
class Case:
    """One analysed film.

    image: the decoded film, downscaled to at most DISPLAY_MAX_SIDE a side (pixels float32 HxW in [0, 1];
    ``raw`` likewise for DICOM; None when only the verdict was asked for). prediction: computed on the
    full-resolution film; its geometry maps model space onto ``image``. original_size: (height, width) of the file
    as decoded.
    """

    name: str
    image: DecodedImage | None
    prediction: Prediction
    original_size: tuple[int, int]


@dataclass(eq=False)
class CaseResult:
    """One file of a batch: its case, or the reason it could not be read (``error``)."""

    name: str
    case: Case | None = None
    error: str | None = None

    @property
    def prediction(self) -> Prediction | None:
        return None if self.case is None else self.case.prediction


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


def _decoded_for_model(source, name: str, classifier: Classifier):
    """(decoded film, model-space uint8 pixels, geometry); raises InvalidImageError for a bad or blank file."""
    decoded = decode_image(source, name)
    check_not_blank(decoded.pixels)
    pixels, geometry = prepare_pixels(decoded.pixels, classifier.preprocess)
    return decoded, pixels, geometry


def _case(name: str, decoded: DecodedImage, prediction: Prediction, max_side: int | None, keep_image: bool) -> Case:
    kind, reason = why_no_verdict(decoded.dicom_info)  # a lateral DICOM, a CT slice, raw data: no verdict, said why
    if kind:
        prediction = withheld_by_header(prediction, kind, reason)
    shown = decoded if max_side is None else display_copy(decoded, max_side)
    prediction.geometry = dataclasses.replace(prediction.geometry, orig_h=shown.height, orig_w=shown.width)
    return Case(name=name, image=shown if keep_image else None, prediction=prediction,
                original_size=(decoded.height, decoded.width))


def open_cases(sources: list, names: list[str], classifier: Classifier, max_side: int | None = DISPLAY_MAX_SIDE,
               batch_size: int = 16, keep_images: bool = True) -> list[CaseResult]:
    """Open many files (paths or bytes) as cases, scored ``batch_size`` at a time; a bad file gets its reason in
    ``error`` and the others still run. ``keep_images=False`` keeps only the predictions (the command line's
    many files): at most one batch of decoded films is held at a time."""
    results = [CaseResult(name=n) for n in names]
    for start in range(0, len(sources), batch_size):
        batch = []
        for i in range(start, min(start + batch_size, len(sources))):
            try:
                batch.append((i, *_decoded_for_model(sources[i], names[i], classifier)))
            except CovidCoreError as exc:
                results[i].error = str(exc)
        if not batch:
            continue
        scores = score_pixels(classifier, np.stack([pixels for _, _, pixels, _ in batch]))
        for j, (i, decoded, pixels, geometry) in enumerate(batch):
            prediction = prediction_at(classifier, scores, j, pixels, geometry)
            results[i].case = _case(names[i], decoded, prediction, max_side, keep_images)
    return results


def open_case(source, name: str, classifier: Classifier, max_side: int | None = DISPLAY_MAX_SIDE) -> Case:
    """Decode ``source`` (bytes or a path), classify it, keep a display copy of at most ``max_side`` a side
    (None: the film at its own size, as the command line writes it): :func:`open_cases` for one file.

    Raises InvalidImageError (unreadable, too large, blank...) before anything is kept.
    """
    decoded = decode_image(source, name)
    return _case(name, decoded, predict(classifier, decoded), max_side, keep_image=True)


def explain_case(classifier: Classifier, case: Case, method: str = DEFAULT_METHOD, target_class: str | None = None,
                 with_faithfulness: bool = True):
    """The case's :class:`~covid_core.explain.Explanation`, heatmap at the display copy's size."""
    from .explain import explain_pixels

    p = case.prediction
    return explain_pixels(classifier, p.pixels_u8[None], [p.geometry], method, target_class, with_faithfulness)[0]
