"""Classify images: the predict step of the one image path.

:func:`score_pixels` scores a batch of model-space films and :func:`prediction_at` turns one row of it into a
:class:`Prediction`; :func:`predict` does both for one decoded image. Temperature scaling, the site's settings
and the stored operating threshold are applied here, so every caller gets the same calibrated answer.
Files (paths or bytes) enter through :mod:`covid_core.case`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from .checkpoint import Classifier
from .decode import DecodedImage
from .errors import InvalidImageError
from .models import model_features
from .ood import has_ood, ood_scores, turned_flags
from .preprocess import Geometry, prepare_pixels, to_model_input
from .site_file import makes_call
from .targets import COVID_CLASS


VERDICT_WITHHELD = "No verdict: the image is unlike the training X-rays"
VERDICT_TURNED = "No verdict: the image may be turned or inverted"
VERDICT_NOT_FRONTAL = "No verdict: not a frontal chest X-ray (DICOM header)"
VERDICT_RAW = "No verdict: raw detector image, not the processed film (DICOM header)"
VERDICT_NOT_VALIDATED = "No verdict: the model is not validated at this hospital"
#: The results table's words for each ``Prediction.withheld_kind`` (an unfamiliar film has no kind).
WITHHELD_VERDICTS = {"turned": VERDICT_TURNED, "not_frontal": VERDICT_NOT_FRONTAL, "raw": VERDICT_RAW}
TURNED_REASON = ("This image looks more like the training X-rays when rotated or inverted, so it may be turned or "
                 "inverted: no verdict is given. Check that the film is upright, seen from the front, and not "
                 "inverted (air should be dark).")


def call_indices(scores: np.ndarray, positive: np.ndarray, covid: int | None) -> np.ndarray:
    """The class each film's call names (:attr:`Prediction.call`), as indices: ``covid`` where the COVID-19
    verdict is positive, else the highest-scoring other class (``covid`` None: a model without a COVID-19 class,
    whose call is its highest-scoring class). scores: NxC probabilities or logits (any monotonic scale: only their
    order counts); positive: N bools."""
    others = np.array(scores, dtype=np.float64, copy=True)
    if covid is None:
        return others.argmax(axis=1)
    others[:, covid] = -np.inf
    return np.where(np.asarray(positive, bool), covid, others.argmax(axis=1))


def head_as_scores(pneumonia: np.ndarray, classes: list) -> np.ndarray:
    """NxC scores whose order between normal and pneumonia is a site's pneumonia head's (p and 1 - p; COVID-19 at
    0), for :func:`call_indices`: the call under a negative verdict then follows the head."""
    scores = np.zeros((len(pneumonia), len(classes)))
    scores[:, classes.index("pneumonia")] = pneumonia
    scores[:, classes.index("normal")] = 1 - np.asarray(pneumonia)
    return scores


@dataclass(eq=False)  # holds arrays/tensors: compare by identity, never element-wise
class Prediction:
    """One image's result.

    probabilities: {class: calibrated probability}; label: the most probable class.
    covid_positive: the COVID-19 verdict at the stored threshold (None if the target has no COVID class).
    ood_score / ood_flagged: familiarity of the image to the training data (see :mod:`covid_core.ood`).
    not_validated: the verdict is withheld only because no site file validates this COVID-19 model at the user's
    hospital (see :func:`verdict_needs_site`; a film the familiarity check flags is withheld for that reason
    instead); the probabilities and ``covid_positive`` stay the model's raw output.
    unconfirmed: a COVID-19 verdict is given although no site file validates the model here (the user asked for
    verdicts before validation, research use); the verdict's text says so wherever it is shown.
    withheld_why: the specific reason a flagged film gets no verdict (turned or inverted, or a DICOM header that
    names another view, body part or modality, or a raw detector image); "" when it is only unfamiliar.
    withheld_kind: which of those reasons it is, "turned", "not_frontal" or "raw" (:data:`WITHHELD_VERDICTS`);
    "" when it is only unfamiliar.
    pixels_u8: uint8 SxS model-space image; geometry maps model space back to the original.
    """

    probabilities: dict
    label: str
    covid_positive: bool | None
    covid_probability: float | None
    threshold: float | None
    ood_score: float | None
    ood_flagged: bool | None
    pixels_u8: np.ndarray
    geometry: Geometry
    warnings: list[str] = field(default_factory=list)
    not_validated: bool = False
    unconfirmed: bool = False
    withheld_why: str = ""  # why no verdict, in plain words, when more is known than "unlike the training X-rays"
    withheld_kind: str = ""  # "turned", "not_frontal" or "raw" with withheld_why
    # A site's pneumonia head's p(pneumonia rather than a normal film): the call under a negative verdict follows it.
    pneumonia_probability: float | None = None
    # Why the site's own films do not confirm the call between normal and pneumonia (Site.call_problem): "" where
    # they do, or without a site. Where it is set, a negative verdict's first line does not name either.
    call_unconfirmed: str = ""

    @property
    def withheld(self) -> bool:
        """No verdict is given: the image is out of distribution or turned, or the model is not validated here."""
        return bool(self.ood_flagged) or self.not_validated

    @property
    def call(self) -> str:
        """The class a reader is told: the COVID-19 class when the COVID-19 verdict is positive, else the most
        probable other class. The verdict is decided at the operating threshold, which may sit below another class's
        probability (p(COVID-19) 0.35 is positive at 0.30 while pneumonia has 0.45), so the most probable class alone
        could read "Pneumonia, not COVID-19-like" above "COVID-19: positive". Between normal and pneumonia, a site's
        pneumonia head decides where it has one. ``label`` when no verdict is given, or without a COVID-19 class and
        such a head."""
        if self.withheld or (self.covid_positive is None and self.pneumonia_probability is None):
            return self.label
        classes = list(self.probabilities)
        covid = next((i for i, c in enumerate(classes) if c in COVID_CLASS.values()), None)
        row = (np.array([list(self.probabilities.values())]) if self.pneumonia_probability is None
               else head_as_scores(np.array([self.pneumonia_probability]), classes))  # the site's head decides
        return classes[int(call_indices(row, np.array([bool(self.covid_positive)]), covid)[0])]

    @property
    def covid_call(self) -> str:
        """"positive" / "negative" at the stored threshold; "withheld" when the image is out of distribution
        (the model's output for an image unlike its training X-rays is no verdict) or the model is not validated
        at this hospital; "" without a COVID-19 class."""
        if self.covid_positive is None:
            return ""
        if self.withheld:
            return "withheld"
        return "positive" if self.covid_positive else "negative"

    @property
    def verdict(self) -> str:
        """The headline shown to a reader (app, report, results table)."""
        if self.ood_flagged:
            return WITHHELD_VERDICTS.get(self.withheld_kind, VERDICT_WITHHELD)
        if self.not_validated:
            return VERDICT_NOT_VALIDATED
        if self.covid_positive is None:
            return f"Most probable: {self.call}"  # where a site's head makes the call, the class it finds more probable
        return f"COVID-19: {self.covid_call}" + (" (unconfirmed)" if self.unconfirmed else "")


#: Films per forward pass where many are scored (a site validation, a batch of uploads). A pass holds the shared
#: model's lock (models.forward_lock), so a heatmap asked for meanwhile waits for one pass at most; 16 films a pass
#: scored 128 films at 160 px in 0.85 s on 2 CPU cores, 64 in 0.95-1.09 s.
PASS_FILMS = 16


@torch.no_grad()
def logits_and_features(model: torch.nn.Module, images_u8: np.ndarray, config, batch_size: int = PASS_FILMS,
                        device: str | torch.device = "cpu",
                        spatial_layer: torch.nn.Module | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """uint8 NxSxS -> (logits NxC float32, {name: features NxD float32}), model in eval mode.

    The features are "penultimate", plus "spatial" when ``spatial_layer`` is given (see ``model_features``).
    """
    model.eval()
    logits, feats = [], {}
    for i in range(0, len(images_u8), batch_size):
        x = to_model_input(np.asarray(images_u8[i:i + batch_size]), config).to(device)
        lo, fe = model_features(model, x, spatial_layer)
        logits.append(lo.float().cpu())
        for name, f in fe.items():
            feats.setdefault(name, []).append(f.float().cpu())
    if not logits:
        return np.zeros((0, 0), np.float32), {}
    return torch.cat(logits).numpy(), {name: torch.cat(f).numpy() for name, f in feats.items()}


def check_not_blank(pixels: np.ndarray) -> None:
    """Refuse to classify a blank image (float HxW in [0, 1], every pixel the same value up to 8-bit precision):
    a model would still output class probabilities for it, and the verdict would mean nothing."""
    lo, hi = float(np.min(pixels)), float(np.max(pixels))
    if hi - lo < 1.0 / 255:
        raise InvalidImageError(f"the image is blank: every pixel has the same value ({round(255 * lo)} of 255), so "
                                "there is nothing to classify; check that the right file or frame was exported")


def calibrated_probabilities(logits: np.ndarray, temperature: float) -> np.ndarray:
    return torch.softmax(torch.as_tensor(logits) / temperature, dim=1).numpy()


@dataclass(eq=False)
class Scores:
    """A batch's model output: probs NxC (calibrated), ood N or None (familiarity score), penultimate NxD,
    covid N or None (the score the COVID-19 verdict thresholds: p(COVID-19), or a site head's probability)."""

    probs: np.ndarray
    ood: np.ndarray | None
    penultimate: np.ndarray
    covid: np.ndarray | None
    turned: np.ndarray | None = None  # bool N: a rotated or inverted copy of the film looks more familiar
    pneumonia: np.ndarray | None = None  # N: a site's pneumonia head's p(pneumonia rather than a normal film)

    def call_scores(self, classes: list) -> np.ndarray:
        """NxC scores whose order decides the call under a negative verdict (:func:`call_indices`): the site's
        pneumonia head's where it has one, else the probabilities."""
        return self.probs if self.pneumonia is None else head_as_scores(self.pneumonia, classes)


def turned_copy_features(classifier: Classifier, pixels_u8: np.ndarray) -> list[dict[str, np.ndarray]]:
    """uint8 NxSxS -> the features (as ``logits_and_features``) of the film rotated by 90, 180 and 270 degrees and
    of the film inverted: what a film turned or inverted by mistake would need to look upright again."""
    pixels_u8 = np.asarray(pixels_u8)
    copies = [np.ascontiguousarray(np.rot90(pixels_u8, k, (1, 2))) for k in (1, 2, 3)] + [255 - pixels_u8]
    return [logits_and_features(classifier.model, c, classifier.preprocess, device=classifier.device,
                                spatial_layer=classifier.spec.feature_layer(classifier.model))[1] for c in copies]


def score_pixels(classifier: Classifier, pixels_u8: np.ndarray, orientation: bool = True) -> Scores:
    """uint8 NxSxS (already preprocessed) -> :class:`Scores`. A site file (``classifier.site``) brings its own
    temperature, familiarity reference and, where it has one, the head whose probability the verdict uses.

    ``orientation``: also score the film rotated and inverted (four more forward passes); a film one of whose
    copies is more familiar than the film itself is turned or inverted, whatever its own familiarity score (the
    score alone let about 1 in 15 turned films through). Metrics that need no familiarity flag skip it.
    """
    spatial = classifier.spec.feature_layer(classifier.model)
    logits, feats = logits_and_features(classifier.model, pixels_u8, classifier.preprocess,
                                        device=classifier.device, spatial_layer=spatial)
    site = classifier.site
    probs = calibrated_probabilities(logits, classifier.scoring_temperature)
    stats = site.ood_stats(classifier.ood) if site is not None else classifier.ood
    ood = ood_scores(stats, feats) if has_ood(classifier.ood) else None
    turned = None
    if orientation and ood is not None and classifier.ood.get("orientation_check") and len(pixels_u8):
        turned = turned_flags(stats, ood, turned_copy_features(classifier, pixels_u8))
    covid_class = COVID_CLASS.get(classifier.target)
    covid = None
    if covid_class in classifier.classes:
        covid = probs[:, classifier.classes.index(covid_class)]
        if site is not None and site.head is not None:
            covid = site.head_probability(feats["penultimate"])
    pneumonia = None
    if site is not None and site.pneumonia_head is not None:
        pneumonia = site.head_probability(feats["penultimate"], site.pneumonia_head)
    return Scores(probs=probs, ood=ood, penultimate=feats["penultimate"], covid=covid, turned=turned,
                  pneumonia=pneumonia)


def predict_pixels(classifier: Classifier, pixels_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 NxSxS (already preprocessed) -> (probabilities NxC, familiarity scores N or None)."""
    s = score_pixels(classifier, pixels_u8, orientation=False)
    return s.probs, s.ood


def verdict_needs_site(classifier: Classifier) -> bool:
    """Whether this classifier's verdicts are withheld for want of a site file.

    A model with a COVID-19 class gives verdicts only where a site file (``validate-site``) validates it, unless
    the user asked for verdicts without one (``Classifier.verdicts_unvalidated``, research use). Trained without
    one of its hospitals, the shipped recipe gave many of that hospital's films a wrong COVID-19 positive verdict
    (``covid_core.goals.UNSEEN_SOURCE_WRONG_VERDICTS``), and no familiarity rule told them from real COVID-19 films
    (docs/shortcuts.md); a verdict at a hospital that has not checked the model is therefore no verdict. Models
    without a COVID-19 class keep their calls, marked unconfirmed until a site file validates the call
    (``validate-site`` checks the call between normal and pneumonia, the only one they make).
    """
    return (COVID_CLASS.get(classifier.target) is not None and classifier.site is None
            and not classifier.verdicts_unvalidated)


def prediction_at(classifier: Classifier, scores: Scores, i: int, pixels, geometry) -> Prediction:
    """Row ``i`` of a batch's ``scores`` as a Prediction (verdict at the operating threshold, familiarity warnings)."""
    classes, probs = classifier.classes, scores.probs[i]
    score = None if scores.ood is None else scores.ood[i]
    threshold = covid_prob = covid_positive = None
    if scores.covid is not None:
        covid_prob = float(scores.covid[i])
        site = classifier.site
        threshold = float(site.threshold if site is not None and site.threshold is not None
                          else classifier.threshold.get("value", 0.5))
        covid_positive = covid_prob >= threshold
    flagged, warnings, why, kind = None, [], "", ""
    if score is not None:
        unfamiliar = bool(score > classifier.ood["threshold"])
        turned = scores.turned is not None and bool(scores.turned[i])
        flagged = unfamiliar or turned
        if unfamiliar:
            warnings.append(f"This image is unlike the chest X-rays the model was trained on (out-of-distribution "
                            f"score {float(score):.2f}, above its threshold {float(classifier.ood['threshold']):.2f}), "
                            "so no verdict is given; the class probabilities are the model's raw output, not a "
                            "finding. Check it is a frontal chest X-ray.")
        elif turned:
            why, kind = TURNED_REASON, "turned"
            warnings.append(why)
    return Prediction(
        probabilities={c: float(p) for c, p in zip(classes, probs)}, label=classes[int(np.argmax(probs))],
        covid_positive=covid_positive, covid_probability=covid_prob, threshold=threshold,
        ood_score=None if score is None else float(score), ood_flagged=flagged,
        pixels_u8=pixels, geometry=geometry, warnings=warnings,
        withheld_why=why, withheld_kind=kind,
        not_validated=covid_positive is not None and not flagged and verdict_needs_site(classifier),
        unconfirmed=(covid_positive is not None and not flagged and classifier.site is None
                     and classifier.verdicts_unvalidated),
        pneumonia_probability=None if scores.pneumonia is None else float(scores.pneumonia[i]),
        call_unconfirmed=(classifier.site.call_problem if classifier.site is not None and makes_call(classes) else ""),
    )


def withheld_by_header(prediction: Prediction, kind: str, reason: str) -> Prediction:
    """The prediction with no verdict, for the ``kind`` and ``reason`` of
    :func:`covid_core.dicom_header.why_no_verdict`: flagged like an unfamiliar film, whatever its familiarity score;
    the probabilities stay the raw output."""
    return dataclasses.replace(prediction, ood_flagged=True, not_validated=False, unconfirmed=False,
                               withheld_why=reason, withheld_kind=kind, warnings=[reason, *prediction.warnings])


def predict(classifier: Classifier, image: DecodedImage | np.ndarray) -> Prediction:
    """Classify one decoded image (DecodedImage or float32 HxW in [0, 1])."""
    pixels_f = image.pixels if isinstance(image, DecodedImage) else image
    check_not_blank(pixels_f)
    pixels, geometry = prepare_pixels(pixels_f, classifier.preprocess)
    return prediction_at(classifier, score_pixels(classifier, pixels[None]), 0, pixels, geometry)
