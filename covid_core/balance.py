"""Weights that counter imbalance in the training set: by class, or by (source, class) group.

``--balance group`` targets this data set's confound: within a class, images from a rare
source (adult non-COVID pneumonia from the cohen collection: 37 TRAIN images, 26 after the
validation split, against 871 and 752 paediatric ones) would otherwise teach the model little beside "adult film = COVID-19".
Each class gets the same total weight and, within a class, each source the same share
(group DRO's reweighting, Sagawa et al. 2020), so the model has to separate adult
pneumonia from COVID-19 by the lungs. One image is never weighted above ``cap`` times the
average, so a group of one or two films is not drawn dozens of times per epoch.
"""

from __future__ import annotations

import numpy as np

BALANCE_CHOICES = ("loss", "sampler", "group", "none")
WEIGHTED_SAMPLING = ("sampler", "group")  # the choices that draw training images by weight
BALANCE_LABELS = {"loss": "class-weighted loss", "sampler": "class-balanced sampler",
                  "group": "source and class sampler", "none": "none"}
GROUP_WEIGHT_CAP = 10.0


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class weights (n_classes,), inverse to class frequency, mean 1 over the samples of a balanced set."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    return counts.sum() / (n_classes * np.maximum(counts, 1))


def group_sample_weights(labels: np.ndarray, sources: np.ndarray, cap: float = GROUP_WEIGHT_CAP) -> np.ndarray:
    """Per-sample weights (mean 1): classes equal, sources equal within a class, none above ``cap``.

    With a single source (no provenance) this is plain class balancing.
    """
    labels = np.asarray(labels)
    sources = np.asarray(sources).astype(str)
    weights = np.zeros(len(labels), dtype=np.float64)
    present = np.unique(labels)
    for c in present:
        in_class = labels == c
        groups = np.unique(sources[in_class])
        for g in groups:
            member = in_class & (sources == g)
            weights[member] = 1.0 / (len(present) * len(groups) * member.sum())
    weights *= len(labels)  # mean 1
    # Capping changes the mean; repeat until the cap holds after renormalising.
    for _ in range(50):
        if weights.max() <= cap * (1 + 1e-9):
            break
        weights = np.minimum(weights, cap)
        weights *= len(weights) / weights.sum()
    return weights
