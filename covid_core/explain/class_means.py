"""Per-class mean heatmaps over a data split (for the model card, the Models page and EDA).

For every class, the images whose true label is that class are explained for that class;
their model-space heatmaps are averaged, so a reviewer sees at a glance where each class's
evidence lies, with the mean share of it inside the estimated thorax.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from ..checkpoint import Classifier
from ..datasets import load_dataset
from ..decode import decode_image
from ..errors import CovidCoreError, DatasetError
from ..preprocess import prepare_pixels
from .cam import DEFAULT_METHOD
from .explanation import explain_pixels


SAMPLE_SEED = 0  # the films drawn per class when a limit is set: the same ones on every run


class ClassMeans(NamedTuple):
    """heatmaps: {class: float32 SxS mean heatmap in [0, 1]}; thorax_share: {class: mean share of heatmap energy
    inside the thorax}; images: {class: float32 SxS mean of the model-space images in [0, 1]}, the anatomy the
    mean heatmap is drawn over; films: {class: paths of the films used}."""

    heatmaps: dict[str, np.ndarray]
    thorax_share: dict[str, float]
    images: dict[str, np.ndarray]
    films: dict[str, list[str]]


def mean_heatmaps_and_thorax_share(classifier: Classifier, data_dir, split: str = "test", method: str = DEFAULT_METHOD,
                                   limit: int | None = None, layout: str = "auto",
                                   on_progress: Callable[[int, int], None] | None = None) -> ClassMeans:
    """Per class: the mean heatmap, the mean thorax share and the mean image (see :class:`ClassMeans`).

    limit: at most this many images per class, a seeded random sample of the class's films (the first ones by
    file name would come from one source: CoronaHack's file names group by source). Classes without images in
    the split are left out. Unreadable files are skipped.
    on_progress(done, total) is called after each class.
    """
    table = load_dataset(data_dir, layout).for_target(classifier.target)
    rows = table[table["split"] == split]
    if rows.empty:
        raise DatasetError(f"no images in split {split!r} of {data_dir}; "
                           f"choose one of: {', '.join(sorted(table['split'].unique()))}")
    maps, shares, images, films = {}, {}, {}, {}
    total = len(classifier.classes)
    for done, cls in enumerate(classifier.classes, 1):
        paths = sorted(rows.loc[rows["label"] == cls, "path"])
        if limit is not None and len(paths) > limit:
            keep = np.random.default_rng(SAMPLE_SEED).choice(len(paths), size=limit, replace=False)
            paths = [paths[i] for i in sorted(keep)]
        pixels, geometries, used = [], [], []
        for path in paths:
            try:
                pix, geom = prepare_pixels(decode_image(path).pixels, classifier.preprocess)
            except CovidCoreError:
                continue
            pixels.append(pix)
            geometries.append(geom)
            used.append(path)
        if pixels:
            # the network's own logits: where the model looks, whichever site file is active
            found = explain_pixels(classifier, np.stack(pixels), geometries, method, cls, with_faithfulness=False,
                                   site_heads=False)
            mean = np.mean([e.heatmap_model for e in found], axis=0)
            peak = mean.max()
            maps[cls] = (mean / peak if peak > 0 else mean).astype(np.float32)
            shares[cls] = float(np.mean([e.thorax_share for e in found]))
            images[cls] = (np.mean(pixels, axis=0) / 255.0).astype(np.float32)
            films[cls] = used
        if on_progress:
            on_progress(done, total)
    return ClassMeans(maps, shares, images, films)


def class_mean_heatmaps(classifier: Classifier, data_dir, split: str = "test", method: str = DEFAULT_METHOD,
                        limit: int | None = None) -> dict[str, np.ndarray]:
    """{class: float32 SxS mean heatmap in [0, 1]} (see :func:`mean_heatmaps_and_thorax_share`)."""
    return mean_heatmaps_and_thorax_share(classifier, data_dir, split, method, limit).heatmaps
