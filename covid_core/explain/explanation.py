"""Explain a prediction: the heatmap on the original image plus the trust checks.

Step "explain" of the one image path: decoded image -> preprocess (the checkpoint's own
settings) -> CAM in model space -> mapped back onto the original image with
``Geometry.to_original`` (undoing pad / crop / resize).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..checkpoint import Classifier
from ..decode import DecodedImage
from ..errors import ConfigError
from ..inference import calibrated_probabilities
from ..preprocess import Geometry, prepare_pixels, to_model_input
from ..targets import COVID_CLASS
from .cam import DEFAULT_METHOD, check_method, compute_cams
from .scores import explained_score
from ..thorax import estimate_thorax
from .trust import (border_band, energy_shares, faithfulness, faithfulness_name, faithfulness_warning,
                    shortcut_warning)

BATCH_SIZE = 16


@dataclass(eq=False)  # holds arrays/tensors: compare by identity, never element-wise
class Explanation:
    """Where the model looked for one class on one image.

    heatmap: float32 orig_h x orig_w in [0, 1], on the ORIGINAL image (max 1 unless empty).
    heatmap_model: float32 SxS in [0, 1], in model space (the preprocessed square).
    method: the CAM method name; target_class: the class explained.
    faithfulness: ROAD probability drop in [-1, 1] (see ``faithfulness_name``), None if not computed;
    faithfulness_warning: a sentence when that drop is not above 0 (the map does not show what the model uses).
    thorax_share / border_share: share of heatmap energy inside the estimated thorax / on the
    image border (padding and a thin edge band), each in [0, 1].
    shortcut_warning: a sentence when the evidence is not over the chest, else None.
    thorax_mask: bool orig_h x orig_w, the estimated thorax; thorax_method: how it was found.
    probabilities: {class: calibrated probability}; predicted_class: the most probable class.
    explained_by: where a site's head decides ``target_class`` there, that head in words (the heatmap and the
    faithfulness follow its score, see :mod:`covid_core.explain.scores`); "" for the network's own logit.
    """

    heatmap: np.ndarray
    heatmap_model: np.ndarray
    method: str
    target_class: str
    faithfulness: float | None
    faithfulness_name: str
    thorax_share: float
    border_share: float
    shortcut_warning: str | None
    thorax_mask: np.ndarray
    thorax_method: str = ""
    probabilities: dict = field(default_factory=dict)
    predicted_class: str = ""
    faithfulness_warning: str | None = None
    explained_by: str = ""  # the site's head whose score the heatmap follows, in words; "" for the network's logit

    @property
    def pushed(self) -> str:
        """What the red of the heatmap shows, in words: "what pushed the model towards 'pneumonia'", or, where a
        site's head decides the class, what pushed that head."""
        return f"what pushed {self.explained_by or 'the model'} towards '{self.target_class}'"


def class_index(classifier: Classifier, name: str) -> int:
    """Index of class ``name`` (case, '-' and '_' ignored: "COVID-19" finds "covid19")."""
    def key(s):
        return str(s).lower().replace("-", "").replace("_", "").replace(" ", "")

    keys = [key(c) for c in classifier.classes]
    if key(name) not in keys:
        raise ConfigError(f"unknown class {name!r} for this model; choose one of: {', '.join(classifier.classes)}")
    return keys.index(key(name))


def classes_to_explain(classifier: Classifier, predicted_class: str) -> list[str]:
    """The predicted class first, then the COVID-19 class if the model has one and it differs."""
    covid = COVID_CLASS.get(classifier.target)
    extra = [covid] if covid in classifier.classes and covid != predicted_class else []
    return [predicted_class, *extra]


def heatmap_description(classifier: Classifier, method: str = DEFAULT_METHOD) -> str:
    """The method and the layer a heatmap of ``classifier`` explains, in a few words: "hirescam at layer3.1"."""
    layer = classifier.spec.heatmap_layer(classifier.model)
    name = next((n for n, m in classifier.model.named_modules() if m is layer), "?")
    return f"{check_method(method)} at {name}"


def _pixels(image: DecodedImage | np.ndarray) -> np.ndarray:
    pixels = image.pixels if isinstance(image, DecodedImage) else np.asarray(image, np.float32)
    if pixels.ndim != 2:
        raise ConfigError(f"expected a grayscale image HxW, got shape {pixels.shape}")
    return pixels


def explain_pixels(classifier: Classifier, pixels_u8: np.ndarray, geometries: list[Geometry],
                   method: str = DEFAULT_METHOD, target_class: str | None = None,
                   with_faithfulness: bool = True, site_heads: bool = True) -> list[Explanation]:
    """Explain preprocessed images: uint8 NxSxS (from ``prepare_pixels``) with their geometries.

    ``site_heads``: where the classifier's site fitted a head that decides ``target_class``, explain that head's
    score (:func:`~covid_core.explain.scores.explained_score`); False: always the network's own logit."""
    method = check_method(method)
    wanted = None if target_class is None else class_index(classifier, target_class)
    model, score = explained_score(classifier, wanted, site_heads)
    layer = classifier.spec.heatmap_layer(classifier.model)
    n = len(classifier.classes)
    out = []
    for start in range(0, len(pixels_u8), BATCH_SIZE):
        chunk = np.asarray(pixels_u8[start:start + BATCH_SIZE])
        x = to_model_input(chunk, classifier.preprocess).to(classifier.device)
        cams, outputs = compute_cams(model, layer, x, method, [score] * len(chunk))
        chosen = [int(i) if wanted is None else wanted for i in outputs[:, :n].argmax(dim=1).tolist()]
        scores = [score if wanted is not None else dataclasses.replace(score, column=c) for c in chosen]
        faith = faithfulness(model, x, cams, scores, outputs) if with_faithfulness else [None] * len(chunk)
        probs = calibrated_probabilities(outputs[:, :n].cpu().numpy(), classifier.scoring_temperature)
        for j, geometry in enumerate(geometries[start:start + BATCH_SIZE]):
            out.append(_one(classifier, chunk[j], geometry, cams[j], method, chosen[j], faith[j], probs[j], score.by))
    return out


def _one(classifier, pixels_u8, geometry, cam, method, chosen, faith, probs, by) -> Explanation:
    content = geometry.content_mask()
    thorax, thorax_method = estimate_thorax(pixels_u8, content)
    empty = not cam.max() > 0
    thorax_share, border_share = energy_shares(cam, thorax, border_band(content))
    heatmap = np.clip(geometry.to_original(cam), 0.0, 1.0)
    peak = heatmap.max()
    if peak > 0:  # the map's peak may have been on the padding, which is cut away
        heatmap = heatmap / peak
    return Explanation(
        heatmap=heatmap.astype(np.float32), heatmap_model=cam.astype(np.float32), method=method,
        target_class=classifier.classes[chosen],
        faithfulness=None if faith is None else float(faith), faithfulness_name=faithfulness_name(by),
        faithfulness_warning=faithfulness_warning(None if faith is None else float(faith)),
        thorax_share=thorax_share, border_share=border_share,
        shortcut_warning=shortcut_warning(thorax_share, border_share, empty),
        thorax_mask=geometry.to_original(thorax.astype(np.float32)) >= 0.5, thorax_method=thorax_method,
        probabilities={c: float(p) for c, p in zip(classifier.classes, probs)},
        predicted_class=classifier.classes[int(np.argmax(probs))], explained_by=by,
    )


def explain_batch(classifier: Classifier, images: list, method: str = DEFAULT_METHOD, target_class: str | None = None,
                  with_faithfulness: bool = True) -> list[Explanation]:
    """Explain many images (DecodedImage or float32 HxW in [0, 1]); one Explanation each, in order.

    target_class None explains each image's predicted class.
    """
    prepared = [prepare_pixels(_pixels(im), classifier.preprocess) for im in images]
    if not prepared:
        return []
    pixels = np.stack([p for p, _ in prepared])
    return explain_pixels(classifier, pixels, [g for _, g in prepared], method, target_class, with_faithfulness)


def explain(classifier: Classifier, image: DecodedImage | np.ndarray, method: str = DEFAULT_METHOD,
            target_class: str | None = None, with_faithfulness: bool = True) -> Explanation:
    """Explain one image (DecodedImage or float32 HxW in [0, 1]) for ``target_class``
    (a class name of the model; None = the predicted class)."""
    return explain_batch(classifier, [image], method, target_class, with_faithfulness)[0]
